"""Tests for minigraph.optim and minigraph.lr_schedules.

The parity tests run the same updates in PyTorch (the reference) and compare after every step.
They need PyTorch (``make torch``) and skip without it; every other test runs on NumPy alone.
"""
import math

import numpy as np
import pytest

from minigraph.errors import ModelError
from minigraph.kernels.packed import FlatUpdate, PackedParams, pack_params
from minigraph.optim import OPTIMIZERS, Optimizer, make_optimizer
from minigraph.lr_schedules import SCHEDULES, make_schedule

ALL_TYPES = ["sgd", "momentum", "nag", "adagrad", "rmsprop", "adadelta", "adam", "adamax", "nadam"]


@pytest.fixture
def torch():
    """PyTorch, or skip the test (only the parity tests ask for it)."""
    return pytest.importorskip("torch", reason="PyTorch not installed: parity tests need `make torch`")


def make_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return {"W": rng.normal(size=(3, 4)).astype(dtype), "b": rng.normal(size=(4,)).astype(dtype)}


def make_grads(steps, seed=1):
    """A fixed sequence of random gradients for the parameters of make_params."""
    rng = np.random.default_rng(seed)
    return [{"W": rng.normal(size=(3, 4)), "b": rng.normal(size=(4,))} for _ in range(steps)]


# =============================================================================
# (a) every optimizer makes progress on a quadratic
# =============================================================================

# loss(θ) = ½ Σ a ⊙ (θ − c)²   with gradient  a ⊙ (θ − c)
SCALE = np.array([1.0, 3.0, 0.5, 2.0])
CENTRE = np.array([1.0, -2.0, 0.5, 3.0])


def quadratic(theta):
    return 0.5 * float(np.sum(SCALE * (theta - CENTRE) ** 2))


@pytest.mark.parametrize("kind", ALL_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_update_decreases_quadratic_loss(kind, dtype):
    theta = np.zeros(4, dtype=dtype)
    params = {"theta": theta}
    opt = make_optimizer({"type": kind, "lr": 1.0 if kind == "adadelta" else 0.05})
    before = quadratic(theta)
    for _ in range(50):
        opt.step(params, {"theta": (SCALE * (params["theta"] - CENTRE)).astype(dtype)})
    assert params["theta"] is theta, "step must update the parameter array in place"
    assert theta.dtype == dtype
    assert opt.t == 50
    assert quadratic(theta) < 0.9 * before
    for slot, value in opt.state["theta"].items():
        if slot not in opt.scalar_slots:
            assert value.dtype == dtype, f"state slot {slot} changed dtype"


def test_default_learning_rate_also_decreases_loss():
    for kind in ALL_TYPES:
        params = {"theta": np.zeros(4)}
        opt = make_optimizer({"type": kind})
        for _ in range(5):
            opt.step(params, {"theta": SCALE * (params["theta"] - CENTRE)})
        assert quadratic(params["theta"]) < quadratic(np.zeros(4)), kind


def test_params_without_grads_are_skipped():
    params = make_params()
    frozen = params["b"].copy()
    opt = make_optimizer({"type": "adam", "lr": 0.1})
    opt.step(params, {"W": np.ones((3, 4))})
    np.testing.assert_array_equal(params["b"], frozen)
    assert "b" not in opt.state and opt.state["W"]["step"] == 1


def test_weight_decay_is_added_to_the_gradient():
    # Plain SGD: θ ← θ − γ (g + λ θ)
    params = {"x": np.array([2.0, -1.0])}
    make_optimizer({"type": "sgd", "lr": 0.1, "weight_decay": 0.5}).step(params, {"x": np.array([1.0, 1.0])})
    np.testing.assert_allclose(params["x"], [2.0 - 0.1 * (1.0 + 1.0), -1.0 - 0.1 * (1.0 - 0.5)])


def test_lr_is_an_attribute_schedules_can_set():
    opt = make_optimizer({"type": "sgd", "lr": 0.1})
    opt.lr = 0.01
    params = {"x": np.array([1.0])}
    opt.step(params, {"x": np.array([1.0])})
    np.testing.assert_allclose(params["x"], [0.99])


def test_defaults_and_registry():
    assert sorted(OPTIMIZERS) == sorted(ALL_TYPES)
    assert make_optimizer({"type": "adam"}).lr == 1e-3
    assert make_optimizer({"type": "adadelta"}).lr == 1.0
    assert make_optimizer({"type": "nadam"}).lr == 2e-3
    assert make_optimizer({"type": "momentum"}).momentum == 0.9
    assert make_optimizer({"type": "sgd"}).momentum == 0.0
    assert make_optimizer({"type": "adam", "betas": [0.8, 0.9]}).betas == (0.8, 0.9)
    for cls in OPTIMIZERS.values():
        assert issubclass(cls, Optimizer)
        assert cls().config() == make_optimizer(cls().config()).config()


# =============================================================================
# (b) saving and loading the state continues bit for bit
# =============================================================================

ROUND_TRIP_CONFIGS = [
    {"type": "sgd", "lr": 0.1},
    {"type": "sgd", "lr": 0.1, "momentum": 0.5, "nesterov": True},
    {"type": "momentum", "lr": 0.1},
    {"type": "nag", "lr": 0.1},
    {"type": "adagrad", "lr_decay": 0.1},
    {"type": "rmsprop", "centered": True, "momentum": 0.5},
    {"type": "adadelta"},
    {"type": "adam", "amsgrad": True, "weight_decay": 0.01},
    {"type": "adamax"},
    {"type": "nadam"},
]


@pytest.mark.parametrize("config", ROUND_TRIP_CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_state_dict_round_trip_is_bit_identical(config, tmp_path):
    grads = make_grads(10)
    grads[2] = {"W": grads[2]["W"]}  # "b" has no gradient at one step
    params = make_params(np.float32)
    opt = make_optimizer(config)
    for g in grads[:5]:
        opt.step(params, g)

    path = tmp_path / "optim.npz"
    np.savez(path, **opt.state_dict())
    with np.load(path) as saved:
        flat = dict(saved)
    assert int(flat["t"]) == 5
    assert "W/step" in flat
    resumed = make_optimizer(config)
    resumed.load_state_dict(flat)
    params2 = {name: value.copy() for name, value in params.items()}

    for g in grads[5:]:
        opt.step(params, g)
        resumed.step(params2, g)
        for name in params:
            np.testing.assert_array_equal(params[name], params2[name])
    assert resumed.t == opt.t == 10


def test_state_dict_is_a_snapshot():
    params = make_params()
    opt = make_optimizer({"type": "adam"})
    opt.step(params, make_grads(1)[0])
    flat = opt.state_dict()
    m = flat["W/m"].copy()
    opt.step(params, make_grads(1)[0])
    np.testing.assert_array_equal(flat["W/m"], m)


# =============================================================================
# (c) mistakes in the config
# =============================================================================


def test_unknown_type_suggests_the_closest():
    with pytest.raises(ModelError) as info:
        make_optimizer({"type": "adamm"})
    assert "did you mean 'adam'?" in str(info.value)
    assert "nadam" in str(info.value)  # lists the valid types
    assert info.value.key == "type"
    assert info.value.location is None


def test_missing_type():
    with pytest.raises(ModelError) as info:
        make_optimizer({"lr": 0.1})
    assert info.value.key == "type"


def test_unknown_option_suggests_the_closest_and_lists_options():
    with pytest.raises(ModelError) as info:
        make_optimizer({"type": "adam", "beta": [0.9, 0.99]})
    message = str(info.value)
    assert "did you mean 'betas'?" in message
    assert "amsgrad" in message and "eps" in message
    assert info.value.key == "beta"


def test_option_of_another_optimizer_is_refused():
    with pytest.raises(ModelError) as info:
        make_optimizer({"type": "momentum", "nesterov": True})
    assert info.value.key == "nesterov"


@pytest.mark.parametrize(
    "config, key",
    [
        ({"type": "adam", "lr": "fast"}, "lr"),
        ({"type": "adam", "lr": -0.1}, "lr"),
        ({"type": "adam", "lr": True}, "lr"),
        ({"type": "adam", "betas": [0.9]}, "betas"),
        ({"type": "adam", "betas": 0.9}, "betas"),
        ({"type": "adam", "betas": [0.9, 1.0]}, "betas"),
        ({"type": "adam", "amsgrad": "yes"}, "amsgrad"),
        ({"type": "sgd", "nesterov": True}, "nesterov"),
        ({"type": "nag", "momentum": 0}, "momentum"),
        ({"type": "rmsprop", "weight_decay": [1]}, "weight_decay"),
        ({"type": ["adam"]}, "type"),
    ],
)
def test_wrong_values_are_model_errors(config, key):
    with pytest.raises(ModelError) as info:
        make_optimizer(config)
    assert info.value.key == key


# =============================================================================
# (d) parity with torch.optim
# =============================================================================

TORCH_CLASSES = {
    "sgd": ("SGD", {}),
    "momentum": ("SGD", {"momentum": 0.9}),
    "nag": ("SGD", {"momentum": 0.9, "nesterov": True}),
    "adagrad": ("Adagrad", {}),
    "rmsprop": ("RMSprop", {}),
    "adadelta": ("Adadelta", {}),
    "adam": ("Adam", {}),
    "adamax": ("Adamax", {}),
    "nadam": ("NAdam", {}),
}

NON_DEFAULT = {
    "sgd": [{"lr": 0.05, "momentum": 0.5}, {"lr": 0.05, "momentum": 0.5, "nesterov": True}],
    "momentum": [{"lr": 0.05, "momentum": 0.8}],
    "nag": [{"lr": 0.05, "momentum": 0.8}],
    "adagrad": [{"lr": 0.1, "lr_decay": 0.1, "initial_accumulator_value": 0.5, "eps": 1e-6}],
    "rmsprop": [
        {"alpha": 0.9, "eps": 1e-6},
        {"centered": True},
        {"momentum": 0.5},
        {"lr": 0.005, "alpha": 0.8, "centered": True, "momentum": 0.3},
    ],
    "adadelta": [{"lr": 0.5, "rho": 0.5, "eps": 1e-4}],
    "adam": [{"lr": 0.01, "betas": [0.8, 0.99], "eps": 1e-6}, {"lr": 0.01, "amsgrad": True}],
    "adamax": [{"lr": 0.01, "betas": [0.8, 0.99], "eps": 1e-6}],
    "nadam": [{"lr": 0.01, "betas": [0.8, 0.99], "eps": 1e-6, "momentum_decay": 0.01}],
}


def parity_cases():
    for kind in ALL_TYPES:
        yield kind, {}
        yield kind, {"weight_decay": 0.1}
        for options in NON_DEFAULT[kind]:
            yield kind, options
            yield kind, dict(options, weight_decay=0.01)


def case_id(case):
    kind, options = case
    return kind + "".join(f"-{k}={v}" for k, v in options.items())


def run_torch(torch, kind, options, params, grads):
    """Apply the gradients with torch.optim; return the parameters after each step.

    The default dtype is float64 meanwhile, so that torch keeps its scalar state (NAdam's
    product of momentum coefficients) in float64 like the parameters, not in float32.
    """
    name, fixed = TORCH_CLASSES[kind]
    old_default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        tensors = {n: torch.tensor(p.copy(), requires_grad=True) for n, p in params.items()}
        opt = getattr(torch.optim, name)(list(tensors.values()), **dict(fixed, **options))
        history = []
        for g in grads:
            for n, tensor in tensors.items():
                tensor.grad = torch.tensor(g[n]) if n in g else None
            opt.step()
            history.append({n: t.detach().numpy().copy() for n, t in tensors.items()})
    finally:
        torch.set_default_dtype(old_default)
    return history


def assert_parity(torch, kind, options, grads):
    """After every step the parameters match PyTorch's to 1e-6.

    The distance travelled (θ_t − θ_0) is compared too, relative to its own size: a small
    update is easily within 1e-6 of a wrong one, but not within 1e-6 of it relatively.
    """
    params = make_params(np.float64)
    start = {name: value.copy() for name, value in params.items()}
    expected = run_torch(torch, kind, options, params, grads)
    opt = make_optimizer(dict(type=kind, **options))
    for step, (g, want) in enumerate(zip(grads, expected), start=1):
        opt.step(params, g)
        for name in params:
            where = f"{kind} {options} step {step} {name}"
            np.testing.assert_allclose(params[name], want[name], rtol=1e-6, atol=1e-6, err_msg=where)
            np.testing.assert_allclose(
                params[name] - start[name], want[name] - start[name], rtol=1e-6, atol=1e-12, err_msg=where
            )


@pytest.mark.parametrize("case", list(parity_cases()), ids=case_id)
def test_parity_with_torch(torch, case):
    kind, options = case
    assert_parity(torch, kind, options, make_grads(10))


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_parity_with_torch_for_tiny_gradients(torch, kind):
    # Gradients near eps in size, so where eps enters the formula matters.
    grads = [{n: 1e-6 * g for n, g in step.items()} for step in make_grads(10, seed=3)]
    assert_parity(torch, kind, {}, grads)


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_parity_with_torch_when_a_param_has_no_grad(torch, kind):
    # PyTorch counts steps per parameter; a parameter without a gradient does not advance.
    grads = make_grads(10, seed=7)
    for step in (2, 3, 6):
        del grads[step]["b"]
    assert_parity(torch, kind, {"weight_decay": 0.01}, grads)


# =============================================================================
# (e) learning-rate schedules
# =============================================================================


def lrs(config, base_lr=1.0, epochs=20):
    schedule = make_schedule(config, base_lr, epochs)
    return [schedule.lr_at(e) for e in range(epochs)]


def test_schedule_closed_forms():
    assert lrs(None, 0.1, 3) == [0.1, 0.1, 0.1]
    assert lrs({"type": "constant"}, 0.1, 3) == [0.1, 0.1, 0.1]
    assert lrs({"type": "step", "step_size": 3, "gamma": 0.5}, 1.0, 7) == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    np.testing.assert_allclose(
        lrs({"type": "multistep", "milestones": [5, 2]}, 1.0, 7), [1, 1, 0.1, 0.1, 0.1, 0.01, 0.01]
    )
    assert lrs({"type": "exponential", "gamma": 0.5}, 2.0, 4) == [2.0, 1.0, 0.5, 0.25]
    cosine = [1.0, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 + math.cos(3 * math.pi / 4)) / 2]
    np.testing.assert_allclose(lrs({"type": "cosine"}, 1.0, 4), cosine)
    schedule = make_schedule({"type": "cosine", "T_max": 4, "eta_min": 0.1}, 1.0, 10)
    assert schedule.lr_at(0) == 1.0
    assert math.isclose(schedule.lr_at(2), 0.55)
    assert math.isclose(schedule.lr_at(4), 0.1)
    assert make_schedule({"type": "step", "step_size": 2}, 1.0, 5).gamma == 0.1


def test_schedule_errors():
    with pytest.raises(ModelError) as info:
        make_schedule({"type": "cosin"}, 0.1, 10)
    assert "did you mean 'cosine'?" in str(info.value) and info.value.key == "type"
    with pytest.raises(ModelError) as info:
        make_schedule({"type": "step", "step": 3}, 0.1, 10)
    assert "did you mean 'step_size'?" in str(info.value) and info.value.key == "step"
    assert "gamma" in str(info.value)
    with pytest.raises(ModelError) as info:
        make_schedule({"type": "step"}, 0.1, 10)
    assert "step_size" in str(info.value)
    for config, key in [
        ({"type": "step", "step_size": 0}, "step_size"),
        ({"type": "step", "step_size": 2.5}, "step_size"),
        ({"type": "exponential", "gamma": "0.9"}, "gamma"),
        ({"type": "multistep", "milestones": 3}, "milestones"),
        ({"type": "cosine", "eta_min": -1}, "eta_min"),
        ({"type": "cosine", "lr": 0.1}, "lr"),
    ]:
        with pytest.raises(ModelError) as info:
            make_schedule(config, 0.1, 10)
        assert info.value.key == key, config
    assert sorted(SCHEDULES) == ["constant", "cosine", "exponential", "multistep", "step"]


TORCH_SCHEDULES = [
    ({"type": "step", "step_size": 3, "gamma": 0.5}, "StepLR", {"step_size": 3, "gamma": 0.5}),
    ({"type": "step", "step_size": 4}, "StepLR", {"step_size": 4}),
    ({"type": "multistep", "milestones": [2, 5, 5, 11]}, "MultiStepLR", {"milestones": [2, 5, 5, 11]}),
    ({"type": "multistep", "milestones": [3, 8], "gamma": 0.3}, "MultiStepLR",
     {"milestones": [3, 8], "gamma": 0.3}),
    ({"type": "exponential", "gamma": 0.9}, "ExponentialLR", {"gamma": 0.9}),
    ({"type": "cosine"}, "CosineAnnealingLR", {"T_max": 20}),
    ({"type": "cosine", "T_max": 7, "eta_min": 0.01}, "CosineAnnealingLR", {"T_max": 7, "eta_min": 0.01}),
]


@pytest.mark.parametrize("config, name, kwargs", TORCH_SCHEDULES, ids=lambda x: str(x))
def test_schedule_parity_with_torch(torch, config, name, kwargs):
    base_lr, epochs = 0.1, 20
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    scheduler = getattr(torch.optim.lr_scheduler, name)(opt, **kwargs)
    expected = []
    for _ in range(epochs):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    np.testing.assert_allclose(lrs(config, base_lr, epochs), expected, rtol=1e-9, atol=1e-12)


# =============================================================================
# the training plan's update (kernels/packed.py) overwrites its own gradient arrays
# =============================================================================


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_consuming_gradients_gives_the_same_update(kind):
    grads = make_grads(3)
    a, b = make_params(), make_params()
    opt_a, opt_b = make_optimizer({"type": kind, "lr": 0.1}), make_optimizer({"type": kind, "lr": 0.1})
    for g in grads:
        kept = {n: v.copy() for n, v in g.items()}
        opt_a.step(a, g)
        np.testing.assert_array_equal(g["W"], kept["W"])  # the plain step: grads untouched
        FlatUpdate(opt_b).step(b, {n: v.copy() for n, v in g.items()})
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_consume_leaves_shared_and_viewed_gradients_alone():
    """A gradient array that two entries share, or that another entry views, is not
    overwritten: each param gets the update of the gradient as it was."""
    shared = np.ones(4)
    base = np.arange(4.0)
    grads = {"a": shared, "b": shared, "c": base, "d": base[:2]}
    params = {name: np.zeros(g.shape) for name, g in grads.items()}
    FlatUpdate(make_optimizer({"type": "sgd", "lr": 0.5})).step(params, grads)
    np.testing.assert_array_equal(params["a"], -0.5 * np.ones(4))
    np.testing.assert_array_equal(params["b"], -0.5 * np.ones(4))
    np.testing.assert_array_equal(params["c"], -0.5 * np.arange(4.0))
    np.testing.assert_array_equal(params["d"], -0.5 * np.arange(2.0))
    np.testing.assert_array_equal(shared, np.ones(4))
    np.testing.assert_array_equal(base, np.arange(4.0))


# =============================================================================
# packed params: one flat update gives what per-parameter updates give
# =============================================================================


@pytest.mark.parametrize("config", ROUND_TRIP_CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_packed_params_update_exactly_like_separate_ones(config):
    """Bit for bit, state included: flat steps, a state_dict round trip, more flat steps,
    then a step where one param has no gradient: from there on the step counts differ and
    the updates run per parameter."""
    grads = make_grads(8)
    grads[3] = {"W": grads[3]["W"]}
    plain = make_params(np.float32)
    packed = pack_params(make_params(np.float32))
    assert isinstance(packed, PackedParams)
    a, b = make_optimizer(config), make_optimizer(config)
    flat = FlatUpdate(b)
    for i, g in enumerate(grads):
        a.step(plain, dict(g))
        flat.step(packed, dict(g))
        assert (flat._flat is not None) == (i < 3), i  # flat until the gradient goes missing
        if i == 1:
            b.load_state_dict(b.state_dict())
        for name in plain:
            np.testing.assert_array_equal(plain[name], packed[name], err_msg=f"step {i} {name}")
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)


def test_packing_ends_when_an_entry_is_replaced_and_updates_go_on():
    packed = pack_params(make_params(np.float32))
    assert packed.intact()
    packed["b"][...] = 1.0  # writing into a param keeps the packing
    assert packed.intact() and packed.flat[-4:].tolist() == [1.0] * 4
    packed["b"] = np.zeros(4, np.float32)  # replacing one ends it
    assert not packed.intact()
    flat = FlatUpdate(make_optimizer({"type": "sgd", "lr": 0.5}))
    flat.step(packed, {"W": np.ones((3, 4)), "b": np.ones(4)})
    np.testing.assert_array_equal(packed["b"], -0.5 * np.ones(4))
    assert flat._flat is None


def test_packing_ends_when_an_entry_is_added_or_removed():
    packed = pack_params(make_params(np.float32))
    packed["extra"] = np.zeros(2, np.float32)
    assert not packed.intact()
    packed = pack_params(make_params(np.float32))
    b = packed.pop("b")
    assert not packed.intact()
    packed["b"] = b  # the same view back, in the same place: packed again
    assert packed.intact()


def test_params_of_mixed_dtypes_stay_separate():
    params = {"W": np.zeros((2, 2), np.float32), "n": np.zeros(2, np.float64)}
    assert pack_params(params) is params
