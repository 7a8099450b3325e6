"""The training plan's kernels and its early release change speed and memory, never results.

Every fusion is compared with the plain chain it replaces on ordinary inputs and on extreme
ones: saturated logits, ties and zeros in every pooling window, huge and tiny magnitudes,
float32 and float64 (``test_fused_plan_equals_plain_at_the_extremes``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from minigraph import kernels
from minigraph.engine import Executor, init_params
from minigraph.api import load_graph

ROOT = Path(__file__).resolve().parent.parent


def training_executor(graph, dtype="float32", **kw):
    """The training plan: the plain rules rewritten with the kernels."""
    return Executor(graph, dtype=dtype, rewrites=kernels.training_rewrites(True), **kw)


def mlp(loss="cross_entropy", activation="relu"):
    nodes = [
        {"name": "fc1", "op": "linear", "inputs": ["x"], "outputs": ["h1"], "attrs": {"units": 16}},
        {"name": "act", "op": activation, "inputs": ["h1"], "outputs": ["a1"]},
        {"name": "fc2", "op": "linear", "inputs": ["a1"], "outputs": ["z"], "attrs": {"units": 5}},
    ]
    if loss == "cross_entropy":
        nodes.append({"name": "ce", "op": "cross_entropy", "inputs": ["z", "y"], "outputs": ["L"]})
        outputs = ["z"]
    else:
        nodes += [{"name": "lsm", "op": "log_softmax", "inputs": ["z"], "outputs": ["logp"]},
                  {"name": "nll", "op": "nll", "inputs": ["logp", "y"], "outputs": ["L"]}]
        outputs = ["logp"]
    return {"minigraph": 1, "name": "mlp",
            "inputs": {"x": {"shape": ["batch", 8]}, "y": {"shape": ["batch"], "dtype": "int64"}},
            "nodes": nodes, "outputs": outputs, "loss": "L"}


def feeds_for(graph, seed=0):
    rng = np.random.default_rng(seed)
    if graph.name == "cnn":
        return {"x": rng.standard_normal((3, 2, 8, 8)), "y": rng.integers(0, 5, 3)}
    if graph.name == "cnn2":  # blank areas and small integers, as in MNIST: pools see ties
        x = rng.integers(0, 3, (3, 2, 8, 8)).astype(float)
        x[:, :, :4] = 0
        return {"x": x, "y": rng.integers(0, 5, 3)}
    if graph.name == "flat":
        return {"x": rng.standard_normal((3, 2, 4, 6)), "y": rng.integers(0, 5, 3)}
    if "y" in graph.inputs:
        return {"x": rng.standard_normal((6, 8)), "y": rng.integers(0, 5, 6)}
    return {"x": np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float),
            "t": np.array([[0], [1], [1], [0]], float)}


CASES = {
    "xor": (lambda: load_graph(ROOT / "models" / "xor.yaml"),
            ["fc1+bias1+act1", "fc2+bias2+act2+loss"]),
    "mlp_cross_entropy": (lambda: load_graph(mlp()),
                          ["fc1.matmul+fc1.add+act", "fc2.matmul+fc2.add", "ce"]),
    "mlp_tanh": (lambda: load_graph(mlp(activation="tanh")),
                 ["fc1.matmul+fc1.add+act", "fc2.matmul+fc2.add", "ce"]),
    "mlp_sigmoid": (lambda: load_graph(mlp(activation="sigmoid")),
                    ["fc1.matmul+fc1.add+act", "fc2.matmul+fc2.add", "ce"]),
    "mlp_log_softmax_nll": (lambda: load_graph(mlp("nll")),
                            ["fc1.matmul+fc1.add+act", "fc2.matmul+fc2.add", "lsm+nll"]),
    "cnn": (lambda: load_graph(cnn()),
            ["c1.conv2d+r1+p1", "c2.conv2d", "r2", "p2", "fl+fc.matmul+fc.add", "ce"]),
    "cnn_fused_twice_with_ties": (
        lambda: load_graph(cnn(second_pool={"kernel": 2}, name="cnn2")),
        ["c1.conv2d+r1+p1", "c2.conv2d+r2+p2", "fl+fc.matmul+fc.add", "ce"]),
    "flatten_linear_of_the_data": (lambda: load_graph(image_classifier()),
                                   ["fl+fc.matmul+fc.add", "ce"]),
    "flatten_linear_of_an_avgpool": (lambda: load_graph(image_classifier(pooled=True)),
                                     ["c.conv2d", "p", "fl+fc.matmul+fc.add", "ce"]),
}


def cnn(second_pool=None, name="cnn"):
    """conv-relu-pool that fuses, then one whose overlapping pool (kernel 3, stride 1) does not
    (or does, with ``second_pool={"kernel": 2}``: then the second fused conv reads the first
    one's channels-last output)."""
    return {"minigraph": 1, "name": name,
            "inputs": {"x": {"shape": ["batch", 2, 8, 8]},
                       "y": {"shape": ["batch"], "dtype": "int64"}},
            "nodes": [
                {"name": "c1", "op": "conv", "inputs": ["x"], "outputs": ["z1"],
                 "attrs": {"filters": 3, "kernel": 3, "padding": 1}},
                {"name": "r1", "op": "relu", "inputs": ["z1"], "outputs": ["a1"]},
                {"name": "p1", "op": "maxpool2d", "inputs": ["a1"], "outputs": ["q1"],
                 "attrs": {"kernel": 2}},
                {"name": "c2", "op": "conv", "inputs": ["q1"], "outputs": ["z2"],
                 "attrs": {"filters": 4, "kernel": 3, "padding": 1}},
                {"name": "r2", "op": "relu", "inputs": ["z2"], "outputs": ["a2"]},
                {"name": "p2", "op": "maxpool2d", "inputs": ["a2"], "outputs": ["q2"],
                 "attrs": second_pool or {"kernel": 3, "stride": 1}},
                {"name": "fl", "op": "flatten", "inputs": ["q2"], "outputs": ["v"]},
                {"name": "fc", "op": "linear", "inputs": ["v"], "outputs": ["z"],
                 "attrs": {"units": 5}},
                {"name": "ce", "op": "cross_entropy", "inputs": ["z", "y"], "outputs": ["L"]}],
            "outputs": ["z"], "loss": "L"}


def image_classifier(pooled=False):
    """flatten -> linear on the data or (``pooled``) on an average pool's output of a
    convolution: both (N, C, H, W) in C order, not channels-last; the second needs dx."""
    first = [{"name": "fl", "op": "flatten", "inputs": ["x"], "outputs": ["v"]}]
    if pooled:
        first = [{"name": "c", "op": "conv", "inputs": ["x"], "outputs": ["a"],
                  "attrs": {"filters": 3, "kernel": 3, "padding": 1}},
                 {"name": "p", "op": "avgpool2d", "inputs": ["a"], "outputs": ["q"],
                  "attrs": {"kernel": 2}},
                 {"name": "fl", "op": "flatten", "inputs": ["q"], "outputs": ["v"]}]
    return {"minigraph": 1, "name": "flat",
            "inputs": {"x": {"shape": ["batch", 2, 4, 6]},
                       "y": {"shape": ["batch"], "dtype": "int64"}},
            "nodes": [
                *first,
                {"name": "fc", "op": "linear", "inputs": ["v"], "outputs": ["z"],
                 "attrs": {"units": 5}},
                {"name": "ce", "op": "cross_entropy", "inputs": ["z", "y"], "outputs": ["L"]}],
            "outputs": ["z"], "loss": "L"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_plan_gives_the_same_values_and_gradients(case):
    make, expected_steps = CASES[case]
    graph = make()
    fused = training_executor(graph, "float64")
    plain = Executor(graph, dtype="float64")
    assert [s.name for s in fused.steps] == expected_steps
    params = init_params(graph, 3, dtype="float64")
    feeds = feeds_for(graph)
    a = fused.forward(params, feeds, keep_values=False)
    b = plain.forward(params, feeds)
    for t in graph.outputs + [graph.loss]:
        np.testing.assert_allclose(a.values[t], b.values[t], rtol=1e-12, atol=1e-12)
    ga = fused.backward(a, keep_all=False)
    gb = plain.backward(b, keep_all=False)
    assert set(ga) == set(gb) == set(graph.params)
    for name in ga:
        np.testing.assert_allclose(ga[name], gb[name], rtol=1e-10, atol=1e-12)


def test_released_values_are_gone_and_kept_ones_stay():
    graph = load_graph(mlp())
    ex = training_executor(graph)
    run = ex.forward(init_params(graph), feeds_for(graph), keep_values=False)
    assert "a1" not in run.values and "h1" not in run.values  # intermediates released
    assert {"z", "L", "x", "y"} <= set(run.values)  # outputs, loss and data stay
    ex.backward(run, keep_all=False)
    assert all(ctx is None for ctx in run.ctxs.values())  # saved tensors released too


def test_requested_gradients_prevent_fusion():
    graph = load_graph(ROOT / "models" / "xor.yaml")
    ex = training_executor(graph, wrt="all")
    assert [s.name for s in ex.steps] == [n.name for n in graph.nodes]


def test_gradient_work_is_pruned_to_what_reaches_a_param():
    graph = load_graph(mlp())
    ex = training_executor(graph)
    first = ex.steps[0]
    assert first.needs == (False, True, True)  # no gradient for the data x


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_backward_leaves_kept_values_alone(activation):
    """A fused step may compute its gradient over its own output only when the pass released
    values; with keep_values every value stays as forward left it."""
    graph = load_graph(mlp(activation=activation))
    fused = training_executor(graph, "float64")
    params = init_params(graph, 3, dtype="float64")
    run = fused.forward(params, feeds_for(graph))
    before = {t: v.copy() for t, v in run.values.items()}
    fused.backward(run, keep_all=False)
    for t, v in before.items():
        np.testing.assert_array_equal(run.values[t], v, err_msg=t)
    assert "a1" in before  # the fused linear+activation output is among them


# ==== extreme inputs ==============================================================================

def extreme_feeds(graph, kind, dtype):
    """Feeds that push every op to its edge: huge inputs (saturated sigmoid/tanh/softmax),
    tiny ones, exact zeros and ties (every pooling window tied), mixed signs."""
    feeds = feeds_for(graph)
    x = np.asarray(feeds["x"], dtype=np.float64)
    if kind == "huge":
        x = np.sign(x + 0.5) * 1e3
    elif kind == "tiny":
        x = x * 1e-30
    elif kind == "zeros":
        x = np.zeros_like(x)
    elif kind == "ties":
        x = np.where(x > 0, 1.0, -1.0)  # every window holds equal values
    return {**feeds, "x": x.astype(dtype)}


def scaled_params(graph, scale, dtype):
    params = init_params(graph, 3, dtype="float64")
    return {k: (v * scale).astype(dtype) for k, v in params.items()}


def assert_close(a, b, dtype, what, scale=0.0):
    """Equal to rounding: NaN and inf in the same places, finite values within a relative
    tolerance of the dtype, and an absolute one relative to ``scale`` (the size of the terms
    a sum such as a bias gradient cancels: rounding is relative to them, not to the sum)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert np.array_equal(np.isnan(a), np.isnan(b)), what
    assert np.array_equal(np.isinf(a), np.isinf(b)) and np.array_equal(a[np.isinf(a)],
                                                                          b[np.isinf(b)]), what
    finite = np.isfinite(a)
    rtol = 2e-5 if dtype == "float32" else 1e-10
    scale = max(scale, float(np.abs(b[finite]).max(initial=0.0)), 1e-30)
    np.testing.assert_allclose(a[finite], b[finite], rtol=rtol, atol=rtol * scale, err_msg=what)


def largest(a):
    a = np.asarray(a, np.float64)
    return float(np.abs(a[np.isfinite(a)]).max(initial=0.0))


def term_scale(graph, param, run, grads):
    """How large the terms are that param's gradient sums: for each node reading it, the
    largest gradient of its output times the largest value of its other inputs."""
    scale = 0.0
    for node in graph.consumers(param):
        others = [largest(run.values[t]) for t in node.inputs if t != param]
        g = grads.get(node.outputs[0])
        if g is not None:
            scale = max(scale, largest(g) * max([1.0] + others))
    return scale


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scale", [1.0, 30.0, 100.0])
@pytest.mark.parametrize("kind", ["ordinary", "huge", "tiny", "zeros", "ties"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_plan_equals_plain_at_the_extremes(case, kind, scale, dtype):
    graph = CASES[case][0]()
    fused = training_executor(graph, dtype)
    plain = Executor(graph, dtype=dtype)
    params = scaled_params(graph, scale, dtype)
    feeds = extreme_feeds(graph, "ordinary" if kind == "ordinary" else kind, dtype)
    with np.errstate(all="ignore"):
        a = fused.forward({k: v.copy() for k, v in params.items()}, feeds, keep_values=False)
        b = plain.forward(params, feeds)
        for t in graph.outputs + [graph.loss]:
            assert_close(a.values[t], b.values[t], dtype, t)
        ga = fused.backward(a, keep_all=False)
        gb = plain.backward(b)
    for name in graph.params:
        assert_close(ga[name], gb[name], dtype, f"d{graph.loss}/d{name}",
                     term_scale(graph, name, b, gb))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_plan_applies_the_gradient_that_is_drawn(dtype):
    """The probe of the design review: matmul -> sigmoid -> bce at saturation.  What the
    trainer applies (fused plan) is what Model, check and render --grads show (plain)."""
    graph = load_graph({
        "minigraph": 1, "name": "probe",
        "inputs": {"x": {"shape": ["batch", 1]}, "t": {"shape": ["batch", 1]}},
        "params": {"w": {"shape": [1, 1], "init": {"value": [[1.0]]}}},
        "nodes": [{"name": "mm", "op": "matmul", "inputs": ["x", "w"], "outputs": ["z"]},
                  {"name": "s", "op": "sigmoid", "inputs": ["z"], "outputs": ["y"]},
                  {"name": "l", "op": "bce", "inputs": ["y", "t"], "outputs": ["L"]}],
        "outputs": ["y"], "loss": "L"})
    feeds = {"x": np.array([[30.0], [-30.0], [-18.0], [20.0]]),
             "t": np.array([[0.0], [1.0], [1.0], [0.0]])}
    params = {"w": np.ones((1, 1), dtype=dtype)}
    runs = []
    for fuse in (True, False):
        ex = training_executor(graph, dtype) if fuse else Executor(graph, dtype=dtype)
        with np.errstate(all="ignore"):
            run = ex.forward(params, feeds, keep_values=not fuse)
            runs.append((float(run.values["L"]), float(ex.backward(run)["w"][0, 0])))
    assert runs[0] == pytest.approx(runs[1], rel=1e-6)


# ==== faster implementations of single ops ========================================================

from minigraph.kernels.blas import sigmoid_in_place, sum_leading  # noqa: E402
from minigraph.kernels.context import KernelContext  # noqa: E402
from minigraph.kernels.conv_nhwc import Conv2DChannelsLast, PoolTiles  # noqa: E402
from minigraph.kernels.losses import CrossEntropyRows  # noqa: E402
from minigraph.kernels.memory import Workspace  # noqa: E402
from minigraph.ops import Context, get_op  # noqa: E402
from minigraph.ops.activation import stable_sigmoid  # noqa: E402

KINDS = ["ordinary", "huge", "tiny", "zeros", "ties", "saturated"]


def extremes(shape, kind, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    x = {"ordinary": x, "huge": np.sign(x) * 1e3, "tiny": x * 1e-30, "zeros": 0 * x,
         "ties": np.where(x > 0, 1.0, -1.0), "saturated": np.sign(x) * 50.0}[kind]
    return x.astype(dtype)


def run_both(plain_op, kernel_op, xs, workspace=None):
    """(forward, gradients) of the plain op and of the kernel on the same inputs."""
    out = []
    for op, ctx in ((plain_op, Context(needs_input_grad=(True,) * len(xs))),
                    (kernel_op, KernelContext(needs_input_grad=(True,) * len(xs),
                                              workspace=workspace))):
        y = op.forward(ctx, *xs)
        gy = np.random.default_rng(5).standard_normal(np.shape(y)).astype(y.dtype)
        out.append((np.array(y), [None if g is None else np.array(g)
                                  for g in op.backward(ctx, gy)]))
    return out


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("attrs", [{}, {"padding": 1}, {"stride": 2, "padding": 1}])
def test_channels_last_conv_equals_the_plain_conv(attrs, layout, kind, dtype):
    x = extremes((2, 3, 6, 5), kind, dtype)
    if layout == "channels_last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    w = extremes((4, 3, 3, 3), "ordinary", dtype, 1)
    b = extremes((4,), "ordinary", dtype, 2)
    plain = get_op("conv2d")(**attrs)
    (ya, ga), (yb, gb) = run_both(plain, Conv2DChannelsLast(plain), [x, w, b], Workspace())
    assert yb.transpose(0, 2, 3, 1).flags.c_contiguous  # (N, O, H, W) stored (N, H, W, O)
    scale = largest(x) * float(np.abs(w).sum()) + largest(b)
    assert_close(yb, ya, dtype, "y", scale)
    for i, (a, b_) in enumerate(zip(ga, gb)):
        assert_close(b_, a, dtype, f"grad {i}", scale * 50)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", KINDS + ["nan"])
@pytest.mark.parametrize("k", [2, 3])
def test_tiled_max_pool_equals_the_plain_rule(k, kind, dtype):
    x = extremes((2, 3, 2 * k, 3 * k), "ties" if kind == "nan" else kind, dtype)
    if kind == "nan":
        x[0, 0, 0, 0] = x[1, 2, 1, 1] = np.nan
    plain = get_op("maxpool2d")(kernel=k)
    ctx = Context(needs_input_grad=(True,))
    y = plain.forward(ctx, x)
    gy = np.random.default_rng(3).standard_normal(y.shape).astype(dtype)
    (g,) = plain.backward(ctx, gy)
    tiles, kctx = PoolTiles(k), KernelContext(needs_input_grad=(True,))
    m = tiles.forward_tiles(kctx, x)
    np.testing.assert_array_equal(m, y)  # NaN where NaN
    np.testing.assert_array_equal(tiles.backward_tiles(kctx, x, m, gy), g)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_rows_equals_the_plain_rule(reduction, kind, dtype):
    logits = extremes((6, 5), kind, dtype)
    labels = np.array([0, 4, 2, 2, 1, 3])
    plain = get_op("cross_entropy")(reduction=reduction)
    (ya, ga), (yb, gb) = run_both(plain, CrossEntropyRows(plain), [logits, labels])
    assert_close(yb, ya, dtype, "loss", 6 * (largest(logits) + 1))
    assert_close(gb[0], ga[0], dtype, "dlogits", 1.0)
    assert ga[1] is None and gb[1] is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", KINDS)
def test_blas_helpers_equal_the_plain_numpy(kind, dtype):
    x = extremes((7, 3, 4), kind, dtype)
    assert_close(sum_leading(x, 1), x.sum(axis=0), dtype, "over rows", largest(x) * 7)
    assert_close(sum_leading(x, 2), x.sum(axis=(0, 1)), dtype, "over 2 axes", largest(x) * 21)
    z = extremes((5, 4), kind, dtype) * 20
    np.testing.assert_array_equal(sigmoid_in_place(z), stable_sigmoid(z))  # the same bits
    np.testing.assert_array_equal(sigmoid_in_place(z.copy(), own=True), stable_sigmoid(z))


def test_backward_writes_param_gradients_into_the_flat_update_buffer():
    """After the first step, the fused linear layers write dW and db straight into the
    optimizer's flat gradient buffer (no copy), and training equals the per-param path."""
    from minigraph.data import DataSplits
    from minigraph.train import Trainer, train_config

    graph = load_graph(ROOT / "models" / "xor.yaml")
    feeds = feeds_for(graph)
    results = []
    for use in (True, False):
        trainer = Trainer(graph, train_config(graph, {"batch_size": None}),
                          DataSplits(train=feeds, test=None), use_kernels=use)
        batch = trainer.executor.check_feeds(feeds)[0]
        losses = [trainer.train_step(batch)[0] for _ in range(3)]
        results.append((losses, {k: v.copy() for k, v in trainer.params.items()}))
        if use:
            views = dict(zip(trainer.update._flat.names, trainer.update._flat.views))
            kernels = trainer.executor.rewrites[0]
            assert set(kernels.grad_buffers) == set(graph.params)
            written = [into[i] for into, i, _ in kernels._slots]
            assert len(written) == 4 and all(any(w is v for v in views.values())
                                             for w in written)
    (on, p_on), (off, p_off) = results
    np.testing.assert_allclose(on, off, rtol=1e-6)
    for name in p_on:
        np.testing.assert_allclose(p_on[name], p_off[name], rtol=1e-5, atol=1e-7)


# ==== kernels off: the plain rules train to the same results ======================================

SMALL_MODELS = sorted(p.name for p in (ROOT / "models").glob("*.yaml")
                      if "dataset:" not in p.read_text()  # the MNIST ones train for minutes
                      and "\ntrain:" in p.read_text())   # the others run one plain pass


@pytest.mark.parametrize("model", SMALL_MODELS)
def test_kernels_off_trains_to_the_same_results(model, monkeypatch):
    from minigraph.api import run_model

    results = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("MINIGRAPH_KERNELS", flag)
        with np.errstate(all="ignore"):
            result = run_model(ROOT / "models" / model)  # the lesson, as written
        assert result.trainer.kernels == (flag == "1")
        results[flag] = result
    on, off = results["1"], results["0"]
    assert len(on.history.records) == len(off.history.records)
    # float32 rounding differs in its last bits; early epochs agree to that ...
    for a, b in zip(on.history.records[:10], off.history.records[:10]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-7)
    # ... and where a lesson escapes a plateau a step sooner or later, the lesson's results
    # (final loss, metrics, params) still agree
    last_on, last_off = on.history.last, off.history.last
    assert last_on["loss"] == pytest.approx(last_off["loss"], rel=1e-2, abs=1e-6)
    for key in last_on:
        if key not in ("loss", "seconds", "lr", "epoch"):
            assert last_on[key] == pytest.approx(last_off[key], rel=1e-2, abs=1e-3), key
    for name, value in on.trainer.params.items():
        scale = float(np.abs(off.trainer.params[name]).max()) + 1e-3
        np.testing.assert_allclose(value, off.trainer.params[name], rtol=1e-2, atol=3e-3 * scale,
                                   err_msg=f"{model}: {name}")


def test_kernels_switch_is_checked(monkeypatch):
    from minigraph.errors import MinigraphError

    monkeypatch.setenv("MINIGRAPH_KERNELS", "maybe")
    with pytest.raises(MinigraphError, match="MINIGRAPH_KERNELS must be 1 or 0"):
        kernels.enabled()
    assert kernels.enabled(False) is False and kernels.training_rewrites(False) == ()
