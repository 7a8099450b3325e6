"""What ``minigraph run`` shows while it trains: the only printer besides ``click.echo``.

Three levels, as Keras' ``verbose``:

* ``--quiet`` (0): nothing while training; only the final summary.
* default (1): a line at the start (model, params, data sizes, batches, optimizer, backend);
  an epoch line every ``log_every`` epochs (and the first and the last) that stays on the
  screen, on a terminal and in a pipe alike (Keras ``verbose=2``); and on a terminal a live
  bar beneath it that advances with every batch: the epoch's batches (or, when an epoch is
  one batch, the run's epochs), the running loss, examples per second and the time left for
  the whole run, measured from the real start (Keras ``verbose=1``).
* ``--verbose`` (2): an epoch line after every epoch.

The live bar is drawn only on a terminal whose width is known; a terminal that reports width
0 (some CI and container pseudo-terminals) gets the lines alone.  It is redrawn at most every
``REDRAW`` seconds, so that it costs a clock read per batch.
"""
from __future__ import annotations

import os
import sys
import time

from minigraph.api import Callback

from .text import epoch_text, start_text

REDRAW = 0.1  # seconds between two drawings of the live bar
BAR = 24  # characters of the bar itself, when the terminal has room


def terminal_width(stream) -> int:
    """Columns of the terminal ``stream`` writes to; 0 when it is no terminal or says 0."""
    try:
        if not stream.isatty():
            return 0
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0
    env = os.environ.get("COLUMNS", "")
    return int(env) if env.isdigit() and columns else columns


class Progress(Callback):
    """The start line, the epoch lines and the live bar of ``minigraph run``; a
    :class:`~minigraph.api.Callback` (``on_train_begin``, ``on_batch_end``, ``on_epoch_end``).

    ``verbosity``: 0 quiet, 1 default, 2 every epoch; ``stream``: where it writes (standard
    error); ``width``: the terminal's columns (default: asked of ``stream``; 0: no live bar);
    ``clock``: seconds (a test may pass its own).
    """

    def __init__(self, verbosity: int = 1, stream=None, width: int | None = None,
                 clock=time.perf_counter):
        self.level = verbosity
        self.stream = stream if stream is not None else sys.stderr
        if width is None:
            width = terminal_width(self.stream)
        self.width = width if verbosity > 0 else 0
        self.clock = clock
        self.total = self.start = self.every = None
        self.examples = self.steps = 1
        self.begun = self.epoch_begun = 0.0
        self.next_draw = 0.0  # the first batch is drawn at once
        self.drawn = 0  # characters of the live bar now on screen
        self.epoch = 0  # the last epoch finished
        self.pending = None  # the last epoch's record, when its line is not out yet

    # -- the events -------------------------------------------------------------------------
    def on_train_begin(self, total, start=0, log_every=None, trainer=None):
        """Before the first epoch: the start line; how often an epoch line is due."""
        self.total, self.start, self.epoch = total, start, start
        self.every = 1 if self.level >= 2 else (log_every or max(1, (total - start) // 10))
        if trainer is not None:
            self.examples, self.steps = run_sizes(trainer)
        self.begun = self.epoch_begun = self.clock()
        if self.level > 0:
            self._line(start_text(trainer, total, start) if trainer is not None
                       else f"training for {total} epochs")

    def on_batch_end(self, step, logs):
        """After each batch: redraw the live bar, at most every ``REDRAW`` seconds."""
        if not self.width:
            return
        now = self.clock()
        if now < self.next_draw:
            return
        self.next_draw = now + REDRAW
        self._draw(self._bar_text(step, logs, now))

    def on_epoch_end(self, record):
        """After each epoch: its line when one is due (else kept for the end)."""
        self.epoch = record["epoch"]
        self.epoch_begun = self.clock()
        if self.level <= 0:
            return
        done = self.epoch - self.start
        if done == 1 or self.epoch % self.every == 0 or self.epoch == self.total:
            self._line(epoch_text(record, self.total))
            self.pending = None
        else:
            self.pending = record

    def close(self):
        """The end of the run (also after an error or Ctrl-C): the bar goes, and the last
        epoch's line comes out if it was not due (an early stop, an interrupt)."""
        self._erase()
        if self.pending is not None and self.level > 0:
            self._line(epoch_text(self.pending, self.total))
        self.pending = None

    # -- the live bar -----------------------------------------------------------------------
    def _bar_text(self, step, logs, now) -> str:
        seen, run_epochs = logs["examples"], max(self.total - self.start, 1)
        done = self.epoch - self.start + min((step + 1) / self.steps, 1.0)
        elapsed = now - self.begun
        eta = elapsed * (run_epochs - done) / done if done > 0 else None
        if self.steps > 1:  # the epoch's batches, at this epoch's rate
            fraction, count = (step + 1) / self.steps, f"{step + 1}/{self.steps}"
            rate = seen / max(now - self.epoch_begun, 1e-9)
        else:  # one batch an epoch: the run's epochs, at the run's rate
            fraction, count = done / run_epochs, ""
            rate = done * self.examples / max(elapsed, 1e-9)
        head = f"epoch {self.epoch + 1}/{self.total}"
        tail = f"loss {logs['loss']:.4g}  {rate:,.0f} examples/s  ETA {clock_text(eta)}"
        parts = [head, bar(fraction), count, tail]
        text = "  ".join(p for p in parts if p)
        if len(text) >= self.width:  # no room for the bar
            text = "  ".join(p for p in (head, count, tail) if p)
        return text[: max(self.width - 1, 0)]

    def _draw(self, text: str) -> None:
        pad = " " * max(self.drawn - len(text), 0)
        self.stream.write("\r" + text + pad)
        self.stream.flush()
        self.drawn = len(text)

    def _erase(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * self.drawn + "\r")
            self.stream.flush()
            self.drawn = 0

    def _line(self, text: str) -> None:
        """A line that stays: above the live bar, which the next batch draws again."""
        self._erase()
        self.stream.write(text + "\n")
        self.stream.flush()


def run_sizes(trainer) -> tuple:
    """``(training examples, batches an epoch)`` of a trainer."""
    from minigraph.data import num_examples

    n = max(num_examples(trainer.train_data), 1)
    size, config = trainer.config.batch_size, trainer.config
    if size is None or size >= n:
        return n, 1
    return n, n // size if config.drop_last else -(-n // size)


def bar(fraction: float) -> str:
    """``[=========>          ]``"""
    filled = int(round(min(max(fraction, 0.0), 1.0) * BAR))
    head = ">" if 0 < filled < BAR else ""
    return "[" + "=" * (filled - len(head)) + head + " " * (BAR - filled) + "]"


def clock_text(seconds) -> str:
    """``0:07``, ``12:34``, ``1:02:03``; ``?`` when not known yet."""
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


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
