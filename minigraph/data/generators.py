"""The ``generator`` source: synthetic data sets, each a function and its declared options.

Each generator returns ``(features, targets)`` as NumPy arrays; :data:`GENERATORS` maps its
name to ``Generator(make, options)``, the options declared with :class:`~minigraph.options.Option`.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from .. import limits
from ..errors import did_you_mean, known
from ..limits import short
from ..options import Option
from ..registry import Registry
from . import kinds
from .context import NAMES, SplitContext

_TRUTH_TABLES = {
    "xor": [0, 1, 1, 0],
    "and": [0, 0, 0, 1],
    "or": [0, 1, 1, 1],
    "nand": [1, 1, 1, 0],
}


def _truth_table(gate, *, targets):
    """The four input pairs (0,0), (0,1), (1,0), (1,1) and the gate's output for each."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    t = np.array(_TRUTH_TABLES[gate], dtype=np.float64).reshape(4, 1)
    if targets == "sign":
        t = 2 * t - 1          # 0 -> -1, 1 -> +1
    return x, t


def _shuffle_and_noise(rng, x, y, noise, shuffle):
    """Shuffle the examples, then add Gaussian noise to every coordinate (scikit-learn's order)."""
    if shuffle:
        order = rng.permutation(len(x))
        x, y = x[order], y[order]
    x = x + rng.normal(scale=noise, size=x.shape)
    return x, y


def _circles(*, n, noise, factor, seed, shuffle):
    """A big circle (radius 1, label 0) around a small one (radius ``factor``, label 1)."""
    rng = np.random.default_rng(seed)
    n_outer = n // 2
    n_inner = n - n_outer
    angle_out = np.linspace(0, 2 * np.pi, n_outer, endpoint=False)
    angle_in = np.linspace(0, 2 * np.pi, n_inner, endpoint=False)
    x = np.concatenate([
        np.stack([np.cos(angle_out), np.sin(angle_out)], axis=1),
        factor * np.stack([np.cos(angle_in), np.sin(angle_in)], axis=1),
    ])
    y = np.concatenate([np.zeros(n_outer), np.ones(n_inner)]).reshape(-1, 1)
    return _shuffle_and_noise(rng, x, y, noise, shuffle)


def _moons(*, n, noise, seed, shuffle):
    """Two half circles: the upper one (label 0) and a lower one shifted right (label 1)."""
    rng = np.random.default_rng(seed)
    n_outer = n // 2
    n_inner = n - n_outer
    angle_out = np.linspace(0, np.pi, n_outer)
    angle_in = np.linspace(0, np.pi, n_inner)
    x = np.concatenate([
        np.stack([np.cos(angle_out), np.sin(angle_out)], axis=1),
        np.stack([1 - np.cos(angle_in), 1 - np.sin(angle_in) - 0.5], axis=1),
    ])
    y = np.concatenate([np.zeros(n_outer), np.ones(n_inner)]).reshape(-1, 1)
    return _shuffle_and_noise(rng, x, y, noise, shuffle)


def _spiral(*, n, classes, noise, seed, one_hot, shuffle):
    """``classes`` spiral arms of ``n`` points each; arm k has label k (CS231n's spiral)."""
    rng = np.random.default_rng(seed)
    points, labels = [], []
    for k in range(classes):
        radius = np.linspace(0.0, 1.0, n)
        angle = np.linspace(k * 4.0, (k + 1) * 4.0, n) + rng.normal(scale=noise, size=n)
        points.append(np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1))
        labels.append(np.full(n, k, dtype=np.int64))
    x, y = np.concatenate(points), np.concatenate(labels)
    if shuffle:
        order = rng.permutation(len(x))
        x, y = x[order], y[order]
    if one_hot:
        y = np.eye(classes, dtype=np.float32)[y]
    return x, y


def _linear(*, n, low, high, w, b, noise, seed):
    """``y = w*x + b + N(0, noise)``; a list ``w`` makes one feature per weight."""
    if high <= low:
        raise ValueError("'high' must be greater than 'low'")
    rng = np.random.default_rng(seed)
    weights = np.atleast_1d(np.asarray(w, dtype=np.float64))
    x = rng.uniform(low, high, size=(n, len(weights)))
    y = (x @ weights).reshape(n, 1) + b + rng.normal(scale=noise, size=(n, 1))
    return x, y


def _polynomial(*, n, low, high, coefficients, noise, seed):
    """``y = c0 + c1*x + c2*x^2 + ... + N(0, noise)`` for x uniform in [low, high]."""
    if high <= low:
        raise ValueError("'high' must be greater than 'low'")
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, high, size=(n, 1))
    y = sum(c * x ** power for power, c in enumerate(coefficients))
    y = y + rng.normal(scale=noise, size=(n, 1))
    return x, y


def _gate(name):
    def make(**options):
        return _truth_table(name, **options)
    make.__doc__ = f"The {name.upper()} truth table."
    return make


class Generator(NamedTuple):
    """A generator: its function and its options (``name: Option``)."""

    make: Callable
    options: dict


def _n(default):
    return Option("int", default, "number of examples", convert=kinds.count)


def _noise(default):
    return Option("float", default, "standard deviation of the Gaussian noise",
                  convert=kinds.nonnegative)


_SEED = Option("int", 0, "random seed", convert=kinds.seed)
_SHUFFLE = Option("bool", True, "shuffle the examples", convert=kinds.flag)
_LOW = Option("float", -1.0, "smallest x", convert=kinds.moderate)
_HIGH = Option("float", 1.0, "largest x", convert=kinds.moderate)
_GATE_OPTIONS = {"targets": Option("str", "binary", "binary (0/1) or sign (-1/+1)",
                                   convert=kinds.choice("binary", "sign"))}

#: Every generator, by name.
GENERATORS = Registry("generator")
GENERATORS.update({
    "xor": Generator(_gate("xor"), _GATE_OPTIONS),
    "and": Generator(_gate("and"), _GATE_OPTIONS),
    "or": Generator(_gate("or"), _GATE_OPTIONS),
    "nand": Generator(_gate("nand"), _GATE_OPTIONS),
    "circles": Generator(_circles, {
        "n": _n(500), "noise": _noise(0.2),
        "factor": Option("float", 0.3, "radius of the inner circle", convert=kinds.fraction),
        "seed": _SEED, "shuffle": _SHUFFLE}),
    "moons": Generator(_moons, {"n": _n(500), "noise": _noise(0.1), "seed": _SEED,
                                "shuffle": _SHUFFLE}),
    "spiral": Generator(_spiral, {
        "n": _n(100), "classes": Option("int", 3, "spiral arms", convert=kinds.classes),
        "noise": _noise(0.2), "seed": _SEED,
        "one_hot": Option("bool", False, "one-hot targets", convert=kinds.flag),
        "shuffle": _SHUFFLE}),
    "linear": Generator(_linear, {
        "n": _n(100), "low": _LOW, "high": _HIGH,
        "w": Option("any", 1.0, "a weight, or a list of them", convert=kinds.real_or_reals),
        "b": Option("float", 0.0, "the bias", convert=kinds.moderate),
        "noise": _noise(0.1), "seed": _SEED}),
    "polynomial": Generator(_polynomial, {
        "n": _n(100), "low": _LOW, "high": _HIGH,
        "coefficients": Option("floats", [0.0, 0.0, 1.0], "c0, c1, c2, ...", convert=kinds.reals),
        "noise": _noise(0.1), "seed": _SEED}),
})


def _check_size(ctx, name, options):
    """Refuse, before generating, a data set over ``limits.MAX_GENERATED`` examples or
    ``limits.MAX_GENERATED_NUMBERS`` numbers (per array, or work of the polynomial)."""
    n = options.get("n", 4)
    examples = n * options.get("classes", 1)
    width = max(2, len(options["w"]) if isinstance(options.get("w"), list) else 1,
                len(options.get("coefficients") or ()),
                options["classes"] if options.get("one_hot") else 1)
    if examples > limits.MAX_GENERATED:
        raise ctx.model_error(f"generator {name}: {examples:,} examples"
                              f"{' (n * classes)' if 'classes' in options else ''}, more than "
                              f"the limit of {limits.MAX_GENERATED:,}", "n")
    if examples * width > limits.MAX_GENERATED_NUMBERS:
        raise ctx.model_error(f"generator {name}: {examples:,} examples of {width:,} numbers "
                              f"each, more than the limit of {limits.MAX_GENERATED_NUMBERS:,} "
                              "numbers", "n")


def load(ctx: SplitContext, source) -> dict:
    """The arrays of a ``generator:`` source."""
    name = source["generator"]
    if not isinstance(name, str) or name not in GENERATORS:
        raise ctx.model_error(f"unknown generator {short(name)}{did_you_mean(name, GENERATORS)}; "
                              f"generators: {known(GENERATORS)}", "generator")
    make, declared = GENERATORS[name]
    values = ctx.check_source(source, {"generator": Option("any", convert=kinds.as_written),
                               "names": NAMES, **declared},
                              f"{ctx.where()} (generator {name})")
    options = {key: values[key] for key in declared}
    _check_size(ctx, name, options)
    try:
        with np.errstate(all="ignore"):
            features, targets = make(**options)
    except (ValueError, OverflowError) as exc:
        raise ctx.model_error(f"generator {name}: {exc}", "generator") from None
    if not (np.isfinite(features).all() and np.isfinite(targets).all()):
        raise ctx.model_error(f"generator {name}: its options give numbers too large for "
                              "float64 (inf or NaN); use smaller values", "generator")
    names = ctx.names(source)
    arrays = {names[0]: ctx.fit_rank(names[0], features)}
    if len(names) == 2:
        arrays[names[1]] = ctx.fit_rank(names[1], targets)
    return arrays
