"""The op registry.  Importing this package registers every built-in op.

``get_op(name)`` returns an op class, ``REGISTRY`` maps names to classes, and ``register`` is
the decorator for new ops (built-in or custom)."""
from .base import REGISTRY, Attr, Context, Op, ShapeError, get_op, register, unbroadcast
from . import arithmetic  # noqa: F401  (each import registers a family of ops)
from . import linalg, shape, reduce, activation, probability, conv, regularization, loss  # noqa: F401,E501
from . import pool  # noqa: F401  (general N-d pooling)
from . import sequence, recurrent, recurrent_layers  # noqa: F401  (slice, stack; rnn, lstm, gru)

__all__ = ["Attr", "Context", "Op", "REGISTRY", "ShapeError", "get_op", "register", "unbroadcast"]
