"""The interactive page without a browser: one self-contained file, the numbers it carries
are the model's own, every op has a local rule, and training traces are recorded, bounded
and checked when read.  (tests/test_browser.py drives the page in Chromium.)"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import minigraph as mg
from minigraph.api import run_model, run_pass
from minigraph.cli import main
from minigraph.errors import DataError, MinigraphError
from minigraph.explore import page_html, write_page
from minigraph.ops import REGISTRY
from minigraph.ops.base import rule_of
from minigraph.render.summary import FULL, summarize
from minigraph.trace import load_trace

from conftest import ROOT, mnist_dir

XOR = ROOT / "models/xor.yaml"
TOKEN = re.compile(r"\{([^}]+)\}")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def page_data(text: str) -> dict:
    raw = re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S)
    return json.loads(raw.group(1))


def test_render_html_writes_one_self_contained_file(tmp_path):
    out = tmp_path / "xor.html"
    result = invoke("render", XOR, "--format", "html", "-o", out)
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) < 200_000
    assert "<svg" in text and "Content-Security-Policy" in text and "default-src 'none'" in text
    # no request of any kind: no external script, style, image or font; the only URLs are
    # the SVG namespaces
    assert not re.search(r"<(script|link|img|iframe)[^>]*(src|href)=", text)
    urls = set(re.findall(r"https?://[^\s\"')]+", text))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls
    assert invoke("render", XOR, "-o", tmp_path / "same.html").exit_code == 0  # by suffix


def test_the_page_carries_the_models_own_values_and_gradients():
    data = page_data(page_html(XOR))
    model = run_pass(XOR)
    (step,) = data["steps"]
    for name in model.graph.tensors:
        entry = step["t"][name]
        assert np.allclose(entry["v"]["full"], model.value(name).ravel(), rtol=1e-6)
        grad = model.grad(name)
        if grad is None:
            assert entry["g"] is None
        else:
            assert np.allclose(entry["g"]["full"], grad.ravel(), rtol=1e-6)
    names = [n.name for n in model.graph.nodes]
    assert [data["nodes"][i]["name"] for i in data["forward"]] == names
    assert [data["nodes"][i]["name"] for i in data["backward"]] == names[::-1]
    assert data["gradDone"]["L"] == -1 and data["gradDone"]["h"] == names[::-1].index("fc2")


def test_params_from_a_checkpoint_show_the_optimizer_state(tmp_path):
    model = ROOT / "models/circles.yaml"
    ck = tmp_path / "c.npz"
    assert invoke("run", model, "--epochs", "3", "--save", ck, "--quiet").exit_code == 0
    out = tmp_path / "c.html"
    assert invoke("render", model, "--params", ck, "-o", out).exit_code == 0
    data = page_data(out.read_text(encoding="utf-8"))
    saved = np.load(ck)
    slots = data["steps"][0]["o"]
    assert slots, "the checkpoint's optimizer state is on the page"
    for param, by_slot in slots.items():
        for slot, summary in by_slot.items():
            a = saved[f"optim/{param}/{slot}"]
            if "full" in summary:
                assert np.allclose(summary["full"], a.ravel(), rtol=1e-6)
            else:
                assert summary["max"] == pytest.approx(float(a.max()), rel=1e-6)


def test_every_op_has_a_local_rule_naming_its_own_inputs():
    for name, op in REGISTRY.items():
        rule = rule_of(op)
        declared = {n.rstrip("?*") for n in op.inputs}
        assert rule.words and rule.forward.startswith("{out}"), name
        assert set(rule.backward) <= declared, name
        for text in [rule.forward, *rule.backward.values()]:
            for token in TOKEN.findall(text):
                token = token.lstrip("∂").removesuffix(".shape")
                if token.startswith("@"):
                    assert token[1:] in op.attrs, (name, token)
                else:
                    assert token in declared | {"out", "self"}, (name, token)
        if op.differentiable:
            assert set(rule.backward) == declared - {"labels", "weight"}, name  # (no gradient)


def test_summaries_are_bounded_and_exact_when_small():
    small = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert summarize(small)["full"] == [0, 1, 2, 3, 4, 5]
    big = np.random.default_rng(0).normal(size=(100, 64, 56, 56)).astype(np.float32)
    s = summarize(big)
    assert "full" not in s and sum(s["hist"]["counts"]) == big.size
    assert s["maps"]["k"] == 64 and s["maps"]["h"] == 28 and s["maps"]["w"] == 28
    assert len(json.dumps(s)) < 100_000
    assert s["max"] == pytest.approx(float(big.max()))
    bad = np.array([1.0, np.nan, np.inf], dtype=np.float32)
    s = summarize(bad, full=FULL)
    assert s["nonfinite"] == 2 and s["full"] == [1.0, None, None]


def test_a_trace_records_the_training_it_watched(tmp_path):
    trace = tmp_path / "t.npz"
    result = run_model(XOR, epochs=20, trace=trace, trace_every=5)
    data = load_trace(trace, result.graph)
    assert [s["epoch"] for s in data["steps"]] == [0, 5, 10, 15, 20]
    assert len(data["curve"]) == 20
    assert data["curve"][-1]["loss"] == pytest.approx(result.history.last["loss"])
    last = data["steps"][-1]
    for name in result.graph.params:  # the last step holds the trained params
        assert np.allclose(last["t"][name]["v"]["full"],
                           np.asarray(result.trainer.params[name]).ravel(), rtol=1e-6)
    # a seeded run repeats: the step at epoch 10 is a 10-epoch run's final state
    ten = run_model(XOR, epochs=10)
    assert np.allclose(data["steps"][2]["t"]["W1"]["v"]["full"],
                       np.asarray(ten.trainer.params["W1"]).ravel(), rtol=1e-6)
    page = page_data(page_html(XOR, trace=trace))
    assert len(page["steps"]) == 5 and len(page["curve"]) == 20


def test_bad_traces_are_refused_with_one_message(tmp_path):
    graph = mg.load_graph(XOR)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot read the trace"):
        load_trace(junk, graph)
    np.savez(tmp_path / "other.npz", trace=np.frombuffer(b'{"format": "x"}', np.uint8))
    with pytest.raises(DataError, match="not a minigraph trace"):
        load_trace(tmp_path / "other.npz", graph)
    trace = tmp_path / "t.npz"
    run_model(XOR, epochs=2, trace=trace)
    with pytest.raises(DataError, match="recorded from model 'xor'"):
        load_trace(trace, mg.load_graph(ROOT / "models/circles.yaml"))
    result = invoke("render", XOR, "--trace", trace, "-o", tmp_path / "x.svg")
    assert result.exit_code == 2 and "--format html" in result.output
    result = invoke("run", ROOT / "models/chain_rule.yaml", "--trace", trace)
    assert result.exit_code == 2 and "--trace" in result.output
    result = invoke("run", XOR, "--trace-every", "3")
    assert result.exit_code == 2 and "--trace-every needs --trace" in result.output


def test_run_trace_on_the_command_line(tmp_path):
    trace = tmp_path / "x.npz"
    result = invoke("run", XOR, "--epochs", "30", "--trace", trace, "--trace-every", "10",
                    "--quiet")
    assert result.exit_code == 0 and f"wrote trace {trace}" in result.output
    assert [s["epoch"] for s in load_trace(trace, mg.load_graph(XOR))["steps"]] == \
        [0, 10, 20, 30]


def test_view_writes_a_temporary_page_and_opens_it(monkeypatch):
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    result = invoke("view", ROOT / "models/chain_rule.yaml")
    assert result.exit_code == 0, result.output
    (url,) = opened
    path = Path(result.output.split("opened ", 1)[1].strip())
    assert url == path.resolve().as_uri() and "<svg" in path.read_text(encoding="utf-8")
    path.unlink()


def test_write_page_refuses_a_missing_folder(tmp_path):
    with pytest.raises(MinigraphError, match="does not exist"):
        write_page(XOR, tmp_path / "no" / "x.html")


@pytest.mark.skipif(mnist_dir() is None, reason="MNIST files not found")
def test_a_mnist_cnn_trace_step_is_small():
    """One recorded step of mnist_cnn (every tensor's summaries, heat maps included) stays
    small enough for a 15-epoch trace (16 steps) under 20 MB."""
    model = run_pass(ROOT / "models/mnist_cnn.yaml", data_dir=mnist_dir())
    data = page_data(page_html(model.graph, data_dir=mnist_dir()))
    size = len(json.dumps(data["steps"][0]))
    assert size * 16 < 20 * 2 ** 20, size
    maps = data["steps"][0]["t"]["r1"]["v"]["maps"]
    assert maps["k"] == 32 and maps["h"] == 28  # conv channels as heat maps
