"""The command line: exit codes, one-line located errors, run/eval/check, checkpoints."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from minigraph.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from minigraph.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
XOR = str(ROOT / "models" / "xor.yaml")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def write(tmp_path, text, name="m.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def xor_text(**replace):
    text = Path(XOR).read_text()
    for old, new in replace.items():
        old = old.replace("_", " ")
        assert old in text
        text = text.replace(old, new)
    return text


# ==== mistakes exit 2 with one located line =======================================================

BAD_FILES = {
    "wrong_shape": ("W2: {shape: [2, 1]", "W2: {shape: [3, 1]",
                    "inner dimensions differ: (batch, 2) @ (3, 1)"),
    "misspelt_op": ("op: sigmoid, inputs: [a2]", "op: sigmod, inputs: [a2]",
                    "unknown op 'sigmod' (did you mean 'sigmoid'?)"),
    "misspelt_tensor": ("inputs: [h, W2]", "inputs: [hh, W2]",
                        "reads undefined tensor 'hh' (did you mean 'h'?)"),
    "cycle": ("inputs: [x, W1]", "inputs: [y, W1]", "the graph has a cycle"),
    "yaml_syntax": ("outputs: [y]\n", "outputs: [y\n", "YAML syntax error"),
    "python_tag": ("name: xor", "name: !!python/object/apply:os.system [echo]",
                   "tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
@pytest.mark.parametrize("command", ["check", "run", "summary"])
def test_bad_model_file_exits_2_with_a_located_line(tmp_path, kind, command):
    old, new, expected = BAD_FILES[kind]
    text = Path(XOR).read_text()
    assert old in text
    path = write(tmp_path, text.replace(old, new))
    result = invoke(command, path)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"{path}:") and expected in lines[0]
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback_and_keeps_the_exit_code(tmp_path):
    path = write(tmp_path, Path(XOR).read_text().replace("op: sigmoid", "op: sigmod"))
    result = CliRunner().invoke(main, ["--debug", "check", str(path)], catch_exceptions=False)
    assert result.exit_code == 2
    assert "Traceback" in result.output and "unknown op 'sigmod'" in result.output


def test_bad_flag_exits_2():
    result = invoke("run", XOR, "--epochz", "3")
    assert result.exit_code == 2
    assert "No such option" in result.output and "--epochz" in result.output
    assert "Did you mean" in result.output and "--epochs" in result.output


def test_bad_flag_value_exits_2():
    result = invoke("run", XOR, "--epochs", "-3")
    assert result.exit_code == 2
    assert "Invalid value for '--epochs'" in result.output


def test_missing_model_file_exits_2(tmp_path):
    result = invoke("check", tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert result.output.strip() == f"error: no such model file: {tmp_path / 'nope.yaml'}"


def test_missing_data_file_exits_2(tmp_path):
    d = yaml.safe_load(Path(XOR).read_text())
    d["data"] = {"train": {"file": "missing.csv"}}
    path = write(tmp_path, yaml.safe_dump(d, sort_keys=False))
    result = invoke("run", path, "--epochs", "1")
    assert result.exit_code == 2
    assert "missing.csv" in result.output and len(result.output.strip().splitlines()) == 1


def test_missing_mnist_names_files_and_places(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGRAPH_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("HOME", str(tmp_path))
    d = yaml.safe_load(Path(XOR).read_text())
    d["inputs"] = {"x": {"shape": ["batch", 2]}, "t": {"shape": ["batch", 1]}}
    d["data"] = {"train": {"dataset": "mnist", "split": "train"}}
    path = write(tmp_path, yaml.safe_dump(d, sort_keys=False))
    result = invoke("run", path, "--data-dir", tmp_path / "empty")
    assert result.exit_code == 2
    out = result.output
    assert "train-images-idx3-ubyte" in out and str(tmp_path / "empty") in out
    assert "Traceback" not in out


def test_bad_checkpoint_path_exits_2(tmp_path):
    result = invoke("run", XOR, "--epochs", "1", "--load", tmp_path / "none.npz")
    assert result.exit_code == 2
    assert result.output.strip() == f"error: no checkpoint file at {tmp_path / 'none.npz'}"
    bad = write(tmp_path, "not a zip", "bad.npz")
    result = invoke("eval", XOR, "--params", bad)
    assert result.exit_code == 2
    assert "is not a minigraph checkpoint" in result.output


def test_save_into_missing_folder_exits_2(tmp_path):
    result = invoke("run", XOR, "--epochs", "1", "--save", tmp_path / "no" / "dir.npz")
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_nan_loss_exits_1_naming_the_node(tmp_path):
    d = {"minigraph": 1, "name": "nan", "inputs": {"x": {"shape": ["batch", 1]}},
         "params": {"p": {"shape": [1], "init": {"constant": 1.0}}},
         "nodes": [{"name": "shift", "op": "sub", "inputs": ["x", "p"], "outputs": ["d"]},
                   {"name": "lg", "op": "log", "inputs": ["d"], "outputs": ["l"]},
                   {"name": "s", "op": "sum", "inputs": ["l"], "outputs": ["L"]}],
         "outputs": ["l"], "loss": "L",
         "data": {"train": {"inline": {"x": [[0.5]]}}},
         "train": {"epochs": 3, "optimizer": {"type": "sgd", "lr": 0.1}}}
    path = write(tmp_path, yaml.safe_dump(d))
    result = invoke("run", path, "--quiet")
    assert result.exit_code == 1
    assert "the loss became nan" in result.output
    assert "first produced by node 'lg' (log)" in result.output
    assert "epoch 1, step 1" in result.output


# ==== commands ====================================================================================

def test_run_xor_prints_the_table():
    result = invoke("run", XOR, "--epochs", "50", "--quiet")
    assert result.exit_code == 0, result.output
    assert "model xor: trained 50 epochs (done)" in result.output
    assert result.output.count("\n[") + result.output.count("\n[0") >= 0
    table = result.output.split("\n\n")[-1].splitlines()
    assert table[0].split() == ["x", "t", "y"] and len(table) == 6


def test_run_writes_a_json_log(tmp_path):
    log = tmp_path / "log.jsonl"
    result = invoke("run", XOR, "--epochs", "5", "--log", log, "--quiet")
    assert result.exit_code == 0
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5]
    assert {"loss", "accuracy", "lr"} <= set(records[0])


def test_flags_override_the_file(tmp_path):
    log = tmp_path / "log.jsonl"
    invoke("run", XOR, "--epochs", "2", "--lr", "0.25", "--log", log, "--quiet")
    assert [json.loads(x)["lr"] for x in log.read_text().splitlines()] == [0.25, 0.25]


def test_check_summary_and_ops():
    result = invoke("check", XOR)
    assert result.exit_code == 0 and "all gradients match" in result.output
    result = invoke("summary", XOR)
    assert result.exit_code == 0 and "model xor: 7 nodes, 9 params" in result.output
    result = invoke("ops")
    assert result.exit_code == 0
    for op in ("matmul", "conv2d", "cross_entropy", "linear (layer)"):
        assert op in result.output


def test_check_exits_1_on_a_wrong_gradient(tmp_path):
    import minigraph as mg

    def f(x):
        return x * x

    def wrong(xs, y, gy):
        return (xs[0] * gy,)  # should be 2 x gy

    mg.register_op("test_wrong_square", f, wrong)
    try:
        d = {"minigraph": 1, "name": "w", "inputs": {},
             "params": {"p": {"shape": [2], "init": {"value": [1.0, 2.0]}}},
             "nodes": [{"name": "sq", "op": "test_wrong_square", "inputs": ["p"],
                        "outputs": ["y"]},
                       {"name": "s", "op": "sum", "inputs": ["y"], "outputs": ["L"]}],
             "outputs": ["y"], "loss": "L"}
        result = invoke("check", write(tmp_path, yaml.safe_dump(d)))
        assert result.exit_code == 1
        assert "MISMATCH" in result.output and "gradient check FAILED" in result.output
    finally:
        mg.REGISTRY.pop("test_wrong_square")


def test_help_has_examples():
    for command in ("run", "check", "summary", "eval", "ops"):
        result = invoke(command, "--help")
        assert result.exit_code == 0 and "Example" in result.output


def test_save_then_eval(tmp_path):
    ckpt = tmp_path / "xor.npz"
    assert invoke("run", XOR, "--epochs", "3000", "--save", ckpt, "--quiet").exit_code == 0
    result = invoke("eval", XOR, "--params", ckpt)
    assert result.exit_code == 0
    assert result.output.startswith("train data (4 examples): loss ")
    assert "accuracy 1" in result.output


# ==== checkpoints =================================================================================

def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    from minigraph.api import run_model

    circles = {"minigraph": 1, "name": "c",
               "inputs": {"x": {"shape": ["batch", 2]}, "t": {"shape": ["batch", 1]}},
               "nodes": [
                   {"name": "fc1", "op": "linear", "inputs": ["x"], "outputs": ["h0"],
                    "attrs": {"units": 8}},
                   {"name": "act", "op": "relu", "inputs": ["h0"], "outputs": ["h1"]},
                   {"name": "drop", "op": "dropout", "inputs": ["h1"], "outputs": ["h"],
                    "attrs": {"p": 0.2}},
                   {"name": "fc2", "op": "linear", "inputs": ["h"], "outputs": ["z"],
                    "attrs": {"units": 1}},
                   {"name": "out", "op": "sigmoid", "inputs": ["z"], "outputs": ["y"]},
                   {"name": "loss", "op": "bce", "inputs": ["y", "t"], "outputs": ["L"]}],
               "outputs": ["y"], "loss": "L",
               "data": {"train": {"generator": "circles", "n": 64, "seed": 3}},
               "train": {"epochs": 6, "batch_size": 16, "shuffle": True, "seed": 5,
                         "optimizer": {"type": "adam", "lr": 0.01}}}
    path = write(tmp_path, yaml.safe_dump(circles, sort_keys=False))
    full = run_model(path, save=tmp_path / "full.npz")
    run_model(path, epochs=3, save=tmp_path / "half.npz")
    resumed = run_model(path, load=tmp_path / "half.npz", save=tmp_path / "resumed.npz")
    assert resumed.history.records[0]["epoch"] == 4
    a = load_checkpoint(tmp_path / "full.npz")
    b = load_checkpoint(tmp_path / "resumed.npz")
    assert a.epoch == b.epoch == 6
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    for name in a.optimizer:
        np.testing.assert_array_equal(a.optimizer[name], b.optimizer[name])
    assert full.history.last["loss"] == resumed.history.last["loss"]


def test_an_interrupted_save_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    save_checkpoint(path, Checkpoint({"w": np.ones(3)}, epoch=1))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, Checkpoint({"w": np.zeros(3)}, epoch=2))
    monkeypatch.undo()
    kept = load_checkpoint(path)
    assert kept.epoch == 1 and np.array_equal(kept.params["w"], np.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary file left


def test_checkpoints_load_without_pickle(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, meta=np.array([{"x": 1}], dtype=object))
    result = invoke("eval", XOR, "--params", path)
    assert result.exit_code == 2
    assert f"{path}: 'meta' holds Python objects, expected text" in result.output


# ==== shapes at the edges: scalar inputs, a (1,) loss, a model made of params only ===============

EDGE_MODELS = {
    "scalar_input": {"minigraph": 1, "name": "s", "inputs": {"x": {"shape": []}},
                     "params": {"w": {"shape": [], "init": {"value": -2.0}}},
                     "nodes": [{"name": "g", "op": "mul", "inputs": ["w", "x"], "outputs": ["f"]}],
                     "outputs": ["f"], "loss": "f",
                     "data": {"train": {"inline": {"x": 5.0}}}},
    "loss_of_shape_1": {"minigraph": 1, "name": "v", "inputs": {},
                        "params": {"w": {"shape": [1], "init": {"value": [2.0]}}},
                        "nodes": [{"name": "sq", "op": "square", "inputs": ["w"],
                                   "outputs": ["f"]}],
                        "outputs": ["f"], "loss": "f",
                        "train": {"epochs": 2, "optimizer": {"type": "sgd", "lr": 0.1}}},
    "params_only": {"minigraph": 1, "name": "p", "inputs": {},
                    "params": {"w": {"shape": [], "init": {"value": 1.0}}},
                    "nodes": [{"name": "sq", "op": "square", "inputs": ["w"], "outputs": ["f"]}],
                    "outputs": ["f"], "loss": "f",
                    "train": {"epochs": 10, "optimizer": {"type": "sgd", "lr": 0.1}}},
}


@pytest.mark.parametrize("name", sorted(EDGE_MODELS))
def test_edge_shaped_models_check_and_run(tmp_path, name):
    path = write(tmp_path, yaml.safe_dump(EDGE_MODELS[name], sort_keys=False))
    assert invoke("check", path).exit_code == 0
    result = invoke("run", path, "--quiet")
    assert result.exit_code == 0, result.output
    if name == "scalar_input":
        assert "df/dw = 5" in result.output and "df/dx = -2" in result.output
    if name == "loss_of_shape_1":  # w = 2 -> 2 - 0.1*4 = 1.6 -> 1.6 - 0.1*3.2 = 1.28
        assert "loss 2.56" in result.output  # the last epoch's loss, at w = 1.6
        assert "1.638" in result.output  # f = 1.28^2 after training
    if name == "params_only":  # w <- 0.8 w per step: w^2 after 10 steps = 0.8^20
        assert f"{0.8 ** 20:.4g}" in result.output


def test_ctrl_c_saves_and_stops_cleanly(tmp_path):
    from minigraph.api import Callback, run_model

    class InterruptAtEpoch3(Callback):
        def on_epoch_end(self, record):
            if record["epoch"] == 3:
                raise KeyboardInterrupt

    result = run_model(XOR, epochs=100, save=tmp_path / "c.npz", callback=InterruptAtEpoch3())
    assert result.history.interrupted
    saved = load_checkpoint(tmp_path / "c.npz")
    assert saved.epoch == 3  # the epoch that had finished when Ctrl-C came
    assert set(saved.params) == {"W1", "b1", "W2", "b2"}


# ==== mistakes found in review: each exits 2 with one line, before any training =================

def xor_with(tmp_path, **changes):
    d = yaml.safe_load(Path(XOR).read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            d[section][field] = value
        else:
            d[section] = value
    return write(tmp_path, yaml.safe_dump(d, sort_keys=False))


@pytest.mark.parametrize("changes, args, expected", [
    ({"data": {"train": {"inline": {"x": [[0, 0], [1, 1]]}}}}, (),
     "the train data has no values for input 't' (it gives: x)"),
    ({"train__stop_at": {"accuracy": 0.9}, "train__metrics": []}, (),
     "train.stop_at.accuracy needs 'accuracy' in train.metrics"),
    ({"train__stop_at": {"accuracy": "high"}}, (), "train.stop_at.accuracy must be a number"),
    ({"train__threshold": "abc"}, (), "train.threshold must be a number"),
    ({"train__drop_last": True, "train__batch_size": 8}, (),
     "batch_size 8 with drop_last leaves no batch of the 4 training examples"),
    ({}, ("--save", "nodir/x.npz"), "folder nodir does not exist"),
])
def test_mistakes_stop_before_training(tmp_path, monkeypatch, changes, args, expected):
    monkeypatch.chdir(tmp_path)
    path = xor_with(tmp_path, **changes)
    log = tmp_path / "log.jsonl"
    result = invoke("run", path, "--quiet", "--log", log, *args)
    assert result.exit_code == 2, result.output
    assert expected in result.output and len(result.output.strip().splitlines()) == 1
    assert not log.exists() or log.read_text() == ""  # not a single epoch ran


def test_training_flags_on_a_forward_only_model_exit_2(tmp_path):
    chain_rule = ROOT / "models" / "chain_rule.yaml"
    result = invoke("run", chain_rule, "--save", tmp_path / "c.npz", "--epochs", "3")
    assert result.exit_code == 2
    assert "has no train section, so --epochs, --save cannot apply" in result.output


def test_resuming_past_the_end_says_so(tmp_path):
    ckpt = tmp_path / "x.npz"
    assert invoke("run", XOR, "--epochs", "5", "--save", ckpt, "--quiet").exit_code == 0
    result = invoke("run", XOR, "--epochs", "3", "--load", ckpt, "--quiet")
    assert result.exit_code == 2
    assert "already at epoch 5, so 3 epochs leave nothing to train" in result.output


def test_eval_of_a_model_without_loss_says_eval_needs_one(tmp_path):
    ckpt = tmp_path / "x.npz"
    invoke("run", XOR, "--epochs", "2", "--save", ckpt, "--quiet")
    result = invoke("eval", ROOT / "models" / "xor_handset.yaml", "--params", ckpt)
    assert result.exit_code == 2
    assert "has no 'loss': this command needs one" in result.output


def test_unwritable_outputs_are_one_line_with_the_path(tmp_path):
    """A --log whose folder is missing is refused before training; a picture that cannot be
    written names its path (no bare errno, no traceback)."""
    result = invoke("run", XOR, "--epochs", "1", "--log", str(tmp_path / "no" / "x.jsonl"))
    assert result.exit_code == 2
    assert f"cannot write the log {tmp_path / 'no' / 'x.jsonl'}: folder" in result.output
    assert "Traceback" not in result.output
    if Path("/dev/full").exists():
        result = invoke("render", XOR, "-o", "/dev/full", "--format", "dot")
        assert result.exit_code == 2
        assert "cannot write /dev/full: No space left on device" in result.output


def test_flags_have_the_bounds_of_the_keys_they_override():
    """--epochs 10**20 would run for ever: refused like train.epochs: 10**20 in the file."""
    result = invoke("run", XOR, "--epochs", 10**20, "--quiet")
    assert result.exit_code == 2
    assert "--epochs must be at most 1,000,000,000" in result.output
