"""``minigraph view``: the interactive page of a model, opened in the web browser.

Added to the group in ``cli/__init__.py``; ``render --format html`` writes the same page to a
file (``render_cmds.py``).
"""
from __future__ import annotations

import click

from .main import data_dir_option, model_arg


@click.command()
@model_arg
@click.option("--params", "params", type=click.Path(dir_okay=False),
              help="Show trained params (.npz from run --save) and their optimizer state.")
@click.option("--trace", type=click.Path(dir_okay=False),
              help="A `run --trace` file: a slider scrubs through its recorded steps.")
@data_dir_option
def view(model, params, trace, data_dir):
    """Open MODEL's interactive page in the web browser (written to a temporary file).

    Step through the forward and backward passes (arrow keys), hover any tensor for its
    value and gradient, scrub through a training trace.

    \b
    Example:
      minigraph view models/xor.yaml
      minigraph run models/xor.yaml --trace xor_trace.npz
      minigraph view models/xor.yaml --trace xor_trace.npz
    """
    from minigraph.explore import open_page

    click.echo(f"opened {open_page(model, params=params, trace=trace, data_dir=data_dir)}")
