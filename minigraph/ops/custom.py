"""Register a custom op from plain functions (the Python API's ``register_op``).

``forward(*xs, **attrs) -> y`` computes the output; ``backward(xs, y, gy, **attrs)`` returns
one gradient per input (None for none); ``infer(*shapes, **attrs) -> shape`` is the shape rule
(default: the first input's shape).  Inputs and output are saved for backward.
"""
from __future__ import annotations

from .base import Attr, Op, register


def register_op(name, forward, backward, infer=None, *, inputs=("x",), attrs=None, doc=""):
    """Create, register and return an op class built from the given functions."""
    declared = {}
    for key, default in (attrs or {}).items():
        declared[key] = default if isinstance(default, Attr) else Attr(_kind(default), default)

    class Custom(Op):
        def infer(self, *shapes):
            if infer is None:
                return shapes[0]
            return tuple(infer(*shapes, **self.attr_values()))

        def forward(self, ctx, *xs):
            y = forward(*xs, **self.attr_values())
            ctx.save(xs, y)
            return y

        def backward(self, ctx, gy):
            xs, y = ctx.saved
            grads = backward(xs, y, gy, **self.attr_values())
            return tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)

    Custom.__name__ = Custom.__qualname__ = f"Custom_{name}"
    Custom.name = name
    Custom.inputs = tuple(inputs)
    Custom.attrs = declared
    Custom.doc = doc or (forward.__doc__ or "custom op").strip().splitlines()[0]
    return register(Custom)


def _kind(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, list):
        return "ints"
    return "str"
