"""Convolution and pooling on NCHW images: conv2d, maxpool2d, avgpool2d.

All three look at the image through a sliding window.  ``windows`` builds, without copying,
a view of every window: shape (N, C, OH, OW, kh, kw), where element [n, c, r, s, i, j] is the
padded pixel [n, c, r*stride + i, s*stride + j]  ("im2col" as a strided view).

* conv2d:    y[n, o, r, s] = b[o] + sum_{c, i, j} w[o, c, i, j] * window[n, c, r, s, i, j],
             one ``tensordot`` over (c, i, j);
* maxpool2d: the maximum of each window (padding counts as -inf);
* avgpool2d: the mean of each window (padding counts as 0 and is included in the mean).

Output size along H (W alike): OH = (H + 2 * padding - kh) // stride + 1.

Backward turns gradients of windows back into a gradient of the image (``col2im``): window
element (i, j) of output position (r, s) came from padded pixel (r*stride + i, s*stride + j),
so a loop over the kh*kw kernel offsets adds each offset's slab into a strided slice.
Overlapping windows (stride < kernel) simply add up.
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


def col2im(cols, x_shape, stride, padding):
    """The gradient of ``windows``: cols (N, C, kh, kw, OH, OW) summed back to x (N, C, H, W)."""
    xp = get_array_module(cols)
    n, c, kh, kw, oh, ow = cols.shape
    h, w = x_shape[2], x_shape[3]
    g = xp.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for i in range(kh):  # kh * kw iterations, each one strided slab of the image
        for j in range(kw):
            g[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += cols[:, :, i, j]
    return g[:, :, padding:padding + h, padding:padding + w]


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
        self.check_channels(x.shape, w.shape)
        x_padded = pad(x, self.padding)
        patches = windows(x_padded, w.shape[2], w.shape[3], self.stride)  # (N, C, OH, OW, kh, kw)
        y = xp.tensordot(patches, w, axes=([1, 4, 5], [1, 2, 3]))        # (N, OH, OW, O)
        if b is not None:
            y += b
        ctx.save(x_padded, w, b is not None, x.shape)
        return xp.ascontiguousarray(y.transpose(0, 3, 1, 2))

    def backward(self, ctx, gy):
        x_padded, w, has_bias, x_shape = ctx.saved
        xp = get_array_module(gy)
        need = ctx.needs_input_grad or (True, True, True)
        dx = dw = db = None
        if need[0]:  # skipped for the first layer, whose input is the data
            cols = xp.tensordot(w, gy, axes=([0], [1]))  # (C, kh, kw, N, OH, OW)
            dx = col2im(cols.transpose(3, 0, 1, 2, 4, 5), x_shape, self.stride, self.padding)
        if need[1]:
            patches = windows(x_padded, w.shape[2], w.shape[3], self.stride)
            dw = xp.tensordot(gy, patches, axes=([0, 2, 3], [0, 2, 3]))  # (O, C, kh, kw)
        if not has_bias:
            return dx, dw
        if len(need) < 3 or need[2]:
            db = gy.sum(axis=(0, 2, 3))
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
        x_padded = pad(x, self.padding, value=-xp.inf)
        y = windows(x_padded, self.kernel, self.kernel, self.step).max(axis=(4, 5))
        ctx.save(x_padded, y, x.shape)
        return y

    def backward(self, ctx, gy):
        x_padded, y, x_shape = ctx.saved
        patches = windows(x_padded, self.kernel, self.kernel, self.step)
        is_max = patches == y[..., None, None]                 # (N, C, OH, OW, k, k)
        ties = is_max.sum(axis=(4, 5)).astype(gy.dtype)
        cols = is_max * (gy / ties)[..., None, None]
        return (col2im(cols.transpose(0, 1, 4, 5, 2, 3), x_shape, self.step, self.padding),)


@register
class AvgPool2D(Pool2D):
    """Mean of each window (zero padding included in the count); each pixel gets gy / k^2."""

    name = "avgpool2d"

    def forward(self, ctx, x):
        y = windows(pad(x, self.padding), self.kernel, self.kernel, self.step).mean(axis=(4, 5))
        ctx.save(x.shape)
        return y

    def backward(self, ctx, gy):
        (x_shape,) = ctx.saved
        xp = get_array_module(gy)
        k = self.kernel
        n, c, oh, ow = gy.shape
        cols = xp.broadcast_to((gy / (k * k))[:, :, None, None], (n, c, k, k, oh, ow))
        return (col2im(cols, x_shape, self.step, self.padding),)
