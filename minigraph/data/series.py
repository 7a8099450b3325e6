"""Time series for recurrent networks: a ``sine`` wave and a simulated ``drive``.

Each series is a table ``(n steps, columns)`` with named columns.  With a ``window`` (see
:mod:`minigraph.data.window`) the table is cut into sliding windows; without one, the
generator gives each step as features and the next step as its target (``n - 1`` examples),
like any other generator.

``sine``   one column ``value``: amplitude * sin(2 pi t / period + phase) + trend * t + noise,
           t = 0, 1, ..., n - 1.
``drive``  1,000 seconds (by default) of a car driven through town and onto a highway: four
           correlated columns ``speed`` (km/h), ``rpm`` (engine, from speed and a 5-gear
           box), ``brake`` (0..1, pressed when slowing down) and ``latitude`` (degrees, the
           integrated distance on a slowly turning heading).  The driver picks a new target
           speed every 20-90 s and accelerates or brakes towards it.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

from ..options import Option
from . import kinds
from .generators import GENERATORS, Generator


class Series(NamedTuple):
    """A series generator: its function ``make(**options) -> (n, columns)``, the column names
    and its options."""

    make: Callable
    columns: tuple
    options: dict


def _sine(*, n, period, amplitude, phase, trend, noise, seed):
    if period <= 0:
        raise ValueError("'period' must be positive")
    t = np.arange(n, dtype=np.float64)
    rng = np.random.default_rng(seed)
    y = amplitude * np.sin(2 * math.pi * t / period + phase) + trend * t
    return (y + rng.normal(scale=noise, size=n)).reshape(n, 1)


TARGET_SPEEDS = (0.0, 30.0, 50.0, 50.0, 70.0, 100.0, 120.0)  # km/h: town, country, highway
GEAR_TOP = (20.0, 40.0, 60.0, 85.0, 1e9)  # km/h where each gear's range ends


def _drive_speeds(n, rng):
    """(speed km/h, brake 0..1) per second: the driver chases a target speed."""
    speed, brake = np.zeros(n), np.zeros(n)
    v, target, until = 0.0, 50.0, 0
    for s in range(n):
        if s >= until:
            target = float(rng.choice(TARGET_SPEEDS))
            until = s + int(rng.integers(20, 90))
        gap = target - v
        accel = min(gap * 0.25, 9.0) if gap >= 0 else max(gap * 0.35, -25.0)  # km/h per s
        v = max(0.0, v + accel + rng.normal(scale=0.6))
        speed[s] = v
        brake[s] = min(1.0, -accel / 25.0) if accel < -1.0 else 0.0
    return speed, brake


def _drive(*, n, seed, noise):
    rng = np.random.default_rng(seed)
    speed, brake = _drive_speeds(n, rng)
    gear = np.searchsorted(np.array(GEAR_TOP), speed)  # 0 .. 4
    low = np.array((0.0,) + GEAR_TOP[:-1])[gear]
    top = np.array(GEAR_TOP[:-1] + (200.0,))[gear]
    rpm = 800.0 + 3200.0 * (speed - low) / (top - low) + 600.0 * (gear > 0)
    heading = np.cumsum(rng.normal(scale=0.02, size=n))  # radians, slowly turning
    latitude = 47.6 + np.cumsum(speed / 3.6 * np.cos(heading)) / 111_000.0
    table = np.stack([speed, rpm, brake, latitude], axis=1)
    scale = np.array([1.0, 20.0, 0.02, 0.0])  # sensor noise per column
    return table + rng.normal(size=table.shape) * scale * noise


def _steps(default):
    return Option("int", default, "number of time steps", convert=kinds.count)


_SEED = Option("int", 0, "random seed", convert=kinds.seed)

#: Every series generator, by name.
SERIES = {
    "sine": Series(_sine, ("value",), {
        "n": _steps(500),
        "period": Option("float", 50.0, "steps per cycle", convert=kinds.moderate),
        "amplitude": Option("float", 1.0, "height of the wave", convert=kinds.moderate),
        "phase": Option("float", 0.0, "phase at t = 0 (radians)", convert=kinds.moderate),
        "trend": Option("float", 0.0, "added per step", convert=kinds.moderate),
        "noise": Option("float", 0.0, "standard deviation of the Gaussian noise",
                        convert=kinds.nonnegative),
        "seed": _SEED}),
    "drive": Series(_drive, ("speed", "rpm", "brake", "latitude"), {
        "n": _steps(1000),
        "noise": Option("float", 1.0, "sensor noise (1 = typical sensors, 0 = none)",
                        convert=kinds.nonnegative),
        "seed": _SEED}),
}


def _next_step(make):
    """As a plain generator: each step's columns, and the next step's as its target."""
    def steps(**options):
        table = make(**options)
        if len(table) < 2:
            raise ValueError("a series needs n >= 2 steps to give a step and the next one")
        return table[:-1], table[1:]
    steps.__doc__ = make.__doc__
    return steps


GENERATORS.update({name: Generator(_next_step(s.make), s.options) for name, s in SERIES.items()})
