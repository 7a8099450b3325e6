"""``minigraph run``, ``eval``, ``check``, ``summary`` and ``ops``.

Each command parses its arguments, makes one call into :mod:`minigraph.api` (or
:mod:`minigraph.introspect`) and prints the result through :mod:`cli.text`.  Mistakes are
:class:`~minigraph.errors.MinigraphError` (one line, exit 2; see :mod:`cli.main`).
"""
from __future__ import annotations

import click

from minigraph.errors import RunError
from minigraph.limits import MAX_SEED

from . import text
from .main import backend_option, data_dir_option, finite, load, model_arg


@click.command()
@model_arg
@data_dir_option
@click.option("--full", is_flag=True,
              help="Perturb every element of every param (default: a seeded sample).")
def check(model, data_dir, full):
    """Validate MODEL, infer shapes and check every gradient numerically.

    \b
    Example:
      minigraph check models/xor.yaml
      minigraph check models/mnist_cnn.yaml --full
    """
    from minigraph.api import check_model

    from .progress import CheckProgress

    with CheckProgress() as progress:
        report = check_model(load(model), data_dir=data_dir, full=full, progress=progress)
    click.echo(text.check_text(report))
    if not report.ok:
        raise RunError(f"{model}: gradient check failed")


@click.command()
@model_arg
@click.option("--expand", is_flag=True, help="Also list the primitive nodes of each layer op.")
def summary(model, expand):
    """A table of MODEL's nodes, output shapes and parameter counts, with totals.

    \b
    Example:
      minigraph summary models/mnist_cnn.yaml
      minigraph summary models/mnist_cnn.yaml --expand
    """
    from minigraph.introspect import summary as model_summary

    click.echo(text.summary_text(model_summary(load(model), expand=expand)))


@click.command()
@click.argument("name", required=False)
def ops(name):
    """List every op with its inputs, attributes and one-line doc; or one op (NAME) in full.

    \b
    Example:
      minigraph ops
      minigraph ops maxpool2d
    """
    from minigraph.introspect import op_doc, op_infos

    from .main import terminal_width

    if name:
        click.echo(text.op_doc_text(op_doc(name), terminal_width()))
    else:
        click.echo(text.ops_text(op_infos(), terminal_width()))


@click.command()
@model_arg
@click.option("--epochs", type=click.IntRange(min=1), help="Override train.epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Override train.batch_size.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), callback=finite,
              help="Override the learning rate.")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), help="Override train.seed.")
@backend_option()
@click.option("--save", type=click.Path(dir_okay=False), help="Save params and training state (.npz).")
@click.option("--load", "load_path", type=click.Path(dir_okay=False),
              help="Start from saved params (and resume training state if present).")
@click.option("--log", type=click.Path(dir_okay=False), help="Write one JSON line per epoch.")
@data_dir_option
@click.option("--quiet", "-q", is_flag=True,
              help="Nothing while training; only the final summary.")
@click.option("--verbose", "-v", is_flag=True,
              help="An epoch line after every epoch (default: every train.log_every).")
@click.option("--distributed", is_flag=True,
              help="Data-parallel across the ranks of an MPI job: mpiexec -n N minigraph run "
                   "MODEL --distributed (needs minigraph[mpi]); rank 0 reports.")
@click.option("--trace", type=click.Path(dir_okay=False),
              help="Record a training trace (.npz) for `render --format html --trace`.")
@click.option("--trace-every", type=click.IntRange(min=1),
              help="Record the trace every N epochs (default: about 100 records in all).")
def run(model, epochs, batch_size, lr, seed, backend, save, load_path, log, data_dir, quiet,
        verbose, distributed, trace=None, trace_every=None):
    """Train MODEL (or run one forward pass if it has no train section).

    \b
    Example:
      minigraph run models/xor.yaml
      minigraph run models/mnist_mlp.yaml --epochs 2 --data-dir ../shared/datasets/mnist
      mpiexec -n 2 minigraph run models/circles.yaml --distributed
      minigraph run models/xor.yaml --trace xor_trace.npz
    """
    import warnings

    from minigraph.api import run_model
    from minigraph.checkpoint import interrupt_once

    from .progress import Progress

    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose contradict each other: give one")

    # One guard for the run and its last words: the first Ctrl-C stops training (run_model
    # then saves the last epoch boundary); later ones cannot cut the save or the message.
    with interrupt_once():
        graph = load(model)  # parsed and checked once; warnings printed
        progress = Progress(verbosity=0 if quiet else 2 if verbose else 1)
        try:  # NaN and overflow: the trainer names the node; NumPy's own warnings would not
            with warnings.catch_warnings():  # (np.errstate would slow every op down)
                warnings.simplefilter("ignore", RuntimeWarning)
                result = run_model(graph, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                   backend=backend, save=save, load=load_path, log=log,
                                   data_dir=data_dir, callback=progress,
                                   distributed=distributed, trace=trace,
                                   trace_every=trace_every)
        finally:
            progress.close()
        interrupted = result.history is not None and result.history.interrupted
        if not result.quiet:  # a data-parallel run: rank 0 reports
            click.echo(text.interrupted_text(result) if interrupted else text.run_text(result),
                       err=interrupted)
            if result.trace:
                click.echo(f"wrote trace {result.trace}", err=interrupted)
    if interrupted:
        raise SystemExit(130)


@click.command(name="eval")
@model_arg
@click.option("--params", "params", required=True, type=click.Path(dir_okay=False),
              help="Saved params (.npz from run --save).")
@backend_option(help=None)
@data_dir_option
def eval_(model, params, backend, data_dir):
    """Loss and metrics of trained params on MODEL's test data.

    \b
    Example:
      minigraph run models/circles.yaml --save circles.npz
      minigraph eval models/circles.yaml --params circles.npz
    """
    from minigraph.api import evaluate_model

    click.echo(text.eval_text(evaluate_model(load(model), params, data_dir=data_dir,
                                             backend=backend)))
