"""Model files: located errors, round trips, the builder, custom ops, shape inference."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import minigraph as mg
from minigraph.errors import ModelError
from minigraph.graph import build_graph
from minigraph.loader import parse_text
from minigraph.spec import dump_json, dump_yaml, parse_spec

from malformed_cases import MALFORMED

MODELS = sorted(Path(__file__).resolve().parent.parent.joinpath("models").glob("*.yaml"))

BASE = """\
minigraph: 1
name: tiny
inputs:
  x: {shape: [batch, 2]}
  t: {shape: [batch, 1]}
params:
  W: {shape: [2, 1], init: xavier_uniform}
  b: {shape: [1], init: zeros}
nodes:
  - {name: fc, op: matmul, inputs: [x, W], outputs: [z]}
  - {name: bias, op: add, inputs: [z, b], outputs: [a]}
  - {name: act, op: sigmoid, inputs: [a], outputs: [y]}
  - {name: loss, op: bce, inputs: [y, t], outputs: [L]}
outputs: [y]
loss: L
"""


def build(text, file="m.yaml"):
    return build_graph(parse_spec(parse_text(text, file)))


# ==== malformed files =============================================================================

def test_table_is_large_enough():
    assert len(MALFORMED) >= 30


@pytest.mark.parametrize("case_id, old, new, message", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_file_is_located(case_id, old, new, message):
    text = new if old is None else BASE.replace(old, new, 1)
    assert old is None or old in BASE, "the case must change the base model"
    with pytest.raises(ModelError) as info:
        build(text)
    assert str(info.value) == message


def test_base_model_is_valid():
    g = build(BASE)
    assert [n.name for n in g.nodes] == ["fc", "bias", "act", "loss"]
    assert g.tensors["y"].shape == ("batch", 1)
    assert g.tensors["L"].shape == ()


def test_json_syntax_error_is_located():
    with pytest.raises(ModelError) as info:
        parse_text('{"minigraph": 1,\n  "name": "m",\n  "inputs": {,}\n}', "m.json")
    assert str(info.value).startswith("m.json:3:14: JSON syntax error")


def test_json_duplicate_key_is_located():
    text = json.dumps(yaml.safe_load(BASE), indent=2).replace('"name": "tiny"',
                                                               '"name": "tiny", "name": "x"')
    with pytest.raises(ModelError, match=r"m\.json:3:19: duplicate key 'name'"):
        build(text, "m.json")


def test_json_numbers_follow_json_rules():
    text = json.dumps(yaml.safe_load(BASE)).replace('"init": "zeros"', '"init": {"constant": 1e-3}')
    g = build(text, "m.json")
    assert g.params["b"].init == {"constant": 0.001}


def test_unused_param_is_a_warning():
    text = BASE.replace("  b: {shape: [1], init: zeros}\n",
                        "  b: {shape: [1], init: zeros}\n  extra: {shape: [3]}\n")
    g = build(text)
    assert g.warnings == ["m.yaml:9:3: warning: param 'extra' is not used by any node"]


def test_order_in_file_does_not_matter():
    lines = BASE.splitlines(keepends=True)
    nodes = [i for i, line in enumerate(lines) if line.startswith("  - {")]
    shuffled = [lines[i] for i in reversed(nodes)]
    text = "".join(lines[:nodes[0]] + shuffled + lines[nodes[-1] + 1:])
    assert [n.name for n in build(text).nodes] == ["fc", "bias", "act", "loss"]


def test_schedule_is_deterministic_for_independent_branches():
    text = BASE.replace("  - {name: loss,", "  - {name: side, op: exp, inputs: [x], outputs: [e]}\n"
                                             "  - {name: loss,")
    orders = {tuple(n.name for n in build(text).nodes) for _ in range(5)}
    assert orders == {("fc", "bias", "act", "side", "loss")}


def test_symbolic_dimensions_must_agree_at_run_time():
    model = mg.load(yaml.safe_load(BASE))
    with pytest.raises(mg.DataError, match="'t' has batch = 3, but another input has batch = 4"):
        model.forward({"x": np.zeros((4, 2)), "t": np.zeros((3, 1))})


# ==== round trips =================================================================================

@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_file_to_graph_to_file_is_identity(path):
    data = yaml.safe_load(path.read_text())
    g = mg.load_graph(path)
    assert g.to_dict() == data
    assert yaml.safe_load(dump_yaml(g.spec)) == data
    assert json.loads(dump_json(g.spec)) == data
    again = build(dump_json(g.spec), "again.json")
    assert again.to_dict() == data


def test_yaml_and_json_spellings_give_the_same_graph(tmp_path):
    g = build(BASE)
    (tmp_path / "m.json").write_text(dump_json(g.spec))
    j = mg.load_graph(tmp_path / "m.json")
    assert j.to_dict() == g.to_dict()
    assert [(n.name, n.inputs, n.outputs) for n in j.nodes] == \
           [(n.name, n.inputs, n.outputs) for n in g.nodes]


# ==== Python API ==================================================================================

def test_builder_saves_a_file_like_a_hand_written_one(tmp_path):
    b = mg.GraphBuilder("tiny")
    b.input("x", ["batch", 2])
    b.input("t", ["batch", 1])
    b.param("W", [2, 1], init="xavier_uniform")
    b.param("b", [1], init="zeros")
    b.matmul("x", "W", name="fc", out="z")
    b.add("z", "b", name="bias", out="a")
    b.sigmoid("a", name="act", out="y")
    b.bce("y", "t", name="loss", out="L")
    b.output("y")
    b.loss = "L"
    b.save(tmp_path / "tiny.yaml")
    assert (tmp_path / "tiny.yaml").read_text() == BASE


def test_builder_refuses_to_save_an_invalid_model(tmp_path):
    b = mg.GraphBuilder("bad")
    b.input("x", ["batch", 2])
    b.node("matmul", ["x", "nope"], name="fc")
    with pytest.raises(ModelError, match="undefined tensor 'nope'"):
        b.save(tmp_path / "bad.yaml")
    assert not (tmp_path / "bad.yaml").exists()


def test_values_and_gradients_by_name():
    model = mg.load(yaml.safe_load(BASE))
    x = np.array([[0.0, 1.0], [1.0, 1.0]])
    t = np.array([[1.0], [0.0]])
    model.set_params({"W": np.array([[0.5], [-0.25]]), "b": np.array([0.1])})
    out = model.forward({"x": x, "t": t})
    z = x @ np.array([[0.5], [-0.25]]) + 0.1
    y = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(out["y"], y, rtol=1e-6)
    model.backward()
    # d(mean BCE)/dz = (y - t) / N for a sigmoid output
    dz = (y - t) / 2
    np.testing.assert_allclose(model.grad("a"), dz, rtol=1e-5)
    np.testing.assert_allclose(model.grad("W"), x.T @ dz, rtol=1e-5)
    np.testing.assert_allclose(model.grad("b"), dz.sum(0), rtol=1e-5)
    assert model.value("z").shape == (2, 1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_set_params_copies_the_callers_arrays(dtype):
    model = mg.load(yaml.safe_load(BASE), dtype=dtype)
    mine = {"W": np.array([[0.5], [-0.25]], dtype=dtype), "b": np.array([0.1], dtype=dtype)}
    kept = {k: v.copy() for k, v in mine.items()}
    model.set_params(mine)
    for name, param in model.params.items():  # what an optimizer step does to them
        param -= 1.0
    for name in mine:
        np.testing.assert_array_equal(mine[name], kept[name])
    mine["W"][...] = 7.0  # and the other way round
    assert not (model.value("W") == 7.0).any()


def test_fan_out_gradients_accumulate():
    d = {"minigraph": 1, "name": "fan", "inputs": {"x": {"shape": [3]}},
         "nodes": [{"name": "sq", "op": "mul", "inputs": ["x", "x"], "outputs": ["y"]},
                   {"name": "plus", "op": "add", "inputs": ["y", "x"], "outputs": ["z"]},
                   {"name": "s", "op": "sum", "inputs": ["z"], "outputs": ["L"]}],
         "outputs": ["z"], "loss": "L"}
    model = mg.load(d)
    model.forward({"x": np.array([1.0, 2.0, 3.0])})
    model.backward()
    np.testing.assert_allclose(model.grad("x"), [3.0, 5.0, 7.0])  # d(x^2 + x)/dx = 2x + 1


def test_sign_blocks_gradients():
    d = {"minigraph": 1, "name": "s", "inputs": {"x": {"shape": [2]}},
         "nodes": [{"name": "sg", "op": "sign", "inputs": ["x"], "outputs": ["s"]},
                   {"name": "m", "op": "mul", "inputs": ["s", "x"], "outputs": ["y"]},
                   {"name": "r", "op": "sum", "inputs": ["y"], "outputs": ["L"]}],
         "outputs": ["y"], "loss": "L"}
    model = mg.load(d)
    model.forward({"x": np.array([-2.0, 3.0])})
    model.backward()
    np.testing.assert_allclose(model.grad("x"), [-1.0, 1.0])  # only through the mul
    assert model.grad("s") is not None


def test_register_a_custom_op():
    def cube(x):
        return x * x * x

    def cube_grad(xs, y, gy):
        (x,) = xs
        return (3 * x * x * gy,)

    mg.register_op("test_cube", cube, cube_grad, doc="x^3")
    try:
        d = {"minigraph": 1, "name": "c", "params": {"p": {"shape": [2], "init": {"value": [1, 2]}}},
             "inputs": {},
             "nodes": [{"name": "c", "op": "test_cube", "inputs": ["p"], "outputs": ["y"]},
                       {"name": "s", "op": "sum", "inputs": ["y"], "outputs": ["L"]}],
             "outputs": ["y"], "loss": "L"}
        model = mg.load(d)
        model.forward({})
        np.testing.assert_allclose(model.backward()["p"], [3.0, 12.0])
        rows = mg.check_gradients(model.graph, {})
        assert all(r.ok for r in rows)
    finally:
        mg.REGISTRY.pop("test_cube")


def test_seeded_init_repeats_bit_for_bit():
    g = build(BASE)
    a = mg.init_params(g, seed=7)
    b = mg.init_params(g, seed=7)
    c = mg.init_params(g, seed=8)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["W"], c["W"])


def test_layer_ops_expand_into_grouped_primitives():
    d = yaml.safe_load(BASE)
    d["params"] = {}
    d["nodes"] = [
        {"name": "fc1", "op": "linear", "inputs": ["x"], "outputs": ["h"], "attrs": {"units": 4}},
        {"name": "act", "op": "sigmoid", "inputs": ["h"], "outputs": ["hs"]},
        {"name": "fc2", "op": "linear", "inputs": ["hs"], "outputs": ["y0"],
         "attrs": {"units": 1}},
        {"name": "out", "op": "sigmoid", "inputs": ["y0"], "outputs": ["y"]},
        {"name": "loss", "op": "bce", "inputs": ["y", "t"], "outputs": ["L"]}]
    g = mg.load_graph(d)
    assert list(g.params) == ["fc1.W", "fc1.b", "fc2.W", "fc2.b"]
    assert g.params["fc1.W"].shape == [2, 4]
    assert [n.name for n in g.groups()["fc1"]] == ["fc1.matmul", "fc1.add"]
    assert g.to_dict() == d  # the file keeps the layer op
    assert all(r.ok for r in mg.check_gradients(g, {"x": np.ones((3, 2)),
                                                    "t": np.ones((3, 1))}))


def test_conv_model_shapes_are_inferred_before_data():
    d = {"minigraph": 1, "name": "cnn", "inputs": {"x": {"shape": ["batch", 1, 28, 28]}},
         "nodes": [
             {"name": "c1", "op": "conv", "inputs": ["x"], "outputs": ["f1"],
              "attrs": {"filters": 8, "kernel": 3, "padding": 1}},
             {"name": "p1", "op": "maxpool2d", "inputs": ["f1"], "outputs": ["q1"],
              "attrs": {"kernel": 2}},
             {"name": "fl", "op": "flatten", "inputs": ["q1"], "outputs": ["v"]},
             {"name": "fc", "op": "linear", "inputs": ["v"], "outputs": ["y"],
              "attrs": {"units": 10}}],
         "outputs": ["y"]}
    g = mg.load_graph(d)
    assert g.tensors["q1"].shape == ("batch", 8, 14, 14)
    assert g.tensors["v"].shape == ("batch", 8 * 14 * 14)
    assert g.params["fc.W"].shape == [1568, 10]
