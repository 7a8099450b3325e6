"""General pooling over 1, 2 or 3 spatial axes: maxpool and avgpool.

``maxpool2d``/``avgpool2d`` (:mod:`.conv`) are the square, symmetric case that the lessons and
the fused training kernels use.  These two take what PyTorch's ``MaxPool1d/2d/3d`` and
``AvgPool1d/2d/3d`` (and ONNX's ``MaxPool``/``AveragePool``) take: one kernel size, stride and
dilation per spatial axis, padding that may differ at the two ends of an axis, ``ceil_mode``
and, for the average, ``count_include_pad``.

x is (N, C, L1, ..., Ld), d = 1, 2 or 3.  Along spatial axis i, with kernel k, stride s,
dilation e and pads (b, a) before and after:

    span = e (k - 1) + 1                                  (the window's extent)
    out  = floor((L + b + a - span) / s) + 1              (ceil instead with ceil_mode, but a
                                                           window must start inside the input
                                                           or the leading pad)

Window element j of output position r reads padded position r s + j e.  As in :mod:`.conv`,
each window element is one strided slice (a "slab") over all output positions at once.
maxpool keeps each window's first maximum (padding never wins) and sends the gradient there;
avgpool divides each window's sum by the number of its elements that are real pixels
(``count_include_pad: false``) or real pixels and explicit pads (``true``, PyTorch's default);
positions past the explicit pads that ``ceil_mode`` adds never count.
"""
from __future__ import annotations

import itertools

from .base import Attr, AttrError, Op, Rule, ShapeError, fmt_shape, get_array_module, register
from .conv import first_max


def _per_axis(value, d, what, op):
    """``value`` (an int or a list of d ints) as a tuple of d ints."""
    if isinstance(value, int):
        return (value,) * d
    if len(value) != d:
        raise ShapeError(f"{op}: {what} {list(value)} needs {d} entries, one per spatial axis")
    return tuple(value)


class Pool(Op):
    """Base of the general pools: the window geometry and the shape rule."""

    attrs = {
        "kernel": Attr("any", doc="window size: an int, or one int per spatial axis"),
        "stride": Attr("any", None, "step between windows (int or per axis); default: kernel"),
        "padding": Attr("any", 0, "pads: an int for every side, one int per axis (both sides),"
                                  " or [begin1, ..., beginD, end1, ..., endD]"),
        "dilation": Attr("any", 1, "spacing between window elements (int or per axis)"),
        "ceil_mode": Attr("bool", False, "round the output size up (a last partial window)"),
    }

    def __init__(self, **attrs):
        super().__init__(**attrs)
        for key in ("kernel", "stride", "padding", "dilation"):
            value = getattr(self, key)
            ok = value is None or isinstance(value, int) and not isinstance(value, bool) or (
                isinstance(value, list) and 1 <= len(value) <= 6
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
            if not ok or (value is None and key == "kernel"):
                raise AttrError(f"{self.name}: {key} must be an int or a list of ints, got "
                                f"{value!r}")
            low = 0 if key == "padding" else 1
            if value is not None and min([value] if isinstance(value, int) else value) < low:
                raise AttrError(f"{self.name}: {key} must be at least {low}, got {value!r}")

    def geometry(self, spatial):
        """(kernel, stride, dilation, pads before, pads after) as tuples, one per axis."""
        d = len(spatial)
        if not 1 <= d <= 3:
            raise ShapeError(f"{self.name}: input must be (N, C, L), (N, C, H, W) or "
                             f"(N, C, D, H, W), got {d} spatial axes")
        k = _per_axis(self.kernel, d, "kernel", self.name)
        s = k if self.stride is None else _per_axis(self.stride, d, "stride", self.name)
        e = _per_axis(self.dilation, d, "dilation", self.name)
        p = self.padding
        if isinstance(p, list) and len(p) == 2 * d:
            before, after = tuple(p[:d]), tuple(p[d:])
        else:
            before = after = _per_axis(p, d, "padding", self.name)
        for i in range(d):
            span = e[i] * (k[i] - 1) + 1
            if max(before[i], after[i]) >= span:
                raise ShapeError(f"{self.name}: padding {max(before[i], after[i])} on axis "
                                 f"{i + 2} is not smaller than the window ({span})")
        return k, s, e, before, after

    def out_sizes(self, spatial):
        """Output size per spatial axis (None where the input size is symbolic)."""
        k, s, e, before, after = self.geometry(spatial)
        out = []
        for i, size in enumerate(spatial):
            if not isinstance(size, int):
                out.append(None)
                continue
            span = e[i] * (k[i] - 1) + 1
            room = size + before[i] + after[i] - span
            if room < 0:
                raise ShapeError(f"{self.name}: window {span} is larger than the padded "
                                 f"input {size} + {before[i]} + {after[i]} on axis {i + 2}")
            n = (-(-room // s[i]) if self.ceil_mode else room // s[i]) + 1
            if self.ceil_mode and (n - 1) * s[i] >= size + before[i]:
                n -= 1  # the last window would start in the trailing padding
            out.append(n)
        return tuple(out)

    def infer(self, x):
        if len(x) < 3:
            raise ShapeError(f"{self.name}: input must be (N, C, ...spatial), got {fmt_shape(x)}")
        return tuple(x[:2]) + self.out_sizes(tuple(x[2:]))

    # -- the slabs -----------------------------------------------------------------------
    def layout(self, shape):
        """(out sizes, offsets, padded grid size, before pads) for an input of ``shape``."""
        spatial = tuple(shape[2:])
        k, s, e, before, after = self.geometry(spatial)
        out = self.out_sizes(spatial)
        grid = tuple(max(before[i] + spatial[i] + after[i], (out[i] - 1) * s[i]
                         + e[i] * (k[i] - 1) + 1) for i in range(len(spatial)))
        offsets = list(itertools.product(*(range(n) for n in k)))
        return out, offsets, grid, before

    def slab(self, grid, offset, out):
        """Element ``offset`` of every window: a strided view of the padded ``grid``."""
        k, s, e, _, _ = self.geometry(grid.shape[2:])
        index = tuple(slice(j * e[i], j * e[i] + s[i] * (out[i] - 1) + 1, s[i])
                      for i, j in enumerate(offset))
        return grid[(slice(None), slice(None)) + index]

    def embed(self, x, grid_size, before, value):
        """x placed in a (N, C, *grid_size) array of ``value`` at offset ``before``."""
        xp = get_array_module(x)
        grid = xp.full(x.shape[:2] + grid_size, value, dtype=x.dtype)
        index = tuple(slice(b, b + n) for b, n in zip(before, x.shape[2:]))
        grid[(slice(None), slice(None)) + index] = x
        return grid

    def cut(self, grid, shape, before):
        """The inverse of :meth:`embed`: the input's part of a padded grid."""
        index = tuple(slice(b, b + n) for b, n in zip(before, shape[2:]))
        return grid[(slice(None), slice(None)) + index]


@register
class MaxPool(Pool):
    """Maximum of each window over 1-3 spatial axes, PyTorch's MaxPoolNd (first maximum wins)."""

    name = "maxpool"
    rule = Rule("keeps the largest value of each window (1 to 3 spatial axes); the gradient goes "
                "only to that value",
                "{out} = max of each {@kernel} window of {x}",
                {"x": "{∂out} sent to each window's (first) maximum, 0 elsewhere"})

    def forward(self, ctx, x):
        xp = get_array_module(x)
        out, offsets, grid_size, before = self.layout(x.shape)
        low = -xp.inf if x.dtype.kind == "f" else xp.iinfo(x.dtype).min
        grid = self.embed(x, grid_size, before, low)
        real = self.embed(xp.ones(x.shape, dtype=bool), grid_size, before, False)
        slabs = [self.slab(grid, o, out) for o in offsets]
        valid = [self.slab(real, o, out) for o in offsets]
        y, index = first_max(slabs, valid)
        ctx.save(x.shape, index)
        return y

    def backward(self, ctx, gy):
        shape, index = ctx.saved
        xp = get_array_module(gy)
        out, offsets, grid_size, before = self.layout(shape)
        g = xp.zeros(shape[:2] + grid_size, dtype=gy.dtype)
        for n, offset in enumerate(offsets):
            view = self.slab(g, offset, out)
            view += xp.where(index == n, gy, 0)
        return (self.cut(g, shape, before),)


@register
class AvgPool(Pool):
    """Mean of each window over 1-3 spatial axes, PyTorch's AvgPoolNd."""

    name = "avgpool"
    rule = Rule("averages each window (1 to 3 spatial axes); the gradient is shared equally by "
                "the window's elements",
                "{out} = mean of each {@kernel} window of {x}",
                {"x": "{∂out} / (the window's count) spread over each window"})
    attrs = {**Pool.attrs,
             "count_include_pad": Attr("bool", True, "count explicit pads (as zeros) in the "
                                                     "mean; false: only real pixels")}

    def counts(self, xp, shape, dtype):
        """How many elements each window averages, (1, 1, *out)."""
        out, offsets, grid_size, before = self.layout(shape)
        k, s, e, pad_before, pad_after = self.geometry(shape[2:])
        if self.count_include_pad:  # the input and its explicit pads count
            inner = tuple(b + n + a for b, n, a in zip(pad_before, shape[2:], pad_after))
            mask = self.embed(xp.ones((1, 1) + inner, dtype=dtype), grid_size,
                              (0,) * len(inner), 0)
        else:
            mask = self.embed(xp.ones((1, 1) + tuple(shape[2:]), dtype=dtype), grid_size,
                              before, 0)
        return sum(self.slab(mask, o, out) for o in offsets)

    def forward(self, ctx, x):
        xp = get_array_module(x)
        out, offsets, grid_size, before = self.layout(x.shape)
        grid = self.embed(x, grid_size, before, 0)
        total = sum(self.slab(grid, o, out) for o in offsets)
        counts = self.counts(xp, x.shape, x.dtype)
        ctx.save(x.shape, counts)
        return total / counts

    def backward(self, ctx, gy):
        shape, counts = ctx.saved
        xp = get_array_module(gy)
        out, offsets, grid_size, before = self.layout(shape)
        share = gy / counts
        g = xp.zeros(shape[:2] + grid_size, dtype=gy.dtype)
        for offset in offsets:
            view = self.slab(g, offset, out)
            view += share
        return (self.cut(g, shape, before),)

