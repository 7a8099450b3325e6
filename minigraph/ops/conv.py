"""Convolution and pooling on NCHW images: conv2d, maxpool2d, avgpool2d.

All three slide a window over the (padded) image.  Output size along H (W alike):

    OH = (H + 2 * padding - kh) // stride + 1

Window element (i, j) of output position (r, s) is the padded pixel (r*stride + i, s*stride + j).
Two views of that fact, both without Python loops over pixels or images:

* ``im2col``: all windows copied once into a (C*kh*kw, N*OH*OW) matrix whose row (c, i, j)
  and column (n, r, s) hold pixel (n, c, r*stride + i, s*stride + j); conv2d is then one
  matrix product with the (O, C*kh*kw) weight (and dw, d cols one product each):
      y[n, o, r, s] = b[o] + sum_{c, i, j} w[o, c, i, j] * cols[(c, i, j), (n, r, s)]
* ``slab(x, i, j)``: element (i, j) of every window at once, an (N, C, OH, OW) strided slice.
  Pools loop over the kernel x kernel offsets: maxpool2d keeps a running maximum (padding
  counts as -inf), avgpool2d a running sum divided by kernel^2 (padding counts as 0 and is
  included in the mean, like PyTorch's default).

Backward adds each offset's gradient slab back into the image (``col2im``), kh * kw strided
``+=``; overlapping windows (stride < kernel) simply add up.
"""
from __future__ import annotations

from .base import Attr, AttrError, Op, ShapeError, fmt_shape, get_array_module, register
from .base import same_dim


# ==== helpers =====================================================================================

def pad(x, padding, value=0):
    """x (N, C, H, W) with ``padding`` pixels of ``value`` added on each side of H and W."""
    if padding == 0:
        return x
    xp = get_array_module(x)
    p = padding
    return xp.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=value)


def windows(x, kh, kw, stride):
    """A view (N, C, OH, OW, kh, kw) of all kh x kw windows of x (N, C, H, W); no copy."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    sn, sc, sh, sw = x.strides
    return xp.lib.stride_tricks.as_strided(
        x, shape=(n, c, oh, ow, kh, kw), strides=(sn, sc, sh * stride, sw * stride, sh, sw))


def im2col(x, kh, kw, stride):
    """(C*kh*kw, N*OH*OW): every kh x kw window of x (N, C, H, W) as a column; one copy.

    The strided view has shape (C, kh, kw, N, OH, OW), so the copy reads rows of the image
    in order (contiguous runs of OW pixels when stride is 1).
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    sn, sc, sh, sw = x.strides
    view = xp.lib.stride_tricks.as_strided(
        x, shape=(c, kh, kw, n, oh, ow), strides=(sc, sh, sw, sn, sh * stride, sw * stride))
    return view.reshape(c * kh * kw, n * oh * ow), oh, ow


def slab(x, i, j, stride, oh, ow):
    """Element (i, j) of every window at once: the (N, C, OH, OW) view x[:, :, r*stride + i,
    s*stride + j] over all output positions (r, s); a strided slice, no copy."""
    return x[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]


def unpad(x, padding):
    """Cut ``padding`` pixels off each side of H and W."""
    if padding == 0:
        return x
    return x[:, :, padding:-padding, padding:-padding]


def col2im(cols, padded_shape, stride, padding):
    """The gradient of ``im2col``: cols (C, kh, kw, N, OH, OW) summed back onto the image."""
    xp = get_array_module(cols)
    kh, kw, _, oh, ow = cols.shape[1:]
    g = xp.zeros(padded_shape, dtype=cols.dtype)
    g_cn = g.transpose(1, 0, 2, 3)  # the image seen as (C, N, H, W), like the columns
    for i in range(kh):  # kh * kw iterations, each one strided slab of the image
        for j in range(kw):
            view = slab(g_cn, i, j, stride, oh, ow)
            view += cols[:, i, j]
    return unpad(g, padding)


def out_size(op, size, kernel, stride, padding, x, what):
    """OH from H (or OW from W); None when H is symbolic or unknown."""
    if not (isinstance(size, int) and isinstance(kernel, int)):
        return None
    if size + 2 * padding < kernel:
        raise ShapeError(f"{op}: {what} {kernel} is larger than the padded input "
                         f"{size} + 2*{padding} (input {fmt_shape(x)})")
    return (size + 2 * padding - kernel) // stride + 1


def check_window_attrs(op, kernel=None, stride=1, padding=0):
    """Attribute sanity shared by conv and pools (AttrError at load time)."""
    if kernel is not None and kernel < 1:
        raise AttrError(f"{op}: kernel must be at least 1, got {kernel}")
    if stride < 1:
        raise AttrError(f"{op}: stride must be at least 1, got {stride}")
    if padding < 0:
        raise AttrError(f"{op}: padding must not be negative, got {padding}")


def check_nchw(op, x):
    if len(x) != 4:
        raise ShapeError(f"{op}: input must be (N, C, H, W), got {fmt_shape(x)}")


# ==== convolution =================================================================================

@register
class Conv2D(Op):
    """2-D convolution (cross-correlation, as in every DL framework) of NCHW images.

    x (N, C, H, W), w (O, C, kh, kw), optional b (O,)  ->  y (N, O, OH, OW).
    Gradients: dL/dw[o,c,i,j] = sum_{n,r,s} gy[n,o,r,s] * window[n,c,r,s,i,j];
    dL/db[o] = sum_{n,r,s} gy[n,o,r,s];  dL/dx = col2im(sum_o w[o,c,i,j] * gy[n,o,r,s]).
    """

    name = "conv2d"
    inputs = ("x", "w", "b?")
    attrs = {
        "stride": Attr("int", 1, "step between windows, in pixels"),
        "padding": Attr("int", 0, "zeros added on each side of H and W"),
    }

    def __init__(self, **attrs):
        super().__init__(**attrs)
        check_window_attrs(self.name, stride=self.stride, padding=self.padding)

    def infer(self, x, w, b=None):
        check_nchw(self.name, x)
        if len(w) != 4:
            raise ShapeError(f"conv2d: weight must be (out_channels, in_channels, kh, kw), "
                             f"got {fmt_shape(w)}")
        self.check_channels(x, w)
        if b is not None and (len(b) != 1 or not same_dim(b[0], w[0])):
            raise ShapeError(f"conv2d: bias {fmt_shape(b)} does not match the {w[0]} output "
                             f"channels of weight {fmt_shape(w)}")
        oh = out_size(self.name, x[2], w[2], self.stride, self.padding, x, "kernel height")
        ow = out_size(self.name, x[3], w[3], self.stride, self.padding, x, "kernel width")
        return (x[0], w[0], oh, ow)

    @staticmethod
    def check_channels(x, w):
        if not same_dim(x[1], w[1]):
            raise ShapeError(f"conv2d: input has {x[1]} channels but weight expects {w[1]} "
                             f"(input {fmt_shape(x)}, weight {fmt_shape(w)})")

    def forward(self, ctx, x, w, b=None):
        xp = get_array_module(x)
        y = self.forward_channel_major(ctx, x, w, b)
        return xp.ascontiguousarray(y.transpose(1, 0, 2, 3))

    def backward(self, ctx, gy):
        xp = get_array_module(gy)
        has_bias = ctx.saved[3]
        grads = self.backward_channel_major(ctx, xp.ascontiguousarray(gy.transpose(1, 0, 2, 3)))
        return grads if has_bias else grads[:2]

    # The matrix products work "channel-major": (O, N, OH, OW), one row per output channel.
    # forward/backward above transpose to and from NCHW; fused ops that pool first (see
    # ops/fused.py) stay channel-major and transpose only the 4x smaller pooled tensor.

    def forward_channel_major(self, ctx, x, w, b=None):
        """y (O, N, OH, OW) = w (O, C*kh*kw) @ im2col(x) (+ b)."""
        self.check_channels(x.shape, w.shape)
        o, c, kh, kw = w.shape
        n = x.shape[0]
        x_padded = pad(x, self.padding)
        cols, oh, ow = im2col(x_padded, kh, kw, self.stride)  # (C*kh*kw, N*OH*OW)
        y = w.reshape(o, c * kh * kw) @ cols                   # (O, N*OH*OW)
        if b is not None:
            y += b.reshape(o, 1)
        ctx.save(cols, w, x_padded.shape, b is not None)
        return y.reshape(o, n, oh, ow)

    def backward_channel_major(self, ctx, gy):
        """(dx, dw, db) from gy (O, N, OH, OW), contiguous."""
        cols, w, padded_shape, has_bias = ctx.saved
        ctx.saved = None  # so that cols can be freed as soon as dw no longer needs it
        need = ctx.needs_input_grad or (True, True, True)
        o, c, kh, kw = w.shape
        _, n, oh, ow = gy.shape
        g = gy.reshape(o, n * oh * ow)
        dx = dw = db = None
        if need[1]:
            dw = (g @ cols.T).reshape(w.shape)
        del cols  # the columns and their gradient are the two largest arrays: never both
        if need[0]:  # skipped for the first layer, whose input is the data
            dcols = w.reshape(o, c * kh * kw).T @ g              # (C*kh*kw, N*OH*OW)
            dx = col2im(dcols.reshape(c, kh, kw, n, oh, ow), padded_shape, self.stride,
                        self.padding)
        if has_bias and (len(need) < 3 or need[2]):
            db = g.sum(axis=1)
        return dx, dw, db


# ==== pooling =====================================================================================

class Pool2D(Op):
    """Base of the pools: kernel x kernel windows, ``stride`` defaulting to ``kernel``."""

    attrs = {
        "kernel": Attr("int", doc="window size (kernel x kernel)"),
        "stride": Attr("int", None, "step between windows; default: the kernel size"),
        "padding": Attr("int", 0, "pixels added on each side of H and W (at most kernel // 2)"),
    }

    def __init__(self, **attrs):
        super().__init__(**attrs)
        check_window_attrs(self.name, self.kernel, self.step, self.padding)
        if self.padding > self.kernel // 2:
            raise AttrError(f"{self.name}: padding {self.padding} must be at most half the "
                            f"kernel ({self.kernel} // 2 = {self.kernel // 2})")

    @property
    def step(self):
        """The stride actually used."""
        return self.kernel if self.stride is None else self.stride

    def padded(self, x, value=0):
        """(x padded with ``value``, OH, OW): the input every window reads, and the out size."""
        k, s = self.kernel, self.step
        x_padded = pad(x, self.padding, value)
        return x_padded, (x_padded.shape[2] - k) // s + 1, (x_padded.shape[3] - k) // s + 1

    def infer(self, x):
        check_nchw(self.name, x)
        k, s, p = self.kernel, self.step, self.padding
        return (x[0], x[1], out_size(self.name, x[2], k, s, p, x, "kernel"),
                out_size(self.name, x[3], k, s, p, x, "kernel"))


@register
class MaxPool2D(Pool2D):
    """Maximum of each window; the gradient goes to the maximum (ties share it equally)."""

    name = "maxpool2d"

    def forward(self, ctx, x):
        xp = get_array_module(x)
        k, s = self.kernel, self.step
        x_padded, oh, ow = self.padded(x, value=-xp.inf)
        y = slab(x_padded, 0, 0, s, oh, ow).copy()
        for i in range(k):  # a running maximum over the k * k window elements
            for j in range(k):
                if i or j:
                    xp.maximum(y, slab(x_padded, i, j, s, oh, ow), out=y)
        ctx.save(x_padded, y)
        return y

    def backward(self, ctx, gy):
        x_padded, y = ctx.saved
        xp = get_array_module(gy)
        k, s = self.kernel, self.step
        oh, ow = y.shape[2], y.shape[3]
        hits = [slab(x_padded, i, j, s, oh, ow) == y for i in range(k) for j in range(k)]
        ties = hits[0].astype(gy.dtype)  # how many elements hit each window's max
        for hit in hits[1:]:
            ties += hit
        share = gy / ties
        g = xp.zeros(x_padded.shape, dtype=gy.dtype)
        for (i, j), hit in zip([(i, j) for i in range(k) for j in range(k)], hits):
            view = slab(g, i, j, s, oh, ow)
            if s >= k:  # windows do not overlap: each pixel is written once
                xp.multiply(hit, share, out=view)
            else:
                view += hit * share
        return (unpad(g, self.padding),)


@register
class AvgPool2D(Pool2D):
    """Mean of each window (zero padding included in the count); each pixel gets gy / k^2."""

    name = "avgpool2d"

    def forward(self, ctx, x):
        xp = get_array_module(x)
        k, s = self.kernel, self.step
        x_padded, oh, ow = self.padded(x)
        y = xp.zeros(x.shape[:2] + (oh, ow), dtype=x.dtype)
        for i in range(k):
            for j in range(k):
                y += slab(x_padded, i, j, s, oh, ow)
        ctx.save(x_padded.shape)
        return y / (k * k)

    def backward(self, ctx, gy):
        (padded_shape,) = ctx.saved
        xp = get_array_module(gy)
        k, s = self.kernel, self.step
        oh, ow = gy.shape[2], gy.shape[3]
        share = gy / (k * k)
        g = xp.zeros(padded_shape, dtype=gy.dtype)
        for i in range(k):
            for j in range(k):
                view = slab(g, i, j, s, oh, ow)
                view += share
        return (unpad(g, self.padding),)
