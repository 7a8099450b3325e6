"""Convolution and pooling of (N, C, H, W) images: conv2d, maxpool2d, avgpool2d.

All three slide a window over the (padded) image.  Output size along H (W alike):

    OH = (H + 2 * padding - kh) // stride + 1

Window element (i, j) of output position (r, s) is the padded pixel (r*stride + i, s*stride + j).

conv2d is one matrix product.  ``im2col`` copies every window into a row of an
(N*OH*OW, C*kh*kw) matrix, ordered (c, i, j) like a weight (O, C, kh, kw) flattened to
(O, C*kh*kw):

    y[n, o, r, s] = b[o] + sum_{c, i, j} cols[(n, r, s), (c, i, j)] * w[o, c, i, j]
    cols = im2col(x),   Y = cols @ W^T,   dW = dY^T @ cols,   d cols = dY @ W

and ``col2im`` adds each column's gradient back onto the pixel it was copied from (a pixel
that sits in several windows collects one term from each).

Pools use ``slab(x, i, j)``, element (i, j) of every window at once, an (N, C, OH, OW) strided
slice: maxpool2d walks the kernel x kernel offsets keeping each window's first maximum and
where it was (padding never counts), avgpool2d a running sum divided by kernel^2 (padding
counts as 0 and is included in the mean, like PyTorch's default).  Backward adds each
offset's gradient slab back.
"""
from __future__ import annotations

from .base import Attr, AttrError, Op, ShapeError, fmt_shape, get_array_module, register, Rule
from .base import same_dim


# ==== helpers =====================================================================================

def pad(x, padding, value=0):
    """x (N, C, H, W) with ``padding`` pixels of ``value`` added on each side of H and W."""
    if padding == 0:
        return x
    xp = get_array_module(x)
    p = padding
    return xp.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=value)


def slab(x, i, j, stride, oh, ow):
    """Element (i, j) of every window at once: the (N, C, OH, OW) view x[:, :, r*stride + i,
    s*stride + j] over all output positions (r, s); a strided slice, no copy."""
    return x[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]


def unpad(x, padding):
    """Cut ``padding`` pixels off each side of H and W."""
    if padding == 0:
        return x
    return x[:, :, padding:-padding, padding:-padding]

def im2col(x, kh, kw, stride, padding):
    """(N*OH*OW, C*kh*kw) columns of the image x (N, C, H, W), and OH, OW.

    Row (n, r, s) holds window (r, s) of image n, ordered (c, i, j).
    """
    xp = get_array_module(x)
    x = pad(x, padding)
    n, c, h, w = x.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    cols = xp.empty((n, oh, ow, c, kh, kw), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):  # element (i, j) of every window, (N, C, OH, OW) -> (N, OH, OW, C)
            cols[..., i, j] = slab(x, i, j, stride, oh, ow).transpose(0, 2, 3, 1)
    return cols.reshape(n * oh * ow, c * kh * kw), oh, ow


def col2im(dcols, x_shape, kh, kw, stride, padding):
    """dL/dx from dL/dcols: each column entry's gradient added back onto its pixel."""
    xp = get_array_module(dcols)
    n, c, h, w = x_shape
    oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    dcols = dcols.reshape(n, oh, ow, c, kh, kw)
    dx = xp.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            window = slab(dx, i, j, stride, oh, ow)
            window += dcols[..., i, j].transpose(0, 3, 1, 2)
    return unpad(dx, padding)


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
    rule = Rule("slides each kernel over the image: every output pixel is a kernel times the "
                "window of pixels under it; a weight's gradient sums, over all positions, the "
                "incoming gradient times the pixel it saw",
                "{out}[n,o] = Σ_c {w}[o,c] ⋆ {x}[n,c] + {b}[o]",
                {"x": "Σ_o {∂out}[n,o] ⋆ᵀ {w}[o,c]  (each pixel collects from every window "
                      "it was in)",
                 "w": "Σ_n {∂out}[n,o] ⋆ {x}[n,c]",
                 "b": "Σ_(n,r,s) {∂out}[n,o,r,s]"})
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
        self.check_channels(x.shape, w.shape)
        o, c, kh, kw = w.shape
        cols, oh, ow = im2col(x, kh, kw, self.stride, self.padding)
        y = cols @ w.reshape(o, c * kh * kw).T  # (N*OH*OW, O)
        if b is not None:
            y = y + b
        ctx.save(cols, w, x.shape)
        return y.reshape(x.shape[0], oh, ow, o).transpose(0, 3, 1, 2)

    def backward(self, ctx, gy):
        cols, w, x_shape = ctx.saved
        need_x, need_w = ctx.needs_input_grad[:2]
        o = w.shape[0]
        g = gy.transpose(0, 2, 3, 1).reshape(-1, o)  # (N*OH*OW, O), rows like cols
        dx = dw = None
        if need_w:
            dw = (g.T @ cols).reshape(w.shape)
        if need_x:
            dx = col2im(g @ w.reshape(o, -1), x_shape, w.shape[2], w.shape[3], self.stride,
                        self.padding)
        if len(ctx.needs_input_grad) < 3:  # no bias
            return dx, dw
        return dx, dw, (g.sum(axis=0) if ctx.needs_input_grad[2] else None)


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


def first_max(slabs, valid=None):
    """(y, index): the maximum of each window and which element holds it, as PyTorch picks it.

    ``slabs`` are the window's elements in row-major order (each an array over all windows),
    ``valid`` (optional, like ``slabs``) marks the ones that are not padding.  Walking the
    elements in order, one is taken when it is larger than the maximum so far or is NaN -- so
    the *first* of tied maxima is kept, a NaN counts as the maximum (the last NaN wins), and
    padding is never chosen.  ``index[...] = i * k + j`` names element (i, j) of the window.
    """
    xp = get_array_module(slabs[0])
    y = slabs[0].copy()
    index = xp.zeros(y.shape, dtype=xp.int32)
    chosen_valid = None if valid is None else valid[0].copy()
    for offset in range(1, len(slabs)):
        v = slabs[offset]
        take = (v > y) | xp.isnan(v)
        if valid is not None:  # a real element beats padding, and padding never wins
            take = valid[offset] & (take | ~chosen_valid)
            chosen_valid |= take
        y = xp.where(take, v, y)
        index = xp.where(take, offset, index)
    return y, index


@register
class MaxPool2D(Pool2D):
    """Maximum of each window; the whole gradient goes to one element per window.

    That element is the window's first maximum in row-major order -- what PyTorch's
    ``return_indices`` reports and where PyTorch, Caffe and ONNX send the gradient: tied
    maxima do not share it.  (A NaN counts as the maximum; see :func:`first_max`.)

    (The training plan's fused conv+relu+pool computes the same with fewer array
    operations when the windows tile the image: ``kernels/conv_nhwc.py``.)
    """

    name = "maxpool2d"
    rule = Rule("keeps the largest value of each kernel × kernel window; the gradient goes only"
                " to that value",
                "{out} = max of each {@kernel}×{@kernel} window of {x}",
                {"x": "{∂out} sent to each window's (first) maximum, 0 elsewhere"})

    def forward(self, ctx, x):
        xp = get_array_module(x)
        k, s, p = self.kernel, self.step, self.padding
        x_padded, oh, ow = self.padded(x, value=-xp.inf)
        offsets = [(i, j) for i in range(k) for j in range(k)]
        slabs = [slab(x_padded, i, j, s, oh, ow) for i, j in offsets]
        valid = None
        if p:  # which padded pixels are real
            real = pad(xp.ones(x.shape, dtype=bool), p, value=False)
            valid = [slab(real, i, j, s, oh, ow) for i, j in offsets]
        y, index = first_max(slabs, valid)
        ctx.save(x_padded.shape, index)
        return y

    def backward(self, ctx, gy):
        padded_shape, index = ctx.saved
        xp = get_array_module(gy)
        k, s = self.kernel, self.step
        oh, ow = gy.shape[2], gy.shape[3]
        g = xp.zeros(padded_shape, dtype=gy.dtype)
        for offset, (i, j) in enumerate((i, j) for i in range(k) for j in range(k)):
            view = slab(g, i, j, s, oh, ow)  # element (i, j) of every window
            view += xp.where(index == offset, gy, 0)
        return (unpad(g, self.padding),)


@register
class AvgPool2D(Pool2D):
    """Mean of each window (zero padding included in the count); each pixel gets gy / k^2."""

    name = "avgpool2d"
    rule = Rule("averages each kernel × kernel window; the gradient is shared equally by the "
                "window",
                "{out} = mean of each {@kernel}×{@kernel} window of {x}",
                {"x": "{∂out} / {@kernel}² spread over each window"})

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
