"""Tests of the op library: every registered op against a NumPy reference and against
central differences (the cases live in ``op_cases.py``), plus shape rules and special cases."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from minigraph.errors import DataError
from minigraph.kernels.context import KernelContext
from minigraph.kernels.conv_nhwc import PoolTiles
from minigraph.ops import REGISTRY, ShapeError, get_op
from minigraph.ops.base import AttrError

from op_cases import CASES, all_cases, gradient_check, make_ctx, run_op

# Ops that may be registered without cases.  Keep it empty: a new built-in op needs cases.
# Ops that other tests register (with ``register_op`` or from a test module) are not built-in:
# ``builtin_ops`` leaves out classes defined outside the op families of ``minigraph.ops``.
NO_CASES_NEEDED: set[str] = set()
NOT_BUILTIN_MODULES = ("minigraph.ops.custom",)

PARAMS = [pytest.param(name, case, id=cid) for name, case, cid in all_cases()]


def builtin_ops():
    return sorted(name for name, cls in REGISTRY.items()
                  if cls.__module__.startswith("minigraph.ops.")
                  and cls.__module__ not in NOT_BUILTIN_MODULES)


# ==== the table, run four ways ====================================================================

def test_every_registered_op_has_cases():
    missing = [n for n in builtin_ops() if n not in NO_CASES_NEEDED and not CASES.get(n)]
    assert not missing, f"ops without cases in tests/op_cases.py: {missing}"
    unknown = sorted(set(CASES) - set(builtin_ops()))
    assert not unknown, f"cases for ops that are not registered: {unknown}"


@pytest.mark.parametrize("name, case", PARAMS)
def test_forward_matches_numpy(name, case):
    _, _, y = run_op(name, case.inputs, case.attrs, case.training)
    expected = case.ref(*case.inputs)
    assert np.shape(y) == np.shape(expected)
    np.testing.assert_allclose(y, expected, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("name, case", PARAMS)
def test_backward_matches_central_differences(name, case):
    if not get_op(name).differentiable:
        op, ctx, _ = run_op(name, case.inputs, case.attrs, case.training)
        assert op.backward(ctx, np.ones(1)) == (None,) * len(case.inputs)
        return
    gradient_check(name, case.inputs, case.attrs, case.wrt(), case.training)


@pytest.mark.parametrize("name, case", PARAMS)
def test_infer_matches_forward(name, case):
    op, _, y = run_op(name, case.inputs, case.attrs, case.training)
    assert op.infer(*[x.shape for x in case.inputs]) == np.shape(y)


@pytest.mark.parametrize("name, case", PARAMS)
def test_float32_stays_float32(name, case):
    xs = [x.astype(np.float32) if x.dtype.kind == "f" else x for x in case.inputs]
    op, ctx, y = run_op(name, xs, case.attrs, case.training)
    assert y.dtype == np.float32
    for g in op.backward(ctx, np.ones(y.shape, np.float32)):
        assert g is None or g.dtype == np.float32


# ==== shape rules =================================================================================

def infer(name, *shapes, **attrs):
    return get_op(name)(**attrs).infer(*shapes)


def test_matmul_mismatch_names_both_shapes():
    with pytest.raises(ShapeError, match=r"inner dimensions differ: \(batch, 3\) @ \(4, 1\)"):
        infer("matmul", ("batch", 3), (4, 1))


def test_matmul_symbolic_and_batched():
    assert infer("matmul", ("batch", 3), (3, 1)) == ("batch", 1)
    assert infer("matmul", (2, 1, "n", 4), (5, 4, 6)) == (2, 5, "n", 6)
    with pytest.raises(ShapeError, match="batch dimensions"):
        infer("matmul", (2, 3, 4), (5, 4, 6))


def test_broadcast_failure_names_both_shapes():
    with pytest.raises(ShapeError, match=r"\(3, 4\) and \(5\)"):
        infer("add", (3, 4), (5,))


def test_reshape_with_symbolic_batch():
    assert infer("reshape", ("batch", 64, 7, 7), shape=[-1, 3136]) == ("batch", 3136)
    assert infer("reshape", ("batch", 6), shape=[-1, 3]) == (None, 3)  # batch * 2: no name
    assert infer("reshape", (2, 6), shape=[-1, 4]) == (3, 4)
    with pytest.raises(ShapeError, match="not a multiple"):
        infer("reshape", (5, 7), shape=[-1, 4])
    with pytest.raises(ShapeError):
        infer("reshape", (2, 6), shape=[5, 2])
    with pytest.raises(AttrError):
        get_op("reshape")(shape=[-1, -1])


def test_flatten_concat_transpose_shapes():
    assert infer("flatten", ("batch", 64, 7, 7)) == ("batch", 3136)
    assert infer("concat", ("batch", 3), ("batch", 5)) == ("batch", 8)
    assert infer("concat", (2, 3), ("n", 3), axis=0) == (None, 3)
    with pytest.raises(ShapeError, match=r"\(2, 3\), \(4, 3\)"):
        infer("concat", (2, 3), (4, 3))
    assert infer("transpose", ("batch", 3, 4), perm=[0, 2, 1]) == ("batch", 4, 3)
    with pytest.raises(ShapeError):
        infer("transpose", (2, 3), perm=[0, 0])


def test_conv_and_pool_shapes():
    assert infer("conv2d", ("batch", 1, 28, 28), (8, 1, 3, 3), (8,), padding=1) == \
        ("batch", 8, 28, 28)
    assert infer("conv2d", ("batch", 3, 28, 28), (8, 3, 3, 3), stride=2) == ("batch", 8, 13, 13)
    assert infer("maxpool2d", ("batch", 8, 28, 28), kernel=2) == ("batch", 8, 14, 14)
    assert infer("avgpool2d", ("batch", 8, 7, 7), kernel=3, stride=2, padding=1) == \
        ("batch", 8, 4, 4)
    with pytest.raises(ShapeError) as err:
        infer("conv2d", ("batch", 3, 28, 28), (8, 1, 3, 3))
    message = str(err.value)
    assert "input has 3 channels but weight expects 1" in message
    assert "(batch, 3, 28, 28)" in message and "(8, 1, 3, 3)" in message
    with pytest.raises(ShapeError, match="bias"):
        infer("conv2d", ("batch", 1, 28, 28), (8, 1, 3, 3), (4,))
    with pytest.raises(ShapeError, match="larger than the padded input"):
        infer("maxpool2d", (1, 1, 2, 2), kernel=3, padding=0)


def test_reduction_and_loss_shapes():
    assert infer("sum", ("batch", 3, 4), axis=[1, 2]) == ("batch",)
    assert infer("max", ("batch", 3), axis=-1, keepdims=True) == ("batch", 1)
    assert infer("cross_entropy", ("batch", 10), ("batch",)) == ()
    assert infer("cross_entropy", ("batch", 10), ("batch", 10)) == ()
    with pytest.raises(ShapeError, match="labels"):
        infer("cross_entropy", ("batch", 10), ("batch", 3))
    with pytest.raises(ShapeError, match="same shape"):
        infer("mse", ("batch", 1), ("batch",))


def test_attribute_checks():
    with pytest.raises(AttrError):
        get_op("mse")(reduction="avg")
    with pytest.raises(AttrError):
        get_op("maxpool2d")(kernel=2, padding=2)
    with pytest.raises(AttrError):
        get_op("maxpool2d")()  # kernel is required
    with pytest.raises(AttrError):
        get_op("dropout")(p=1.0)
    assert get_op("concat")().axis == -1
    assert get_op("avgpool2d")(kernel=3).stride is None


# ==== special cases ===============================================================================

def test_max_splits_gradient_among_ties():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, -1.0]])
    op, ctx, y = run_op("max", [x], {"axis": 1})
    np.testing.assert_array_equal(y, [3.0, 2.0])
    (g,) = op.backward(ctx, np.array([1.0, 1.0]))
    np.testing.assert_array_equal(g, [[0, 0.5, 0.5], [1, 0, 0]])


def test_maxpool_gives_the_whole_gradient_to_the_first_of_tied_maxima():
    x = np.ones((1, 1, 2, 2))
    op, ctx, _ = run_op("maxpool2d", [x], {"kernel": 2})
    (g,) = op.backward(ctx, np.full((1, 1, 1, 1), 3.0))
    np.testing.assert_array_equal(g, [[[[3.0, 0.0], [0.0, 0.0]]]])  # PyTorch, Caffe, ONNX


def test_maxpool_never_sends_the_gradient_into_the_padding():
    # every value is -inf, like the padding: the first real pixel of each window is chosen
    x = np.full((1, 1, 3, 3), -np.inf)
    op, ctx, y = run_op("maxpool2d", [x], {"kernel": 2, "stride": 2, "padding": 1})
    (g,) = op.backward(ctx, np.ones(y.shape))
    np.testing.assert_array_equal(g, [[[[1, 1, 0], [1, 1, 0], [0, 0, 0]]]])


def test_stable_at_extreme_inputs():
    x = np.array([[-1000.0, 0.0, 1000.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings either
        for name in ("sigmoid", "softplus", "swish", "softmax", "log_softmax"):
            assert np.isfinite(run_op(name, [x])[2]).all(), name
        np.testing.assert_allclose(run_op("sigmoid", [x])[2], [[0, 0.5, 1]])
        np.testing.assert_allclose(run_op("softmax", [x])[2], [[0, 0, 1]])
        loss = run_op("cross_entropy", [x, np.array([0])])[2]
        np.testing.assert_allclose(loss, 2000.0)
        loss = run_op("bce_with_logits", [x, np.array([[1.0, 1.0, 0.0]])])[2]
        np.testing.assert_allclose(loss, 2000.0 / 3 + np.log(2) / 3)
    with np.errstate(divide="ignore"):  # ln 0 = -inf, clamped at -100 as in PyTorch
        loss = run_op("bce", [np.array([0.0, 1.0]), np.array([1.0, 1.0])])[2]
    np.testing.assert_allclose(loss, 100.0 / 2)


def test_conv2d_skips_input_gradient_when_not_needed():
    x, w, b = np.ones((1, 1, 4, 4)), np.ones((2, 1, 3, 3)), np.zeros(2)
    op = get_op("conv2d")()
    ctx = make_ctx(3)
    ctx.needs_input_grad = (False, True, True)
    y = op.forward(ctx, x, w, b)
    dx, dw, db = op.backward(ctx, np.ones_like(y))
    assert dx is None and dw.shape == w.shape and db.shape == b.shape
    np.testing.assert_array_equal(db, [4.0, 4.0])


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.uint64])
def test_class_labels_out_of_range_are_refused_for_every_integer_type(dtype):
    """One reduction checks both ends (labels seen as unsigned): negative ones too."""
    logits = np.zeros((3, 4))
    bad = [0, -1, 2] if np.dtype(dtype).kind == "i" else [0, 4, 2]
    for op in ("cross_entropy", "nll"):
        with pytest.raises(DataError, match=r"0\.\.3, got values from"):
            run_op(op, [logits, np.array(bad, dtype)])
        run_op(op, [logits, np.array([0, 3, 2], dtype)])  # the ends themselves are fine


def test_class_labels_are_checked():
    logits = np.zeros((2, 3))
    with pytest.raises(DataError, match=r"0\.\.2"):
        run_op("cross_entropy", [logits, np.array([0, 3])])
    with pytest.raises(DataError, match="whole numbers"):
        run_op("nll", [logits, np.array([0.5, 1.0])])
    # float labels holding whole numbers (as read from a CSV file) are class indices
    loss = run_op("cross_entropy", [logits, np.array([0.0, 2.0])])[2]
    np.testing.assert_allclose(loss, np.log(3))
    op, ctx, _ = run_op("cross_entropy", [logits, np.array([0, 2])])
    assert op.backward(ctx, np.array(1.0))[1] is None  # index labels get no gradient


def test_dropout_is_identity_at_eval():
    x = np.random.default_rng(1).standard_normal((50, 40))
    op, ctx, y = run_op("dropout", [x], {"p": 0.5}, training=False)
    assert y is x
    gy = np.ones_like(x)
    assert op.backward(ctx, gy)[0] is gy


def test_dropout_at_train_keeps_the_mean_and_reuses_its_mask():
    x = np.ones((200, 100))
    op, ctx, y = run_op("dropout", [x], {"p": 0.3}, training=True)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02             # about 1 - p of the values survive
    np.testing.assert_allclose(y[kept], 1 / 0.7)      # ... scaled by 1 / (1 - p)
    assert abs(y.mean() - 1.0) < 0.03                 # so the mean is preserved
    gy = np.random.default_rng(2).standard_normal(x.shape)
    (g,) = op.backward(ctx, gy)
    np.testing.assert_allclose(g, gy * y)             # same mask (x = 1: y is the scaled mask)
    _, _, y_again = run_op("dropout", [x], {"p": 0.3}, training=True)
    np.testing.assert_array_equal(y, y_again)         # the seeded generator decides the mask


def ref_maxpool_grad(x, gy, k):
    """dL/dx of a k x k, stride-k max pool by loops: each window's gy goes to its first
    maximum in row-major order (np.argmax picks the first)."""
    g = np.zeros_like(x)
    n, c, oh, ow = gy.shape
    for i, j, r, s in np.ndindex(n, c, oh, ow):
        window = x[i, j, r * k:(r + 1) * k, s * k:(s + 1) * k]
        a, b = divmod(int(np.argmax(window)), k)
        g[i, j, r * k + a, s * k + b] += gy[i, j, r, s]
    return g


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("ties", [True, False])
def test_maxpool_plain_and_tiled_backward_follow_the_definition(layout, k, ties):
    rng = np.random.default_rng(0)
    shape = (2, 3, 2 * k, 3 * k)
    x = rng.integers(0, 3, size=shape).astype(float) if ties else rng.standard_normal(shape)
    if layout == "channels_last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    op, ctx, y = run_op("maxpool2d", [x], {"kernel": k})
    gy = rng.standard_normal(y.shape)
    want = ref_maxpool_grad(np.asarray(x), gy, k)
    (g,) = op.backward(ctx, gy)
    np.testing.assert_array_equal(g, want)
    tiles = PoolTiles(k)  # the training plan's kernel computes the same
    ctx = KernelContext(needs_input_grad=(True,))
    tiled = tiles.backward_tiles(ctx, x, tiles.forward_tiles(ctx, x), gy)
    np.testing.assert_array_equal(tiled, want)
    # the kernel keeps the input's layout
    assert (tiled.transpose(0, 2, 3, 1).flags.c_contiguous if layout == "channels_last"
            else tiled.flags.c_contiguous)
