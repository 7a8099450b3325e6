"""ONNX export and import: every curriculum model, onnxruntime as the oracle, and back.

* every model in models/ exports, passes ``onnx.checker.check_model(full_check=True)`` (the
  exporter runs it) and onnxruntime's outputs (and loss) equal minigraph's within 1e-5 on a
  random batch, with the initial params and after 5 epochs of training;
* export -> import gives back the file's own nodes, and a model whose forward values and
  param gradients equal the original's -- also when the metadata is stripped, so that every
  ONNX node goes through its converter (the exporter's own constants, such as bce's log
  floor, then come back as params: only the original params' gradients are compared);
* a hand-made ONNX model with Gemm and Flatten(axis=2) imports, runs like onnxruntime, trains;
* what cannot be imported is one located error, exit 2; export without onnx exits 2 naming
  the extra.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed (pip install "
                                          "'minigraph[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install "
                                                "'minigraph[onnx]')")

from minigraph.api import Model, load_graph  # noqa: E402
from minigraph.onnx_io import import_model, export_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = sorted((ROOT / "models").glob("*.yaml"))
BATCH = 3


def random_feeds(graph, seed=0):
    """A random batch for every input: floats from N(0, 1), class indices below the class
    count of the loss that reads them (0/1 for other integer inputs)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, spec in graph.inputs.items():
        shape = tuple(BATCH if isinstance(d, str) else d for d in spec.shape)
        if spec.real_dtype.startswith("int"):
            readers = [n for n in graph.nodes if name in n.inputs]
            classes = graph.tensors[readers[0].inputs[0]].shape[-1] if readers else 2
            feeds[name] = rng.integers(0, classes, shape).astype(spec.real_dtype)
        else:
            feeds[name] = rng.standard_normal(shape).astype(np.float32)
            if any(n.op_name == "bce" and n.inputs[1] == name for n in graph.nodes):
                feeds[name] = (feeds[name] > 0).astype(np.float32)  # targets in [0, 1]
    return feeds


def trained_params(path, graph, model, tmp_path, seed=1):
    """Params after 5 epochs of the file's own training (`run --save`); for models without
    a train section or on MNIST (too slow for a unit test), the initial params moved by
    seeded noise (zero biases become non-zero)."""
    data = str(graph.spec.data or "")
    if graph.spec.train is not None and "mnist" not in data:
        from minigraph.api import run_model
        from minigraph.checkpoint import load_checkpoint

        run_model(path, epochs=5, save=tmp_path / "trained.npz", backend="numpy")
        return dict(load_checkpoint(tmp_path / "trained.npz").params)
    rng = np.random.default_rng(seed)
    return {k: np.asarray(v) + 0.1 * rng.standard_normal(np.shape(v)).astype(np.float32)
            for k, v in model.params.items()}


def run_ort(proto, feeds):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    wanted = {i.name for i in session.get_inputs()}
    return dict(zip(names, session.run(None, {k: v for k, v in feeds.items() if k in wanted})))


def forward_backward(graph, params, feeds):
    model = Model(graph, params=params)
    outputs = model.forward({k: v for k, v in feeds.items() if k in graph.inputs})
    if graph.loss:
        outputs[graph.loss] = model.value(graph.loss)
    grads = model.backward() if graph.loss else {}
    return outputs, grads


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_curriculum_model_matches_onnxruntime_and_comes_back(path, tmp_path):
    graph = load_graph(path)
    model = Model(graph)
    feeds = random_feeds(graph)
    initial = {k: np.asarray(v) for k, v in model.params.items()}
    trained = trained_params(path, graph, model, tmp_path)
    assert any(not np.array_equal(trained[k], initial[k]) for k in initial) or not initial
    for params in (initial, trained):
        proto = export_model(graph, params, with_loss=graph.loss is not None)
        ours, grads = forward_backward(graph, params, feeds)
        theirs = run_ort(proto, feeds)
        assert sorted(theirs) == sorted(ours)
        for name, value in ours.items():
            np.testing.assert_allclose(theirs[name], value, rtol=1e-5, atol=1e-5,
                                       err_msg=f"{path.stem}: {name}")
        spec, weights = import_model(proto)
        assert spec["nodes"] == graph.spec.to_dict()["nodes"]  # the file's own nodes
        assert sorted(weights) == sorted(params)
        check_same_pass(load_graph(spec), weights, feeds, ours, grads, exact=True)
    plain = strip_metadata(proto)  # every ONNX node through its converter
    spec, weights = import_model(plain)
    if graph.loss:
        spec["outputs"].remove(graph.loss)
        spec["loss"] = graph.loss
    check_same_pass(load_graph(spec), weights, feeds, ours, grads, exact=False)


def strip_metadata(proto):
    plain = onnx.ModelProto()
    plain.CopyFrom(proto)
    plain.ClearField("metadata_props")
    return plain


def check_same_pass(graph, weights, feeds, outputs, grads, exact):
    got, got_grads = forward_backward(graph, weights, feeds)
    tol = {"rtol": 0, "atol": 0} if exact else {"rtol": 1e-5, "atol": 1e-6}
    for name, value in outputs.items():
        np.testing.assert_allclose(got[name], value, **tol, err_msg=name)
    if exact:
        assert sorted(got_grads) == sorted(grads)
    for name, value in grads.items():
        np.testing.assert_allclose(got_grads[name], value, **tol, err_msg=f"d/d{name}")


def test_exported_file_shows_shapes_names_and_description():
    graph = load_graph(ROOT / "models" / "mnist_cnn.yaml")
    proto = export_model(graph, {k: np.asarray(v) for k, v in Model(graph).params.items()})
    onnx.checker.check_model(proto, full_check=True)
    x = next(i for i in proto.graph.input if i.name == "x")
    assert x.type.tensor_type.shape.dim[0].dim_param == "batch"
    infos = {v.name: v for v in proto.graph.value_info}
    for tensor in ("c1", "r1", "p1", "f", "fc.xW"):  # every edge has a shape
        dims = infos[tensor].type.tensor_type.shape.dim
        want = graph.tensors[tensor].shape
        assert [d.dim_param or d.dim_value for d in dims] == list(want)
    assert proto.doc_string == graph.spec.description
    assert {n.name for n in proto.graph.node} >= {"conv1.conv2d", "pool1", "fc.matmul"}
    assert proto.opset_import[0].version == 17


@pytest.mark.parametrize("opset", [13, 18, 21])
def test_other_opsets_pass_the_checker_and_match_onnxruntime(opset):
    graph = load_graph(ROOT / "models" / "mnist_cnn_deep.yaml")
    params = {k: np.asarray(v) for k, v in Model(graph).params.items()}
    proto = export_model(graph, params, opset=opset, with_loss=True)
    assert proto.opset_import[0].version == opset
    feeds = random_feeds(graph)
    ours, _ = forward_backward(graph, params, feeds)
    theirs = run_ort(proto, feeds)
    for name, value in ours.items():
        np.testing.assert_allclose(theirs[name], value, rtol=1e-5, atol=1e-5, err_msg=name)


def hand_made_gemm_flatten():
    """x (2, 3, 4, 5) -> Flatten(axis=2) (6, 20) -> Gemm(W^T, alpha 0.5, beta 2) -> y (6, 4)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 20)).astype(np.float32)
    c = rng.standard_normal(4).astype(np.float32)
    nodes = [helper.make_node("Flatten", ["x"], ["flat"], name="flatten", axis=2),
             helper.make_node("Gemm", ["flat", "W", "C"], ["y"], name="gemm", alpha=0.5,
                              beta=2.0, transB=1)]
    graph = helper.make_graph(
        nodes, "gemm_flatten", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                              [2, 3, 4, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [6, 4])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(c, "C")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_hand_made_gemm_and_flatten_axis_2_import_and_train(tmp_path):
    from minigraph.gradcheck import check_gradients
    from minigraph.render import build_dot

    proto = hand_made_gemm_flatten()
    spec, weights = import_model(proto)
    graph = load_graph(spec)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    model = Model(graph, params=weights)
    got = model.forward({"x": x})["y"]
    np.testing.assert_allclose(got, run_ort(proto, {"x": x})["y"], rtol=1e-5, atol=1e-5)
    assert [n["op"] for n in spec["nodes"]] == ["reshape", "matmul", "mul", "mul", "add"]
    assert spec["params"]["W"]["shape"] == [20, 4]  # Gemm's transB weight kept as (in, out)
    # trainable: add a loss and check every param's gradient against central differences
    spec["inputs"]["t"] = {"shape": [6, 4]}
    spec["nodes"].append({"name": "loss", "op": "mse", "inputs": ["y", "t"], "outputs": ["L"]})
    spec["loss"] = "L"
    graph = load_graph(spec)
    feeds = {"x": x.astype(np.float64), "t": np.zeros((6, 4))}
    params = {k: np.asarray(v, np.float64) for k, v in weights.items()}
    assert all(c.ok for c in check_gradients(graph, feeds, params))
    assert "gemm" in build_dot(graph)  # it renders


def test_a_pytorch_export_imports_and_matches_pytorch(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (make torch)")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 8, 3, stride=2, padding=1), torch.nn.Tanh(),
        torch.nn.AvgPool2d(2, ceil_mode=True), torch.nn.Flatten(), torch.nn.Linear(32, 5),
        torch.nn.LogSoftmax(dim=1))
    x = torch.randn(3, 1, 14, 14)
    path = tmp_path / "net.onnx"
    try:
        torch.onnx.export(net, (x,), str(path), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False,
                          opset_version=17)
    except Exception as exc:  # noqa: BLE001 - this torch cannot export without more packages
        pytest.skip(f"torch.onnx.export failed here: {type(exc).__name__}: {exc}")
    spec, weights = import_model(path)
    assert spec["inputs"]["x"]["shape"] == ["batch", 1, 14, 14]
    assert [n["op"] for n in spec["nodes"]] == ["conv2d", "relu", "maxpool2d", "conv2d", "tanh",
                                                "avgpool", "flatten", "matmul", "add",
                                                "log_softmax"]
    y = Model(load_graph(spec), params=weights).forward({"x": x.numpy()})["y"]
    np.testing.assert_allclose(y, net(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def write_onnx(tmp_path, node, inputs, outputs, inits=()):
    from onnx import helper

    graph = helper.make_graph([node], "bad", inputs, outputs, list(inits))
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def minigraph(*args, env=None):
    return subprocess.run([str(Path(sys.executable).parent / "minigraph"), *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=ROOT)


def test_unsupported_op_and_attribute_are_one_located_error(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    path = write_onnx(tmp_path, helper.make_node("Cos", ["x"], ["y"], name="wave"), [x], [y])
    result = minigraph("import", path, "-o", tmp_path / "m.yaml")
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"{path}: node 'wave' (Cos): minigraph has no op")
    w = numpy_helper.from_array(np.ones((4, 2, 3, 3), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="grouped", group=2)
    path = write_onnx(tmp_path, node, [x], [y], [w])
    result = minigraph("import", path, "-o", tmp_path / "m.yaml")
    assert result.returncode == 2
    assert "node 'grouped' (Conv) attribute 'group': grouped convolution" in result.stderr
    assert not (tmp_path / "m.yaml").exists()


def test_a_file_that_is_not_onnx_is_one_error(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_text("minigraph: 1\n")
    result = minigraph("import", path, "-o", tmp_path / "m.yaml")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {path} is not an ONNX model")
    result = minigraph("import", tmp_path / "missing.onnx", "-o", tmp_path / "m.yaml")
    assert result.returncode == 2 and "cannot read ONNX file" in result.stderr


def test_cli_export_then_import_writes_model_and_weights(tmp_path):
    out = tmp_path / "cnn.onnx"
    result = minigraph("export", ROOT / "models" / "mnist_cnn.yaml", "-o", out, "--with-loss")
    assert result.returncode == 0, result.stderr
    result = minigraph("import", out, "-o", tmp_path / "cnn.yaml")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cnn.npz").exists() and "weights in" in result.stdout
    check = minigraph("summary", tmp_path / "cnn.yaml")
    assert check.returncode == 0, check.stderr


def test_export_without_onnx_exits_2_naming_the_extra(tmp_path):
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "onnx.py").write_text("raise ImportError('blocked for this test')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker), str(ROOT)]))
    result = minigraph("export", ROOT / "models" / "xor.yaml", "-o", tmp_path / "x.onnx",
                       env=env)
    assert result.returncode == 2
    assert "pip install 'minigraph[onnx]'" in result.stderr


def every_op_model():
    """One model that uses every op with an exporter, in several of their forms."""
    def n(name, op, inputs, attrs=None):
        node = {"name": name, "op": op, "inputs": inputs, "outputs": [name]}
        return {**node, "attrs": attrs} if attrs else node

    nodes = [
        n("p1", "maxpool", ["x"], {"kernel": [3, 2], "stride": [2, 1], "padding": [1, 0, 0, 1],
                                   "ceil_mode": True}),
        n("p2", "avgpool", ["x"], {"kernel": 2, "padding": 1, "count_include_pad": False}),
        n("p3", "avgpool2d", ["x"], {"kernel": 3, "stride": 1, "padding": 1}),
        n("p4", "maxpool2d", ["x"], {"kernel": 2}),
        n("c1", "conv2d", ["x", "K", "kb"], {"stride": 2, "padding": 1}),
        n("f1", "flatten", ["p3"], {"start_axis": 2}),
        n("s1", "sum", ["f1"], {"axis": -1}),
        n("m1", "mean", ["f1"], {"axis": [1, 2], "keepdims": True}),
        n("mx", "max", ["f1"], {"axis": 1}),
        n("r1", "reshape", ["mx"], {"shape": [-1, 4, 9]}),
        n("tr", "transpose", ["r1"], {"perm": [0, 2, 1]}),
        n("z", "matmul", ["tr", "W"]),
        n("sw", "swish", ["z"], {"beta": 1.5}),
        n("sq", "square", ["sw"]),
        n("idn", "identity", ["sq"]),
        n("mxm", "maximum", ["idn", "z"]),
        n("cat", "concat", ["s1", "s1"], {"axis": 1}),
        n("ce3", "cross_entropy", ["mxm", "k9", "cw"], {"ignore_index": 2, "reduction": "none"}),
        n("cep", "cross_entropy", ["cat", "t"], {"reduction": "sum"}),
        n("lsm", "log_softmax", ["cat"], {"axis": -1}),
        n("nll", "nll", ["lsm", "k"]),
        n("l1", "l1", ["cat", "t"]),
        n("mse", "mse", ["cat", "t"], {"reduction": "sum"}),
        n("bwl", "bce_with_logits", ["cat", "t"]),
        n("sg", "sigmoid", ["th"]),  # p in (0.27, 0.73): bce of p near 1 is ill-conditioned
        n("bce", "bce", ["sg", "t"]),
        n("dr", "dropout", ["cat"], {"p": 0.3}),
        n("sm", "softmax", ["dr"], {"axis": 0}),
        n("act", "leaky_relu", ["cat"], {"alpha": 0.2}),
        n("el", "elu", ["act"], {"alpha": 0.5}),
        n("sp", "softplus", ["el"]),
        n("sgn", "sign", ["cat"]),
        n("ab", "abs", ["sgn"]),
        n("ng", "neg", ["sp"]),
        n("ex", "exp", ["ng"]),
        n("lg", "log", ["sp"]),
        n("sr", "sqrt", ["sp"]),
        n("pw", "pow", ["sp", "two"]),
        n("dv", "div", ["pw", "sr"]),
        n("sb", "sub", ["dv", "lg"]),
        n("ml", "mul", ["sb", "ex"]),
        n("ad", "add", ["ml", "ab"]),
        n("th", "tanh", ["ad"]),
        n("rl", "relu", ["th"]),
        n("sli", "slice", ["q"], {"axis": 1, "index": -1}),
        n("slr", "slice", ["q"], {"axis": -1, "start": 1, "step": 2}),
        n("st", "stack", ["sli", "sli"], {"axis": 1}),
        n("st1", "stack", ["sli"], {"axis": -1}),
        n("rc0", "rnn_cell", ["sli", "Wr", "br"]),
        n("rc1", "rnn_cell", ["sli", "Wr", "br", "Ur", "rc0"]),
        n("lc0", "lstm_cell", ["sli", "Wl", "bl"]),
        n("lc1", "lstm_cell", ["sli", "Wl", "bl", "Ul", "lc0"]),
        n("gc0", "gru_cell", ["sli", "Wg", "bg", "bhg"]),
        n("gc1", "gru_cell", ["sli", "Wg", "bg", "bhg", "Ug", "gc0"]),
    ]
    outputs = ["p1", "p2", "p4", "c1", "m1", "ce3", "cep", "nll", "l1", "mse", "bwl", "bce",
               "sm", "rl", "slr", "st", "st1", "rc1", "lc1", "gc1"]
    uniform = {"uniform": {"low": -1, "high": 1}}
    cells = {name: {"shape": shape, "init": uniform} for name, shape in (
        ("Wr", [4, 5]), ("br", [5]), ("Ur", [5, 5]), ("Wl", [4, 20]), ("bl", [20]),
        ("Ul", [5, 20]), ("Wg", [4, 15]), ("bg", [15]), ("bhg", [15]), ("Ug", [5, 15]))}
    return {"minigraph": 1, "name": "every_op",
            "inputs": {"x": {"shape": ["batch", 2, 6, 6]}, "t": {"shape": ["batch", 4]},
                       "k": {"shape": ["batch"], "dtype": "int64"},
                       "k9": {"shape": ["batch", 9], "dtype": "int64"},
                       "q": {"shape": ["batch", 3, 4]}},
            "params": {"W": {"shape": [4, 4], "init": "xavier_uniform"},
                       "K": {"shape": [3, 2, 3, 3], "init": "he_uniform"},
                       "kb": {"shape": [3], "init": uniform}, **cells},
            "constants": {"cw": {"value": [1.0, 2.0, 0.5, 1.5]}, "two": {"value": 2.0}},
            "nodes": nodes, "outputs": outputs}


def test_every_op_exports_and_matches_onnxruntime():
    from minigraph.onnx_io.export_ops import EXPORTERS
    from minigraph.ops import REGISTRY

    spec = every_op_model()
    assert sorted({node["op"] for node in spec["nodes"]}) == sorted(EXPORTERS)
    assert set(EXPORTERS) <= set(REGISTRY)
    graph = load_graph(spec)
    rng = np.random.default_rng(5)
    feeds = {"x": rng.standard_normal((3, 2, 6, 6)).astype(np.float32),
             "t": rng.random((3, 4)).astype(np.float32),
             "k": rng.integers(0, 4, 3), "k9": rng.integers(0, 4, (3, 9)),
             "q": rng.standard_normal((3, 3, 4)).astype(np.float32)}
    params = {k: np.asarray(v) for k, v in Model(graph).params.items()}
    ours, _ = forward_backward(graph, params, feeds)
    proto = export_model(graph, params)
    theirs = run_ort(proto, feeds)
    for name, value in ours.items():
        np.testing.assert_allclose(theirs[name], value, rtol=1e-5, atol=1e-5, err_msg=name)
    spec2, weights = import_model(strip_metadata(proto))  # and back through the converters
    got, _ = forward_backward(load_graph(spec2), weights, feeds)
    for name, value in ours.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def recurrent_model(op, cell, states):
    """x (batch, 4, 3) through one recurrent layer of 5 units into an mse loss; with
    ``states`` the initial states are inputs and every step's h is the output."""
    inputs = {"x": {"shape": ["batch", 4, 3]},
              "t": {"shape": ["batch", 4, 5] if states else ["batch", 5]}}
    layer_inputs = ["x"]
    if states:
        for name in ("h0", "c0") if op == "lstm" else ("h0",):
            inputs[name] = {"shape": ["batch", 5]}
            layer_inputs.append(name)
    attrs = {"units": 5, "cell": cell, "return_sequences": states}
    return {"minigraph": 1, "name": f"{op}_{cell}", "inputs": inputs,
            "nodes": [{"name": "rec", "op": op, "inputs": layer_inputs, "outputs": ["h"],
                       "attrs": attrs},
                      {"name": "loss", "op": "mse", "inputs": ["h", "t"], "outputs": ["L"]}],
            "outputs": ["h"], "loss": "L"}


@pytest.mark.parametrize("states", [False, True], ids=["zero_state", "states_sequences"])
@pytest.mark.parametrize("cell", ["compact", "primitive"])
@pytest.mark.parametrize("op", ["rnn", "lstm", "gru"])
def test_recurrent_layers_export_and_come_back(op, cell, states):
    """Every recurrent layer form matches onnxruntime, comes back as the file's own layer
    node (its unrolled steps regrouped), and through the converters alone as primitives
    (Gather, Slice, Unsqueeze + Concat and the gates' ops) with the same values and
    gradients."""
    spec = recurrent_model(op, cell, states)
    graph = load_graph(spec)
    params = {k: np.asarray(v) for k, v in Model(graph).params.items()}
    feeds = random_feeds(graph)
    proto = export_model(graph, params, with_loss=True)
    ours, grads = forward_backward(graph, params, feeds)
    theirs = run_ort(proto, feeds)
    assert sorted(theirs) == sorted(ours)
    for name, value in ours.items():
        np.testing.assert_allclose(theirs[name], value, rtol=1e-5, atol=1e-5, err_msg=name)
    back, weights = import_model(proto)
    assert back["nodes"] == graph.spec.to_dict()["nodes"]
    assert sorted(weights) == sorted(params) and "params" not in back
    check_same_pass(load_graph(back), weights, feeds, ours, grads, exact=True)
    back, weights = import_model(strip_metadata(proto))
    assert {n["op"] for n in back["nodes"]} >= {"slice", "matmul", "tanh"}
    back["outputs"].remove("L")
    back["loss"] = "L"
    check_same_pass(load_graph(back), weights, feeds, ours, grads, exact=False)
