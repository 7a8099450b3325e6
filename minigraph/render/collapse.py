"""Long unrolls drawn short: a recurrent layer's middle steps as one "... N more steps ..." node.

A recurrent layer (``rnn``, ``lstm``, ``gru``) expands into step groups ``NAME/t1`` ...
``NAME/tT``.  Drawn in full, a 20-step LSTM of primitives is some 400 nodes: minutes of
layout, and a picture nobody can read.  :func:`collapse_steps` keeps the first two and the
last two steps of every such layer and stands one node in for the others: it reads what the
hidden steps read (the shared params, x, the state coming in) and writes what later nodes
read from them (the state going out, the hidden states a ``return_sequences`` stack reads).
The shared params are still drawn once, feeding every step that is drawn.  Layers named in
``expand`` are drawn whole.

Pure presentation on a copy of the graph; the numbers on the edges are those of the full
pass, by tensor name.
"""
from __future__ import annotations

import dataclasses
import re
from types import MappingProxyType

from ..errors import MinigraphError, did_you_mean

STEP = re.compile(r"^(?P<layer>.+)/t(?P<step>\d+)$")
KEEP = 2  # steps drawn at each end


class HiddenSteps:
    """The op of the node that stands in for hidden steps (drawn as its ``name``)."""

    attrs = MappingProxyType({})  # no attributes to show

    def __init__(self, count: int):
        self.name = f"... {count} more step{'s' if count != 1 else ''} ..."


def recurrent_layers(graph) -> dict:
    """Layer name -> number of steps, for every layer with step groups ``NAME/tK``."""
    steps: dict = {}
    for node in graph.nodes:
        found = STEP.match(node.group or "")
        if found:
            layer = found["layer"]
            steps[layer] = max(steps.get(layer, 0), int(found["step"]))
    return steps


def collapse_steps(graph, expand=(), keep: int = KEEP):
    """``graph`` with each recurrent layer's middle steps as one node (a copy; the layers in
    ``expand`` stay whole).  ``expand`` names must be recurrent layers of the graph."""
    layers = recurrent_layers(graph)
    for name in expand:
        if name not in layers:
            raise MinigraphError(f"--expand {name}: no recurrent layer of that name in "
                                 f"'{graph.name}'{did_you_mean(name, layers)}; its recurrent "
                                 f"layers: {', '.join(layers) or 'none'}")
    for layer, count in layers.items():
        if layer not in expand and count > 2 * keep:
            graph = _collapse(graph, layer, range(keep + 1, count - keep + 1))
    return graph


def _collapse(graph, layer: str, hidden_steps: range):
    groups = {f"{layer}/t{k}" for k in hidden_steps}
    hidden = [n for n in graph.nodes if n.group in groups]
    made = {t for n in hidden for t in n.outputs}
    shown = [n for n in graph.nodes if n.group not in groups]
    reads = list(dict.fromkeys(t for n in hidden for t in n.inputs if t not in made))
    writes = list(dict.fromkeys(t for n in shown for t in n.inputs if t in made))
    writes += [t for t in graph.outputs if t in made and t not in writes]
    first, last = hidden_steps[0], hidden_steps[-1]
    stand_in = dataclasses.replace(hidden[0], name=f"{layer}/t{first}..t{last}",
                                   op=HiddenSteps(len(hidden_steps)), inputs=reads,
                                   outputs=writes, group=None)
    at = graph.nodes.index(hidden[0])
    nodes = [n for n in graph.nodes[:at] if n.group not in groups] + [stand_in] + \
        [n for n in graph.nodes[at:] if n.group not in groups]
    tensors = {}
    for name, tensor in graph.tensors.items():
        if name in writes:
            tensors[name] = dataclasses.replace(tensor, producer=stand_in.name)
        elif name not in made:
            tensors[name] = tensor
    return dataclasses.replace(graph, nodes=nodes, tensors=tensors)
