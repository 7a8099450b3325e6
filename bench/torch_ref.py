"""The same three training steps in PyTorch (CPU, float32, one thread), written the usual way.

``nn.Sequential`` models, losses from ``torch.nn``, optimizers from ``torch.optim`` with their
defaults; one step is ``zero_grad, forward, loss, backward, step, loss.item()``.  Weights are
copied in from the shared NumPy initial weights (a dense weight is stored transposed in
PyTorch: ``(out, in)``).

When PyTorch is not installed, ``AVAILABLE`` is False and ``REASON`` says why; the scripts
then skip this implementation and print the reason.
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np

try:
    import torch
    from torch import nn
except Exception as exc:  # ImportError, or a broken install
    torch = None
    AVAILABLE = False
    REASON = f"PyTorch is not installed ({exc.__class__.__name__}: {exc})"
else:
    AVAILABLE = True
    REASON = ""
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already started
        pass


def version() -> str | None:
    return torch.__version__ if AVAILABLE else None


def _t(a, dtype=None):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=dtype or np.float32))


def _load_linear(layer, W, b):
    with torch.no_grad():
        layer.weight.copy_(_t(W.T))
        layer.bias.copy_(_t(b))


def _load_conv(layer, W, b):
    with torch.no_grad():
        layer.weight.copy_(_t(W))
        layer.bias.copy_(_t(b))


class _Step:
    def __init__(self, model, loss_fn, optimizer, inputs, target):
        self.model, self.loss_fn, self.opt = model, loss_fn, optimizer
        self.inputs, self.target = inputs, target

    def __call__(self) -> float:
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(self.inputs), self.target)
        loss.backward()
        self.opt.step()
        return loss.item()


def XorStep(weights: dict, data: dict, lr: float = 1.0):
    model = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 1), nn.Sigmoid())
    _load_linear(model[0], weights["W1"], weights["b1"])
    _load_linear(model[2], weights["W2"], weights["b2"])
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    return _Step(model, nn.BCELoss(), opt, _t(data["x"]), _t(data["t"]))


def MlpStep(weights: dict, data: dict, lr: float = 0.1, sizes=(784, 256, 256, 10)):
    d0, d1, d2, d3 = sizes
    model = nn.Sequential(nn.Linear(d0, d1), nn.ReLU(), nn.Linear(d1, d2), nn.ReLU(),
                          nn.Linear(d2, d3))
    for layer, name in ((model[0], "fc1"), (model[2], "fc2"), (model[4], "fc3")):
        _load_linear(layer, weights[f"{name}.W"], weights[f"{name}.b"])
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    labels = torch.from_numpy(np.ascontiguousarray(data["y"], dtype=np.int64))
    return _Step(model, nn.CrossEntropyLoss(), opt, _t(data["x"]), labels)


def CnnStep(weights: dict, data: dict, lr: float = 1e-3):
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(7 * 7 * 64, 10))
    _load_conv(model[0], weights["conv1.W"], weights["conv1.b"])
    _load_conv(model[3], weights["conv2.W"], weights["conv2.b"])
    _load_linear(model[7], weights["fc.W"], weights["fc.b"])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    labels = torch.from_numpy(np.ascontiguousarray(data["y"], dtype=np.int64))
    return _Step(model, nn.CrossEntropyLoss(), opt, _t(data["x"]), labels)


WORKLOADS = {"xor": XorStep, "mlp": MlpStep, "cnn": CnnStep}
