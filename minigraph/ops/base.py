"""The op contract: one small class per op, registered by name.

An op declares

* ``name``: the word used in model files (``op: matmul``);
* ``inputs``: its input names, in order; a name ending in ``?`` is optional, one ending in
  ``*`` takes all remaining inputs (``concat``);
* ``attrs``: ``{name: Attr(kind, default, doc)}`` (``Attr`` is :class:`minigraph.options.Option`);
  an unknown attribute is an error at load;
* ``infer(*shapes)``: the output shape from input shapes (no data: shapes may hold symbolic
  dimensions such as ``"batch"``, or ``None`` for "unknown");
* ``forward(ctx, *xs)``: the output array; it saves on ``ctx`` exactly what backward needs;
* ``backward(ctx, gy)``: one gradient per input (``None`` where there is none).

Ops get their array module from their inputs (``xp = get_array_module(x)``) and never call
NumPy directly, so the same code runs on CuPy.  Broadcasting binary ops reduce their gradients
with the one shared :func:`unbroadcast`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..backend import get_array_module  # noqa: F401  (ops import it from here)
from ..errors import ModelError
from ..options import HAS_NO, REQUIRED, Option, OptionError, check_options
from ..registry import Registry
from ..text import fmt_shape  # noqa: F401  (ops import it from here)

Attr = Option  # an op attribute is an option: ``Attr(kind, default, doc, ...)``
AttrError = OptionError  # raised when a node's attributes do not fit its op's declaration


class ShapeError(Exception):
    """Raised by shape rules; the graph adds the node, tensors and file location."""


# ==== the local rule, as a teacher writes it =====================================================

@dataclass(frozen=True)
class Rule:
    """An op's local rule in words and symbols: what the interactive page shows.

    ``words``: what the op does and how its gradient flows, in one or two sentences.
    ``forward``: the output as a formula; ``backward``: for each declared input name, the
    formula of dL/d(input).  Formulas name tensors by tokens that the page fills in with
    the node's own tensor names (or, for small tensors, their numbers):
    ``{x}`` an input's value, ``{out}`` the output's, ``{∂x}`` and ``{∂out}`` their
    gradients, ``{x.shape}`` a shape, ``{@alpha}`` an attribute's value, ``{self}`` the
    input a backward line is about (for ``concat``'s any number of inputs).
    """

    words: str
    forward: str
    backward: dict = field(default_factory=dict)


def rule_of(op) -> Rule:
    """The op's :class:`Rule`; ops without one (custom ops) get the chain rule in general."""
    if op.rule is not None:
        return op.rule
    names = [n.rstrip("?*") for n in op.inputs]
    return Rule(op.doc or op.name,
                "{out} = " + op.name + "(" + ", ".join("{%s}" % n for n in names) + ")",
                {n: "{∂out} · ∂{out}/∂{%s}  (the op's own backward)" % n for n in names})


# ==== the op base class ===========================================================================

class Context:
    """Per-node scratch space between forward and backward.

    ``saved`` holds what forward chose to keep; ``training`` tells dropout whether to act;
    ``rng`` is the run's random generator (same backend as the arrays);
    ``needs_input_grad`` (one bool per input) lets backward skip gradients nobody asked for.
    """

    __slots__ = ("saved", "training", "rng", "needs_input_grad")

    def __init__(self, training=False, rng=None, needs_input_grad=()):
        self.saved = None
        self.training = training
        self.rng = rng
        self.needs_input_grad = needs_input_grad

    def save(self, *arrays):
        self.saved = arrays


class Op:
    """Base class of every op; see the module docstring for the contract."""

    name: ClassVar[str] = ""
    inputs: ClassVar[tuple[str, ...]] = ("x",)
    attrs: ClassVar[dict[str, Attr]] = {}
    doc: ClassVar[str] = ""
    differentiable: ClassVar[bool] = True  # False: no gradient flows through (``sign``)
    integer_inputs: ClassVar[tuple[int, ...]] = ()  # inputs that may hold class indices
    rule: ClassVar[Rule | None] = None  # the local rule in words and symbols (see Rule)

    def __init__(self, **attrs):
        values = check_options(self.attrs, attrs, "attribute", f"op '{self.name}'",
                               unknown=HAS_NO)
        for key, value in values.items():
            setattr(self, key, value)

    # -- declared arity ----------------------------------------------------------------------
    @classmethod
    def arity(cls) -> tuple[int, int | None]:
        """(minimum, maximum) number of inputs; maximum None means any number."""
        required = [n for n in cls.inputs if not n.endswith(("?", "*"))]
        if any(n.endswith("*") for n in cls.inputs):
            return max(len(required), 1), None
        return len(required), len(cls.inputs)

    def attr_values(self) -> dict:
        """The node's attributes with defaults filled in."""
        return {k: getattr(self, k) for k in self.attrs}

    # -- the three rules ---------------------------------------------------------------------
    def infer(self, *shapes):
        """Output shape from input shapes; default: same shape as the first input."""
        return shapes[0]

    def forward(self, ctx: Context, *xs):
        raise NotImplementedError

    def backward(self, ctx: Context, gy):
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.attr_values().items())
        return f"{type(self).__name__}({args})"


# ==== registry ====================================================================================

REGISTRY = Registry("op")

# Class decorator: make ``cls`` available under ``cls.name`` in model files.
register = REGISTRY.register()


def get_op(name: str) -> type[Op]:
    """The op class registered under ``name``; a :class:`ModelError` with a did-you-mean
    and the ops that exist otherwise."""
    return REGISTRY.lookup(name, ModelError)


# ==== shared helpers ==============================================================================

def unbroadcast(g, shape):
    """Sum ``g`` down to ``shape``: the gradient of NumPy broadcasting, written once.

    Broadcasting added leading axes and stretched axes of size 1; their gradients are sums
    over those axes.
    """
    shape = tuple(shape)
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra > 0:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def same_dim(a, b) -> bool:
    """Whether two dimensions can be equal (unknown or symbolic ones may be)."""
    return a is None or b is None or isinstance(a, str) or isinstance(b, str) or a == b


def join_dim(a, b):
    """The dimension two compatible dimensions agree on (known beats symbolic beats unknown)."""
    for d in (a, b):
        if isinstance(d, int):
            return d
    return a if a is not None else b


def broadcast_shapes(*shapes):
    """NumPy broadcasting on shapes that may hold symbols; raises :class:`ShapeError`."""
    ndim = max(len(s) for s in shapes)
    out = []
    for i in range(ndim):
        dims = [s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0]
        result = 1
        for d in dims:
            if d == 1:
                continue
            if result == 1:
                result = d
            elif same_dim(result, d):
                result = join_dim(result, d)
            else:
                raise ShapeError("shapes " + " and ".join(fmt_shape(s) for s in shapes)
                                 + " do not broadcast")
        out.append(result)
    return tuple(out)


def norm_axis(axis, ndim):
    """Normalise an int/list/None axis attribute to a tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if not -ndim <= a < ndim:
            raise ShapeError(f"axis {a} is out of range for a tensor of rank {ndim}")
    return tuple(sorted(a % ndim for a in axes))


__all__ = [
    "Attr", "AttrError", "Context", "Op", "Option", "OptionError", "REGISTRY", "REQUIRED",
    "Rule", "ShapeError",
    "broadcast_shapes", "fmt_shape", "get_array_module", "get_op", "join_dim", "norm_axis",
    "register", "rule_of", "same_dim", "unbroadcast",
]
