"""The ``lstm`` workload's three training steps: ``models/lstm_weather.yaml`` (LSTM 16 units
over 20 steps of 4 features, linear 16 -> 1, MSE, Adam lr 0.005, batch 64).

* :class:`NumpyLstmStep` -- hand-written NumPy, written to be fast: float32, every buffer
  allocated once; the input projection of all 20 steps is ONE matmul ``(B*T, F) @ (F, 4H)``
  before the loop, the gates' sigmoid is one pass over the 4H columns, the loop keeps only
  the recurrent ``h U``; backward runs the loop in reverse for the gate gradients and then
  gets dW, dU and db as single matmuls over all steps; Adam on one flat array.
* :func:`MinigraphLstmStep` -- the model file through minigraph's Trainer (the training plan).
* :func:`TorchLstmStep` -- ``torch.nn.LSTM(batch_first=True)`` + ``nn.Linear``, Adam.

Weights use minigraph's layout (``W (F, 4H)``, ``U (H, 4H)``, ``b (4H)``, gates i, f, g, o);
PyTorch gets ``weight_ih = W.T``, ``weight_hh = U.T``, ``bias_ih = b`` and ``bias_hh = 0``
(frozen: Adam would otherwise move two biases where minigraph and NumPy have one).
"""
from __future__ import annotations

import numpy as np

from numpy_ref import F32, AdamFlat, FlatParams, _colsum

T, F, H, BATCH = 20, 4, 16, 64
LR = 0.005


def make_data(seed: int = 0):
    """Initial weights (uniform +-1/sqrt(H), as the model's init) and one batch."""
    rng = np.random.default_rng(seed)
    k = 1 / np.sqrt(H)
    weights = {"lstm1.W": rng.uniform(-k, k, (F, 4 * H)), "lstm1.U": rng.uniform(-k, k, (H, 4 * H)),
               "lstm1.b": rng.uniform(-k, k, 4 * H), "out.W": rng.uniform(-0.25, 0.25, (H, 1)),
               "out.b": np.zeros(1)}
    weights = {name: w.astype(np.float32) for name, w in weights.items()}
    data = {"x": rng.standard_normal((BATCH, T, F)).astype(np.float32),
            "t": rng.standard_normal((BATCH, 1)).astype(np.float32)}
    return weights, data


def _sigmoid(a, out, tmp):
    """out = 1 / (1 + e^-a), in place, without overflow warnings for a << 0."""
    np.negative(a, out=out)
    np.minimum(out, F32(80.0), out=out)
    np.exp(out, out=out)
    out += F32(1.0)
    np.reciprocal(out, out=out)
    del tmp


class NumpyLstmStep:
    def __init__(self, weights: dict, data: dict, lr: float = LR):
        self.flat = FlatParams({k: v.shape for k, v in weights.items()})
        for k, v in weights.items():
            self.flat.p[k][...] = v
        self.opt = AdamFlat(self.flat, lr)
        x = np.ascontiguousarray(data["x"], F32)
        self.n = n = x.shape[0]
        self.xt = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(T * n, F)  # time-major
        self.t = np.ascontiguousarray(data["t"], F32)
        self.A = np.empty((T, n, 4 * H), F32)      # pre-activations, then gates, then dA
        self.C = np.empty((T + 1, n, H), F32)      # C[0] = 0
        self.Hs = np.zeros((T + 1, n, H), F32)     # Hs[0] = 0
        self.TC = np.empty((T, n, H), F32)
        self.C[0] = 0
        self.tmp = np.empty((n, 4 * H), F32)
        self.dh, self.dc = np.empty((n, H), F32), np.empty((n, H), F32)
        self.tmpH, self.y = np.empty((n, H), F32), np.empty((n, 1), F32)

    def _forward(self):
        P, A, C, Hs, TC = self.flat.p, self.A, self.C, self.Hs, self.TC
        np.matmul(self.xt, P["lstm1.W"], out=A.reshape(T * self.n, 4 * H))
        A += P["lstm1.b"]
        for s in range(T):
            a = A[s]
            if s:
                a += Hs[s] @ P["lstm1.U"]
            g = a[:, 2 * H:3 * H]
            np.tanh(g, out=self.tmpH)
            _sigmoid(a, a, None)                    # i, f, (g), o as sigmoids
            g[...] = self.tmpH                      # g as tanh
            np.multiply(a[:, H:2 * H], C[s], out=C[s + 1])      # c = f c + i g
            C[s + 1] += a[:, :H] * g
            np.tanh(C[s + 1], out=TC[s])
            np.multiply(a[:, 3 * H:], TC[s], out=Hs[s + 1])     # h = o tanh(c)

    def _backward(self, dy):
        P, G, A, C, Hs, TC = self.flat.p, self.flat.g, self.A, self.C, self.Hs, self.TC
        dh, dc = self.dh, self.dc
        np.matmul(dy, P["out.W"].T, out=dh)
        dc[...] = 0
        for s in reversed(range(T)):
            a = A[s]
            i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
            dc += dh * o * (F32(1) - TC[s] * TC[s])
            do = dh * TC[s] * o * (F32(1) - o)
            di = dc * g * i * (F32(1) - i)
            dg = dc * i * (F32(1) - g * g)
            df = dc * C[s] * f * (F32(1) - f)
            dc *= f
            a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:] = di, df, dg, do
            if s:
                np.matmul(a, P["lstm1.U"].T, out=dh)
        dA = A.reshape(T * self.n, 4 * H)
        np.matmul(self.xt.T, dA, out=G["lstm1.W"])
        np.matmul(Hs[:T].reshape(T * self.n, H).T, dA, out=G["lstm1.U"])
        _colsum(dA, G["lstm1.b"])

    def __call__(self) -> float:
        P, G = self.flat.p, self.flat.g
        self._forward()
        h = self.Hs[T]
        np.matmul(h, P["out.W"], out=self.y)
        self.y += P["out.b"]
        d = self.y - self.t
        loss = float(np.mean(d * d))
        dy = d * F32(2.0 / d.size)
        np.matmul(h.T, dy, out=G["out.W"])
        _colsum(dy, G["out.b"])
        self._backward(dy)
        self.opt.step()
        return loss


def MinigraphLstmStep(weights: dict, data: dict, lr: float = LR):
    from minigraph_impl import ROOT, _Step

    return _Step(ROOT / "models" / "lstm_weather.yaml", weights, data, data["x"].shape[0],
                 {"type": "adam", "lr": lr})


def TorchLstmStep(weights: dict, data: dict, lr: float = LR):
    import torch
    from torch import nn
    from torch_ref import _Step, _load_linear, _t

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.out = nn.LSTM(F, H, batch_first=True), nn.Linear(H, 1)

        def forward(self, x):
            return self.out(self.lstm(x)[0][:, -1])

    net = Net()
    with torch.no_grad():
        net.lstm.weight_ih_l0.copy_(_t(weights["lstm1.W"].T))
        net.lstm.weight_hh_l0.copy_(_t(weights["lstm1.U"].T))
        net.lstm.bias_ih_l0.copy_(_t(weights["lstm1.b"]))
        net.lstm.bias_hh_l0.zero_()
    net.lstm.bias_hh_l0.requires_grad_(False)  # one bias, as minigraph's b (Adam would move both)
    _load_linear(net.out, weights["out.W"], weights["out.b"])
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr)
    return _Step(net, nn.MSELoss(), opt, _t(data["x"]), _t(data["t"]))
