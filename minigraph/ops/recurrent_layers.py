"""Recurrent layer ops ``rnn``, ``lstm`` and ``gru``: one set of weights, unrolled through time.

``{name: lstm1, op: lstm, inputs: [x], outputs: [h], attrs: {units: 16}}`` with ``x (batch, T,
F)`` (T and F fixed in the model file) creates its params once, with PyTorch's layout (so a
PyTorch model's weights map over directly: ``W = weight_ih_l0.T``, ``U = weight_hh_l0.T``)

=====  ===========  ===========  ==================================  =================
layer  W            U            bias                                gate order
=====  ===========  ===========  ==================================  =================
rnn    (F, H)       (H, H)       b (H) = bias_ih + bias_hh           --  (tanh)
lstm   (F, 4H)      (H, 4H)      b (4H) = bias_ih + bias_hh          i, f, g, o
gru    (F, 3H)      (H, 3H)      b (3H) = bias_ih, bh (3H) = bias_hh r, z, n
=====  ===========  ===========  ==================================  =================

and expands into T steps whose nodes are grouped ``lstm1/t1`` ... ``lstm1/tT``; every step
reads the same W, U and b, so their gradients are the sums over the steps (the engine adds
the gradients of a tensor read several times).  Optional inputs give the initial state:
``inputs: [x, h0]`` (rnn, gru) or ``[x, h0, c0]`` (lstm), each ``(batch, H)``; without them
the state starts at zero.  The output is the last hidden state ``(batch, H)``, or with
``return_sequences: true`` every hidden state stacked, ``(batch, T, H)``.

``cell: compact`` (the default) makes each step one ``rnn_cell``/``lstm_cell``/``gru_cell`` op
(:mod:`minigraph.ops.recurrent`); ``cell: primitive`` writes each step as the gates' matmul,
add, slice, sigmoid, tanh and mul nodes, so a student sees every gate.  Both compute the
same numbers.
"""
from __future__ import annotations

import math

from ..limits import MAX_DIM
from .base import Attr, ShapeError, fmt_shape
from .layers import Layer, register_layer

#: ``init: pytorch``: every weight and bias uniform in +-1/sqrt(H), as ``torch.nn.LSTM`` does.
PYTORCH_INIT = "pytorch"


class Unroll:
    """Collects a layer's nodes as ``(name, op, inputs, output, attrs, group)`` tuples."""

    def __init__(self, layer: str):
        self.layer = layer
        self.nodes: list = []

    def add(self, group: str, local: str, op: str, inputs: list, attrs=None, out=None) -> str:
        """A node ``GROUP.local`` writing ``out`` (default: its own name); returns ``out``."""
        name = f"{group}.{local}"
        out = out or name
        self.nodes.append((name, op, list(inputs), out, dict(attrs or {}), group))
        return out

    def gate(self, group: str, local: str, a: str, k: int, units: int) -> str:
        """Columns k*H ... (k+1)*H of ``a`` (the k-th gate)."""
        return self.add(group, local, "slice", [a],
                        {"axis": -1, "start": k * units, "stop": (k + 1) * units})


class Recurrent(Layer):
    """What rnn, lstm and gru share: attributes, params, the loop over time, the output."""

    gates = 1
    state_inputs = ("h0",)
    attrs = {
        "units": Attr("int", doc="H, the size of the hidden state", minimum=1, maximum=MAX_DIM),
        "return_sequences": Attr("bool", False, "output every step's h (batch, T, H), not "
                                                "only the last (batch, H)"),
        "cell": Attr("str", "compact", "compact: one cell op per step; primitive: the gates "
                                       "as matmul/add/slice/sigmoid/tanh/mul nodes",
                     choices=("compact", "primitive")),
        "init": Attr("str", PYTORCH_INIT, "initializer of W, U and the biases (pytorch: "
                                          "uniform +-1/sqrt(H))"),
        "bias_init": Attr("str", None, "initializer of the biases (default: as init, "
                                       "zeros for a named init)"),
    }

    def expand(self, name, x_shape, output):
        return self.expand_inputs(name, [x_shape], [None], output)

    def expand_inputs(self, name, shapes, inputs, output):
        steps, features = self._sizes(shapes)
        params = self._params(name, features)
        unroll = Unroll(name)
        state = self._initial_state(unroll, name, shapes, inputs)
        hs = []
        for t in range(1, steps + 1):
            last = t == steps and not self.return_sequences
            step = self._step_primitive if self.cell == "primitive" else self._step_compact
            state, h = step(unroll, name, f"{name}/t{t}", inputs[0], state, t,
                            output if last else None)
            hs.append(h)
        if self.return_sequences:
            unroll.add(name, "stack", "stack", hs, {"axis": 1}, out=output)
        return params, unroll.nodes

    # -- sizes and params ---------------------------------------------------------------------
    def _sizes(self, shapes):
        x = shapes[0]
        if len(x) != 3:
            raise ShapeError(f"{self.name} needs x of shape (batch, T, features), got "
                             f"{fmt_shape(x)}")
        for dim, what in ((x[1], "T (the number of steps)"), (x[2], "the number of features")):
            if not isinstance(dim, int):
                raise ShapeError(f"{what} of x {fmt_shape(x)} must be a fixed size, got {dim!r}")
        if len(shapes) > 1 + len(self.state_inputs):
            raise ShapeError(f"{self.name} takes x and at most {', '.join(self.state_inputs)}")
        if 1 < len(shapes) < 1 + len(self.state_inputs):
            raise ShapeError(f"{self.name}: give every initial state "
                             f"({', '.join(self.state_inputs)}) or none")
        for what, s in zip(self.state_inputs, shapes[1:]):
            if len(s) != 2 or s[1] != self.units:
                raise ShapeError(f"{self.name}: the initial state {what} must be (batch, "
                                 f"{self.units}), got {fmt_shape(s)}")
        return x[1], x[2]

    def _inits(self):
        if self.init != PYTORCH_INIT:
            return self.init, self.bias_init or "zeros"
        k = 1 / math.sqrt(self.units)
        uniform = {"uniform": {"low": -k, "high": k}}
        return uniform, self.bias_init or uniform

    def _params(self, name, features):
        H, G = self.units, self.gates
        w_init, b_init = self._inits()
        params = {f"{name}.W": ((features, G * H), w_init), f"{name}.U": ((H, G * H), w_init),
                  f"{name}.b": ((G * H,), b_init)}
        return params

    def _initial_state(self, unroll, name, shapes, inputs):
        """The state before step 1: None (zero) or the given input(s)."""
        return inputs[1] if len(inputs) > 1 else None

    def _x_at(self, unroll, group, x, t):
        return unroll.add(group, "x", "slice", [x], {"axis": 1, "index": t - 1})

    def _step_compact(self, unroll, name, group, x, state, t, out):
        xt = self._x_at(unroll, group, x, t)
        extra = [] if state is None else [f"{name}.U", state]
        h = unroll.add(group, "cell", f"{self.name}_cell", [xt, *self._cell_params(name), *extra],
                       out=out or f"{group}.h")
        return h, h

    def _cell_params(self, name):
        return [f"{name}.W", f"{name}.b"]


@register_layer
class RNN(Recurrent):
    """Elman RNN unrolled through time: h_t = tanh(x_t W + h_{t-1} U + b)."""

    name = "rnn"
    inputs = ("x", "h0?")

    def _step_primitive(self, unroll, name, group, x, h, t, out):
        xt = self._x_at(unroll, group, x, t)
        a = unroll.add(group, "xW", "matmul", [xt, f"{name}.W"])
        a = unroll.add(group, "xWb", "add", [a, f"{name}.b"])
        if h is not None:
            hu = unroll.add(group, "hU", "matmul", [h, f"{name}.U"])
            a = unroll.add(group, "a", "add", [a, hu])
        h = unroll.add(group, "tanh", "tanh", [a], out=out or f"{group}.h")
        return h, h


@register_layer
class GRU(Recurrent):
    """GRU unrolled through time (gates r, z, n as PyTorch): h_t = (1 - z) n + z h_{t-1}."""

    name = "gru"
    gates = 3
    inputs = ("x", "h0?")

    def _params(self, name, features):
        params = super()._params(name, features)
        params[f"{name}.bh"] = ((3 * self.units,), self._inits()[1])
        return params

    def _cell_params(self, name):
        return [f"{name}.W", f"{name}.b", f"{name}.bh"]

    def _step_primitive(self, unroll, name, group, x, h, t, out):
        H, add = self.units, unroll.add
        xt = self._x_at(unroll, group, x, t)
        xa = add(group, "xWb", "add", [add(group, "xW", "matmul", [xt, f"{name}.W"]),
                                       f"{name}.b"])
        ha = f"{name}.bh"
        if h is not None:
            ha = add(group, "hUb", "add", [add(group, "hU", "matmul", [h, f"{name}.U"]), ha])
        x_r, x_z, x_n = (unroll.gate(group, f"x_{g}", xa, k, H) for k, g in enumerate("rzn"))
        h_r, h_z, h_n = (unroll.gate(group, f"h_{g}", ha, k, H) for k, g in enumerate("rzn"))
        r = add(group, "r", "sigmoid", [add(group, "a_r", "add", [x_r, h_r])])
        z = add(group, "z", "sigmoid", [add(group, "a_z", "add", [x_z, h_z])])
        n = add(group, "n", "tanh", [add(group, "a_n", "add",
                                         [x_n, add(group, "r_hn", "mul", [r, h_n])])])
        last = out or f"{group}.h"
        if h is None:  # h' = n - z n
            h = add(group, "h", "sub", [n, add(group, "z_n", "mul", [z, n])], out=last)
        else:  # h' = n + z (h - n)
            zd = add(group, "z_d", "mul", [z, add(group, "d", "sub", [h, n])])
            h = add(group, "h", "add", [n, zd], out=last)
        return h, h


@register_layer
class LSTM(Recurrent):
    """LSTM unrolled through time (gates i, f, g, o as PyTorch); the state is (h, c)."""

    name = "lstm"
    gates = 4
    inputs = ("x", "h0?", "c0?")
    state_inputs = ("h0", "c0")
    attrs = {**Recurrent.attrs,
             "forget_bias": Attr("float", None, "start b at 0 but for the forget gate's F "
                                                "(1 is the usual choice: remember by default)")}

    def _params(self, name, features):
        params = super()._params(name, features)
        if self.forget_bias is not None:
            H = self.units
            start = [0.0] * H + [self.forget_bias] * H + [0.0] * (2 * H)
            params[f"{name}.b"] = ((4 * H,), {"value": start})
        return params

    def _initial_state(self, unroll, name, shapes, inputs):
        if len(inputs) == 1:
            return None
        if self.cell == "primitive":
            return (inputs[1], inputs[2])
        return unroll.add(name, "s0", "concat", [inputs[1], inputs[2]], {"axis": -1})

    def _step_compact(self, unroll, name, group, x, state, t, out):
        xt = self._x_at(unroll, group, x, t)
        extra = [] if state is None else [f"{name}.U", state]
        s = unroll.add(group, "cell", "lstm_cell", [xt, f"{name}.W", f"{name}.b", *extra],
                       out=f"{group}.s")
        h = None
        if out is not None or self.return_sequences:  # h is read only at the end
            h = unroll.add(group, "h", "slice", [s], {"axis": 1, "start": 0,
                                                      "stop": self.units}, out=out)
        return s, h

    def _step_primitive(self, unroll, name, group, x, state, t, out):
        H, add = self.units, unroll.add
        h, c = state if state is not None else (None, None)
        xt = self._x_at(unroll, group, x, t)
        a = add(group, "xWb", "add", [add(group, "xW", "matmul", [xt, f"{name}.W"]),
                                      f"{name}.b"])
        if h is not None:
            a = add(group, "a", "add", [a, add(group, "hU", "matmul", [h, f"{name}.U"])])
        i = add(group, "i", "sigmoid", [unroll.gate(group, "a_i", a, 0, H)])
        g = add(group, "g", "tanh", [unroll.gate(group, "a_g", a, 2, H)])
        o = add(group, "o", "sigmoid", [unroll.gate(group, "a_o", a, 3, H)])
        if c is None:
            c = add(group, "c", "mul", [i, g])
        else:
            f = add(group, "f", "sigmoid", [unroll.gate(group, "a_f", a, 1, H)])
            c = add(group, "c", "add", [add(group, "f_c", "mul", [f, c]),
                                        add(group, "i_g", "mul", [i, g])])
        h = add(group, "h", "mul", [o, add(group, "tanh_c", "tanh", [c])], out=out)
        return (h, c), h
