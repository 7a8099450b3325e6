"""Fused ops: a chain of primitive ops computed as one, for training plans.

These are not part of the model-file vocabulary (they are not registered): the training
plan's rewrite (:mod:`.fusion`) swaps a matching chain of primitive nodes for one fused step
when the tensors inside it are read by nothing else and nobody asked for their gradient.  The readable
per-op rules stay the source of truth: each fused op computes what its chain computes, to
rounding, and ``tests/test_kernels.py`` checks every fusion against the unfused chain on ordinary
and on extreme inputs (saturated logits, ties in every pooling window, zeros, huge and tiny
values, float32 and float64).  A chain that cannot be computed exactly is not fused: there is
no "stable" sigmoid -> bce fusion computing softplus(-z) + (1 - t) z, because bce works
on the rounded probability and clamps its logs at -100 as PyTorch does (the fused op below
uses bce's own loss on sigmoid's own output; a model that wants the stable form writes
``bce_with_logits``).

| chain                        | fused op       | why it pays                                   |
| ---------------------------- | -------------- | --------------------------------------------- |
| conv2d -> relu -> maxpool2d  | ConvReLUPool   | pools first, then adds the bias and applies   |
|                              |                | ReLU on 4x fewer values: relu(pool(z) + b) =  |
|                              |                | pool(relu(z + b)), as b is constant per       |
|                              |                | channel and relu and max commute (monotone)   |
| matmul -> add -> relu,       | LinearAct      | bias and activation in place on the product;  |
| sigmoid or tanh              |                | backward reads the derivative from y          |
| flatten -> matmul -> add     | FlattenLinear  | a channels-last image is not copied into      |
|                              |                | (c, h, w) order; W's rows are reordered       |
| matmul -> add (bias)         | LinearFused    | adds the bias in place; db = column sums, no  |
|                              |                | unbroadcast; one op call instead of two       |
| sigmoid -> bce               | SigmoidBCE     | dL/dz = k (y - t): y (1 - y) cancels (exactly |
|                              |                | where y (1 - y) >= 1e-12, else it scales)     |
| matmul -> add -> sigmoid     | LinearSigmoid- | both of the above in one step                 |
| -> bce                       | BCE            |                                               |
| log_softmax -> nll           | LogSoftmaxNLL  | dL/dx = (softmax - one_hot) / N in one step   |
"""
from __future__ import annotations

from ..ops.base import Op, get_array_module
from ..ops.loss import GRAD_EPS, LOG_FLOOR, CrossEntropy
from ..ops.probability import log_softmax
from .blas import column_sums, constant, ones, sigmoid_in_place, sigmoid_over, sum_leading
from .conv_nhwc import Conv2DChannelsLast, PoolTiles, channels_first, channels_last
from .conv_nhwc import is_channels_last
from .losses import CrossEntropyRows


class LinearFused(Op):
    """y = x W + b for x (N, in), W (in, out), b (out,)."""

    name = "linear(fused)"
    inputs = ("x", "W", "b")

    def forward(self, ctx, x, w, b):
        ctx.saved = (x, w)
        y = x @ w
        y += b
        return y

    def backward(self, ctx, gy):
        x, w = ctx.saved
        return linear_grads(ctx.needs_input_grad, x, w, gy, ctx.grad_into)


def linear_grads(needs, x, w, gz, into=(None, None, None), xp=None):
    """(dx, dW, db) of z = x W + b from dL/dz; None for what ``needs`` does not ask for.

    ``into``: where the plan wants dW and db written (the optimizer's flat gradient buffer,
    see :meth:`.TrainingKernels.give_grad_buffers`), else None: new arrays.  ``xp``: the
    arrays' module, when the caller has it at hand.
    """
    need_x, need_w, need_b = needs[:3]
    xp = xp or get_array_module(gz)
    return (gz @ w.T if need_x else None,
            xp.matmul(x.T, gz, out=into[1]) if need_w else None,
            (column_sums(xp, gz, into[2]) if gz.ndim == 2 and gz.dtype.kind == "f"
             else sum_leading(gz, 1, out=into[2])) if need_b else None)


# Each activation as (y from z, written over z; dL/dz from y and dL/dy, written over y),
# given the arrays' module and 0 and 1 as 0-d arrays of their dtype (``numbers``).  Each
# derivative is read from the output, so z need not be kept.
def _relu(xp, z, numbers):
    return xp.maximum(z, numbers[0], out=z)


def _relu_grad(xp, y, gy, numbers):
    """dL/dz = gy (y > 0) (y > 0 exactly where z > 0)."""
    return xp.multiply(gy, y > numbers[0], out=y)


def _sigmoid(xp, z, numbers):
    """As ``ops.activation.stable_sigmoid`` computes it: the same operations, the same bits."""
    return sigmoid_over(xp, z, z, numbers[0]) if z.ndim else sigmoid_in_place(z)


def _sigmoid_grad(xp, y, gy, numbers):
    """dL/dz = gy y (1 - y)."""
    one_minus = xp.subtract(numbers[1], y)
    y *= one_minus
    y *= gy
    return y


def _tanh(xp, z, numbers):
    return xp.tanh(z, out=z)


def _tanh_grad(xp, y, gy, numbers):
    """dL/dz = gy (1 - y^2)."""
    y *= y
    xp.subtract(numbers[1], y, out=y)
    y *= gy
    return y


ACTIVATIONS = {
    "relu": (_relu, _relu_grad),
    "sigmoid": (_sigmoid, _sigmoid_grad),
    "tanh": (_tanh, _tanh_grad),
}


class LinearAct(LinearFused):
    """y = act(x W + b) for act in ``ACTIVATIONS``: the activation applied to the product
    in place, and its derivative from y in backward, computed in y's memory when the plan
    says nobody keeps y (else in a copy)."""

    def __init__(self, activation):
        self.name = f"linear+{activation}(fused)"
        self.apply, self.derivative = ACTIVATIONS[activation]
        self.numbers = {}  # dtype -> (0, 1) as 0-d arrays (see blas.constant): a plan has one

    def forward(self, ctx, x, w, b):
        z = x @ w
        z += b
        xp = get_array_module(z)
        numbers = self.numbers.get(z.dtype) or self._numbers(z)
        y = self.apply(xp, z, numbers)
        ctx.saved = (xp, x, w, y, numbers)
        return y

    def backward(self, ctx, gy):
        xp, x, w, y, numbers = ctx.saved
        ctx.saved = None
        if not ctx.owns_outputs:  # somebody may still read y: work on a copy
            y = y.copy()
        return linear_grads(ctx.needs_input_grad, x, w, self.derivative(xp, y, gy, numbers),
                            ctx.grad_into, xp)

    def _numbers(self, like):
        self.numbers[like.dtype] = found = (constant(0, like), constant(1, like))
        return found


class FlattenLinear(Op):
    """y = flatten(x) W + b for an image x (N, C, H, W), W (C*H*W, out).

    flatten orders each row (c, h, w).  A channels-last x already holds its rows in memory
    ordered (h, w, c): instead of copying x into the other order (forward) and reading the
    gradient back across it (backward), W's rows are put in x's order -- a copy of W, which
    is small (3136 x 10 in the lecture CNN) -- and dW is put back the same way.
    """

    name = "flatten+linear(fused)"
    inputs = ("x", "W", "b")

    def forward(self, ctx, x, w, b):
        n, c, h, wd = x.shape
        rows = is_channels_last(x)
        if rows:  # (c, h, w) rows of W -> (h, w, c)
            f = channels_last(x).reshape(n, h * wd * c)
            w = w.reshape(c, h, wd, -1).transpose(1, 2, 0, 3).reshape(h * wd * c, -1)
        else:
            f = x.reshape(n, c * h * wd)
        ctx.saved = (f, w, x.shape, rows)
        y = f @ w
        y += b
        return y

    def backward(self, ctx, gy):
        f, w, (n, c, h, wd), rows = ctx.saved
        dx, dw, db = linear_grads(ctx.needs_input_grad, f, w, gy)
        if rows:
            dx = None if dx is None else channels_first(dx.reshape(n, h, wd, c))
            dw = None if dw is None else \
                dw.reshape(h, wd, c, -1).transpose(2, 0, 1, 3).reshape(c * h * wd, -1)
        elif dx is not None:
            dx = dx.reshape(n, c, h, wd)
        return dx, dw, db


class ConvReLUPool(Op):
    """y = relu(maxpool(conv(x, W)) + b), equal to maxpool(relu(conv(x, W) + b)).

    Runs the readable conv2d and maxpool2d ops' own code (conv without its bias, channels-last
    throughout), then the bias and the ReLU on the pooled, 4x smaller tensor.  Backward: the
    ReLU mask on the pooled tensor, db as its sums, then the pool's and the conv's own rules.
    """

    name = "conv+relu+pool(fused)"
    inputs = ("x", "w", "b")

    def __init__(self, conv, pool):
        self.conv, self.pool = Conv2DChannelsLast(conv), PoolTiles(pool.kernel)

    def forward(self, ctx, x, w, b):
        xp = get_array_module(x)
        need_x, need_w, _ = ctx.needs_input_grad
        conv_ctx = ctx.part((need_x, need_w))
        z = self.conv.forward_nhwc(conv_ctx, x, w)                # (N, H, W, O), no bias yet
        m = channels_last(self.pool.forward_tiles(ctx, channels_first(z)))  # (N, PH, PW, O)
        y = xp.add(m, b, out=ctx.empty(xp, m.shape, m.dtype))
        xp.maximum(y, 0, out=y)
        ctx.saved = (conv_ctx, z, m, y)
        return channels_first(y)

    def backward(self, ctx, gy):
        conv_ctx, z, m, y = ctx.saved  # z: the conv's output (ours alone); m: its maxima
        ctx.saved = None  # each part's saved arrays are freed as soon as it is done
        xp = get_array_module(gy)
        need_x, need_w, need_b = ctx.needs_input_grad
        dm = ctx.empty(xp, y.shape, y.dtype)
        xp.multiply(channels_last(gy), y > 0, out=dm)
        db = sum_leading(dm, 3) if need_b else None
        z, m = channels_first(z), channels_first(m)
        dz = self.pool.backward_tiles(ctx, z, m, channels_first(dm), out=z)  # over z
        del dm, y, m
        dx, dw = self.conv.backward_nhwc(conv_ctx, channels_last(dz))
        return dx, dw, db


class SigmoidBCE(Op):
    """(y, L) = (sigmoid(z), bce(sigmoid(z), t)), bce's rule on sigmoid's own output.

    Forward: bce's loss with its logs clamped at -100, on y as sigmoid rounds it, summed as
        L = k0 [t . (lq - lp) - sum(lq)],  lp = max(ln y, -100), lq = max(ln(1 - y), -100)
    (the same as bce's sum of (t - 1) lq - t lp, added up in another order).
    Backward multiplies bce's dL/dy = k (y - t) / max(y (1 - y), 1e-12) by sigmoid's
    dy/dz = y (1 - y) with the common factor cancelled:
        dL/dz = k (y - t) min(1, y (1 - y) / 1e-12),   k = dL/dL / N (or 1 for "sum").
    Equal to the chain to rounding, saturated z included; number operands are 0-d arrays
    of y's dtype made once per op and dtype, and results are written in place, which is
    what makes this worth fusing on small arrays.  ``loss`` and ``grads`` are the two halves,
    shared with :class:`LinearSigmoidBCE`.
    """

    name = "sigmoid+bce(fused)"
    inputs = ("z", "target")

    def __init__(self, bce):
        self.bce = bce
        self.mean = bce.reduction == "mean"
        self._constants = {}  # dtype -> 0, -100, 1, 1e12 as 0-d arrays

    def forward(self, ctx, z, t):
        y, loss, ctx.saved = self.loss(z, t, own=False)
        return y, loss

    def backward(self, ctx, gy):
        return self.grads(ctx.saved, gy, *ctx.needs_input_grad)

    def loss(self, z, t, own):
        """(y, L, what ``grads`` needs); ``own``: z is the caller's to overwrite."""
        xp = get_array_module(z)
        zero, floor, one, inv_eps = self._constants.get(z.dtype) or self.constants(z)
        y = sigmoid_over(xp, z, z if own else None, zero) if z.ndim else sigmoid_in_place(z)
        if t.dtype.kind != "f":
            t = t.astype(y.dtype)  # as bce does with integer 0/1 targets
        lp = xp.log(y)
        xp.maximum(lp, floor, out=lp)
        lq = xp.negative(y)
        xp.log1p(lq, out=lq)
        xp.maximum(lq, floor, out=lq)
        # sum(lq) as a dot product with ones: about twice as fast as lq.sum() on a batch
        total = xp.vdot(t, xp.subtract(lq, lp, out=lp)) \
            - xp.vdot(ones(xp, lq.size, lq.dtype), lq)
        scale = 1 / y.size if self.mean else 1.0
        return y, xp.asarray(total * scale, dtype=y.dtype), (scale, y, t, xp, one, inv_eps)

    def grads(self, saved, gy, need_z, need_t):
        """(dL/dz, dL/dt) from what ``loss`` kept and dL/dL."""
        scale, y, t, xp, one, inv_eps = saved
        k = gy * scale
        dz = dt = None
        if need_z:
            q = xp.subtract(one, y)
            q *= y                                  # y (1 - y)
            q *= inv_eps
            xp.minimum(q, one, out=q)               # min(1, y (1 - y) / 1e-12)
            dz = xp.subtract(y, t)
            dz *= q
            dz *= k
        if need_t:
            dt = k * self.bce.local_grads(False, True, y, t)[1]
        return dz, dt

    def constants(self, y):
        """0, -100, 1 and 1 / 1e-12 as 0-d arrays of y's dtype (made once: a plan has one
        dtype and one device)."""
        self._constants[y.dtype] = found = tuple(constant(c, y) for c in
                                                 (0, LOG_FLOOR, 1, 1 / GRAD_EPS))
        return found


class LinearSigmoidBCE(Op):
    """(y, L) = sigmoid+bce(x W + b, t): a linear layer's product and bias, then
    :class:`SigmoidBCE` on them in one step (one op call and one context instead of two).
    The product is ours, so the sigmoid is computed over it."""

    name = "linear+sigmoid+bce(fused)"
    inputs = ("x", "W", "b", "target")

    def __init__(self, bce):
        self.tail = SigmoidBCE(bce)

    def forward(self, ctx, x, w, b, t):
        z = x @ w
        z += b
        y, loss, saved = self.tail.loss(z, t, own=True)
        ctx.saved = (x, w, saved)
        return y, loss

    def backward(self, ctx, gy):
        x, w, saved = ctx.saved
        needs = ctx.needs_input_grad
        dz, dt = self.tail.grads(saved, gy, True, needs[3])
        return (*linear_grads(needs, x, w, dz, ctx.grad_into, saved[3]), dt)


class LogSoftmaxNLL(Op):
    """(log_probs, L) = (log_softmax(x), nll(log_softmax(x), labels)), as cross_entropy."""

    name = "log_softmax+nll(fused)"
    inputs = ("x", "labels")

    def __init__(self, reduction="mean"):
        self.loss = CrossEntropyRows(CrossEntropy(reduction=reduction))

    def forward(self, ctx, x, labels):
        return log_softmax(x, axis=-1), self.loss.forward(ctx, x, labels)

    def backward(self, ctx, gy):
        return self.loss.backward(ctx, gy)
