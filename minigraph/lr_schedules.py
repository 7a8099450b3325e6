"""Learning-rate schedules: the learning rate as a function of the epoch.

A schedule is a closed form ``lr_at(epoch)``, with epochs counted from 0, so epoch 0 always
trains at the optimizer's base rate ``γ0``.  The trainer sets ``optimizer.lr = lr_at(epoch)``
at the start of each epoch.  The values equal PyTorch's ``torch.optim.lr_scheduler`` classes
(StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR) stepped once per epoch.

In a model file::

    schedule: {type: cosine, eta_min: 0.0001}
"""
from __future__ import annotations

import bisect
import math
import numbers

from .configs import check_names, config_error, number, registrar, split_type

SCHEDULES: dict[str, type] = {}
register = registrar(SCHEDULES)  # @register("cosine") makes a class available by name
_error = config_error


# -- checks for option values: each takes (where, key, value) and returns the clean value ----


def positive_int(where, key, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise _error(f"{where} must be a whole number >= 1, got {value!r}", key)
    return int(value)


def positive_number(where, key, value) -> float:
    return number(where, key, value, strict=True)


def non_negative_number(where, key, value) -> float:
    return number(where, key, value)


def epoch_list(where, key, value) -> list:
    ok = isinstance(value, (list, tuple)) and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0 for v in value
    )
    if not ok:
        raise _error(f"{where} must be a list of epoch numbers (whole numbers >= 0), got {value!r}", key)
    return sorted(int(v) for v in value)


# =============================================================================
# Base class
# =============================================================================


class Schedule:
    """Base class.  Subclasses declare their options and write ``lr_at``.

    ``options`` maps each option to its check function; ``defaults`` gives the default of
    each optional one (options without a default are required).  Options become attributes.
    """

    name = "schedule"
    options: dict = {}
    defaults: dict = {}

    def __init__(self, base_lr: float, epochs: int, **given):
        self.base_lr = float(base_lr)
        self.epochs = int(epochs)
        self.check_names(given)
        for key, check in self.options.items():
            where = f"schedule '{self.name}' option '{key}'"
            if key in given:
                value = check(where, key, given[key])
            elif key in self.defaults:
                value = self.defaults[key]
            else:
                raise _error(f"schedule '{self.name}' needs the option '{key}'", "type")
            setattr(self, key, value)

    @classmethod
    def check_names(cls, given) -> None:
        """Refuse option names this schedule does not have, suggesting the closest one."""
        check_names("schedule", cls.name, given, cls.options)

    def lr_at(self, epoch: int) -> float:
        """The learning rate for ``epoch`` (0, 1, 2, ...)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.options)
        return f"{type(self).__name__}(base_lr={self.base_lr!r}{', ' if options else ''}{options})"


# =============================================================================
# The schedules
# =============================================================================


@register("constant")
class Constant(Schedule):
    """``γ_e = γ0`` for every epoch ``e``."""

    def lr_at(self, epoch):
        return self.base_lr


@register("step")
class Step(Schedule):
    """Multiply by ``gamma`` every ``step_size`` epochs (StepLR)::

        γ_e = γ0 · gamma^⌊e / step_size⌋
    """

    options = {"step_size": positive_int, "gamma": positive_number}
    defaults = {"gamma": 0.1}

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


@register("multistep")
class MultiStep(Schedule):
    """Multiply by ``gamma`` at each milestone epoch (MultiStepLR)::

        γ_e = γ0 · gamma^(number of milestones ≤ e)
    """

    options = {"milestones": epoch_list, "gamma": positive_number}
    defaults = {"gamma": 0.1}

    def lr_at(self, epoch):
        passed = bisect.bisect_right(self.milestones, epoch)
        return self.base_lr * self.gamma**passed


@register("exponential")
class Exponential(Schedule):
    """Multiply by ``gamma`` every epoch (ExponentialLR)::

        γ_e = γ0 · gamma^e
    """

    options = {"gamma": positive_number}

    def lr_at(self, epoch):
        return self.base_lr * self.gamma**epoch


@register("cosine")
class Cosine(Schedule):
    """Half a cosine from ``γ0`` down to ``eta_min`` over ``T_max`` epochs (CosineAnnealingLR)::

        γ_e = eta_min + (γ0 − eta_min) · (1 + cos(π e / T_max)) / 2

    ``T_max`` defaults to the number of training epochs.  Past ``T_max`` the cosine climbs
    back up, as PyTorch's does.
    """

    options = {"T_max": positive_int, "eta_min": non_negative_number}
    defaults = {"T_max": None, "eta_min": 0.0}

    def __init__(self, base_lr, epochs, **given):
        super().__init__(base_lr, epochs, **given)
        if self.T_max is None:
            self.T_max = max(self.epochs, 1)

    def lr_at(self, epoch):
        cosine = (1 + math.cos(math.pi * epoch / self.T_max)) / 2
        return self.eta_min + (self.base_lr - self.eta_min) * cosine


# =============================================================================
# From a model file's config
# =============================================================================


def make_schedule(config: dict | None, base_lr: float, epochs: int) -> Schedule:
    """Build a schedule from a config such as ``{"type": "step", "step_size": 10}``.

    ``None`` gives a constant rate.  Mistakes raise :class:`ModelError` with ``.key`` naming
    the offending config key.
    """
    if config is None:
        return Constant(base_lr, epochs)
    cls, options = split_type("schedule", config, SCHEDULES)
    cls.check_names(options)
    return cls(base_lr, epochs, **options)
