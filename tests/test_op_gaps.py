"""The op features the ONNX node tests asked for, as ordinary minigraph features.

Their forward references and gradient checks are rows of ``op_cases.py`` (maxpool, avgpool,
identity, maximum, cross_entropy/nll with weight, ignore_index and reduction none); here:
integer dtypes in model files, truncating integer division, the training kernels leaving the
new loss options to the plain rule, and PyTorch parity (skipped without PyTorch).
"""
from __future__ import annotations

import numpy as np
import pytest

from minigraph.api import Model, load_graph
from minigraph.kernels.losses import CrossEntropyRows
from minigraph.ops import get_op
from op_cases import make_ctx, run_op


def int_model(dtype):
    return {"minigraph": 1, "name": "ints",
            "inputs": {"a": {"shape": [6], "dtype": dtype}, "b": {"shape": [6], "dtype": dtype}},
            "nodes": [{"name": "q", "op": "div", "inputs": ["a", "b"], "outputs": ["y"]},
                      {"name": "s", "op": "add", "inputs": ["a", "b"], "outputs": ["z"]}],
            "outputs": ["y", "z"]}


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64"])
def test_integer_division_truncates_toward_zero(dtype):
    a = np.array([7, -7, 7, -7, 0, 9], dtype=dtype)
    b = np.array([2, 2, -2, -2, 3, 9], dtype=dtype)
    out = Model(load_graph(int_model(dtype))).forward({"a": a, "b": b})
    assert out["y"].dtype == np.dtype(dtype)
    assert out["y"].tolist() == [3, -3, -3, 3, 0, 1]  # C: 7 / -2 == -3, not NumPy's -4
    assert out["z"].tolist() == (a + b).tolist()


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "uint64"])
def test_unsigned_inputs_keep_their_dtype(dtype):
    a = np.array([7, 200, 9, 1, 0, 255], dtype=dtype)
    b = np.array([2, 3, 9, 1, 1, 1], dtype=dtype)
    out = Model(load_graph(int_model(dtype))).forward({"a": a, "b": b})
    assert out["y"].dtype == np.dtype(dtype) and out["y"].tolist() == (a // b).tolist()


def test_division_by_zero_of_integers_gives_zero():
    _, _, y = run_op("div", (np.array([5, -5], np.int32), np.array([0, 0], np.int32)))
    assert y.tolist() == [0, 0]


def test_float_base_keeps_its_dtype_with_an_integer_exponent():
    _, _, y = run_op("pow", (np.array([2.0, 3.0], np.float32), np.array([2, 3], np.int64)))
    assert y.dtype == np.float32 and y.tolist() == [4.0, 27.0]


def test_training_kernel_leaves_weights_and_ignored_rows_to_the_plain_rule():
    rng = np.random.default_rng(0)
    z, k, w = rng.standard_normal((6, 4)), np.array([0, 1, 2, 3, 1, 2]), rng.random(4) + 0.5
    for attrs, inputs in (({}, (z, k, w)), ({"ignore_index": 1}, (z, k)),
                          ({"reduction": "none"}, (z, k))):
        plain = get_op("cross_entropy")(**attrs)
        fast = CrossEntropyRows(plain)
        ctx_p, ctx_f = make_ctx(len(inputs)), make_ctx(len(inputs))
        np.testing.assert_array_equal(plain.forward(ctx_p, *inputs), fast.forward(ctx_f, *inputs))
        gy = np.ones(6) if attrs.get("reduction") == "none" else np.array(1.0)
        np.testing.assert_array_equal(plain.backward(ctx_p, gy)[0], fast.backward(ctx_f, gy)[0])


def test_weighted_loss_trains_through_the_training_plan():
    spec = {"minigraph": 1, "name": "weighted",
            "inputs": {"x": {"shape": ["batch", 3]}, "k": {"shape": ["batch"], "dtype": "int64"}},
            "params": {"W": {"shape": [3, 4], "init": "xavier_uniform"}},
            "constants": {"w": {"value": [1.0, 2.0, 0.5, 1.0]}},
            "nodes": [{"name": "fc", "op": "matmul", "inputs": ["x", "W"], "outputs": ["z"]},
                      {"name": "lsm", "op": "log_softmax", "inputs": ["z"], "outputs": ["lp"]},
                      {"name": "loss", "op": "nll", "inputs": ["lp", "k", "w"], "outputs": ["L"],
                       "attrs": {"ignore_index": 3}}],
            "outputs": ["z"], "loss": "L"}
    graph = load_graph(spec)
    x = np.random.default_rng(1).standard_normal((5, 3))
    k = np.array([0, 1, 3, 2, 3])
    model = Model(graph)
    model.forward({"x": x, "k": k})
    lp = model.value("lp")
    kept = k != 3
    w = np.array([1.0, 2.0, 0.5, 1.0])[k] * kept
    want = -(lp[np.arange(5), np.where(kept, k, 0)] * w).sum() / w.sum()
    np.testing.assert_allclose(model.value("L"), want, rtol=1e-6)


# ==== PyTorch parity ==============================================================================

def torch_or_skip():
    return pytest.importorskip("torch", reason="PyTorch is not installed (make torch)")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_weight_ignore_index_match_pytorch(reduction):
    torch = torch_or_skip()
    rng = np.random.default_rng(2)
    z = rng.standard_normal((3, 5, 4))  # (N, d1, C) in minigraph
    k = rng.integers(0, 4, (3, 5))
    k[0, :2] = -100
    w = rng.random(4) + 0.5
    op, ctx, y = run_op("cross_entropy", (z, k, w), {"reduction": reduction,
                                                     "ignore_index": -100})
    zt = torch.tensor(z.transpose(0, 2, 1), requires_grad=True)  # PyTorch: classes at 1
    yt = torch.nn.functional.cross_entropy(zt, torch.tensor(k), weight=torch.tensor(w),
                                           ignore_index=-100, reduction=reduction)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10)
    gy = rng.standard_normal(np.shape(y))
    yt.backward(torch.tensor(gy))
    np.testing.assert_allclose(op.backward(ctx, gy)[0], zt.grad.numpy().transpose(0, 2, 1),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("count_include_pad", [False, True])
def test_pools_match_pytorch(ceil_mode, count_include_pad):
    torch = torch_or_skip()
    x = np.random.default_rng(3).standard_normal((2, 3, 9, 8))
    attrs = {"kernel": [3, 2], "stride": [2, 2], "padding": 1, "ceil_mode": ceil_mode}
    xt = torch.tensor(x, requires_grad=True)
    op, ctx, y = run_op("avgpool", (x,), {**attrs, "count_include_pad": count_include_pad})
    yt = torch.nn.functional.avg_pool2d(xt, (3, 2), (2, 2), 1, ceil_mode, count_include_pad)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12)
    yt.sum().backward()
    np.testing.assert_allclose(op.backward(ctx, np.ones_like(y))[0], xt.grad.numpy(),
                               rtol=1e-12)
    xt.grad = None
    op, ctx, y = run_op("maxpool", (x,), {**attrs, "dilation": [1, 2]})
    yt = torch.nn.functional.max_pool2d(xt, (3, 2), (2, 2), 1, (1, 2), ceil_mode)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12)
    yt.sum().backward()
    np.testing.assert_allclose(op.backward(ctx, np.ones_like(y))[0], xt.grad.numpy(),
                               rtol=1e-12)
