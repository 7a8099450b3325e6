"""One converter per ONNX op type: ``convert(imp, node)`` emits minigraph nodes.

Every ONNX default is written out explicitly (pooling strides, ``keepdims=1``, Softmax's axis,
LeakyRelu's alpha ...), and every attribute value minigraph cannot express is refused with
:meth:`Importer.fail` naming the attribute.  ONNX puts the class axis of its losses at 1 and
minigraph at the end: a Transpose moves it when the scores have more than two axes.  Slice,
Gather of constant indices and Unsqueeze become ``slice`` and ``stack`` (so an exported
recurrent layer comes back as its steps even without the exporter's metadata).
"""
from __future__ import annotations

import math

from ..registry import Registry

CONVERTERS = Registry("ONNX op")
convert = CONVERTERS.register


def _same_op(onnx_name, op, **renamed):
    """A converter for an ONNX op that is one minigraph op; ``renamed``: minigraph attribute
    -> (ONNX attribute, ONNX default)."""
    def converter(imp, node):
        known = {onnx_attr for onnx_attr, _ in renamed.values()}
        for a in node.attribute:
            if a.name not in known:
                raise imp.fail(node, "is not supported", a.name)
        attrs = {mg: float(imp.attr(node, onnx_attr, default))
                 for mg, (onnx_attr, default) in renamed.items()}
        imp.emit(node.name or node.output[0], op, list(node.input), node.output[0], attrs)
    CONVERTERS[onnx_name] = converter


for _name, _op in (("Add", "add"), ("Sub", "sub"), ("Mul", "mul"), ("Div", "div"),
                   ("Neg", "neg"), ("Exp", "exp"), ("Log", "log"),
                   ("Sqrt", "sqrt"), ("Abs", "abs"), ("MatMul", "matmul"),
                   ("Sigmoid", "sigmoid"), ("Tanh", "tanh"), ("Relu", "relu"),
                   ("Softplus", "softplus"), ("Sign", "sign"), ("Identity", "identity")):
    _same_op(_name, _op)


@convert("Max")
def maximum(imp, node):
    """Max of two tensors -> maximum (more inputs: a chain of maximum)."""
    _only(imp, node, ())
    y = node.input[0]
    for i, other in enumerate(node.input[1:], start=1):
        last = i == len(node.input) - 1
        y = imp.emit(_name(node) if last else f"{_name(node)}.{i}", "maximum", [y, other],
                     node.output[0] if last else imp.fresh(f"{_name(node)}.{i}"))
    if len(node.input) == 1:
        imp.emit(_name(node), "identity", [y], node.output[0])
_same_op("LeakyRelu", "leaky_relu", alpha=("alpha", 0.01))
_same_op("Elu", "elu", alpha=("alpha", 1.0))
_same_op("Swish", "swish", beta=("alpha", 1.0))


def _only(imp, node, allowed):
    for a in node.attribute:
        if a.name not in allowed:
            raise imp.fail(node, "is not supported", a.name)


def _name(node):
    return node.name or node.output[0]


@convert("Gemm")
def gemm(imp, node):
    """Y = alpha * A' B' + beta * C, A' = A or A^T, B' = B or B^T; a transposed weight that
    only this node reads is stored transposed (as a linear layer's W (in, out))."""
    _only(imp, node, ("alpha", "beta", "transA", "transB"))
    base = _name(node)
    a, b = node.input[0], node.input[1]
    if imp.attr(node, "transA", 0):
        a = imp.emit(f"{base}.transA", "transpose", [a], imp.fresh(f"{base}.A_T"),
                     {"perm": [1, 0]})
    if imp.attr(node, "transB", 0) and imp.only_reader(node, b):
        imp.values[b] = imp.values[b].T.copy()  # a weight (out, in) kept as (in, out)
        imp.shapes[b] = imp.values[b].shape
    elif imp.attr(node, "transB", 0):
        b = imp.emit(f"{base}.transB", "transpose", [b], imp.fresh(f"{base}.B_T"),
                     {"perm": [1, 0]})
    alpha, beta = imp.attr(node, "alpha", 1.0), imp.attr(node, "beta", 1.0)
    has_c = len(node.input) > 2 and node.input[2]
    last = not has_c and alpha == 1.0
    y = imp.emit(f"{base}.matmul", "matmul", [a, b],
                 node.output[0] if last else imp.fresh(f"{base}.AB"))
    if alpha != 1.0:
        y = imp.emit(f"{base}.alpha", "mul", [y, _scalar(imp, base, "alpha", alpha)],
                     node.output[0] if not has_c else imp.fresh(f"{base}.alphaAB"))
    if has_c:
        c = node.input[2]
        if beta != 1.0:
            c = imp.emit(f"{base}.beta", "mul", [c, _scalar(imp, base, "beta", beta)],
                         imp.fresh(f"{base}.betaC"))
        imp.emit(f"{base}.add", "add", [y, c], node.output[0])


def _scalar(imp, base, what, number):
    """A float constant tensor holding ``number``."""
    name = imp.fresh(f"{base}.{what}")
    imp.constants[name] = {"value": float(number)}
    return name


@convert("Transpose")
def transpose(imp, node):
    _only(imp, node, ("perm",))
    perm = imp.attr(node, "perm")
    if perm is None:  # ONNX's default: reverse the axes
        shape = imp.shape(node.input[0])
        if shape is None:
            raise imp.fail(node, "no perm, and the input's rank is unknown", "perm")
        perm = list(reversed(range(len(shape))))
    imp.emit(_name(node), "transpose", [node.input[0]], node.output[0],
             {"perm": [int(p) for p in perm]})


@convert("Reshape")
def reshape(imp, node):
    _only(imp, node, ("allowzero",))
    target = [int(d) for d in imp.value(node, 1, "the new shape")]
    shape = imp.shape(node.input[0])
    allowzero = imp.attr(node, "allowzero", 0)
    start = len(target) - 1
    if not allowzero and start >= 1 and target == [0] * start + [-1] and shape is not None \
            and len(shape) > start:  # keep the leading axes, merge the rest: a flatten
        imp.emit(_name(node), "flatten", [node.input[0]], node.output[0], {"start_axis": start})
        return
    out = []
    for i, d in enumerate(target):
        if d == 0 and allowzero:
            raise imp.fail(node, "a new shape with a size-0 dimension", "allowzero")
        if d == 0:  # copy the input's dimension
            d = shape[i] if shape and i < len(shape) else None
            if not isinstance(d, int):
                if -1 in target:
                    raise imp.fail(node, f"dimension {i} copies a dimension of unknown size")
                d = -1
        out.append(d)
    imp.emit(_name(node), "reshape", [node.input[0]], node.output[0], {"shape": out})


@convert("Flatten")
def flatten(imp, node):
    """ONNX Flatten is 2-D: (prod(dims[:axis]), prod(dims[axis:]))."""
    _only(imp, node, ("axis",))
    shape = imp.shape(node.input[0])
    if shape is None:
        raise imp.fail(node, "the input's rank is unknown")
    rank = len(shape)
    axis = imp.attr(node, "axis", 1)
    axis = axis + rank if axis < 0 else axis
    if axis == 1 and rank >= 2:
        imp.emit(_name(node), "flatten", [node.input[0]], node.output[0], {"start_axis": 1})
        return
    head, tail = shape[:axis], shape[axis:]
    if all(isinstance(d, int) for d in tail):
        target = [-1, math.prod(tail)]
    elif all(isinstance(d, int) for d in head):
        target = [math.prod(head), -1]
    else:
        raise imp.fail(node, f"both sides of axis {axis} hold dimensions of unknown size")
    imp.emit(_name(node), "reshape", [node.input[0]], node.output[0], {"shape": target})


@convert("Concat")
def concat(imp, node):
    _only(imp, node, ("axis",))
    imp.emit(_name(node), "concat", list(node.input), node.output[0],
             {"axis": int(imp.attr(node, "axis"))})


def _reduce(onnx_name, op):
    def converter(imp, node):
        _only(imp, node, ("axes", "keepdims", "noop_with_empty_axes"))
        axes = imp.attr(node, "axes")
        if axes is None and len(node.input) > 1:
            axes = imp.value(node, 1, "the axes")
        axes = None if axes is None else [int(a) for a in axes]
        keepdims = bool(imp.attr(node, "keepdims", 1))
        if not axes and imp.attr(node, "noop_with_empty_axes", 0):
            imp.emit(_name(node), "identity", [node.input[0]], node.output[0])
            return
        imp.emit(_name(node), op, [node.input[0]], node.output[0],
                 {"axis": axes or None, "keepdims": keepdims})
    CONVERTERS[onnx_name] = converter


_reduce("ReduceSum", "sum")
_reduce("ReduceMean", "mean")
_reduce("ReduceMax", "max")


def _softmax(onnx_name, op):
    def converter(imp, node):
        _only(imp, node, ("axis",))
        shape = imp.shape(node.input[0])
        axis = int(imp.attr(node, "axis", -1 if imp.opset >= 13 else 1))
        rank = len(shape) if shape is not None else None
        if imp.opset < 13 and (rank is None or axis % max(rank, 1) != rank - 1):
            raise imp.fail(node, f"opset {imp.opset} {onnx_name} over the flattened axes "
                                 f"{axis}.. is not supported (only the last axis)", "axis")
        imp.emit(_name(node), op, [node.input[0]], node.output[0], {"axis": axis})
    CONVERTERS[onnx_name] = converter


_softmax("Softmax", "softmax")
_softmax("LogSoftmax", "log_softmax")


@convert("Dropout")
def dropout(imp, node):
    """Dropout(ratio): minigraph's dropout, the identity outside training."""
    _only(imp, node, ("ratio", "is_test", "seed"))
    if len(node.output) > 1 and node.output[1]:
        raise imp.fail(node, "the mask output is not supported (minigraph's dropout has one "
                             "output)")
    ratio = imp.attr(node, "ratio", 0.5)
    if len(node.input) > 1 and node.input[1]:
        ratio = float(imp.value(node, 1, "the ratio"))
    training = imp.value(node, 2, "training_mode") if len(node.input) > 2 else None
    if training is not None and bool(training) and ratio != 0:
        raise imp.fail(node, "training_mode = true draws a random mask; minigraph draws its "
                             "own from the run's generator")
    imp.emit(_name(node), "dropout", [node.input[0]], node.output[0], {"p": float(ratio)})


# ==== windows: Conv, MaxPool, AveragePool =========================================================

def _window(imp, node, spatial_rank):
    """(kernel, strides, dilations, pads [begin..., end...]) with ONNX's defaults and
    ``auto_pad`` resolved against the input's size."""
    kernel = imp.attr(node, "kernel_shape")
    if kernel is None:
        w = imp.shape(node.input[1]) if len(node.input) > 1 else None
        if not w or not all(isinstance(d, int) for d in w[2:]):
            raise imp.fail(node, "the kernel's size is unknown", "kernel_shape")
        kernel = w[2:]
    kernel = [int(k) for k in kernel]
    d = len(kernel)
    strides = [int(s) for s in imp.attr(node, "strides", [1] * d)]
    dilations = [int(e) for e in imp.attr(node, "dilations", [1] * d)]
    pads = [int(p) for p in imp.attr(node, "pads", [0] * (2 * d))]
    auto = imp.attr(node, "auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        size = (imp.shape(node.input[0]) or ())[2:]
        if len(size) != d or not all(isinstance(n, int) for n in size):
            raise imp.fail(node, f"{auto} needs the input's spatial size", "auto_pad")
        pads = [0] * (2 * d)
        for i in range(d):
            out = -(-size[i] // strides[i])
            total = max((out - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1 - size[i], 0)
            small, large = total // 2, total - total // 2
            pads[i], pads[i + d] = (small, large) if auto == "SAME_UPPER" else (large, small)
    elif auto == "VALID":
        pads = [0] * (2 * d)
    elif auto != "NOTSET":
        raise imp.fail(node, f"{auto!r} is not an auto_pad mode", "auto_pad")
    if d != spatial_rank and spatial_rank:
        raise imp.fail(node, f"a {d}-D window is not supported here", "kernel_shape")
    return kernel, strides, dilations, pads


def _pool(op, extra):
    def converter(imp, node):
        _only(imp, node, ("kernel_shape", "strides", "dilations", "pads", "auto_pad",
                          "ceil_mode", "storage_order") + extra)
        if len(node.output) > 1 and node.output[1]:
            raise imp.fail(node, "the Indices output is not supported (maxpool has one output)")
        kernel, strides, dilations, pads = _window(imp, node, 0)
        if not 1 <= len(kernel) <= 3:
            raise imp.fail(node, f"{len(kernel)}-D pooling is not supported", "kernel_shape")
        attrs = {"kernel": kernel, "stride": strides, "padding": pads,
                 "dilation": dilations, "ceil_mode": bool(imp.attr(node, "ceil_mode", 0))}
        if extra:  # AveragePool: ONNX does not count the pads by default
            attrs["count_include_pad"] = bool(imp.attr(node, "count_include_pad", 0))
        square = _square_pool(attrs)
        if square is not None:  # the teaching op (and the fused training kernels) fit
            imp.emit(_name(node), f"{op}2d", [node.input[0]], node.output[0], square)
            return
        imp.emit(_name(node), op, [node.input[0]], node.output[0], attrs)
    return converter


def _square_pool(attrs):
    """maxpool2d/avgpool2d's attributes when a pool is their case (2-D, square kernel, one
    stride, the same padding on every side and at most half the kernel, no dilation or
    ceil_mode, pads counted in the mean), else None."""
    k, s, p = attrs["kernel"], attrs["stride"], attrs["padding"]
    if len(k) != 2 or len(set(k)) != 1 or len(set(s)) != 1 or len(set(p)) != 1:
        return None
    if attrs["ceil_mode"] or set(attrs["dilation"]) != {1} or p[0] > k[0] // 2:
        return None
    if p[0] and not attrs.get("count_include_pad", True):
        return None
    out = {"kernel": k[0]}
    if s[0] != k[0]:
        out["stride"] = s[0]
    if p[0]:
        out["padding"] = p[0]
    return out


CONVERTERS["MaxPool"] = _pool("maxpool", ())
CONVERTERS["AveragePool"] = _pool("avgpool", ("count_include_pad",))


@convert("Conv")
def conv(imp, node):
    """Conv -> conv2d: 2-D, one group, no dilation, the same stride and padding everywhere."""
    _only(imp, node, ("kernel_shape", "strides", "dilations", "pads", "auto_pad", "group"))
    if imp.attr(node, "group", 1) != 1:
        raise imp.fail(node, "grouped convolution is not supported", "group")
    kernel, strides, dilations, pads = _window(imp, node, 2)
    if any(e != 1 for e in dilations):
        raise imp.fail(node, f"dilations {dilations} are not supported (conv2d has none)",
                       "dilations")
    if len(set(strides)) != 1:
        raise imp.fail(node, f"strides {strides} differ per axis (conv2d has one stride)",
                       "strides")
    if len(set(pads)) != 1:
        raise imp.fail(node, f"pads {pads} differ per side (conv2d pads every side alike)",
                       "pads")
    imp.emit(_name(node), "conv2d", list(node.input), node.output[0],
             {"stride": strides[0], "padding": pads[0]})


# ==== losses: the class axis is 1 in ONNX, last in minigraph ======================================

def _class_loss(op):
    def converter(imp, node):
        _only(imp, node, ("reduction", "ignore_index"))
        base = _name(node)
        scores = node.input[0]
        rank = len(imp.shape(scores) or ())
        if rank < 2:
            raise imp.fail(node, "scores need a batch and a class axis")
        if len(node.output) > 1 and node.output[1]:  # SoftmaxCrossEntropyLoss's log_prob
            imp.emit(f"{base}.log_prob", "log_softmax", [scores], node.output[1], {"axis": 1})
        if rank > 2:  # (N, C, d1, ...) -> (N, d1, ..., C)
            scores = imp.emit(f"{base}.classes_last", "transpose", [scores],
                              imp.fresh(f"{base}.classes_last"),
                              {"perm": [0] + list(range(2, rank)) + [1]})
        reduction = imp.attr(node, "reduction", b"mean")
        attrs = {"reduction": reduction.decode() if isinstance(reduction, bytes) else reduction}
        ignore = imp.attr(node, "ignore_index")
        if ignore is not None:
            attrs["ignore_index"] = int(ignore)
        inputs = [scores, node.input[1]]
        if len(node.input) > 2 and node.input[2]:
            inputs.append(node.input[2])
        imp.emit(base, op, inputs, node.output[0], attrs)
    return converter


CONVERTERS["SoftmaxCrossEntropyLoss"] = _class_loss("cross_entropy")
CONVERTERS["NegativeLogLikelihoodLoss"] = _class_loss("nll")


@convert("Constant")
def constant(imp, node):
    """A Constant's value is known: it becomes a constant tensor where a node reads it."""
    from onnx import numpy_helper  # noqa: PLC0415
    value = imp.attr(node, "value")
    if value is None:
        raise imp.fail(node, "only the 'value' form is supported",
                       node.attribute[0].name if node.attribute else None)
    imp.values[node.output[0]] = numpy_helper.to_array(value)


@convert("Pow")
def power(imp, node):
    """Pow; an integer base with a float exponent is refused: ONNX keeps the base's integer
    dtype, minigraph (as NumPy and PyTorch) gives a float."""
    _only(imp, node, ())
    import onnx  # noqa: PLC0415

    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16)
    base, exponent = (imp.dtypes.get(t, onnx.TensorProto.FLOAT) for t in node.input[:2])
    if base not in floats and exponent in floats:
        raise imp.fail(node, "an integer base with a float exponent: ONNX keeps the integer "
                             "dtype, minigraph's pow gives a float")
    imp.emit(_name(node), "pow", list(node.input), node.output[0])


# ==== sequences: Slice, Gather of one index, Unsqueeze ============================================

_END = 2 ** 62  # a start or end at least this large is ONNX's "from the start / to the end"


@convert("Slice")
def slice_(imp, node):
    """Slice -> one ``slice`` (a range) per axis; steps below 1 are refused."""
    _only(imp, node, ())
    starts = [int(v) for v in imp.value(node, 1, "the starts")]
    ends = [int(v) for v in imp.value(node, 2, "the ends")]
    axes = imp.value(node, 3, "the axes")
    axes = list(range(len(starts))) if axes is None else [int(a) for a in axes]
    steps = imp.value(node, 4, "the steps")
    steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
    if any(s < 1 for s in steps):
        raise imp.fail(node, f"steps {steps}: minigraph's slice steps forward only (>= 1)")
    base, y = _name(node), node.input[0]
    for k, (axis, start, end, step) in enumerate(zip(axes, starts, ends, steps)):
        attrs = {"axis": axis, "start": start if start > -_END else 0, "step": step}
        if end < _END:
            attrs["stop"] = end
        last = k == len(axes) - 1
        y = imp.emit(base if last else f"{base}.axis{axis}", "slice", [y],
                     node.output[0] if last else imp.fresh(f"{base}.axis{axis}"), attrs)


@convert("Gather")
def gather(imp, node):
    """Gather of constant indices: one index (a scalar) -> ``slice`` with ``index`` (the axis
    goes); a list of them -> a ``stack`` of those slices at the axis."""
    _only(imp, node, ("axis",))
    index = imp.value(node, 1, "the indices")
    if index.ndim > 1:
        raise imp.fail(node, f"indices of shape {list(index.shape)}: only one index or a "
                             "list of them is supported")
    axis, base = int(imp.attr(node, "axis", 0)), _name(node)
    if index.ndim == 0:
        imp.emit(base, "slice", [node.input[0]], node.output[0],
                 {"axis": axis, "index": int(index)})
        return
    parts = [imp.emit(f"{base}.at{k}", "slice", [node.input[0]], imp.fresh(f"{base}.at{k}"),
                      {"axis": axis, "index": int(i)}) for k, i in enumerate(index)]
    imp.emit(base, "stack", parts, node.output[0], {"axis": axis})


@convert("Unsqueeze")
def unsqueeze(imp, node):
    """Unsqueeze -> a ``stack`` of the one input per new axis (in increasing order)."""
    _only(imp, node, ("axes",))
    axes = imp.attr(node, "axes")
    if axes is None:
        axes = imp.value(node, 1, "the axes")
    if axes is None:
        raise imp.fail(node, "no axes to insert", "axes")
    shape = imp.shape(node.input[0])
    if shape is None:
        raise imp.fail(node, "the input's rank is unknown")
    rank = len(shape) + len(axes)
    axes = sorted(int(a) % rank for a in axes)
    base, y = _name(node), node.input[0]
    for k, axis in enumerate(axes):
        last = k == len(axes) - 1
        y = imp.emit(base if last else f"{base}.axis{axis}", "stack", [y],
                     node.output[0] if last else imp.fresh(f"{base}.axis{axis}"),
                     {"axis": axis})
