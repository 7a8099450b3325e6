"""What a student sees in the pictures (issue 14, points 11-16): sizes, gradients that agree
with the lesson, honest colours, layout, tooltips, formats, PDF and the training plots.

Geometric checks read the SVG that the installed renderer writes (system ``dot`` when on the
PATH, else graphviz-pure); each test says what it measures.
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import minigraph as mg
from minigraph.api import draw
from minigraph.errors import MinigraphError
from minigraph.render import picture as pictures
from minigraph.render.dot import Numbers, class_lines
from minigraph.render.sizing import (MIN_SCALE, fit_scale, hover_titles, notebook_svg,
                                     parse_size, png_size, svg_size)

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
needs_renderer = pytest.mark.skipif(pictures.find_renderer() is None,
                                    reason="no dot or graphviz-pure")
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def cli():
    from minigraph.cli import main

    return main


def _px_per_pt(png: bytes, picture) -> float:
    """How many PNG pixels one point of the drawing became."""
    width, _ = png_size(png)
    return width / picture.natural_size()[0]


# ==== 11: sizes ===================================================================================

@needs_renderer
def test_deep_tb_png_keeps_its_natural_size_and_readable_text(tmp_path, cli):
    """Before: 192 x 1080 px, the drawing shrunk into a 1920 x 1080 box (~4-px text)."""
    out = tmp_path / "deep.png"
    result = CliRunner().invoke(cli, ["render", str(MODELS / "mnist_cnn_deep.yaml"),
                                      "--rankdir", "TB", "-o", str(out)])
    assert result.exit_code == 0, result.output
    width, height = png_size(out.read_bytes())
    assert f"({width} x {height} px)" in result.output
    picture = draw(MODELS / "mnist_cnn_deep.yaml", rankdir="TB")
    # 96 dpi: one point is 4/3 px, so the 12-pt op names are 16 px and 9-pt labels 12 px tall
    assert _px_per_pt(out.read_bytes(), picture) == pytest.approx(96 / 72, rel=0.02)
    assert height > 2 * 1080 and width > 2 * 192


@needs_renderer
def test_dpi_scales_a_png(tmp_path):
    picture = draw(MODELS / "xor.yaml")
    at_96 = png_size(picture.pipe("png"))
    at_192 = png_size(picture.pipe("png", dpi=192))
    assert at_192[0] == pytest.approx(2 * at_96[0], rel=0.02)
    assert at_192[1] == pytest.approx(2 * at_96[1], rel=0.02)


@needs_renderer
def test_size_fits_a_picture_but_never_below_readable(tmp_path, cli):
    picture = draw(MODELS / "xor.yaml", grads=True)
    width, height = picture.natural_size()
    natural = png_size(picture.pipe("png"))
    # a box a little smaller than the picture: shrunk to fit it exactly
    box = (0.9 * width / 72, 5 * height / 72)
    fitted = png_size(picture.pipe("png", size=box))
    assert fitted[0] == pytest.approx(0.9 * natural[0], rel=0.02)
    # a tiny box: shrunk only to MIN_SCALE (9-pt labels stay 9 px), not into the box
    tiny = png_size(picture.pipe("png", size=(2, 2)))
    assert tiny[0] == pytest.approx(MIN_SCALE * natural[0], rel=0.02)
    # a huge box: never enlarged
    assert png_size(picture.pipe("png", size=(500, 500))) == natural
    # an SVG is fitted through its width and height (its drawing keeps its coordinates)
    svg = picture.pipe("svg", size=(2, 2)).decode()
    assert svg_size(svg)[0] == pytest.approx(MIN_SCALE * width, rel=0.01)
    out = tmp_path / "x.png"
    result = CliRunner().invoke(cli, ["render", str(MODELS / "xor.yaml"), "--size", "3,2",
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output


@needs_renderer
def test_auto_rankdir_draws_long_value_chains_top_to_bottom(tmp_path, cli):
    """Before: xor --grads was 3,389 px wide and xor_wide_deep 6,909 px (left to right)."""
    xor = draw(MODELS / "xor.yaml", grads=True)
    assert "rankdir=TB" in xor.dot and xor.natural_size()[0] * 4 / 3 < 1200
    wide_deep = draw(MODELS / "xor_wide_deep.yaml", grads=True)
    assert "rankdir=TB" in wide_deep.dot and wide_deep.natural_size()[0] * 4 / 3 < 1920
    chain = draw(MODELS / "chain_rule.yaml", grads=True)  # fits a screen: stays LR
    assert "rankdir=LR" in chain.dot and chain.natural_size()[0] <= pictures.AUTO_WIDTH_PT
    assert "rankdir=LR" in draw(MODELS / "xor.yaml", grads=True, rankdir="LR").dot
    out = tmp_path / "x.dot"
    result = CliRunner().invoke(cli, ["render", str(MODELS / "xor.yaml"), "--grads",
                                      "--rankdir", "lr", "-o", str(out)])
    assert result.exit_code == 0 and "rankdir=LR" in out.read_text()


def test_auto_rankdir_without_a_renderer_is_left_to_right(monkeypatch):
    monkeypatch.setattr(pictures, "find_renderer", lambda: None)
    assert "rankdir=LR" in draw(MODELS / "xor.yaml", grads=True).dot


def test_size_and_dpi_mistakes_are_one_line(cli, tmp_path):
    assert parse_size("12,8") == (12.0, 8.0) and parse_size("5") == (5.0, 5.0)
    for bad in ("12x8", "0,3", "a,b", "1,2,3", "-1,4"):
        with pytest.raises(MinigraphError, match="W,H in inches"):
            parse_size(bad)
    result = CliRunner().invoke(cli, ["render", str(MODELS / "xor.yaml"), "--size", "big",
                                      "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "W,H in inches" in result.output
    result = CliRunner().invoke(cli, ["render", str(MODELS / "xor.yaml"), "--dpi", "0",
                                      "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 2


def test_fit_scale_bounds():
    assert fit_scale((720, 360), None) == 1.0
    assert fit_scale((720, 360), (20, 20)) == 1.0  # never enlarged
    assert fit_scale((720, 360), (9, 20)) == pytest.approx(0.9)
    assert fit_scale((720, 360), (1, 1)) == MIN_SCALE


@needs_renderer
def test_notebook_svg_takes_the_cell_width_within_readable_bounds():
    picture = draw(MODELS / "xor.yaml", grads=True)
    width, _ = picture.natural_size()
    svg = picture._repr_mimebundle_()["image/svg+xml"]
    assert '<svg width="100%"' in svg and "height: auto" in svg
    assert f"max-width: {width:.0f}pt" in svg
    assert f"min-width: {width * MIN_SCALE:.0f}pt" in svg
    assert "viewBox" in svg  # scales as a whole
    ET.fromstring(svg.split("?>", 1)[1].split(">", 1)[1])  # still XML after the doctype


def test_notebook_svg_text_is_left_alone_without_a_size():
    assert notebook_svg("<svg>") == "<svg>"


# ==== 12: the picture agrees with the lesson ======================================================

def _grad(dot: str, loss: str, tensor: str):
    found = re.search(rf"∂{re.escape(loss)}/∂{re.escape(tensor)}</FONT></TD>"
                      r"<TD[^>]*><FONT[^>]*>(.*?)<BR", dot)
    return found.group(1) if found else None


def test_chain_rule_draws_no_gradient_for_its_constants_unless_asked():
    graph = mg.load_graph(MODELS / "chain_rule.yaml")
    dot = draw(graph, grads=True).dot
    assert _grad(dot, "loss", "x") == "[6, 12]"  # the param: what the lesson is about
    assert _grad(dot, "loss", "y") == "[3, 3]"
    for constant in ("five", "three", "target"):
        assert f"∂loss/∂{constant}<" not in dot
    assert "no gradient drawn for data inputs and constants" in dot
    # the description says so, and names the flag that shows them
    assert "draws no gradient for them" in graph.spec.description
    assert "--all-grads" in graph.spec.description
    every = draw(graph, grads=True, all_grads=True).dot
    assert _grad(every, "loss", "five") == "6" and _grad(every, "loss", "three") == "15"
    assert _grad(every, "loss", "target") == "[-1, -1]"
    assert "no gradient drawn for data" not in every


def test_data_inputs_draw_no_gradient_by_default(cli, tmp_path):
    dot = draw(MODELS / "multivariable_regression.yaml", grads=True).dot
    assert "∂C/∂X<" not in dot and "∂C/∂y<" not in dot and _grad(dot, "C", "W")
    out = tmp_path / "m.dot"
    result = CliRunner().invoke(cli, ["render", str(MODELS / "multivariable_regression.yaml"),
                                      "--grads", "--all-grads", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert _grad(out.read_text(), "C", "X").startswith("[[0, 0, 0]")


# ==== 13: honest colours ==========================================================================

def test_a_well_training_regression_is_not_called_exploding():
    dot = draw(MODELS / "multivariable_regression.yaml", grads=True).dot
    assert "exploding" not in dot and "vanishing" not in dot
    # W's gradient (about 3e4, from inputs of 70-100) is plainly "large", and the legend
    # names the absolute band it is in
    w_node = next(line for line in dot.splitlines() if "<B>W</B>" in line)
    assert "large gradient" in w_node
    assert "thick red: large (&gt; 1e+03)" in dot and "zero or tiny (&lt; 1e-07)" in dot


def test_cli_band_options_keep_their_old_names(cli, tmp_path):
    model = str(MODELS / "multivariable_regression.yaml")
    for flag in ("--large", "--exploding"):
        out = tmp_path / f"m{flag}.dot"
        result = CliRunner().invoke(cli, ["render", model, "--grads", flag, "1e6", "-o",
                                          str(out)])
        assert result.exit_code == 0, result.output
        assert "large gradient" not in out.read_text()


# ==== 14: layout ==================================================================================

def _cubic_points(d: str) -> list:
    """Points along an SVG path's cubic Bezier segments (Graphviz edges are M x,y C ...)."""
    numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", d)]
    pts = list(zip(numbers[0::2], numbers[1::2]))
    out = []
    for i in range(0, len(pts) - 3, 3):
        p0, p1, p2, p3 = (np.array(p) for p in pts[i:i + 4])
        for t in np.linspace(0, 1, 25):
            out.append((1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1
                       + 3 * (1 - t) * t ** 2 * p2 + t ** 3 * p3)
    return out


def _text_boxes(group, words) -> list:
    """Boxes (x0, y0, x1, y1) round the texts of ``group`` that contain one of ``words``."""
    boxes = []
    for text in group.iter(f"{SVG}text"):
        content = "".join(text.itertext())
        if any(w in content for w in words):
            x, y = float(text.get("x")), float(text.get("y"))
            size = float(text.get("font-size", "12"))
            width = 0.6 * size * len(content)
            x0 = x - width / 2 if text.get("text-anchor") == "middle" else x
            boxes.append((x0, y - size, x0 + width, y + 2))
    return boxes


@needs_renderer
@pytest.mark.parametrize("name", ["circles", "mnist_cnn"])
def test_tb_edges_do_not_cross_cluster_titles(name):
    """Before: in TB the edge into a cluster ran down through its title ("units=1")."""
    graph = mg.load_graph(MODELS / f"{name}.yaml")
    picture = draw(graph, rankdir="TB", grads=name == "circles")
    root = ET.fromstring(picture.svg().split("-->", 2)[-1].split("\n", 1)[1])
    titles = [g for g in graph.groups()]
    boxes = []
    for group in root.iter(f"{SVG}g"):
        if group.get("class") == "node":
            title = group.find(f"{SVG}title")
            if title is not None and title.text and title.text.startswith("layer "):
                boxes += _text_boxes(group, titles)
    assert len(boxes) >= len(titles)
    for group in root.iter(f"{SVG}g"):
        if group.get("class") != "edge":
            continue
        for path in group.iter(f"{SVG}path"):
            for x, y in _cubic_points(path.get("d")):
                for x0, y0, x1, y1 in boxes:
                    assert not (x0 <= x <= x1 and y0 <= y <= y1), \
                        f"an edge crosses a cluster title at ({x:.0f}, {y:.0f})"


def test_tb_cluster_titles_sit_beside_the_first_op():
    dot = draw(MODELS / "circles.yaml", rankdir="TB").dot
    cluster = dot[dot.index("subgraph cluster_1"):dot.index("subgraph cluster_2")]
    assert "\tlabel=<" not in cluster  # no title on top, where edges come in
    assert re.search(r"t1 \[label=<.*<B>fc1</B>.*shape=plain", cluster)
    # title, then W (when drawn beside the op), then the op, left to right on one rank
    assert re.search(r"rank=same\s+t1 -> s\d+ \[style=invis\]", cluster)
    lr = draw(MODELS / "circles.yaml").dot  # LR: edges enter from the left, title on top
    assert "t1 [" not in lr


def test_source_numbers_are_in_their_nodes_not_on_edges():
    """Before: a param's or constant's label sat under the neighbouring edge or straddled
    a cluster's border; now each source's value and gradient is inside its own node."""
    dot = draw(MODELS / "chain_rule.yaml", grads=True).dot
    five = next(line for line in dot.splitlines() if "<B>five</B>" in line)
    assert "value</FONT>" in five and "5<BR" in five
    x = next(line for line in dot.splitlines() if "<B>x</B>" in line and "->" not in line)
    assert "∂loss/∂x" in x
    for line in dot.splitlines():
        if re.match(r"\s*s\d+ -> ", line):
            assert "label=" not in line, line


def test_edge_labels_keep_clear_of_their_line():
    dot = draw(MODELS / "xor.yaml", grads=True).dot
    edge = next(line for line in dot.splitlines() if "-> " in line and "<B>z1</B>" in line)
    assert 'label=<<TABLE BORDER="0" CELLBORDER="0" CELLPADDING="4"><TR><TD><TABLE' in edge


def test_values_only_legend_is_one_text_row():
    """Before: the node kinds were coloured cells stretched across a wider title."""
    dot = draw(MODELS / "xor_handset.yaml", values=True).dot
    legend = dot[dot.rindex("label=<<"):]
    assert "BGCOLOR" not in legend
    assert "■</FONT> input" in legend and "■</FONT> output" in legend


def test_class_labels_show_first_entries_and_counts():
    labels = np.array([5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5, 3, 6, 1, 7, 2, 8])
    lines = Numbers().lines(labels)
    assert lines[0] == "first 5 0 4 1 9 2 1 3 1 4 ..."
    assert "".join(lines[1:]).split() == ["counts", "0:1", "1:4", "2:2", "3:3", "4:2",
                                          "5:2", "6:1", "7:1", "8:1", "9:1"]
    assert "mean" not in " ".join(lines)
    # whole-number float targets fed as data read as classes too; computed floats do not
    targets = np.array([0.0, 1.0] * 20)
    assert Numbers().lines(targets, data=True)[1] == "counts 0:20 1:20"
    assert Numbers().lines(targets)[0].startswith("mean")
    assert class_lines(np.arange(100))[1] == "100 distinct, min 0  max 99"


def test_a_model_with_integer_labels_draws_their_counts():
    model = {
        "minigraph": 1, "name": "classes",
        "inputs": {"x": {"shape": ["batch", 2]}, "label": {"shape": ["batch"],
                                                           "dtype": "int64"}},
        "nodes": [{"name": "fc", "op": "linear", "inputs": ["x"], "outputs": ["z"],
                   "attrs": {"units": 3}},
                  {"name": "loss", "op": "cross_entropy", "inputs": ["z", "label"],
                   "outputs": ["L"]}],
        "outputs": ["z"], "loss": "L",
        "data": {"train": {"inline": {"x": [[0.1 * i, 1.0] for i in range(20)],
                                      "label": [i % 3 for i in range(20)]}}},
    }
    dot = draw(model, values=True).dot
    node = next(line for line in dot.splitlines() if "<B>label</B>" in line)
    assert "first 0 1 2 0 1 2 0 1 2 0 ..." in node and "counts 0:7 1:7 2:6" in node
    assert "mean" not in node


@needs_renderer
def test_svg_hover_shows_the_tensor_not_an_internal_id(tmp_path):
    """Before: hovering showed Graphviz's ids (s0, n0, s0->n0)."""
    path = draw(MODELS / "xor.yaml", grads=True).save(tmp_path / "xor.svg")
    root = ET.parse(path).getroot()
    titles = {}
    for group in root.iter(f"{SVG}g"):
        if group.get("class") in ("node", "edge"):
            titles[group.get("id")] = group.find(f"{SVG}title").text
    assert titles and not any(re.fullmatch(r"[snot]\d+(->[snot]\d+)?", t.replace("&gt;", ">"))
                              for t in titles.values())
    text = "\n".join(titles.values())
    assert "W1 (2, 2): param\nvalue: [[0.02364, 0.9009], [-0.7117, 0.8973]]" in text
    assert "∂L/∂W1: " in text
    assert "x (4, 2): input" in text and "not learned" in text
    assert "h (4, 2): computed by act1" in text


def test_hover_titles_rewrite():
    svg = ('<g id="node1" class="node">\n<title>s0</title>\n<g id="a_node1"><a '
           'xlink:title="x (2): input">')
    assert "<title>x (2): input</title>" in hover_titles(svg)


def test_format_and_suffix_must_agree(cli, tmp_path):
    """Before: --format png -o x.svg wrote PNG bytes into x.svg."""
    out = tmp_path / "x.svg"
    result = CliRunner().invoke(cli, ["render", str(MODELS / "xor.yaml"), "--format", "png",
                                      "-o", str(out)])
    assert result.exit_code == 2 and not out.exists()
    assert "format png does not match the file name x.svg" in result.output
    with pytest.raises(MinigraphError, match="does not match"):
        draw(MODELS / "xor.yaml").save(tmp_path / "y.pdf", "svg")
    # an agreeing or an unknown suffix is fine: the format says what to write
    path = draw(MODELS / "xor.yaml").save(tmp_path / "y.gv", "dot")
    assert path.read_text().startswith("digraph")
    path = draw(MODELS / "xor.yaml").save(tmp_path / "y.txt", "dot")
    assert path.read_text().startswith("digraph")


# ==== 15: PDF =====================================================================================

def test_pdf_without_system_graphviz_is_documented(cli):
    help_text = " ".join(CliRunner().invoke(cli, ["render", "--help"]).output.split())
    assert "150-dpi raster" in help_text and "minigraph[pdf]" in help_text
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "without either it is a 150-dpi raster image in a one-page PDF" in readme
    assert "pip install 'minigraph[pdf]'" in readme


def test_pdf_is_vector_with_the_pdf_extra(monkeypatch):
    """Before: without a system Graphviz the PDF was graphviz-pure's JPEG in a page."""
    pytest.importorskip("svglib", reason="the pdf extra (svglib) is not installed")
    pure = Path(pictures.sys.executable).parent / "graphviz-pure"
    if not pure.is_file():
        pytest.skip("graphviz-pure is not installed beside this Python")
    monkeypatch.setattr(pictures, "find_renderer", lambda: [str(pure)])
    picture = draw(MODELS / "xor.yaml", grads=True)
    pdf = picture.pipe("pdf")
    assert pdf.startswith(b"%PDF") and b"DCTDecode" not in pdf  # no raster image
    box = re.search(rb"/MediaBox \[\s*([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)", pdf)
    width = float(box.group(3)) - float(box.group(1))
    assert width == pytest.approx(picture.natural_size()[0], rel=0.01)  # points, as drawn
    assert b"/Font" in pdf  # the labels are text, not pixels


@needs_renderer
def test_pdf_without_the_extra_is_a_raster_page(monkeypatch):
    pure = Path(pictures.sys.executable).parent / "graphviz-pure"
    if not pure.is_file():
        pytest.skip("graphviz-pure is not installed beside this Python")
    monkeypatch.setattr(pictures, "find_renderer", lambda: [str(pure)])
    monkeypatch.setattr(pictures, "svg_pdf", lambda svg, scale=1.0: None)
    pdf = draw(MODELS / "xor.yaml").pipe("pdf")
    assert pdf.startswith(b"%PDF") and b"DCTDecode" in pdf


@needs_renderer
def test_pdf_size_shrinks_the_page(tmp_path):
    picture = draw(MODELS / "xor.yaml")
    natural = picture.pipe("pdf")
    small = picture.pipe("pdf", size=(1, 1))

    def page_width(pdf: bytes) -> float:
        box = re.search(rb"/MediaBox \[\s*([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)", pdf)
        return float(box.group(3)) - float(box.group(1))

    assert page_width(small) == pytest.approx(MIN_SCALE * page_width(natural), rel=0.05)


# ==== 16: plots ===================================================================================

def test_race_legend_names_lr_and_final_loss_and_marks_the_minimum():
    pytest.importorskip("matplotlib", reason="plots need matplotlib (minigraph[plot])")
    from minigraph.plots import plot_optimizer_race

    fig = plot_optimizer_race(MODELS / "optimizer_race.yaml", None,
                              ["sgd", "adagrad", "adam:0.1"], epochs=150, resolution=15)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("sgd (lr 0.001): final loss ")
    assert labels[1].startswith("adagrad (lr 0.01): final loss ")
    assert labels[2].startswith("adam (lr 0.1): final loss ")
    assert labels[3] == "start" and labels[4].startswith("lowest loss seen: ")
    # the lowest loss seen is no higher than any path's final loss
    finals = [float(label.rsplit(" ", 1)[1]) for label in labels[:3]]
    lowest = float(labels[4].split(": ")[1].split(" at ")[0])
    assert lowest <= min(finals)
    # adagrad's short path is drawn over the longer ones that share its ground
    lines = {line.get_label().split(":")[0]: line for line in ax.get_lines()}
    assert lines["adagrad (lr 0.01)"].get_zorder() > lines["adam (lr 0.1)"].get_zorder()


def test_curves_are_titled_with_the_model_stored_in_the_log(tmp_path):
    pytest.importorskip("matplotlib", reason="plots need matplotlib (minigraph[plot])")
    from minigraph.api import run_model
    from minigraph.plots import plot_log

    log = tmp_path / "run1.jsonl"
    run_model(MODELS / "or_perceptron.yaml", epochs=3, log=str(log))
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert all(r["model"] == "or_perceptron" for r in records)
    fig = plot_log(log)
    assert fig._suptitle.get_text() == "or_perceptron: training curves (run1.jsonl)"
    # a log written before the name was stored keeps the file's name
    old = tmp_path / "old.jsonl"
    old.write_text("\n".join(json.dumps({k: v for k, v in r.items() if k != "model"})
                             for r in records))
    assert plot_log(old)._suptitle.get_text() == "old"
