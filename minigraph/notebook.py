"""Training progress in a Jupyter notebook, for :func:`minigraph.api.run_model`.

In a notebook (an IPython kernel), ``run_model`` without a callback shows an epoch bar:
tqdm's notebook widget when ``ipywidgets`` is installed, else one line of text that is
updated in place every ``log_every`` epochs (IPython's ``display(..., display_id=True)``).
Nothing is printed: the notebook displays, and outside a notebook nothing is shown at all
(the command line has its own progress, ``cli/progress.py``).
"""
from __future__ import annotations

import importlib.util
import sys


def in_notebook() -> bool:
    """Whether this Python runs in a Jupyter kernel (not a terminal IPython or a script)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def notebook_progress():
    """A :class:`NotebookProgress` in a notebook, else None (nothing to show)."""
    return NotebookProgress() if in_notebook() else None


def _epoch_text(record: dict) -> str:
    numbers = "  ".join(f"{k} {v:.4g}" for k, v in record.items()
                        if k not in ("epoch", "seconds") and isinstance(v, (int, float)))
    return f"epoch {record.get('epoch', 0)}: {numbers}"


class NotebookProgress:
    """An epoch bar for a notebook cell (a :class:`minigraph.api.Callback` by its methods).

    ``widget``: use tqdm's notebook bar (default: when ipywidgets is installed); otherwise
    ``display`` (default: IPython's) shows one line, updated in place.
    """

    def __init__(self, widget: bool | None = None, display=None):
        self.widget = importlib.util.find_spec("ipywidgets") is not None if widget is None \
            else widget
        self.display = display
        self.bar = self.handle = None
        self.total, self.every = None, 1

    def on_train_begin(self, total, start=0, log_every=None, trainer=None) -> None:
        self.total = total
        self.every = log_every or max(1, total // 100)
        if self.widget:
            from tqdm.notebook import tqdm

            self.bar = tqdm(total=total, initial=start, unit="epoch")
        else:
            self.handle = self._display()(f"training: {total} epochs", display_id=True)

    def _display(self):
        if self.display is None:
            from IPython.display import display

            self.display = display
        return self.display

    def on_epoch_end(self, record: dict) -> None:
        epoch = record.get("epoch", 0)
        last = epoch == self.total
        if self.bar is not None:
            self.bar.set_postfix_str(_epoch_text(record).split(": ", 1)[-1], refresh=False)
            self.bar.update(1)
            if last:
                self.bar.close()
        elif self.handle is not None and (epoch % self.every == 0 or last or epoch == 1):
            self.handle.update(f"{_epoch_text(record)}  ({epoch}/{self.total})")
