"""Epoch progress for ``minigraph run``: the only printer besides ``click.echo``."""
from __future__ import annotations

import sys

from minigraph.api import Callback

from .text import metric_text


class Progress(Callback):
    """A tqdm bar on a terminal, else a line now and then; a :class:`~minigraph.api.Callback`.

    Quiet when asked, and a plain log line every ``log_every`` epochs when standard error is
    not a terminal.
    """

    def __init__(self, quiet=False, total=None, log_every=None):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.total = total
        self.log_every = log_every
        self.bar = None

    def on_train_begin(self, total, start=0, log_every=None, trainer=None):
        """Told by ``run_model`` before the first epoch: how many epochs, from where."""
        self.total, self.start = total, start
        self.log_every = self.log_every or log_every

    def on_epoch_end(self, record):
        if self.quiet:
            return
        if self.tty:
            self._bar(record)
            return
        every = self.log_every or max(1, (self.total or 10) // 10)
        if record["epoch"] % every == 0 or record["epoch"] == self.total or record["epoch"] == 1:
            print(f"epoch {record['epoch']}: {metric_text(record)}", file=sys.stderr,
                  flush=True)

    def _bar(self, record):
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=self.total, unit="epoch", dynamic_ncols=True,
                            initial=record["epoch"] - 1, file=sys.stderr)
        self.bar.set_postfix_str(metric_text(record), refresh=False)
        self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class CheckProgress:
    """``minigraph check``'s progress: on a terminal, a bar for a check that perturbs at least
    ``least`` elements (a small model's check is over at once and shows none); it goes away
    when the check ends.  A context manager, called as ``progress(done, total)``."""

    def __init__(self, least: int = 100):
        self.least = least
        self.bar = None

    def __enter__(self):
        return self

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if total < self.least or not sys.stderr.isatty():
                return
            from tqdm import tqdm

            from .main import terminal_width

            # A terminal that says it is 0 x 0 (some CI and docker ptys) gets an 80-column bar;
            # tqdm would hide a bar below "row 0".
            self.bar = tqdm(total=total, initial=done - 1, unit="element", file=sys.stderr,
                            desc="gradient check", leave=False, ncols=terminal_width(80),
                            nrows=24)
        self.bar.update(1)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
