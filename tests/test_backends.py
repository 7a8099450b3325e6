"""The op suite and a few training steps, run on every backend and compared with NumPy.

The CuPy half runs where a CUDA GPU and CuPy are present and skips, saying why, elsewhere.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from minigraph.backend import _import_cupy, select, to_numpy
from minigraph.errors import BackendError
from minigraph.ops import Context, get_op

from op_cases import all_cases

CUPY, WHY_NOT = _import_cupy()
BACKENDS = [
    pytest.param("numpy", id="numpy"),
    pytest.param("cupy", id="cupy",
                 marks=pytest.mark.skipif(CUPY is None, reason=f"CuPy half skipped: {WHY_NOT}")),
]
ROOT = Path(__file__).resolve().parent.parent
OP_PARAMS = [pytest.param(name, case, id=cid) for name, case, cid in all_cases()
             if not case.training]  # dropout masks come from each backend's own generator


def _run(backend, name, case):
    xp = backend.xp
    xs = [backend.asarray(x, dtype=x.dtype if x.dtype.kind in "iu" else "float32")
          for x in case.inputs]
    op = get_op(name)(**case.attrs)
    ctx = Context(training=False, rng=xp.random.default_rng(0),
                  needs_input_grad=(True,) * len(xs))
    y = op.forward(ctx, *xs)
    gy = backend.asarray(np.random.default_rng(1).standard_normal(y.shape), dtype="float32")
    grads = op.backward(ctx, gy) if op.differentiable else ()
    return to_numpy(y), [None if g is None else to_numpy(g) for g in grads]


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("name, case", OP_PARAMS)
def test_op_agrees_with_numpy_in_float32(backend_name, name, case):
    y_ref, g_ref = _run(select("numpy"), name, case)
    y, g = _run(select(backend_name), name, case)
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-5)
    assert len(g) == len(g_ref)
    for a, b in zip(g, g_ref):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


SMALL_MODELS = ["xor", "xor_wide_deep", "circles", "linear_regression", "noisy_line",
                "or_perceptron", "polynomial_regression", "multivariable_regression"]


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("model", SMALL_MODELS)
def test_training_steps_agree_with_numpy(backend_name, model):
    from minigraph.api import run_model

    path = ROOT / "models" / f"{model}.yaml"
    if not path.exists():
        pytest.skip(f"models/{model}.yaml is not in this tree")
    ref = run_model(path, epochs=3, backend="numpy")
    got = run_model(path, epochs=3, backend=backend_name)
    for name, value in ref.trainer.params.items():
        np.testing.assert_allclose(to_numpy(got.trainer.params[name]), to_numpy(value),
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_mnist_cnn_steps_agree_with_numpy(backend_name):
    from conftest import mnist_dir
    from minigraph.api import run_model

    data = mnist_dir()
    path = ROOT / "models" / "mnist_cnn.yaml"
    if data is None or not path.exists():
        pytest.skip("MNIST data (MINIGRAPH_DATA) or models/mnist_cnn.yaml not available")
    d = yaml.safe_load(path.read_text())
    d["data"]["train"]["limit"] = 200
    d["data"].pop("test", None)
    runs = [run_model(d, epochs=1, backend=b, data_dir=data) for b in ("numpy", backend_name)]
    for name, value in runs[0].trainer.params.items():
        np.testing.assert_allclose(to_numpy(runs[1].trainer.params[name]), to_numpy(value),
                                   rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(CUPY is not None, reason="CuPy with a GPU is present here")
def test_cupy_without_gpu_says_which_and_how_to_install():
    with pytest.raises(BackendError) as info:
        select("cupy")
    message = str(info.value)
    assert message.startswith("--backend cupy is not usable: ")
    assert "pip install 'minigraph[gpu]'" in message


def test_auto_falls_back_to_numpy_without_a_gpu(monkeypatch):
    backend = select("auto")
    assert backend.name == ("cupy" if CUPY is not None else "numpy")


def test_backend_from_environment(monkeypatch):
    monkeypatch.setenv("MINIGRAPH_BACKEND", "numpy")
    assert select().name == "numpy"
    monkeypatch.setenv("MINIGRAPH_BACKEND", "tpu")
    with pytest.raises(BackendError, match="unknown backend 'tpu'"):
        select()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [0, 1, 0.1, 1e-7])
def test_constant_gives_the_results_of_the_python_number(dtype, value):
    from minigraph.kernels.blas import constant

    x = np.linspace(-2, 2, 7).astype(dtype)
    c = constant(value, x)
    assert c.shape == () and c.dtype == x.dtype and constant(value, x) is c  # made once
    for got, want in [(c - x, value - x), (x * c, x * value), (np.logaddexp(c, x),
                                                                np.logaddexp(value, x))]:
        assert got.dtype == want.dtype == x.dtype
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError):
        c += 1  # shared: nobody may write into it
