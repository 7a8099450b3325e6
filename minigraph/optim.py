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
from .configs import check_names, config_error, number, registrar, split_type
from .errors import DataError

OPTIMIZERS: dict[str, type] = {}
register = registrar(OPTIMIZERS)  # @register("adam") makes a class available by name
_error = config_error


# =============================================================================
# Base class: owns the loop, the options and the saved state
# =============================================================================


class Optimizer:
    """Base class.  Subclasses set ``defaults`` and write ``update_one``.

    ``defaults`` maps every option (including ``lr`` and ``weight_decay``) to its default;
    its values also fix each option's type (a float, a bool, or a pair of floats for
    ``betas``).  Options become attributes: ``self.lr``, ``self.betas``, ...
    """

    name = "optimizer"
    defaults: dict = {"lr": 0.01, "weight_decay": 0.0}
    scalar_slots: tuple = ("step",)  # state slots that are plain numbers, not arrays

    def __init__(self, lr=None, weight_decay=0.0, **options):
        self.check_names(options)
        given = dict(self.defaults, **options)
        given["lr"] = self.defaults["lr"] if lr is None else lr
        given["weight_decay"] = weight_decay
        for key, value in given.items():
            setattr(self, key, self._check(key, value))
        self.validate()
        self.t = 0  # how many times step() has run
        self.state: dict[str, dict] = {}
        self._loaded = False  # state came from load_state_dict and may sit on the host
        self._grad_is_private = False  # see update_param() and scaled_grad()

    # -- options ---------------------------------------------------------------------------

    @classmethod
    def check_names(cls, options) -> None:
        """Refuse option names this optimizer does not have, suggesting the closest one."""
        check_names("optimizer", cls.name, options, cls.defaults)

    def _check(self, key, value):
        """Check ``value`` against the type of the default for ``key``; return it cleaned."""
        default = self.defaults[key]
        where = f"optimizer '{self.name}' option '{key}'"
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise _error(f"{where} must be true or false, got {value!r}", key)
            return value
        if isinstance(default, tuple):
            if not isinstance(value, (list, tuple)) or len(value) != len(default):
                raise _error(f"{where} must be a list of {len(default)} numbers, got {value!r}", key)
            betas = tuple(self._number(where, key, v) for v in value)
            if not all(0.0 <= b < 1.0 for b in betas):
                raise _error(f"{where} must lie in [0, 1), got {list(value)!r}", key)
            return betas
        return self._number(where, key, value)

    @staticmethod
    def _number(where, key, value) -> float:
        """A finite, non-negative float (bools are refused although Python counts them as ints)."""
        return number(where, key, value)

    def validate(self) -> None:
        """Extra checks that involve several options; subclasses may override."""

    def config(self) -> dict:
        """The options as a config dict that :func:`make_optimizer` accepts."""
        config = {"type": self.name}
        for key in self.defaults:
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
        """A flat dict of arrays, ready for ``numpy.savez``.

        ``"t"`` holds the step count and ``"NAME/SLOT"`` each state slot, e.g. ``"W1/m"``.
        """
        flat = {"t": numpy.asarray(self.t)}
        for name, state in self.state.items():
            for slot, value in state.items():
                if slot in self.scalar_slots:
                    flat[f"{name}/{slot}"] = numpy.asarray(value)
                else:
                    flat[f"{name}/{slot}"] = value.copy()
        return flat

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
        options = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.defaults)
        return f"{type(self).__name__}({options})"


# =============================================================================
# Gradient descent and momentum
# =============================================================================


@register("sgd")
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

    defaults = {"lr": 1e-3, "weight_decay": 0.0, "momentum": 0.0, "nesterov": False}

    def validate(self):
        if self.nesterov and self.momentum <= 0:
            key = "nesterov" if "nesterov" in self.defaults else "momentum"
            raise _error(f"optimizer '{self.name}': Nesterov momentum needs momentum > 0", key)

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


@register("momentum")
class Momentum(SGD):
    """SGD with heavy-ball momentum; ``torch.optim.SGD(momentum=0.9)``.

    ::

        b ← g (t = 1),   b ← μ b + g (t > 1)
        θ ← θ − γ b
    """

    defaults = {"lr": 1e-3, "weight_decay": 0.0, "momentum": 0.9}
    nesterov = False


@register("nag")
class NAG(SGD):
    """Nesterov accelerated gradient; ``torch.optim.SGD(momentum=0.9, nesterov=True)``.

    ::

        b ← g (t = 1),   b ← μ b + g (t > 1)
        θ ← θ − γ (g + μ b)
    """

    defaults = {"lr": 1e-3, "weight_decay": 0.0, "momentum": 0.9}
    nesterov = True


# =============================================================================
# Per-coordinate step sizes
# =============================================================================


@register("adagrad")
class Adagrad(Optimizer):
    """Adagrad (``torch.optim.Adagrad``): each coordinate's step shrinks with its gradient history.

    ``s`` starts at ``initial_accumulator_value``::

        γ_t ← γ / (1 + (t − 1) · lr_decay)
        s ← s + g ⊙ g
        θ ← θ − γ_t g / (√s + ε)
    """

    defaults = {
        "lr": 1e-2,
        "weight_decay": 0.0,
        "lr_decay": 0.0,
        "initial_accumulator_value": 0.0,
        "eps": 1e-10,
    }

    def update_one(self, name, param, grad, state):
        xp = get_array_module(param)
        if "sum" not in state:
            state["sum"] = xp.full_like(param, self.initial_accumulator_value)
        lr_t = self.lr / (1 + (state["step"] - 1) * self.lr_decay)
        state["sum"] = state["sum"] + grad * grad
        param -= lr_t * grad / (xp.sqrt(state["sum"]) + self.eps)


@register("rmsprop")
class RMSProp(Optimizer):
    """RMSProp (``torch.optim.RMSprop``): divide by a running RMS of the gradient.

    ``v``, ``ḡ`` and ``b`` start at zero; ``α`` is ``alpha``::

        v ← α v + (1 − α) g ⊙ g
        d ← √v + ε                        (centered=false)
        ḡ ← α ḡ + (1 − α) g;  d ← √(v − ḡ ⊙ ḡ) + ε   (centered=true)
        θ ← θ − γ g / d                   (momentum μ = 0)
        b ← μ b + g / d;  θ ← θ − γ b     (momentum μ > 0)
    """

    defaults = {
        "lr": 1e-2,
        "weight_decay": 0.0,
        "alpha": 0.99,
        "eps": 1e-8,
        "centered": False,
        "momentum": 0.0,
    }

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


@register("adadelta")
class AdaDelta(Optimizer):
    """AdaDelta (``torch.optim.Adadelta``): step sizes from the ratio of two running RMS values.

    ``v`` (squared gradients) and ``u`` (squared updates) start at zero; ``ρ`` is ``rho``::

        v ← ρ v + (1 − ρ) g ⊙ g
        Δ ← √(u + ε) / √(v + ε) ⊙ g
        u ← ρ u + (1 − ρ) Δ ⊙ Δ
        θ ← θ − γ Δ
    """

    defaults = {"lr": 1.0, "weight_decay": 0.0, "rho": 0.9, "eps": 1e-6}

    def validate(self):
        if self.rho > 1.0:
            raise _error(f"optimizer '{self.name}' option 'rho' must lie in [0, 1], got {self.rho}", "rho")

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


@register("adam")
class Adam(Optimizer):
    """Adam (``torch.optim.Adam``): momentum plus RMS scaling, both bias-corrected.

    ``m``, ``v`` (and ``v_max``) start at zero; ``(β1, β2)`` are ``betas``::

        m ← β1 m + (1 − β1) g
        v ← β2 v + (1 − β2) g ⊙ g
        v_max ← max(v_max, v)                      (amsgrad=true; then v_max replaces v below)
        m̂ ← m / (1 − β1^t),   v̂ ← v / (1 − β2^t)
        θ ← θ − γ m̂ / (√v̂ + ε)
    """

    defaults = {
        "lr": 1e-3,
        "weight_decay": 0.0,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "amsgrad": False,
    }

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


@register("adamax")
class AdaMax(Optimizer):
    """AdaMax (``torch.optim.Adamax``): Adam with the infinity norm in place of the RMS.

    ``m`` and ``u`` start at zero::

        m ← β1 m + (1 − β1) g
        u ← max(β2 u, |g| + ε)
        θ ← θ − γ / (1 − β1^t) · m / u
    """

    defaults = {"lr": 2e-3, "weight_decay": 0.0, "betas": (0.9, 0.999), "eps": 1e-8}

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


@register("nadam")
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

    defaults = {
        "lr": 2e-3,
        "weight_decay": 0.0,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "momentum_decay": 4e-3,
    }
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

    Mistakes raise :class:`ModelError` with ``.key`` naming the offending config key.
    """
    cls, options = split_type("optimizer", config, OPTIMIZERS)
    cls.check_names(options)
    return cls(**options)
