"""What ``minigraph run`` shows while and after it trains (issue 14, points 1-5): the start line,
epoch lines that stay (terminal and pipe alike), the live bar, --verbose/--quiet, the trained
params in the final summary, early stopping, exit codes and wording.

The terminal tests run the real command in a pseudo-terminal (``pty``) and read the screen it
leaves: what a line shows after its last carriage return.
"""
from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import click
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from minigraph.api import load_graph, run_model
from minigraph.cli.main import main
from minigraph.cli.progress import Progress, bar, clock_text

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
OR = str(MODELS / "or_perceptron.yaml")
XOR = str(MODELS / "xor.yaml")
MINIGRAPH = Path(sys.executable).parent / "minigraph"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def in_terminal(*args, columns=100, timeout=120) -> tuple:
    """``minigraph ARGS`` in a pseudo-terminal ``columns`` wide: (exit code, raw output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.Popen([str(MINIGRAPH), *map(str, args)], stdin=slave, stdout=slave,
                            stderr=slave, cwd=ROOT, env=env)
    os.close(slave)
    out, end = b"", time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other side closed
                chunk = b""
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=10), out.decode()


def screen(raw: str) -> list:
    """The lines a terminal shows at the end: each line as its last carriage return left it."""
    lines = [line.rstrip("\r").split("\r")[-1].rstrip() for line in raw.split("\n")]
    return [line for line in lines if line]


# ==== 1-2: the start line, epoch lines that stay, levels ==========================================

OR_J = ["0.5", "0.375", "0.125", "0.375", "0"]  # the perceptron criterion, as its lesson says


def test_pipe_shows_the_start_line_and_every_epoch_line_of_the_lesson():
    result = invoke("run", OR)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == ("training or_perceptron: 3 params, 4 training examples, full batch, "
                        "sgd lr 0.4, 100 epochs, on numpy")
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [re.match(r"epoch (\d+)/100: loss (\S+)", line).groups() for line in epochs] == \
        [(str(i + 1), j) for i, j in enumerate(OR_J)]
    assert "lr 0.4" in epochs[0] and "accuracy 0.5" in epochs[0]
    assert re.search(r"\(\d.* m?s\)$", epochs[0])  # the epoch's time


def test_epoch_lines_follow_log_every_and_the_levels():
    lines = invoke("run", XOR, "--epochs", "3000").output.splitlines()
    assert [int(line.split()[1].split("/")[0]) for line in lines if line.startswith("epoch ")] \
        == [1, 1000, 2000, 3000]
    verbose = invoke("run", XOR, "--epochs", "30", "--verbose").output.splitlines()
    assert len([line for line in verbose if line.startswith("epoch ")]) == 30
    quiet = invoke("run", XOR, "--epochs", "30", "--quiet").output
    assert "epoch 1/" not in quiet and "training xor" not in quiet
    assert quiet.startswith("model xor: trained 30 epochs (done)")
    both = invoke("run", XOR, "--quiet", "--verbose")
    assert both.exit_code == 2 and "contradict" in both.output


def test_terminal_keeps_every_epoch_line_and_ends_at_the_real_epoch():
    code, raw = in_terminal("run", OR)
    assert code == 0
    shown = screen(raw)
    epochs = [line for line in shown if line.startswith("epoch ") and ": loss" in line]
    assert [line.split()[1] for line in epochs] == [f"{i}/100:" for i in range(1, 6)]
    assert [line.split()[3] for line in epochs] == OR_J
    assert shown[0].startswith("training or_perceptron: 3 params")
    assert "examples/s" in raw and "ETA" in raw  # the live bar was drawn ...
    assert not any("examples/s" in line for line in shown)  # ... and is gone at the end
    assert "%" not in raw  # no "5%" bar of a run that stopped early
    assert "trained 5 epochs (stopped early: target reached, accuracy >= 1)" in raw


def test_a_terminal_of_width_0_gets_lines_only():
    code, raw = in_terminal("run", OR, columns=0)
    assert code == 0
    assert "examples/s" not in raw and "\r\r" not in raw.replace("\r\n", "\n")
    assert len([line for line in screen(raw) if line.startswith("epoch ")]) == 5


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeTrainer:
    """What the progress reads of a trainer: sizes, config, graph, backend."""

    def __init__(self, n=60000, batch_size=100, epochs=5):
        graph = load_graph(str(MODELS / "mnist_softmax.yaml"))
        self.graph = graph
        self.train_data = {"x": np.zeros((n, 1)), "label": np.zeros(n)}
        self.test_data = {"x": np.zeros((10000, 1)), "label": np.zeros(10000)}
        self.config = type("C", (), {"batch_size": batch_size, "drop_last": False,
                                     "optimizer": {"type": "sgd", "lr": 0.1},
                                     "schedule": None, "epochs": epochs})()
        self.backend = type("B", (), {"name": "numpy"})()


def test_the_bar_moves_from_the_first_batch_with_an_eta_from_the_real_start():
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(stream=out, width=120, clock=clock)
    progress.on_train_begin(total=5, start=0, log_every=1, trainer=FakeTrainer())
    assert out.getvalue().startswith("training mnist_softmax: 7,850 params, 60,000 training "
                                     "examples, 10,000 test, batch 100, sgd lr 0.1, 5 epochs")
    clock.now = 6.0  # loading took nothing; the first 60 batches took 6 s
    progress.on_batch_end(59, {"loss": 0.75, "examples": 6000})
    drawn = out.getvalue().splitlines()[-1]
    assert "epoch 1/5" in drawn and "60/600" in drawn and "loss 0.75" in drawn
    assert "1,000 examples/s" in drawn
    # 6 s for 1/10 of an epoch: 4.9 epochs left take 294 s, from the real start
    assert "ETA 4:54" in drawn
    assert len(drawn.split("\r")[-1]) < 120


def test_when_an_epoch_is_one_batch_the_bar_counts_the_runs_epochs():
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(stream=out, width=120, clock=clock)
    progress.on_train_begin(total=100, log_every=50, trainer=FakeTrainer(n=4, batch_size=None))
    clock.now = 1.0
    progress.on_batch_end(0, {"loss": 0.7, "examples": 4})
    progress.on_epoch_end({"epoch": 1, "loss": 0.7, "lr": 1.0, "seconds": 1.0})
    clock.now = 2.0
    progress.on_batch_end(0, {"loss": 0.69, "examples": 4})
    drawn = out.getvalue().split("\r")[-1]
    assert drawn.startswith("epoch 2/100  [    ") and "/1 " not in drawn
    assert "4 examples/s" in drawn and "ETA 1:38" in drawn  # 2 of 100 epochs in 2 s


def test_the_bar_fits_the_terminal_and_draws_at_most_every_tenth_of_a_second():
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(stream=out, width=50, clock=clock)
    progress.on_train_begin(total=5, trainer=FakeTrainer())
    progress.on_batch_end(0, {"loss": 2.3, "examples": 100})
    start = len(out.getvalue())
    progress.on_batch_end(1, {"loss": 2.2, "examples": 200})  # same instant: not drawn
    assert len(out.getvalue()) == start
    drawn = out.getvalue().split("\r")[-1]
    assert 0 < len(drawn) < 50 and "[" not in drawn  # no room for the bar itself
    assert bar(0.5) == "[" + "=" * 11 + ">" + " " * 12 + "]" and len(bar(1.0)) == 26
    assert clock_text(3725) == "1:02:05" and clock_text(None) == "?"


# ==== 3: the trained params =======================================================================

def test_final_summary_prints_small_params_by_name():
    out = invoke("run", OR, "--quiet").output
    assert "  w = [[0.3], [0.75]]" in out and "  b = [-0.025]" in out
    out = invoke("run", MODELS / "linear_regression.yaml", "--quiet").output
    assert re.search(r"  W = \[\[0\.98\d*\]\]", out) and "  b = [0.03" in out


def test_final_summary_prints_large_params_as_shape_and_statistics(tmp_path):
    text = Path(XOR).read_text().replace("W1: {shape: [2, 2]", "W1: {shape: [2, 12]") \
        .replace("b1: {shape: [2]", "b1: {shape: [12]").replace("W2: {shape: [2, 1]",
                                                                 "W2: {shape: [12, 1]")
    path = tmp_path / "wide.yaml"
    path.write_text(text)
    out = invoke("run", path, "--epochs", "2", "--quiet").output
    assert re.search(r"  W1 \(2, 12\): mean \S+  std \S+  min \S+  max \S+", out)
    assert re.search(r"  b1 = \[", out)  # 12 values: in full


DESCRIBED = {"linear_regression": ["W", "b"], "noisy_line": ["w", "b"],
             "polynomial_regression": ["a", "b"], "optimizer_race": ["x", "y"],
             "or_perceptron": ["w", "b"]}


@pytest.mark.parametrize("path", sorted(MODELS.glob("*.yaml")), ids=lambda p: p.stem)
def test_descriptions_name_params_as_the_tools_print_them(path):
    graph = load_graph(str(path))
    words = set(re.findall(r"[A-Za-z_][\w.]*[A-Za-z0-9_]|\w", graph.spec.description or ""))
    dotted = {w for w in words if re.fullmatch(r"\w+\.(W|b)", w)}
    assert dotted <= set(graph.params), f"names no param: {sorted(dotted - set(graph.params))}"
    if any("." in name for name in graph.params):  # layer params: W alone is not a name
        assert not {"W", "W1", "W2", "b1", "b2"} & words - set(graph.params)
    for name in DESCRIBED.get(path.stem, []):
        assert name in graph.params and name in words


# ==== 4: early stopping and stop_at on test metrics ==============================================

def overfitting_model(**train) -> dict:
    """A line fitted to 3 noisy points, tested on 20 others: the test loss turns up."""
    rng = np.random.default_rng(0)
    x = np.linspace(-1, 1, 20)[:, None]
    model = {
        "minigraph": 1, "name": "overfit",
        "inputs": {"x": {"shape": ["batch", 1]}, "t": {"shape": ["batch", 1]}},
        "params": {"w": {"shape": [1, 1], "init": "zeros"}, "b": {"shape": [1], "init": "zeros"}},
        "nodes": [{"name": "mm", "op": "matmul", "inputs": ["x", "w"], "outputs": ["xw"]},
                  {"name": "add", "op": "add", "inputs": ["xw", "b"], "outputs": ["y"]},
                  {"name": "cost", "op": "mse", "inputs": ["y", "t"], "outputs": ["L"]}],
        "outputs": ["y"], "loss": "L",
        "data": {"train": {"inline": {"x": [[-1.0], [0.0], [1.0]], "t": [[2.0], [-1.0], [0.5]]}},
                 "test": {"inline": {"x": x.tolist(),
                                     "t": (0.2 * x + 0.1 * rng.normal(size=x.shape)).tolist()}}},
        "train": {"epochs": 300, "optimizer": {"type": "sgd", "lr": 0.05}, "shuffle": False,
                  **train},
    }
    return model


def test_early_stopping_has_keras_semantics_and_restores_the_best_epoch():
    es = {"monitor": "test_loss", "patience": 5, "min_delta": 0, "restore_best": True}
    result = run_model(overfitting_model(early_stopping=es))
    h = result.history
    losses = [r["test_loss"] for r in h.records]
    best = int(np.argmin(losses)) + 1
    assert h.stopped_early and len(h.records) == best + 5  # patience epochs after the best
    assert h.restored_epoch == best and "test_loss did not improve for 5 epochs" in h.stop_reason
    replay = run_model(overfitting_model(epochs=best))  # the params of the best epoch
    for name in ("w", "b"):
        assert np.array_equal(np.asarray(result.trainer.params[name]),
                              np.asarray(replay.trainer.params[name]))
    plain = run_model(overfitting_model(early_stopping={**es, "restore_best": False}))
    assert plain.history.restored_epoch is None and len(plain.history.records) == best + 5


def test_min_delta_counts_only_larger_improvements():
    small = run_model(overfitting_model(early_stopping={"monitor": "loss", "patience": 0,
                                                        "min_delta": 1e9}))
    assert len(small.history.records) == 2  # epoch 1 sets the best; nothing beats it by 1e9


def test_stop_at_accepts_test_metrics_and_the_summary_says_why(tmp_path):
    result = run_model(overfitting_model(stop_at={"test_loss": 0.5}))
    assert result.history.stopped_early and result.history.last["test_loss"] <= 0.5
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(overfitting_model(
        early_stopping={"patience": 3, "restore_best": True}), sort_keys=False))
    out = invoke("run", path).output
    assert re.search(r"\(stopped early: test_loss did not improve for 3 epochs, best \S+ at "
                     r"epoch \d+\)\n", out)
    assert re.search(r"params restored from epoch \d+, the best", out)


@pytest.mark.parametrize("train, words", [
    ({"stop_at": {"bogus": 1}}, "train.stop_at.bogus cannot watch 'bogus'"),
    ({"stop_at": {"test_accuracy": 1}}, "needs 'accuracy' in train.metrics"),
    ({"early_stopping": {"monitor": "tset_loss"}}, "train.early_stopping.monitor tset_loss"),
    ({"early_stopping": {"patience": -1}}, "train.early_stopping.patience"),
    ({"early_stopping": {"wait": 3}}, "unknown key 'wait' in train.early_stopping"),
])
def test_a_wrong_stop_key_lists_every_accepted_key(tmp_path, train, words):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(overfitting_model(**train), sort_keys=False))
    result = invoke("run", path)
    assert result.exit_code == 2 and words in result.output, result.output
    if "unknown key" not in words and "patience" not in words:
        assert "accepted keys: loss, test_loss" in result.output
    assert result.output.startswith(f"{path}:")  # located


def test_without_test_data_test_keys_are_refused_and_loss_is_listed(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(Path(XOR).read_text().replace("log_every: 1000",
                                                  "stop_at: {test_loss: 0.1}"))
    result = invoke("run", path)
    assert result.exit_code == 2
    assert "needs a data.test section; accepted keys: loss, accuracy" in result.output


def test_stop_at_on_an_error_metric_stops_when_it_falls_below(tmp_path):
    path = tmp_path / "m.yaml"
    text = (MODELS / "linear_regression.yaml").read_text()
    path.write_text(text.replace("metrics: [mse]", "metrics: [mse]\n  stop_at: {mse: 0.01}"))
    result = run_model(str(path))
    assert result.history.stopped_early and result.history.last["mse"] <= 0.01
    assert result.history.records[-2]["mse"] > 0.01


# ==== 5: exit codes, warnings, wording ===========================================================

@pytest.mark.parametrize("debug", [False, True])
def test_every_ctrl_c_exits_130(monkeypatch, debug):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("minigraph.api.load_graph", interrupted)  # while loading the model
    result = CliRunner().invoke(main, ["--debug"] * debug + ["run", XOR])
    assert result.exit_code == 130 and "interrupted (Ctrl-C)" in result.output
    assert "Aborted" not in result.output
    monkeypatch.setattr(click.Group, "parse_args", interrupted)  # while reading the flags
    result = CliRunner().invoke(main, ["--debug"] * debug + ["run", XOR])
    assert result.exit_code == 130 and "Aborted" not in result.output


def test_ctrl_c_while_the_command_line_is_imported_exits_130_without_a_traceback():
    """The ``minigraph`` command imports its command line inside a guard: a Ctrl-C during that
    import (here: raised by the import itself) is one line and exit code 130."""
    code = ("import sys\n"
            "class Interrupt:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'minigraph.cli':\n"
            "            raise KeyboardInterrupt\n"
            "sys.meta_path.insert(0, Interrupt())\n"
            "from minigraph.__main__ import main\n"
            "main()\n")
    proc = subprocess.run([sys.executable, "-c", code, "run", XOR], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 130
    assert proc.stderr == "interrupted (Ctrl-C); nothing was saved\n"


def test_a_nan_loss_says_only_minigraphs_message():
    proc = subprocess.run([str(MINIGRAPH), "run", str(MODELS / "linear_regression.yaml"),
                           "--lr", "10", "--quiet"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: the loss became inf; first produced by node 'cost' (mse) at epoch 11, step 1. "
        "Try a smaller learning rate."]


def test_wording_of_the_summaries():
    assert invoke("run", XOR, "--epochs", "1", "--quiet").output.startswith(
        "model xor: trained 1 epoch (done)")
    basics = invoke("run", MODELS / "backprop_basics.yaml").output
    assert basics.count("= -7") == 1 and "  f = -7 (the loss)" in basics
    chain = invoke("run", MODELS / "chain_rule.yaml").output
    assert "  loss = 40\n" in chain and "loss loss" not in chain
    stopped = invoke("run", OR, "--quiet").output
    assert stopped.splitlines()[0].count("(") == 1
