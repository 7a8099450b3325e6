"""The ``window`` data option and the series generators (sine, drive)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from minigraph.data import load_data
from minigraph.data.window import windows
from minigraph.errors import DataError, ModelError

ROOT = Path(__file__).resolve().parents[1]
WEATHER = ROOT / "models" / "data" / "seattle-weather.csv"


def inputs(T, F, k=1):
    return {"x": {"shape": ["batch", T, F]}, "t": {"shape": ["batch", k]}}


def load(train, ins, base_dir="."):
    return load_data({"train": train}, ins, base_dir=base_dir)


def test_windows_by_hand():
    table = np.arange(20.0).reshape(10, 2)  # step s: (2s, 2s + 1)
    x, t = windows(table, [0, 1], [1], size=3, horizon=1, stride=2)
    assert x.shape == (4, 3, 2) and t.shape == (4, 1)  # starts 0, 2, 4, 6
    np.testing.assert_array_equal(x[1], table[2:5])
    np.testing.assert_array_equal(t[:, 0], table[[3, 5, 7, 9], 1])
    x, t = windows(table, [0], [0], size=4, horizon=3, stride=1)
    assert len(x) == 4  # the target 3 steps after the window must exist
    np.testing.assert_array_equal(t[:, 0], table[[6, 7, 8, 9], 0])


def test_the_lectures_drive_gives_980_windows_of_20_seconds():
    splits = load({"generator": "drive", "window": {"size": 20}}, inputs(20, 4, 4))
    # 1,000 seconds hold 981 windows of 20; the last has no next second to predict
    assert splits.train["x"].shape == (980, 20, 4) and splits.train["t"].shape == (980, 4)
    assert splits.test is None
    x, t = splits.train["x"], splits.train["t"]
    np.testing.assert_array_equal(x[1:, -1], t[:-1])  # each target is the next window's last
    speed, rpm, brake = (x[:, 0, k].astype(np.float64) for k in range(3))
    assert np.corrcoef(brake[1:], -np.diff(speed))[0, 1] > 0.5  # braking slows the car
    gear_one = speed < 20  # within one gear, rpm follows speed
    assert np.corrcoef(speed[gear_one], rpm[gear_one])[0, 1] > 0.8


def test_split_by_time_never_leaks_and_standardises_with_the_train_part_only():
    window = {"size": 10, "standardize": True}
    splits = load({"generator": "sine", "n": 200, "period": 40, "trend": 0.05,
                   "window": window, "test_fraction": 0.25}, inputs(10, 1))
    train, test = splits.train, splits.test
    # 150 train steps -> 140 windows; 50 test steps -> 40 windows: none crosses the cut
    assert len(train["x"]) == 140 and len(test["x"]) == 40
    raw = np.sin(2 * np.pi * np.arange(200) / 40) + 0.05 * np.arange(200)
    mean, std = raw[:150].mean(), raw[:150].std()
    np.testing.assert_allclose(train["x"][0, :, 0], (raw[:10] - mean) / std, rtol=1e-5)
    np.testing.assert_allclose(test["x"][0, :, 0], (raw[150:160] - mean) / std, rtol=1e-5)
    np.testing.assert_allclose(test["t"][-1, 0], (raw[199] - mean) / std, rtol=1e-5)
    assert abs(float(train["x"].mean())) < 0.2 and float(test["x"].mean()) > 1  # the trend


def test_weather_columns_by_name_and_the_persistence_baseline():
    window = {"size": 20, "features": ["precipitation", "temp_max", "temp_min", "wind"],
              "target": ["temp_max"], "standardize": True}
    splits = load({"file": str(WEATHER), "window": window, "test_fraction": 0.2},
                  inputs(20, 4))
    n_test = round(1461 * 0.2)
    assert len(splits.test["x"]) == n_test - 20 and len(splits.train["x"]) == 1461 - n_test - 20
    x, t = splits.test["x"], splits.test["t"]
    want = float(np.mean((x[:, -1, 1] - t[:, 0]) ** 2))  # tomorrow = today
    assert splits.baselines["test_persistence_mse"] == pytest.approx(want, rel=1e-5)
    assert 0 < splits.baselines["persistence_mse"] < 1


@pytest.mark.parametrize("train, error, message", [
    ({"generator": "circles", "window": {"size": 3}}, ModelError, "needs a time series"),
    ({"generator": "sine", "window": {"size": 3, "sise": 2}}, ModelError, "did you mean 'size'"),
    ({"generator": "sine", "window": {"horizon": 2}}, ModelError, "needs key 'size'"),
    ({"generator": "sine", "n": 10, "window": {"size": 10}}, DataError, "give no window"),
    ({"generator": "sine", "n": 1000000, "window": {"size": 300}}, ModelError,
     "more than the limit"),  # refused before the windows are allocated
    ({"generator": "sine", "window": {"size": 3}, "test_fraction": 0.2, "split_seed": 1},
     ModelError, "splits by time"),
    ({"file": str(WEATHER), "window": {"size": 3, "features": ["temp_mx"]}}, DataError,
     "did you mean 'temp_max'"),
    ({"file": str(WEATHER), "window": {"size": 3, "features": ["weather"]}}, DataError,
     "no number"),
])
def test_window_mistakes_are_named(train, error, message):
    with pytest.raises(error, match=message):
        load(train, inputs(3, 1))


def test_a_windowed_source_refuses_a_separate_test_source():
    with pytest.raises(ModelError, match="makes its own test part"):
        load_data({"train": {"generator": "sine", "window": {"size": 3}},
                   "test": {"generator": "sine"}}, inputs(3, 1), base_dir=".")


def test_series_without_a_window_give_each_step_and_the_next():
    splits = load({"generator": "sine", "n": 50, "period": 10},
                  {"x": {"shape": ["batch", 1]}, "t": {"shape": ["batch", 1]}})
    x, t = splits.train["x"], splits.train["t"]
    assert x.shape == (49, 1)
    np.testing.assert_array_equal(x[1:], t[:-1])


def test_series_generators_are_seeded():
    ins = {"x": {"shape": ["batch", 4]}, "t": {"shape": ["batch", 4]}}
    first, again, other = (load({"generator": "drive", "n": 100, "seed": s}, ins).train["x"]
                           for s in (3, 3, 4))
    np.testing.assert_array_equal(first, again)
    assert first.shape == (99, 4) and not np.array_equal(first, other)
    sine = {"x": {"shape": ["batch", 1]}, "t": {"shape": ["batch", 1]}}
    a, b = (load({"generator": "sine", "n": 20, "noise": 0.1, "seed": s}, sine).train["x"]
            for s in (1, 2))
    assert not np.array_equal(a, b)
