"""Chain fusion: the training plan's rewrite that merges chains of ops into fused kernels.

``FUSIONS`` lists the chains; ``fuse_chains`` finds them in a graph and returns the plan's
steps with each matched chain replaced by one step running the fused op of
:mod:`.fused`.  A chain fuses only when each tensor inside it is read by nothing but the
next node, nobody wants its gradient, and its value is not asked for (or the fused op
emits it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..engine.plan import Step
from .fused import (ACTIVATIONS, ConvReLUPool, FlattenLinear, LinearAct, LinearFused,
                    LinearSigmoidBCE, LogSoftmaxNLL, SigmoidBCE)


# ==== when a chain may fuse ======================================================================


def _bias_of(graph, nodes):
    """matmul -> add: the add reads (product, b) with b a vector over the product's last axis."""
    matmul, add = nodes[0], nodes[1]
    x_shape, w_shape = (graph.tensors[n].shape for n in matmul.inputs)
    b_shape = graph.tensors[add.inputs[1]].shape
    return (len(x_shape) == 2 and len(w_shape) == 2 and len(b_shape) == 1
            and b_shape[0] == w_shape[1])


def _bias_then_free_activation(graph, nodes):
    """matmul -> add -> act, unless act's output goes straight into a loss that fuses with
    act (sigmoid -> bce), which saves more: then act is left to that fusion."""
    if not _bias_of(graph, nodes):
        return False
    act = nodes[2]
    readers = graph.consumers(act.outputs[0])
    return not (len(readers) == 1 and any(f.ops == (act.op_name, readers[0].op_name)
                                          for f in FUSIONS))


def _pool_after_conv(graph, nodes):
    """conv2d (with bias) -> relu -> maxpool2d whose windows tile the image exactly."""
    conv, _, pool = nodes
    if len(conv.inputs) != 3:
        return False
    k = pool.op.kernel
    h, w = graph.tensors[conv.outputs[0]].shape[2:]
    return (pool.op.step == k and pool.op.padding == 0 and isinstance(h, int)
            and isinstance(w, int) and h % k == 0 and w % k == 0)


def _flat_image_bias(graph, nodes):
    """flatten -> matmul -> add: an (N, C, H, W) image flattened from axis 1, then a bias."""
    flatten = nodes[0]
    return (len(graph.tensors[flatten.inputs[0]].shape) == 4 and flatten.op.start_axis in (1, -3)
            and _bias_of(graph, nodes[1:]))


def _classes_last(graph, nodes):
    rank = len(graph.tensors[nodes[0].outputs[0]].shape)
    nll = nodes[1]  # no class weights, ignored class or per-row losses: the fused rule has none
    plain = len(nll.inputs) == 2 and nll.op.ignore_index is None and nll.op.reduction != "none"
    return nodes[0].op.axis in (-1, rank - 1) and plain


def _always(graph, nodes):
    return True


@dataclass(frozen=True)
class Fusion:
    """A chain of ops (each reading the previous one's output first) that runs as one op.

    ``make(nodes)`` builds the fused op from the chain's nodes; ``emits`` lists the chain
    positions whose outputs the fused op returns (the last one always).
    """

    ops: tuple
    make: Callable
    emits: tuple
    condition: Callable = _always


# Longest chains first: a chain is fused once, by the first pattern that matches.
FUSIONS = (
    Fusion(("conv2d", "relu", "maxpool2d"), lambda n: ConvReLUPool(n[0].op, n[2].op), (2,),
           _pool_after_conv),
    Fusion(("matmul", "add", "sigmoid", "bce"), lambda n: LinearSigmoidBCE(n[3].op), (2, 3),
           _bias_of),
    *(Fusion(("matmul", "add", act), lambda n: LinearAct(n[2].op_name), (2,),
             _bias_then_free_activation) for act in ACTIVATIONS),
    Fusion(("flatten", "matmul", "add"), lambda n: FlattenLinear(), (2,), _flat_image_bias),
    Fusion(("matmul", "add"), lambda n: LinearFused(), (1,), _bias_of),
    Fusion(("sigmoid", "bce"), lambda n: SigmoidBCE(n[1].op), (0, 1)),
    Fusion(("log_softmax", "nll"), lambda n: LogSoftmaxNLL(n[1].op.reduction), (0, 1),
           _classes_last),
)


# ==== finding the chains ==========================================================================

def _chain(pattern, first, readers, keep, wanted, used):
    """The nodes of ``pattern`` starting at ``first``, or None if they do not form one.

    Each next node must be the only reader of the previous output, read it as its first
    input, and that tensor's gradient must not be wanted; its value may be kept only if the
    fused op emits it.
    """
    nodes = [first]
    for position, op_name in enumerate(pattern.ops[1:]):
        t = nodes[-1].outputs[0]
        after = readers.get(t, [])
        if len(after) != 1 or after[0].op_name != op_name or after[0].name in used:
            return None
        nxt = after[0]
        if nxt.inputs[0] != t or t in nxt.inputs[1:] or t in wanted:
            return None
        if t in keep and position not in pattern.emits:
            return None
        nodes.append(nxt)
    return nodes


def fuse_chains(graph, steps, keep: set, wanted: set) -> list:
    """The plan's steps (one per node: this rewrite runs first) with the chains of
    ``FUSIONS`` merged into one step each.

    A chain fuses when each tensor inside it is read only by the next node, nobody wants its
    gradient (``wanted``), and its value is either not asked for (``keep``) or emitted by the
    fused op.  The fused step takes the last node's place in the schedule, which is safe:
    nothing between the chain's nodes reads the tensors inside it.
    """
    if [s.name for s in steps] != [n.name for n in graph.nodes]:
        raise ValueError("fuse_chains rewrites the plain plan: it must run first")
    readers: dict = {}
    for node in graph.nodes:
        for t in node.inputs:
            readers.setdefault(t, []).append(node)
    fused_at: dict = {}  # last node name -> fused step
    used: set = set()
    for first in graph.nodes:
        if first.name in used:
            continue
        for pattern in FUSIONS:
            if first.op_name != pattern.ops[0]:
                continue
            nodes = _chain(pattern, first, readers, keep, wanted, used)
            if nodes is None or not pattern.condition(graph, nodes):
                continue
            inputs = tuple(first.inputs) + tuple(t for n in nodes[1:] for t in n.inputs[1:])
            outputs = tuple(nodes[i].outputs[0] for i in pattern.emits)
            fused_at[nodes[-1].name] = Step("+".join(n.name for n in nodes),
                                            pattern.make(nodes), inputs, outputs)
            used.update(n.name for n in nodes)
            break
    steps = []
    for node in graph.nodes:
        if node.name in fused_at:
            steps.append(fused_at[node.name])
        elif node.name not in used:
            steps.append(Step(node.name, node.op, tuple(node.inputs), tuple(node.outputs)))
    return steps
