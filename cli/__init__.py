"""The ``minigraph`` command line (installed as ``minigraph.cli``).

``main.py``: the group, its error handling and the shared options; ``commands.py``: run,
eval, check, summary, ops; ``render_cmds.py``: render, plot; ``text.py``: results as text;
``progress.py``: the progress bar.  Importing the package adds the commands to the group.
"""
from .commands import check, eval_, ops, run, summary
from .main import main
from .page_cmds import view
from .render_cmds import plot, render
from .onnx_cmds import export, import_
from . import bptt_cmd  # noqa: F401  (adds `plot bptt`)

for _command in (check, summary, ops, run, eval_, render, plot):
    main.add_command(_command)
for _command in (export, import_):  # ONNX files (minigraph[onnx])
    main.add_command(_command)

from .predict_cmd import predict  # noqa: E402  (minigraph predict)

main.add_command(predict)
main.add_command(view)

__all__ = ["main"]
