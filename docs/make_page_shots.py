"""Screenshots of the interactive page for the gallery: ``docs/pages/*.png``.

Taken by the same headless Chromium as tests/test_browser.py (the system's
``/usr/bin/chromium`` through Playwright: ``pip install 'minigraph[browser]'``).

    python docs/make_page_shots.py                          # xor and chain_rule
    python docs/make_page_shots.py --mnist ../shared/datasets/mnist [--trace cnn.npz]

With ``--trace`` (a ``minigraph run models/mnist_cnn.yaml --trace cnn.npz`` file) the
mnist_cnn page has its training slider.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from minigraph.explore import write_page

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "pages"
sys.path.insert(0, str(ROOT / "tests"))
from test_browser import CHROMIUM_ARGS, EDGE_MIDDLE, chromium_path  # noqa: E402

# (model, picture, keys pressed, tensor hovered or None)
SHOTS = [
    ("xor", "xor_forward.png", ["ArrowRight"] * 4, None),
    ("xor", "xor_backward.png", ["ArrowRight"] * 11, "h"),
    ("chain_rule", "chain_rule_backward.png", ["ArrowRight"] * 12, "x"),
]


def shoot(browser, html: Path, picture: Path, keys: list, hover: str | None) -> None:
    page = browser.new_page(viewport={"width": 1500, "height": 850})
    page.goto(html.resolve().as_uri())
    for key in keys:
        page.keyboard.press(key)
    if hover:
        x, y = page.evaluate(EDGE_MIDDLE, hover)
        page.mouse.move(x, y)
    page.screenshot(path=str(picture))
    page.close()
    print(f"wrote {picture.relative_to(ROOT)}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", help="MNIST folder: also shoot the mnist_cnn page")
    parser.add_argument("--trace", help="a run --trace file of mnist_cnn for its slider")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        for model, picture, keys, hover in SHOTS:
            html = Path(tmp) / f"{model}.html"
            write_page(ROOT / "models" / f"{model}.yaml", html)
            shoot(browser, html, OUT / picture, keys, hover)
        if args.mnist:
            html = Path(tmp) / "mnist_cnn.html"
            write_page(ROOT / "models/mnist_cnn.yaml", html, data_dir=args.mnist,
                       trace=args.trace)
            print(f"mnist_cnn page: {html.stat().st_size / 2 ** 20:.1f} MiB")
            shoot(browser, html, OUT / "mnist_cnn_conv.png", [], "r1")
        browser.close()


if __name__ == "__main__":
    main()
