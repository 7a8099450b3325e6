"""Corrupted or hostile checkpoints: one clear line naming the file, exit 2, nothing large.

Each case builds its file in tmp_path from a good checkpoint of models/xor.yaml (SGD) or of
an Adam variant, and is tried with `run --load`, `eval --params` and `render --params`.
"""
from __future__ import annotations

import io
import json
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from cli.main import main
from minigraph.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from minigraph.errors import DataError
from minigraph.api import run_model

ROOT = Path(__file__).resolve().parents[1]
XOR = ROOT / "models" / "xor.yaml"
SHAPES = {"W1": (2, 2), "b1": (2,), "W2": (2, 1), "b2": (1,)}


def adam_xor(tmp_path) -> Path:
    d = yaml.safe_load(XOR.read_text())
    d["train"]["optimizer"] = {"type": "adam", "lr": 0.01}
    path = tmp_path / "xor_adam.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """{"sgd": arrays, "adam": arrays} of real checkpoints after 3 epochs."""
    tmp = tmp_path_factory.mktemp("good")
    out = {}
    for name, model in (("sgd", XOR), ("adam", adam_xor(tmp))):
        run_model(model, epochs=3, save=tmp / f"{name}.npz")
        with np.load(tmp / f"{name}.npz") as z:
            out[name] = {k: z[k] for k in z.files}
    return out


def npy_bytes(header: dict, data: bytes = b"") -> bytes:
    """An .npy file with any header (e.g. one claiming 1e10 floats) and any data."""
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, header)
    return f.getvalue() + data


def write_zip(path, members: dict, compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, value in members.items():
            if isinstance(value, np.ndarray):
                f = io.BytesIO()
                np.save(f, value, allow_pickle=False)
                value = f.getvalue()
            zf.writestr(name, value)
    return path


def with_changes(good_arrays, *, drop=(), meta=None, **arrays):
    d = {k: v for k, v in good_arrays.items() if k not in drop}
    if meta is not None:
        m = json.loads(str(d["meta"]))
        m.update(meta)
        d["meta"] = np.array(json.dumps(m))
    d.update({k.replace("__", "/"): v for k, v in arrays.items()})
    return d


def savez(path, arrays):
    np.savez(path, **arrays)
    return path


def damaged_deflate(path, arrays):
    write_zip(path, {f"{k}.npy": v for k, v in arrays.items()}, zipfile.ZIP_DEFLATED)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("param/W1.npy")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start, start + min(info.compress_size, 12)):
        raw[i] ^= 0xA5
    path.write_bytes(bytes(raw))
    return path


# (case id, optimizer of the good checkpoint, builder(path, good arrays) -> path, expected text)
CASES = [
    ("damaged_deflate", "sgd", damaged_deflate, "is not a minigraph checkpoint"),
    ("not_a_zip", "sgd", lambda p, g: (p.write_bytes(b"hello" * 10), p)[1],
     "is not a minigraph checkpoint"),
    ("truncated", "sgd", lambda p, g: (p.write_bytes(savez(p, g).read_bytes()[:300]), p)[1],
     "is not a minigraph checkpoint"),
    ("npy_instead_of_npz", "sgd",
     lambda p, g: (np.save(open(p, "wb"), g["param/W1"]), p)[1], "is a single .npy array"),
    ("meta_not_json", "sgd", lambda p, g: savez(p, {**g, "meta": np.array("{epoch: 3")}),
     "'meta' is not valid JSON"),
    ("meta_json_list", "sgd", lambda p, g: savez(p, {**g, "meta": np.array("[1, 2]")}),
     "'meta' must be a JSON object, found list"),
    ("meta_number_array", "sgd", lambda p, g: savez(p, {**g, "meta": np.arange(3)}),
     "'meta' holds int64, expected text"),
    ("meta_object_array", "sgd",
     lambda p, g: savez(p, {**g, "meta": np.array([{"x": 1}], dtype=object)}),
     "'meta' holds Python objects"),
    ("meta_unknown_key", "sgd", lambda p, g: savez(p, with_changes(g, meta={"epochs": 3})),
     "'meta' has an unknown key 'epochs' (did you mean 'epoch'?)"),
    ("meta_format", "sgd", lambda p, g: savez(p, with_changes(g, meta={"format": "x-9"})),
     "meta 'format' is 'x-9'"),
    ("rng_state_garbage", "sgd",
     lambda p, g: savez(p, with_changes(g, meta={"rng_state": {"bit_generator": "PCG64",
                                                               "state": "zzz"}})),
     "meta 'rng_state' cannot be restored"),
    ("rng_state_not_a_mapping", "sgd",
     lambda p, g: savez(p, with_changes(g, meta={"rng_state": [1, 2, 3]})),
     "meta 'rng_state' must be a mapping"),
    ("rng_state_other_generator", "sgd",
     lambda p, g: savez(p, with_changes(g, meta={"rng_state": {"bit_generator": "MT19937"}})),
     "meta 'rng_state' cannot be restored"),
    ("epoch_text", "sgd", lambda p, g: savez(p, with_changes(g, meta={"epoch": "abc"})),
     "meta 'epoch' must be a whole number from 0 to 1,000,000,000 (or null), found 'abc'"),
    ("epoch_negative", "sgd", lambda p, g: savez(p, with_changes(g, meta={"epoch": -5})),
     "meta 'epoch' must be a whole number from 0"),
    ("epoch_huge", "sgd", lambda p, g: savez(p, with_changes(g, meta={"epoch": 10 ** 40})),
     "meta 'epoch' must be a whole number from 0"),
    ("epoch_float", "sgd", lambda p, g: savez(p, with_changes(g, meta={"epoch": 2.5})),
     "meta 'epoch' must be a whole number from 0"),
    ("model_not_text", "sgd", lambda p, g: savez(p, with_changes(g, meta={"model": [1]})),
     "meta 'model' must be a model name"),
    ("param_strings", "sgd",
     lambda p, g: savez(p, {**g, "param/W1": np.array([["a", "b"], ["c", "d"]])}),
     "param 'W1' holds text, expected real numbers"),
    ("param_complex", "sgd",
     lambda p, g: savez(p, {**g, "param/W1": np.ones((2, 2), np.complex64)}),
     "param 'W1' holds complex numbers, expected real numbers"),
    ("param_bool", "sgd", lambda p, g: savez(p, {**g, "param/W1": np.ones((2, 2), bool)}),
     "param 'W1' holds booleans"),
    ("param_nan", "sgd",
     lambda p, g: savez(p, {**g, "param/W1": np.full((2, 2), np.nan, np.float32)}),
     "param 'W1' holds NaN or infinity"),
    ("param_shape", "sgd", lambda p, g: savez(p, {**g, "param/W1": np.ones((3, 2), np.float32)}),
     "param 'W1' has shape (3, 2), the model's is (2, 2)"),
    ("param_unknown", "sgd", lambda p, g: savez(p, {**g, "param/W11": np.ones(2, np.float32)}),
     "param 'W11' is not a param of the model (did you mean 'W1'?)"),
    ("param_missing", "sgd", lambda p, g: savez(p, with_changes(g, drop=("param/b2",))),
     "has no value for param 'b2'"),
    ("param_header_claims_1e10_floats", "sgd",
     lambda p, g: write_zip(p, {**{f"{k}.npy": v for k, v in g.items() if k != "param/W1"},
                                "param/W1.npy": npy_bytes({"descr": "<f4", "fortran_order":
                                                           False, "shape": (10 ** 10,)})}),
     "param 'W1' has shape (10000000000,), the model's is (2, 2)"),
    ("param_header_longer_than_data", "sgd",
     lambda p, g: write_zip(p, {**{f"{k}.npy": v for k, v in g.items() if k != "param/W1"},
                                "param/W1.npy": npy_bytes({"descr": "<f4", "fortran_order":
                                                           False, "shape": (2, 2)}, b"1234")}),
     "its header promises 16 bytes of data but the archive member holds 4"),
    ("not_npy_member", "sgd",
     lambda p, g: write_zip(p, {**{f"{k}.npy": v for k, v in g.items()}, "notes.txt": b"hi"}),
     "entry 'notes.txt' is not an .npy array"),
    ("stray_entry", "sgd", lambda p, g: savez(p, {**g, "extra": np.ones(2)}),
     "unexpected entry 'extra'"),
    ("optim_t_text", "sgd", lambda p, g: savez(p, {**g, "optim/t": np.array("abc")}),
     "optimizer 't' holds text, expected real numbers"),
    ("optim_t_negative", "sgd", lambda p, g: savez(p, {**g, "optim/t": np.array(-3)}),
     "optimizer 't' must be a whole number from 0"),
    ("optim_no_t", "adam", lambda p, g: savez(p, with_changes(g, drop=("optim/t",))),
     "optimizer state has no step count 't'"),
    ("optim_wrong_shape", "adam",
     lambda p, g: savez(p, {**g, "optim/W1/m": np.ones((3, 3), np.float32)}),
     "optimizer state 'W1/m' has shape (3, 3), the model's is (2, 2)"),
    ("optim_wrong_type", "adam",
     lambda p, g: savez(p, {**g, "optim/W1/v": np.array([["x", "y"], ["z", "w"]])}),
     "optimizer state 'W1/v' holds text, expected real numbers"),
    ("optim_step_float", "adam", lambda p, g: savez(p, {**g, "optim/W1/step": np.array(1.5)}),
     "optimizer state 'W1/step' holds float64, expected real numbers"),
    ("optim_step_beyond_t", "adam", lambda p, g: savez(p, {**g, "optim/W1/step": np.array(99)}),
     "optimizer state 'W1/step' must be a whole number from 0 to t = 3"),
    ("optim_unknown_param", "adam",
     lambda p, g: savez(p, {**g, "optim/W3/m": np.ones((2, 2), np.float32)}),
     "optimizer state 'W3/m' is for a param the model does not have"),
    ("optim_unknown_slot", "adam",
     lambda p, g: savez(p, {**g, "optim/W1/mm": np.ones((2, 2), np.float32)}),
     "optimizer 'adam' has no slot 'mm' (did you mean 'm'?)"),
    ("optim_missing_slot", "adam", lambda p, g: savez(p, with_changes(g, drop=("optim/W1/v",))),
     "optimizer state for param 'W1' lacks slot v"),
    ("optim_bad_key", "adam",
     lambda p, g: savez(p, {**g, "optim/W1": np.ones((2, 2), np.float32)}),
     "expected 't' or 'NAME/SLOT'"),
    ("optim_nan", "adam",
     lambda p, g: savez(p, {**g, "optim/W1/m": np.full((2, 2), np.inf, np.float32)}),
     "optimizer state 'W1/m' holds NaN or infinity"),
]

# the optimizer state matters to `run --load` only: eval and render ignore it (but it must
# still be readable: dtypes and sizes are checked for every entry)
RUN_ONLY = {"optim_unknown_param", "optim_unknown_slot", "optim_missing_slot",
            "optim_wrong_shape"}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("case, opt, build, expected", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("command", ["run", "eval", "render"])
def test_hostile_checkpoint_exits_2_naming_the_file(tmp_path, good, case, opt, build,
                                                    expected, command):
    model = XOR if opt == "sgd" else adam_xor(tmp_path)
    path = build(tmp_path / "ck.npz", good[opt])
    args = {"run": ("run", model, "--load", path, "--epochs", "5", "--quiet"),
            "eval": ("eval", model, "--params", path),
            "render": ("render", model, "--params", path, "--values", "--format", "dot",
                       "-o", tmp_path / "out.dot")}[command]
    result = invoke(*args)
    out = result.output
    if command != "run" and case in RUN_ONLY:
        return  # the optimizer state does not matter there (see test_api_... below)
    assert result.exit_code == 2, out
    assert "Traceback" not in out and "Aborted" not in out
    assert len(out.strip().splitlines()) == 1, out
    assert str(path) in out, out
    assert expected in out, out


def test_api_load_checkpoint_raises_dataerror_for_every_case(tmp_path, good):
    from minigraph.optim import make_optimizer

    for case, opt, build, expected in CASES:
        path = build(tmp_path / f"{case}.npz", good[opt])
        with pytest.raises(DataError) as info:
            load_checkpoint(path, params=SHAPES,
                            optimizer=make_optimizer({"type": opt, "lr": 0.1}))
        assert str(path) in str(info.value) and expected in str(info.value), case


def test_api_without_a_model_still_checks_types_sizes_and_meta(tmp_path, good):
    path = write_zip(tmp_path / "big.npz", {"param/W1.npy": npy_bytes(
        {"descr": "<f8", "fortran_order": False, "shape": (10 ** 5, 10 ** 5)})})
    tracemalloc.start()
    with pytest.raises(DataError, match="claims 10,000,000,000 values"):
        load_checkpoint(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5 << 20  # nothing large was allocated
    with pytest.raises(DataError, match="'meta' must be a JSON object"):
        load_checkpoint(savez(tmp_path / "m.npz", {**good["sgd"], "meta": np.array("3")}))
    with pytest.raises(DataError, match="holds complex numbers"):
        load_checkpoint(savez(tmp_path / "c.npz", {"W1": np.ones(2, complex)}))


def test_good_checkpoints_and_plain_archives_still_load(tmp_path, good):
    from minigraph.optim import make_optimizer

    path = savez(tmp_path / "adam.npz", good["adam"])
    ck = load_checkpoint(path, params=SHAPES, optimizer=make_optimizer({"type": "adam"}))
    assert ck.epoch == 3 and set(ck.params) == set(SHAPES)
    assert set(ck.optimizer) == {"t"} | {f"{n}/{s}" for n in SHAPES for s in ("step", "m", "v")}
    for key, value in good["adam"].items():
        if key.startswith("param/"):
            assert np.array_equal(ck.params[key[6:]], value)
        elif key.startswith("optim/"):
            assert np.array_equal(ck.optimizer[key[6:]], value)
    # a plain .npz of params by name (no meta) is accepted, float64 or not, whole or partial
    plain = savez(tmp_path / "plain.npz", {"W1": np.full((2, 2), 0.5), "b1": np.zeros(2)})
    assert invoke("eval", XOR, "--params", plain).exit_code == 0
    result = invoke("run", XOR, "--load", plain, "--epochs", "2", "--quiet")
    assert result.exit_code == 0, result.output


def test_fortran_order_and_big_endian_arrays_read_correctly(tmp_path):
    w = np.asfortranarray(np.arange(4, dtype=">f4").reshape(2, 2))
    path = write_zip(tmp_path / "f.npz", {"W1.npy": w})
    got = load_checkpoint(path, params=SHAPES).params["W1"]
    assert np.array_equal(got, w) and got.dtype == np.float32


def test_resuming_past_the_end_is_checked_before_loading_data(tmp_path, good):
    path = savez(tmp_path / "ck.npz", good["sgd"])
    result = invoke("run", XOR, "--load", path, "--epochs", "2", "--quiet")
    assert result.exit_code == 2
    assert "already at epoch 3, so 2 epochs leave nothing to train" in result.output


# ==== saving onto special files ================================================================

def test_save_onto_a_fifo_is_refused(tmp_path):
    import os
    import stat

    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    result = invoke("run", XOR, "--epochs", "1", "--save", fifo, "--quiet")
    assert result.exit_code == 2
    assert result.output.strip() == (f"error: cannot save checkpoint {fifo}: it is a FIFO "
                                     "(named pipe); a checkpoint is written to a new file and "
                                     "renamed, so it may only replace a regular file")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # untouched
    with pytest.raises(DataError, match="it is a FIFO"):
        save_checkpoint(fifo, Checkpoint({"w": np.ones(2)}))
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.npz"]  # no temporary file


def test_save_onto_a_symlink_or_missing_folder_is_refused(tmp_path):
    import os

    target = tmp_path / "real.npz"
    target.write_bytes(b"keep")
    link = tmp_path / "link.npz"
    os.symlink(target, link)
    with pytest.raises(DataError, match="it is a symbolic link"):
        save_checkpoint(link, Checkpoint({"w": np.ones(2)}))
    assert target.read_bytes() == b"keep" and link.is_symlink()
    with pytest.raises(DataError, match="folder .* does not exist"):
        save_checkpoint(tmp_path / "no" / "c.npz", Checkpoint({"w": np.ones(2)}))


def test_save_onto_dev_full_is_refused(tmp_path):
    import os
    import stat

    dev = Path("/dev/full")
    if not dev.exists() or not stat.S_ISCHR(os.lstat(dev).st_mode):
        pytest.skip("no /dev/full character device here")
    before = os.lstat(dev)
    result = invoke("run", XOR, "--epochs", "1", "--save", dev, "--quiet")
    assert result.exit_code == 2
    assert "cannot save checkpoint /dev/full: it is a character device" in result.output
    after = os.lstat(dev)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    if os.geteuid() != 0 or not os.access(dev, os.W_OK):
        print("not root (or /dev/full not writable): only checked that the save is refused")
