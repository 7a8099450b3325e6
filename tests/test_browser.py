"""The interactive page in a real browser: headless Chromium (the system's, never a download)
driven by Playwright for Python.

Stepping forward and backward highlights the right node and shows the op's rule with the
numbers; hovering an edge shows the model's own value and gradient; the slider shows the
recorded training step; the page makes no network request and logs no console error.

Needs ``pip install 'minigraph[browser]'`` and ``/usr/bin/chromium`` (Debian's ``chromium``).
Without them these tests skip, saying why -- except in CI (``CI=true``), where not running
them is a failure.
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from minigraph.api import run_model, run_pass
from minigraph.explore import write_page

from conftest import ROOT, mnist_dir

XOR = ROOT / "models/xor.yaml"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
# the middle of a tensor's first edge, in page coordinates (where a hover lands on the line)
EDGE_MIDDLE = """(t) => {
  const g = document.querySelector(`g.edge[data-tensor="${t}"]`);
  const p = g.querySelector('path'), q = p.getPointAtLength(p.getTotalLength() / 2);
  const m = p.getScreenCTM();
  return [q.x * m.a + q.y * m.c + m.e, q.x * m.b + q.y * m.d + m.f];
}"""


def chromium_path():
    for path in ("/usr/bin/chromium", shutil.which("chromium") or ""):
        if path and os.access(path, os.X_OK):
            return path
    return None


def _unavailable(why: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests must run in CI: {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install 'minigraph[browser]')")
    path = chromium_path()
    if path is None:
        _unavailable("no Chromium at /usr/bin/chromium (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """One page in the browser, with every request and console message it caused."""

    def __init__(self, browser, path):
        self.url = path.resolve().as_uri()
        self.page = browser.new_page(viewport={"width": 1500, "height": 850})
        self.requests, self.errors = [], []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: m.type in ("error", "warning")
                     and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(self.url)

    def key(self, name: str, times: int = 1):
        for _ in range(times):
            self.page.keyboard.press(name)

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector)

    def numbers(self, selector: str) -> np.ndarray:
        cells = self.page.locator(f"{selector} td[data-v]")
        return np.array([float(v) for v in cells.evaluate_all(
            "cs => cs.map(c => c.dataset.v)")])

    def hover_edge(self, tensor: str):
        x, y = self.page.evaluate(EDGE_MIDDLE, tensor)
        self.page.mouse.move(x, y)
        assert self.page.get_attribute("#info", "data-tensor") == tensor

    def close(self):
        """Check that the page fetched nothing but itself and logged no error."""
        assert set(self.requests) == {self.url}, self.requests
        assert self.errors == []
        self.page.close()


@pytest.fixture(scope="module")
def xor_page(tmp_path_factory):
    path = tmp_path_factory.mktemp("page") / "xor.html"
    write_page(XOR, path)
    return path


def test_stepping_forward_highlights_each_node_and_plugs_in_the_numbers(browser, xor_page):
    model = run_pass(XOR)
    nodes = model.graph.nodes
    page = Page(browser, xor_page)
    assert "overview" in page.text("#phase")
    for k, node in enumerate(nodes, 1):
        page.key("ArrowRight")
        assert page.text("#phase") == f"forward {k}/{len(nodes)}"
        current = page.page.locator("g.node.current")
        assert current.count() == 1 and current.get_attribute("data-node") == node.name
        panel = page.text("#step")
        assert node.name in panel and node.op.rule.words in panel
        # the last matrix of the numbers line is the value this node produced
        result = page.numbers("#step .numbers table.m:first-of-type")
        assert np.allclose(result, model.value(node.outputs[0]).ravel(), rtol=1e-3, atol=1e-6)
    # before its producer runs, a value is "not computed yet"
    page.key("Home")
    page.key("ArrowRight")
    page.hover_edge("h")
    assert "not computed yet" in page.text("#info .value")
    assert page.page.locator('g.edge[data-tensor="h"].future').count() > 0
    page.close()


def test_stepping_backward_shows_the_rule_and_pending_gradients(browser, xor_page):
    model = run_pass(XOR)
    page = Page(browser, xor_page)
    page.key("ArrowRight", 7 + 4)  # the whole forward pass, then backward 4/7: fc2
    assert page.text("#phase") == "backward 4/7"
    assert page.page.locator("g.node.current").get_attribute("data-node") == "fc2"
    formulas = page.page.locator("#step .formula").all_inner_texts()
    flat = [" ".join(f.split()) for f in formulas]
    assert any(f.startswith("∂L/∂h = ∂L/∂z2 · W2") and "ᵀ" in f for f in flat), flat
    assert any(f.startswith("∂L/∂W2 = h") and "∂L/∂z2" in f for f in flat), flat
    # the numbers: dL/dh = dL/dz2 . W2^T, each written out, and the result
    lines = page.page.locator("#step .numbers")
    h_line = lines.nth(0)
    tables = h_line.locator("table.m")
    got = [np.array([float(v) for v in tables.nth(i).locator("td").evaluate_all(
        "cs => cs.map(c => c.dataset.v)")]) for i in range(tables.count())]
    assert np.allclose(got[0], model.grad("z2").ravel(), rtol=1e-5)
    assert np.allclose(got[1], model.value("W2").ravel(), rtol=1e-5)
    assert np.allclose(got[-1], model.grad("h").ravel(), rtol=1e-5)
    assert np.allclose(got[-1], (model.grad("z2") @ model.value("W2").T).ravel(), rtol=1e-4)
    # W1 is reached later: its gradient is drawn as not computed yet, never as zero
    page.hover_edge("W1")
    assert "not computed yet" in page.text("#info .grad")
    assert page.page.get_attribute('g.edge[data-tensor="W1"]', "data-grad") == "pending"
    page.key("ArrowRight", 3)  # backward 7/7: fc1 sends dL/dW1
    page.hover_edge("W1")
    assert np.allclose(page.numbers("#info .grad"), model.grad("W1").ravel(), rtol=1e-5)
    page.key("ArrowLeft", 11)
    assert page.text("#phase") == "forward 3/7"
    page.close()


def test_hovering_any_edge_shows_the_models_value_and_gradient(browser, xor_page):
    model = run_pass(XOR)
    page = Page(browser, xor_page)
    for name in model.graph.tensors:
        page.hover_edge(name)
        info = page.text("#info")
        assert name in info and str(model.value(name).dtype) in info
        assert np.allclose(page.numbers("#info .value"), model.value(name).ravel(),
                           rtol=1e-5), name
        grad = model.grad(name)
        if grad is not None:
            assert np.allclose(page.numbers("#info .grad"), grad.ravel(), rtol=1e-5), name
    page.page.click("#search")
    page.page.keyboard.type("b2")
    page.key("Enter")
    assert page.page.get_attribute("#info", "data-tensor") == "b2"
    page.close()


def test_the_slider_shows_each_recorded_training_step(browser, tmp_path):
    trace = tmp_path / "xor.npz"
    run_model(XOR, epochs=40, trace=trace, trace_every=10)
    path = tmp_path / "xor_trace.html"
    write_page(XOR, path, trace=trace)
    page = Page(browser, path)
    assert page.page.is_visible("#slider")
    for k, epochs in enumerate([0, 10, 20, 30, 40]):
        page.page.evaluate("(v) => { const s = document.getElementById('slider'); "
                           "s.value = v; s.dispatchEvent(new Event('input')); }", str(k))
        assert page.text("#steplabel").startswith(
            "before training" if epochs == 0 else f"epoch {epochs}")
        page.hover_edge("W2")
        expected = run_model(XOR, epochs=epochs).trainer.params["W2"] if epochs else \
            run_pass(XOR).value("W2")
        assert np.allclose(page.numbers("#info .value"), np.asarray(expected).ravel(),
                           rtol=1e-5)
    assert page.page.locator("#curve polyline").count() >= 2  # loss and accuracy
    page.close()


@pytest.mark.skipif(mnist_dir() is None, reason="MNIST files not found")
def test_a_conv_edge_shows_its_channels_as_heat_maps(browser, tmp_path):
    path = tmp_path / "cnn.html"
    write_page(ROOT / "models/mnist_cnn.yaml", path, data_dir=mnist_dir())
    model = run_pass(ROOT / "models/mnist_cnn.yaml", data_dir=mnist_dir())
    page = Page(browser, path)
    page.hover_edge("r1")
    assert page.page.locator("#info .value canvas").count() == 32
    stats = {c.get_attribute("data-stat"): float(c.get_attribute("data-v"))
             for c in page.page.locator("#info .value td[data-stat]").all()}
    r1 = model.value("r1")
    assert stats["max"] == pytest.approx(float(r1.max()), rel=1e-5)
    assert stats["mean"] == pytest.approx(float(r1.mean()), rel=1e-4)
    page.page.locator("g.cluster[data-group='conv1'] text").first.click()  # collapse the layer
    assert page.page.locator(".hidden-by-cluster").count() >= 3
    page.close()


SMALL = sorted(p.stem for p in (ROOT / "models").glob("*.yaml")
               if "dataset: mnist" not in p.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", SMALL)
def test_every_small_model_steps_through_without_an_error(browser, tmp_path, name):
    path = tmp_path / f"{name}.html"
    write_page(ROOT / "models" / f"{name}.yaml", path)
    page = Page(browser, path)
    n = page.page.evaluate("() => JSON.parse(document.getElementById('data').textContent)"
                           ".forward.length")
    nb = page.page.evaluate("() => JSON.parse(document.getElementById('data').textContent)"
                            ".backward.length")
    page.key("ArrowRight", n + nb)
    assert page.text("#phase") == (f"backward {nb}/{nb}" if nb else f"forward {n}/{n}")
    page.key("ArrowRight")  # past the end: stays on the last step
    assert page.text("#phase") == (f"backward {nb}/{nb}" if nb else f"forward {n}/{n}")
    page.close()


def test_params_from_a_checkpoint_show_adams_state(browser, tmp_path):
    model = ROOT / "models/circles.yaml"
    ck = tmp_path / "c.npz"
    run_model(model, epochs=3, save=ck)
    path = tmp_path / "circles.html"
    write_page(model, path, params=ck)
    saved = np.load(ck)
    page = Page(browser, path)
    name = next(k.split("/")[1] for k in saved.files if k.startswith("optim/") and
                k.endswith("/m") and saved[k].size <= 64)
    page.hover_edge(name)
    info = page.text("#info")
    assert "optimizer state m" in info and "optimizer state v" in info
    for slot in ("m", "v"):
        shown = page.numbers(f"#info .optim[data-slot='{slot}']")
        assert np.allclose(shown, saved[f"optim/{name}/{slot}"].ravel(), rtol=1e-5)
    assert np.allclose(page.numbers("#info .value"), saved[f"param/{name}"].ravel(), rtol=1e-6)
    # pan and zoom: the view box shrinks, and "fit" brings the whole graph back
    box = page.page.get_attribute("#graph > svg", "viewBox")
    page.page.click("#zin")
    assert float(page.page.get_attribute("#graph > svg", "viewBox").split()[2]) < \
        float(box.split()[2])
    page.page.click("#zfit")
    assert [float(v) for v in page.page.get_attribute("#graph > svg", "viewBox").split()] == \
        pytest.approx([float(v) for v in box.split()])
    page.close()
