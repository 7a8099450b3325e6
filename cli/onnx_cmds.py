"""``minigraph export`` and ``minigraph import``: ONNX files (needs ``minigraph[onnx]``)."""
from __future__ import annotations

import click

from .main import model_arg


@click.command(name="export")
@model_arg
@click.option("--params", type=click.Path(dir_okay=False),
              help="Trained params (.npz from run --save); default: the file's initializers.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The ONNX file to write.")
@click.option("--opset", type=click.IntRange(13, 30), default=17, show_default=True,
              help="ONNX opset (17 runs on every onnxruntime since 1.13).")
@click.option("--with-loss", is_flag=True, help="Also export the loss and its targets.")
def export(model, params, output, opset, with_loss):
    """Write MODEL as an ONNX file (open it in Netron, run it in onnxruntime).

    \b
    Example:
      minigraph run models/mnist_cnn.yaml --save cnn.npz
      minigraph export models/mnist_cnn.yaml --params cnn.npz -o cnn.onnx
      netron cnn.onnx
    """
    from minigraph.onnx_io.files import export_file

    result = export_file(model, output, params=params, opset=opset, with_loss=with_loss)
    click.echo(f"wrote {result.path} (opset {result.opset}, {result.nodes} nodes, "
               f"{result.initializers} initializers; passes onnx.checker full_check)")


@click.command(name="import")
@click.argument("onnx_file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The model file to write (.yaml or .json).")
@click.option("--name", help="The model's name (default: the ONNX graph's).")
def import_(onnx_file, output, name):
    """Write an ONNX model as a minigraph model file, its weights beside it.

    \b
    Example:
      minigraph import cnn.onnx -o cnn.yaml
      minigraph render cnn.yaml --params cnn.npz --grads -o cnn.svg
    """
    from minigraph.onnx_io.files import import_file

    result = import_file(onnx_file, output, name=name)
    weights = f"; weights in {result.weights}" if result.weights else "; weights inline"
    click.echo(f"wrote {result.path} ({result.nodes} nodes, {result.params} params{weights})")
