"""Recurrent cells as single ops: one time step of an Elman RNN, an LSTM or a GRU.

The layer ops ``rnn``, ``lstm`` and ``gru`` (:mod:`minigraph.ops.rnn_layers`) unroll a
sequence into one cell per step.  By default each step is one of these ops (a small graph);
``cell: primitive`` writes the same step as matmul, add, slice, sigmoid, tanh and mul nodes,
so every gate is drawn.  Both compute the same numbers, with PyTorch's weight layout
(``W = weight_ih.T``, ``U = weight_hh.T``):

* ``rnn_cell(x, W, b, U?, h?)``:  h' = tanh(x W + h U + b);  W (F, H), U (H, H), b (H).
* ``lstm_cell(x, W, b, U?, s?)``: a = x W + h U + b, gates in PyTorch's order **i, f, g, o**
  (a[:, 0:H] is the input gate, H:2H forget, 2H:3H the candidate g, 3H:4H output);
  c' = sigmoid(f) c + sigmoid(i) tanh(g),  h' = sigmoid(o) tanh(c').  W (F, 4H), U (H, 4H),
  b (4H).  The state travels as one tensor ``s = [h | c]`` of shape (batch, 2H).
* ``gru_cell(x, W, b, bh, U?, h?)``: gates in PyTorch's order **r, z, n**; with
  xa = x W + b and ha = h U + bh:  r = sigmoid(xa_r + ha_r),  z = sigmoid(xa_z + ha_z),
  n = tanh(xa_n + r ha_n),  h' = (1 - z) n + z h.  W (F, 3H), U (H, 3H), b and bh (3H):
  PyTorch's ``bias_ih`` and ``bias_hh`` (b_hn sits inside r * (...), so it cannot be merged).

Without a state (the first step with no initial state) the state is zero: U is not read.
"""
from __future__ import annotations

from .base import Op, ShapeError, fmt_shape, get_array_module, register, same_dim


def _check(name, x, W, b, U, state, gates, state_width=1):
    """Shapes of a cell's inputs; returns (batch, H)."""
    if len(x) != 2 or len(W) != 2 or len(b) != 1:
        raise ShapeError(f"{name} needs x (batch, F), W (F, {gates}H) and b ({gates}H), got "
                         f"{fmt_shape(x)}, {fmt_shape(W)}, {fmt_shape(b)}")
    if not same_dim(x[1], W[0]):
        raise ShapeError(f"{name}: x {fmt_shape(x)} has {x[1]} features but W is "
                         f"{fmt_shape(W)}")
    cols = W[1]
    if isinstance(cols, int) and cols % gates:
        raise ShapeError(f"{name}: W {fmt_shape(W)} must have {gates}H columns")
    h = cols // gates if isinstance(cols, int) else None
    if not same_dim(b[0], cols):
        raise ShapeError(f"{name}: b {fmt_shape(b)} must have {gates}H = {cols} entries")
    if (U is None) != (state is None):
        raise ShapeError(f"{name}: U and the state come together (U is only read with a state)")
    if U is not None:
        if len(U) != 2 or not same_dim(U[0], h) or not same_dim(U[1], cols):
            raise ShapeError(f"{name}: U {fmt_shape(U)} must be (H, {gates}H) = ({h}, {cols})")
        want = None if h is None else state_width * h
        if len(state) != 2 or not same_dim(state[0], x[0]) or not same_dim(state[1], want):
            raise ShapeError(f"{name}: the state {fmt_shape(state)} must be (batch, "
                             f"{want}) to go with x {fmt_shape(x)}")
    return x[0], h


def _sigmoid(x):
    """1 / (1 + e^-x) without overflow: e = e^-|x| <= 1, then 1 / (1 + e) or e / (1 + e).

    The same numbers as the ``sigmoid`` op's (to rounding), in fewer passes over the gates.
    """
    xp = get_array_module(x)
    e = xp.abs(x)
    xp.negative(e, out=e)
    xp.exp(e, out=e)
    r = e + 1
    xp.reciprocal(r, out=r)
    return xp.where(x >= 0, r, e * r)


def _project(x, W, b, U=None, h=None):
    """x W + b (+ h U): every gate's pre-activation at once."""
    a = x @ W + b
    if U is not None:
        a = a + h @ U
    return a


def _weight_grads(xp, da, x, W, U, h, need):
    """dx, dW, db, dU, dh of a = x W + b + h U, each computed only when needed."""
    dx = da @ W.T if need[0] else None
    dW = x.T @ da if need[1] else None
    db = da.sum(axis=0) if need[2] else None
    dU = h.T @ da if U is not None and need[3] else None
    dh = da @ U.T if U is not None and need[4] else None
    return dx, dW, db, dU, dh


def _needs(ctx, n_inputs):
    need = tuple(ctx.needs_input_grad) or (True,) * n_inputs
    return need + (False,) * (5 - len(need))


@register
class RNNCell(Op):
    """One step of an Elman RNN: h' = tanh(x W + h U + b) (h = 0 without a state)."""

    name = "rnn_cell"
    inputs = ("x", "W", "b", "U?", "h?")

    def infer(self, x, W, b, U=None, h=None):
        batch, units = _check("rnn_cell", x, W, b, U, h, 1)
        return (batch, units)

    def forward(self, ctx, x, W, b, U=None, h=None):
        y = get_array_module(x).tanh(_project(x, W, b, U, h))
        ctx.save(x, W, U, h, y)
        return y

    def backward(self, ctx, gy):
        x, W, U, h, y = ctx.saved
        da = gy * (1 - y * y)
        grads = _weight_grads(get_array_module(gy), da, x, W, U, h, _needs(ctx, 5))
        return grads if U is not None else grads[:3]


@register
class LSTMCell(Op):
    """One LSTM step on the state s = [h | c] (batch, 2H); gates i, f, g, o (PyTorch's order)."""

    name = "lstm_cell"
    inputs = ("x", "W", "b", "U?", "s?")

    def infer(self, x, W, b, U=None, s=None):
        batch, units = _check("lstm_cell", x, W, b, U, s, 4, state_width=2)
        return (batch, None if units is None else 2 * units)

    def forward(self, ctx, x, W, b, U=None, s=None):
        xp = get_array_module(x)
        n = W.shape[1] // 4
        a = _project(x, W, b, U, None if s is None else s[:, :n])
        gates = _sigmoid(a)  # i, f and o (g's column block is overwritten by its tanh)
        i, f, g, o = (gates[:, k * n:(k + 1) * n] for k in range(4))
        xp.tanh(a[:, 2 * n:3 * n], out=g)
        out = xp.empty((x.shape[0], 2 * n), dtype=gates.dtype)  # [h | c]
        c = out[:, n:]
        xp.multiply(i, g, out=c)
        if s is not None:
            c += f * s[:, n:]
        tc = xp.tanh(c)
        xp.multiply(o, tc, out=out[:, :n])
        ctx.save(x, W, U, s, gates, tc)
        return out

    def backward(self, ctx, gy):
        x, W, U, s, gates, tc = ctx.saved
        xp = get_array_module(gy)
        n = tc.shape[1]
        i, f, g, o = (gates[:, k * n:(k + 1) * n] for k in range(4))
        dh = gy[:, :n]
        dc = 1 - tc * tc
        dc *= o
        dc *= dh
        dc += gy[:, n:]                                 # dL/dc = dL/dc' + dL/dh o tanh'(c)
        da = xp.empty_like(gates)
        di, df, dg, do = (da[:, k * n:(k + 1) * n] for k in range(4))
        xp.multiply(dc, g, out=di)
        di *= i * (1 - i)                               # sigmoid' = i (1 - i)
        if s is None:
            df[...] = 0                                 # c_prev = 0
        else:
            xp.multiply(dc, s[:, n:], out=df)
            df *= f * (1 - f)
        xp.multiply(dc, i, out=dg)
        dg *= 1 - g * g                                 # tanh' = 1 - g^2
        xp.multiply(dh, tc, out=do)
        do *= o * (1 - o)
        dx, dW, db, dU, dh_prev = _weight_grads(xp, da, x, W, U, None if s is None else s[:, :n],
                                                _needs(ctx, 5))
        if s is None:
            return dx, dW, db
        ds = None
        if dh_prev is not None:
            ds = xp.empty_like(gy)
            ds[:, :n] = dh_prev
            xp.multiply(dc, f, out=ds[:, n:])
        return dx, dW, db, dU, ds


@register
class GRUCell(Op):
    """One GRU step: gates r, z, n (PyTorch's order), h' = (1 - z) n + z h."""

    name = "gru_cell"
    inputs = ("x", "W", "b", "bh", "U?", "h?")

    def infer(self, x, W, b, bh, U=None, h=None):
        batch, units = _check("gru_cell", x, W, b, U, h, 3)
        if not (len(bh) == 1 and same_dim(bh[0], W[1])):
            raise ShapeError(f"gru_cell: bh {fmt_shape(bh)} must have 3H = {W[1]} entries")
        return (batch, units)

    def forward(self, ctx, x, W, b, bh, U=None, h=None):
        xp = get_array_module(x)
        n = W.shape[1] // 3
        xa = x @ W + b
        ha = bh if h is None else h @ U + bh
        rz = _sigmoid(xa[:, :2 * n] + ha[..., :2 * n])
        r, z = rz[:, :n], rz[:, n:]
        hn = ha[..., 2 * n:]
        cand = xp.tanh(xa[:, 2 * n:] + r * hn)
        y = cand - z * cand if h is None else cand + z * (h - cand)
        ctx.save(x, W, U, h, r, z, cand, hn, bh.shape)
        return y

    def backward(self, ctx, gy):
        x, W, U, h, r, z, cand, hn, bh_shape = ctx.saved
        xp = get_array_module(gy)
        dcand = gy * (1 - z) * (1 - cand * cand)
        dz = gy * ((0 if h is None else h) - cand) * z * (1 - z)
        dr = dcand * hn * r * (1 - r)
        dxa = xp.concatenate([dr, dz, dcand], axis=1)
        dha = xp.concatenate([dr, dz, dcand * r], axis=1)
        need = _needs(ctx, 6)
        dx = dxa @ W.T if need[0] else None
        dW = x.T @ dxa if need[1] else None
        db = dxa.sum(axis=0) if need[2] else None
        dbh = dha.sum(axis=0).reshape(bh_shape) if need[3] else None
        if h is None:
            return dx, dW, db, dbh
        dU = h.T @ dha if need[4] else None
        dh = dha @ U.T + gy * z if need[5] else None
        return dx, dW, db, dbh, dU, dh
