"""Hand-written NumPy training steps: the floor that minigraph is measured against.

Each class is built from the shared initial weights (minigraph's layouts: a dense weight is
``(in, out)``, a conv weight ``(out_ch, in_ch, kh, kw)``) and the batch, and is then called
once per training step; the call returns the step's loss as a Python float.

They are written to be fast, not to teach:

* float32 throughout; every buffer is allocated once, in ``__init__``, and every op writes
  into one with ``out=``;
* params (and gradients, and Adam's moments) live in one flat array each, with per-param
  views into it, so the optimizer update is a handful of whole-array ops;
* softmax + cross-entropy and sigmoid + BCE use their fused gradients (``p - t``);
* the CNN works in NHWC internally (channels last, so im2col rows are contiguous and each
  conv is ONE matmul ``(N*H*W, kh*kw*C) @ (kh*kw*C, O)`` whose result is already NHWC); its
  weights are kept in the matching matrix layouts, converted once at construction;
* im2col is a strided view (``as_strided``) copied once into a preallocated matrix;
* 2x2 stride-2 max-pooling is a reshape view ``(N, H/2, 2, W/2, 2, C)`` and three
  ``maximum`` calls; the bias add and the ReLU are applied after the pool (both commute with
  max), on 4x fewer values; the pool's backward routes the gradient to the window maximum
  with one broadcast compare, a count and one masked multiply (on exact ties, which have
  probability ~0 for these float inputs, the window's first maximum takes it all, as in
  minigraph and PyTorch);
* buffers are reused between forward and backward where the value is dead (dL/dz overwrites
  z), so the memory footprint is tight too;
* the conv backward for the input (col2im) is nine small matmuls, one per window offset,
  each added shifted into the unpadded interior (no (N*H*W, 9*C) column-gradient matrix).
* bias gradients (column sums) are one BLAS matrix-vector product ``ones @ dz``, several
  times faster than ``np.sum(dz, axis=0)`` on a tall, narrow array.

The maths is that of the minigraph / PyTorch models: the loss values agree to float32
rounding (checked by ``common.check_losses`` before any timing).
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # effective only if numpy is not imported yet (the scripts do this too)

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

F32 = np.float32


class FlatParams:
    """Params in one flat float32 array, with named views (and the same for their grads)."""

    def __init__(self, shapes: dict):
        self.shapes = dict(shapes)
        total = sum(math.prod(s) for s in shapes.values())
        self.theta = np.zeros(total, dtype=F32)
        self.grad = np.zeros(total, dtype=F32)
        self.p, self.g = {}, {}
        start = 0
        for name, shape in shapes.items():
            size = math.prod(shape)
            self.p[name] = self.theta[start:start + size].reshape(shape)
            self.g[name] = self.grad[start:start + size].reshape(shape)
            start += size


class SGDFlat:
    """theta <- theta - lr * grad, on the flat arrays (two whole-array ops)."""

    def __init__(self, flat: FlatParams, lr: float):
        self.flat, self.lr = flat, float(lr)

    def step(self):
        g = self.flat.grad
        np.multiply(g, F32(self.lr), out=g)
        np.subtract(self.flat.theta, g, out=self.flat.theta)


class AdamFlat:
    """torch.optim.Adam's update (same eps placement, same bias corrections), flat arrays."""

    def __init__(self, flat: FlatParams, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.flat = flat
        self.lr, (self.b1, self.b2), self.eps = lr, betas, eps
        n = flat.theta.size
        self.m = np.zeros(n, F32)
        self.v = np.zeros(n, F32)
        self.tmp = np.empty(n, F32)
        self.t = 0

    def step(self):
        self.t += 1
        g, m, v, tmp = self.flat.grad, self.m, self.v, self.tmp
        b1, b2 = self.b1, self.b2
        m *= F32(b1)                                   # m <- b1 m + (1 - b1) g
        np.multiply(g, F32(1 - b1), out=tmp)
        m += tmp
        v *= F32(b2)                                   # v <- b2 v + (1 - b2) g^2
        np.multiply(g, g, out=tmp)
        tmp *= F32(1 - b2)
        v += tmp
        bc1 = 1 - b1 ** self.t
        bc2 = 1 - b2 ** self.t
        np.sqrt(v, out=tmp)                            # denom = sqrt(v) / sqrt(bc2) + eps
        tmp *= F32(1 / math.sqrt(bc2))
        tmp += F32(self.eps)
        np.divide(m, tmp, out=tmp)                     # theta <- theta - lr/bc1 * m / denom
        tmp *= F32(self.lr / bc1)
        self.flat.theta -= tmp


def _colsum(a, out):
    """out = a summed over its rows (a bias gradient), as one BLAS matrix-vector product:
    several times faster than np.sum(axis=0) on a tall, narrow array."""
    np.matmul(_ones(a.shape[0]), a, out=out)


_ONES: dict = {}


def _ones(n: int):
    if n not in _ONES:
        _ONES[n] = np.ones(n, F32)
    return _ONES[n]


def _softmax_xent(logits, labels, rows, probs, colmax, rowsum):
    """Loss (float) of softmax cross-entropy, mean over rows; ``probs`` gets dL/dlogits.

    ``logits`` is overwritten (shifted by its row max).
    """
    n = logits.shape[0]
    np.max(logits, axis=1, keepdims=True, out=colmax)
    logits -= colmax
    np.exp(logits, out=probs)
    np.sum(probs, axis=1, keepdims=True, out=rowsum)
    picked = logits[rows, labels]                      # shifted logit of the right class
    loss = (float(np.log(rowsum).sum()) - float(picked.sum())) / n
    probs /= rowsum                                    # softmax
    probs[rows, labels] -= F32(1.0)                    # (softmax - one_hot) / n
    probs *= F32(1.0 / n)
    return loss


# ==== XOR: 2-2-1, sigmoid hidden and output, BCE, SGD lr 1, full batch =========================

class XorStep:
    def __init__(self, weights: dict, data: dict, lr: float = 1.0):
        self.x = np.ascontiguousarray(data["x"], dtype=F32)
        self.t = np.ascontiguousarray(data["t"], dtype=F32)
        n = self.x.shape[0]
        self.flat = FlatParams({"W1": (2, 2), "b1": (2,), "W2": (2, 1), "b2": (1,)})
        for k, v in weights.items():
            self.flat.p[k][...] = v
        self.opt = SGDFlat(self.flat, lr)
        self.h = np.empty((n, 2), F32)
        self.y = np.empty((n, 1), F32)
        self.dh = np.empty((n, 2), F32)
        self.tmp = np.empty((n, 2), F32)
        self.p = np.empty((n, 1), F32)
        self.q = np.empty((n, 1), F32)
        self.tflat = self.t.reshape(-1)
        self.inv_n = F32(1.0 / n)

    def __call__(self) -> float:
        P, G = self.flat.p, self.flat.g
        x, t, h, y, p, q = self.x, self.t, self.h, self.y, self.p, self.q
        # forward: h = sigmoid(x W1 + b1), y = sigmoid(h W2 + b2)
        np.matmul(x, P["W1"], out=h)
        h += P["b1"]
        np.negative(h, out=h)
        np.exp(h, out=h)
        h += F32(1.0)
        np.reciprocal(h, out=h)
        np.matmul(h, P["W2"], out=y)
        y += P["b2"]
        np.negative(y, out=y)
        np.exp(y, out=y)
        y += F32(1.0)
        np.reciprocal(y, out=y)
        # loss = -mean(t ln y + (1 - t) ln(1 - y)), each log clamped at -100 (PyTorch's BCELoss)
        np.log(y, out=p)
        np.maximum(p, F32(-100.0), out=p)
        np.negative(y, out=q)
        np.log1p(q, out=q)
        np.maximum(q, F32(-100.0), out=q)
        p -= q                                         # t ln y + (1-t) ln(1-y) = t (ly - lq) + lq
        loss = -(float(np.dot(self.tflat, p.reshape(-1))) + float(q.sum())) * float(self.inv_n)
        # backward: dL/d(pre-sigmoid output) = (y - t) / n, where y (1 - y) >= 1e-12 (BCELoss
        # divides by max(y (1 - y), 1e-12)); scaled down by y (1 - y) / 1e-12 where it is less
        np.subtract(F32(1.0), y, out=q)
        q *= y
        d2 = y
        d2 -= t
        d2 *= self.inv_n
        if q.min() < F32(1e-12):
            q *= F32(1e12)
            np.minimum(q, F32(1.0), out=q)
            d2 *= q
        np.matmul(h.T, d2, out=G["W2"])
        _colsum(d2, G["b2"])
        np.matmul(d2, P["W2"].T, out=self.dh)
        np.subtract(F32(1.0), h, out=self.tmp)         # sigmoid' = h (1 - h)
        self.tmp *= h
        self.dh *= self.tmp
        np.matmul(x.T, self.dh, out=G["W1"])
        _colsum(self.dh, G["b1"])
        self.opt.step()
        return loss


# ==== MLP: 784-256-256-10, ReLU, softmax cross-entropy, SGD lr 0.1 ==============================

class MlpStep:
    def __init__(self, weights: dict, data: dict, lr: float = 0.1, sizes=(784, 256, 256, 10)):
        self.x = np.ascontiguousarray(data["x"], dtype=F32)
        self.labels = np.ascontiguousarray(data["y"], dtype=np.int64)
        n = self.x.shape[0]
        d0, d1, d2, d3 = sizes
        self.flat = FlatParams({"fc1.W": (d0, d1), "fc1.b": (d1,), "fc2.W": (d1, d2),
                                "fc2.b": (d2,), "fc3.W": (d2, d3), "fc3.b": (d3,)})
        for k, v in weights.items():
            self.flat.p[k][...] = v
        self.opt = SGDFlat(self.flat, lr)
        self.h1 = np.empty((n, d1), F32)
        self.h2 = np.empty((n, d2), F32)
        self.z3 = np.empty((n, d3), F32)
        self.dz3 = np.empty((n, d3), F32)
        self.dh2 = np.empty((n, d2), F32)
        self.dh1 = np.empty((n, d1), F32)
        self.m1 = np.empty((n, d1), bool)
        self.m2 = np.empty((n, d2), bool)
        self.colmax = np.empty((n, 1), F32)
        self.rowsum = np.empty((n, 1), F32)
        self.rows = np.arange(n)

    def __call__(self) -> float:
        P, G = self.flat.p, self.flat.g
        x, h1, h2, z3 = self.x, self.h1, self.h2, self.z3
        np.matmul(x, P["fc1.W"], out=h1)
        h1 += P["fc1.b"]
        np.maximum(h1, F32(0), out=h1)
        np.matmul(h1, P["fc2.W"], out=h2)
        h2 += P["fc2.b"]
        np.maximum(h2, F32(0), out=h2)
        np.matmul(h2, P["fc3.W"], out=z3)
        z3 += P["fc3.b"]
        loss = _softmax_xent(z3, self.labels, self.rows, self.dz3, self.colmax, self.rowsum)
        dz3, dh2, dh1 = self.dz3, self.dh2, self.dh1
        np.matmul(h2.T, dz3, out=G["fc3.W"])
        _colsum(dz3, G["fc3.b"])
        np.matmul(dz3, P["fc3.W"].T, out=dh2)
        np.greater(h2, F32(0), out=self.m2)
        np.multiply(dh2, self.m2, out=dh2)
        np.matmul(h1.T, dh2, out=G["fc2.W"])
        _colsum(dh2, G["fc2.b"])
        np.matmul(dh2, P["fc2.W"].T, out=dh1)
        np.greater(h1, F32(0), out=self.m1)
        np.multiply(dh1, self.m1, out=dh1)
        np.matmul(x.T, dh1, out=G["fc1.W"])
        _colsum(dh1, G["fc1.b"])
        self.opt.step()
        return loss


# ==== CNN: the lecture's mnist_cnn, Adam lr 1e-3 ================================================

def _windows(padded, k, out_h, out_w):
    """(N, OH, OW, k, k, C) view of all k x k windows (stride 1) of an NHWC array; no copy."""
    sn, sh, sw, sc = padded.strides
    n, _, _, c = padded.shape
    return as_strided(padded, shape=(n, out_h, out_w, k, k, c),
                      strides=(sn, sh, sw, sh, sw, sc), writeable=False)


def _pool2_forward(z, m):
    """m = 2x2/stride-2 max-pool of z (N, H, W, C) -> (N, H/2, W/2, C)."""
    n, h, w, c = z.shape
    zr = z.reshape(n, h // 2, 2, w // 2, 2, c)
    np.maximum(zr[:, :, 0, :, 0], zr[:, :, 0, :, 1], out=m)
    np.maximum(m, zr[:, :, 1, :, 0], out=m)
    np.maximum(m, zr[:, :, 1, :, 1], out=m)


def _pool2_backward(z, m, dm, mask):
    """Overwrite z (N, H, W, C) with the gradient: dm at its window's first maximum, else 0.

    Two whole-array ops with broadcasting over the window axes (``mask`` is a bool buffer of
    z's size) when every window has one maximum -- one count tells; with ties, the first
    maximum in row-major order takes the whole gradient (PyTorch's rule, and minigraph's).
    """
    n, h, w, c = z.shape
    zr = z.reshape(n, h // 2, 2, w // 2, 2, c)
    mr = mask.reshape(zr.shape)
    np.equal(zr, m[:, :, None, :, None, :], out=mr)
    if np.count_nonzero(mask) != m.size:  # ties: keep only the first hit of each window
        taken = np.zeros(m.shape, bool)
        for i in (0, 1):
            for j in (0, 1):
                hit = mr[:, :, i, :, j]
                hit &= ~taken
                taken |= hit
    np.multiply(mr, dm[:, :, None, :, None, :], out=zr)


class CnnStep:
    """conv(1->32, 3x3, pad 1) relu pool2 conv(32->64, 3x3, pad 1) relu pool2 flatten linear(10)."""

    def __init__(self, weights: dict, data: dict, lr: float = 1e-3):
        x = np.ascontiguousarray(data["x"], dtype=F32)  # (N, 1, 28, 28)
        self.labels = np.ascontiguousarray(data["y"], dtype=np.int64)
        n, c0, hh, ww = x.shape
        assert c0 == 1 and hh == 28 and ww == 28
        self.x = x
        self.n = n
        c1, c2, k = 32, 64, 3
        self.flat = FlatParams({"conv1.W": (k * k * c0, c1), "conv1.b": (c1,),
                                "conv2.W": (k * k * c1, c2), "conv2.b": (c2,),
                                "fc.W": (7 * 7 * c2, 10), "fc.b": (10,)})
        P = self.flat.p
        # canonical (O, C, kh, kw) -> (kh*kw*C, O): rows in im2col column order
        P["conv1.W"][...] = weights["conv1.W"].transpose(2, 3, 1, 0).reshape(k * k * c0, c1)
        P["conv2.W"][...] = weights["conv2.W"].transpose(2, 3, 1, 0).reshape(k * k * c1, c2)
        # canonical rows ordered (c, h, w) (NCHW flatten) -> (h, w, c) (NHWC flatten)
        P["fc.W"][...] = weights["fc.W"].reshape(c2, 7, 7, 10).transpose(1, 2, 0, 3) \
                                        .reshape(7 * 7 * c2, 10)
        P["conv1.b"][...] = weights["conv1.b"]
        P["conv2.b"][...] = weights["conv2.b"]
        P["fc.b"][...] = weights["fc.b"]
        self.opt = AdamFlat(self.flat, lr=lr)

        self.pad1 = np.zeros((n, 30, 30, c0), F32)      # border stays 0
        self.win1 = _windows(self.pad1, k, 28, 28)
        self.cols1 = np.empty((n, 28, 28, k, k, c0), F32)
        self.z1 = np.empty((n * 28 * 28, c1), F32)       # conv1 output, NHWC; later its grad
        self.m1 = np.empty((n, 14, 14, c1), F32)         # pool1 (before bias and relu)
        self.pad2 = np.zeros((n, 16, 16, c1), F32)       # interior = relu(m1 + b1) = p1
        self.p1 = self.pad2[:, 1:15, 1:15, :]
        self.win2 = _windows(self.pad2, k, 14, 14)
        self.cols2 = np.empty((n, 14, 14, k, k, c1), F32)
        self.z2 = np.empty((n * 14 * 14, c2), F32)
        self.m2 = np.empty((n, 7, 7, c2), F32)
        self.p2 = np.empty((n, 7, 7, c2), F32)
        self.logits = np.empty((n, 10), F32)
        self.dlogits = np.empty((n, 10), F32)
        self.dp2 = np.empty((n, 7, 7, c2), F32)
        self.dp1 = np.empty((n, 14, 14, c1), F32)
        self.dtmp = np.empty((n, 14, 14, c1), F32)
        self.mask1 = np.empty((n, 14, 14, c1), bool)
        self.mask2 = np.empty((n, 7, 7, c2), bool)
        self.pmask1 = np.empty((n, 14, 2, 14, 2, c1), bool)
        self.pmask2 = np.empty((n, 7, 2, 7, 2, c2), bool)
        self.colmax = np.empty((n, 1), F32)
        self.rowsum = np.empty((n, 1), F32)
        self.rows = np.arange(n)

    def __call__(self) -> float:
        P, G = self.flat.p, self.flat.g
        n = self.n
        # ---- forward
        self.pad1[:, 1:29, 1:29, :] = self.x.reshape(n, 28, 28, 1)  # C = 1: NCHW == NHWC
        np.copyto(self.cols1, self.win1)
        cols1 = self.cols1.reshape(n * 784, -1)
        np.matmul(cols1, P["conv1.W"], out=self.z1)
        z1 = self.z1.reshape(n, 28, 28, -1)
        _pool2_forward(z1, self.m1)
        p1 = self.p1
        np.add(self.m1, P["conv1.b"], out=p1)
        np.maximum(p1, F32(0), out=p1)
        np.copyto(self.cols2, self.win2)
        cols2 = self.cols2.reshape(n * 196, -1)
        np.matmul(cols2, P["conv2.W"], out=self.z2)
        z2 = self.z2.reshape(n, 14, 14, -1)
        _pool2_forward(z2, self.m2)
        p2 = self.p2
        np.add(self.m2, P["conv2.b"], out=p2)
        np.maximum(p2, F32(0), out=p2)
        flat = p2.reshape(n, -1)
        np.matmul(flat, P["fc.W"], out=self.logits)
        self.logits += P["fc.b"]
        loss = _softmax_xent(self.logits, self.labels, self.rows, self.dlogits, self.colmax,
                             self.rowsum)
        # ---- backward
        dz = self.dlogits
        np.matmul(flat.T, dz, out=G["fc.W"])
        _colsum(dz, G["fc.b"])
        dp2 = self.dp2
        np.matmul(dz, P["fc.W"].T, out=dp2.reshape(n, -1))
        np.greater(p2, F32(0), out=self.mask2)                  # relu'
        np.multiply(dp2, self.mask2, out=dp2)
        _colsum(dp2.reshape(-1, dp2.shape[-1]), G["conv2.b"])
        _pool2_backward(z2, self.m2, dp2, self.pmask2)        # z2 := dL/dz2
        dz2 = self.z2
        np.matmul(cols2.T, dz2, out=G["conv2.W"])
        self._conv_input_grad(dz2, P["conv2.W"], self.dp1, self.dtmp)
        dp1 = self.dp1
        np.greater(p1, F32(0), out=self.mask1)
        np.multiply(dp1, self.mask1, out=dp1)
        _colsum(dp1.reshape(-1, dp1.shape[-1]), G["conv1.b"])
        _pool2_backward(z1, self.m1, dp1, self.pmask1)        # z1 := dL/dz1
        np.matmul(cols1.T, self.z1, out=G["conv1.W"])
        self.opt.step()
        return loss

    @staticmethod
    def _conv_input_grad(dz, wmat, out, tmp):
        """out (N, S, S, C) = dL/d(conv input), unpadded, from dz (N*S*S, O), 3x3, pad 1.

        The column gradient dz @ W^T, summed back onto the image (col2im), done per window
        offset (i, j): one small matmul dz @ W[i, j]^T (N*S*S, C), contiguous, added to the
        image shifted by (i - 1, j - 1).  Offset (1, 1) covers every pixel once: it is
        written straight into ``out``.  (Faster here than one big matmul followed by nine
        strided adds out of the (N*S*S, 9*C) column matrix.)
        """
        n, size, _, c = out.shape
        w = wmat.reshape(3, 3, c, -1)                  # rows (i, j, c) -> (i, j, c, O)
        np.matmul(dz, w[1, 1].T, out=out.reshape(n * size * size, c))
        flat_tmp = tmp.reshape(n * size * size, c)
        for i in range(3):
            for j in range(3):
                if i == 1 and j == 1:
                    continue
                np.matmul(dz, w[i, j].T, out=flat_tmp)
                # output (r, s) of offset (i, j) lands on pixel (r + i - 1, s + j - 1)
                r0, r1 = max(0, 1 - i), min(size, size + 1 - i)
                s0, s1 = max(0, 1 - j), min(size, size + 1 - j)
                out[:, r0 + i - 1:r1 + i - 1, s0 + j - 1:s1 + j - 1, :] += \
                    tmp[:, r0:r1, s0:s1, :]


WORKLOADS = {"xor": XorStep, "mlp": MlpStep, "cnn": CnnStep}
