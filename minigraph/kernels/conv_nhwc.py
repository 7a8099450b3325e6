"""Convolution and max pooling channels-last: the kernels behind the CNN's training speed.

Faster implementations of the registered ``conv2d`` and ``maxpool2d`` rules (``ops/conv.py``),
picked by the training plan (see :mod:`minigraph.kernels`).  Tensors keep their (N, C, H, W)
shape, but conv2d stores its output (N, H, W, C) in memory (PyTorch calls this the
``channels_last`` memory format): values are the same, only the strides differ.

* ``im2col`` copies every window once into an (N*OH*OW, kh*kw*C) matrix whose row (n, r, s)
  and column (i, j, c) hold padded pixel (n, r*stride + i, s*stride + j, c), in contiguous
  runs of C numbers; conv2d is then one matrix product with the (kh*kw*C, O) weight matrix,
  and its rows (n, r, s) are already the output image, channels last: no transpose.
* dw is one product ``cols.T @ gy``; dx is one small product per window offset,
  ``gy @ w[:, :, i, j]``, added onto the image shifted by (i, j) (``col2im``, done without
  ever building the (N*OH*OW, kh*kw*C) column gradient).
* Large arrays come from the plan's workspace (``ctx.empty``), reused across steps.
* Max pooling whose windows tile the image (stride = kernel, no padding) works on the
  (N, C, OH, k, OW, k) tile view: a running maximum forward, and one broadcast comparison
  backward when every window has exactly one maximum (else the plain rule's choice).

Each is tested against the plain op on ordinary and extreme inputs (``tests/test_kernels.py``).
"""
from __future__ import annotations

from ..ops.base import Op, get_array_module
from ..ops.conv import Conv2D, first_max, slab
from .blas import sum_leading


# ==== layout helpers ==============================================================================

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




# ==== conv2d, channels-last =======================================================================

class Conv2DChannelsLast(Op):
    """conv2d (x, w[, b]) with a channels-last output; the plain op's attributes and rules."""

    name = "conv2d(channels-last)"
    inputs = ("x", "w", "b?")

    def __init__(self, plain: Conv2D):
        self.stride, self.padding = plain.stride, plain.padding
        self.check_channels = plain.check_channels

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

    # The work, channels-last; the fused conv+relu+pool calls these too.

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
        need_x, need_w = (ctx.needs_input_grad)[:2]
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


# ==== maxpool2d over tiles ========================================================================

class PoolTiles:
    """Max pooling with k x k windows that tile the image (stride k, no padding)."""

    def __init__(self, kernel):
        self.kernel = kernel

    def tiles(self, x):
        """The (N, C, OH, k, OW, k) view of x (H and W multiples of k)."""
        k = self.kernel
        n, c, h, w = x.shape
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
