"""One exporter per minigraph op: ``export(ex, node)`` appends the ONNX node(s) computing it.

Where ONNX has the op, it is one node of the same name.  Losses without an ONNX op are small
compositions written as minigraph computes them:

    mse             = mean (p - t)^2                  l1 = mean |p - t|
    bce             = mean (t - 1) max(ln(1 - p), -100) - t max(ln p, -100)
    bce_with_logits = mean relu(z) - t z + softplus(-|z|)
    cross_entropy / nll with probability rows = mean over rows of -sum_c t_c log p_c

and cross_entropy/nll with class indices are ONNX's SoftmaxCrossEntropyLoss /
NegativeLogLikelihoodLoss (the class axis moved to 1 when the scores have more than two axes).
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
