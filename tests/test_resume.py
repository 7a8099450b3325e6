"""Ctrl-C then --load equals an uninterrupted run, bit for bit.

Two kinds of test: interrupts injected in-process at every kind of moment (before the first
step, after any step, inside the optimizer update, in the epoch callback), and real SIGINTs
sent to a `minigraph run --save` subprocess, timed by the lines of its --log file, including
a burst of them while it saves.  Each interrupted run is resumed with --load/--save and its
final checkpoint compared array by array (np.array_equal) with an uninterrupted run's.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from cli.main import main
from minigraph.checkpoint import load_checkpoint
from minigraph.api import Callback, run_model
from minigraph.train import Trainer

MINIGRAPH = Path(sys.executable).parent / "minigraph"


def model(tmp_path, optimizer: dict, n=64, batch_size=16, epochs=6) -> Path:
    """A small classifier with minibatches, shuffling and dropout."""
    d = {"minigraph": 1, "name": "c",
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
         "data": {"train": {"generator": "circles", "n": n, "seed": 3}},
         "train": {"epochs": epochs, "batch_size": batch_size, "shuffle": True, "seed": 5,
                   "optimizer": optimizer, "metrics": ["accuracy"]}}
    path = tmp_path / f"{optimizer['type']}.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


OPTIMIZERS = [{"type": "sgd", "lr": 0.1, "momentum": 0.9}, {"type": "adam", "lr": 0.01}]


def arrays(path) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def assert_same(a_path, b_path):
    a, b = arrays(a_path), arrays(b_path)
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), key


def resume(path, ck):
    result = CliRunner().invoke(main, ["run", str(path), "--load", str(ck), "--save", str(ck),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    return result


# ==== in-process: an interrupt at every kind of moment ==========================================

@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: o["type"])
def test_interrupt_anywhere_then_resume_is_bit_identical(tmp_path, monkeypatch, optimizer):
    path = model(tmp_path, optimizer)  # 4 steps per epoch, 6 epochs: steps 0..23
    full = run_model(path, save=tmp_path / "full.npz")
    real_step = Trainer.train_step
    # (step index, when): "before" the step runs, "after" it, or "inside" the optimizer
    # update (params and state half-changed); "callback": after that epoch's record
    moments = [(0, "before"), (0, "after"), (1, "inside"), (3, "after"), (4, "before"),
               (10, "inside"), (13, "after"), (23, "after"), (1, "callback"), (5, "callback")]
    for index, when in moments:
        calls = {"n": 0}

        def step(self, batch, rng=None, index=index, when=when):
            i = calls["n"]
            calls["n"] += 1
            if i == index and when == "before":
                raise KeyboardInterrupt
            if i == index and when == "inside":
                original = self.optimizer.update_one

                def half(name, param, grad, state):
                    original(name, param, grad, state)
                    raise KeyboardInterrupt
                self.optimizer.update_one = half
                try:
                    return real_step(self, batch, rng)
                finally:
                    del self.optimizer.update_one
            out = real_step(self, batch, rng)
            if i == index and when == "after":
                raise KeyboardInterrupt
            return out

        class Interrupt(Callback):
            def on_epoch_end(self, record, index=index, when=when):
                if when == "callback" and record["epoch"] == index:
                    raise KeyboardInterrupt

        ck = tmp_path / f"ck_{index}_{when}.npz"
        monkeypatch.setattr(Trainer, "train_step", step)
        cut = run_model(path, save=ck, callback=Interrupt())
        monkeypatch.undo()
        assert cut.history.interrupted, (index, when)
        epoch = load_checkpoint(ck).epoch
        # an epoch counts once all its steps are done; an interrupt before that (even just
        # after its last step) goes back to the epoch's start
        expected = index if when == "callback" else index // 4
        assert epoch == cut.epoch == expected, (index, when)
        if epoch < 6:
            resumed = run_model(path, load=ck, save=ck)
            assert resumed.history.last["loss"] == full.history.last["loss"]
        assert_same(tmp_path / "full.npz", ck)


def test_ctrl_c_in_epoch_1_saves_epoch_0_with_untrained_state(tmp_path, monkeypatch):
    path = model(tmp_path, OPTIMIZERS[1])
    run_model(path, epochs=1, save=tmp_path / "zero.npz")  # reference: nothing trained
    fresh = Trainer.__init__

    def stop_after_2(self, *args, **kwargs):
        fresh(self, *args, **kwargs)
        step = self.train_step
        count = {"n": 0}

        def counted(batch, rng=None):
            count["n"] += 1
            out = step(batch, rng)
            if count["n"] == 2:
                raise KeyboardInterrupt
            return out
        self.train_step = counted

    monkeypatch.setattr(Trainer, "__init__", stop_after_2)
    run_model(path, save=tmp_path / "ck.npz")
    monkeypatch.undo()
    ck = load_checkpoint(tmp_path / "ck.npz")
    assert ck.epoch == 0 and ck.optimizer["t"] == 0 and set(ck.optimizer) == {"t"}
    trainer_init = Trainer(*_trainer_args(path))
    for name, value in ck.params.items():
        assert np.array_equal(value, trainer_init.params[name])  # the initial params


def _trainer_args(path):
    from minigraph.api import load_graph, load_splits
    from minigraph.train import train_config

    graph = load_graph(path)
    return graph, train_config(graph), load_splits(graph)


# ==== real SIGINTs sent to `minigraph run` =====================================================

def lines(log: Path) -> int:
    try:
        return log.read_text().count("\n")
    except FileNotFoundError:
        return -1


def start(path, ck, log, *extra):
    return subprocess.Popen([str(MINIGRAPH), "run", str(path), "--save", str(ck), "--log",
                             str(log), "--quiet", *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(condition, proc, timeout=20.0):
    end = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None or time.monotonic() > end:
            return False
        time.sleep(0.0005)
    return True


@pytest.mark.skipif(not MINIGRAPH.exists() or os.name != "posix", reason="needs the minigraph "
                    "command next to this Python, and POSIX signals")
@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: o["type"])
def test_real_sigint_then_resume_is_bit_identical(tmp_path, optimizer):
    epochs = 6
    path = model(tmp_path, optimizer, n=3000, batch_size=8, epochs=epochs)  # 375 steps/epoch
    run_model(path, save=tmp_path / "full.npz")
    # moment name -> (log lines to wait for, extra wait in seconds, burst of signals?)
    moments = {"first_epoch": (0, 0.0, False),      # the log file exists: training begins
               "mid_epoch_3": (2, 0.01, False),
               "between_epochs": (3, 0.0, False),   # epoch 3's line is written
               "while_saving": (epochs - 1, 0.0, True)}  # a burst across the last epoch & save
    for name, (n_lines, delay, burst) in moments.items():
        ck, log = tmp_path / f"{name}.npz", tmp_path / f"{name}.jsonl"
        proc = start(path, ck, log)
        assert wait_for(lambda: lines(log) >= n_lines, proc), (name, proc.communicate())
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        if burst:  # keep interrupting until the checkpoint appears (or the run ends)
            while proc.poll() is None and not ck.exists():
                proc.send_signal(signal.SIGINT)
                time.sleep(0.0002)
        out, err = proc.communicate(timeout=30)
        text = out + err
        assert "Traceback" not in text and "Aborted" not in text, (name, text)
        assert proc.returncode in (130, 0), (name, proc.returncode, text)
        saved = load_checkpoint(ck).epoch
        if proc.returncode == 130:
            assert err.strip().splitlines() == [
                f"interrupted (Ctrl-C) {'after epoch %d' % saved if saved else 'before the first epoch ended'}: "
                f"saved the state at epoch {saved} to {ck}; continue with --load {ck}"], name
            assert out == ""
        assert not list(tmp_path.glob(".*.tmp")), name  # no temporary file left behind
        if saved < epochs:
            resume(path, ck)
        assert_same(tmp_path / "full.npz", ck)
        for line in log.read_text().splitlines():
            json.loads(line)  # whole lines only


@pytest.mark.skipif(not MINIGRAPH.exists() or os.name != "posix", reason="needs the minigraph "
                    "command next to this Python, and POSIX signals")
def test_kill_9_never_loses_the_last_good_checkpoint(tmp_path):
    path = model(tmp_path, OPTIMIZERS[1], n=3000, batch_size=8, epochs=4)
    ck, log = tmp_path / "ck.npz", tmp_path / "log.jsonl"
    CliRunner().invoke(main, ["run", str(path), "--epochs", "1", "--save", str(ck), "--quiet"])
    for n_lines in (0, 2):
        proc = start(path, ck, log, "--load", str(ck))
        assert wait_for(lambda: lines(log) >= n_lines, proc)
        proc.kill()
        proc.wait()
        assert load_checkpoint(ck).epoch == 1  # untouched: saves happen only at the end
    proc = start(path, ck, log, "--load", str(ck))
    assert wait_for(lambda: lines(log) >= 3, proc)  # training ends: the save is about to run
    while proc.poll() is None:
        time.sleep(0.0001)
        if ck.stat().st_mtime_ns and proc.poll() is None:
            proc.kill()
            break
    proc.wait()
    assert load_checkpoint(ck).epoch in (1, 4)  # the old file or the new one, whole
