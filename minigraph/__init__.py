"""minigraph: a declarative deep-learning framework for learning how neural networks compute.

A model is a YAML or JSON file of ops (nodes) wired by named tensors (edges).  The public API:

* ``load(path_or_dict)`` -> :class:`Model` (``forward``, ``backward``, ``value``, ``grad``)
* ``load_graph(source)`` -> :class:`Graph` (checked, shapes inferred, scheduled)
* ``draw(model_or_graph_or_path, grads=True)`` -> a picture with values and gradients
* ``GraphBuilder`` to build a model in Python and save it as a file
* ``register_op`` / ``register`` + ``Op`` to add ops
* ``check_gradients`` for numerical gradient checks
"""
import importlib

# name -> the module that defines it, imported on first use (PEP 562): ``import minigraph``
# stays quick, so that the command line can answer Ctrl-C from its very start
_EXPORTS = {
    **dict.fromkeys(["Model", "draw", "load", "load_graph", "save_model"], ".api"),
    "get_array_module": ".backend", "GraphBuilder": ".builder",
    **dict.fromkeys(["Executor", "Pass", "init_params"], ".engine"),
    **dict.fromkeys(["DataError", "MinigraphError", "ModelError", "RunError"], ".errors"),
    "check_gradients": ".gradcheck", **dict.fromkeys(["Graph", "build_graph"], ".graph"),
    **dict.fromkeys(["REGISTRY", "Attr", "Op", "get_op", "register"], ".ops"),
    "register_op": ".ops.custom", **dict.fromkeys(["dump_json", "dump_yaml"], ".spec"),
}
_RENAMED = {"select_backend": (".backend", "select")}


def __getattr__(name):
    module, attr = _RENAMED.get(name, (_EXPORTS.get(name), name))
    if module is None:
        raise AttributeError(f"module 'minigraph' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), attr)
    globals()[name] = value  # found once; later lookups do not come here
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | set(_RENAMED))


__version__ = "0.1.0"

__all__ = [
    "Attr", "DataError", "Executor", "Graph", "GraphBuilder", "MinigraphError", "Model",
    "ModelError", "Op", "Pass", "REGISTRY", "RunError", "build_graph", "check_gradients",
    "draw", "dump_json", "dump_yaml", "get_array_module", "get_op", "init_params", "load",
    "load_graph", "register", "register_op", "save_model", "select_backend",
]
