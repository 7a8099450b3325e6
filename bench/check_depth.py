"""How ``minigraph check`` scales with depth: an N-layer tanh MLP (8 units), N = 100, 400, 1600.

    .venv/bin/python bench/check_depth.py [N ...]

Prints the CPU seconds of :func:`minigraph.api.check_model` per depth, the elements it
perturbed, and each time's ratio to the previous depth's: about the depth ratio (4x) when the
check is linear in depth, its square (16x) when it is quadratic (as before the seeded sample:
every element up to 20 per param, each perturbation re-running the whole graph).  CPU time,
not wall time: the development machine is shared.
"""
from __future__ import annotations

import sys
import time

import minigraph as mg
from minigraph.api import check_model
from minigraph.gradcheck import ALL_PARAMS


def deep_mlp(layers: int):
    b = mg.GraphBuilder(f"tanh{layers}")
    h, t = b.input("x", ["batch", 8]), b.input("t", ["batch", 8])
    for i in range(layers):
        h = b.tanh(b.linear(h, name=f"fc{i}", out=f"z{i}", units=8), name=f"a{i}", out=f"h{i}")
    b.output(h)
    b.set_loss(b.mse(h, t, name="loss", out="L"))
    return b.build()


def main(depths) -> None:
    previous = None
    for n in depths:
        graph = deep_mlp(n)
        start = time.process_time()
        report = check_model(graph)
        seconds = time.process_time() - start
        perturbed = sum(r.checked for r in report.grads if r.param != ALL_PARAMS)
        ratio = f"  x{seconds / previous[1]:.1f} for x{n / previous[0]:.0f} depth" \
            if previous else ""
        print(f"{n:5d} layers: {seconds:6.2f} s CPU, {perturbed} elements perturbed, "
              f"verdict {'ok' if report.ok else 'FAILED'}{ratio}", flush=True)
        previous = (n, seconds)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100, 400, 1600])
