"""One exporter per minigraph op: ``export(ex, node)`` appends the ONNX node(s) computing it.

Where ONNX has the op, it is one node of the same name.  Losses without an ONNX op are small
compositions written as minigraph computes them:

    mse             = mean (p - t)^2                  l1 = mean |p - t|
    bce             = mean (t - 1) max(ln(1 - p), -100) - t max(ln p, -100)
    bce_with_logits = mean relu(z) - t z + softplus(-|z|)
    cross_entropy / nll with probability rows = mean over rows of -sum_c t_c log p_c

and cross_entropy/nll with class indices are ONNX's SoftmaxCrossEntropyLoss /
NegativeLogLikelihoodLoss (the class axis moved to 1 when the scores have more than two axes).

Recurrent layers export as their unrolled steps: ``slice`` is Gather (one index) or Slice (a
range), ``stack`` is Unsqueeze + Concat, and the cells are the gates written out as the
``cell: primitive`` steps compute them (the gates cut out of ``x W + b + h U`` with Slice):

    rnn_cell  = tanh(x W + b + h U)
    lstm_cell = [o tanh(c') | c'],  c' = i g + f c  (i, f, o sigmoid, g tanh)
    gru_cell  = n + z (h - n),      n = tanh(xa_n + r ha_n)  (r, z sigmoid)
"""
from __future__ import annotations

from onnx import TensorProto

from ..ops.pool import Pool
from ..registry import Registry
from .base import OnnxError

EXPORTERS = Registry("minigraph op")


def _same(op, onnx_op, **attrs):
    """An exporter for an op that is one ONNX op; ``attrs``: ONNX name -> minigraph name."""
    def export(ex, node):
        values = {k: getattr(node.op, v) for k, v in attrs.items()}
        ex.add(node, onnx_op, node.inputs, node.outputs, name=node.name, **values)
    EXPORTERS[op] = export


for _op, _onnx in (("add", "Add"), ("sub", "Sub"), ("mul", "Mul"), ("div", "Div"),
                   ("pow", "Pow"), ("neg", "Neg"), ("exp", "Exp"), ("log", "Log"),
                   ("sqrt", "Sqrt"), ("abs", "Abs"), ("matmul", "MatMul"),
                   ("sigmoid", "Sigmoid"), ("tanh", "Tanh"), ("relu", "Relu"),
                   ("softplus", "Softplus"), ("sign", "Sign"), ("identity", "Identity"),
                   ("maximum", "Max")):
    _same(_op, _onnx)
_same("leaky_relu", "LeakyRelu", alpha="alpha")
_same("elu", "Elu", alpha="alpha")
_same("softmax", "Softmax", axis="axis")
_same("log_softmax", "LogSoftmax", axis="axis")
_same("concat", "Concat", axis="axis")


def export(op):
    return EXPORTERS.register(op)


def _out(node):
    return [node.outputs[0]]


@export("square")
def square(ex, node):
    x = node.inputs[0]
    ex.add(node, "Mul", [x, x], _out(node), name=node.name)


@export("swish")
def swish(ex, node):
    x = node.inputs[0]
    bx = ex.add(node, "Mul", [x, ex.const(f"{node.name}.beta", node.op.beta)])
    gate = ex.add(node, "Sigmoid", [bx])
    ex.add(node, "Mul", [x, gate], _out(node), name=node.name)


@export("transpose")
def transpose(ex, node):
    perm = node.op._perm(len(ex.shape(node.inputs[0])))
    ex.add(node, "Transpose", node.inputs, _out(node), name=node.name, perm=list(perm))


@export("reshape")
def reshape(ex, node):
    shape = ex.const(f"{node.name}.shape", list(node.op.shape), "int64")
    ex.add(node, "Reshape", [node.inputs[0], shape], _out(node), name=node.name)


@export("flatten")
def flatten(ex, node):
    rank = len(ex.shape(node.inputs[0]))
    start = node.op.start_axis % rank
    if start == 1:
        ex.add(node, "Flatten", node.inputs, _out(node), name=node.name, axis=1)
        return
    shape = ex.const(f"{node.name}.shape", [0] * start + [-1], "int64")
    ex.add(node, "Reshape", [node.inputs[0], shape], _out(node), name=node.name)


def _reduce(op, onnx_op):
    def exporter(ex, node):
        axis = node.op.axis
        axes = None if axis is None else ([axis] if isinstance(axis, int) else list(axis))
        keep = int(node.op.keepdims)
        if onnx_op == "ReduceSum" or ex.opset >= 18:  # axes are an input
            inputs = [node.inputs[0]] + ([ex.const(f"{node.name}.axes", axes, "int64")]
                                         if axes is not None else [])
            ex.add(node, onnx_op, inputs, _out(node), name=node.name, keepdims=keep)
        elif axes is None:
            ex.add(node, onnx_op, node.inputs, _out(node), name=node.name, keepdims=keep)
        else:
            ex.add(node, onnx_op, node.inputs, _out(node), name=node.name, keepdims=keep,
                   axes=axes)
    EXPORTERS[op] = exporter


_reduce("sum", "ReduceSum")
_reduce("mean", "ReduceMean")
_reduce("max", "ReduceMax")


@export("dropout")
def dropout(ex, node):
    ratio = ex.const(f"{node.name}.ratio", node.op.p)
    ex.add(node, "Dropout", [node.inputs[0], ratio], _out(node), name=node.name)


@export("conv2d")
def conv2d(ex, node):
    s, p = node.op.stride, node.op.padding
    kh, kw = ex.shape(node.inputs[1])[2:]
    ex.add(node, "Conv", node.inputs, _out(node), name=node.name, kernel_shape=[kh, kw],
           strides=[s, s], pads=[p] * 4)


def _pool2d(op, onnx_op):
    def exporter(ex, node):
        k, s, p = node.op.kernel, node.op.step, node.op.padding
        extra = {"count_include_pad": 1} if onnx_op == "AveragePool" else {}
        ex.add(node, onnx_op, node.inputs, _out(node), name=node.name, kernel_shape=[k, k],
               strides=[s, s], pads=[p] * 4, **extra)
    EXPORTERS[op] = exporter


_pool2d("maxpool2d", "MaxPool")
_pool2d("avgpool2d", "AveragePool")


def _pool(op, onnx_op):
    def exporter(ex, node):
        pool: Pool = node.op
        k, s, e, before, after = pool.geometry(ex.shape(node.inputs[0])[2:])
        attrs = {"kernel_shape": list(k), "strides": list(s), "pads": list(before + after),
                 "ceil_mode": int(pool.ceil_mode)}
        if any(d != 1 for d in e):
            if onnx_op == "AveragePool" and ex.opset < 19:
                raise OnnxError(f"node '{node.name}' ({op}): a dilated average pool needs "
                                f"opset 19 or later (--opset 19)")
            attrs["dilations"] = list(e)
        if onnx_op == "AveragePool":
            attrs["count_include_pad"] = int(pool.count_include_pad)
        ex.add(node, onnx_op, node.inputs, _out(node), name=node.name, **attrs)
    EXPORTERS[op] = exporter


_pool("maxpool", "MaxPool")
_pool("avgpool", "AveragePool")


# ==== losses ======================================================================================

def _float(ex, node, tensor):
    """``tensor``, cast to float32 when it holds integers (0/1 targets, one-hot rows)."""
    if ex.dtype(tensor) in ("float32", "float64"):
        return tensor
    return ex.add(node, "Cast", [tensor], to=TensorProto.FLOAT)


def _reduce_loss(ex, node, losses, how=None):
    """The loss's reduction of the per-element (or per-row) ``losses``, as its output."""
    how = how or node.op.reduction
    if how == "none":
        ex.add(node, "Identity", [losses], _out(node), name=node.name)
        return
    ex.add(node, "ReduceMean" if how == "mean" else "ReduceSum", [losses], _out(node),
           name=node.name, keepdims=0)


@export("mse")
def mse(ex, node):
    d = ex.add(node, "Sub", [node.inputs[0], _float(ex, node, node.inputs[1])])
    _reduce_loss(ex, node, ex.add(node, "Mul", [d, d]))


@export("l1")
def l1(ex, node):
    d = ex.add(node, "Sub", [node.inputs[0], _float(ex, node, node.inputs[1])])
    _reduce_loss(ex, node, ex.add(node, "Abs", [d]))


@export("bce")
def bce(ex, node):
    p, t = node.inputs[0], _float(ex, node, node.inputs[1])
    floor = ex.const(f"{node.name}.log_floor", -100.0)
    one = ex.const(f"{node.name}.one", 1.0)
    log_p = ex.add(node, "Max", [ex.add(node, "Log", [p]), floor])
    log_q = ex.add(node, "Max", [ex.add(node, "Log", [ex.add(node, "Sub", [one, p])]), floor])
    a = ex.add(node, "Mul", [ex.add(node, "Sub", [t, one]), log_q])
    _reduce_loss(ex, node, ex.add(node, "Sub", [a, ex.add(node, "Mul", [t, log_p])]))


@export("bce_with_logits")
def bce_with_logits(ex, node):
    z, t = node.inputs[0], _float(ex, node, node.inputs[1])
    tail = ex.add(node, "Softplus", [ex.add(node, "Neg", [ex.add(node, "Abs", [z])])])
    a = ex.add(node, "Sub", [ex.add(node, "Relu", [z]), ex.add(node, "Mul", [t, z])])
    _reduce_loss(ex, node, ex.add(node, "Add", [a, tail]))


def _class_loss(onnx_op):
    def exporter(ex, node):
        scores, labels = node.inputs[:2]
        shape, label_shape = ex.shape(scores), ex.shape(labels)
        if len(label_shape) == len(shape):  # probability rows
            _probability_loss(ex, node)
            return
        if ex.dtype(labels) not in ("int32", "int64"):
            labels = ex.add(node, "Cast", [labels], to=TensorProto.INT64)
        if len(shape) > 2:  # (N, d1, ..., C) -> (N, C, d1, ...)
            rank = len(shape)
            scores = ex.add(node, "Transpose", [scores], perm=[0, rank - 1] +
                            list(range(1, rank - 1)))
        elif len(shape) == 1:
            raise OnnxError(f"node '{node.name}' ({node.op_name}): ONNX's {onnx_op} needs "
                            "a batch axis")
        attrs = {"reduction": node.op.reduction}
        if node.op.ignore_index is not None:
            attrs["ignore_index"] = node.op.ignore_index
        ex.add(node, onnx_op, [scores, labels] + list(node.inputs[2:]), _out(node),
               name=node.name, **attrs)
    return exporter


def _probability_loss(ex, node):
    scores, labels = node.inputs[:2]
    t = _float(ex, node, labels)
    logp = scores if node.op_name == "nll" else ex.add(node, "LogSoftmax", [scores], axis=-1)
    if len(node.inputs) > 2:
        t = ex.add(node, "Mul", [t, node.inputs[2]])
    axes = ex.const(f"{node.name}.class_axis", [-1], "int64")
    rows = ex.add(node, "ReduceSum", [ex.add(node, "Mul", [t, logp]), axes], keepdims=0)
    _reduce_loss(ex, node, ex.add(node, "Neg", [rows]))


EXPORTERS["cross_entropy"] = _class_loss("SoftmaxCrossEntropyLoss")
EXPORTERS["nll"] = _class_loss("NegativeLogLikelihoodLoss")


# ==== sequences and recurrent cells ===============================================================

def _cut(ex, node, x, start, stop, axis=-1):
    """ONNX Slice of ``x``: positions start .. stop (not included) along ``axis``."""
    return ex.add(node, "Slice", [x, ex.ints([start]), ex.ints([stop]), ex.ints([axis])])


@export("slice")
def slice_(ex, node):
    """index: Gather of a scalar index (the axis is dropped); a range: Slice."""
    x, op = node.inputs[0], node.op
    if op.index is not None:
        ex.add(node, "Gather", [x, ex.ints(op.index)], _out(node), name=node.name,
               axis=op.axis)
        return
    big = 2 ** 63 - 1  # ONNX's "to the end"
    inputs = [x, ex.ints([op.start or 0]), ex.ints([big if op.stop is None else op.stop]),
              ex.ints([op.axis]), ex.ints([op.step or 1])]
    ex.add(node, "Slice", inputs, _out(node), name=node.name)


@export("stack")
def stack(ex, node):
    """stack = Unsqueeze every input at the new axis, then Concat along it."""
    axis = node.op.axis % (len(ex.shape(node.inputs[0])) + 1)
    axes = ex.ints([axis])
    if len(node.inputs) == 1:
        ex.add(node, "Unsqueeze", [node.inputs[0], axes], _out(node), name=node.name)
        return
    parts = [ex.add(node, "Unsqueeze", [x, axes]) for x in node.inputs]
    ex.add(node, "Concat", parts, _out(node), name=node.name, axis=axis)


def _affine(ex, node, x, W, b, U=None, h=None):
    """x W + b (+ h U), in the order the cells add."""
    a = ex.add(node, "Add", [ex.add(node, "MatMul", [x, W]), b])
    if U is not None:
        a = ex.add(node, "Add", [a, ex.add(node, "MatMul", [h, U])])
    return a


def _units(ex, node, gates):
    return ex.shape(node.inputs[1])[1] // gates


@export("rnn_cell")
def rnn_cell(ex, node):
    """h' = tanh(x W + b + h U)."""
    x, W, b, *state = node.inputs
    a = _affine(ex, node, x, W, b, *state)
    ex.add(node, "Tanh", [a], _out(node), name=node.name)


@export("lstm_cell")
def lstm_cell(ex, node):
    """s = [h | c]; a = x W + b + h U; c' = f c + i g; h' = o tanh(c'); out = [h' | c']."""
    x, W, b, *rest = node.inputs
    H = _units(ex, node, 4)
    U, s = rest if rest else (None, None)
    h = _cut(ex, node, s, 0, H) if s is not None else None
    a = _affine(ex, node, x, W, b, U, h)
    i, g, o = (ex.add(node, act, [_cut(ex, node, a, k * H, (k + 1) * H)])
               for k, act in ((0, "Sigmoid"), (2, "Tanh"), (3, "Sigmoid")))
    c = ex.add(node, "Mul", [i, g])
    if s is not None:
        f = ex.add(node, "Sigmoid", [_cut(ex, node, a, H, 2 * H)])
        c = ex.add(node, "Add", [c, ex.add(node, "Mul", [f, _cut(ex, node, s, H, 2 * H)])])
    h = ex.add(node, "Mul", [o, ex.add(node, "Tanh", [c])])
    ex.add(node, "Concat", [h, c], _out(node), name=node.name, axis=1)


@export("gru_cell")
def gru_cell(ex, node):
    """xa = x W + b, ha = h U + bh (bh without h); r, z = sigmoid(xa + ha) per gate,
    n = tanh(xa_n + r ha_n), h' = n + z (h - n) (n - z n without h)."""
    x, W, b, bh, *rest = node.inputs
    H = _units(ex, node, 3)
    U, h = rest if rest else (None, None)
    xa = ex.add(node, "Add", [ex.add(node, "MatMul", [x, W]), b])
    ha = bh if h is None else ex.add(node, "Add", [ex.add(node, "MatMul", [h, U]), bh])
    x_r, x_z, x_n = (_cut(ex, node, xa, k * H, (k + 1) * H) for k in range(3))
    h_r, h_z, h_n = (_cut(ex, node, ha, k * H, (k + 1) * H) for k in range(3))
    r = ex.add(node, "Sigmoid", [ex.add(node, "Add", [x_r, h_r])])
    z = ex.add(node, "Sigmoid", [ex.add(node, "Add", [x_z, h_z])])
    n = ex.add(node, "Tanh", [ex.add(node, "Add", [x_n, ex.add(node, "Mul", [r, h_n])])])
    if h is None:
        ex.add(node, "Sub", [n, ex.add(node, "Mul", [z, n])], _out(node), name=node.name)
        return
    zd = ex.add(node, "Mul", [z, ex.add(node, "Sub", [h, n])])
    ex.add(node, "Add", [n, zd], _out(node), name=node.name)
