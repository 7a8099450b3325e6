"""ONNX's own backend node tests, run through `minigraph import` and minigraph's engine.

Every node case of onnx (pinned in the `onnx` extra) whose ops all have a minigraph mapping is
imported, run forward on NumPy and compared with the case's expected outputs at the case's
tolerances (and dtypes).  `onnx_conformance.json` holds the expected status of each case:

* ``pass``;
* ``unsupported: REASON``: the importer refuses the case with exactly that message;
* ``different-by-design: REASON``: the importer refuses it because minigraph deliberately
  differs (the reason says how).

A case whose status changes fails the test, and so does a case that runs but gives a
different answer (a wrong answer is never an allowed status).  After a deliberate change,
rewrite the file with ``python tests/test_onnx_conformance.py --write``.
"""
from __future__ import annotations

import collections
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

EXPECTED = Path(__file__).with_name("onnx_conformance.json")
PINNED = "1.23.2"  # the onnx of the `onnx` extra: its node cases are what EXPECTED lists
MAPPED = frozenset(
    "Add Sub Mul Div Pow Neg Exp Log Sqrt Abs MatMul Gemm Transpose Reshape Flatten Concat "
    "ReduceSum ReduceMean ReduceMax Sigmoid Tanh Relu LeakyRelu Elu Softplus Sign Swish Softmax "
    "LogSoftmax Conv MaxPool AveragePool Dropout Identity SoftmaxCrossEntropyLoss "
    "NegativeLogLikelihoodLoss Slice Gather Unsqueeze".split())
# The modules of onnx.backend.test.case.node that make cases of only mapped ops (importing all
# of them builds 1,884 cases; these build the 333 mapped ones).
MODULES = (
    "abs add averagepool clip concat conv div dropout elu exp flatten gemm identity leakyrelu "
    "log logsoftmax matmul maxpool mish mul neg negativeloglikelihoodloss pow reduce_log_sum "
    "reducel1 reducemax reducemean reducesum reducesumsquare relu reshape sigmoid sign softmax "
    "softmax_cross_entropy_loss softplus sqrt sub swiglu swish tanh transpose slice gather "
    "unsqueeze").split()
# Inputs minigraph takes as attributes: (op type, input position).
STATIC = {("Reshape", 1), ("ReduceSum", 1), ("ReduceMean", 1), ("ReduceMax", 1),
          ("Dropout", 1), ("Dropout", 2), ("Slice", 1), ("Slice", 2), ("Slice", 3),
          ("Slice", 4), ("Gather", 1), ("Unsqueeze", 1)}
DESIGN = {  # importer messages that mark a deliberate difference, and why
    "training_mode = true": "different-by-design: a training-mode Dropout draws its mask from "
                            "minigraph's generator, not from the case's",
    "an integer base": "different-by-design: an integer tensor to a float power is a float "
                    "tensor (NumPy's and PyTorch's promotion); ONNX keeps the integer dtype",
}


def mapped_cases():
    """The node cases whose ops are all mapped, in onnx's order."""
    pytest.importorskip("onnx", reason="the onnx extra is not installed (pip install "
                                       "'minigraph[onnx]')")
    import onnx
    import onnx.backend.test.case.node as node_cases

    if onnx.__version__ != PINNED:
        pytest.skip(f"the expected statuses are for onnx {PINNED} (the onnx extra), found "
                    f"{onnx.__version__}")
    for name in MODULES:
        importlib.import_module(f"{node_cases.__name__}.{name}")
    seen = collections.OrderedDict()
    for case in node_cases._NodeTestCases:
        if {n.op_type for n in case.model.graph.node} <= MAPPED:
            seen.setdefault(case.name, case)
    return list(seen.values())


def run_case(case) -> str:
    """'pass', 'unsupported: ...', 'different-by-design: ...' or 'WRONG: ...'."""
    from minigraph.api import load_graph
    from minigraph.backend import select
    from minigraph.engine import Executor
    from minigraph.errors import MinigraphError
    from minigraph.onnx_io import import_model

    model = case.model
    inits = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    inputs, expected = case.data_sets[0]
    feeds = dict(zip(names, inputs))
    static = {n.input[i] for n in model.graph.node for i in range(len(n.input))
              if (n.op_type, i) in STATIC and n.input[i] in feeds}
    try:
        spec, weights = import_model(model, static={k: feeds[k] for k in static})
        graph = load_graph(spec)
    except MinigraphError as exc:
        message = exc.message
        reason = next((why for key, why in DESIGN.items() if key in message), None)
        return reason or f"unsupported: {message}"
    floats = [a.dtype for a in inputs if np.asarray(a).dtype.kind == "f"]
    dtype = "float64" if any(d == np.float64 for d in floats) else "float32"
    executor = Executor(graph, select("numpy"), dtype=dtype)
    params = {k: np.asarray(v, dtype=dtype) for k, v in weights.items()}
    run = executor.forward(params, {k: v for k, v in feeds.items() if k not in static},
                           training=False, rng=np.random.default_rng(0))
    for name, want in zip(spec["outputs"] + ([spec["loss"]] if "loss" in spec else []),
                          expected):
        got = np.asarray(run.values[name])
        want = np.asarray(want)
        if got.dtype != want.dtype or got.shape != want.shape:
            return f"WRONG: {name} is {got.dtype}{got.shape}, expected {want.dtype}{want.shape}"
        if not np.allclose(got, want, rtol=case.rtol, atol=case.atol, equal_nan=True):
            return f"WRONG: {name} differs by {np.max(np.abs(got - want)):.3g}"
    return "pass"


def statuses() -> dict:
    with np.errstate(all="ignore"):
        return {case.name: run_case(case) for case in mapped_cases()}


def test_onnx_node_cases_keep_their_status():
    got = statuses()
    expected = json.loads(EXPECTED.read_text())
    assert sorted(got) == sorted(expected), "the set of mapped cases changed"
    wrong = {k: v for k, v in got.items() if v.startswith("WRONG")}
    assert not wrong, f"wrong answers: {wrong}"
    changed = {k: (expected[k], v) for k, v in got.items() if v != expected[k]}
    assert not changed, f"status changed (expected, now): {changed}"
    counts = collections.Counter(v.split(":")[0] for v in got.values())
    print(f"\nONNX node cases: {len(got)} mapped, {dict(counts)}")


if __name__ == "__main__":  # python tests/test_onnx_conformance.py [--write]
    result = statuses()
    for key, value in result.items():
        print(f"{key}: {value}")
    print(collections.Counter(v.split(":")[0] for v in result.values()))
    if "--write" in sys.argv:
        EXPECTED.write_text(json.dumps(result, indent=1) + "\n")
