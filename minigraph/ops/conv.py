"""Convolution and pooling of (N, C, H, W) images: conv2d, maxpool2d, avgpool2d.

All three slide a window over the (padded) image.  Output size along H (W alike):

    OH = (H + 2 * padding - kh) // stride + 1

Window element (i, j) of output position (r, s) is the padded pixel (r*stride + i, s*stride + j).

**Convolution works channels-last.**  Shapes are always (N, C, H, W), but conv2d reads its
input through the (N, H, W, C) view ``x.transpose(0, 2, 3, 1)`` and returns its output as such
a view too: an (N, O, OH, OW) array whose memory is ordered (N, OH, OW, O) (PyTorch calls this
the ``channels_last`` memory format).  Values are the same; only the strides differ, and every
op reads any strides.  In that layout:

* ``im2col`` copies every window once into an (N*OH*OW, kh*kw*C) matrix whose row (n, r, s)
  and column (i, j, c) hold padded pixel (n, r*stride + i, s*stride + j, c), in contiguous
  runs of C numbers; conv2d is then one matrix product with the (kh*kw*C, O) weight matrix:
      y[n, r, s, o] = b[o] + sum_{i, j, c} cols[(n, r, s), (i, j, c)] * w[o, c, i, j]
  and its rows (n, r, s) are already the output image, channels last: no transpose.
* dw is one product ``cols.T @ gy``; dx is one small product per window offset,
  ``gy @ w[:, :, i, j]``, added onto the image shifted by (i, j) (``col2im``, done without
  ever building the (N*OH*OW, kh*kw*C) column gradient).

Pools use ``slab(x, i, j)``, element (i, j) of every window at once, an (N, C, OH, OW) strided
slice: maxpool2d keeps a running maximum over the kernel x kernel offsets (padding counts as
-inf), avgpool2d a running sum divided by kernel^2 (padding counts as 0 and is included in the
mean, like PyTorch's default).  Backward adds each offset's gradient slab back.
"""
from __future__ import annotations

from .base import Attr, AttrError, Op, ShapeError, fmt_shape, get_array_module, register
from .base import same_dim, sum_leading


# ==== helpers =====================================================================================

def pad(x, padding, value=0):
    """x (N, C, H, W) with ``padding`` pixels of ``value`` added on each side of H and W."""
    if padding == 0:
        return x
    xp = get_array_module(x)
    p = padding
    return xp.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=value)


def channels_last(x):
    """The (N, H, W, C) view of an (N, C, H, W) array (no copy)."""
    return x.transpose(0, 2, 3, 1)


def channels_first(x):
    """The (N, C, H, W) view of an (N, H, W, C) array (no copy): a channels-last image."""
    return x.transpose(0, 3, 1, 2)


def im2col(ctx, x, kh, kw, stride, padding):
    """(N*OH*OW, kh*kw*C) columns of the (N, H, W, C) image x, and OH, OW; one copy.

    Row (n, r, s) holds window (r, s) of image n, ordered (i, j, c).  Arrays come from
    ``ctx.empty`` (reused across training steps).
    """
    xp = get_array_module(x)
    n, h, w, c = x.shape
    p = padding
    padded = x
    if p:
        padded = ctx.empty(xp, (n, h + 2 * p, w + 2 * p, c), x.dtype)
        for border in (padded[:, :p], padded[:, h + p:], padded[:, :, :p], padded[:, :, w + p:]):
            border[...] = 0
        padded[:, p:p + h, p:p + w] = x
    oh, ow = (padded.shape[1] - kh) // stride + 1, (padded.shape[2] - kw) // stride + 1
    sn, sh, sw, sc = padded.strides
    view = xp.lib.stride_tricks.as_strided(
        padded, shape=(n, oh, ow, kh, kw, c), strides=(sn, sh * stride, sw * stride, sh, sw, sc))
    cols = ctx.empty(xp, (n * oh * ow, kh * kw * c), x.dtype)
    cols.reshape(view.shape)[...] = view
    return cols, oh, ow


def col2im(ctx, g, wmat, image_shape, stride, padding):
    """dL/dx (N, H, W, C) of ``y = im2col(x) @ wmat`` from g = dL/dy (N*OH*OW, O).

    ``wmat`` is the weight as (kh, kw, C, O).  For each window offset (i, j), ``g @ w[i, j].T``
    is the gradient of the pixels at (r*stride + i - padding, s*stride + j - padding): one
    (N*OH*OW, C) product added onto that strided slice of the image (rows and columns that
    land in the padding are left out).  When stride is 1 and the output is as large as the
    image, the centre offset lands on every pixel once: its product is written straight
    into dx, which saves zeroing it.
    """
    xp = get_array_module(g)
    kh, kw, c, _ = wmat.shape
    n, h, w, _ = image_shape
    p = padding
    oh, ow = (h + 2 * p - kh) // stride + 1, (w + 2 * p - kw) // stride + 1
    dx = ctx.empty(xp, (n, h, w, c), g.dtype)
    centre = (p, p) if stride == 1 and (oh, ow) == (h, w) else None
    if centre:
        xp.matmul(g, wmat[centre].T, out=dx.reshape(n * h * w, c))
    else:
        dx[...] = 0
    part = ctx.empty(xp, (n * oh * ow, c), g.dtype)
    image = part.reshape(n, oh, ow, c)
    for i in range(kh):
        r0, r1, y0 = _landing(i, stride, oh, p, h)
        for j in range(kw):
            s0, s1, x0 = _landing(j, stride, ow, p, w)
            if (i, j) == centre or r0 >= r1 or s0 >= s1:
                continue
            xp.matmul(g, wmat[i, j].T, out=part)
            dx[:, y0:y0 + stride * (r1 - r0 - 1) + 1:stride,
               x0:x0 + stride * (s1 - s0 - 1) + 1:stride] += image[:, r0:r1, s0:s1]
    return dx


def _landing(i, stride, out_size, padding, size):
    """Output positions r in [r0, r1) whose window element i lands on the image, not the
    padding (pixel r*stride + i - padding in [0, size)), and the pixel of r0."""
    r0 = max(0, -((i - padding) // stride))                   # ceil((padding - i) / stride)
    r1 = min(out_size, (size - 1 + padding - i) // stride + 1)
    return r0, r1, r0 * stride + i - padding


def is_channels_last(x):
    """Whether the (N, C, H, W) array x is stored (N, H, W, C)."""
    return channels_last(x).flags.c_contiguous


def empty_image(ctx, xp, like, shape, dtype):
    """An (N, C, H, W) array to fill, stored channels-last when ``like`` is."""
    if is_channels_last(like):
        n, c, h, w = shape
        return channels_first(ctx.empty(xp, (n, h, w, c), dtype))
    return ctx.empty(xp, shape, dtype)


def slab(x, i, j, stride, oh, ow):
    """Element (i, j) of every window at once: the (N, C, OH, OW) view x[:, :, r*stride + i,
    s*stride + j] over all output positions (r, s); a strided slice, no copy."""
    return x[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]


def unpad(x, padding):
    """Cut ``padding`` pixels off each side of H and W."""
    if padding == 0:
        return x
    return x[:, :, padding:-padding, padding:-padding]

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

    x (N, C, H, W), w (O, C, kh, kw), optional b (O,)  ->  y (N, O, OH, OW), channels-last.
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
        y = self.forward_nhwc(ctx, x, w)
        if b is not None:
            y += b  # channels are the last axis
        return channels_first(y)

    def backward(self, ctx, gy):
        g = channels_last(gy)
        dx, dw = self.backward_nhwc(ctx, g)
        if len(ctx.needs_input_grad) < 3:  # no bias
            return dx, dw
        return dx, dw, sum_leading(g, 3) if ctx.needs_input_grad[2] else None

    # The work, channels-last; the fused conv+relu+pool of training plans calls these too.

    def forward_nhwc(self, ctx, x, w):
        """y (N, OH, OW, O) = im2col(x) @ w, contiguous, without the bias."""
        self.check_channels(x.shape, w.shape)
        o, c, kh, kw = w.shape
        n, _, h, wd = x.shape
        xp = get_array_module(x)
        cols, oh, ow = im2col(ctx, channels_last(x), kh, kw, self.stride, self.padding)
        wmat = xp.ascontiguousarray(w.transpose(2, 3, 1, 0))  # (kh, kw, C, O), rows like cols
        y = ctx.empty(xp, (len(cols), o), x.dtype)
        xp.matmul(cols, wmat.reshape(kh * kw * c, o), out=y)     # (N*OH*OW, O)
        ctx.save(cols, wmat, (n, h, wd, c))
        return y.reshape(n, oh, ow, o)

    def backward_nhwc(self, ctx, gy):
        """(dx as (N, C, H, W) channels-last, dw) from gy (N, OH, OW, O)."""
        cols, wmat, image_shape = ctx.saved
        ctx.saved = None  # so that cols can be freed as soon as dw no longer needs it
        need_x, need_w = (ctx.needs_input_grad or (True, True))[:2]
        g = gy.reshape(-1, gy.shape[3])  # a copy only if gy is not contiguous channels-last
        dx = dw = None
        if need_w:
            dw = (cols.T @ g).reshape(wmat.shape)  # (kh, kw, C, O) -> (O, C, kh, kw):
            dw = get_array_module(g).ascontiguousarray(dw.transpose(3, 2, 0, 1))
        del cols
        if need_x:  # skipped for the first layer, whose input is the data
            dx = channels_first(col2im(ctx, g, wmat, image_shape, self.stride, self.padding))
        return dx, dw


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

    Training plans that fuse conv2d -> relu -> maxpool2d use ``forward_tiles`` and
    ``backward_tiles`` (windows that tile the image: stride = kernel, no padding), which
    compute the same values with fewer array operations.
    """

    name = "maxpool2d"

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

    # -- windows that tile the image: the fused conv+relu+pool of training plans ------------

    def tiles(self, x):
        """The (N, C, OH, k, OW, k) view of x when the windows tile it exactly, else None."""
        k = self.kernel
        n, c, h, w = x.shape
        if self.step != k or self.padding or h % k or w % k:
            return None
        return x.reshape(n, c, h // k, k, w // k, k)

    def forward_tiles(self, ctx, x):
        """The pooled image (channels-last if x is): a running maximum over the k * k
        elements (NaN propagates, as in ``forward``)."""
        xp = get_array_module(x)
        k = self.kernel
        slabs = [slab(x, i, j, k, x.shape[2] // k, x.shape[3] // k)
                 for i in range(k) for j in range(k)]
        y = empty_image(ctx, xp, x, slabs[0].shape, x.dtype)
        if k == 1:
            y[...] = slabs[0]
        else:
            xp.maximum(slabs[0], slabs[1], out=y)
        for other in slabs[2:]:
            xp.maximum(y, other, out=y)
        return y

    def backward_tiles(self, ctx, x, y, gy, out=None):
        """dL/dx from x, its pooled image y and gy, when the windows tile x: the rule of
        ``backward``, computed by one broadcast comparison of the tiles with y when every
        window has exactly one maximum; else (ties, NaN) by :func:`first_max`.

        ``out=x`` writes the gradient over x itself (x is read before it is overwritten),
        for callers that own x: the fused conv+relu+pool does, saving a buffer.
        """
        xp = get_array_module(gy)
        tiles = self.tiles(x)
        k = self.kernel
        g = empty_image(ctx, xp, x, x.shape, gy.dtype) if out is None else out
        hit = self.tiles(empty_image(ctx, xp, x, x.shape, bool))
        xp.equal(tiles, y[:, :, :, None, :, None], out=hit)
        # Without NaN every window has at least one hit, so as many hits as windows means
        # exactly one per window: the first maximum is the only one.
        if int(xp.count_nonzero(hit)) == y.size and not bool(xp.isnan(y).any()):
            xp.multiply(hit, gy[:, :, :, None, :, None], out=self.tiles(g))
            return g
        del hit
        offsets = [(i, j) for i in range(k) for j in range(k)]
        _, index = first_max([tiles[:, :, :, i, :, j] for i, j in offsets])
        g_tiles = self.tiles(g)
        for offset, (i, j) in enumerate(offsets):  # each element of g is written once
            xp.multiply(index == offset, gy, out=g_tiles[:, :, :, i, :, j])
        return g


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
