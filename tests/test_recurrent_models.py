"""The recurrent lessons of the curriculum: rnn_sine, lstm_windows, lstm_weather and the
memory pair; each learns what its description says, and each is drawn collapsed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import minigraph as mg
from minigraph.api import draw, run_model
from minigraph.bptt import bptt_profile
from minigraph.cli.main import main
from minigraph.errors import MinigraphError

ROOT = Path(__file__).resolve().parents[1]
RECURRENT = ["rnn_sine", "lstm_windows", "lstm_weather", "memory_rnn", "memory_lstm"]


def path(name):
    return ROOT / "models" / f"{name}.yaml"


def final(name):
    result = run_model(path(name))
    return result.history.records[0], result.history.last


# ==== they learn what their descriptions say ======================================================

@pytest.mark.parametrize("name, first_loss, loss, test_loss, test_baseline", [
    ("rnn_sine", 0.20, 0.006, 0.004, 0.035),
    ("lstm_windows", 0.86, 0.17, 0.16, 0.18),
    ("lstm_weather", 0.40, 0.117, 0.155, 0.185),
])
def test_the_recurrent_lessons_learn(name, first_loss, loss, test_loss, test_baseline):
    first, last = final(name)
    assert first["loss"] == pytest.approx(first_loss, rel=0.1)
    assert last["loss"] == pytest.approx(loss, rel=0.15)
    assert last["test_loss"] == pytest.approx(test_loss, rel=0.15)
    assert last["test_persistence_mse"] == pytest.approx(test_baseline, rel=0.05)
    assert last["test_loss"] < last["test_persistence_mse"]  # better than "next = last"


def test_lstm_weather_beats_persistence_and_prints_both_mses():
    result = CliRunner().invoke(main, ["run", str(path("lstm_weather")), "--quiet"])
    assert result.exit_code == 0, result.output
    line = result.output.splitlines()[1].split()
    numbers = dict(zip(line[::2], map(float, line[1::2])))
    assert numbers["test_loss"] < numbers["test_persistence_mse"]  # the model's MSE and ...
    assert "test_persistence_mse" in result.output  # ... the baseline's, side by side


def test_memory_pair_gradients_vanish_in_the_rnn_not_the_lstm():
    rnn, lstm = bptt_profile(path("memory_rnn")), bptt_profile(path("memory_lstm"))
    assert len(rnn.sizes) == len(lstm.sizes) == 40
    assert rnn.ratio < 1e-9  # 2.8e-10: the first step gets nothing
    assert lstm.ratio > 1e-3  # 3.4e-3: a million times more than the RNN's
    assert rnn.sizes[0] == pytest.approx(4.6e-13, rel=0.1)  # the numbers of the descriptions
    assert lstm.sizes[0] == pytest.approx(3.3e-6, rel=0.1)


# ==== drawing =====================================================================================

@pytest.mark.parametrize("name", RECURRENT)
def test_recurrent_models_render_collapsed_with_grads(name):
    dot = draw(path(name), grads=True).dot
    graph = mg.load_graph(path(name))
    T = graph.inputs["x"].shape[1]
    layer = graph.spec.nodes[0].name
    assert f"... {T - 4} more steps ..." in dot
    for shown in (1, 2, T - 1, T):
        assert f"{layer}/t{shown}" in dot
    assert f"{layer}/t3 " not in dot and f"{layer}/t3<" not in dot  # hidden step groups
    nodes = [line for line in dot.splitlines() if "->" not in line]  # node statements
    assert sum(f'tooltip="{layer}.W (' in line for line in nodes) == 1  # shared: drawn once


def test_expand_draws_every_step_and_unknown_layers_are_named():
    dot = draw(path("memory_rnn"), expand=["rnn1"]).dot
    assert "more steps" not in dot
    assert all(f"rnn1/t{t}" in dot for t in range(1, 41))
    with pytest.raises(MinigraphError, match="did you mean 'rnn1'"):
        draw(path("memory_rnn"), expand=["rnn2"])


def test_render_and_plot_bptt_commands(tmp_path):
    runner = CliRunner()
    out = tmp_path / "m.dot"
    result = runner.invoke(main, ["render", str(path("rnn_sine")), "--expand", "rnn1", "-o",
                                  str(out)])
    assert result.exit_code == 0, result.output
    assert "more steps" not in out.read_text()
    pytest.importorskip("matplotlib", reason="plot bptt needs matplotlib (the plot extra)")
    png = tmp_path / "bptt.png"
    result = runner.invoke(main, ["plot", "bptt", str(path("memory_rnn")),
                                  str(path("memory_lstm")), "-o", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:4] == b"\x89PNG"
    result = runner.invoke(main, ["plot", "bptt", str(ROOT / "models" / "xor.yaml")])
    assert result.exit_code == 2 and "no recurrent layer" in result.output


def test_bptt_with_trained_params(tmp_path):
    ckpt = tmp_path / "m.npz"
    run_model(path("memory_lstm"), save=ckpt)
    trained = bptt_profile(path("memory_lstm"), params=ckpt)
    fresh = bptt_profile(path("memory_lstm"))
    assert not np.allclose(trained.sizes, fresh.sizes)
