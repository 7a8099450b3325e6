"""Hostile model files: every one ends in one located message, quickly, allocating little.

The classes come from a campaign of hostile variants of the curriculum's files (tracebacks,
exits without a location, accepted malformed files, hangs, out-of-memory); each has explicit
regression cases here and in ``malformed_cases.HOSTILE``, and ``test_fuzz.py`` generates more.
"""
from __future__ import annotations

import os
import re
import time
import tracemalloc
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from malformed_cases import HOSTILE
from minigraph.cli.main import main
from minigraph.errors import MinigraphError, ModelError
from minigraph.graph import build_graph
from minigraph.loader import parse_text, read_file
from minigraph.spec import parse_spec
from test_spec_graph import BASE

ROOT = Path(__file__).resolve().parent.parent
XOR = ROOT / "models" / "xor.yaml"
LOCATED = re.compile(r"^\S+:\d+:\d+: ")


def build(text, file="m.yaml"):
    return build_graph(parse_spec(parse_text(text, file)))


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def bounded(fn):
    """Run ``fn``; return (exception or None, CPU seconds, peak MB of Python allocations)."""
    tracemalloc.start()
    start = time.process_time()
    try:
        fn()
        error = None
    except MinigraphError as exc:
        error = exc
    finally:
        seconds = time.process_time() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return error, seconds, peak


@pytest.mark.parametrize("case_id, old, new, fragment", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_variant_is_refused_with_a_location(case_id, old, new, fragment):
    assert old in BASE
    text = BASE.replace(old, new, 1)
    error, seconds, peak = bounded(lambda: build(text))
    assert isinstance(error, ModelError), f"accepted: {case_id}"
    assert LOCATED.match(str(error)) and str(error).startswith("m.yaml:"), str(error)
    assert fragment in str(error)
    assert "\n" not in str(error) and len(str(error)) < 600
    assert seconds < 5 and peak < 100, (seconds, peak)


@pytest.mark.parametrize("case_id, old, new, fragment",
                         [c for c in HOSTILE if c[0] in ("int_5000_digits", "deep_flow",
                                                         "lone_surrogate", "non_string_key")],
                         ids=lambda c: c if isinstance(c, str) and c.isidentifier() else "")
def test_hostile_json_variant_is_located(tmp_path, case_id, old, new, fragment):
    data = yaml.safe_load(BASE)
    if case_id == "int_5000_digits":
        text = yaml.safe_dump(data).replace("minigraph: 1", "x")
        text = '{"minigraph": ' + "9" * 5000 + ', "name": "m"}'
    elif case_id == "deep_flow":
        text = '{"minigraph": 1, "name": ' + "[" * 5000 + "]" * 5000 + "}"
    elif case_id == "lone_surrogate":
        text = '{"minigraph": 1, "name": "a\\ud800"}'
    else:
        text = '{"minigraph": 1, "name": "m", "inputs": {}, "nodes": [{"name": "a", "op": "relu", "attrs": {"1": 2}}]}'
        text = text.replace('"1"', "1")  # not JSON: a JSON syntax error, located
    error, seconds, _ = bounded(lambda: build(text, "m.json"))
    assert isinstance(error, ModelError) and LOCATED.match(str(error)), str(error)
    assert seconds < 5


# ==== bytes on disk ===============================================================================

def base_bytes():
    return BASE.encode("utf-8")


@pytest.mark.parametrize("raw, where, fragment", [
    (base_bytes().replace(b"name: tiny", b"name: ti\xffny"), "m.yaml:2:9:", "byte 0xff"),
    (base_bytes().replace(b"name: tiny", b"name: ti\xc3"), "m.yaml:2:9:", "not UTF-8"),
    ("\ufeff".encode("utf-16-le") + BASE.encode("utf-16-le"), "m.yaml:1:1:", "UTF-16"),
    (base_bytes().replace(b"tiny", b"ti\x00ny"), "m.yaml:2:9:", "NUL byte"),
    (base_bytes()[:200], "m.yaml:", ""),
])
def test_damaged_bytes_are_located(tmp_path, raw, where, fragment):
    path = tmp_path / "m.yaml"
    path.write_bytes(raw)
    result = invoke("check", path)
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith(f"{tmp_path / where}") and fragment in line, line


def test_a_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + XOR.read_bytes())
    assert read_file(path).data["name"] == "xor"
    json_path = tmp_path / "m.json"
    json_path.write_bytes(b"\xef\xbb\xbf" + b'{"minigraph": 1, "name": "j"}')
    assert read_file(json_path).data["name"] == "j"


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_model_path_that_is_not_a_regular_file_is_refused(tmp_path):
    start = time.perf_counter()
    result = invoke("check", "/dev/zero")
    assert result.exit_code == 2 and "not a regular file" in result.output
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    result = invoke("run", fifo)  # opening a FIFO would block forever
    assert result.exit_code == 2 and "not a regular file" in result.output
    assert time.perf_counter() - start < 10  # wall clock: a blocked open uses no CPU


def test_a_huge_model_file_is_refused_before_reading(tmp_path, monkeypatch):
    import minigraph.limits as limits

    monkeypatch.setattr(limits, "MAX_MODEL_FILE_BYTES", 1000)
    path = tmp_path / "m.yaml"
    path.write_text(BASE + "#" * 2000 + "\n")
    with pytest.raises(ModelError, match="at most 1,000 are allowed"):
        read_file(path)


# ==== layer ops ===================================================================================

CONV = """\
minigraph: 1
name: c
inputs:
  img: {shape: [batch, 1, 28, 28]}
nodes:
  - {name: c1, op: conv, inputs: [img], outputs: [f], attrs: {filters: 2, kernel: 3}}
outputs: [f]
"""


@pytest.mark.parametrize("attrs, fragment", [
    ("stride: 0", "'stride' must be at least 1"),
    ("stride: -1", "'stride' must be at least 1"),
    ("padding: -1", "'padding' must be at least 0"),
    ("padding: 1000000", "allowed in one tensor"),
    ("kernel: 0", "'kernel' must be at least 1"),
    ("filters: 0", "'filters' must be at least 1"),
    ("filters: 100000", "allowed in one tensor"),
    ("kernel: 100", "kernel"),
    ("stride: 1.5", "must be int"),
])
def test_conv_layer_attrs_are_checked_at_load(attrs, fragment):
    key = attrs.split(":")[0]
    text = re.sub(rf"{key}: \d+", attrs, CONV) if f"{key}:" in CONV else \
        CONV.replace("kernel: 3}", f"kernel: 3, {attrs}}}")
    error, seconds, peak = bounded(lambda: build(text))
    assert isinstance(error, ModelError) and str(error).startswith("m.yaml:6:"), str(error)
    assert fragment in str(error)
    assert seconds < 5 and peak < 50


# ==== the train section: check refuses what run refuses ==========================================

TRAIN_MISTAKES = {
    "optimiser_typo": ({"optimiser": {"type": "sgd"}}, "unknown key 'optimiser' in train (did you mean 'optimizer'?)"),
    "adamw": ({"optimizer": {"type": "adamw", "lr": 0.1}}, "unknown optimizer type 'adamw'"),
    "metric_acc": ({"metrics": ["acc"]}, "unknown metric 'acc'"),
    "metric_list": ({"metrics": [["accuracy"]]}, "a metric is a name"),
    "epochs_float": ({"epochs": 300.5}, "train.epochs must be a positive integer"),
    "epochs_huge": ({"epochs": 10 ** 20}, "train.epochs must be at most"),
    "lr_negative": ({"optimizer": {"type": "sgd", "lr": -0.01}}, "option 'lr' must be a finite number >= 0"),
    "lr_nan": ({"optimizer": {"type": "sgd", "lr": float("nan")}}, "option 'lr' must be a finite number"),
    "seed_negative": ({"seed": -1}, "train.seed must be a whole number from 0"),
    "backend_number": ({"backend": 5}, "train.backend must be one of numpy, cupy, auto"),
    "backend_typo": ({"backend": "nympy"}, "did you mean 'numpy'?"),
    "threshold_inf": ({"threshold": float("inf")}, "train.threshold must be a finite number"),
    "schedule_overflow": ({"epochs": 5000, "schedule": {"type": "exponential", "gamma": 10.0}},
                          "the schedule gives no usable learning rate at epoch 5000"),
    "schedule_unknown_option": ({"schedule": {"type": "step", "step_sise": 3}},
                                "unknown option 'step_sise'"),
    "stop_at_list": ({"stop_at": {"accuracy": [1]}}, "must be a number"),
}


def xor_with_train(tmp_path, changes):
    d = yaml.safe_load(XOR.read_text())
    d["train"].update(changes)
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


@pytest.mark.parametrize("kind", sorted(TRAIN_MISTAKES))
def test_check_refuses_what_run_refuses(tmp_path, kind):
    changes, fragment = TRAIN_MISTAKES[kind]
    path = xor_with_train(tmp_path, changes)
    for command in (["check", path], ["run", path, "--quiet", "--epochs", "1"]):
        if kind == "schedule_overflow" and command[0] == "run":
            command = ["run", path, "--quiet"]  # --epochs 1 would end before the overflow
        result = invoke(*command)
        assert result.exit_code == 2, (command, result.output)
        line = result.output.strip()
        assert "\n" not in line and fragment in line, line
        assert line.startswith(f"{path}:"), line


def test_check_validates_a_named_data_set_section(tmp_path):
    d = yaml.safe_load((ROOT / "models" / "mnist_mlp.yaml").read_text())
    d["data"]["train"]["scael"] = 255
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    result = invoke("check", path)
    assert result.exit_code == 2 and "scael" in result.output, result.output
    assert result.output.startswith(f"{path}:")


def test_seed_flag_must_not_be_negative():
    result = invoke("run", XOR, "--seed", "-1", "--epochs", "1")
    assert result.exit_code == 2 and "Traceback" not in result.output


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_lr_flag_must_be_finite(value):
    result = invoke("run", XOR, "--lr", value, "--epochs", "1")
    assert result.exit_code == 2 and "not a finite number" in result.output


# ==== names that are markup ======================================================================

MARKUP = """\
minigraph: 1
name: "a<b>&\\"c'"
description: "x < y & \\"z\\" > w"
inputs:
  "x<1>": {shape: [batch, 2]}
  "t&\\"": {shape: [batch, 1]}
params:
  "W<&>": {shape: [2, 1], init: xavier_uniform}
nodes:
  - {name: "fc<\\"&'>", op: matmul, inputs: ["x<1>", "W<&>"], outputs: ["z<>&\\""]}
  - {name: "lin</g>", op: linear, inputs: ["z<>&\\""], outputs: ["y]]>"], attrs: {units: 1}}
  - {name: "l\\\\oss", op: mse, inputs: ["y]]>", "t&\\""], outputs: ["L&amp;"]}
outputs: ["y]]>"]
loss: "L&amp;"
data:
  train: {inline: {"x<1>": [[0, 1], [1, 0]], "t&\\"": [[1], [0]]}}
"""


@pytest.mark.parametrize("flags", [(), ("--grads",)])
def test_render_escapes_names_that_are_markup(tmp_path, flags):
    path = tmp_path / "m.yaml"
    path.write_text(MARKUP)
    out = tmp_path / "m.svg"
    result = invoke("render", path, *flags, "-o", out)
    assert result.exit_code == 0, result.output
    tree = ET.parse(out)  # valid XML
    texts = {e.text for e in tree.iter() if e.text}
    for name in ("x<1>", "W<&>", "lin</g>", "t&\"", "L&amp;" if flags else "x<1>"):
        assert any(name in t for t in texts), name
    dot = tmp_path / "m.dot"
    assert invoke("render", path, "-o", dot).exit_code == 0
    assert "\x1b" not in dot.read_text()
