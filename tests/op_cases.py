"""Reference cases for every built-in op, and the shared gradient check.

``CASES[op_name]`` is a list of :class:`Case`: float64 inputs from one seeded generator, the
op's attributes, a plain-NumPy reference for the forward pass, and which inputs to check by
central differences.  A new op needs a row here, or ``test_every_registered_op_has_cases``
fails.  Conv and pool references are written with plain loops, as a textbook would.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from minigraph.gradcheck import central_difference
from minigraph.ops import Context, get_op

SEED = 0  # the generator every test context gets (dropout draws its mask from it)


@dataclass
class Case:
    """One call of an op: inputs, attributes, the expected forward, inputs to grad-check."""

    inputs: tuple
    ref: Callable  # ref(*inputs) -> expected output, in plain NumPy
    attrs: dict = field(default_factory=dict)
    grad: tuple | None = None  # positions of inputs to check; None = every float input
    training: bool = False
    id: str = ""

    def wrt(self):
        if self.grad is not None:
            return self.grad
        return tuple(i for i, x in enumerate(self.inputs) if x.dtype.kind == "f")


# ==== running an op directly ======================================================================

def make_ctx(n_inputs, training=False, seed=SEED):
    return Context(training=training, rng=np.random.default_rng(seed),
                   needs_input_grad=(True,) * n_inputs)


def run_op(op_name, inputs, attrs=None, training=False):
    """(op, ctx, y): one forward call with a fresh context."""
    op = get_op(op_name)(**(attrs or {}))
    ctx = make_ctx(len(inputs), training)
    return op, ctx, op.forward(ctx, *inputs)


def numeric_grad(f, x, eps=1e-6):
    """Central differences (f(x + eps e_i) - f(x - eps e_i)) / 2 eps for every element i."""
    x = x.copy()
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        grad[i] = central_difference(lambda: f(x), x, i, eps)
    return grad


def gradient_check(op_name, inputs, attrs=None, wrt=None, training=False,
                   eps=1e-6, rtol=1e-4, atol=1e-6, seed=1):
    """Compare ``op.backward`` with central differences of L = sum(forward(x) * R).

    R is a fixed random array of the output's shape, so every output element gets its own
    weight and a wrong gradient cannot cancel out.  Checks the inputs at positions ``wrt``
    (default: all float inputs); also checks the gradient tuple's length and shapes.
    """
    inputs = tuple(inputs)
    op, ctx, y = run_op(op_name, inputs, attrs, training)
    r = np.random.default_rng(seed).standard_normal(np.shape(y))
    grads = op.backward(ctx, r)
    assert isinstance(grads, tuple) and len(grads) == len(inputs), \
        f"{op_name}: backward must return one gradient per input, got {grads!r}"
    if wrt is None:
        wrt = tuple(i for i, x in enumerate(inputs) if x.dtype.kind == "f")
    for i in wrt:
        def loss(xi, i=i):
            xs = list(inputs)
            xs[i] = xi
            return float(np.sum(run_op(op_name, xs, attrs, training)[2] * r))

        expected = numeric_grad(loss, inputs[i], eps)
        assert grads[i] is not None, f"{op_name}: no gradient for input {i}"
        assert grads[i].shape == inputs[i].shape, \
            f"{op_name}: gradient {i} has shape {grads[i].shape}, input {inputs[i].shape}"
        np.testing.assert_allclose(grads[i], expected, rtol=rtol, atol=atol,
                                   err_msg=f"{op_name}: gradient of input {i}")


# ==== inputs ======================================================================================

rng = np.random.default_rng(20240601)


def randn(*shape):
    return rng.standard_normal(shape)


def away(*shape):
    """Random values at least 0.1 from 0 (clear of the kinks of relu, abs, sign ...)."""
    x = rng.standard_normal(shape)
    return x + 0.1 * np.where(x >= 0, 1, -1)


def positive(*shape):
    return rng.uniform(0.5, 2.0, shape)


def prob(*shape):
    return rng.uniform(0.05, 0.95, shape)


def labels(n, classes, *extra):
    return rng.integers(0, classes, (n, *extra))


def one_hot(index, classes):
    return np.eye(classes)[index]


def soft(*shape):
    """Random probability rows (last axis sums to 1)."""
    e = np.exp(rng.standard_normal(shape))
    return e / e.sum(axis=-1, keepdims=True)


# ==== NumPy references ============================================================================

def ref_log_softmax(x, axis=-1):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def ref_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def ref_conv2d(x, w, b=None, stride=1, padding=0):
    """y[n, o, r, s] = b[o] + sum_{c, i, j} w[o, c, i, j] * x_padded[n, c, r*S + i, s*S + j]."""
    p = padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    n, c, h, wd = xp.shape
    o, _, kh, kw = w.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    y = np.zeros((n, o, oh, ow))
    for ni in range(n):
        for oi in range(o):
            for r in range(oh):
                for s in range(ow):
                    patch = xp[ni, :, r * stride:r * stride + kh, s * stride:s * stride + kw]
                    y[ni, oi, r, s] = np.sum(patch * w[oi]) + (0 if b is None else b[oi])
    return y


def ref_pool(x, kernel, stride=None, padding=0, kind="max"):
    """Max or mean of each kernel x kernel window; padding is -inf (max) or 0 (mean)."""
    stride = stride or kernel
    p = padding
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill)
    n, c, h, w = xp.shape
    oh, ow = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    y = np.zeros((n, c, oh, ow))
    for r in range(oh):
        for s in range(ow):
            window = xp[:, :, r * stride:r * stride + kernel, s * stride:s * stride + kernel]
            y[:, :, r, s] = window.max(axis=(2, 3)) if kind == "max" else window.mean(axis=(2, 3))
    return y


def ref_nll(log_probs, labels, reduction="mean"):
    rows = log_probs.reshape(-1, log_probs.shape[-1])
    if labels.shape == log_probs.shape:
        total = -np.sum(labels * log_probs)
    else:
        total = -sum(rows[i, k] for i, k in enumerate(labels.reshape(-1)))
    return total / len(rows) if reduction == "mean" else total


def reduce_all(losses, reduction):
    return losses.mean() if reduction == "mean" else losses.sum()


def ref_dropout_train(x, p):
    keep = np.random.default_rng(SEED).random(x.shape) >= p
    return x * keep / (1 - p)


# ==== the table ===================================================================================

def binary_cases(ref, make_b=randn, make_a=randn):
    """Same shapes, a vector against a matrix, two-way broadcasting, and a scalar."""
    return [
        Case((make_a(3, 4), make_b(3, 4)), ref, id="same"),
        Case((make_a(3, 4), make_b(4)), ref, id="(3,4)-(4,)"),
        Case((make_a(2, 1, 3), make_b(1, 4, 1)), ref, id="(2,1,3)-(1,4,1)"),
        Case((make_a(3, 1), make_b(2, 3, 4)), ref, id="(3,1)-(2,3,4)"),
        Case((make_a(), make_b(2, 3)), ref, id="scalar-(2,3)"),
    ]


def unary(ref, make=randn, **attrs):
    return [Case((make(3, 4),), ref, attrs, id="2d"), Case((make(2, 3, 2),), ref, attrs, id="3d")]


x_img = randn(2, 3, 6, 6)
x_pool = randn(2, 2, 7, 7)
idx5 = labels(5, 4)
idx23 = labels(2, 4, 3)

CASES: dict[str, list[Case]] = {
    # -- arithmetic ------------------------------------------------------------------------
    "add": binary_cases(np.add),
    "sub": binary_cases(np.subtract),
    "mul": binary_cases(np.multiply),
    "div": binary_cases(np.divide, make_b=away),
    "pow": binary_cases(np.power, make_a=positive),
    "neg": unary(np.negative),
    "exp": unary(np.exp),
    "log": unary(np.log, positive),
    "sqrt": unary(np.sqrt, positive),
    "square": unary(np.square),
    "abs": unary(np.abs, away),
    # -- linear algebra --------------------------------------------------------------------
    "matmul": [
        Case((randn(3, 4), randn(4, 5)), np.matmul, id="2d"),
        Case((randn(2, 3, 4), randn(4, 5)), np.matmul, id="batched-a"),
        Case((randn(2, 1, 3, 4), randn(3, 4, 2)), np.matmul, id="broadcast-batch"),
        Case((randn(4), randn(2, 4, 3)), np.matmul, id="vector-left"),
        Case((randn(3, 4), randn(4)), np.matmul, id="vector-right"),
        Case((randn(4), randn(4)), np.matmul, id="dot"),
    ],
    "transpose": [
        Case((randn(2, 3, 4),), np.transpose, id="reverse"),
        Case((randn(2, 3, 4),), lambda x: x.transpose(1, 0, 2), {"perm": [1, 0, 2]}),
        Case((randn(2, 3, 4),), lambda x: x.transpose(2, 0, 1), {"perm": [-1, 0, 1]}),
    ],
    # -- shape ------------------------------------------------------------------------------
    "reshape": [
        Case((randn(2, 3, 4),), lambda x: x.reshape(4, 6), {"shape": [4, -1]}),
        Case((randn(2, 3, 4),), lambda x: x.reshape(24), {"shape": [24]}),
        Case((randn(2, 12),), lambda x: x.reshape(2, 3, 4), {"shape": [-1, 3, 4]}),
    ],
    "flatten": [
        Case((randn(2, 3, 4, 5),), lambda x: x.reshape(2, 60), id="default"),
        Case((randn(2, 3, 4, 5),), lambda x: x.reshape(2, 3, 20), {"start_axis": 2}),
        Case((randn(2, 3, 4),), lambda x: x.reshape(24), {"start_axis": 0}),
    ],
    "concat": [
        Case((randn(2, 3), randn(2, 1), randn(2, 4)),
             lambda *xs: np.concatenate(xs, axis=-1), id="default-last"),
        Case((randn(2, 3), randn(4, 3)), lambda *xs: np.concatenate(xs, 0), {"axis": 0}),
        Case((randn(2, 1, 3), randn(2, 2, 3)), lambda *xs: np.concatenate(xs, 1), {"axis": 1}),
        Case((randn(3, 2),), lambda x: x, {"axis": 1}, id="single"),
    ],
    # -- reductions -------------------------------------------------------------------------
    **{
        name: [
            Case((randn(3, 4),), lambda x, f=f: f(x), id="all"),
            Case((randn(3, 4),), lambda x, f=f: f(x, axis=1), {"axis": 1}),
            Case((randn(2, 3, 4),), lambda x, f=f: f(x, axis=(0, 2), keepdims=True),
                 {"axis": [0, 2], "keepdims": True}),
            Case((randn(2, 3, 4),), lambda x, f=f: f(x, axis=-1, keepdims=True),
                 {"axis": -1, "keepdims": True}),
            Case((randn(2, 3),), lambda x, f=f: f(x, keepdims=True), {"keepdims": True}),
        ]
        for name, f in (("sum", np.sum), ("mean", np.mean), ("max", np.max))
    },
    # -- activations ------------------------------------------------------------------------
    "sigmoid": unary(ref_sigmoid),
    "tanh": unary(np.tanh),
    "relu": unary(lambda x: np.maximum(x, 0), away),
    "leaky_relu": unary(lambda x: np.where(x > 0, x, 0.01 * x), away)
    + unary(lambda x: np.where(x > 0, x, 0.2 * x), away, alpha=0.2),
    "elu": unary(lambda x: np.where(x > 0, x, np.exp(x) - 1), away)
    + unary(lambda x: np.where(x > 0, x, 0.5 * (np.exp(x) - 1)), away, alpha=0.5),
    "softplus": unary(lambda x: np.log1p(np.exp(x))),
    "swish": unary(lambda x: x * ref_sigmoid(x))
    + unary(lambda x: x * ref_sigmoid(2 * x), beta=2.0),
    "sign": [Case((away(3, 4),), np.sign)],
    # -- probability ------------------------------------------------------------------------
    "softmax": [
        Case((randn(3, 5),), lambda x: np.exp(ref_log_softmax(x)), id="last"),
        Case((randn(3, 5),), lambda x: np.exp(ref_log_softmax(x, 0)), {"axis": 0}),
        Case((randn(2, 3, 4),), lambda x: np.exp(ref_log_softmax(x, 1)), {"axis": 1}),
    ],
    "log_softmax": [
        Case((randn(3, 5),), ref_log_softmax, id="last"),
        Case((randn(3, 5),), lambda x: ref_log_softmax(x, 0), {"axis": 0}),
        Case((randn(2, 3, 4),), lambda x: ref_log_softmax(x, 1), {"axis": 1}),
    ],
    # -- convolution ------------------------------------------------------------------------
    "conv2d": [
        Case((x_img, randn(4, 3, 3, 3), randn(4)), ref_conv2d, id="bias"),
        Case((x_img, randn(2, 3, 3, 3)),
             lambda x, w: ref_conv2d(x, w, stride=2, padding=1),
             {"stride": 2, "padding": 1}, id="stride2-pad1-nobias"),
        Case((randn(2, 2, 5, 6), randn(3, 2, 2, 3), randn(3)),
             lambda x, w, b: ref_conv2d(x, w, b, stride=2, padding=1),
             {"stride": 2, "padding": 1}, id="rect-kernel-bias"),
        Case((randn(1, 3, 4, 4), randn(2, 3, 1, 1)), ref_conv2d, id="1x1"),
        # col2im's cases: the centre offset covering the image, and offsets landing partly
        # or wholly in the padding
        Case((randn(2, 2, 5, 4), randn(3, 2, 3, 3), randn(3)),
             lambda x, w, b: ref_conv2d(x, w, b, padding=1), {"padding": 1}, id="same-3x3"),
        Case((randn(1, 2, 6, 5), randn(2, 2, 5, 5)),
             lambda x, w: ref_conv2d(x, w, padding=2), {"padding": 2}, id="same-5x5"),
        Case((randn(1, 2, 3, 4), randn(2, 2, 1, 1)),
             lambda x, w: ref_conv2d(x, w, padding=1), {"padding": 1}, id="1x1-pad1"),
        Case((randn(1, 2, 7, 7), randn(2, 2, 2, 2)),
             lambda x, w: ref_conv2d(x, w, stride=3, padding=1), {"stride": 3, "padding": 1},
             id="2x2-stride3-pad1"),
    ],
    "maxpool2d": [
        Case((x_pool,), lambda x: ref_pool(x, 2), {"kernel": 2}, id="k2"),
        Case((x_pool,), lambda x: ref_pool(x, 3, 2), {"kernel": 3, "stride": 2},
             id="overlap"),
        Case((x_pool,), lambda x: ref_pool(x, 3, 2, 1), {"kernel": 3, "stride": 2, "padding": 1},
             id="overlap-pad"),
    ],
    "avgpool2d": [
        Case((x_pool,), lambda x: ref_pool(x, 2, kind="mean"), {"kernel": 2}, id="k2"),
        Case((x_pool,), lambda x: ref_pool(x, 3, 1, kind="mean"), {"kernel": 3, "stride": 1},
             id="overlap"),
        Case((x_pool,), lambda x: ref_pool(x, 3, 2, 1, kind="mean"),
             {"kernel": 3, "stride": 2, "padding": 1}, id="overlap-pad"),
    ],
    # -- regularization ---------------------------------------------------------------------
    "dropout": [
        Case((randn(4, 5),), lambda x: x, id="eval"),
        Case((randn(4, 5),), lambda x: ref_dropout_train(x, 0.5), training=True, id="train"),
        Case((randn(4, 5),), lambda x: ref_dropout_train(x, 0.2), {"p": 0.2}, training=True,
             id="train-p0.2"),
    ],
    # -- losses -----------------------------------------------------------------------------
    "mse": [
        Case((randn(4, 3), randn(4, 3)), lambda p, t: np.mean((p - t) ** 2), id="mean"),
        Case((randn(5), randn(5)), lambda p, t: np.sum((p - t) ** 2), {"reduction": "sum"},
             id="sum"),
    ],
    "l1": [
        Case((away(4, 3), np.zeros((4, 3))), lambda p, t: np.mean(np.abs(p - t)), id="mean"),
        Case((away(5), np.zeros(5)), lambda p, t: np.sum(np.abs(p - t)), {"reduction": "sum"},
             id="sum"),
    ],
    "bce": [
        Case((prob(4, 3), prob(4, 3)),
             lambda p, t: np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))), id="soft"),
        Case((prob(6), rng.integers(0, 2, 6).astype(float)),
             lambda p, t: np.sum(-(t * np.log(p) + (1 - t) * np.log(1 - p))),
             {"reduction": "sum"}, id="binary-sum"),
    ],
    "bce_with_logits": [
        Case((3 * randn(4, 3), prob(4, 3)),
             lambda z, t: np.mean(-(t * np.log(ref_sigmoid(z))
                                    + (1 - t) * np.log(1 - ref_sigmoid(z)))), id="mean"),
        Case((3 * randn(6), rng.integers(0, 2, 6).astype(float)),
             lambda z, t: np.sum(np.logaddexp(0, z) - t * z), {"reduction": "sum"}, id="sum"),
    ],
    "cross_entropy": [
        Case((randn(5, 4), idx5), lambda z, k: ref_nll(ref_log_softmax(z), k), id="index"),
        Case((randn(5, 4), one_hot(idx5, 4)), lambda z, t: ref_nll(ref_log_softmax(z), t),
             id="one-hot"),
        Case((randn(5, 4), soft(5, 4)), lambda z, t: ref_nll(ref_log_softmax(z), t, "sum"),
             {"reduction": "sum"}, id="soft-sum"),
        Case((randn(2, 3, 4), idx23), lambda z, k: ref_nll(ref_log_softmax(z), k), id="3d"),
        Case((randn(5, 4), idx5), lambda z, k: ref_nll(ref_log_softmax(z), k, "sum"),
             {"reduction": "sum"}, id="index-sum"),
    ],
    "nll": [
        Case((ref_log_softmax(randn(5, 4)), idx5), ref_nll, id="index"),
        Case((ref_log_softmax(randn(5, 4)), one_hot(idx5, 4)), ref_nll, id="one-hot"),
        Case((ref_log_softmax(randn(5, 4)), idx5), lambda lp, k: ref_nll(lp, k, "sum"),
             {"reduction": "sum"}, id="index-sum"),
    ],
}


def all_cases():
    """(op_name, case) pairs with readable pytest ids."""
    params = []
    for name, cases in CASES.items():
        for i, case in enumerate(cases):
            params.append((name, case, f"{name}-{case.id or i}"))
    return params


# ==== general pools, identity, class weights / ignore_index / per-row losses ======================

def ref_pool_nd(x, kernel, stride, before, after, dilation=None, ceil_mode=False, kind="max",
                count_include_pad=True):
    """Textbook N-d pooling: for every output position, walk the window element by element.

    Position o*s - b + j*e along each axis; elements in the input count, elements in the
    explicit pads count for the mean's divisor only with ``count_include_pad``, and elements
    past them (from ``ceil_mode``) never count."""
    d = len(kernel)
    dilation = dilation or (1,) * d
    sizes = x.shape[2:]
    out = []
    for i in range(d):
        span = dilation[i] * (kernel[i] - 1) + 1
        room = sizes[i] + before[i] + after[i] - span
        n = (-(-room // stride[i]) if ceil_mode else room // stride[i]) + 1
        if ceil_mode and (n - 1) * stride[i] >= sizes[i] + before[i]:
            n -= 1
        out.append(n)
    y = np.zeros(x.shape[:2] + tuple(out))
    for o in np.ndindex(*out):
        values, count = [], 0
        for j in np.ndindex(*kernel):
            pos = [o[i] * stride[i] - before[i] + j[i] * dilation[i] for i in range(d)]
            inside = all(0 <= pos[i] < sizes[i] for i in range(d))
            in_pads = all(-before[i] <= pos[i] < sizes[i] + after[i] for i in range(d))
            if inside:
                values.append(x[(slice(None), slice(None)) + tuple(pos)])
            count += inside or (in_pads and count_include_pad)
        stack = np.stack(values)
        y[(slice(None), slice(None)) + o] = stack.max(0) if kind == "max" else \
            stack.sum(0) / count
    return y


def ref_class_loss(log_probs, labels, weight=None, ignore_index=None, reduction="mean"):
    """PyTorch's nll_loss with class weights and ignore_index, row by row."""
    rows = log_probs.reshape(-1, log_probs.shape[-1])
    flat = labels.reshape(-1)
    losses, weights = [], []
    for i, k in enumerate(flat):
        w = 0.0 if k == ignore_index else (1.0 if weight is None else weight[k])
        losses.append(0.0 if w == 0.0 else -w * rows[i, k])
        weights.append(w)
    losses = np.array(losses)
    if reduction == "none":
        return losses.reshape(labels.shape)
    return losses.sum() / np.sum(weights) if reduction == "mean" else losses.sum()


x_pool1 = randn(2, 3, 9)
x_pool3 = randn(1, 2, 5, 6, 4)
class_w = positive(4)
idx_ii = np.array([0, 3, 1, 3, 2])

CASES["maxpool"] = [
    Case((x_pool1,), lambda x: ref_pool_nd(x, (3,), (2,), (1,), (1,)),
         {"kernel": 3, "stride": 2, "padding": 1}, id="1d"),
    Case((x_pool,), lambda x: ref_pool_nd(x, (3, 2), (2, 1), (1, 0), (0, 1)),
         {"kernel": [3, 2], "stride": [2, 1], "padding": [1, 0, 0, 1]}, id="2d-asymmetric"),
    Case((x_pool,), lambda x: ref_pool_nd(x, (2, 2), (2, 2), (0, 0), (0, 0), (2, 2)),
         {"kernel": 2, "stride": 2, "dilation": 2}, id="2d-dilated"),
    Case((x_pool,), lambda x: ref_pool_nd(x, (3, 3), (2, 2), (0, 0), (0, 0), ceil_mode=True),
         {"kernel": 3, "stride": 2, "ceil_mode": True}, id="2d-ceil"),
    Case((x_pool3,), lambda x: ref_pool_nd(x, (2, 2, 2), (1, 2, 1), (0, 1, 0), (0, 1, 0)),
         {"kernel": 2, "stride": [1, 2, 1], "padding": [0, 1, 0]}, id="3d"),
]
CASES["avgpool"] = [
    Case((x_pool1,), lambda x: ref_pool_nd(x, (3,), (2,), (1,), (1,), kind="mean"),
         {"kernel": 3, "stride": 2, "padding": 1}, id="1d"),
    Case((x_pool,), lambda x: ref_pool_nd(x, (3, 2), (2, 1), (1, 0), (0, 1), kind="mean"),
         {"kernel": [3, 2], "stride": [2, 1], "padding": [1, 0, 0, 1]}, id="2d-asymmetric"),
    Case((x_pool,), lambda x: ref_pool_nd(x, (3, 3), (2, 2), (1, 1), (1, 1), ceil_mode=True,
                                          kind="mean"),
         {"kernel": 3, "stride": 2, "padding": 1, "ceil_mode": True}, id="2d-ceil-pad"),
    Case((x_pool,), lambda x: ref_pool_nd(x, (2, 2), (1, 1), (0, 0), (0, 0), (2, 2),
                                          kind="mean"),
         {"kernel": 2, "stride": 1, "dilation": 2}, id="2d-dilated"),
    Case((x_pool3,), lambda x: ref_pool_nd(x, (2, 2, 2), (2, 2, 2), (1, 1, 1), (1, 1, 1),
                                           kind="mean", count_include_pad=False),
         {"kernel": 2, "padding": 1, "count_include_pad": False}, id="3d-exclude-pad"),
]
CASES["identity"] = [Case((randn(3, 4),), lambda x: x, id="same")]
CASES["cross_entropy"] += [
    Case((randn(5, 4), idx5, class_w),
         lambda z, k, w: ref_class_loss(ref_log_softmax(z), k, w), grad=(0,), id="weight"),
    Case((randn(5, 4), idx_ii), lambda z, k: ref_class_loss(ref_log_softmax(z), k,
                                                            ignore_index=3),
         {"ignore_index": 3}, id="ignore-index"),
    Case((randn(5, 4), idx_ii, class_w),
         lambda z, k, w: ref_class_loss(ref_log_softmax(z), k, w, 3, "sum"),
         {"ignore_index": 3, "reduction": "sum"}, grad=(0,), id="weight-ignore-sum"),
    Case((randn(2, 3, 4), idx23, class_w),
         lambda z, k, w: ref_class_loss(ref_log_softmax(z), k, w, reduction="none"),
         {"reduction": "none"}, grad=(0,), id="3d-weight-none"),
    Case((randn(5, 4), soft(5, 4), class_w),
         lambda z, t, w: -np.sum(t * w * ref_log_softmax(z), axis=-1),
         {"reduction": "none"}, grad=(0, 1), id="soft-weight-none"),
]
CASES["nll"] += [
    Case((ref_log_softmax(randn(5, 4)), idx_ii, class_w),
         lambda lp, k, w: ref_class_loss(lp, k, w, 3), {"ignore_index": 3}, grad=(0,),
         id="weight-ignore"),
    Case((ref_log_softmax(randn(5, 4)), idx_ii),
         lambda lp, k: ref_class_loss(lp, k, ignore_index=-100, reduction="none"),
         {"ignore_index": -100, "reduction": "none"}, id="none"),
]
CASES["maximum"] = binary_cases(np.maximum) + [
    Case((np.array([1.0, 2.0, -3.0]), np.array([1.0, -2.0, 0.0])), np.maximum, id="ties")]


# ==== sequence ops and recurrent cells (issue 15) ================================================

def ref_rnn_cell(x, W, b, U=None, h=None):
    return np.tanh(x @ W + b + (0 if h is None else h @ U))


def ref_lstm_cell(x, W, b, U=None, s=None):
    """Gates i, f, g, o; the state s = [h | c]."""
    n = W.shape[1] // 4
    h, c = (0, 0) if s is None else (s[:, :n], s[:, n:])
    a = x @ W + b + (0 if s is None else h @ U)
    i, f, g, o = (a[:, k * n:(k + 1) * n] for k in range(4))
    c = ref_sigmoid(f) * c + ref_sigmoid(i) * np.tanh(g)
    return np.concatenate([ref_sigmoid(o) * np.tanh(c), c], axis=1)


def ref_gru_cell(x, W, b, bh, U=None, h=None):
    """Gates r, z, n as PyTorch: n = tanh(x W_n + b_n + r (h U_n + bh_n))."""
    n = W.shape[1] // 3
    xa = x @ W + b
    ha = bh + (0 if h is None else h @ U)
    r = ref_sigmoid(xa[:, :n] + ha[..., :n])
    z = ref_sigmoid(xa[:, n:2 * n] + ha[..., n:2 * n])
    cand = np.tanh(xa[:, 2 * n:] + r * ha[..., 2 * n:])
    return (1 - z) * cand + z * (0 if h is None else h)


x_seq = randn(2, 5, 3)
CASES.update({
    "slice": [
        Case((x_seq,), lambda x: x[:, 2], {"axis": 1, "index": 2}, id="index"),
        Case((x_seq,), lambda x: x[:, -1], {"axis": 1, "index": -1}, id="index-last"),
        Case((x_seq,), lambda x: x[..., 1:3], {"axis": -1, "start": 1, "stop": 3}, id="range"),
        Case((x_seq,), lambda x: x[:, ::2], {"axis": 1, "step": 2}, id="step"),
        Case((randn(6),), lambda x: x[-4:-1], {"start": -4, "stop": -1}, id="negative-1d"),
    ],
    "stack": [
        Case((randn(2, 3), randn(2, 3), randn(2, 3)), lambda *xs: np.stack(xs), id="axis0"),
        Case((randn(2, 3), randn(2, 3)), lambda *xs: np.stack(xs, 1), {"axis": 1}, id="axis1"),
        Case((randn(2, 3), randn(2, 3)), lambda *xs: np.stack(xs, -1), {"axis": -1},
             id="last"),
        Case((randn(4),), lambda x: x[None], id="single"),
    ],
    "rnn_cell": [
        Case((randn(3, 2), randn(2, 4), randn(4)), ref_rnn_cell, id="zero-state"),
        Case((randn(3, 2), randn(2, 4), randn(4), randn(4, 4), randn(3, 4)), ref_rnn_cell,
             id="state"),
    ],
    "lstm_cell": [
        Case((randn(3, 2), randn(2, 12), randn(12)), ref_lstm_cell, id="zero-state"),
        Case((randn(3, 2), randn(2, 12), randn(12), randn(3, 12), randn(3, 6)), ref_lstm_cell,
             id="state"),
    ],
    "gru_cell": [
        Case((randn(3, 2), randn(2, 9), randn(9), randn(9)), ref_gru_cell, id="zero-state"),
        Case((randn(3, 2), randn(2, 9), randn(9), randn(9), randn(3, 9), randn(3, 3)),
             ref_gru_cell, id="state"),
    ],
})
