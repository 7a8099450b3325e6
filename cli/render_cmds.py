"""``minigraph render`` and ``minigraph plot``: pictures of a model, its run and its training.

Added to the group in ``cli/__init__.py``.  Like every command, each parses, calls one API
function and prints; mistakes are :class:`MinigraphError` (one line, exit 2).
"""
from __future__ import annotations

from pathlib import Path

import click

from minigraph.errors import MinigraphError
from minigraph.render.picture import DEFAULT_DPI, FORMATS, picture_format, target_format

from .main import data_dir_option, model_arg


def _picture_path(model: str, out: str | None, fmt: str | None) -> tuple:
    """The output path and format: ``-o`` and ``--format``, else ``NAME.svg`` here."""
    if out is None:
        fmt = fmt or "svg"
        return Path(Path(model).stem + "." + fmt), fmt
    if fmt is None and Path(out).suffix.lower() in (".html", ".htm"):
        fmt = "html"
    if fmt is None:
        fmt = picture_format(out, default="")
        if fmt is None:
            raise MinigraphError(f"cannot tell the picture format from '{out}': end it with "
                                 f".svg, .png, .pdf or .dot, or pass --format")
    return Path(out), fmt


@click.command()
@model_arg
@click.option("--values", is_flag=True,
              help="Run one forward pass on the first training batch and show every value.")
@click.option("--grads", is_flag=True,
              help="Also run backward and show d(loss)/d(tensor) (implies --values).")
@click.option("--params", "params", type=click.Path(dir_okay=False),
              help="Draw with trained params (.npz from run --save) instead of fresh ones "
                   "(implies --values).")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False),
              help="Output file (default: MODEL's name with .svg, in this folder).")
@click.option("--format", "fmt", type=click.Choice(FORMATS + ("html",)),
              help="Picture format (default: from the output file's suffix; when both are "
                   "given they must agree); html: the interactive page.")
@click.option("--dpi", type=click.FloatRange(min=10, max=1200), default=DEFAULT_DPI,
              show_default=True, help="PNG resolution: at the default the text reads as at "
                                      "100% (names 16 px, labels 12 px tall).")
@click.option("--size", metavar="W,H",
              help="Fit the picture into W x H inches (e.g. 12,8); it is never shrunk below "
                   "3/4 of its natural size, where the labels would become unreadable.")
@click.option("--all-grads", is_flag=True,
              help="With --grads, also draw the gradients of data inputs and constants "
                   "(by default only params and computed tensors: what is learned).")
@click.option("--rankdir", type=click.Choice(["auto", "LR", "TB"], case_sensitive=False),
              default="auto", show_default=True,
              help="Left-to-right or top-to-bottom; auto: left-to-right while the picture "
                   "fits a 1920-px screen, else top-to-bottom (long chains of values).")
@data_dir_option
@click.option("--tiny", "--vanishing", "vanishing", type=click.FloatRange(min=0, min_open=True),
              default=1e-7, show_default=True,
              help="Gradients whose largest |entry| is below this are drawn dashed grey, "
                   "marked 'tiny'.")
@click.option("--large", "--exploding", "exploding",
              type=click.FloatRange(min=0, min_open=True), default=1e3, show_default=True,
              help="Gradients whose largest |entry| is above this are drawn thick red, "
                   "marked 'large' (an absolute band: judge it against the loss's scale).")
@click.option("--trace", type=click.Path(dir_okay=False),
              help="With --format html: a `run --trace` file to scrub through.")
@click.option("--expand", "expand", multiple=True, metavar="LAYER",
              help="Draw every step of this recurrent layer (default: the first two, "
                   "'... N more steps ...', the last two). Repeat for several layers.")
def render(model, values, grads, params, out, fmt, dpi, size, all_grads, rankdir, data_dir,
           vanishing, exploding, trace=None, expand=()):
    """Draw MODEL's graph; with --values/--grads, one pass's values and gradients.

    Pictures come from the system's Graphviz `dot` when installed, else from graphviz-pure
    (installed with minigraph).  --format dot writes the DOT text itself.  A picture has
    its natural size: a PNG at --dpi, shrunk by --size but never below readable text.
    PDF: vector with the system's Graphviz or the pdf extra (pip install
    'minigraph[pdf]'); without either the PDF holds a 150-dpi raster image.

    \b
    Example:
      minigraph render models/xor.yaml
      minigraph render models/xor.yaml --grads -o xor.svg
      minigraph render models/circles.yaml --grads --params circles.npz -o circles.png
      minigraph render models/mnist_cnn_deep.yaml --rankdir TB --size 12,8 -o deep.png
      minigraph render models/xor.yaml --format html -o xor.html
      minigraph render models/lstm_weather.yaml --grads --expand lstm1
    """
    from minigraph.api import draw

    from minigraph.render.sizing import parse_size, png_size

    path, fmt = _picture_path(model, out, fmt)
    if fmt == "html" or trace:
        from minigraph.explore import write_page

        if fmt != "html":
            raise MinigraphError("--trace draws only into the interactive page: add "
                                 "--format html")
        page = write_page(model, path, params=params, trace=trace, data_dir=data_dir,
                          rankdir="TB" if rankdir.upper() == "TB" else "LR", vanishing=vanishing, exploding=exploding)
        click.echo(f"wrote {page}")
        return
    target_format(path, fmt)  # a suffix that contradicts --format: refused before the pass
    size = parse_size(size)
    picture = draw(model, values=values or grads or bool(params), grads=grads, params=params,
                   data_dir=data_dir, rankdir=rankdir.upper(), vanishing=vanishing,
                   exploding=exploding, all_grads=all_grads, expand=expand)
    picture.save(path, fmt, dpi=dpi, size=size)
    pixels = png_size(path.read_bytes()[:24]) if fmt == "png" else None
    click.echo(f"wrote {path}" + (f" ({pixels[0]} x {pixels[1]} px)" if pixels else ""))


@click.group()
def plot():
    """Plots of training (needs matplotlib: pip install 'minigraph[plot]').

    \b
    Example:
      minigraph run models/circles.yaml --log circles.jsonl --save circles.npz
      minigraph plot curves circles.jsonl -o curves.png
      minigraph plot boundary models/circles.yaml --params circles.npz -o boundary.png
      minigraph plot race models/optimizer_race.yaml -o race.png
    """


@plot.command()
@click.argument("log", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False),
              help="Output image (default: LOG's name with .png).")
def curves(log, out):
    """Loss and metric curves (train and test) from a `run --log` file.

    \b
    Example:
      minigraph run models/circles.yaml --log circles.jsonl
      minigraph plot curves circles.jsonl -o curves.png
    """
    from minigraph.plots import plot_log

    click.echo(f"wrote {plot_log(log, out or Path(log).with_suffix('.png').name)}")


@plot.command()
@model_arg
@click.option("--params", "params", type=click.Path(dir_okay=False),
              help="Trained params (.npz); without them the model is trained first.")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False),
              help="Output image (default: NAME_boundary.png).")
@click.option("--score", help="The output to draw (default: the model's first output).")
@data_dir_option
def boundary(model, params, out, score, data_dir):
    """The decision boundary of a 2-input classifier, over its training data.

    \b
    Example:
      minigraph plot boundary models/xor.yaml -o xor_boundary.png
      minigraph plot boundary models/circles.yaml --params circles.npz
      minigraph plot boundary models/or_perceptron.yaml --score d
    """
    from minigraph.plots import plot_decision_boundary

    out = out or f"{Path(model).stem}_boundary.png"
    path = plot_decision_boundary(model, params, out, data_dir=data_dir, output=score)
    click.echo(f"wrote {path}")


@plot.command()
@model_arg
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False),
              help="Output image (default: NAME_race.png).")
@click.option("--optimizers",
              help="Comma-separated optimizer types, each optionally TYPE:LR, e.g. "
                   "sgd:0.001,adam:0.1 (default: all nine).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True),
              help="Learning rate of the optimizers given without one (default: each "
                   "optimizer's own default).")
@click.option("--epochs", type=click.IntRange(min=1), help="Steps per optimizer.")
def race(model, out, optimizers, lr, epochs):
    """Paths of several optimizers on a two-parameter loss surface.

    \b
    Example:
      minigraph plot race models/optimizer_race.yaml -o race.png
      minigraph plot race models/optimizer_race.yaml --optimizers sgd,momentum,adam
    """
    from minigraph.plots import plot_optimizer_race

    names = [n.strip() for n in optimizers.split(",") if n.strip()] if optimizers else None
    if optimizers is not None and not names:
        raise click.BadParameter("name at least one optimizer, e.g. sgd,adam",
                                 param_hint="--optimizers")
    out = out or f"{Path(model).stem}_race.png"
    click.echo(f"wrote {plot_optimizer_race(model, out, names, epochs=epochs, lr=lr)}")
