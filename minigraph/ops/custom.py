"""Register a custom op from plain functions (the Python API's ``register_op``).

``forward(*xs, **attrs) -> y`` computes the output; ``backward(xs, y, gy, **attrs)`` returns
one gradient per input (None for none); ``infer(*shapes, **attrs) -> shape`` is the shape rule
(default: the first input's shape).  Inputs and output are saved for backward.

A custom op may not take the name of a built-in op or layer op unless ``override=True`` (it
would replace the built-in for the whole process).  Its backward is checked: one gradient per
input, each shaped like its input; otherwise a :class:`~minigraph.errors.GradientShapeError`
names the op, the node, the input and both shapes.
"""
from __future__ import annotations

from ..errors import GradientShapeError, ModelError
from ..text import fmt_shape
from .base import REGISTRY, Attr, Op, register
from .layers import LAYERS


def register_op(name, forward, backward, infer=None, *, inputs=("x",), attrs=None, doc="",
                override=False):
    """Create, register and return an op class built from the given functions.

    ``override=True`` is needed to take the name of a built-in op (``relu``) or layer op
    (``linear``); registering a custom op's name again replaces it (a notebook cell re-run).
    """
    if not override:
        _refuse_builtin(name)
    declared = {}
    for key, default in (attrs or {}).items():
        declared[key] = default if isinstance(default, Attr) else Attr(_kind(default), default)

    class Custom(Op):
        custom = True

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
            grads = tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)
            return check_grads(self, xs, grads)

    Custom.__name__ = Custom.__qualname__ = f"Custom_{name}"
    Custom.name = name
    Custom.inputs = tuple(inputs)
    Custom.attrs = declared
    Custom.doc = doc or (forward.__doc__ or "custom op").strip().splitlines()[0]
    return register(Custom)


def _refuse_builtin(name) -> None:
    """A ModelError when ``name`` is a built-in op or layer op (a custom one may be replaced)."""
    existing = REGISTRY.get(name) or LAYERS.get(name)
    if existing is not None and not getattr(existing, "custom", False):
        kind = "layer op" if name in LAYERS else "op"
        raise ModelError(f"'{name}' is a built-in {kind}: registering a custom op under that "
                         "name would replace it for the whole process; choose another name, "
                         "or pass override=True to replace it on purpose")


def check_grads(op, xs, grads) -> tuple:
    """``grads`` if there is one per input, each None or shaped like its input."""
    node = getattr(op, "node_name", None)
    where = f"custom op '{op.name}'" + (f", node '{node}'" if node else "")
    if len(grads) != len(xs):
        raise GradientShapeError(f"{where}: backward returned {len(grads)} gradient(s) for "
                                 f"{len(xs)} input(s) ({', '.join(op.inputs)})")
    tensors = getattr(op, "node_inputs", ())
    for i, (x, g) in enumerate(zip(xs, grads)):
        if g is None or _shape(g) == tuple(getattr(x, "shape", ())):
            continue
        label = op.inputs[min(i, len(op.inputs) - 1)].rstrip("?*")
        tensor = f" (tensor '{tensors[i]}')" if i < len(tensors) else ""
        raise GradientShapeError(
            f"{where}: backward returned a gradient of shape {fmt_shape(_shape(g))} for input "
            f"'{label}'{tensor} of shape {fmt_shape(x.shape)}; a gradient must have its "
            "input's shape")
    return grads


def _shape(g) -> tuple:
    return tuple(getattr(g, "shape", ()))


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
