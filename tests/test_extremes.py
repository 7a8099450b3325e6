"""Every op on extreme inputs, checked two ways.

1. **PyTorch parity** (needs ``make torch``; skipped with a reason without it): the forward
   value and the gradient of ``sum(y * R)`` (R a fixed random array) with respect to every
   float input, in float64 and in float32.  NaN and +-inf must sit in the same places; finite
   values must agree to ``RTOL`` relative, plus an absolute tolerance that is only as large
   as the terms of a sum that cancels (``tol`` of a row: "terms" = computed from |inputs|
   and |R|, a number = that many units, None = none beyond the smallest normal number).
2. **Central differences** in float64 (no PyTorch needed), on the rows whose derivative
   exists and is resolvable.  A row that is not (``fd`` is a string) says why: a kink, a
   tie, a domain edge, a clamp, or values saturated so close to 1 that rounding of y hides
   the change.  PyTorch parity still covers those rows.

``ROWS`` is the table: one row per op x extreme case (saturated logits at |z| = 20 ... 1000,
exact zeros and ties, domain edges, -inf entries, huge and tiny magnitudes, broadcasting
shapes), plus two chains (sigmoid -> bce, log_softmax -> nll).  The ordinary cases of
``op_cases.CASES`` are compared with PyTorch as well (``ordinary_rows``).

Differences from PyTorch that are kept, each tolerated by the rows named (``note`` says why):

* softplus: PyTorch returns x (gradient 1) for x > 20; minigraph keeps ln(1 + e^x) exact,
  e^-21 = 8e-10 apart at most (``softplus-threshold``).
* NaN inputs: minigraph follows NumPy, sign(NaN) = NaN, so abs' and l1's gradients are NaN
  there (PyTorch: 0); relu's gradient at NaN is 0 (PyTorch passes it through); elu's is NaN
  (PyTorch's float32 kernel passes it through).  Rows with ``nan_in`` skip those positions.
* bce: PyTorch's gradient floor max(p (1 - p), eps) uses eps = 1e-12 rounded to float32;
  minigraph uses 1e-12: 4e-9 relative apart where the floor applies (``bce-edges``).
* sigmoid -> bce near p = 1 is ill-conditioned (ln(1 - p) magnifies p's last bit); the two
  libraries round p differently, so those chain rows have a wider rtol; bce_with_logits is
  the well-conditioned form and matches to 1e-12.
* Not an op matter: where +inf and -inf products meet inside a BLAS sum (float32 overflow
  in matmul or conv2d), NumPy's OpenBLAS returned inf where PyTorch returned NaN, so the
  overflow rows use inputs of one sign.

Fixed in minigraph after these tests found them: div's d/db was -gy a / (b b), which
overflows (b = 1e30 in float32, 1e-200 in float64) where PyTorch's -gy (a / b) / b does
not; elu's gradient y + alpha lost every digit of alpha e^x for x << 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest

from minigraph.ops import get_op

from op_cases import CASES, run_op
from test_ops import builtin_ops

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the parity tests skip; the central differences still run
    torch = F = None

RTOL = {"float64": 1e-12, "float32": 1e-5}
FD_RTOL = 1e-5

inf, nan = np.inf, np.nan


@dataclass
class Row:
    """One call of an op (or a chain of two) on extreme inputs."""

    op: str  # an op name, or "a>b" for b(a(x0), x1, ...)
    inputs: tuple  # float64 arrays (and integer labels); float32 runs cast them
    attrs: dict = field(default_factory=dict)
    id: str = ""
    dtypes: tuple = ("float64", "float32")
    tol: object = None  # absolute tolerance: None, "terms" or a number of units of RTOL
    rtol: dict | None = None  # a looser relative tolerance (``note`` says why)
    nan_in: bool = False  # skip positions whose input (or p - t) is NaN (``note`` says why)
    note: str = ""  # why a row tolerates a difference from PyTorch
    fd: object = True  # True: check by central differences; a string: why not
    fd_h: tuple | None = None  # per input: step(x) -> array; default 1e-6 max(|x|, 1)
    attrs2: dict = field(default_factory=dict)  # the second op's attributes (chains)
    training: bool = False

    @property
    def steps(self):
        names = self.op.split(">")
        return [(names[0], self.attrs)] + ([(names[1], self.attrs2)] if len(names) > 1 else [])

    @property
    def differentiable(self):
        return all(get_op(n).differentiable for n, _ in self.steps)


def A(*rows):
    return np.array(rows, dtype=np.float64)


def rel(x):
    """Central-difference steps proportional to |x| (for tiny and huge values)."""
    return 1e-6 * np.abs(x)


rng = np.random.default_rng(4)
# saturated logits, both signs, and 0
# NaN inputs: minigraph keeps NumPy's rules, PyTorch differs (a deliberate choice, see the
# module docstring)
NAN_SIGN = ("sign(NaN) is NaN (NumPy), PyTorch says 0; so are abs' gradient sign(x) and "
            "l1's sign(p - t) at NaN, where PyTorch's are 0: a NaN stays visible")
NAN_RELU = ("relu's gradient at NaN is 0 (NaN > 0 is false); PyTorch passes the gradient "
            "through (it tests y <= 0)")
NAN_ELU = ("elu's gradient at NaN is NaN (alpha e^NaN); PyTorch's float32 kernel passes "
           "the gradient through")
Z = A(-1000, -100, -50, -30, -20, 0, 20, 30, 50, 100, 1000)
Z_F32 = A(-1000, -50, -30, -20, 0, 20, 30, 50, 100, 1000)
Z_NEG = A(-1000, -100, -50, -30, -20, -1, 0)
Z_POS = A(20, 30, 50, 100, 1000)
SPECIAL = A(inf, -inf, nan, 0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30)
HUGE_TINY = A(1e30, -1e30, 1e-30, -1e-30, 3.0)  # finite, no zeros: differences work
NEAR_1 = "saturated: y is within 1e-8 of +-1 (or of its asymptote), so rounding of y hides " \
         "the change of a central difference"
SPECIALS = "inf/NaN entries: differences are NaN"
KINK = "kink at 0 (x = 0 in the inputs)"


def unary_rows(op, *, fd_z=True, fd_special=SPECIALS, attrs=None, extra=(), tol_z=None,
               nan_note=""):
    a = attrs or {}
    return [
        Row(op, (Z.reshape(1, -1),), a, id="saturated", fd=fd_z, tol=tol_z,
            note="1 - y cancels near y = 1: tolerance in units of the terms" if tol_z else ""),
        Row(op, (SPECIAL.reshape(3, 3),), a, id="specials", fd=fd_special,
            nan_in=bool(nan_note), note=nan_note),
        Row(op, (A(1e300, -1e300, 1e-300, -1e-300, 5e-324),), a, id="1e300-f64",
            dtypes=("float64",), fd="subnormal 5e-324 has no room for a step"),
        *extra,
    ]


def binary_rows(op, tol="terms", fd_scaled=True):
    return [
        # (3,1) against (1,4): every pairing of huge, tiny and zero
        Row(op, (A([1e30], [-1e-30], [2.0]), A([1e30, -1e30, 1e-30, -3.0])), id="huge-tiny-bcast",
            tol=tol, fd="tiny entries next to 1e30 in the same broadcast sums: their change "
                        "is lost to rounding"),
        Row(op, (A([inf], [-inf], [nan]), A([inf, -inf, 0.0, 1.0])), id="specials-bcast",
            tol=tol, fd=SPECIALS),
        Row(op, (A([1e300], [-1e-300]), A([1e300, 1e-300, -2.0])), id="1e300-bcast-f64",
            dtypes=("float64",), tol=tol,
            fd="overflow to inf and underflow to 0 (1e300 * 1e300, 1e-300 / 1e300)"),
        Row(op, (A([[1.5, -2.0, 3.0]]) * 1e20, A([[2.0], [-0.5]]) * 1e-20), id="scaled-bcast",
            tol=tol, fd=fd_scaled, fd_h=(rel, rel)),
    ]


pool_x = np.arange(32, dtype=np.float64).reshape(1, 2, 4, 4)
tied = np.ones((1, 2, 4, 4))
tied[0, 1] = A([2, 2, 0, 0], [2, 2, 0, 0], [-1, 5, 5, 5], [5, -1, 5, 5])
neg_inf_img = np.full((1, 1, 4, 4), -inf)
neg_inf_img[0, 0, 0, 0] = 1.0
neg_inf_img[0, 0, 3, 3] = -1e30
nan_img = rng.standard_normal((1, 2, 4, 4))
nan_img[0, 0, 0, 0] = nan
nan_img[0, 0, 1, 1] = nan
nan_img[0, 1, 2, 3] = nan
nan_img[0, 1, 3, 3] = inf
distinct = (rng.permutation(32) + 1.0).reshape(1, 2, 4, 4) * 1e29

cancel_img = rng.choice(A(1e30, -1e30, 1.0, -1.0, 1e-30), size=(1, 2, 4, 4))
conv_w = rng.standard_normal((2, 2, 3, 3))
conv_w0 = conv_w.copy()
conv_w0[0, 0, 1, 1] = 0.0
conv_specials = rng.standard_normal((1, 2, 4, 4))
conv_specials[0, 0, 2, 2] = inf
conv_specials[0, 1, 0, 3] = nan

sm = A([1000, 0, -1000], [-1000, 1000, 0], [20, 0, -20], [30, 30, -30], [5, 5, 5],
       [-100, -100, 100])
sm_neg_inf = A([-inf, 0, 1], [-inf, -inf, 2], [3, -inf, 3])
labels_sm = np.array([2, 0, 1, 1, 1, 0])
probs_sm = A([0, 0, 1], [0.5, 0.5, 0], [0.2, 0.3, 0.5], [1, 0, 0], [0, 1, 0], [0.25, 0.25, 0.5])
with np.errstate(divide="ignore"):
    LOG_01 = np.log(A([0, 1], [1, 0], [0.5, 0.5]))  # -inf entries
lp_sat = sm - sm.max(axis=1, keepdims=True) - np.log(
    np.exp(sm - sm.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True))

bce_p = A(0.0, 1.0, 1e-30, 1 - 1e-16, 0.5, 1e-7, 1 - 1e-7)
bce_grid = (np.repeat(bce_p[:, None], 3, axis=1), np.tile(A(0.0, 1.0, 0.5), (len(bce_p), 1)))
BCE_FLOOR = ("PyTorch's gradient floor is 1e-12 rounded to float32 (9.99999996e-13), "
             "minigraph's is 1e-12: 4e-9 apart where p (1 - p) < 1e-12")
BCE_FLOOR_RTOL = {"float64": 1e-8, "float32": 1e-5}
BCE_EDGE = "domain edges: p = 0 and 1 (logs clamped at -100, gradient over max(p(1-p), 1e-12))"


def bce_near_h(p):
    return 1e-6 * np.minimum(p, 1 - p)


CHAIN = ("ln(1 - p) after p = sigmoid(z) near 1 magnifies p's last bit by 1 / (1 - p) "
         "(8e-6 at z = 25): minigraph's p = exp(-softplus(-z)) and PyTorch's 1 / (1 + e^-z) "
         "round differently; bce_with_logits is the well-conditioned form")
CHAIN_RTOL = {"float64": 1e-4, "float32": 1e-3}

ROWS: list[Row] = [
    # -- arithmetic ------------------------------------------------------------------------
    *binary_rows("add", fd_scaled="1.5e20 + 2e-20: the tiny term's change is lost"),
    *binary_rows("sub", fd_scaled="1.5e20 - 2e-20: the tiny term's change is lost"),
    *binary_rows("mul"),
    *binary_rows("div"),
    Row("div", (A(1.0, 0.0, -0.0, 1e-20, 1e20, -3.0, 1e-30),
                A(0.0, 0.0, 1.0, 1e-20, 1e-20, -0.0, 1e-30)), id="zeros-tiny",
        fd="division by 0; 1e-30 / 1e-30 has a gradient 1e30 too steep for a fixed step"),
    Row("div", (A(1e-200, 1e-100, 1e200, 1e-300), A(1e-200, 1e-200, 1e200, 1e-160)),
        id="tiny-denominator-f64", dtypes=("float64",), fd_h=(rel, rel)),
    Row("pow", (A(0, 0, 0, 0, 0, -2, -2, -2, -2, -2, 1e-30, 1e30, 2, 0),
                A(0, -1, 2, 3, 0.5, 0, -1, 2, 3, 0.5, 2, -1, 1000, -0.5)), id="edges",
        fd="0^0, 0^negative, negative base (NaN d/db) and overflow"),
    Row("pow", (A([1e-30], [1e10], [2.0]), A([2.0, -1.0, 0.5])), id="huge-tiny-bcast",
        tol="terms", fd_h=(rel, rel)),
    Row("pow", (A([-3.0], [-0.5]), A([2.0, 3.0, -2.0])), id="negative-base-int-exp-bcast",
        tol="terms", fd="d/db is NaN for a negative base (ln a); PyTorch agrees"),
    *unary_rows("neg", extra=[Row("neg", (HUGE_TINY,), id="huge-tiny", fd_h=(rel,))]),
    *unary_rows("exp", fd_z="exp(1000) = inf"),
    Row("exp", (A(-700, -100, -20, 0, 20, 88, 700),), id="finite-range", dtypes=("float64",)),
    Row("log", (A(0, -0.0, 1e-300, 5e-324, 1e-30, 1e-16, 1, 1e30, 1e300, inf, -1),),
        id="edges-f64", dtypes=("float64",), fd="log at 0, below 0 and at inf"),
    Row("log", (A(0, 1e-30, 1e-45, 1, 1e30, 3e38, inf, -1),), id="edges", fd="log at 0, < 0, inf"),
    Row("log", (A(1e-300, 1e-30, 1e-16, 1, 1e30, 1e300),), id="tiny-huge",
        dtypes=("float64",), fd_h=(rel,)),
    Row("sqrt", (A(0, -0.0, 1e-300, 5e-324, 1e-30, 1e30, 1e300, inf, -1),), id="edges-f64",
        dtypes=("float64",), fd="sqrt at 0 (infinite slope), below 0 and at inf"),
    Row("sqrt", (A(0, 1e-30, 1e-45, 1, 1e30, 3e38, inf, -1),), id="edges", fd="sqrt at 0, < 0"),
    Row("sqrt", (A(1e-300, 1e-30, 1, 1e30, 1e300),), id="tiny-huge", dtypes=("float64",),
        fd_h=(rel,)),
    *unary_rows("square", extra=[Row("square", (A(1e-100, -1e100, 1e-30, 3),), id="huge-tiny",
                                     dtypes=("float64",), fd_h=(rel,))],
                fd_z=True),
    *unary_rows("abs", fd_z=KINK, fd_special=SPECIALS, nan_note=NAN_SIGN,
                extra=[Row("abs", (HUGE_TINY,), id="huge-tiny", fd_h=(rel,))]),
    # -- linear algebra --------------------------------------------------------------------
    Row("matmul", (A([1e30, 1, -1e30], [1e-30, 1e-30, 1e-30]), A([1, 2], [3, 4], [1, 2])),
        id="cancel", tol="terms", fd="1 + 1e30 - 1e30: the small terms' changes are lost"),
    Row("matmul", (rng.standard_normal((2, 1, 2, 3)) * 1e150, rng.standard_normal((3, 3, 2)) * 1e-150),
        id="huge-times-tiny-batched-f64", dtypes=("float64",), tol="terms", fd_h=(rel, rel)),
    # (positive: where +inf and -inf products meet, BLAS libraries differ, NaN or inf)
    Row("matmul", (rng.uniform(1, 2, (2, 3)) * 1e20, rng.uniform(-2, 2, (3, 2)) * 1e-20),
        id="scaled-f32", dtypes=("float32",), tol="terms"),
    Row("matmul", (rng.uniform(1, 2, (2, 3)) * 1e20, rng.uniform(1, 2, (3, 2)) * 1e20),
        id="overflow-f32", dtypes=("float32",), tol="terms"),
    Row("matmul", (A([inf, 1.0], [nan, 0.0], [1.0, 2.0]), A([0.0, 1.0], [1.0, -inf])),
        id="specials", fd=SPECIALS),
    Row("matmul", (A(1e20, -1e-20, 3.0), A(1e-20, 1e20, 0.0)), id="dot-huge-tiny",
        tol="terms", fd="1 - 1 + 0: a cancelling dot product"),
    Row("transpose", (SPECIAL.reshape(3, 3),), {"perm": [1, 0]}, id="specials", fd=SPECIALS),
    Row("transpose", (HUGE_TINY[:4].reshape(1, 2, 2),), {"perm": [2, 0, 1]}, id="huge-tiny",
        fd_h=(rel,)),
    # -- shape -----------------------------------------------------------------------------
    Row("reshape", (SPECIAL.reshape(3, 3),), {"shape": [-1]}, id="specials", fd=SPECIALS),
    Row("reshape", (HUGE_TINY[:4].reshape(2, 2),), {"shape": [1, 4]}, id="huge-tiny",
        fd_h=(rel,)),
    Row("flatten", (SPECIAL.reshape(1, 3, 3),), id="specials", fd=SPECIALS),
    Row("flatten", (HUGE_TINY[:4].reshape(1, 2, 2),), {"start_axis": 0}, id="huge-tiny",
        fd_h=(rel,)),
    Row("concat", (SPECIAL.reshape(3, 3), A([1e300], [-1e300], [5e-324])), id="specials-f64",
        dtypes=("float64",), fd=SPECIALS),
    Row("concat", (SPECIAL.reshape(3, 3)[:2], HUGE_TINY[:3].reshape(1, 3)), {"axis": 0},
        id="specials", fd=SPECIALS),
    Row("concat", (HUGE_TINY[:4].reshape(2, 2), HUGE_TINY[1:3].reshape(2, 1)), id="huge-tiny",
        fd_h=(rel, rel)),
    # -- reductions ------------------------------------------------------------------------
    *[row for name in ("sum", "mean") for row in [
        Row(name, (A([1e30, 1, -1e30, 1e-30], [1e-30, -1e-30, 0, 0]),), {"axis": 1},
            id="cancel", tol="terms", fd="1 + 1e30 - 1e30: the small terms' changes are lost"),
        Row(name, (A([1e308, 1e308], [-1e308, 1e308], [1e-308, 5e-324]),), {"axis": -1},
            id="overflow-f64", dtypes=("float64",), tol="terms", fd="overflow to inf"),
        Row(name, (A([3e38, 3e38], [-3e38, 3e38], [1e-38, 1e-45]),), {"axis": -1},
            id="overflow-f32", dtypes=("float32",), tol="terms"),
        Row(name, (SPECIAL.reshape(3, 3),), {"axis": [0], "keepdims": True}, id="specials",
            tol="terms", fd=SPECIALS),
        Row(name, (HUGE_TINY[:4].reshape(2, 2),), id="huge-tiny-all", tol="terms",
            fd="1e-30 next to 1e30 in one sum: its change is lost"),
        Row(name, (A([1e-30, 2e-30], [3e-30, -1e-30]),), {"axis": 0}, id="tiny", tol="terms",
            fd_h=(rel,)),
    ]],
    Row("max", (A([3, 3, 1], [2, 2, 2], [-inf, -inf, -inf], [0, -0.0, -1], [1e30, 1e30, -1e30]),),
        {"axis": 1}, id="ties-rows", fd="tied maxima: max is not differentiable there"),
    Row("max", (np.ones((2, 3, 2)),), {"axis": [0, 2], "keepdims": True}, id="all-tied",
        fd="tied maxima"),
    Row("max", (A([1, 5], [5, 5]),), id="ties-all-axes", fd="tied maxima"),
    Row("max", (A([nan, 1, 2], [1, nan, nan], [inf, inf, 1], [-inf, 0, inf]),), {"axis": -1},
        id="nan-inf", fd=SPECIALS),
    Row("max", (A([1e300, -1e300], [1e-300, 5e-324]),), {"axis": 0}, id="1e300-f64",
        dtypes=("float64",), fd_h=(lambda x: 1e-6 * np.maximum(np.abs(x), 1e-300),)),
    Row("max", (distinct[0, 0],), {"axis": 1}, id="distinct-huge", fd_h=(rel,)),
    # -- activations -----------------------------------------------------------------------
    *unary_rows("sigmoid", fd_z=NEAR_1, tol_z=10,
                extra=[Row("sigmoid", (Z_NEG,), id="saturated-negative")]),
    *unary_rows("tanh", fd_z=NEAR_1, extra=[Row("tanh", (A(-1e-30, 1e-30, 0.5, -1e-300),),
                                                 id="tiny", dtypes=("float64",))]),
    *unary_rows("relu", fd_z=KINK, nan_note=NAN_RELU, extra=[Row("relu", (HUGE_TINY,), id="huge-tiny",
                                              fd_h=(rel,))]),
    *unary_rows("leaky_relu", fd_z=KINK,
                extra=[Row("leaky_relu", (HUGE_TINY,), {"alpha": 0.2}, id="huge-tiny",
                           fd_h=(rel,)),
                       Row("leaky_relu", (Z.reshape(1, -1),), {"alpha": 0.3}, id="alpha-sat",
                           fd=KINK)]),
    *unary_rows("elu", fd_z=NEAR_1, nan_note=NAN_ELU,
                extra=[Row("elu", (Z_NEG[1:],), {"alpha": 2.0}, id="alpha-2-saturated",
                           fd=NEAR_1 + " (-alpha)"),
                       Row("elu", (A(-5, -1, -1e-30, 1e-30, 5),), {"alpha": 1.0}, id="small",
                           fd_h=(rel,))]),
    *unary_rows("softplus",
                extra=[Row("softplus", (A(21, 25, -21, -25),), id="threshold",
                           rtol={"float64": 1e-9, "float32": 1e-5},
                           note="PyTorch's softplus is x (gradient 1) for x > 20; minigraph "
                                "keeps ln(1 + e^x): e^-21 = 8e-10 apart")]),
    *unary_rows("swish",
                extra=[Row("swish", (Z.reshape(1, -1),), {"beta": 0.5}, id="beta-0.5"),
                       Row("swish", (Z.reshape(1, -1),), {"beta": 20.0}, id="beta-20",
                           fd="beta x = +-20000: steps of x cross the gate's saturation")]),
    *unary_rows("sign", nan_note=NAN_SIGN),
    # -- probability -----------------------------------------------------------------------
    *[row for name in ("softmax", "log_softmax") for row in [
        Row(name, (sm,), id="saturated-ties", tol=10,
            fd=True if name == "log_softmax" else NEAR_1),
        Row(name, (sm.T.copy(),), {"axis": 0}, id="saturated-axis0", tol=10,
            fd=True if name == "log_softmax" else NEAR_1),
        Row(name, (sm_neg_inf,), id="neg-inf", tol=10, fd=SPECIALS),
        Row(name, (A([-inf, -inf], [inf, 0.0], [nan, 0.0]),), id="all-neg-inf-nan", tol=10,
            fd=SPECIALS),
        Row(name, (A([1e300, -1e300, 0], [1e-300, -1e-300, 0]),), id="1e300-f64",
            dtypes=("float64",), tol=10, fd="steps of 1e294 on 1e300 logits"),
    ]],
    # -- convolution and pooling -----------------------------------------------------------
    Row("conv2d", (cancel_img, conv_w, A(1e30, -1)), id="cancel", tol="terms",
        fd="1e30 and 1 in one window sum: the small terms' changes are lost"),
    Row("conv2d", (cancel_img, conv_w), {"stride": 2, "padding": 1}, id="cancel-stride2-pad1",
        tol="terms", fd="1e30 and 1 in one window sum"),
    Row("conv2d", (conv_specials, conv_w0, A(0.0, inf)), {"padding": 1}, id="specials",
        tol="terms", fd=SPECIALS),
    Row("conv2d", (rng.standard_normal((1, 2, 4, 4)) * 1e-30, conv_w * 1e-30, A(1e-60, -1e-60)),
        {"padding": 1}, id="tiny", tol="terms", fd_h=(rel, rel, rel)),
    Row("conv2d", (rng.uniform(1, 2, (1, 2, 4, 4)) * 1e20, np.abs(conv_w) * 1e20),
        id="overflow-f32",
        dtypes=("float32",), tol="terms"),
    *[row for kernel, stride, pad in ((2, None, 0), (3, 2, 1), (2, 1, 0))
      for attrs in [{"kernel": kernel, "stride": stride, "padding": pad}]
      for tag in [f"k{kernel}s{stride or kernel}p{pad}"]
      for row in [
          Row("maxpool2d", (tied,), attrs, id=f"ties-{tag}", fd="tied maxima in every window"),
          Row("maxpool2d", (neg_inf_img,), attrs, id=f"neg-inf-{tag}", fd=SPECIALS),
          Row("maxpool2d", (nan_img,), attrs, id=f"nan-{tag}", fd=SPECIALS),
          Row("maxpool2d", (distinct,), attrs, id=f"distinct-huge-{tag}", fd_h=(rel,)),
          Row("avgpool2d", (cancel_img,), attrs, id=f"cancel-{tag}", tol="terms",
              fd="1e30 and 1 in one window sum"),
          Row("avgpool2d", (nan_img,), attrs, id=f"specials-{tag}", tol="terms", fd=SPECIALS),
          Row("avgpool2d", (distinct,), attrs, id=f"huge-{tag}", tol="terms", fd_h=(rel,)),
      ]],
    Row("maxpool2d", ((pool_x + 1) * 1e300,), {"kernel": 2}, id="1e300-f64", dtypes=("float64",),
        fd_h=(rel,)),
    Row("avgpool2d", (np.full((1, 1, 2, 2), 1e308),), {"kernel": 2}, id="overflow-f64",
        dtypes=("float64",), fd="the window sum overflows"),
    Row("avgpool2d", (np.full((1, 1, 2, 2), 3e38),), {"kernel": 2}, id="overflow-f32",
        dtypes=("float32",)),
    # -- regularization --------------------------------------------------------------------
    Row("dropout", (SPECIAL.reshape(3, 3),), {"p": 0.5}, id="eval-specials", fd=SPECIALS),
    Row("dropout", (SPECIAL.reshape(3, 3),), {"p": 0.0}, id="train-p0-specials",
        training=True, fd=SPECIALS),
    Row("dropout", (HUGE_TINY,), {"p": 0.3}, id="eval-huge-tiny", fd_h=(rel,)),
    # -- losses ----------------------------------------------------------------------------
    *[row for red in ("mean", "sum") for row in [
        Row("mse", (A(1e200, -1e200, 0, 1e-200), A(-1e200, 1e200, 0, 0)), {"reduction": red},
            id=f"overflow-f64-{red}", dtypes=("float64",), fd="the loss overflows to inf"),
        Row("mse", (A(1e20, -1e20, 0, 1e-30), A(-1e20, 1e20, 0, 0)), {"reduction": red},
            id=f"overflow-f32-{red}", dtypes=("float32",)),
        Row("mse", (A(1e10, 1e10, -1e-10, 3), A(-1e10, 1e10, 1e-10, 3)), {"reduction": red},
            id=f"huge-tiny-{red}", fd="a loss of 4e20 hides the change of the tiny terms"),
        Row("mse", (SPECIAL, A(inf, 1, 2, 0, 0, 0, 0, 1e30, 0)), {"reduction": red},
            id=f"specials-{red}", fd=SPECIALS),
        Row("l1", (A(1e30, -1e30, 0, 1e-30, 3, 3), A(-1e30, 1e30, 0, 0, 3, 2)),
            {"reduction": red}, id=f"huge-zeros-{red}", fd=KINK + ": p = t"),
        Row("l1", (SPECIAL, A(1, 1, 2, 0, 0, 0, 0, 1e30, 0)), {"reduction": red},
            id=f"specials-{red}", fd=SPECIALS, nan_in=True, note=NAN_SIGN),
        Row("l1", (A(inf, 1e30), A(inf, -inf)), {"reduction": red}, id=f"inf-minus-inf-{red}",
            fd=SPECIALS, nan_in=True, note="p - t = inf - inf is NaN; " + NAN_SIGN),
        Row("l1", (A(1e-30, -2.0, 5.0), A(-1e-30, 3.0, 1.0)), {"reduction": red},
            id=f"tiny-{red}", fd="steps that do not cross the kink p = t are lost in the loss"),
        Row("bce", bce_grid, {"reduction": red}, id=f"edges-{red}", fd=BCE_EDGE,
            rtol=BCE_FLOOR_RTOL, note=BCE_FLOOR),
        Row("bce", (A(1e-300, 1 - 1e-16, 5e-324), A(1.0, 0.0, 0.5)), {"reduction": red},
            id=f"edges-f64-{red}", dtypes=("float64",), fd=BCE_EDGE, rtol=BCE_FLOOR_RTOL,
            note=BCE_FLOOR),
        Row("bce", (A(1e-10, 1 - 1e-10, 0.5), A(1.0, 0.0, 0.3)), {"reduction": red},
            id=f"near-edges-{red}", dtypes=("float64",), fd_h=(bce_near_h, None)),
        Row("bce_with_logits", (np.tile(Z, (3, 1)), np.repeat(A(0, 1, 0.5)[:, None], 11, 1)),
            {"reduction": red}, id=f"saturated-{red}", tol=10,
            fd="losses up to 1000 hide the change of terms whose gradient is e^-20"),
        Row("bce_with_logits", (A(1e300, -1e300, 1e-300), A(0.5, 0.5, 1.0)),
            {"reduction": red}, id=f"1e300-f64-{red}", dtypes=("float64",),
            fd="a loss of 1e300 hides every other term"),
        Row("bce_with_logits", (A(-20, -5, 0, 5, 20), A(0, 0, 0.5, 1, 1)),
            {"reduction": red}, id=f"moderate-{red}", tol=10),
        Row("cross_entropy", (sm, labels_sm), {"reduction": red}, id=f"index-saturated-{red}",
            tol=10),
        Row("cross_entropy", (sm, probs_sm), {"reduction": red}, id=f"probs-saturated-{red}",
            tol=10, fd="0 * log p at the saturated classes: a change of 1e-3 in a 1000 logit "
                       "is lost in losses of 2000"),
        Row("cross_entropy", (sm_neg_inf, np.array([1, 2, 0])), {"reduction": red},
            id=f"index-neg-inf-{red}", tol=10, fd=SPECIALS),
        Row("cross_entropy", (sm_neg_inf, A([0, 0.5, 0.5], [0, 0, 1], [0.5, 0.5, 0])),
            {"reduction": red}, id=f"probs-neg-inf-{red}", tol=10, fd=SPECIALS),
        Row("nll", (lp_sat, labels_sm), {"reduction": red}, id=f"index-saturated-{red}"),
        Row("nll", (lp_sat, probs_sm), {"reduction": red}, id=f"one-hot-saturated-{red}",
            tol="terms"),
        Row("nll", (LOG_01, np.array([1, 1, 0])),
            {"reduction": red}, id=f"index-neg-inf-{red}", fd=SPECIALS),
        Row("nll", (LOG_01, A([0, 1], [1, 0], [1, 0])),
            {"reduction": red}, id=f"one-hot-neg-inf-{red}", tol="terms", fd=SPECIALS),
    ]],
    Row("cross_entropy", (A([1e300, -1e300, 0]), np.array([1])), id="index-1e300-f64",
        dtypes=("float64",), fd="steps of 1e294 on 1e300 logits"),
    Row("cross_entropy", (np.stack([sm, sm[::-1]]), np.stack([labels_sm, labels_sm[::-1]])),
        id="index-3d-saturated", tol=10),
    # -- chains at saturation --------------------------------------------------------------
    Row("sigmoid>bce", (np.tile(Z, (2, 1)), np.repeat(A(0, 1)[:, None], 11, 1)),
        id="saturated", fd="the -100 clamp and the 1e-12 floor make the loss flat",
        dtypes=("float64",), rtol={"float64": 5e-3},
        note=CHAIN + "; at z = 30 one bit of p is 1e-3 of 1 - p = 9e-14"),
    Row("sigmoid>bce", (np.tile(Z_F32, (2, 1)), np.repeat(A(0, 1)[:, None], 10, 1)),
        id="saturated-f32", fd="float32", dtypes=("float32",), rtol={"float32": 5e-3},
        tol=1e-25, note=CHAIN + ".  z = -100 is left out: PyTorch's float32 sigmoid(-100) "
                                "is 0, minigraph's the subnormal 3.7e-44 (so d/dt is finite); "
                                "gradients of 1e-33 there are tolerated (tol)"),
    Row("sigmoid>bce", (A(-25, -10, 0, 10, 25), A(1, 0, 1, 0, 1)), {}, attrs2={"reduction": "sum"},
        id="moderate-sum", rtol=CHAIN_RTOL, note=CHAIN),
    Row("log_softmax>nll", (sm, labels_sm), id="saturated", tol=10),
    Row("log_softmax>nll", (np.stack([sm, sm[::-1]]), np.stack([probs_sm, probs_sm[::-1]])),
        {"axis": -1},
        attrs2={"reduction": "sum"}, id="probs-3d-saturated", tol=10,
        fd="0 * log p at the saturated classes: changes lost in losses of 2000"),
    # -- the general pools, identity, maximum (ONNX's MaxPool/AveragePool, Identity, Max) ----
    Row("maxpool", (tied,), {"kernel": 2}, id="ties", fd="tied maxima in every window"),
    Row("maxpool", (nan_img,), {"kernel": [3, 2], "stride": 1, "padding": 1}, id="nan-pad",
        fd=SPECIALS),
    Row("maxpool", (distinct,), {"kernel": [3, 2], "stride": [2, 1], "padding": 1,
                                 "ceil_mode": True}, id="distinct-huge-ceil", fd_h=(rel,)),
    Row("maxpool", (distinct,), {"kernel": 2, "stride": 1, "dilation": 2}, id="dilated",
        fd_h=(rel,)),
    Row("avgpool", (cancel_img,), {"kernel": 3, "stride": 2, "padding": 1,
                                   "count_include_pad": False}, id="cancel-exclude-pad",
        tol="terms", fd="1e30 and 1 in one window sum"),
    Row("avgpool", (distinct,), {"kernel": 3, "stride": 2, "ceil_mode": True, "padding": 1},
        id="huge-ceil", tol="terms", fd_h=(rel,)),
    Row("avgpool", (nan_img,), {"kernel": 2, "stride": 2}, id="specials", tol="terms",
        fd=SPECIALS),
    *unary_rows("identity"),
    Row("maximum", (A([1e30], [-1e-30], [2.0]), A([1e30, -1e30, 1e-30, -3.0])),
        id="huge-tiny-ties-bcast", tol="terms",
        fd="a tie (1e30 = 1e30) is a kink: the gradient splits in half"),
    Row("maximum", (A([inf], [-inf], [2.0]), A([inf, -inf, 0.0, 1.0])), id="specials-bcast",
        tol="terms", fd=SPECIALS),
    Row("maximum", (A([[1.5, -2.0, 3.0]]) * 1e20, A([[2.0], [-0.5]]) * 1e-20),
        id="scaled-bcast", tol="terms", fd_h=(rel, rel)),
]


# -- sequence ops and recurrent cells (issue 15) ----------------------------------------------
SAT_GATES = "saturated gates: sigmoid and tanh within 1e-8 of their asymptotes, so rounding " \
            "hides the change of a central difference"
cell_x = A([20.0, -30.0], [-1000.0, 50.0], [0.5, -0.25])  # x W reaches |a| = 20 ... 1000
ROWS += [
    Row("slice", (SPECIAL.reshape(3, 3),), {"axis": 1, "index": 1}, id="specials-index",
        fd=SPECIALS),
    Row("slice", (SPECIAL.reshape(3, 3),), {"axis": 0, "start": 1, "step": 1},
        id="specials-range", fd=SPECIALS),
    Row("slice", (HUGE_TINY[:4].reshape(2, 2),), {"axis": -1, "start": -1}, id="huge-tiny",
        fd_h=(rel,)),
    Row("stack", (SPECIAL.reshape(3, 3), HUGE_TINY[:3].reshape(1, 3).repeat(3, 0)),
        {"axis": 1}, id="specials", fd=SPECIALS),
    Row("stack", (HUGE_TINY[:4].reshape(2, 2), HUGE_TINY[1:].reshape(2, 2)), id="huge-tiny",
        fd_h=(rel, rel)),
    *[row for name, cols, extra in (("rnn_cell", 2, ()), ("lstm_cell", 8, ()),
                                    ("gru_cell", 6, (A(*rng.standard_normal(6)),)))
      for width in [cols // {"rnn_cell": 1, "lstm_cell": 4, "gru_cell": 3}[name]]
      for state_cols in [2 * width if name == "lstm_cell" else width]
      for row in [
          Row(name, (cell_x, rng.standard_normal((2, cols)), A(*rng.standard_normal(cols)),
                     *extra), id="saturated", tol=10, fd=SAT_GATES),
          Row(name, (cell_x, rng.standard_normal((2, cols)), A(*rng.standard_normal(cols)),
                     *extra, rng.standard_normal((width, cols)) * 30,
                     rng.standard_normal((3, state_cols)) * 30),
              id="saturated-state", tol=10, fd=SAT_GATES),
          Row(name, (cell_x * 1e-3, rng.standard_normal((2, cols)), A(*rng.standard_normal(cols)),
                     *extra, rng.standard_normal((width, cols)),
                     rng.standard_normal((3, state_cols))), id="moderate-state", tol=10),
      ]],
]


# ==== running minigraph ===========================================================================

def cast(x, dtype):
    if x.dtype.kind != "f":
        return x
    with np.errstate(over="ignore", under="ignore"):
        return x.astype(dtype)


def mg_forward(row, xs):
    with np.errstate(all="ignore"):
        (n1, a1), *rest = row.steps
        first = xs[:1] if rest else xs
        op1, c1, y = run_op(n1, first, a1, row.training)
        ops = [(op1, c1)]
        if rest:
            (n2, a2), = rest
            op2, c2, y = run_op(n2, (y,) + tuple(xs[1:]), a2, row.training)
            ops.append((op2, c2))
    return y, ops


def mg_forward_backward(row, xs, r):
    """(y, one gradient per input) of minigraph; gradients None where there are none."""
    y, ops = mg_forward(row, xs)
    if not row.differentiable:
        return y, [None] * len(xs)
    with np.errstate(all="ignore"):
        if len(ops) == 1:
            (op, ctx), = ops
            grads = op.backward(ctx, r)
            assert len(grads) == len(xs), f"{row.op}: one gradient per input"
        else:
            (op1, c1), (op2, c2) = ops
            g2 = op2.backward(c2, r)
            g1 = op1.backward(c1, g2[0])
            grads = tuple(g1) + tuple(g2[1:])
    return y, list(grads)


def weights(shape, dtype):
    """R: the fixed random weights of L = sum(y * R)."""
    return np.random.default_rng(1).standard_normal(shape).astype(dtype)


# ==== PyTorch's side ==============================================================================

def _dims(a, ndim):
    axis = a.get("axis")
    if axis is None:
        return tuple(range(ndim))
    return (axis,) if isinstance(axis, int) else tuple(axis)


def _red(a):
    return a.get("reduction", "mean")


def _class_loss(log_probs_or_logits, t, a, cross_entropy):
    c = log_probs_or_logits.shape[-1]
    s = log_probs_or_logits.reshape(-1, c)
    rows_shape = tuple(log_probs_or_logits.shape[:-1])
    if tuple(t.shape) == tuple(log_probs_or_logits.shape):  # probability rows
        if cross_entropy:
            loss = F.cross_entropy(s, t.reshape(-1, c), reduction=_red(a))
            return loss.reshape(rows_shape) if _red(a) == "none" else loss
        rows = -(t.reshape(-1, c) * s).sum(dim=1)  # nll of one-hot rows, by hand
        if _red(a) == "none":
            return rows.reshape(rows_shape)
        return rows.sum() / s.shape[0] if _red(a) == "mean" else rows.sum()
    loss = F.cross_entropy if cross_entropy else F.nll_loss
    out = loss(s, t.reshape(-1), reduction=_red(a), ignore_index=a.get("ignore_index", -100))
    return out.reshape(rows_shape) if _red(a) == "none" else out


def _per_axis(value, d):
    return (value,) * d if isinstance(value, int) else tuple(value)


def _pool(a, x, kind):
    """maxpool / avgpool through F.max_poolNd / F.avg_poolNd (uneven pads made explicit)."""
    d = x.dim() - 2
    k = _per_axis(a["kernel"], d)
    s = _per_axis(a.get("stride") or k, d)
    p = a.get("padding", 0)
    before, after = (tuple(p[:d]), tuple(p[d:])) if isinstance(p, list) and len(p) == 2 * d \
        else (_per_axis(p, d), _per_axis(p, d))
    if before != after:  # F's pools pad both sides alike: pad by hand (max: -inf, avg: 0)
        pairs = [n for i in reversed(range(d)) for n in (before[i], after[i])]
        x = F.pad(x, pairs, value=-float("inf") if kind == "max" else 0.0)
        before = (0,) * d
    ceil = a.get("ceil_mode", False)
    if kind == "max":
        pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[d - 1]
        return pool(x, k, s, before, _per_axis(a.get("dilation", 1), d), ceil)
    pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[d - 1]
    return pool(x, k, s, before, ceil, a.get("count_include_pad", True))


TORCH: dict[str, Callable] = {
    "add": lambda a, x, y: x + y,
    "sub": lambda a, x, y: x - y,
    "mul": lambda a, x, y: x * y,
    "div": lambda a, x, y: x / y,
    "pow": lambda a, x, y: torch.pow(x, y),
    "neg": lambda a, x: -x,
    "exp": lambda a, x: torch.exp(x),
    "log": lambda a, x: torch.log(x),
    "sqrt": lambda a, x: torch.sqrt(x),
    "square": lambda a, x: torch.square(x),
    "abs": lambda a, x: torch.abs(x),
    "matmul": lambda a, x, y: torch.matmul(x, y),
    "transpose": lambda a, x: x.permute(*(a.get("perm") or reversed(range(x.dim())))),
    "reshape": lambda a, x: x.reshape(a["shape"]),
    "flatten": lambda a, x: torch.flatten(x, a.get("start_axis", 1)),
    "concat": lambda a, *xs: torch.cat(xs, dim=a.get("axis", -1)),
    "sum": lambda a, x: torch.sum(x, dim=_dims(a, x.dim()), keepdim=a.get("keepdims", False)),
    "mean": lambda a, x: torch.mean(x, dim=_dims(a, x.dim()), keepdim=a.get("keepdims", False)),
    "max": lambda a, x: torch.amax(x, dim=_dims(a, x.dim()), keepdim=a.get("keepdims", False)),
    "sigmoid": lambda a, x: torch.sigmoid(x),
    "tanh": lambda a, x: torch.tanh(x),
    "relu": lambda a, x: torch.relu(x),
    "leaky_relu": lambda a, x: F.leaky_relu(x, a.get("alpha", 0.01)),
    "elu": lambda a, x: F.elu(x, a.get("alpha", 1.0)),
    "softplus": lambda a, x: F.softplus(x),
    "swish": lambda a, x: x * torch.sigmoid(a.get("beta", 1.0) * x),
    "sign": lambda a, x: torch.sign(x),
    "softmax": lambda a, x: torch.softmax(x, dim=a.get("axis", -1)),
    "log_softmax": lambda a, x: torch.log_softmax(x, dim=a.get("axis", -1)),
    "conv2d": lambda a, x, w, b=None: F.conv2d(x, w, b, stride=a.get("stride", 1),
                                               padding=a.get("padding", 0)),
    "maxpool2d": lambda a, x: F.max_pool2d(x, a["kernel"], a.get("stride") or a["kernel"],
                                           a.get("padding", 0)),
    "avgpool2d": lambda a, x: F.avg_pool2d(x, a["kernel"], a.get("stride") or a["kernel"],
                                           a.get("padding", 0), count_include_pad=True),
    "dropout": lambda a, x: x if a.get("p", 0.5) else F.dropout(x, 0.0, training=True),
    "maxpool": lambda a, x: _pool(a, x, "max"),
    "avgpool": lambda a, x: _pool(a, x, "avg"),
    "identity": lambda a, x: x.clone(),
    "maximum": lambda a, x, y: torch.maximum(x, y),
    "mse": lambda a, p, t: F.mse_loss(p, t, reduction=_red(a)),
    "l1": lambda a, p, t: F.l1_loss(p, t, reduction=_red(a)),
    "bce": lambda a, p, t: F.binary_cross_entropy(p, t, reduction=_red(a)),
    "bce_with_logits": lambda a, z, t: F.binary_cross_entropy_with_logits(z, t,
                                                                          reduction=_red(a)),
    "cross_entropy": lambda a, z, t: _class_loss(z, t, a, cross_entropy=True),
    "nll": lambda a, lp, t: _class_loss(lp, t, a, cross_entropy=False),
}


def _slice_key(a, ndim):
    axis = a.get("axis", 0) % ndim
    cut = a["index"] if a.get("index") is not None else slice(a.get("start"), a.get("stop"),
                                                              a.get("step"))
    return (slice(None),) * axis + (cut,)


def _torch_lstm_cell(a, x, W, b, U=None, s=None):
    n = W.shape[1] // 4
    pre = x @ W + b + (0 if s is None else s[:, :n] @ U)
    i, f, g, o = (pre[:, k * n:(k + 1) * n] for k in range(4))
    c = torch.sigmoid(i) * torch.tanh(g) + (0 if s is None else torch.sigmoid(f) * s[:, n:])
    return torch.cat([torch.sigmoid(o) * torch.tanh(c), c], dim=1)


def _torch_gru_cell(a, x, W, b, bh, U=None, h=None):
    n = W.shape[1] // 3
    xa, ha = x @ W + b, bh + (0 if h is None else h @ U)
    r = torch.sigmoid(xa[:, :n] + ha[..., :n])
    z = torch.sigmoid(xa[:, n:2 * n] + ha[..., n:2 * n])
    cand = torch.tanh(xa[:, 2 * n:] + r * ha[..., 2 * n:])
    return (1 - z) * cand + z * (0 if h is None else h)


TORCH.update({
    "slice": lambda a, x: x[_slice_key(a, x.dim())],
    "stack": lambda a, *xs: torch.stack(xs, dim=a.get("axis", 0)),
    "rnn_cell": lambda a, x, W, b, U=None, h=None: torch.tanh(
        x @ W + b + (0 if h is None else h @ U)),
    "lstm_cell": _torch_lstm_cell,
    "gru_cell": _torch_gru_cell,
})


def torch_forward(row, ts):
    (n1, a1), *rest = row.steps
    if not rest:
        return TORCH[n1](a1, *ts)
    (n2, a2), = rest
    return TORCH[n2](a2, TORCH[n1](a1, ts[0]), *ts[1:])


def torch_forward_backward(row, xs, r):
    ts = [torch.from_numpy(np.array(x)) for x in xs]
    for t in ts:
        if t.is_floating_point():
            t.requires_grad_(True)
    y = torch_forward(row, ts)
    grads = [None] * len(xs)
    if row.differentiable and y.requires_grad:
        (y * torch.from_numpy(np.array(r))).sum().backward()
        grads = [None if not t.is_floating_point() else
                 (t.grad if t.grad is not None else torch.zeros_like(t)).numpy()
                 for t in ts]
    return y.detach().numpy(), grads


def term_scales(row, xs, r):
    """|terms| of the forward sums and of each gradient's sums: the same computation in
    float64 on |inputs| and |R| (exact for ops that add products, as matmul and conv)."""
    abs_xs = [np.abs(x.astype(np.float64)) if x.dtype.kind == "f" else x for x in xs]
    with np.errstate(all="ignore"):
        y, grads = torch_forward_backward(row, abs_xs, np.abs(r.astype(np.float64)))
    return np.abs(y), [None if g is None else np.abs(g) for g in grads]


# ==== comparing ===================================================================================

def assert_same(got, want, rtol, atol, what):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, PyTorch {want.shape}"
    for name, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        diff = test(got) != test(want)
        assert not diff.any(), (f"{what}: {name} in different places:\nminigraph {got}\n"
                                f"PyTorch   {want}")
    finite = np.isfinite(want)
    atol = np.broadcast_to(atol, want.shape)[finite]
    err = np.abs(got[finite] - want[finite])
    bad = err > rtol * np.abs(want[finite]) + atol
    assert not bad.any(), (f"{what}: not equal to rtol {rtol}:\nminigraph {got[finite][bad]}\n"
                           f"PyTorch   {want[finite][bad]}\nerror     {err[bad]}")


def tolerances(row, dtype, xs, r, y, grads):
    """Absolute tolerances for y and each gradient."""
    rtol = (row.rtol or RTOL)[dtype]
    floor = np.finfo(dtype).tiny  # subnormal results count as 0
    if row.tol is None:
        return rtol, floor, [floor] * len(xs)
    if row.tol == "terms":
        y_terms, g_terms = term_scales(row, xs, r)
        return (rtol, rtol * y_terms + floor,
                [floor if g is None else rtol * g + floor for g in g_terms])
    unit = RTOL[dtype] * row.tol
    return rtol, unit + floor, [unit + floor] * len(xs)


def param(row, dtype=None):
    name = f"{row.op}-{row.id}" + (f"-{dtype}" if dtype else "")
    return pytest.param(row, dtype, id=name) if dtype else pytest.param(row, id=name)


# ==== the ordinary cases of op_cases, compared with PyTorch too =================================

LINEAR_OPS = {"add", "sub", "mul", "div", "pow", "matmul", "conv2d", "sum", "mean", "avgpool2d",
              "mse", "l1", "bce", "bce_with_logits", "nll"}


def ordinary_rows():
    rows = []
    for name, cases in CASES.items():
        for i, case in enumerate(cases):
            if case.training and case.attrs.get("p", 0.5) > 0:
                continue  # a random mask: PyTorch draws its own
            if name in ("cross_entropy", "nll") and len(case.inputs) > 2:
                continue  # class weights: no gradient in either library (test_op_gaps.py)
            if name == "avgpool" and case.attrs.get("dilation", 1) != 1:
                continue  # PyTorch has no dilated average pool (the textbook ref checks it)
            tol = "terms" if name in LINEAR_OPS else (
                10 if name in ("softmax", "log_softmax", "cross_entropy", "rnn_cell",
                               "lstm_cell", "gru_cell") else None)
            rows.append(Row(name, case.inputs, case.attrs, id=f"ordinary-{case.id or i}",
                            tol=tol, training=case.training))
    return rows


PARITY = [param(row, dt) for row in ROWS + ordinary_rows() for dt in row.dtypes]
FD = [param(row) for row in ROWS if row.fd is True and "float64" in row.dtypes
      and row.differentiable]


# ==== the tests ===================================================================================

def test_every_registered_op_has_cases():
    covered = {name for row in ROWS for name, _ in row.steps if ">" not in row.op}
    missing = sorted(set(builtin_ops()) - covered)
    assert not missing, f"ops without extreme rows in tests/test_extremes.py: {missing}"
    assert not sorted(set(TORCH) - set(builtin_ops())), "PyTorch mappings of unknown ops"
    for row in ROWS:  # a row not checked by differences says why, and so does a tolerance
        assert row.fd is True or (isinstance(row.fd, str) and row.fd), row.id
        assert row.note or not (row.rtol or row.nan_in), row.id


@pytest.mark.parametrize("row, dtype", PARITY)
def test_matches_pytorch(row, dtype):
    pytest.importorskip("torch", reason="PyTorch not installed: parity tests need `make torch`")
    xs = [cast(x, dtype) for x in row.inputs]
    r = weights(np.shape(mg_forward(row, xs)[0]), dtype)
    y, grads = mg_forward_backward(row, xs, r)
    with np.errstate(all="ignore"):
        ty, tgrads = torch_forward_backward(row, xs, r)
    assert y.dtype == np.dtype(dtype)
    rtol, y_atol, g_atols = tolerances(row, dtype, xs, r, ty, tgrads)
    if row.nan_in:  # element-wise rows: leave out the positions of NaN inputs
        skip = np.zeros(xs[0].shape, bool)
        for x in xs:
            skip |= np.isnan(x)
        if len(xs) == 2 and xs[0].shape == xs[1].shape:
            with np.errstate(invalid="ignore"):
                skip |= np.isnan(xs[0] - xs[1])  # inf - inf (l1's sign(p - t))
        y, ty = y.copy(), ty.copy()
        if y.shape == skip.shape:
            y[skip] = ty[skip] = 0
        grads = [g.copy() for g in grads] if row.differentiable else grads
        for g, tg in zip(grads, tgrads):
            if g is not None:
                g[skip] = tg[skip] = 0
    assert_same(y, ty, rtol, y_atol, "forward")
    if not row.differentiable:
        assert all(g is None for g in grads), "no gradient through a non-differentiable op"
        return
    for i, (g, tg) in enumerate(zip(grads, tgrads)):
        if tg is None:  # integer labels
            assert g is None, f"gradient for integer input {i}"
            continue
        assert g is not None, f"no gradient for input {i}"
        assert g.dtype == np.dtype(dtype), f"gradient {i} is {g.dtype}"
        assert_same(g, tg, rtol, g_atols[i], f"gradient of input {i}")


@pytest.mark.parametrize("row", FD)
def test_matches_central_differences(row):
    """float64 gradients against (y(x + h) - y(x - h)) . R / 2h, element by element.

    The difference y(x + h) - y(x - h) is taken before the weighted sum, so outputs that x
    does not touch add nothing; the tolerance allows for the rounding of the outputs it does
    touch (|y| ulp / h) besides a relative 1e-5."""
    xs = [np.array(x) for x in row.inputs]
    r = weights(np.shape(mg_forward(row, xs)[0]), np.float64)
    y, grads = mg_forward_backward(row, xs, r)
    for i, x in enumerate(xs):
        if x.dtype.kind != "f":
            continue
        step = (row.fd_h[i] if row.fd_h else None) or (lambda v: 1e-6 * np.maximum(np.abs(v), 1))
        h = np.broadcast_to(step(x), x.shape)
        fd = np.zeros_like(x)
        noise = np.zeros_like(x)
        for k in np.ndindex(x.shape):
            up, down = x.copy(), x.copy()
            up[k] += h[k]
            down[k] -= h[k]
            ys = []
            for xi in (up, down):
                inputs = list(xs)
                inputs[i] = xi
                ys.append(np.asarray(mg_forward(row, inputs)[0]))
            width = up[k] - down[k]
            assert width > 0, f"input {i}: a step of 0 at {k}"
            fd[k] = np.sum((ys[0] - ys[1]) * r) / width
            touched = (ys[0] != ys[1]) | (ys[0].ndim == 0)  # a loss always counts
            noise[k] = 8 * np.finfo(np.float64).eps * np.sum(
                np.where(touched, np.abs(ys[0]) + np.abs(ys[1]), 0) * np.abs(r)) / width
        assert np.isfinite(fd).all() and np.isfinite(grads[i]).all(), \
            f"input {i}: a row checked by differences must stay finite"
        err = np.abs(grads[i] - fd)
        bad = err > FD_RTOL * np.abs(fd) + noise + np.finfo(np.float64).tiny
        assert not bad.any(), (f"input {i}: backward {grads[i][bad]}, central differences "
                               f"{fd[bad]} (noise {noise[bad]})")
