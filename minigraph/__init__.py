"""minigraph: a declarative deep-learning framework for learning how neural networks compute.

A model is a YAML or JSON file of ops (nodes) wired by named tensors (edges).  The public API:

* ``load(path_or_dict)`` -> :class:`Model` (``forward``, ``backward``, ``value``, ``grad``)
* ``load_graph(source)`` -> :class:`Graph` (checked, shapes inferred, scheduled)
* ``draw(model_or_graph_or_path, grads=True)`` -> a picture with values and gradients
* ``GraphBuilder`` to build a model in Python and save it as a file
* ``register_op`` / ``register`` + ``Op`` to add ops
* ``check_gradients`` for numerical gradient checks
"""
from .api import Model, draw, load, load_graph, save_model
from .backend import get_array_module, select as select_backend
from .builder import GraphBuilder
from .engine import Executor, Pass, init_params
from .errors import DataError, MinigraphError, ModelError, RunError
from .gradcheck import check_gradients
from .graph import Graph, build_graph
from .ops import REGISTRY, Attr, Op, get_op, register
from .ops.custom import register_op
from .spec import dump_json, dump_yaml

__version__ = "0.1.0"

__all__ = [
    "Attr", "DataError", "Executor", "Graph", "GraphBuilder", "MinigraphError", "Model",
    "ModelError", "Op", "Pass", "REGISTRY", "RunError", "build_graph", "check_gradients",
    "draw", "dump_json", "dump_yaml", "get_array_module", "get_op", "init_params", "load",
    "load_graph", "register", "register_op", "save_model", "select_backend",
]
