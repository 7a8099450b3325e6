"""Tests of minigraph.data: every data source, the train/test split, batching and MNIST."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from minigraph.data import (
    GENERATORS,
    DataSplits,
    iterate_batches,
    load_data,
    mnist_files,
    num_examples,
)
from minigraph.errors import DataError, Location, ModelError

# The inputs section of a typical two-input model: features x and targets t.
XT = {"x": {"shape": ["batch", 2], "dtype": "float32"},
      "t": {"shape": ["batch", 1], "dtype": "float32"}}


def fake_at(*keys):
    """Stand-in for the model loader's key locator: the line number is the path's depth."""
    return Location("model.yaml", line=len(keys), column=1)


def load(data, inputs=XT, **kwargs):
    kwargs.setdefault("base_dir", ".")
    return load_data(data, inputs, **kwargs)


# ----------------------------------------------------------------------------------------------
# The data section itself
# ----------------------------------------------------------------------------------------------

def test_no_data_section_gives_no_splits():
    assert load_data(None, XT, base_dir=".") == DataSplits(train=None, test=None)


def test_train_is_required():
    with pytest.raises(ModelError, match="needs a 'train' source"):
        load({"test": {"generator": "xor"}})


def test_unknown_top_level_key_suggests_the_right_one():
    with pytest.raises(ModelError, match=r"'tset'.*did you mean 'test'"):
        load({"train": {"generator": "xor"}, "tset": {"generator": "xor"}})


# ----------------------------------------------------------------------------------------------
# inline
# ----------------------------------------------------------------------------------------------

XOR_INLINE = {"inline": {"x": [[0, 0], [0, 1], [1, 0], [1, 1]], "t": [[0], [1], [1], [0]]}}


def test_inline_arrays_are_cast_to_the_declared_dtype():
    splits = load({"train": XOR_INLINE})
    assert splits.test is None
    assert splits.train["x"].dtype == np.float32 and splits.train["x"].shape == (4, 2)
    np.testing.assert_array_equal(splits.train["t"].ravel(), [0, 1, 1, 0])


def test_inline_int64_labels_stay_integers():
    inputs = {"x": {"shape": ["batch", 2]}, "y": {"shape": ["batch"], "dtype": "int64"}}
    splits = load({"train": {"inline": {"x": [[1, 2], [3, 4]], "y": [0, 2]}}}, inputs)
    assert splits.train["x"].dtype == np.float32          # no dtype declared: float32
    assert splits.train["y"].dtype == np.int64


def test_int_input_rejects_fractional_values():
    inputs = {"y": {"shape": ["batch"], "dtype": "int64"}}
    with pytest.raises(DataError, match="non-integer"):
        load({"train": {"inline": {"y": [0.5, 1]}}}, inputs)


def test_inline_scalars_for_forward_only_models():
    inputs = {"w": {"shape": []}, "x": {"shape": []}}
    splits = load({"train": {"inline": {"w": -2, "x": 5}}}, inputs)
    assert splits.train["w"].shape == () and float(splits.train["x"]) == 5.0


def test_inline_unknown_input_name():
    with pytest.raises(ModelError, match=r"'xx' is not an input.*did you mean 'x'") as info:
        load({"train": {"inline": {"xx": [[0, 0]]}}}, at=fake_at)
    assert info.value.location.line == 3          # at("train", "inline", "xx")


def test_inline_ragged_rows():
    with pytest.raises(DataError, match="ragged"):
        load({"train": {"inline": {"x": [[0, 0], [1]]}}})


# ----------------------------------------------------------------------------------------------
# file: CSV, .npy, .npz
# ----------------------------------------------------------------------------------------------

def test_csv_with_header_and_default_columns(tmp_path):
    (tmp_path / "scores.csv").write_text(
        "q1,q2,final\n73,80,152\n93,88,185\n\n# a comment\n89,91,180\n")
    splits = load({"train": {"file": "scores.csv"}}, base_dir=tmp_path)
    np.testing.assert_array_equal(splits.train["x"], [[73, 80], [93, 88], [89, 91]])
    np.testing.assert_array_equal(splits.train["t"], [[152], [185], [180]])


def test_csv_without_header_and_explicit_columns(tmp_path):
    (tmp_path / "d.csv").write_text("1,2,3,9\n4,5,6,9\n")
    inputs = {"x": {"shape": ["batch", 2]}, "t": {"shape": ["batch", 1]}}
    splits = load({"train": {"file": "d.csv", "columns": {"x": [0, 2], "t": [-1]}}}, inputs,
                  base_dir=tmp_path)
    np.testing.assert_array_equal(splits.train["x"], [[1, 3], [4, 6]])
    np.testing.assert_array_equal(splits.train["t"], [[9], [9]])


def test_csv_columns_by_header_name_and_single_index(tmp_path):
    (tmp_path / "d.csv").write_text("hours,label\n1.5,0\n3,2\n")
    inputs = {"h": {"shape": ["batch", 1]}, "y": {"shape": ["batch"], "dtype": "int64"}}
    splits = load({"train": {"file": "d.csv", "columns": {"h": ["hours"], "y": 1}}}, inputs,
                  base_dir=tmp_path)
    assert splits.train["h"].shape == (2, 1)
    assert splits.train["y"].dtype == np.int64
    np.testing.assert_array_equal(splits.train["y"], [0, 2])


def test_csv_default_target_follows_declared_rank(tmp_path):
    (tmp_path / "d.csv").write_text("1,2,0\n3,4,1\n")
    inputs = {"x": {"shape": ["batch", 2]}, "y": {"shape": ["batch"], "dtype": "int64"}}
    splits = load({"train": {"file": "d.csv"}}, inputs, base_dir=tmp_path)
    assert splits.train["y"].shape == (2,)


def test_csv_bad_cell_names_file_and_line(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,oops\n")
    with pytest.raises(DataError, match=r"d\.csv:3: 'oops' is not a number"):
        load({"train": {"file": "d.csv"}}, base_dir=tmp_path)


def test_missing_file_is_reported_with_location(tmp_path):
    with pytest.raises(DataError, match="data file not found") as info:
        load({"train": {"file": "nope.csv"}}, base_dir=tmp_path, at=fake_at)
    assert info.value.location.line == 2          # at("train", "file")


def test_npy_default_and_columns(tmp_path):
    table = np.arange(12, dtype=np.float64).reshape(4, 3)
    np.save(tmp_path / "d.npy", table)
    splits = load({"train": {"file": "d.npy"}}, base_dir=tmp_path)
    np.testing.assert_array_equal(splits.train["x"], table[:, :2])
    np.testing.assert_array_equal(splits.train["t"], table[:, 2:])
    splits = load({"train": {"file": "d.npy", "columns": {"x": [1, 2], "t": [0]}}},
                  base_dir=tmp_path)
    np.testing.assert_array_equal(splits.train["x"], table[:, 1:])


def test_npz_default_names_and_keys(tmp_path):
    np.savez(tmp_path / "same.npz", x=np.ones((5, 2)), t=np.zeros((5, 1)))
    splits = load({"train": {"file": "same.npz"}}, base_dir=tmp_path)
    assert splits.train["x"].shape == (5, 2) and splits.train["t"].shape == (5, 1)

    np.savez(tmp_path / "other.npz", X=np.ones((5, 2)), y=np.zeros((5, 1)))
    splits = load({"train": {"file": "other.npz", "keys": {"x": "X", "t": "y"}}},
                  base_dir=tmp_path)
    assert set(splits.train) == {"x", "t"}
    with pytest.raises(DataError, match=r"no array 'yy'.*did you mean 'y'"):
        load({"train": {"file": "other.npz", "keys": {"x": "X", "t": "yy"}}}, base_dir=tmp_path)


# ----------------------------------------------------------------------------------------------
# generators
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gate, outputs", [("xor", [0, 1, 1, 0]), ("and", [0, 0, 0, 1]),
                                           ("or", [0, 1, 1, 1]), ("nand", [1, 1, 1, 0])])
def test_truth_tables(gate, outputs):
    train = load({"train": {"generator": gate}}).train
    np.testing.assert_array_equal(train["x"], [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(train["t"], np.array(outputs).reshape(4, 1))
    signed = load({"train": {"generator": gate, "targets": "sign"}}).train
    np.testing.assert_array_equal(signed["t"].ravel(), 2 * np.array(outputs) - 1)


SHAPES = {"circles": ((500, 2), (500, 1)), "moons": ((500, 2), (500, 1)),
          "linear": ((100, 1), (100, 1)), "polynomial": ((100, 1), (100, 1))}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_random_generators_shapes_and_seeds(name):
    inputs = {"x": {"shape": ["batch", SHAPES[name][0][1]]}, "t": {"shape": ["batch", 1]}}
    first = load({"train": {"generator": name, "seed": 3}}, inputs).train
    again = load({"train": {"generator": name, "seed": 3}}, inputs).train
    other = load({"train": {"generator": name, "seed": 4}}, inputs).train
    assert first["x"].shape == SHAPES[name][0] and first["t"].shape == SHAPES[name][1]
    assert first["x"].dtype == np.float32
    np.testing.assert_array_equal(first["x"], again["x"])
    np.testing.assert_array_equal(first["t"], again["t"])
    assert not np.array_equal(first["x"], other["x"])


def test_every_generator_is_tested():
    assert set(GENERATORS) == set(SHAPES) | {"xor", "and", "or", "nand", "spiral",
                                             "sine", "drive"}  # tests/test_window.py


def test_circles_balance_and_radii():
    train = load({"train": {"generator": "circles", "n": 501, "noise": 0, "factor": 0.3}}).train
    labels = train["t"].ravel()
    assert (labels == 0).sum() == 250 and (labels == 1).sum() == 251
    radius = np.hypot(train["x"][:, 0], train["x"][:, 1])
    np.testing.assert_allclose(radius[labels == 0], 1.0, rtol=1e-6)
    np.testing.assert_allclose(radius[labels == 1], 0.3, rtol=1e-6)
    noisy = load({"train": {"generator": "circles", "seed": 123}}).train   # the lecture's set
    outer = np.hypot(*noisy["x"][noisy["t"].ravel() == 0].T)
    assert 0.9 < outer.mean() < 1.1 and 0.1 < outer.std() < 0.3


def test_moons_lie_on_two_half_circles():
    train = load({"train": {"generator": "moons", "n": 100, "noise": 0}}).train
    x, labels = train["x"].astype(np.float64), train["t"].ravel()
    assert (labels == 0).sum() == 50
    np.testing.assert_allclose(np.hypot(*x[labels == 0].T), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.hypot(x[labels == 1, 0] - 1, x[labels == 1, 1] - 0.5), 1.0,
                               rtol=1e-6)


def test_spiral_labels_and_one_hot():
    inputs = {"x": {"shape": ["batch", 2]}, "y": {"shape": ["batch"], "dtype": "int64"}}
    train = load({"train": {"generator": "spiral", "n": 50, "classes": 4}}, inputs).train
    assert train["x"].shape == (200, 2) and train["y"].dtype == np.int64
    np.testing.assert_array_equal(np.bincount(train["y"]), [50, 50, 50, 50])
    inputs = {"x": {"shape": ["batch", 2]}, "y": {"shape": ["batch", 3]}}
    hot = load({"train": {"generator": "spiral", "n": 10, "one_hot": True}}, inputs).train
    assert hot["y"].shape == (30, 3) and np.all(hot["y"].sum(axis=1) == 1)


def test_linear_and_polynomial_follow_their_formula():
    inputs = {"x": {"shape": ["batch", 1]}, "y": {"shape": ["batch", 1]}}
    line = load({"train": {"generator": "linear", "n": 500, "low": -10, "high": 10, "w": 5,
                           "b": 2, "noise": 1, "seed": 1}}, inputs).train
    assert line["x"].min() >= -10 and line["x"].max() <= 10
    slope, intercept = np.polyfit(line["x"].ravel(), line["y"].ravel(), 1)
    assert abs(slope - 5) < 0.05 and abs(intercept - 2) < 0.2

    quad = load({"train": {"generator": "polynomial", "coefficients": [0.75, 0.25, 1],
                           "noise": 0}}, inputs).train
    x = quad["x"].astype(np.float64)
    np.testing.assert_allclose(quad["y"], x ** 2 + 0.25 * x + 0.75, rtol=1e-5)


def test_linear_with_several_weights():
    inputs = {"x": {"shape": ["batch", 3]}, "y": {"shape": ["batch", 1]}}
    train = load({"train": {"generator": "linear", "w": [1, 2, 3], "noise": 0}}, inputs).train
    np.testing.assert_allclose(train["y"].ravel(), train["x"] @ [1, 2, 3], rtol=1e-5)


def test_generator_names_option():
    inputs = {"t": {"shape": ["batch", 1]}, "x": {"shape": ["batch", 2]}}
    train = load({"train": {"generator": "xor", "names": ["x", "t"]}}, inputs).train
    assert train["x"].shape == (4, 2) and train["t"].shape == (4, 1)
    only_x = load({"train": {"generator": "xor", "names": ["x"]}}, inputs).train
    assert set(only_x) == {"x"}


def test_bad_option_value_is_a_model_error():
    with pytest.raises(ModelError, match="n must be at least 1"):
        load({"train": {"generator": "circles", "n": 0}})
    with pytest.raises(ModelError, match=r"targets must be one of binary, sign"):
        load({"train": {"generator": "or", "targets": "signs"}})


# ----------------------------------------------------------------------------------------------
# Unknown keys and shape checks: messages and locations
# ----------------------------------------------------------------------------------------------

def test_misspelt_source_kind_suggests_generator():
    calls = []

    def at(*keys):
        calls.append(keys)
        return Location("model.yaml", line=7, column=3) if keys == ("train", "genrator") else None

    with pytest.raises(ModelError, match=r"'genrator'.*did you mean 'generator'") as info:
        load({"train": {"genrator": "xor"}}, at=at)
    assert info.value.location == Location("model.yaml", 7, 3)
    assert str(info.value).startswith("model.yaml:7:3: ")
    assert ("train", "genrator") in calls


def test_misspelt_option_lists_the_valid_keys():
    with pytest.raises(ModelError) as info:
        load({"train": {"generator": "circles", "nosie": 0.1}}, at=fake_at)
    message = str(info.value)
    assert "did you mean 'noise'" in message and "factor" in message and "seed" in message
    assert info.value.location == Location("model.yaml", 2, 1)    # at("train", "nosie")


def test_unknown_generator_and_dataset():
    with pytest.raises(ModelError, match=r"unknown generator 'circle'.*'circles'"):
        load({"train": {"generator": "circle"}})
    with pytest.raises(ModelError, match=r"unknown dataset 'mnsit'.*'mnist'"):
        load({"train": {"dataset": "mnsit"}})


def test_location_falls_back_to_the_nearest_known_parent():
    def at(*keys):
        return Location("m.yaml", 4, 5) if keys == ("train",) else None

    with pytest.raises(ModelError) as info:
        load({"train": {"generator": "xor", "bogus": 1}}, at=at)
    assert info.value.location == Location("m.yaml", 4, 5)


def test_two_source_kinds_are_an_error():
    with pytest.raises(ModelError, match="exactly one source"):
        load({"train": {"generator": "xor", "inline": {"x": [[0, 0]]}}})


def test_shape_mismatch_names_input_and_both_shapes():
    inputs = {"x": {"shape": ["batch", 3]}, "t": {"shape": ["batch", 1]}}
    with pytest.raises(DataError) as info:
        load({"train": XOR_INLINE}, inputs, at=fake_at)
    message = str(info.value)
    assert "'x'" in message and "(4, 2)" in message and "[batch, 3]" in message
    assert info.value.location.line == 3                 # at("train", "inline", "x")


def test_symbolic_sizes_must_agree():
    with pytest.raises(DataError, match="'batch' is 4 for input 'x' but 3"):
        load({"train": {"inline": {"x": [[0, 0]] * 4, "t": [[0]] * 3}}})


# ----------------------------------------------------------------------------------------------
# train/test split
# ----------------------------------------------------------------------------------------------

def test_test_fraction_splits_the_train_source():
    source = {"generator": "circles", "n": 100, "test_fraction": 0.2, "split_seed": 1}
    splits = load({"train": source})
    assert num_examples(splits.train) == 80 and num_examples(splits.test) == 20
    whole = load({"train": {"generator": "circles", "n": 100}}).train["x"]
    rows = {tuple(r) for r in splits.train["x"]} | {tuple(r) for r in splits.test["x"]}
    assert rows == {tuple(r) for r in whole}
    again = load({"train": source})
    np.testing.assert_array_equal(splits.test["x"], again.test["x"])
    other = load({"train": dict(source, split_seed=2)})
    assert not np.array_equal(splits.test["x"], other.test["x"])


def test_test_fraction_conflicts_with_a_test_source():
    with pytest.raises(ModelError, match="use one of them"):
        load({"train": {"generator": "xor", "test_fraction": 0.5}, "test": {"generator": "xor"}})
    with pytest.raises(ModelError, match="belongs in the train source"):
        load({"train": {"generator": "xor"}, "test": {"generator": "xor", "test_fraction": 0.5}})
    with pytest.raises(ModelError, match="between 0 and 1"):
        load({"train": {"generator": "xor", "test_fraction": 1.5}})


def test_separate_test_source_and_limit():
    splits = load({"train": {"generator": "circles", "limit": 10},
                   "test": {"generator": "circles", "seed": 9, "n": 30}})
    assert num_examples(splits.train) == 10 and num_examples(splits.test) == 30


# ----------------------------------------------------------------------------------------------
# batching
# ----------------------------------------------------------------------------------------------

def ten_examples():
    return {"x": np.arange(20, dtype=np.float32).reshape(10, 2),
            "t": np.arange(10, dtype=np.int64)}


def test_full_batch_is_the_data_itself():
    arrays = ten_examples()
    batches = list(iterate_batches(arrays, None, shuffle=False, rng=np.random.default_rng(0)))
    assert len(batches) == 1
    assert batches[0]["x"] is arrays["x"] and batches[0]["t"] is arrays["t"]


def test_batches_in_order_and_drop_last():
    arrays = ten_examples()
    rng = np.random.default_rng(0)
    sizes = [len(b["t"]) for b in iterate_batches(arrays, 4, shuffle=False, rng=rng)]
    assert sizes == [4, 4, 2]
    kept = list(iterate_batches(arrays, 4, shuffle=False, rng=rng, drop_last=True))
    assert [len(b["t"]) for b in kept] == [4, 4]
    np.testing.assert_array_equal(kept[1]["t"], [4, 5, 6, 7])
    np.testing.assert_array_equal(kept[1]["x"][:, 0], [8, 10, 12, 14])


def test_shuffle_covers_every_example_once_and_is_seeded():
    arrays = ten_examples()
    rng = np.random.default_rng(42)
    epoch1 = np.concatenate([b["t"] for b in iterate_batches(arrays, 3, shuffle=True, rng=rng)])
    epoch2 = np.concatenate([b["t"] for b in iterate_batches(arrays, 3, shuffle=True, rng=rng)])
    assert sorted(epoch1) == list(range(10)) and sorted(epoch2) == list(range(10))
    assert not np.array_equal(epoch1, epoch2)             # a new order each epoch
    rng = np.random.default_rng(42)
    replay = np.concatenate([b["t"] for b in iterate_batches(arrays, 3, shuffle=True, rng=rng)])
    np.testing.assert_array_equal(epoch1, replay)
    for batch in iterate_batches(arrays, 3, shuffle=True, rng=rng):   # rows stay paired
        np.testing.assert_array_equal(batch["x"][:, 0], 2 * batch["t"])


def test_one_permutation_per_call():
    rng = np.random.default_rng(5)
    iterate_batches(ten_examples(), 3, shuffle=True, rng=rng)
    after_one = rng.integers(1 << 30)
    rng = np.random.default_rng(5)
    rng.permutation(10)
    assert rng.integers(1 << 30) == after_one


def test_num_examples():
    assert num_examples(ten_examples()) == 10
    assert num_examples({}) == 0
    with pytest.raises(DataError, match="different numbers of examples"):
        num_examples({"a": np.zeros(3), "b": np.zeros(4)})


def test_bad_batch_size():
    with pytest.raises(ModelError, match="batch_size"):
        iterate_batches(ten_examples(), 0, shuffle=False, rng=np.random.default_rng())


# ----------------------------------------------------------------------------------------------
# MNIST from a tiny synthetic IDX set
# ----------------------------------------------------------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX: 0, 0, type 0x08, ndim, big-endian sizes, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(folder: Path, compressed: bool, n_train=6, n_test=4):
    """Write a fake MNIST: image k is filled with the value 10*k; label k is k % 10."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = (10 * np.arange(n, dtype=np.uint8))[:, None, None] * np.ones((1, 28, 28), np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        for name, array in ((f"{prefix}-images-idx3-ubyte", images),
                            (f"{prefix}-labels-idx1-ubyte", labels)):
            if compressed:
                with gzip.open(folder / (name + ".gz"), "wb") as handle:
                    handle.write(idx_bytes(array))
            else:
                (folder / name).write_bytes(idx_bytes(array))
    return folder


@pytest.fixture
def no_mnist_env(monkeypatch, tmp_path):
    """No MINIGRAPH_DATA, and a home folder with no ~/.minigraph in it."""
    monkeypatch.delenv("MINIGRAPH_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


FLAT = {"img": {"shape": ["batch", 784]}, "label": {"shape": ["batch"], "dtype": "int64"}}
NCHW = {"img": {"shape": ["batch", 1, 28, 28]}, "label": {"shape": ["batch", 10]}}


@pytest.mark.parametrize("compressed", [True, False])
def test_mnist_parsing_plain_and_gzip(tmp_path, no_mnist_env, compressed):
    folder = write_mnist(tmp_path / "d", compressed)
    assert mnist_files(folder) == folder
    splits = load({"train": {"dataset": "mnist"}, "test": {"dataset": "mnist"}}, FLAT,
                  data_dir=str(folder))
    assert splits.train["img"].shape == (6, 784) and splits.train["img"].dtype == np.float32
    np.testing.assert_allclose(splits.train["img"][:, 0], 10 * np.arange(6) / 255, rtol=1e-6)
    np.testing.assert_array_equal(splits.train["label"], np.arange(6))
    assert splits.train["label"].dtype == np.int64
    assert splits.test["img"].shape == (4, 784)            # split defaults to the section name


def test_mnist_options(tmp_path, no_mnist_env):
    folder = str(write_mnist(tmp_path / "d", compressed=True))
    train = load({"train": {"dataset": "mnist"}}, NCHW, data_dir=folder).train
    assert train["img"].shape == (6, 1, 28, 28)            # follows the declared rank
    assert train["label"].shape == (6, 10)                 # rank-2 labels: one-hot
    np.testing.assert_array_equal(train["label"].argmax(axis=1), np.arange(6))

    source = {"dataset": "mnist", "split": "test", "scale": False, "flatten": True,
              "one_hot": False, "limit": 3}
    inputs = {"img": {"shape": ["batch", 784]}, "label": {"shape": ["batch"]}}
    train = load({"train": source}, inputs, data_dir=folder).train
    assert train["img"].shape == (3, 784) and train["img"].max() == 20.0   # not scaled
    np.testing.assert_array_equal(train["label"], [0, 1, 2])
    train = load({"train": dict(source, scale=10)}, inputs, data_dir=folder).train
    assert train["img"].max() == 2.0
    train = load({"train": dict(source, scale=True)}, inputs, data_dir=folder).train
    assert train["img"].max() == pytest.approx(20 / 255)


def test_mnist_images_only_for_an_autoencoder(tmp_path, no_mnist_env):
    folder = str(write_mnist(tmp_path / "d", compressed=False))
    inputs = {"x": {"shape": ["batch", 784]}}
    train = load({"train": {"dataset": "mnist"}}, inputs, data_dir=folder).train
    assert set(train) == {"x"}


def test_mnist_flatten_mismatch_hint(tmp_path, no_mnist_env):
    folder = str(write_mnist(tmp_path / "d", compressed=False))
    with pytest.raises(DataError, match="flatten"):
        load({"train": {"dataset": "mnist", "flatten": False}}, FLAT, data_dir=folder)


def test_mnist_search_order_env_and_subfolder(tmp_path, no_mnist_env, monkeypatch):
    write_mnist(tmp_path / "shared" / "mnist", compressed=True)
    monkeypatch.setenv("MINIGRAPH_DATA", str(tmp_path / "shared"))
    assert mnist_files() == tmp_path / "shared" / "mnist"        # the mnist/ subfolder
    write_mnist(tmp_path / "mine", compressed=False)
    assert mnist_files(str(tmp_path / "mine")) == tmp_path / "mine"   # data_dir comes first
    write_mnist(tmp_path / "home" / ".minigraph" / "data" / "mnist", compressed=True)
    monkeypatch.delenv("MINIGRAPH_DATA")
    assert mnist_files() == tmp_path / "home" / ".minigraph" / "data" / "mnist"


def test_mnist_missing_files_message(tmp_path, no_mnist_env, monkeypatch):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "train-images-idx3-ubyte.gz").write_bytes(b"")
    monkeypatch.setenv("MINIGRAPH_DATA", str(tmp_path / "env"))
    with pytest.raises(DataError) as info:
        load({"train": {"dataset": "mnist"}}, FLAT, data_dir=str(partial), at=fake_at)
    message = str(info.value)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert name in message
    for folder in (partial, partial / "mnist", tmp_path / "env", tmp_path / "env" / "mnist",
                   tmp_path / "home" / ".minigraph" / "data" / "mnist"):
        assert str(folder) in message
    assert "--data-dir" in message and "MINIGRAPH_DATA" in message
    assert "has only 1 of the 4" in message
    assert info.value.location.line == 2                  # at("train", "dataset")


def test_mnist_bad_magic_number(tmp_path, no_mnist_env):
    folder = write_mnist(tmp_path / "d", compressed=False)
    raw = (folder / "train-images-idx3-ubyte").read_bytes()
    (folder / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + raw[4:])
    with pytest.raises(DataError, match=r"magic number is 2049.*expected 2051"):
        load({"train": {"dataset": "mnist"}}, FLAT, data_dir=str(folder))


def test_mnist_gzip_bytes_without_gz_suffix(tmp_path, no_mnist_env):
    folder = write_mnist(tmp_path / "d", compressed=False)
    path = folder / "train-labels-idx1-ubyte"
    path.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(DataError, match=r"must end in \.gz"):
        load({"train": {"dataset": "mnist"}}, FLAT, data_dir=str(folder))


# ----------------------------------------------------------------------------------------------
# The real MNIST (from MINIGRAPH_DATA, which `make test` sets, or the project's shared copy)
# ----------------------------------------------------------------------------------------------

def real_mnist_dir():
    candidates = [os.environ.get("MINIGRAPH_DATA"),
                  Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            try:
                return str(mnist_files(candidate))
            except DataError:
                pass
    return None


def test_real_mnist_counts_and_statistics():
    folder = real_mnist_dir()
    if folder is None:
        pytest.skip("real MNIST not found: set MINIGRAPH_DATA to the folder holding the four "
                    "IDX files (make test points it at ../shared/datasets/mnist)")
    splits = load({"train": {"dataset": "mnist"}, "test": {"dataset": "mnist"}}, FLAT,
                  data_dir=folder)
    assert splits.train["img"].shape == (60000, 784)
    assert splits.test["img"].shape == (10000, 784)
    assert splits.train["img"].mean() == pytest.approx(0.1307, abs=1e-4)
    assert splits.train["img"].std() == pytest.approx(0.3081, abs=1e-4)
    assert list(np.bincount(splits.train["label"])[:2]) == [5923, 6742]
    assert np.bincount(splits.test["label"]).sum() == 10000


def test_npz_keys_must_be_names(tmp_path):
    np.savez(tmp_path / "a.npz", X=np.zeros((4, 2)), y=np.zeros((4, 1)))
    data = {"train": {"file": "a.npz", "keys": {"x": ["X"], "t": "y"}}}
    inputs = {"x": {"shape": ["batch", 2]}, "t": {"shape": ["batch", 1]}}
    with pytest.raises(ModelError, match=r"keys\.x must be an array name \(a string\)"):
        load_data(data, inputs, base_dir=tmp_path)


def test_mnist_label_mismatch_gets_no_image_hint(tmp_path):
    from conftest import mnist_dir

    data_dir = mnist_dir()
    if data_dir is None:
        pytest.skip("MNIST files not found (set MINIGRAPH_DATA)")
    data = {"train": {"dataset": "mnist", "limit": 5, "one_hot": True}}
    inputs = {"x": {"shape": ["batch", 784]}, "label": {"shape": ["batch"], "dtype": "int64"}}
    with pytest.raises(DataError) as info:
        load_data(data, inputs, base_dir=tmp_path, data_dir=data_dir)
    assert "'label'" in str(info.value) and "flatten" not in str(info.value)
