"""Optimizers: rules that turn gradients into parameter updates.

Every optimizer follows the same loop, which lives in :class:`Optimizer` (DeZero's design):
for each parameter that has a gradient, optionally add L2 weight decay to the gradient, count
the step, and call the subclass's :meth:`Optimizer.update_one`.  A subclass only writes the
update rule for one parameter.

The rules are exactly the ones PyTorch documents for ``torch.optim`` (same defaults, same
placement of ``eps``, same bias corrections), so a run here can be checked against PyTorch.

Notation used in the docstrings, for one parameter ``θ``:

- ``g``  the gradient at this step (after weight decay: ``g ← g + λ θ``)
- ``t``  how many updates this parameter has received, counting this one (1, 2, 3, ...)
- ``γ``  the learning rate ``lr``
- ``⊙``, ``/``, ``√`` act elementwise

Parameters and gradients are dicts from a parameter's name to its array.  ``step`` changes
the parameter arrays in place, so every other holder of the same array sees the new values.
Per-parameter state (moment estimates and so on) is kept in ``self.state[name]``, a dict from
slot name to array, in the parameter's dtype and on the parameter's device.
"""
from __future__ import annotations


import math

import numpy

from .backend import get_array_module
from .errors import DataError
from .options import Option, OptionError, check_options
from .registry import Registry

OPTIMIZERS = Registry("optimizer")  # @OPTIMIZERS.register("adam") makes a class available

NON_NEGATIVE = "a finite number >= 0"


def rate(default: float, doc: str) -> Option:
    """A non-negative number option: a learning rate, a decay, a momentum, an epsilon."""
    return Option("float", default, doc, minimum=0.0, words=NON_NEGATIVE)


def flag(default: bool, doc: str) -> Option:
    return Option("bool", default, doc, words="true or false")


def betas(default: tuple) -> Option:
    return Option("pair", default, "decay rates (β1, β2) of the running averages", minimum=0.0,
                  below=1.0, words="a list of 2 numbers in [0, 1)")


LR_AND_DECAY = {"lr": rate(0.01, "learning rate γ"),
                "weight_decay": rate(0.0, "L2 weight decay λ, added to the gradient")}


# =============================================================================
# Base class: owns the loop, the options and the saved state
# =============================================================================


class Optimizer:
    """Base class.  Subclasses declare ``options`` and write ``update_one``.

    ``options`` maps every option (including ``lr`` and ``weight_decay``) to its
    :class:`~minigraph.options.Option`: kind, default, doc and range.  Options become
    attributes: ``self.lr``, ``self.betas``, ...
    """

    name = "optimizer"
    options: dict = LR_AND_DECAY
    scalar_slots: tuple = ("step",)  # state slots that are plain numbers, not arrays

    def __init__(self, lr=None, weight_decay=0.0, **options):
        if lr is not None:
            options["lr"] = lr
        options["weight_decay"] = weight_decay
        owner = f"optimizer '{self.name}'"
        values = check_options(self.options, options, "option", owner,
                               name_as=f"{owner} option '{{}}'")
        for key, value in values.items():
            setattr(self, key, value)
        self.validate()
        self.t = 0  # how many times step() has run
        self.state: dict[str, dict] = {}
        self._loaded = False  # state came from load_state_dict and may sit on the host
        self._grad_is_private = False  # see update_param() and scaled_grad()

    # -- options ---------------------------------------------------------------------------

    def validate(self) -> None:
        """Extra checks that involve several options; subclasses may override."""

    def config(self) -> dict:
        """The options as a config dict that :func:`make_optimizer` accepts."""
        config = {"type": self.name}
        for key in self.options:
            value = getattr(self, key)
            config[key] = list(value) if isinstance(value, tuple) else value
        return config

    # -- the loop --------------------------------------------------------------------------

    def scaled_grad(self, grad, factor):
        """``factor * grad``, computed in place when the caller said the gradient is private.

        Use it for the gradient's last use in ``update_one``: afterwards ``grad`` may hold
        the scaled values.  (Plain ``step`` never says so; the training plan's flat update in
        ``kernels/packed.py`` does, for gradient buffers that are its own.)
        """
        if self._grad_is_private:
            grad *= factor
            return grad
        return factor * grad

    def step(self, params: dict, grads: dict) -> None:
        """Update every parameter that has a gradient, in place.

        L2 weight decay (PyTorch style) is added to the gradient first:  ``g ← g + λ θ``.
        """
        self.begin_step(params)
        for name, param in params.items():
            grad = grads.get(name)
            if grad is not None:  # no gradient this step: for example a frozen parameter
                self.update_param(name, param, grad)

    def begin_step(self, params: dict) -> None:
        """Count the step; after a load, move the loaded state onto the params' device."""
        self.t += 1
        if self._loaded:
            self._move_state(params)

    def update_param(self, name, param, grad, private: bool = False) -> None:
        """Weight decay, the parameter's step count, then ``update_one``.

        ``private``: nothing else reads ``grad``, so ``scaled_grad`` may overwrite it.
        """
        if grad.dtype != param.dtype:
            grad, private = grad.astype(param.dtype), True
        if self.weight_decay != 0:
            grad, private = grad + self.weight_decay * param, True
        self._grad_is_private = private
        state = self.state.get(name)
        if state is None:
            state = self.state[name] = {}
        state["step"] = state.get("step", 0) + 1  # t, counted per parameter as in PyTorch
        self.update_one(name, param, grad, state)

    def _move_state(self, params: dict) -> None:
        """Put loaded state (NumPy arrays) on each parameter's device, once after a load."""
        for name, state in self.state.items():
            if name in params:
                xp = get_array_module(params[name])
                for slot, value in state.items():
                    if slot not in self.scalar_slots:
                        state[slot] = xp.asarray(value)
        self._loaded = False

    def update_one(self, name, param, grad, state: dict) -> None:
        """Update one parameter in place from its gradient and its state dict."""
        raise NotImplementedError

    # -- saving and loading ----------------------------------------------------------------

    def state_dict(self) -> dict:
        """A flat dict, ready for ``numpy.savez``: ``"t"``, the step count, and each state slot
        as ``"NAME/SLOT"``, e.g. ``"W1/m"``; arrays are copies, counts and other scalar slots
        plain Python numbers (which ``savez`` stores as 0-d arrays).  The trainer copies
        this at every epoch boundary: making a 0-d array per count there cost a small model
        a tenth of its training step.
        """
        flat = {"t": self.t}
        for name, state in self.state.items():
            for slot, value in state.items():
                flat[f"{name}/{slot}"] = value if slot in self.scalar_slots else value.copy()
        return flat

    def copy_state(self):
        """A copy of the state to go back to with :meth:`restore_state` (the trainer takes
        one at every epoch boundary; the training plan's flat update keeps a cheaper one)."""
        return self.state_dict()

    def restore_state(self, copy) -> None:
        """Put back what :meth:`copy_state` returned."""
        self.load_state_dict(copy)

    def load_state_dict(self, flat: dict) -> None:
        """Restore what :meth:`state_dict` returned; later steps continue bit for bit."""
        state: dict[str, dict] = {}
        for key, value in flat.items():
            if key == "t":
                continue
            if "/" not in key:
                raise DataError(f"optimizer state: unexpected entry '{key}' (expected 't' or 'NAME/SLOT')")
            name, slot = key.rsplit("/", 1)
            if slot in self.scalar_slots:
                value = numpy.asarray(value).item()  # back to a Python int or float, exactly
            else:
                value = value.copy()
            state.setdefault(name, {})[slot] = value
        self.t = int(numpy.asarray(flat["t"])) if "t" in flat else 0
        self.state = state
        self._loaded = True

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.options)
        return f"{type(self).__name__}({options})"


# =============================================================================
# Gradient descent and momentum
# =============================================================================


@OPTIMIZERS.register("sgd")
class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum (``torch.optim.SGD``).

    Without momentum (``μ = 0``)::

        θ ← θ − γ g

    With momentum ``μ > 0`` the buffer ``b`` starts as the first gradient::

        b ← g                 (t = 1)
        b ← μ b + g           (t > 1)
        θ ← θ − γ b           (heavy-ball momentum)
        θ ← θ − γ (g + μ b)   (nesterov=true)
    """

    options = {**LR_AND_DECAY, "lr": rate(1e-3, "learning rate γ"),
               "momentum": rate(0.0, "momentum μ (0: none)"),
               "nesterov": flag(False, "Nesterov momentum (needs momentum > 0)")}

    def validate(self):
        if self.nesterov and self.momentum <= 0:
            key = "nesterov" if "nesterov" in self.options else "momentum"
            raise OptionError(f"optimizer '{self.name}': Nesterov momentum needs momentum > 0",
                              key)

    def update_one(self, name, param, grad, state):
        if self.momentum == 0:
            param -= self.scaled_grad(grad, self.lr)
            return
        if "b" not in state:
            state["b"] = grad.copy()
        else:
            state["b"] = self.momentum * state["b"] + grad
        if self.nesterov:
            param -= self.lr * (grad + self.momentum * state["b"])
        else:
            param -= self.lr * state["b"]


@OPTIMIZERS.register("momentum")
class Momentum(SGD):
    """SGD with heavy-ball momentum; ``torch.optim.SGD(momentum=0.9)``.

    ::

        b ← g (t = 1),   b ← μ b + g (t > 1)
        θ ← θ − γ b
    """

    options = {**LR_AND_DECAY, "lr": rate(1e-3, "learning rate γ"),
               "momentum": rate(0.9, "momentum μ")}
    nesterov = False


@OPTIMIZERS.register("nag")
class NAG(SGD):
    """Nesterov accelerated gradient; ``torch.optim.SGD(momentum=0.9, nesterov=True)``.

    ::

        b ← g (t = 1),   b ← μ b + g (t > 1)
        θ ← θ − γ (g + μ b)
    """

    options = Momentum.options
    nesterov = True


# =============================================================================
# Per-coordinate step sizes
# =============================================================================


@OPTIMIZERS.register("adagrad")
class Adagrad(Optimizer):
    """Adagrad (``torch.optim.Adagrad``): each coordinate's step shrinks with its gradient history.

    ``s`` starts at ``initial_accumulator_value``::

        γ_t ← γ / (1 + (t − 1) · lr_decay)
        s ← s + g ⊙ g
        θ ← θ − γ_t g / (√s + ε)
    """

    options = {**LR_AND_DECAY,
               "lr_decay": rate(0.0, "decay of the learning rate per step"),
               "initial_accumulator_value": rate(0.0, "the start value of s"),
               "eps": rate(1e-10, "ε, added to the denominator")}

    def update_one(self, name, param, grad, state):
        xp = get_array_module(param)
        if "sum" not in state:
            state["sum"] = xp.full_like(param, self.initial_accumulator_value)
        lr_t = self.lr / (1 + (state["step"] - 1) * self.lr_decay)
        state["sum"] = state["sum"] + grad * grad
        param -= lr_t * grad / (xp.sqrt(state["sum"]) + self.eps)


@OPTIMIZERS.register("rmsprop")
class RMSProp(Optimizer):
    """RMSProp (``torch.optim.RMSprop``): divide by a running RMS of the gradient.

    ``v``, ``ḡ`` and ``b`` start at zero; ``α`` is ``alpha``::

        v ← α v + (1 − α) g ⊙ g
        d ← √v + ε                        (centered=false)
        ḡ ← α ḡ + (1 − α) g;  d ← √(v − ḡ ⊙ ḡ) + ε   (centered=true)
        θ ← θ − γ g / d                   (momentum μ = 0)
        b ← μ b + g / d;  θ ← θ − γ b     (momentum μ > 0)
    """

    options = {**LR_AND_DECAY,
               "alpha": rate(0.99, "smoothing constant α of the running averages"),
               "eps": rate(1e-8, "ε, added to the denominator"),
               "centered": flag(False, "divide by the variance rather than the RMS"),
               "momentum": rate(0.0, "momentum μ (0: none)")}

    def update_one(self, name, param, grad, state):
        xp = get_array_module(param)
        alpha = self.alpha
        if "v" not in state:
            state["v"] = xp.zeros_like(param)
        state["v"] = alpha * state["v"] + (1 - alpha) * grad * grad
        if self.centered:
            if "g_avg" not in state:
                state["g_avg"] = xp.zeros_like(param)
            state["g_avg"] = alpha * state["g_avg"] + (1 - alpha) * grad
            denom = xp.sqrt(state["v"] - state["g_avg"] * state["g_avg"]) + self.eps
        else:
            denom = xp.sqrt(state["v"]) + self.eps
        if self.momentum > 0:
            if "b" not in state:
                state["b"] = xp.zeros_like(param)
            state["b"] = self.momentum * state["b"] + grad / denom
            param -= self.lr * state["b"]
        else:
            param -= self.lr * grad / denom


@OPTIMIZERS.register("adadelta")
class AdaDelta(Optimizer):
    """AdaDelta (``torch.optim.Adadelta``): step sizes from the ratio of two running RMS values.

    ``v`` (squared gradients) and ``u`` (squared updates) start at zero; ``ρ`` is ``rho``::

        v ← ρ v + (1 − ρ) g ⊙ g
        Δ ← √(u + ε) / √(v + ε) ⊙ g
        u ← ρ u + (1 − ρ) Δ ⊙ Δ
        θ ← θ − γ Δ
    """

    options = {**LR_AND_DECAY, "lr": rate(1.0, "learning rate γ"),
               "rho": Option("float", 0.9, "decay rate ρ of the running averages",
                             minimum=0.0, maximum=1.0, words="a number in [0, 1]"),
               "eps": rate(1e-6, "ε, inside both square roots")}

    def update_one(self, name, param, grad, state):
        xp = get_array_module(param)
        rho, eps = self.rho, self.eps
        if "v" not in state:
            state["v"] = xp.zeros_like(param)
            state["u"] = xp.zeros_like(param)
        state["v"] = rho * state["v"] + (1 - rho) * grad * grad
        delta = xp.sqrt(state["u"] + eps) / xp.sqrt(state["v"] + eps) * grad
        state["u"] = rho * state["u"] + (1 - rho) * delta * delta
        param -= self.lr * delta


# =============================================================================
# Adam and its relatives
# =============================================================================


@OPTIMIZERS.register("adam")
class Adam(Optimizer):
    """Adam (``torch.optim.Adam``): momentum plus RMS scaling, both bias-corrected.

    ``m``, ``v`` (and ``v_max``) start at zero; ``(β1, β2)`` are ``betas``::

        m ← β1 m + (1 − β1) g
        v ← β2 v + (1 − β2) g ⊙ g
        v_max ← max(v_max, v)                      (amsgrad=true; then v_max replaces v below)
        m̂ ← m / (1 − β1^t),   v̂ ← v / (1 − β2^t)
        θ ← θ − γ m̂ / (√v̂ + ε)
    """

    options = {**LR_AND_DECAY, "lr": rate(1e-3, "learning rate γ"),
               "betas": betas((0.9, 0.999)), "eps": rate(1e-8, "ε, added to the denominator"),
               "amsgrad": flag(False, "use the largest v so far (AMSGrad)")}

    def update_one(self, name, param, grad, state):
        xp = get_array_module(param)
        beta1, beta2 = self.betas
        t = state["step"]
        if "m" not in state:
            state["m"] = xp.zeros_like(param)
            state["v"] = xp.zeros_like(param)
        m, v = state["m"], state["v"]  # updated in place, as PyTorch does
        tmp = xp.multiply(grad, grad, out=xp.empty_like(param))  # the one temporary array
        tmp *= 1 - beta2
        v *= beta2
        v += tmp                                   # v <- b2 v + (1 - b2) g g
        m *= beta1
        m += self.scaled_grad(grad, 1 - beta1)     # m <- b1 m + (1 - b1) g
        if self.amsgrad:
            if "v_max" not in state:
                state["v_max"] = xp.zeros_like(param)
            v = xp.maximum(state["v_max"], v, out=state["v_max"])
        denom = xp.sqrt(v, out=tmp)
        denom /= math.sqrt(1 - beta2**t)
        denom += self.eps                          # sqrt(v_hat) + eps
        step = xp.divide(m, denom, out=denom)
        step *= self.lr / (1 - beta1**t)           # lr m_hat / (sqrt(v_hat) + eps)
        param -= step


@OPTIMIZERS.register("adamax")
class AdaMax(Optimizer):
    """AdaMax (``torch.optim.Adamax``): Adam with the infinity norm in place of the RMS.

    ``m`` and ``u`` start at zero::

        m ← β1 m + (1 − β1) g
        u ← max(β2 u, |g| + ε)
        θ ← θ − γ / (1 − β1^t) · m / u
    """

    options = {**LR_AND_DECAY, "lr": rate(2e-3, "learning rate γ"),
               "betas": betas((0.9, 0.999)), "eps": rate(1e-8, "ε, added to |g|")}

    def update_one(self, name, param, grad, state):
        xp = get_array_module(param)
        beta1, beta2 = self.betas
        t = state["step"]
        if "m" not in state:
            state["m"] = xp.zeros_like(param)
            state["u"] = xp.zeros_like(param)
        state["m"] = beta1 * state["m"] + (1 - beta1) * grad
        state["u"] = xp.maximum(beta2 * state["u"], xp.abs(grad) + self.eps)
        param -= self.lr / (1 - beta1**t) * state["m"] / state["u"]


@OPTIMIZERS.register("nadam")
class Nadam(Optimizer):
    """NAdam (``torch.optim.NAdam``): Adam with Nesterov momentum and a momentum schedule.

    ``m``, ``v`` start at zero and the product ``Π`` of the ``μ`` at one; ``ψ`` is
    ``momentum_decay``::

        μ_t ← β1 (1 − ½ · 0.96^(t ψ)),   μ_{t+1} ← β1 (1 − ½ · 0.96^((t+1) ψ))
        Π ← Π · μ_t                                     (Π = μ_1 μ_2 … μ_t)
        m ← β1 m + (1 − β1) g
        v ← β2 v + (1 − β2) g ⊙ g
        m̂ ← μ_{t+1} m / (1 − Π μ_{t+1}) + (1 − μ_t) g / (1 − Π)
        v̂ ← v / (1 − β2^t)
        θ ← θ − γ m̂ / (√v̂ + ε)
    """

    options = {**LR_AND_DECAY, "lr": rate(2e-3, "learning rate γ"),
               "betas": betas((0.9, 0.999)), "eps": rate(1e-8, "ε, added to the denominator"),
               "momentum_decay": rate(4e-3, "momentum decay ψ")}
    scalar_slots = ("step", "mu_product")

    def update_one(self, name, param, grad, state):
        xp = get_array_module(param)
        beta1, beta2 = self.betas
        t = state["step"]
        if "m" not in state:
            state["m"] = xp.zeros_like(param)
            state["v"] = xp.zeros_like(param)
            state["mu_product"] = 1.0
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * self.momentum_decay))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * self.momentum_decay))
        state["mu_product"] *= mu
        mu_product = state["mu_product"]
        state["m"] = beta1 * state["m"] + (1 - beta1) * grad
        state["v"] = beta2 * state["v"] + (1 - beta2) * grad * grad
        m_hat = mu_next * state["m"] / (1 - mu_product * mu_next) + (1 - mu) * grad / (1 - mu_product)
        v_hat = state["v"] / (1 - beta2**t)
        param -= self.lr * m_hat / (xp.sqrt(v_hat) + self.eps)


# =============================================================================
# From a model file's config
# =============================================================================


def make_optimizer(config: dict) -> Optimizer:
    """Build an optimizer from a config such as ``{"type": "adam", "lr": 0.01}``.

    Mistakes raise an :class:`~minigraph.options.OptionError` whose ``.key`` names the
    offending config key (the caller locates it in the model file).
    """
    cls, options = OPTIMIZERS.typed(config)
    return cls(**options)
