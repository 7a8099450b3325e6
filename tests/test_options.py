"""One way to declare and check options, one registry, one error hierarchy."""
import pytest

import minigraph as mg
from minigraph.errors import MinigraphError, ModelError, RunError
from minigraph.lr_schedules import SCHEDULES
from minigraph.metrics import METRICS
from minigraph.ops import REGISTRY, get_op
from minigraph.ops.layers import LAYERS
from minigraph.optim import OPTIMIZERS
from minigraph.options import (HAS_NO, REQUIRED, Option, OptionError, check_options, describe,
                               document)
from minigraph.registry import Registry
from minigraph.train import TRAIN_KEYS, TRAIN_OPTIONS

TABLE = {
    "units": Option("int", REQUIRED, "number of outputs", minimum=1, maximum=1000),
    "rate": Option("float", 0.5, "a rate", minimum=0.0, words="a finite number >= 0"),
    "mode": Option("str", "mean", "how", choices=("mean", "sum")),
    "sizes": Option("ints", [1, 2], "sizes"),
}


def test_check_options_fills_defaults_and_converts():
    values = check_options(TABLE, {"units": 3, "rate": 1})
    assert values == {"units": 3, "rate": 1.0, "mode": "mean", "sizes": [1, 2]}
    assert isinstance(values["rate"], float)
    values["sizes"].append(3)  # a default is a fresh copy every time
    assert check_options(TABLE, {"units": 3})["sizes"] == [1, 2]


@pytest.mark.parametrize("given, key, message", [
    ({"unit": 3}, "unit", "unknown option 'unit' in this (did you mean 'units'?); "
                          "valid options: mode, rate, sizes, units"),
    ({}, "units", "this needs option 'units' (number of outputs)"),
    ({"units": 1.5}, "units", "option 'units' must be int, got 1.5"),
    ({"units": 0}, "units", "option 'units' must be at least 1, got 0"),
    ({"units": 10 ** 6}, "units", "option 'units' must be at most 1,000, got 1000000"),
    ({"units": 1, "rate": -1}, "rate", "option 'rate' must be a finite number >= 0, got -1"),
    ({"units": 1, "rate": float("nan")}, "rate", "option 'rate' must be a finite number, got nan"),
    ({"units": 1, "mode": "avg"}, "mode", "option 'mode' must be one of ['mean', 'sum'], "
                                          "got 'avg'"),
    ({"units": 1, "mode": "summ"}, "mode", "(did you mean 'sum'?)"),
])
def test_option_errors_name_their_key(given, key, message):
    with pytest.raises(OptionError) as info:
        check_options(TABLE, given)
    assert message in str(info.value)
    assert info.value.key == key and info.value.location is None
    assert isinstance(info.value, ModelError)


def test_wording_of_names_and_unknown_keys():
    with pytest.raises(OptionError, match=r"^op 'x' has no attribute 'unit' \(did you mean"):
        check_options(TABLE, {"unit": 1}, "attribute", "op 'x'", unknown=HAS_NO)
    with pytest.raises(OptionError, match=r"^train\.units must be int"):
        check_options(TABLE, {"units": "a"}, "key", "train", name_as="train.{}")


def test_located_copy_keeps_class_message_and_key():
    error = OptionError("bad", "rate")
    located = error.at(mg.errors.Location("m.yaml", 3, 4))
    assert str(located) == "m.yaml:3:4: bad" and located.key == "rate"
    assert error.location is None


def test_describe_and_document():
    assert describe(TABLE) == "units, rate=0.5, mode='mean', sizes=[1, 2]"
    assert document(TABLE)[0] == ("units", "required", "number of outputs")
    assert tuple(TRAIN_OPTIONS) == TRAIN_KEYS
    assert mg.Attr is Option


def test_every_registry_is_one_registry():
    for registry in (REGISTRY, LAYERS, OPTIMIZERS, SCHEDULES, METRICS):
        assert isinstance(registry, Registry)
    assert set(METRICS) == {"accuracy", "mse", "mae"}


def test_get_op_names_the_closest_op():
    with pytest.raises(ModelError, match=r"unknown op 'sigmod' \(did you mean 'sigmoid'\?\)"):
        get_op("sigmod")


def test_registry_typed_sections():
    with pytest.raises(OptionError) as info:
        OPTIMIZERS.typed({"type": "adamw"})
    assert info.value.key == "type" and "unknown optimizer type 'adamw'" in str(info.value)
    with pytest.raises(OptionError) as info:
        SCHEDULES.typed(5)
    assert info.value.key is None


def test_run_error_is_a_minigraph_error():
    assert issubclass(RunError, MinigraphError)
    assert str(RunError("loss became nan")) == "loss became nan"
