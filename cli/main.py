"""The ``minigraph`` command line: one verb per command, each a thin layer over the API.

Exit codes: 0 success; 1 the run itself failed (e.g. the loss became NaN); 2 a usage or input
mistake, printed as one line on stderr (``minigraph --debug ...`` shows the traceback).
"""
from __future__ import annotations

import sys

import click

from minigraph import report
from minigraph.errors import MinigraphError, RunError


class Group(click.Group):
    """Turns minigraph's errors into one clear line and an exit code, unless --debug."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
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


def run_main():  # pragma: no cover - console entry for `python -m`
    sys.exit(main())
