"""The ``minigraph`` command group, its error handling, and the options commands share.

Exit codes: 0 success; 1 the run itself failed (e.g. the loss became NaN); 2 a usage or input
mistake, printed as one line on stderr (``minigraph --debug ...`` shows the traceback too, and
keeps the exit code); 130 Ctrl-C, whenever it comes.

The commands live in ``commands.py`` (run, eval, check, summary, ops) and ``render_cmds.py``
(render, plot); ``cli/__init__.py`` adds them to :func:`main`.
"""
from __future__ import annotations

import math
import sys
import traceback

import click

from minigraph.errors import MinigraphError, RunError


from minigraph.__main__ import INTERRUPTED  # the same words before the command line loads


class Group(click.Group):
    """Turns minigraph's errors into one clear line and an exit code (--debug: the traceback
    first, the same exit code); Ctrl-C exits 130 wherever it comes."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # Ctrl-C before training began: nothing to save
            if ctx.params.get("debug"):
                traceback.print_exc()
            click.echo(INTERRUPTED, err=True)
            ctx.exit(130)
        except (MinigraphError, RunError, OSError) as exc:
            if ctx.params.get("debug"):
                traceback.print_exc()
            located = isinstance(exc, MinigraphError) and exc.location is not None
            click.echo(str(exc) if located else f"error: {exc}", err=True)
            ctx.exit(1 if isinstance(exc, RunError) else 2)

    def main(self, *args, **kwargs):
        try:
            return super().main(*args, **kwargs)
        except SystemExit as exc:  # one rank of an MPI job failing ends them all (MPI_Abort)
            if exc.code:
                from minigraph.distributed import end_job

                end_job(exc.code)
            raise

    def make_context(self, *args, **kwargs):
        """Ctrl-C while the command line is read (click would say "Aborted!" and exit 1)."""
        try:
            return super().make_context(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo(INTERRUPTED, err=True)
            raise click.exceptions.Exit(130) from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks.")
@click.option("--import", "imports", multiple=True, metavar="MODULE",
              help="Import MODULE first (repeatable): custom ops it registers can be used.")
@click.version_option(package_name="minigraph")
def main(debug, imports=()):
    """minigraph: neural networks as computational graphs you can read, run and draw.

    \b
    Example:
      minigraph run models/xor.yaml
      minigraph render models/xor.yaml --grads -o xor.svg
      minigraph --import my_ops check my_model.yaml   # custom ops from my_ops.py
    """
    if imports:
        from minigraph.plugins import import_modules

        import_modules(imports)


def run_main():  # pragma: no cover - console entry for `python -m`
    sys.exit(main())


# ==== options shared by several commands ==========================================================

model_arg = click.argument("model", type=click.Path(dir_okay=False))

data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False),
                               help="Where data sets live.")

BACKEND_HELP = "Array backend (default: the file's, else $MINIGRAPH_BACKEND, else numpy)."


def backend_option(help: str | None = BACKEND_HELP):  # noqa: A002 - click's name
    """``--backend numpy|cupy|auto``."""
    return click.option("--backend", type=click.Choice(["numpy", "cupy", "auto"]), help=help)


def finite(ctx, param, value):
    """Refuse nan and inf, which click's ranges let through."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number")
    return value


def load(model):
    """Load and check a model file, printing its warnings (unused params) on stderr."""
    from minigraph.api import load_graph

    graph = load_graph(model)
    for warning in graph.warnings:
        click.echo(warning, err=True)
    return graph


def terminal_width(default: int = 100) -> int:
    """The terminal's width in columns ($COLUMNS first); ``default`` when unknown or 0."""
    import shutil

    columns = shutil.get_terminal_size((default, 24)).columns
    return columns if columns > 0 else default
