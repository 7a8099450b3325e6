"""Hostile data sections: every case ends in ONE located message (exit 2), fast, small.

Each row builds a model file (and maybe a hostile data file) in tmp_path.  Through the API the
error must be a MinigraphError with a location; through ``minigraph run`` the exit code is 2,
the output is one line ``FILE:LINE:COL: message`` and there is no traceback.  Every case must
finish within five seconds of CPU time (the process's own, so a loaded machine does not fail it;
a hang or a blow-up still does), and file cases may not allocate more than 64 MiB.
"""
from __future__ import annotations

import gzip
import io
import os
import re
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import minigraph as mg
from minigraph import limits
from minigraph.cli.main import main
from minigraph.errors import MinigraphError
from minigraph.api import run_model

XOR = {"inline": {"x": [[0, 0], [0, 1], [1, 0], [1, 1]], "t": [[0], [1], [1], [0]]}}


def model(data, *, inputs=None, nodes=None, params=None, constants=None, train=True):
    m = {"minigraph": 1, "name": "hostile",
         "inputs": inputs or {"x": {"shape": ["batch", 2]}, "t": {"shape": ["batch", 1]}},
         "params": params if params is not None else {"W": {"shape": [2, 1], "init": "zeros"}},
         "nodes": nodes or [{"name": "fc", "op": "matmul", "inputs": ["x", "W"], "outputs": ["y"]},
                            {"name": "loss", "op": "mse", "inputs": ["y", "t"],
                             "outputs": ["L"]}],
         "outputs": ["y"], "loss": "L", "data": data}
    if constants:
        m["constants"] = constants
    if train:
        m["train"] = {"epochs": 1, "optimizer": {"type": "sgd", "lr": 0.1}}
    return m


def write_npy_header(path, shape, descr="<f8", data=b""):
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": descr, "fortran_order": False, "shape": shape})
        f.write(data)


def npz_with_member(path, name, payload):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(name, payload)


def header_bytes(shape, descr="<f8"):
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False,
                                             "shape": shape})
    return f.getvalue()


def corrupt_npz(path):
    np.savez_compressed(path, x=np.random.default_rng(0).normal(size=(200, 2)),
                        t=np.zeros((200, 1)))
    raw = bytearray(path.read_bytes())
    for i in range(60, 400):
        raw[i] ^= 0x5A
    path.write_bytes(bytes(raw))


def sparse(path, size):
    with open(path, "wb") as f:
        f.truncate(size)


# (id, file name or None, writer(path) or None, data section (FILE = the file's path))
FILE_CASES = [
    ("csv-not-utf8", "d.csv", lambda p: p.write_bytes(b"1,2,3\n\xff\xfe,1,2\n"), None),
    ("csv-field-too-long", "d.csv", lambda p: p.write_text("1," + "9" * 200_000 + ",3\n"), None),
    ("csv-huge", "d.csv", lambda p: sparse(p, limits.MAX_CSV_BYTES + 1), None),
    ("csv-empty-file", "d.csv", lambda p: p.write_text(""), None),
    ("csv-no-rows", "d.csv", lambda p: p.write_text("# nothing\n\n"), None),
    ("csv-header-only", "d.csv", lambda p: p.write_text("a,b,c\n"), None),
    ("csv-nan", "d.csv", lambda p: p.write_text("1,2,nan\n"), None),
    ("csv-1e400", "d.csv", lambda p: p.write_text("1,2,1e400\n"), None),
    ("csv-too-big-for-float32", "d.csv", lambda p: p.write_text("1,2,1e300\n"), None),
    ("csv-nul-byte", "d.csv", lambda p: p.write_bytes(b"1,2,3\n1,\x00,3\n"), None),
    ("npy-damaged", "d.npy", lambda p: p.write_bytes(b"\x93NUMPY\x01\x00garbage"), None),
    ("npy-not-npy", "d.npy", lambda p: p.write_bytes(b"hello world"), None),
    ("npy-huge-header", "d.npy", lambda p: write_npy_header(p, (10**6, 10**6)), None),
    ("npy-10e10", "d.npy", lambda p: write_npy_header(p, (10**10,)), None),
    ("npy-truncated", "d.npy", lambda p: write_npy_header(p, (1000, 3), data=b"\0" * 10), None),
    ("npy-empty", "d.npy", lambda p: np.save(p, np.zeros((0, 3))), None),
    ("npy-object", "d.npy", lambda p: write_npy_header(p, (3,), descr="|O"), None),
    ("npz-damaged", "d.npz", lambda p: p.write_bytes(b"PK\x03\x04garbage"), None),
    ("npz-corrupt-member", "d.npz", corrupt_npz, None),
    ("npz-huge-member", "d.npz",
     lambda p: npz_with_member(p, "x.npy", header_bytes((10**6, 10**6))), None),
    ("npz-empty-arrays", "d.npz", lambda p: np.savez(p, x=np.zeros((0, 2)), t=np.zeros((0, 1))),
     None),
    ("fifo", "d.csv", lambda p: os.mkfifo(p), None),
    ("folder", "d.csv", lambda p: p.mkdir(), None),
    ("symlink-loop", "d.csv", lambda p: os.symlink(p.name, p), None),
    ("missing", "d.csv", None, None),
    ("dev-zero", None, None, {"train": {"file": "/dev/zero"}}),
    ("dev-zero-npy", None, None, {"train": {"file": "/dev/zero.npy"}}),
    ("nosuchuser", None, None, {"train": {"file": "~nosuchuser_minigraph/d.csv"}}),
    ("nul-in-path", None, None, {"train": {"file": "a\0b.csv"}}),
    ("newline-in-path", None, None, {"train": {"file": "we\nird.csv"}}),
    ("path-is-a-list", None, None, {"train": {"file": ["d.csv"]}}),
]

BIG = 10 ** 400
OPTION_CASES = [
    ("gen-n-huge", {"train": {"generator": "circles", "n": 10**12}}),
    ("gen-n-10e400", {"train": {"generator": "circles", "n": BIG}}),
    ("gen-spiral-classes", {"train": {"generator": "spiral", "classes": 10**9}}),
    ("gen-spiral-one-hot", {"train": {"generator": "spiral", "classes": 1000, "n": 1000,
                                      "one_hot": True}}),
    ("gen-linear-huge-w", {"train": {"generator": "linear", "w": [1.0] * (limits.MAX_TERMS + 1)}}),
    ("gen-linear-w-times-n", {"train": {"generator": "linear", "w": [1.0] * 1000,
                                        "n": 1_000_000}}),
    ("gen-poly-huge-coefficients", {"train": {"generator": "polynomial",
                                              "coefficients": [1.0] * (limits.MAX_TERMS + 1)}}),
    ("gen-poly-overflow", {"train": {"generator": "polynomial", "high": 1e6,
                                     "coefficients": [1.0] * 999}}),
    ("gen-noise-10e400", {"train": {"generator": "circles", "noise": BIG}}),
    ("gen-noise-nan", {"train": {"generator": "circles", "noise": float("nan")}}),
    ("gen-low-inf", {"train": {"generator": "linear", "low": float("-inf")}}),
    ("gen-low-huge", {"train": {"generator": "linear", "low": -1e300, "high": 1e300}}),
    ("gen-noise-string", {"train": {"generator": "circles", "noise": "x" * 100_000}}),
    ("gen-seed-negative", {"train": {"generator": "circles", "seed": -1}}),
    ("gen-seed-huge", {"train": {"generator": "circles", "seed": BIG}}),
    ("gen-name-list", {"train": {"generator": ["xor"]}}),
    ("gen-name-huge-int", {"train": {"generator": BIG}}),
    ("gen-targets-list", {"train": {"generator": "xor", "targets": ["sign"]}}),
    ("limit-zero", {"train": {"generator": "xor", "limit": 0}}),
    ("limit-huge", {"train": {"generator": "xor", "limit": BIG}}),
    ("limit-float", {"train": {"generator": "xor", "limit": 2.5}}),
    ("limit-string", {"train": {"generator": "xor", "limit": "5"}}),
    ("test-fraction-nan", {"train": {"generator": "xor", "test_fraction": float("nan")}}),
    ("test-fraction-huge", {"train": {"generator": "xor", "test_fraction": BIG}}),
    ("test-fraction-leaves-nothing", {"train": {"generator": "xor", "test_fraction": 0.01}}),
    ("split-seed-huge", {"train": {"generator": "xor", "test_fraction": 0.5,
                                   "split_seed": BIG}}),
    ("names-mapping", {"train": {"generator": "xor", "names": {"a": 1}}}),
    ("names-nested", {"train": {"generator": "xor", "names": [["x"]]}}),
    ("names-huge-int", {"train": {"generator": "xor", "names": [BIG]}}),
    ("inline-empty", {"train": {"inline": {"x": [], "t": []}}}),
    ("inline-nan", {"train": {"inline": {"x": [[float("nan"), 1.0]], "t": [[1.0]]}}}),
    ("inline-string", {"train": {"inline": {"x": "abc", "t": [[1.0]]}}}),
    ("inline-huge-int", {"train": {"inline": {"x": [[BIG, 1]], "t": [[1]]}}}),
    ("inline-nested-mapping", {"train": {"inline": {"x": [{"a": 1}], "t": [[1]]}}}),
    ("source-not-mapping", {"train": ["xor"]}),
    ("dataset-name-list", {"train": {"dataset": ["mnist"]}}),
    ("dataset-split-list", {"train": {"dataset": "mnist", "split": ["train"]}}),
    ("dataset-split-huge", {"train": {"dataset": "mnist", "split": BIG}}),
    ("dataset-scale-nan", {"train": {"dataset": "mnist", "scale": float("nan")}}),
    ("dataset-scale-string", {"train": {"dataset": "mnist", "scale": "abc"}}),
    ("dataset-one-hot-string", {"train": {"dataset": "mnist", "one_hot": "yes"}}),
]

CSV_OPTION_CASES = [  # a good CSV file, bad options
    ("columns-string", {"columns": "x"}),
    ("columns-nested", {"columns": {"x": [[0]], "t": [2]}}),
    ("columns-huge-int", {"columns": {"x": [BIG], "t": [2]}}),
    ("columns-mapping-value", {"columns": {"x": {"a": 1}, "t": [2]}}),
    ("columns-unknown-name", {"columns": {"x": ["nope"], "t": [2]}}),
    ("delimiter-newline", {"delimiter": "\n"}),
    ("delimiter-quote", {"delimiter": '"'}),
    ("delimiter-number", {"delimiter": 5}),
    ("delimiter-empty", {"delimiter": ""}),
    ("keys-on-csv", {"keys": {"x": "x"}}),
    ("names-and-columns", {"names": ["x", "t"], "columns": {"x": [0, 1]}}),
]


def assert_located(tmp_path, data, *, check_memory=False, **model_kw):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(model(data, **model_kw), sort_keys=False, width=10**6)
                    if not _has_huge(data) else _dump_with_huge(model(data, **model_kw)))
    if check_memory:
        tracemalloc.start()
    start = time.process_time()
    try:
        with pytest.raises(MinigraphError) as info:
            run_model(path, data_dir=str(tmp_path / "mnist"))
    finally:
        peak = tracemalloc.get_traced_memory()[1] if check_memory else 0
        if check_memory:
            tracemalloc.stop()
    assert time.process_time() - start < 5.0
    assert peak < 64 << 20, f"peak allocation {peak:,} bytes"
    assert info.value.location is not None and info.value.location.line > 0, str(info.value)
    return path, info.value


def _has_huge(value):
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() > 60
    if isinstance(value, dict):
        return any(_has_huge(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_huge(v) for v in value)
    return False


def _dump_with_huge(m):
    # yaml.safe_dump refuses nothing, but writing 10**400 needs str() of a 401-digit int
    import sys
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return yaml.safe_dump(m, sort_keys=False, width=10**6)
    finally:
        sys.set_int_max_str_digits(old)


def assert_cli_one_line(path, tmp_path, *args):
    result = CliRunner().invoke(main, ["run", str(path), "--data-dir", str(tmp_path / "mnist"),
                                       *args])
    out = result.output + (getattr(result, "stderr", "") if not result.output else "")
    assert result.exit_code == 2, out
    assert "Traceback" not in out and result.exception is None or \
        isinstance(result.exception, SystemExit), out
    line = out.strip()
    assert "\n" not in line, out
    assert re.match(rf"^{re.escape(str(path))}:\d+:\d+: ", line), out


def write_mnist(folder, n=5):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("t10k", n)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count, dtype=np.uint8)
        (folder / f"{split}-images-idx3-ubyte").write_bytes(
            (2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in images.shape)
            + images.tobytes())
        (folder / f"{split}-labels-idx1-ubyte").write_bytes(
            (2049).to_bytes(4, "big") + count.to_bytes(4, "big") + labels.tobytes())


@pytest.mark.parametrize("case", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_hostile_data_file(tmp_path, case):
    name, filename, writer, data = case
    if data is None:
        if writer is not None:
            writer(tmp_path / filename)
        data = {"train": {"file": filename}}
    path, error = assert_located(tmp_path, data, check_memory=True)
    assert "Traceback" not in str(error)
    assert_cli_one_line(path, tmp_path)


def test_unreadable_data_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    (tmp_path / "d.csv").write_text("1,2,3\n")
    os.chmod(tmp_path / "d.csv", 0)
    path, error = assert_located(tmp_path, {"train": {"file": "d.csv"}})
    assert "permission" in str(error)
    assert_cli_one_line(path, tmp_path)


@pytest.mark.parametrize("case", OPTION_CASES, ids=[c[0] for c in OPTION_CASES])
def test_hostile_data_option(tmp_path, case):
    write_mnist(tmp_path / "mnist")
    name, data = case
    path, _ = assert_located(tmp_path, data, check_memory=True)
    assert_cli_one_line(path, tmp_path)


@pytest.mark.parametrize("case", CSV_OPTION_CASES, ids=[c[0] for c in CSV_OPTION_CASES])
def test_hostile_csv_option(tmp_path, case):
    (tmp_path / "d.csv").write_text("a,b,c\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n")
    name, options = case
    path, _ = assert_located(tmp_path, {"train": {"file": "d.csv", **options}})
    assert_cli_one_line(path, tmp_path)


def gz(data):
    return gzip.compress(data)


MNIST_CASES = [
    ("gz-garbage", lambda f: f.write_bytes(b"\x1f\x8b" + b"\x00garbage" * 10)),
    ("gz-not-gzip", lambda f: f.write_bytes(b"this is not gzip at all")),
    ("gz-truncated", lambda f: f.write_bytes(gz((2051).to_bytes(4, "big") + bytes(12)
                                                + bytes(20_000))[:100])),
    ("gz-huge-header", lambda f: f.write_bytes(gz((2051).to_bytes(4, "big")
                                                  + (60000).to_bytes(4, "big")
                                                  + (60000).to_bytes(4, "big")
                                                  + (60000).to_bytes(4, "big")))),
    ("gz-zero-images", lambda f: f.write_bytes(gz((2051).to_bytes(4, "big") + bytes(12)))),
    ("gz-folder", lambda f: f.mkdir()),
]


@pytest.mark.parametrize("case", MNIST_CASES, ids=[c[0] for c in MNIST_CASES])
def test_corrupt_mnist_file(tmp_path, case):
    folder = tmp_path / "mnist"
    write_mnist(folder)
    (folder / "train-images-idx3-ubyte").unlink()
    name, writer = case
    writer(folder / "train-images-idx3-ubyte.gz")
    if name == "gz-folder":  # a folder is not a file: the plain file is looked for instead
        (folder / "train-images-idx3-ubyte").write_bytes(b"\0\0\x08\x03")
    path, _ = assert_located(tmp_path, {"train": {"dataset": "mnist"}}, check_memory=True,
                             inputs={"x": {"shape": ["batch", 784]},
                                     "t": {"shape": ["batch", 10]}},
                             params={"W": {"shape": [784, 10], "init": "zeros"}})
    assert_cli_one_line(path, tmp_path)


def test_mnist_labels_out_of_range(tmp_path):
    folder = tmp_path / "mnist"
    write_mnist(folder)
    (folder / "train-labels-idx1-ubyte").write_bytes((2049).to_bytes(4, "big")
                                                    + (5).to_bytes(4, "big") + bytes([255] * 5))
    path, error = assert_located(tmp_path, {"train": {"dataset": "mnist"}},
                                 inputs={"x": {"shape": ["batch", 784]},
                                         "t": {"shape": ["batch", 10]}},
                                 params={"W": {"shape": [784, 10], "init": "zeros"}})
    assert "255" in str(error)


# ---- shapes that only fail with real data ------------------------------------------------

SHAPE_CASES = [
    ("matmul-symbol-n", dict(
        inputs={"x": {"shape": ["batch", "n"]}, "t": {"shape": ["batch", 1]}},
        params={"W": {"shape": [3, 1], "init": "zeros"}})),
    ("reshape-batch", dict(
        nodes=[{"name": "r", "op": "reshape", "inputs": ["x"], "outputs": ["y"],
                "attrs": {"shape": [3, -1]}},
               {"name": "s", "op": "sum", "inputs": ["y"], "outputs": ["L"]}],
        params={})),
    ("concat-batch-vs-constant", dict(
        constants={"c": {"value": [[1.0], [2.0], [3.0]]}},
        nodes=[{"name": "cat", "op": "concat", "inputs": ["x", "c"], "outputs": ["y"],
                "attrs": {"axis": 1}},
               {"name": "s", "op": "sum", "inputs": ["y"], "outputs": ["L"]}],
        params={})),
    ("tensor-over-size-limit", dict(
        params={"W": {"shape": [2, 100_000], "init": "zeros"}},
        nodes=[{"name": "fc", "op": "matmul", "inputs": ["x", "W"], "outputs": ["y"]},
               {"name": "s", "op": "sum", "inputs": ["y"], "outputs": ["L"]}])),
]


def _shape_model_kw(kw):
    return dict(kw)


@pytest.mark.parametrize("train", [True, False], ids=["run", "forward-only"])
@pytest.mark.parametrize("case", SHAPE_CASES, ids=[c[0] for c in SHAPE_CASES])
def test_shape_conflict_with_real_sizes_is_located_at_the_node(tmp_path, case, train):
    name, kw = case
    kw = _shape_model_kw(kw)
    data = {"train": {"generator": "circles", "n": 4000}} if "limit" in name else \
        {"train": XOR}
    if "nodes" in kw:
        kw.setdefault("inputs", {"x": {"shape": ["batch", 2]}, "t": {"shape": ["batch", 1]}})
    path, error = assert_located(tmp_path, data, train=train, **kw)
    assert "node '" in str(error) and "(" in str(error)
    assert_cli_one_line(path, tmp_path)


def test_missing_target_input_is_located(tmp_path):
    for train in (True, False):
        path, error = assert_located(tmp_path, {"train": {"generator": "xor", "names": ["x"]}},
                                     train=train)
        assert "'t'" in str(error)
        assert_cli_one_line(path, tmp_path)
        result = CliRunner().invoke(main, ["render", str(path), "--grads", "-o",
                                           str(tmp_path / "g.svg")])
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert re.match(rf"^{re.escape(str(path))}:\d+:\d+: ", result.output.strip())


def test_batches_that_do_not_fit_a_fixed_first_dimension(tmp_path):
    m = model({"train": XOR}, inputs={"x": {"shape": [4, 2]}, "t": {"shape": [4, 1]}})
    m["train"]["batch_size"] = 3
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(m, sort_keys=False))
    with pytest.raises(MinigraphError) as info:
        run_model(path)
    assert info.value.location is not None and "batches of 3" in str(info.value)


@pytest.mark.parametrize("feed", [
    {"x": np.zeros((4, 2, 1)), "t": np.zeros((4, 1))},          # wrong rank
    {"x": np.array([["a", "b"]] * 4), "t": np.zeros((4, 1))},   # not numbers
    {"x": np.zeros((4, 3)), "t": np.zeros((4, 1))},             # wrong size
    {"x": np.zeros((4, 2))},                                     # missing target
    {"x": np.zeros((4, 2)), "t": np.zeros((3, 1))},             # batch sizes differ
], ids=["rank", "dtype", "size", "missing", "batch"])
def test_wrong_feeds_through_the_api_are_located(tmp_path, feed):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(model({"train": XOR}), sort_keys=False))
    m = mg.load(path)
    with pytest.raises(MinigraphError) as info:
        m.forward(feed)
    assert info.value.location is not None


def test_bound_shapes_are_cached_and_checked_passes_skip_them(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(model({"train": XOR}), sort_keys=False))
    m = mg.load(path)
    m.forward()
    assert list(m.executor.feeds._bound) == [(("batch", 4),)]
    shapes = m.executor.check_sizes({"batch": 4})
    assert shapes["y"] == (4, 1) and m.executor.check_sizes({"batch": 4}) is shapes
