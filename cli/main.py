"""The ``minigraph`` command line: one verb per command, each a thin layer over the API.

Exit codes: 0 success; 1 the run itself failed (e.g. the loss became NaN); 2 a usage or input
mistake, printed as one line on stderr (``minigraph --debug ...`` shows the traceback).
"""
from __future__ import annotations

import math
import sys

import click

from minigraph import report
from minigraph.errors import MinigraphError, RunError
from minigraph.limits import MAX_SEED


class Group(click.Group):
    """Turns minigraph's errors into one clear line and an exit code, unless --debug."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # Ctrl-C before training began: nothing to save
            if ctx.params.get("debug"):
                raise
            click.echo("interrupted (Ctrl-C); nothing was saved", err=True)
            ctx.exit(130)
        except (MinigraphError, RunError, OSError) as exc:
            if ctx.params.get("debug"):
                raise
            located = isinstance(exc, MinigraphError) and exc.location is not None
            click.echo(str(exc) if located else f"error: {exc}", err=True)
            ctx.exit(1 if isinstance(exc, RunError) else 2)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks.")
@click.version_option(package_name="minigraph")
def main(debug):
    """minigraph: neural networks as computational graphs you can read, run and draw.

    \b
    Example:
      minigraph run models/xor.yaml
      minigraph render models/xor.yaml --grads -o xor.svg
    """


def _finite(ctx, param, value):
    """Refuse nan and inf, which click's ranges let through."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number")
    return value


model_arg = click.argument("model", type=click.Path(dir_okay=False))


def load(model):
    """Load and check a model file, printing its warnings (unused params) on stderr."""
    from minigraph.model import load_graph

    graph = load_graph(model)
    for warning in graph.warnings:
        click.echo(warning, err=True)
    return graph


@main.command()
@model_arg
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where data sets live.")
def check(model, data_dir):
    """Validate MODEL, infer shapes and check every gradient numerically.

    \b
    Example:
      minigraph check models/xor.yaml
    """
    from minigraph.inspect import check_model

    graph = load(model)
    result = check_model(graph, data_dir=data_dir)
    click.echo(report.check_text(result))
    if not result.ok:
        raise RunError(f"{model}: gradient check failed")


@main.command()
@model_arg
def summary(model):
    """A table of MODEL's nodes, output shapes and parameter counts.

    \b
    Example:
      minigraph summary models/mnist_cnn.yaml
    """
    click.echo(report.summary_text(load(model)))


@main.command()
def ops():
    """List every op with its inputs, attributes and one-line doc.

    \b
    Example:
      minigraph ops
    """
    from minigraph.inspect import op_infos

    click.echo(report.ops_text(op_infos()))


@main.command()
@model_arg
@click.option("--epochs", type=click.IntRange(min=1), help="Override train.epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Override train.batch_size.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), callback=_finite,
              help="Override the learning rate.")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), help="Override train.seed.")
@click.option("--backend", type=click.Choice(["numpy", "cupy", "auto"]),
              help="Array backend (default: the file's, else $MINIGRAPH_BACKEND, else numpy).")
@click.option("--save", type=click.Path(dir_okay=False), help="Save params and training state (.npz).")
@click.option("--load", "load_path", type=click.Path(dir_okay=False),
              help="Start from saved params (and resume training state if present).")
@click.option("--log", type=click.Path(dir_okay=False), help="Write one JSON line per epoch.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where data sets live.")
@click.option("--quiet", is_flag=True, help="No progress bar; only the final summary.")
def run(model, epochs, batch_size, lr, seed, backend, save, load_path, log, data_dir, quiet):
    """Train MODEL (or run one forward pass if it has no train section).

    \b
    Example:
      minigraph run models/xor.yaml
      minigraph run models/mnist_mlp.yaml --epochs 2 --data-dir ../shared/datasets/mnist
    """
    from minigraph.train import run_model

    from minigraph.checkpoint import interrupt_once

    # One guard for the run and its last words: the first Ctrl-C stops training (run_model
    # then saves the last epoch boundary); later ones cannot cut the save or the message.
    with interrupt_once():
        graph = load(model)  # parsed and checked once; warnings printed
        progress = report.Progress(quiet=quiet)
        try:
            result = run_model(graph, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                               backend=backend, save=save, load=load_path, log=log,
                               data_dir=data_dir, callback=progress)
        finally:
            progress.close()
        interrupted = result.history is not None and result.history.interrupted
        click.echo(interrupted_text(result) if interrupted else report.run_text(result),
                   err=interrupted)
    if interrupted:
        raise SystemExit(130)


def interrupted_text(result) -> str:
    """The one line a Ctrl-C'd run ends with: which epoch was saved, and how to go on."""
    epoch = result.epoch or 0
    where = f"after epoch {epoch}" if epoch else "before the first epoch ended"
    if result.saved:
        return (f"interrupted (Ctrl-C) {where}: saved the state at epoch {epoch} to "
                f"{result.saved}; continue with --load {result.saved}")
    return f"interrupted (Ctrl-C) {where}: nothing saved (use --save to keep the state)"


@main.command(name="eval")
@model_arg
@click.option("--params", "params", required=True, type=click.Path(dir_okay=False),
              help="Saved params (.npz from run --save).")
@click.option("--backend", type=click.Choice(["numpy", "cupy", "auto"]))
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where data sets live.")
def eval_(model, params, backend, data_dir):
    """Loss and metrics of trained params on MODEL's test data.

    \b
    Example:
      minigraph run models/circles.yaml --save circles.npz
      minigraph eval models/circles.yaml --params circles.npz
    """
    from minigraph.train import evaluate_model

    click.echo(report.eval_text(evaluate_model(load(model), params, data_dir=data_dir,
                                               backend=backend)))


from .render_cmds import plot, render  # noqa: E402  (commands kept in their own module)

main.add_command(render)
main.add_command(plot)


def run_main():  # pragma: no cover - console entry for `python -m`
    sys.exit(main())
