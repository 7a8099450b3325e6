"""``minigraph predict``: a trained model's outputs for the inputs in a file (no targets)."""
from __future__ import annotations

import click
import numpy as np

from .main import backend_option, load, model_arg


def predictions_csv(values: dict) -> str:
    """The outputs as CSV: one row per example, one column per value (``y`` or ``y[0]``...)."""
    names, columns = [], []
    for name, value in values.items():
        value = np.asarray(value)
        rows = value.reshape(len(value), -1) if value.ndim > 1 else value.reshape(-1, 1)
        width = rows.shape[1]
        names += [name] if value.ndim <= 1 else [f"{name}[{j}]" for j in range(width)]
        columns.append(rows)
    table = np.concatenate(columns, axis=1) if columns else np.zeros((0, 0))
    lines = [",".join(names)] + [",".join(f"{v:.6g}" for v in row) for row in table]
    return "\n".join(lines)


@click.command()
@model_arg
@click.option("--params", "params", type=click.Path(dir_okay=False),
              help="Trained params (.npz from run --save); default: the initial ones.")
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False),
              help="The inputs: a CSV or .npy file (one input) or an .npz (one array per input).")
@click.option("--output", "outputs", multiple=True, metavar="TENSOR",
              help="Which tensor to compute (repeatable; default: the model's outputs).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Rows per pass (default 256).")
@backend_option(help=None)
def predict(model, params, input_path, outputs, batch_size, backend):
    """MODEL's outputs for the inputs in a file, as CSV on standard output.

    Only the nodes the outputs need are run, so no targets are read.

    \b
    Example:
      minigraph run models/circles.yaml --save circles.npz
      minigraph predict models/circles.yaml --params circles.npz --input points.csv
    """
    from minigraph.api import Model
    from minigraph.inference import read_inputs

    graph = load(model)
    outputs = list(outputs) or None
    m = Model(graph, backend=backend, params=params)
    feeds = read_inputs(graph, input_path, outputs)
    click.echo(predictions_csv(m.predict(feeds, outputs=outputs, batch_size=batch_size)))
