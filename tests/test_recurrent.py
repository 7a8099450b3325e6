"""Recurrent layers: rnn, lstm and gru unrolled through time.

* PyTorch parity (needs ``make torch``; skipped with a reason without it): outputs and every
  gradient (params, x, initial states) equal ``torch.nn.RNN``/``LSTM``/``GRU`` (batch_first)
  with the same weights mapped (W = weight_ih.T, U = weight_hh.T, and the biases), float64,
  to 1e-6 relative, for several T, batch and hidden sizes, with and without initial states,
  for both cell forms.
* Without PyTorch: the compact cell ops and the primitive unroll compute the same numbers,
  the params are created once and read by every step, step groups are named ``NAME/tK``,
  and the layers' shape errors name what is wrong.
"""
from __future__ import annotations

import numpy as np
import pytest

import minigraph as mg
from minigraph.errors import ModelError


def recurrent_model(op, cell="compact", T=5, F=3, H=4, return_sequences=False, initial=False):
    inputs = {"x": {"shape": ["batch", T, F]}}
    reads = ["x"]
    if initial:
        for name in (("h0", "c0") if op == "lstm" else ("h0",)):
            inputs[name] = {"shape": ["batch", H]}
            reads.append(name)
    return {"minigraph": 1, "name": f"{op}_{cell}", "inputs": inputs,
            "nodes": [{"name": "r1", "op": op, "inputs": reads, "outputs": ["h"],
                       "attrs": {"units": H, "cell": cell,
                                 "return_sequences": return_sequences}},
                      {"name": "w", "op": "mul", "inputs": ["h", "R"], "outputs": ["hR"]},
                      {"name": "s", "op": "sum", "inputs": ["hR"], "outputs": ["L"]}],
            "constants": {"R": {"value": _weights(T, H, return_sequences).tolist()}},
            "outputs": ["h"], "loss": "L"}


def _weights(T, H, return_sequences):
    """Fixed random weights R of L = sum(h * R), broadcast over the batch."""
    shape = (T, H) if return_sequences else (H,)
    return np.random.default_rng(7).standard_normal(shape)


def run(op, cell, feeds, params=None, **kw):
    """(outputs, grads of params and feeds) of one float64 pass."""
    model = mg.Model(mg.load_graph(recurrent_model(op, cell, **kw)), dtype="float64")
    if params is not None:
        model.set_params(params)
    out = model.forward(feeds)["h"]
    grads = model.backward()
    grads.update({k: model.grad(k) for k in feeds})
    return model, out, grads


def make_feeds(op, T, F, H, batch, initial, seed=0):
    rng = np.random.default_rng(seed)
    feeds = {"x": rng.standard_normal((batch, T, F))}
    if initial:
        feeds["h0"] = rng.standard_normal((batch, H))
        if op == "lstm":
            feeds["c0"] = rng.standard_normal((batch, H))
    return feeds


# ==== PyTorch parity ==============================================================================

SIZES = [(1, 1, 1, 1), (5, 3, 4, 2), (12, 2, 7, 3), (20, 4, 16, 5)]  # T, F, H, batch


def torch_run(op, params, feeds, H, return_sequences):
    import torch

    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[op]
    F = feeds["x"].shape[2]
    net = cls(F, H, batch_first=True).double()
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.from_numpy(params["r1.W"].T))
        net.weight_hh_l0.copy_(torch.from_numpy(params["r1.U"].T))
        if op == "gru":  # two biases, as PyTorch has them
            net.bias_ih_l0.copy_(torch.from_numpy(params["r1.b"]))
            net.bias_hh_l0.copy_(torch.from_numpy(params["r1.bh"]))
        else:  # one bias: PyTorch's two only ever appear summed
            net.bias_ih_l0.copy_(torch.from_numpy(params["r1.b"] * 0.25))
            net.bias_hh_l0.copy_(torch.from_numpy(params["r1.b"] * 0.75))
    ts = {k: torch.from_numpy(v).requires_grad_(True) for k, v in feeds.items()}
    if "h0" in ts:
        state = (ts["h0"][None], ts["c0"][None]) if op == "lstm" else ts["h0"][None]
        seq, _ = net(ts["x"], state)
    else:
        seq, _ = net(ts["x"])
    out = seq if return_sequences else seq[:, -1]
    r = torch.from_numpy(_weights(feeds["x"].shape[1], H, return_sequences))
    (out * r).sum().backward()
    grads = {k: t.grad.numpy() for k, t in ts.items()}
    grads["r1.W"] = net.weight_ih_l0.grad.numpy().T
    grads["r1.U"] = net.weight_hh_l0.grad.numpy().T
    grads["r1.b"] = net.bias_ih_l0.grad.numpy()  # d/d(bias_ih) = d/d(bias_hh) = d/db ...
    if op == "gru":
        grads["r1.bh"] = net.bias_hh_l0.grad.numpy()  # ... except in a GRU
    return out.detach().numpy(), grads


# every size with the compact cells; the primitive unroll on one size (it equals the compact
# form everywhere: test_compact_cells_equal_the_primitive_unroll)
FORMS = [(sizes, "compact") for sizes in SIZES] + [(SIZES[2], "primitive")]


@pytest.mark.parametrize("initial", [False, True], ids=["zero-state", "initial-state"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("sizes, cell", FORMS,
                         ids=lambda v: "T{}-F{}-H{}-B{}".format(*v) if isinstance(v, tuple) else v)
@pytest.mark.parametrize("op", ["rnn", "lstm", "gru"])
def test_matches_pytorch(op, sizes, cell, return_sequences, initial):
    pytest.importorskip("torch", reason="PyTorch not installed: parity tests need `make torch`")
    T, F, H, batch = sizes
    feeds = make_feeds(op, T, F, H, batch, initial)
    model, out, grads = run(op, cell, feeds, T=T, F=F, H=H, initial=initial,
                            return_sequences=return_sequences)
    params = {k: model.value(k) for k in model.params}
    want, want_grads = torch_run(op, params, feeds, H, return_sequences)
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-12)
    assert set(grads) <= set(want_grads)
    for name, want_grad in want_grads.items():
        # U is never read when T = 1 and h0 = 0: no gradient here, zeros in PyTorch
        g = grads.get(name, np.zeros_like(want_grad))
        np.testing.assert_allclose(g, want_grad, rtol=1e-6, atol=1e-12, err_msg=name)


# ==== without PyTorch ==============================================================================

@pytest.mark.parametrize("initial", [False, True], ids=["zero-state", "initial-state"])
@pytest.mark.parametrize("op", ["rnn", "lstm", "gru"])
def test_compact_cells_equal_the_primitive_unroll(op, initial):
    feeds = make_feeds(op, 6, 3, 4, 2, initial, seed=3)
    kw = {"T": 6, "F": 3, "H": 4, "initial": initial, "return_sequences": True}
    compact, out_c, grads_c = run(op, "compact", feeds, **kw)
    params = {k: compact.value(k) for k in compact.params}
    _, out_p, grads_p = run(op, "primitive", feeds, params, **kw)
    np.testing.assert_allclose(out_c, out_p, rtol=1e-12, atol=1e-14)
    for name in grads_c:
        np.testing.assert_allclose(grads_c[name], grads_p[name], rtol=1e-10, atol=1e-13,
                                   err_msg=name)


@pytest.mark.parametrize("op, shapes", [
    ("rnn", {"r1.W": (3, 4), "r1.U": (4, 4), "r1.b": (4,)}),
    ("lstm", {"r1.W": (3, 16), "r1.U": (4, 16), "r1.b": (16,)}),
    ("gru", {"r1.W": (3, 12), "r1.U": (4, 12), "r1.b": (12,), "r1.bh": (12,)}),
])
@pytest.mark.parametrize("cell", ["compact", "primitive"])
def test_shared_params_are_made_once_and_read_by_every_step(op, shapes, cell):
    graph = mg.load_graph(recurrent_model(op, cell, T=5))
    assert {k: tuple(p.shape) for k, p in graph.params.items()} == shapes
    groups = graph.groups()
    assert [g for g in groups if g.startswith("r1/")] == [f"r1/t{t}" for t in range(1, 6)]
    readers = {g: {t for n in nodes for t in n.inputs} for g, nodes in groups.items()}
    for t in range(1, 6):
        assert {"r1.W", "r1.b"} <= readers[f"r1/t{t}"]
        assert ("r1.U" in readers[f"r1/t{t}"]) == (t > 1)  # h0 = 0: step 1 does not read U
    assert graph.tensors["h"].shape == ("batch", 4)


def test_return_sequences_stacks_every_step():
    graph = mg.load_graph(recurrent_model("lstm", T=7, H=3, return_sequences=True))
    assert graph.tensors["h"].shape == ("batch", 7, 3)
    assert graph.node("r1.stack").op_name == "stack"


@pytest.mark.parametrize("change, message", [
    (lambda m: m["inputs"]["x"].update(shape=["batch", 5]), "needs x of shape"),
    (lambda m: m["inputs"]["x"].update(shape=["batch", "T", 3]), "must be a fixed size"),
    (lambda m: m["nodes"][0]["attrs"].update(cell="fused"), "must be one of"),
    (lambda m: (m["inputs"].update(h0={"shape": ["batch", 4]}),
                m["nodes"][0]["inputs"].append("h0")), "give every initial state"),
    (lambda m: (m["inputs"].update(h0={"shape": ["batch", 5]}, c0={"shape": ["batch", 4]}),
                m["nodes"][0]["inputs"].extend(["h0", "c0"])), "must be (batch, 4)"),
])
def test_layer_mistakes_are_named(change, message):
    model = recurrent_model("lstm")
    change(model)
    with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
        mg.load_graph(model)


def test_gradients_of_shared_params_are_sums_over_steps():
    """dL/dW of the unrolled layer is the sum of what each step's cell sends to W."""
    feeds = make_feeds("rnn", 4, 2, 3, 2, False, seed=5)
    model, _, grads = run("rnn", "compact", feeds, T=4, F=2, H=3)
    graph = model.graph
    cells = [n for n in graph.nodes if n.op_name == "rnn_cell"]
    assert len(cells) == 4 and all("r1.W" in n.inputs for n in cells)
    # the engine's fan-out: finite differences of the whole loss agree with the sum
    eps, W = 1e-6, model.value("r1.W")
    numeric = np.zeros_like(W)
    for i in np.ndindex(W.shape):
        for sign in (1, -1):
            Wp = W.copy()
            Wp[i] += sign * eps
            model.set_params({"r1.W": Wp})
            model.forward(feeds)
            numeric[i] += sign * float(model.value("L")) / (2 * eps)
    np.testing.assert_allclose(grads["r1.W"], numeric, rtol=1e-6, atol=1e-9)
