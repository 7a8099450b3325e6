"""Small models in dicts, shared by several test files."""

DROPOUT = {"minigraph": 1, "name": "c",
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
           "data": {"train": {"generator": "circles", "n": 30, "seed": 3},
                    "test": {"generator": "circles", "n": 10, "seed": 4}},
           "train": {"epochs": 5, "seed": 5, "optimizer": {"type": "adam", "lr": 0.01},
                     "metrics": ["accuracy"]}}


def dropout_model(**train):
    return dict(DROPOUT, train=dict(DROPOUT["train"], **train))
