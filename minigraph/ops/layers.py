"""Layer ops: shorthand nodes that create their params and expand into primitives at load.

``{name: fc1, op: linear, inputs: [x], outputs: [h], attrs: {units: 64}}`` becomes params
``fc1.W (in, 64)`` and ``fc1.b (64,)`` and the nodes ``fc1.matmul`` and ``fc1.add``, grouped
as ``fc1`` (renders draw the group as one cluster).  Execution only ever sees primitive ops.
"""
from __future__ import annotations

from ..limits import MAX_DIM
from ..registry import Registry
from .base import Attr, Op, ShapeError, fmt_shape

LAYERS = Registry("layer op")

# Class decorator: make a layer op available in model files.
register_layer = LAYERS.register()


class Layer(Op):
    """A layer op declares attributes like any op, and ``expand`` instead of forward/backward.

    ``expand(name, x_shape, output)`` returns ``(params, nodes)``: params as
    ``{param_name: (shape, init)}`` and nodes as ``[(node_name, op, inputs, output, attrs)]``.
    """

    def expand(self, name: str, x_shape: tuple, output: str):
        raise NotImplementedError

    def expand_inputs(self, name: str, shapes: list, inputs: list, output: str):
        """``expand`` for a layer that reads more than x (a recurrent layer's initial state):
        every input's shape and name.  A node tuple may carry a sixth item, its group
        (default: the layer's name)."""
        return self.expand(name, shapes[0], output)


def _known_int(dim, what, x_shape):
    if not isinstance(dim, int):
        raise ShapeError(f"{what} of input {fmt_shape(x_shape)} must be a fixed size, got {dim!r}")
    return dim


@register_layer
class Linear(Layer):
    """Fully connected layer: y = x W + b, with W (in, units) and b (units,)."""

    name = "linear"
    attrs = {
        "units": Attr("int", doc="number of output features", minimum=1, maximum=MAX_DIM),
        "bias": Attr("bool", True, "add a bias vector b"),
        "init": Attr("str", "xavier_uniform", "initializer of W"),
        "bias_init": Attr("str", "zeros", "initializer of b"),
    }

    def expand(self, name, x_shape, output):
        if len(x_shape) < 1:
            raise ShapeError(f"linear needs an input with features, got {fmt_shape(x_shape)}")
        fan_in = _known_int(x_shape[-1], "the last dimension", x_shape)
        params = {f"{name}.W": ((fan_in, self.units), self.init)}
        if not self.bias:
            return params, [(f"{name}.matmul", "matmul", [None, f"{name}.W"], output, {})]
        params[f"{name}.b"] = ((self.units,), self.bias_init)
        return params, [
            (f"{name}.matmul", "matmul", [None, f"{name}.W"], f"{name}.xW", {}),
            (f"{name}.add", "add", [f"{name}.xW", f"{name}.b"], output, {}),
        ]


@register_layer
class Conv(Layer):
    """Convolution layer: conv2d with its own kernel W (filters, in_ch, k, k) and bias b."""

    name = "conv"
    attrs = {
        "filters": Attr("int", doc="number of output channels", minimum=1, maximum=MAX_DIM),
        "kernel": Attr("int", doc="kernel height and width", minimum=1, maximum=MAX_DIM),
        "stride": Attr("int", 1, "step between windows", minimum=1, maximum=MAX_DIM),
        "padding": Attr("int", 0, "zeros added on each side", minimum=0, maximum=MAX_DIM),
        "bias": Attr("bool", True, "add one bias per output channel"),
        "init": Attr("str", "he_uniform", "initializer of W"),
        "bias_init": Attr("str", "zeros", "initializer of b"),
    }

    def expand(self, name, x_shape, output):
        if len(x_shape) != 4:
            raise ShapeError(f"conv needs an NCHW input of rank 4, got {fmt_shape(x_shape)}")
        channels = _known_int(x_shape[1], "the channel dimension", x_shape)
        k = self.kernel
        params = {f"{name}.W": ((self.filters, channels, k, k), self.init)}
        inputs = [None, f"{name}.W"]
        if self.bias:
            params[f"{name}.b"] = ((self.filters,), self.bias_init)
            inputs.append(f"{name}.b")
        attrs = {"stride": self.stride, "padding": self.padding}
        return params, [(f"{name}.conv2d", "conv2d", inputs, output, attrs)]
