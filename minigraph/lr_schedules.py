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

from .options import REQUIRED, Option, check_options
from .registry import Registry

SCHEDULES = Registry("schedule")  # @SCHEDULES.register("cosine") makes a class available


def epochs_option(default, doc) -> Option:
    return Option("int", default, doc, minimum=1, words="a whole number >= 1")


def gamma_option(default, doc="factor γ of each decay") -> Option:
    return Option("float", default, doc, above=0.0, words="a finite number > 0")


# =============================================================================
# Base class
# =============================================================================


class Schedule:
    """Base class.  Subclasses declare their ``options`` and write ``lr_at``.

    ``options`` maps each option to its :class:`~minigraph.options.Option` (an option without
    a default is required).  Options become attributes.
    """

    name = "schedule"
    options: dict = {}

    def __init__(self, base_lr: float, epochs: int, **given):
        self.base_lr = float(base_lr)
        self.epochs = int(epochs)
        owner = f"schedule '{self.name}'"
        values = check_options(self.options, given, "option", owner,
                               name_as=f"{owner} option '{{}}'")
        for key, value in values.items():
            setattr(self, key, value)

    def lr_at(self, epoch: int) -> float:
        """The learning rate for ``epoch`` (0, 1, 2, ...)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.options)
        return f"{type(self).__name__}(base_lr={self.base_lr!r}{', ' if options else ''}{options})"


# =============================================================================
# The schedules
# =============================================================================


@SCHEDULES.register("constant")
class Constant(Schedule):
    """``γ_e = γ0`` for every epoch ``e``."""

    def lr_at(self, epoch):
        return self.base_lr


@SCHEDULES.register("step")
class Step(Schedule):
    """Multiply by ``gamma`` every ``step_size`` epochs (StepLR)::

        γ_e = γ0 · gamma^⌊e / step_size⌋
    """

    options = {"step_size": epochs_option(REQUIRED, "epochs between two decays"),
               "gamma": gamma_option(0.1)}

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


@SCHEDULES.register("multistep")
class MultiStep(Schedule):
    """Multiply by ``gamma`` at each milestone epoch (MultiStepLR)::

        γ_e = γ0 · gamma^(number of milestones ≤ e)
    """

    options = {"milestones": Option("ints", REQUIRED, "the epochs at which to decay", minimum=0,
                                    words="a list of epoch numbers (whole numbers >= 0)"),
               "gamma": gamma_option(0.1)}

    def __init__(self, base_lr, epochs, **given):
        super().__init__(base_lr, epochs, **given)
        self.milestones = sorted(self.milestones)

    def lr_at(self, epoch):
        passed = bisect.bisect_right(self.milestones, epoch)
        return self.base_lr * self.gamma**passed


@SCHEDULES.register("exponential")
class Exponential(Schedule):
    """Multiply by ``gamma`` every epoch (ExponentialLR)::

        γ_e = γ0 · gamma^e
    """

    options = {"gamma": gamma_option(REQUIRED, "factor γ applied every epoch")}

    def lr_at(self, epoch):
        return self.base_lr * self.gamma**epoch


@SCHEDULES.register("cosine")
class Cosine(Schedule):
    """Half a cosine from ``γ0`` down to ``eta_min`` over ``T_max`` epochs (CosineAnnealingLR)::

        γ_e = eta_min + (γ0 − eta_min) · (1 + cos(π e / T_max)) / 2

    ``T_max`` defaults to the number of training epochs.  Past ``T_max`` the cosine climbs
    back up, as PyTorch's does.
    """

    options = {"T_max": epochs_option(None, "epochs of the half cosine (null: train.epochs)"),
               "eta_min": Option("float", 0.0, "the lowest rate", minimum=0.0,
                                 words="a finite number >= 0")}

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

    ``None`` gives a constant rate.  Mistakes raise an :class:`~minigraph.options.OptionError`
    whose ``.key`` names the offending config key (the caller locates it).
    """
    if config is None:
        return Constant(base_lr, epochs)
    cls, options = SCHEDULES.typed(config)
    return cls(base_lr, epochs, **options)
