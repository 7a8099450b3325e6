"""``minigraph plot bptt``: the gradient that backpropagation through time brings to each
step of a recurrent layer.  Added to the ``plot`` group in ``cli/__init__.py``."""
from __future__ import annotations

import click

from .main import data_dir_option
from .render_cmds import plot


@plot.command("bptt")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--params", "params", multiple=True, type=click.Path(dir_okay=False),
              help="Trained params (.npz) of the first MODEL; repeat for the next ones "
                   "(default: fresh params).")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False),
              help="Output image (default: the models' names with _bptt.png).")
@data_dir_option
def bptt(models, params, out, data_dir):
    """Bars of mean |dL/dx_t| over the steps t of each MODEL's recurrent layer, for one
    batch (log scale): vanishing gradients through time, at any T.

    \b
    Example:
      minigraph plot bptt models/memory_rnn.yaml models/memory_lstm.yaml -o bptt.png
      minigraph run models/lstm_weather.yaml --save w.npz
      minigraph plot bptt models/lstm_weather.yaml --params w.npz
    """
    from minigraph.bptt import default_name, plot_bptt

    if len(params) > len(models):
        raise click.BadParameter(f"{len(params)} --params for {len(models)} model(s)",
                                 param_hint="--params")
    path = plot_bptt(list(models), out or default_name(models), params=params,
                     data_dir=data_dir)
    click.echo(f"wrote {path}")
