"""Params in one flat array, and the optimizer's update on all of them in one go.

``PackedParams`` keeps every param as a view of one flat array.  Every update rule of
:mod:`minigraph.optim` is elementwise, so :class:`FlatUpdate` can run the optimizer's own
``update_one`` once on the flat array (two NumPy calls for SGD instead of two per param --
what PyTorch's "foreach" optimizers do).  The per-param state and checkpoints stay as the plain
per-param loop makes them; tests compare both paths bit for bit, for every optimizer.
"""
from __future__ import annotations

import operator

import numpy

from ..backend import get_array_module
from .memory import held_only_by


class PackedParams(dict):
    """A name -> array dict whose arrays are views of one flat array, ``self.flat``.

    Every update rule here is elementwise, so an optimizer can update all of them at once
    on the flat array: two NumPy calls for SGD instead of two per parameter (what PyTorch's
    "foreach" optimizers do).  The dict behaves as any other; writing *into* a parameter
    (``params["W"][...] = w``) keeps the packing, replacing an entry ends it (``intact``).
    """

    def __init__(self, params: dict):
        arrays = list(params.values())
        xp = get_array_module(*arrays)
        dtype = arrays[0].dtype if arrays else numpy.float32
        self.flat = xp.empty(sum(a.size for a in arrays), dtype=dtype)
        views = dict(_views(self.flat, params))
        for name, array in params.items():
            views[name][...] = array
        super().__init__(views)
        self._views = tuple(views.values())

    @staticmethod
    def can_pack(params: dict) -> bool:
        """Whether all params share one dtype and one backend."""
        arrays = list(params.values())
        return bool(arrays) and len({(a.dtype, type(a)) for a in arrays}) == 1

    def intact(self) -> bool:
        """Whether every entry is still the view it was packed as."""
        return len(self) == len(self._views) and all(map(operator.is_, self.values(),
                                                         self._views))

    def views_of(self, flat) -> list:
        """(name, view) of another array laid out like ``self.flat`` (its gradient, a slot)."""
        return _views(flat, self)


def _views(flat, arrays: dict) -> list:
    """(name, view of ``flat``) for each array, one after the other in the arrays' order."""
    views, start = [], 0
    for name, array in arrays.items():
        views.append((name, flat[start:start + array.size].reshape(array.shape)))
        start += array.size
    return views


def pack_params(params: dict) -> dict:
    """``params`` as a :class:`PackedParams` when they can share one flat array, else as is."""
    return PackedParams(params) if PackedParams.can_pack(params) else params


class FlatUpdate:
    """``optimizer.step`` for the training plan: flat when it can, else per param.

    Packed params up to ``flat_max_size`` numbers are updated in one go (their gradients
    copied into one flat buffer first); larger ones per parameter, where copying would cost
    more than the per-parameter calls it saves.  Per parameter, a gradient array that nothing
    but ``grads`` refers to (the plan's own temporaries) is handed over as private, so
    ``θ ← θ − γ g`` may scale it in place instead of allocating.
    """

    flat_max_size = 1 << 16

    def __init__(self, optimizer, on_grad_buffer=None):
        self.optimizer = optimizer
        self._flat = None  # the flat update's buffers and state, see _step_flat()
        # called with {param: its view of the flat gradient buffer} when that buffer is made,
        # so that backward can write the gradients there (then they are not copied)
        self.on_grad_buffer = on_grad_buffer

    def step(self, params: dict, grads: dict) -> None:
        opt = self.optimizer
        opt.begin_step(params)
        flat = self._flat
        if flat is None or flat.params is not params or flat.owner is not opt.state:
            flat = self._start_flat(params, grads)
        if flat is not None and flat.take(grads):
            flat.update(opt)
            return
        self._flat = None  # per-parameter updates: the flat state is rebuilt when next used
        for name, param in params.items():
            if grads.get(name) is None:
                continue
            # may it be overwritten? (checked before `grad` below adds a reference of its own)
            private = held_only_by(grads, name)
            grad = grads[name]
            opt.update_param(name, param, grad, private and grad.base is None)

    def copy_state(self):
        """A copy of the optimizer's state to go back to with :meth:`restore_state` (the
        trainer takes one at every epoch boundary).  While the flat update runs, its state
        is the step count and one flat array per slot, copied as such (a :class:`FlatCopy`);
        copying it per parameter, as ``state_dict`` does, costs a small model a tenth of
        its step.  Otherwise: ``state_dict()``."""
        opt, flat = self.optimizer, self._flat
        if flat is None or flat.owner is not opt.state or len(opt.state) != len(flat.names):
            return opt.state_dict()
        slots = dict(flat.state)
        for slot, value in slots.items():
            if slot not in opt.scalar_slots:
                slots[slot] = value.copy()
        return FlatCopy(opt.t, slots, flat.layout)

    def restore_state(self, copy) -> None:
        """Put back what :meth:`copy_state` returned (the flat state is rebuilt from it)."""
        opt = self.optimizer
        opt.load_state_dict(copy.state_dict(opt.scalar_slots) if isinstance(copy, FlatCopy)
                            else copy)
        self._flat = None

    def _start_flat(self, params, grads: dict):
        """The flat update's buffers and state for ``params`` (None: it cannot be used)."""
        if not isinstance(params, PackedParams) or params.flat.size > self.flat_max_size \
                or not params.keys() <= grads.keys():
            return None
        state = self._flatten_state(params)
        if state is None:
            return None
        flat = self._flat = FlatState(params, state, self.optimizer.state)
        if self.on_grad_buffer is not None:
            self.on_grad_buffer(dict(flat.layout))
        return flat

    def _flatten_state(self, params: PackedParams):
        """The per-parameter state as one flat state (arrays concatenated), or None when the
        parameters' states differ in their slots or step counts (then: per-parameter)."""
        opt = self.optimizer
        states = [opt.state.get(name, {}) for name in params]
        slots = list(states[0])
        if any(state.keys() != states[0].keys() for state in states):
            return None
        flat = {}
        xp = get_array_module(params.flat)
        for slot in slots:
            if slot in opt.scalar_slots:
                if any(state[slot] != states[0][slot] for state in states):
                    return None
                flat[slot] = states[0][slot]
            else:
                flat[slot] = xp.concatenate([xp.asarray(state[slot]).reshape(-1)
                                             for state in states]).astype(params.flat.dtype)
        return flat


class FlatCopy:
    """A copy of a flat update's optimizer state (:meth:`FlatUpdate.copy_state`): the step
    count ``t`` and each slot once for all params (a scalar, or a flat array laid out as
    ``layout``: each param's name and an array of its shape, in order)."""

    __slots__ = ("t", "slots", "layout")

    def __init__(self, t: int, slots: dict, layout: dict):
        self.t, self.slots, self.layout = t, slots, layout

    def state_dict(self, scalar_slots) -> dict:
        """The same entries as the optimizer's ``state_dict`` had when this was copied."""
        flat = {"t": self.t}
        for slot, value in self.slots.items():
            if slot in scalar_slots:
                flat.update((f"{name}/{slot}", value) for name in self.layout)
            else:
                flat.update((f"{name}/{slot}", view.copy())
                            for name, view in _views(value, self.layout))
        return flat


class FlatState:
    """The flat update's buffers for one :class:`PackedParams`: the flat gradient (each
    param's gradient a view of it), the optimizer's state as flat arrays, and each param's
    own state dict, kept pointing at its views of those arrays (``state_dict`` and
    checkpoints are then the same as with per-parameter updates)."""

    __slots__ = ("params", "array", "grad", "names", "views", "layout", "state", "states",
                 "owner", "slot_views")

    def __init__(self, params: PackedParams, state: dict, owner: dict):
        self.params, self.array, self.state, self.owner = params, params.flat, state, owner
        self.grad = params.flat.copy()
        self.names, self.views = zip(*params.views_of(self.grad))
        self.layout = dict(zip(self.names, self.views))  # each param's gradient, in order
        self.states = [owner.setdefault(name, {}) for name in params]
        self.slot_views = {}

    def take(self, grads: dict) -> bool:
        """Whether the params are still the packed views and every param's gradient is in
        the flat buffer now: backward wrote them there itself when it could, else they are
        copied (False: a param was replaced, or a gradient is missing)."""
        if not self.params.intact():
            return False
        if all(map(operator.is_, map(grads.get, self.names), self.views)):
            return True
        for name, view in zip(self.names, self.views):
            g = grads.get(name)
            if g is None:
                return False
            if g is not view:
                view[...] = g
        return True

    def update(self, opt) -> None:
        """One ``update_one`` of ``opt`` on the flat arrays, then the params' states."""
        grad, state = self.grad, self.state
        if opt.weight_decay != 0:
            grad += opt.weight_decay * self.array
        state["step"] = step = state.get("step", 0) + 1
        opt._grad_is_private = True  # our own buffer, refilled every step
        opt.update_one("*", self.array, grad, state)
        if len(state) > 1:
            self.share_slots(opt)
        else:  # keep each parameter's state up to date
            for param_state in self.states:
                param_state["step"] = step

    def share_slots(self, opt) -> None:
        """Point each parameter's state at its views of the flat state's slots (momentum
        buffers, moments; scalar slots get the value), after ``update_one`` (re)bound them."""
        for slot, value in self.state.items():
            if slot in opt.scalar_slots:
                for param_state in self.states:
                    param_state[slot] = value
            elif self.slot_views.get(slot) is not value:  # a new (or rebound) flat array
                self.slot_views[slot] = value
                for param_state, (_, view) in zip(self.states, self.params.views_of(value)):
                    param_state[slot] = view
