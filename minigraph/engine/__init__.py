"""The engine: plan a graph's passes once, then run them.

* ``plan.py``: one :class:`Step` per node, the caller's rewrites, gradient pruning, last use.
* ``run.py``: the forward loop (one dict from tensor name to array) and the backward loop.
* ``feeds.py``: data checked against the declared inputs before any op runs.
* ``params.py``: fresh params from the graph's initializers.
* ``executor.py``: :class:`Executor`, which plans once and runs.
"""
from .executor import Executor
from .params import init_params
from .plan import FLOAT_DTYPES, Step, plain_context
from .run import Pass

__all__ = ["Executor", "FLOAT_DTYPES", "Pass", "Step", "init_params", "plain_context"]
