"""Shared test options: ``--run-slow`` opts in to full-data runs (MNIST to convergence)."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # test helpers (op_cases, malformed_cases)

ROOT = Path(__file__).resolve().parent.parent


def mnist_dir():
    """The MNIST folder from $MINIGRAPH_DATA, or ../shared/datasets/mnist, or None."""
    for candidate in (os.environ.get("MINIGRAPH_DATA"), ROOT.parent / "shared/datasets/mnist"):
        if candidate and Path(candidate, "t10k-labels-idx1-ubyte.gz").exists():
            return str(candidate)
    return None


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="run full-data tests (minutes each)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="full-data run: opt in with `pytest --run-slow`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
