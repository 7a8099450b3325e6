"""When training stops before ``train.epochs``: ``train.stop_at`` (a goal reached) and
``train.early_stopping`` (the monitored number stopped improving, as Keras' ``EarlyStopping``).

Both watch the keys of an epoch's record: ``loss``, each metric of ``train.metrics``, and with
test data ``test_loss`` and ``test_<metric>``.  A loss, ``mse`` and ``mae`` improve by going
down, every other metric (``accuracy``) by going up.

``early_stopping: {monitor: test_loss, patience: 10, min_delta: 0, restore_best: true}``:
after each epoch, the monitored value *improves* when it beats the best so far by more than
``min_delta``; after ``patience`` epochs in a row without an improvement training stops, and
with ``restore_best`` the params go back to those of the best epoch (also when training ran
to the end without stopping, as Keras' ``restore_best_weights`` does).
"""
from __future__ import annotations

from .limits import short
from .metrics import METRICS
from .options import Option, OptionError, check_options

LOWER_IS_BETTER = ("loss", "mse", "mae")

EARLY_STOPPING_OPTIONS = {
    "monitor": Option("str", None, "the record key to watch (default: test_loss with test "
                      "data, else loss)", words="a key such as test_loss"),
    "patience": Option("int", 0, "epochs without an improvement before stopping", minimum=0,
                       maximum=10**9, words="a whole number >= 0"),
    "min_delta": Option("float", 0.0, "the least change that counts as an improvement",
                        minimum=0, words="a number >= 0"),
    "restore_best": Option("bool", False, "go back to the params of the best epoch",
                           words="true or false"),
}


def lower_is_better(key: str) -> bool:
    """Whether the record key ``key`` improves by going down (a loss, mse, mae)."""
    return key.removeprefix("test_") in LOWER_IS_BETTER


def watchable_keys(metrics: list, has_test: bool) -> list:
    """The record keys ``stop_at`` and ``early_stopping`` can watch, in the record's order."""
    train = ["loss", *metrics]
    return train + ([f"test_{k}" for k in train] if has_test else [])


def _check_key(key, metrics: list, has_test: bool, subject: str, error_key: str) -> None:
    """Refuse a key no record has, saying what is missing and listing every accepted key."""
    accepted = watchable_keys(metrics, has_test)
    if key in accepted:
        return
    base = key.removeprefix("test_") if isinstance(key, str) else None
    if base in METRICS and base not in metrics:
        why = f"needs '{base}' in train.metrics (metrics: {metrics or 'none'})"
    elif base in ("loss", *metrics) and not has_test:
        why = "needs a data.test section"
    else:
        why = f"cannot watch {short(key)}: no epoch record has it"
    raise OptionError(f"{subject} {why}; accepted keys: {', '.join(accepted)}", error_key)


def check_stop_at(stop, metrics: list, has_test: bool) -> dict:
    """``train.stop_at`` checked: a mapping of watchable keys to numbers; an
    :class:`OptionError` keyed ``stop_at[.NAME]`` otherwise."""
    if not stop:
        raise OptionError("train.stop_at must be a mapping such as {accuracy: 1.0}", "stop_at")
    out = {}
    for key, value in stop.items():
        name = key if isinstance(key, str) else short(key)
        _check_key(key, metrics, has_test, f"train.stop_at.{name}", f"stop_at.{key}")
        out[key] = Option("float", words="a number").check(f"stop_at.{key}", value,
                                                           f"train.stop_at.{key}")
    return out


def check_early_stopping(raw, metrics: list, has_test: bool) -> dict:
    """``train.early_stopping`` checked, defaults filled in (``monitor``: test_loss with test
    data, else loss); an :class:`OptionError` keyed ``early_stopping[.NAME]`` otherwise."""
    if not isinstance(raw, dict):
        raise OptionError("train.early_stopping must be a mapping such as {monitor: test_loss, "
                          "patience: 10}", "early_stopping")
    try:
        values = check_options(EARLY_STOPPING_OPTIONS, raw, "key", "train.early_stopping",
                               name_as="train.early_stopping.{}")
    except OptionError as exc:
        raise OptionError(exc.message, f"early_stopping.{exc.key}" if exc.key
                          else "early_stopping") from None
    if values["monitor"] is None:
        values["monitor"] = "test_loss" if has_test else "loss"
    _check_key(values["monitor"], metrics, has_test,
               f"train.early_stopping.monitor {values['monitor']}",
               "early_stopping.monitor")
    return values


def stop_reached(stop_at: dict | None, record: dict) -> bool:
    """Whether an epoch's record meets every goal of ``train.stop_at`` (a loss, mse or mae at
    most its goal, another metric at least its goal)."""
    if not stop_at:
        return False
    for key, goal in stop_at.items():
        got = record.get(key)
        if got is None or (got > goal if lower_is_better(key) else got < goal):
            return False
    return True


def stop_at_text(stop_at: dict) -> str:
    """The goals of ``stop_at`` in words: ``accuracy >= 1``."""
    return ", ".join(f"{k} {'<=' if lower_is_better(k) else '>='} {v:g}"
                     for k, v in stop_at.items())


class EarlyStopping:
    """Keras' ``EarlyStopping`` on minigraph's epoch records; the trainer calls
    :meth:`on_epoch_end` after each epoch and :meth:`on_train_end` once at the end.

    ``params`` is the trainer's live params (a mapping of arrays, changed in place): with
    ``restore_best`` a copy is taken at each best epoch and written back at the end.
    """

    def __init__(self, params, monitor: str, patience: int = 0, min_delta: float = 0.0,
                 restore_best: bool = False):
        self.params, self.monitor, self.patience = params, monitor, patience
        self.min_delta, self.restore_best = min_delta, restore_best
        self.lower = lower_is_better(monitor)
        self.best = None
        self.best_epoch = None
        self.wait = 0
        self.stop_training = False
        self.best_params = None

    def improved(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best - self.min_delta if self.lower \
            else value > self.best + self.min_delta

    def on_epoch_end(self, record: dict) -> None:
        value = record.get(self.monitor)
        if value is None:
            return
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, record["epoch"], 0
            if self.restore_best:
                self.best_params = {k: v.copy() for k, v in self.params.items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stop_training = True

    def on_train_end(self) -> int | None:
        """Write the best epoch's params back (with ``restore_best``); returns that epoch, or
        None when nothing was restored."""
        if not self.restore_best or self.best_params is None:
            return None
        for name, value in self.best_params.items():
            self.params[name][...] = value
        return self.best_epoch

    def reason(self) -> str:
        """Why training stopped, in words."""
        return (f"{self.monitor} did not improve for {self.wait} epoch"
                f"{'s' if self.wait != 1 else ''}, best {self.best:.4g} at epoch "
                f"{self.best_epoch}")
