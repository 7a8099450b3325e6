"""Drawing graphs (DOT text, SVG through graphviz-pure or dot) and plots of training."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import minigraph as mg
from minigraph import render
from minigraph.api import draw
from minigraph.errors import MinigraphError
from minigraph.render import GradScale
from minigraph.render import picture as pictures
from minigraph.text import format_lines

ROOT = Path(__file__).resolve().parent.parent
CURRICULUM = sorted((ROOT / "models").glob("*.yaml"))
HAS_RENDERER = pictures.find_renderer() is not None
needs_renderer = pytest.mark.skipif(not HAS_RENDERER, reason="no dot or graphviz-pure")

BACKPROP = {
    "minigraph": 1, "name": "backprop_basics", "inputs": {},
    "params": {"w": {"shape": [], "init": {"value": -2.0}},
               "x": {"shape": [], "init": {"value": 5.0}},
               "b": {"shape": [], "init": {"value": 3.0}}},
    "nodes": [
        {"name": "g", "op": "mul", "inputs": ["w", "x"], "outputs": ["g"]},
        {"name": "f", "op": "add", "inputs": ["g", "b"], "outputs": ["f"]},
    ],
    "outputs": ["f"], "loss": "f",
}

CHAIN = {
    "minigraph": 1, "name": "chain_rule",
    "inputs": {"x": {"shape": [2]}, "target": {"shape": [2]}},
    "constants": {"five": {"value": 5.0}, "three": {"value": 3.0}},
    "nodes": [
        {"name": "sq", "op": "square", "inputs": ["x"], "outputs": ["x2"]},
        {"name": "plus5", "op": "add", "inputs": ["x2", "five"], "outputs": ["y"]},
        {"name": "times3", "op": "mul", "inputs": ["three", "y"], "outputs": ["z"]},
        {"name": "diff", "op": "sub", "inputs": ["z", "target"], "outputs": ["d"]},
        {"name": "absd", "op": "abs", "inputs": ["d"], "outputs": ["ad"]},
        {"name": "total", "op": "sum", "inputs": ["ad"], "outputs": ["loss"]},
    ],
    "outputs": ["z"], "loss": "loss",
    "data": {"train": {"inline": {"x": [1, 2], "target": [2, 3]}}},
}

CNN = ROOT / "models" / "mnist_cnn.yaml"  # the lecture CNN (structure renders need no data)

XOR_DATA = {"train": {"inline": {"x": [[0, 0], [0, 1], [1, 0], [1, 1]],
                                 "t": [[0], [1], [1], [0]]}}}

XOR = {
    "minigraph": 1, "name": "xor2",
    "inputs": {"x": {"shape": ["batch", 2]}, "t": {"shape": ["batch", 1]}},
    "nodes": [
        {"name": "fc1", "op": "linear", "inputs": ["x"], "outputs": ["z1"], "attrs": {"units": 2}},
        {"name": "act1", "op": "sigmoid", "inputs": ["z1"], "outputs": ["h"]},
        {"name": "fc2", "op": "linear", "inputs": ["h"], "outputs": ["z2"], "attrs": {"units": 1}},
        {"name": "act2", "op": "sigmoid", "inputs": ["z2"], "outputs": ["y"]},
        {"name": "loss", "op": "bce", "inputs": ["y", "t"], "outputs": ["L"]},
    ],
    "outputs": ["y"], "loss": "L", "data": XOR_DATA,
    "train": {"epochs": 300, "seed": 1, "optimizer": {"type": "adam", "lr": 0.1},
              "metrics": ["accuracy"]},
}


def grad_label(dot: str, loss: str, tensor: str) -> str:
    """The text after ``∂loss/∂tensor`` on the edge that carries ``tensor``."""
    found = re.search(rf"∂{re.escape(loss)}/∂{re.escape(tensor)}</FONT></TD>"
                      r"<TD[^>]*><FONT[^>]*>(.*?)<BR", dot)
    assert found, f"no gradient label for {tensor}"
    return found.group(1)


def value_label(dot: str, tensor: str) -> str:
    found = re.search(rf"<B>{re.escape(tensor)}</B> .*?value(?:</FONT>)?</TD><TD[^>]*><FONT[^>]*>"
                      r"(.*?)<BR",
                      dot)
    assert found, f"no value label for {tensor}"
    return found.group(1)


# ==== numbers as text =============================================================================

def test_numbers_read_like_a_lecture():
    assert format_lines(np.float32(5.0)) == ["5"]
    assert format_lines(np.array([6.0, 12.0], dtype=np.float32)) == ["[6, 12]"]
    assert format_lines(np.array(-0.0)) == ["0"]
    assert format_lines(np.array([[0, 1], [1, 0]])) == ["[[0, 1], [1, 0]]"]
    lines = format_lines(np.arange(100.0).reshape(10, 10))
    assert lines == ["mean 49.5  std 28.87", "min 0  max 99"]
    assert "1 of 20 are NaN or inf" in format_lines(np.r_[np.ones(19), np.nan])


def test_wide_small_matrices_align_their_columns():
    lines = format_lines(np.array([[-0.4516, 1.125], [2.723, -1.036]]), one_line=10)
    assert lines == ["[[-0.4516,   1.125],", " [  2.723,  -1.036]]"]


# ==== structure ===================================================================================

def test_structure_has_styled_nodes_and_labelled_edges():
    dot = draw(CHAIN).dot
    assert "rankdir=LR" in dot
    assert "shape=ellipse" in dot and "shape=note" in dot and "shape=box" in dot
    assert "<B>square</B>" in dot and "sq</FONT>" in dot  # op and node name
    assert re.search(r"x2</TD></TR><TR><TD><FONT[^>]*>\(2\)", dot)  # tensor name and shape
    assert "doubleoctagon" in dot  # the loss sink
    assert "∂" not in dot  # no numbers without --grads


def test_layer_groups_are_clusters_with_their_params():
    dot = draw(CNN).dot
    clusters = re.findall(r"subgraph (cluster_\d+) \{", dot)
    assert len(clusters) == 3  # conv1, conv2, fc
    conv1 = dot[dot.index("subgraph cluster_1"):dot.index("subgraph cluster_2")]
    assert "conv1.W" in conv1 and "conv1.b" in conv1 and "<B>conv2d</B>" in conv1
    assert "padding=1" in conv1
    assert "(batch, 32," in dot  # c1's shape, wrapped
    assert not re.search(r"\bsize=", dot)  # natural size (pictures fit it readably)


def test_rankdir_and_bad_rankdir():
    assert "rankdir=TB" in draw(CHAIN, rankdir="TB").dot
    with pytest.raises(MinigraphError, match="rankdir"):
        draw(CHAIN, rankdir="sideways")


# ==== values and gradients ========================================================================

def test_backprop_basics_gradients_read_5_minus2_1():
    dot = draw(BACKPROP, grads=True).dot
    assert grad_label(dot, "f", "w") == "5"
    assert grad_label(dot, "f", "x") == "-2"
    assert grad_label(dot, "f", "b") == "1"
    assert value_label(dot, "g") == "-10"
    assert value_label(dot, "f") == "-7"


def test_chain_rule_gradient_of_x_reads_6_and_12():
    dot = draw(CHAIN, grads=True, all_grads=True).dot
    assert grad_label(dot, "loss", "x") == "[6, 12]"
    assert value_label(dot, "z") == "[18, 27]"
    assert "first training batch" in dot


def test_values_without_grads_and_a_model_without_loss():
    dot = draw(CHAIN, values=True).dot
    assert value_label(dot, "y") == "[6, 9]" and "∂" not in dot
    no_loss = {**BACKPROP, "loss": None}
    no_loss.pop("loss")
    dot = draw(no_loss, grads=True).dot
    assert value_label(dot, "g") == "-10"
    assert "no loss, so no gradients" in dot and "∂" not in dot


def test_large_tensors_are_summarised():
    dot = draw(CNN).dot  # structure needs no data
    assert "mean" not in dot
    model = mg.load(CNN)
    feeds = {"x": np.ones((2, 1, 28, 28), np.float32), "label": np.array([1, 2])}
    dot = draw(model, grads=True, feeds=feeds).dot
    assert re.search(r"mean -?[\d.e+-]+  std", dot) and "min " in dot


def test_a_model_that_ran_draws_its_own_pass():
    model = mg.load(BACKPROP)
    model.forward()
    model.backward()
    dot = draw(model).dot
    assert grad_label(dot, "f", "w") == "5" and "last pass" in dot


def test_params_from_a_checkpoint(tmp_path):
    from minigraph.checkpoint import Checkpoint, save_checkpoint

    path = tmp_path / "p.npz"
    graph = mg.load_graph(XOR)
    params = {k: np.full(p.shape, 0.5, np.float32) for k, p in graph.params.items()}
    save_checkpoint(path, Checkpoint(params))
    dot = draw(XOR, values=True, params=str(path)).dot
    assert "[[0.5, 0.5], [0.5, 0.5]]" in dot and "params from p.npz" in dot


def test_gradient_encoding_classes():
    scale = GradScale(1e-7, 1e3)
    assert scale.classify(None) == "none"
    assert scale.classify(np.zeros(3)) == "zero"
    assert scale.classify(np.full(3, 1e-9)) == "vanishing"
    assert scale.classify(np.full(3, 1e4)) == "exploding"
    assert scale.classify(np.array([1.0, np.nan])) == "nan"
    assert scale.classify(np.ones(2), value=np.array([np.inf])) == "nan"
    assert scale.edge_style(np.full(3, 1e-9))[1]["style"] == "dashed"
    assert float(scale.edge_style(np.full(3, 1e4))[1]["penwidth"]) >= 5
    small = float(scale.edge_style(np.full(1, 1e-5))[1]["penwidth"])
    big = float(scale.edge_style(np.full(1, 1e2))[1]["penwidth"])
    assert small < big and scale.color(1e-5) != scale.color(1e2)
    with pytest.raises(MinigraphError):
        GradScale(1.0, 0.5)


def _one_node(op, value, loss=True):
    model = {"minigraph": 1, "name": op, "inputs": {}, "constants": {"a": {"value": [value]}},
             "nodes": [{"name": "n", "op": op, "inputs": ["a"], "outputs": ["y"]},
                       {"name": "s", "op": "sum", "inputs": ["y"], "outputs": ["L"]}],
             "outputs": ["y"]}
    if loss:
        model["loss"] = "L"
    return model


def test_vanishing_exploding_and_nan_are_marked():
    dot = draw(_one_node("sigmoid", -17.0), grads=True, all_grads=True).dot  # sigmoid'(-17) ~ 4e-8
    assert "tiny gradient</B>" in dot and "style=dashed" in dot
    dot = draw(_one_node("exp", 10.0), grads=True, all_grads=True).dot  # e^10 ~ 22026
    assert "large gradient</B>" in dot and f'color="{render.EXPLODING_COLOR}"' in dot
    assert "exploding" not in dot and "vanishing" not in dot  # absolute bands, named plainly
    with np.errstate(all="ignore"):
        dot = draw(_one_node("log", -1.0), grads=True).dot
    assert ">NaN</B>" in dot and f'color="{render.NAN_COLOR}"' in dot
    dot = draw(_one_node("exp", 10.0), grads=True, all_grads=True, exploding=1e5).dot
    assert "large gradient</B>" not in dot
    assert "nodes:" not in draw(CHAIN, legend=False).dot


# ==== pictures ====================================================================================

@needs_renderer
def test_svg_parses_as_xml_and_has_every_node(tmp_path):
    picture = draw(CHAIN, grads=True, all_grads=True)
    path = picture.save(tmp_path / "chain.svg")
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    texts = "".join(root.itertext())
    assert "square" in texts and "12" in texts
    assert picture._repr_svg_().lstrip().startswith("<?xml")
    bundle = picture._repr_mimebundle_()
    assert "image/svg+xml" in bundle and "text/plain" in bundle


@needs_renderer
@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_png_and_pdf(tmp_path, fmt, magic):
    path = draw(BACKPROP, grads=True).save(tmp_path / f"bb.{fmt}")
    assert path.read_bytes().startswith(magic)


def test_graphviz_pure_is_found_beside_the_interpreter(monkeypatch):
    monkeypatch.setattr(pictures.shutil, "which", lambda name: None)
    beside = Path(pictures.sys.executable).parent / "graphviz-pure"
    found = pictures.find_renderer()
    assert found == ([str(beside)] if beside.is_file() else None)


def test_without_a_renderer_the_dot_file_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(pictures, "find_renderer", lambda: None)
    picture = draw(BACKPROP)
    with pytest.raises(MinigraphError, match="no Graphviz renderer found.*pip install "
                                             "graphviz-pure"):
        picture.save(tmp_path / "bb.svg")
    assert (tmp_path / "bb.dot").read_text().startswith("digraph")
    assert "text/plain" in picture._repr_mimebundle_()  # notebooks still get the DOT text
    assert picture._repr_svg_() is None
    picture.save(tmp_path / "only.dot")  # DOT needs no renderer
    assert (tmp_path / "only.dot").is_file()


def test_unknown_format(tmp_path):
    with pytest.raises(MinigraphError, match="format"):
        draw(BACKPROP).save(tmp_path / "bb.gif")


# ==== the curriculum ==============================================================================

def _is_mnist(graph) -> bool:
    return "mnist" in str(graph.spec.data)


@pytest.mark.parametrize("path", CURRICULUM, ids=[p.stem for p in CURRICULUM])
def test_each_curriculum_model_renders(path):
    graph = mg.load_graph(path)
    dot = draw(graph).dot
    assert dot.startswith("digraph") and "->" in dot
    for node in graph.nodes:
        assert f"<B>{node.op_name}</B>" in dot
    if not graph.inputs or (graph.spec.data and not _is_mnist(graph)):
        dot = draw(path, grads=graph.loss is not None, values=True).dot
        assert "value</FONT></TD>" in dot


@needs_renderer
@pytest.mark.parametrize("name", ["xor", "mnist_cnn"])
def test_curriculum_svg_parses(name, tmp_path):
    path = ROOT / "models" / f"{name}.yaml"
    if not path.is_file():
        pytest.skip(f"{path} not written yet")
    grads = not _is_mnist(mg.load_graph(path))
    out = draw(path, grads=grads).save(tmp_path / f"{name}.svg")
    assert ET.parse(out).getroot().tag.endswith("svg")


def test_backprop_basics_and_chain_rule_files_if_present():
    for name, loss, tensor, want in (("backprop_basics", "f", "w", "5"),
                                     ("backprop_basics", "f", "x", "-2"),
                                     ("backprop_basics", "f", "b", "1"),
                                     ("chain_rule", None, "x", "[6, 12]")):
        path = ROOT / "models" / f"{name}.yaml"
        if not path.is_file():
            continue
        loss = loss or mg.load_graph(path).loss
        assert grad_label(draw(path, grads=True).dot, loss, tensor) == want


# ==== the command line ============================================================================

@pytest.fixture
def cli():
    """The real ``minigraph`` command group."""
    from minigraph.cli.main import main

    return main


def _write(tmp_path, model: dict, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    mg.save_model(model, path)
    return path


@needs_renderer
def test_cli_render_default_output_is_name_svg(cli, tmp_path, monkeypatch):
    model = _write(tmp_path, BACKPROP, "bb")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["render", str(model), "--grads"])
    assert result.exit_code == 0, result.output
    assert "wrote bb.svg" in result.output
    ET.parse(tmp_path / "bb.svg")


def test_cli_render_dot_format(cli, tmp_path):
    model = _write(tmp_path, CHAIN, "chain")
    out = tmp_path / "chain.dot"
    result = CliRunner().invoke(cli, ["render", str(model), "--grads", "--all-grads", "-o",
                                      str(out)])
    assert result.exit_code == 0, result.output
    assert grad_label(out.read_text(), "loss", "x") == "[6, 12]"
    out = tmp_path / "tb.txt"
    result = CliRunner().invoke(cli, ["render", str(model), "--format", "dot", "--rankdir",
                                      "TB", "-o", str(out)])
    assert result.exit_code == 0 and "rankdir=TB" in out.read_text()


def test_cli_render_errors_exit_2(cli, tmp_path, monkeypatch):
    model = _write(tmp_path, BACKPROP, "bb")
    result = CliRunner().invoke(cli, ["render", str(model), "-o", str(tmp_path / "bb.gif")])
    assert result.exit_code == 2 and "cannot tell the picture format" in result.output
    monkeypatch.setattr(pictures, "find_renderer", lambda: None)
    result = CliRunner().invoke(cli, ["render", str(model), "-o", str(tmp_path / "x.svg")])
    assert result.exit_code == 2
    assert "no Graphviz renderer found: wrote" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert (tmp_path / "x.dot").is_file()


def test_cli_render_missing_mnist_is_a_data_error(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGRAPH_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("HOME", str(tmp_path))
    mnist = {**yaml.safe_load(CNN.read_text()), "data": {"train": {"dataset": "mnist", "limit": 10}}}
    model = _write(tmp_path, mnist, "cnn")
    out = tmp_path / "cnn.dot"
    result = CliRunner().invoke(cli, ["render", str(model), "-o", str(out)])
    assert result.exit_code == 0, result.output  # structure needs no data
    result = CliRunner().invoke(cli, ["render", str(model), "--values", "-o", str(out),
                                      "--data-dir", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "mnist" in result.output.lower()
    assert "Traceback" not in result.output


# ==== plots =======================================================================================

def test_plots_say_how_to_install_matplotlib(monkeypatch, tmp_path):
    import builtins

    real = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    log = tmp_path / "log.jsonl"
    log.write_text('{"epoch": 1, "loss": 1.0}\n')
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    from minigraph.plots import plot_log

    with pytest.raises(MinigraphError, match=r"pip install 'minigraph\[plot\]'"):
        plot_log(log, tmp_path / "x.png")


def test_plot_log_errors(tmp_path):
    from minigraph.plots import read_log

    with pytest.raises(MinigraphError, match="no log file"):
        read_log(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(MinigraphError, match="bad.jsonl:1"):
        read_log(bad)


def _png(path: Path) -> bool:
    return path.read_bytes().startswith(b"\x89PNG")


def test_plot_curves_from_a_run_log(tmp_path, cli):
    pytest.importorskip("matplotlib")
    from minigraph.api import run_model

    log = tmp_path / "xor.jsonl"
    run_model(_write(tmp_path, {**XOR, "data": {**XOR_DATA, "test": XOR_DATA["train"]}},
                     "xor"), epochs=20, log=str(log))
    out = tmp_path / "curves.png"
    result = CliRunner().invoke(cli, ["plot", "curves", str(log), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert _png(out)


def test_plot_decision_boundary(tmp_path, cli):
    pytest.importorskip("matplotlib")
    model = _write(tmp_path, XOR, "xor")
    out = tmp_path / "boundary.png"
    result = CliRunner().invoke(cli, ["plot", "boundary", str(model), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert _png(out)
    result = CliRunner().invoke(cli, ["plot", "boundary", str(_write(tmp_path, CHAIN, "c"))])
    assert result.exit_code == 2 and "two features" in result.output


def test_optimizer_race_paths_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    from minigraph.plots import plot_optimizer_race, race_paths

    bowl = {  # L = p0^2 + 10 p1^2: a narrow valley
        "minigraph": 1, "name": "bowl", "inputs": {"scale": {"shape": ["batch"]}},
        "params": {"p": {"shape": [2], "init": {"value": [1.0, -1.5]}}},
        "nodes": [{"name": "sq", "op": "square", "inputs": ["p"], "outputs": ["p2"]},
                  {"name": "w", "op": "mul", "inputs": ["p2", "scale"], "outputs": ["s"]},
                  {"name": "f", "op": "sum", "inputs": ["s"], "outputs": ["L"]}],
        "outputs": ["L"], "loss": "L",
        "data": {"train": {"inline": {"scale": [1.0, 10.0]}}},
        "train": {"epochs": 30, "shuffle": False, "optimizer": {"type": "sgd", "lr": 0.01}},
    }
    paths = race_paths(bowl, ["sgd:0.04", "adam:0.1", {"type": "momentum", "lr": 5.0}])
    assert list(paths) == ["sgd (lr 0.04)", "adam (lr 0.1)", "momentum (lr 5), diverged"]
    sgd = paths["sgd (lr 0.04)"]
    assert sgd.shape == (31, 2) and np.allclose(sgd[0], [1.0, -1.5])
    assert abs(sgd[-1]).sum() < abs(sgd[0]).sum()
    out = plot_optimizer_race(bowl, tmp_path / "race.png", ["sgd:0.04", "adam:0.1"],
                              resolution=20)
    assert _png(out)


def test_optimizer_race_curriculum_model(tmp_path, cli):
    pytest.importorskip("matplotlib")
    path = ROOT / "models" / "optimizer_race.yaml"
    if not path.is_file():
        pytest.skip("models/optimizer_race.yaml not written yet")
    out = tmp_path / "race.png"
    result = CliRunner().invoke(cli, ["plot", "race", str(path), "-o", str(out), "--epochs",
                                      "50", "--optimizers", "sgd,adam:0.1"])
    assert result.exit_code == 0, result.output
    assert _png(out)


def test_race_needs_two_parameter_values(tmp_path):
    from minigraph.plots import race_paths

    with pytest.raises(MinigraphError, match="exactly two parameter values"):
        race_paths(XOR)


def test_graphs_and_models_display_in_notebooks(monkeypatch):
    """A Model draws itself; a Graph is drawn by the formatter api.py registers with IPython
    (graph.py, below drawing, knows nothing of pictures)."""
    import sys
    import types

    import minigraph as mg
    from minigraph import api

    printers = {}
    formatter = types.SimpleNamespace(for_type=lambda cls, printer: printers.update({cls: printer}))
    shell = types.SimpleNamespace(
        display_formatter=types.SimpleNamespace(mimebundle_formatter=formatter))
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    api._show_graphs_in_notebooks()
    graph = mg.load_graph(ROOT / "models" / "xor.yaml")
    bundle = printers[mg.Graph](graph)
    assert "image/svg+xml" in bundle and "<svg" in bundle["image/svg+xml"]
    model = mg.load(ROOT / "models" / "xor.yaml")
    model.forward()
    model.backward()
    svg = model._repr_mimebundle_()["image/svg+xml"]
    assert "<svg" in svg and "∂L/∂" in svg  # a model that has run shows its gradients


def test_plot_mistakes_are_one_line(cli, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib not installed (pip install 'minigraph[plot]')")
    log = tmp_path / "log.jsonl"
    log.write_text('{"epoch": 1, "loss": 0.5}\n{"epoch": 2, "loss": 0.25}\n')
    result = CliRunner().invoke(cli, ["plot", "curves", str(log), "-o", str(tmp_path / "c.txt")])
    assert result.exit_code == 2 and "a plot is saved as one of" in result.output
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xff\xfe\n")
    result = CliRunner().invoke(cli, ["plot", "curves", str(binary), "-o", str(tmp_path / "c.png")])
    assert result.exit_code == 2 and "is not a text log file" in result.output
    result = CliRunner().invoke(cli, ["plot", "race", str(ROOT / "models" / "optimizer_race.yaml"),
                                      "--optimizers", ","])
    assert result.exit_code == 2 and "name at least one optimizer" in result.output
