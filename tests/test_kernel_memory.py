"""The workspace lends large arrays again only once nothing refers to them any more."""
from __future__ import annotations

import numpy as np

from minigraph.kernels.memory import Workspace, held_only_by

BIG = (512, 1024)  # 2 MiB of float32: above Workspace.min_bytes


def test_held_only_by_reads_reference_counts():
    box = [np.zeros(3)]
    assert held_only_by(box, 0)
    other = box[0]
    assert not held_only_by(box, 0)
    del other
    view = box[0][1:]
    assert not held_only_by(box, 0)  # a view keeps its base alive
    del view
    assert held_only_by({"k": box.pop()}, "k")


def test_released_buffers_are_reused_and_held_ones_are_not():
    ws = Workspace()
    a = ws.empty(np, BIG, np.float32)
    b = ws.empty(np, BIG, np.float32)
    assert a is not b
    a_id = id(a)
    del a
    c = ws.empty(np, BIG, np.float32)
    assert id(c) == a_id  # a's buffer, free again
    view = c[3:]
    del c
    d = ws.empty(np, BIG, np.float32)  # c's buffer is still seen through the view
    assert d is not view.base and d is not b
    saved = {"x": d}
    del d
    e = ws.empty(np, BIG, np.float32)
    assert e is not saved["x"]
    assert len(ws.buffers[(BIG, np.float32, np)]) == 4
    assert ws.nbytes() == 4 * 512 * 1024 * 4


def test_shapes_and_dtypes_do_not_mix_and_small_arrays_are_not_kept():
    ws = Workspace()
    a = ws.empty(np, BIG, np.float32)
    del a
    assert ws.empty(np, BIG, np.float64).dtype == np.float64
    assert ws.empty(np, BIG[::-1], np.float32).shape == BIG[::-1]
    small = ws.empty(np, (10, 10), np.float32)
    assert small.shape == (10, 10) and len(ws.buffers) == 3  # the small one is not kept
