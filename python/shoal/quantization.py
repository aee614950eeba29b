"""Post-training static quantization into a standard ONNX QDQ model.

    shoal.quantize("model.onnx", shape=(1, 3, 224, 224), calibration=x,
                   method="minmax", output="model.qdq.onnx")

Conv, Gemm and MatMul with a constant weight are quantized: their weight
becomes an int8 initializer (symmetric, one scale per output channel) read
through DequantizeLinear, their bias an int32 one (scale = input scale x
weight scale, zero point 0), and their activation input passes through
QuantizeLinear -> DequantizeLinear with one scale (and zero point) per
tensor, calibrated on sample inputs run through shoal itself. Any engine that
reads QDQ models (onnxruntime, TensorRT, OpenVINO) runs the same
quantization. See docs/QUANTIZATION.md.

Also `python3 -m shoal.quantization` (what `shoal quantize` runs).
"""

import argparse
import os
import pathlib
import sys
import tempfile

import numpy as np

from . import errors

METHODS = ("minmax", "percentile", "entropy")
ACTIVATION_TYPES = ("auto", "u8", "s8")
_QUANTIZED_OPS = ("Conv", "Gemm", "MatMul")
_BINS = 2048


def _fail(message):
    return errors.InvalidArgumentError(message)


# --- calibration data -------------------------------------------------------

def _load_calibration(calibration):
    """An N x ... float32 array from an array or a directory of .npy files."""
    if isinstance(calibration, (str, os.PathLike)):
        path = pathlib.Path(calibration)
        if path.is_dir():
            files = sorted(path.glob("*.npy"))
            if not files:
                raise _fail(f"calibration directory '{path}' holds no .npy files")
            arrays = []
            for f in files:
                try:
                    a = np.load(f, allow_pickle=False)
                except Exception as e:  # noqa: BLE001 - any unreadable file
                    raise _fail(f"calibration file '{f}' is not a readable .npy file: {e}")
                arrays.append(a)
            return arrays, [str(f) for f in files]
        if path.suffix == ".npy" and path.is_file():
            try:
                return [np.load(path, allow_pickle=False)], [str(path)]
            except Exception as e:  # noqa: BLE001
                raise _fail(f"calibration file '{path}' is not a readable .npy file: {e}")
        raise _fail(f"calibration '{path}' is neither a .npy file nor a directory of them")
    if calibration is None:
        raise _fail("quantize needs calibration data (an N x C x H x W array or a "
                    "directory of .npy files)")
    return [np.asarray(calibration)], ["the calibration array"]


def _calibration_batch(calibration, sample_shape):
    """Checks the calibration data against the model's input (one sample of
    `sample_shape`, batch dim 1) and returns it as one float32 N x ... array."""
    arrays, names = _load_calibration(calibration)
    want = tuple(int(d) for d in sample_shape[1:])
    samples = []
    for a, name in zip(arrays, names):
        if a.dtype.kind not in "fiu":
            raise _fail(f"{name} holds {a.dtype} values, not numbers")
        if a.ndim == len(want) + 1 and tuple(a.shape[1:]) == want:
            samples.append(a)
        elif a.ndim == len(want) and tuple(a.shape) == want:
            samples.append(a[None])
        else:
            raise _fail(f"{name} has shape {tuple(a.shape)}; the model's input takes "
                        f"N x {' x '.join(map(str, want))} (or one sample of "
                        f"{' x '.join(map(str, want))})")
    x = np.concatenate(samples).astype(np.float32) if samples else np.zeros((0,) + want)
    if x.shape[0] == 0:
        raise _fail("the calibration set is empty (0 samples)")
    bad = ~np.isfinite(x.reshape(x.shape[0], -1))
    if bad.any():
        i = int(np.nonzero(bad.any(axis=1))[0][0])
        raise _fail(f"calibration sample {i} holds NaN or Inf values")
    if float(x.max()) == float(x.min()):
        raise _fail(f"the calibration inputs are constant (every value is {float(x.min())}): "
                    "they say nothing about the ranges real inputs reach")
    return x


# --- ranges -----------------------------------------------------------------

class _Range:
    """The values one tensor took over the calibration set: min/max, then a
    histogram of |x| over [0, max|x|] (second pass)."""

    def __init__(self):
        self.lo, self.hi = np.inf, -np.inf
        self.hist = None

    @property
    def amax(self):
        return max(abs(self.lo), abs(self.hi))

    def add_minmax(self, v):
        self.lo = min(self.lo, float(v.min()))
        self.hi = max(self.hi, float(v.max()))

    def add_hist(self, v):
        if self.amax == 0:
            return
        h, _ = np.histogram(np.abs(v), bins=_BINS, range=(0.0, self.amax))
        self.hist = h if self.hist is None else self.hist + h


def _percentile_amax(r, percentile):
    c = np.cumsum(r.hist)
    i = int(np.searchsorted(c, c[-1] * percentile / 100.0))
    return (i + 1) * r.amax / _BINS


def _smooth(p, eps=1e-4):
    """Moves eps of mass onto the empty bins (MXNet's _smooth_distribution),
    so that the divergence stays finite."""
    zero = p == 0
    n_zero, n_nonzero = int(zero.sum()), int((~zero).sum())
    if n_nonzero == 0:
        return None
    eps1 = eps * n_zero / n_nonzero
    if eps1 >= 1.0:
        return None
    return p + eps * zero - eps1 * (~zero)


def _entropy_amax(r, levels=128):
    """TensorRT's KL-divergence calibration: the clipping threshold whose
    distribution, quantized to `levels` bins, diverges least from the
    unclipped one (MXNet's and onnxruntime's formulation)."""
    hist = r.hist.astype(np.float64)
    best, best_i = np.inf, _BINS
    for i in range(levels, _BINS + 1, 8):
        sliced = hist[:i]
        p = sliced.copy()
        p[i - 1] += hist[i:].sum()  # the clipped values land on the edge
        nz = sliced != 0
        q = np.zeros(i)
        for idx in np.array_split(np.arange(i), levels):
            n = nz[idx].sum()
            if n:
                q[idx] = np.where(nz[idx], sliced[idx].sum() / n, 0)
        if p.sum() == 0 or q.sum() == 0:
            continue
        ps, qs = _smooth(p / p.sum()), _smooth(q / q.sum())
        if ps is None or qs is None or (ps <= 0).any() or (qs <= 0).any():
            continue
        kl = float((ps * np.log(ps / qs)).sum())
        if kl < best:
            best, best_i = kl, i
    return best_i * r.amax / _BINS


def _scale_zero_point(r, method, percentile, activations):
    """(scale, zero point) of one activation tensor."""
    lo, hi = min(r.lo, 0.0), max(r.hi, 0.0)
    if method != "minmax" and r.hist is not None:
        if method == "percentile":
            amax = _percentile_amax(r, percentile)
        else:  # levels of the 8-bit grid over [0, amax]
            amax = _entropy_amax(r, 255 if activations != "s8" and r.lo >= 0 else 128)
        lo, hi = max(lo, -amax), min(hi, amax)
    if activations == "auto":  # zero point 0 either way: u8 when non-negative
        if lo >= 0:
            return np.float32(hi / 255.0 if hi > 0 else 1.0), np.uint8(0)
        activations = "s8"
    if activations == "s8":  # symmetric, zero point 0
        amax = max(-lo, hi)
        scale = amax / 127.0 if amax > 0 else 1.0
        return np.float32(scale), np.int8(0)
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    zp = int(np.clip(round(-lo / scale), 0, 255))
    return np.float32(scale), np.uint8(zp)


# --- the model --------------------------------------------------------------

def _load_model(model):
    import onnx

    if isinstance(model, (bytes, bytearray, memoryview)):
        return onnx.load_from_string(bytes(model))
    if hasattr(model, "SerializeToString"):
        m = onnx.ModelProto()
        m.CopyFrom(model)
        return m
    if isinstance(model, (str, os.PathLike)):
        try:
            return onnx.load(os.fspath(model))
        except FileNotFoundError:
            raise _fail(f"cannot open model file '{os.fspath(model)}'")
        except Exception as e:  # noqa: BLE001 - protobuf's decode errors
            raise _fail(f"'{os.fspath(model)}' is not an ONNX model: {e}")
    raise TypeError(f"model must be a path, bytes or an onnx.ModelProto, got "
                    f"{type(model).__name__}")


def _opset(model):
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return 1


def _at_least_opset13(model):
    """DequantizeLinear's per-channel axis needs opset 13."""
    if _opset(model) >= 13:
        return model
    from onnx import version_converter

    try:
        return version_converter.convert_version(model, 13)
    except Exception as e:  # noqa: BLE001
        raise errors.UnsupportedError(
            f"the model's opset {_opset(model)} could not be converted to opset 13, which "
            f"QDQ models with per-channel scales need: {e}")


def _attr(node, name, default):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _remove_nodes(g, nodes):
    """Removes `nodes` from graph g, and the initializers no node reads any more."""
    for n in nodes:
        g.node.remove(n)
    used = {t for n in g.node for t in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)


def _fold_batchnorm(model):
    """Folds each inference BatchNormalization that alone reads a Conv with
    constant weights into that Conv, so the int8 weights (and their
    per-channel scales) are the ones the convolution computes with."""
    from onnx import numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    readers = {}
    for n in g.node:
        for t in n.input:
            readers[t] = readers.get(t, 0) + 1
    outputs = {o.name for o in g.output}
    producer = {o: n for n in g.node for o in n.output}
    drop = []
    for bn in g.node:
        if bn.op_type != "BatchNormalization" or len(bn.input) != 5 or len(bn.output) != 1:
            continue
        if _attr(bn, "training_mode", 0) or not all(t in inits for t in bn.input[1:]):
            continue
        conv = producer.get(bn.input[0])
        if conv is None or conv.op_type != "Conv" or conv.input[1] not in inits:
            continue
        if readers.get(bn.input[0], 0) != 1 or bn.input[0] in outputs:
            continue
        if readers.get(conv.input[1], 0) != 1 or (
                len(conv.input) > 2 and conv.input[2] and readers.get(conv.input[2], 0) != 1):
            continue
        scale, shift, mean, var = (numpy_helper.to_array(inits[t]).astype(np.float64)
                                   for t in bn.input[1:])
        k = scale / np.sqrt(var + float(_attr(bn, "epsilon", 1e-5)))
        w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
        has_bias = len(conv.input) > 2 and conv.input[2] != ""
        b = numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) if has_bias \
            else np.zeros(w.shape[0])
        w = (w * k.reshape([-1] + [1] * (w.ndim - 1))).astype(np.float32)
        b = ((b - mean) * k + shift).astype(np.float32)
        inits[conv.input[1]].CopyFrom(numpy_helper.from_array(w, conv.input[1]))
        bname = conv.input[2] if has_bias else conv.input[1] + "_bias"
        if has_bias:
            inits[bname].CopyFrom(numpy_helper.from_array(b, bname))
        else:
            g.initializer.append(numpy_helper.from_array(b, bname))
            while len(conv.input) < 3:
                conv.input.append("")
            conv.input[2] = bname
        conv.output[0] = bn.output[0]
        drop.append(bn)
    _remove_nodes(g, drop)


def _fold_weight_transposes(model):
    """Replaces each Transpose of a float initializer by the transposed
    initializer: exporters write a Linear as MatMul(x, Transpose(W)) (Swin,
    ViT's attention), whose weight is then a constant the quantizer sees."""
    from onnx import numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    drop = []
    for n in g.node:
        if n.op_type != "Transpose" or len(n.input) != 1 or n.input[0] not in inits:
            continue
        w = inits[n.input[0]]
        if w.data_type != 1:
            continue
        perm = _attr(n, "perm", None)
        t = np.transpose(numpy_helper.to_array(w), perm if perm else None)
        g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(t), n.output[0]))
        drop.append(n)
    _remove_nodes(g, drop)


def _candidates(model, exclude, keep_first_last):
    """Nodes to quantize: (node, weight axis) for Conv/Gemm/MatMul with a
    constant float weight of a shape we can scale per output channel."""
    inits = {i.name: i for i in model.graph.initializer}
    out = []
    for node in model.graph.node:
        if node.op_type not in _QUANTIZED_OPS or len(node.input) < 2:
            continue
        w = inits.get(node.input[1])
        if w is None or w.data_type != 1:
            continue
        if node.op_type == "Conv" and len(w.dims) >= 3:
            axis = 0
        elif node.op_type == "Gemm" and len(w.dims) == 2:
            if _attr(node, "alpha", 1.0) != 1.0 or _attr(node, "beta", 1.0) != 1.0 \
                    or _attr(node, "transA", 0):
                continue
            axis = 0 if _attr(node, "transB", 0) else 1
        elif node.op_type == "MatMul" and len(w.dims) == 2:
            axis = 1
        else:
            continue
        out.append((node, axis))
    names = {n.name for n, _ in out}
    missing = [e for e in exclude if e not in names]
    if missing:
        raise _fail(f"exclude names layers that are not quantizable Conv/Gemm/MatMul nodes: "
                    f"{', '.join(missing)} (quantizable: {', '.join(sorted(names)) or 'none'})")
    if keep_first_last and out:
        out = out[1:-1]
    return [(n, a) for n, a in out if n.name not in exclude]


def _with_outputs(model, names):
    """A copy of model whose outputs are `names`, typed by ONNX's shape
    inference where it can. Where it cannot (a Reshape, Flatten or Slice of
    computed sizes: ViT, Swin, ShuffleNet), the output is declared float32
    with an empty shape: the ONNX checker wants a shape field, and shoal
    infers every shape itself (its importer reads only the outputs' names).
    Every tensor calibrated is a float32 activation. The copy is only run
    here, never written out."""
    import onnx
    from onnx import TensorProto, helper

    aug = onnx.ModelProto()
    aug.CopyFrom(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        known = {v.name: v for v in inferred.graph.value_info}
        known.update({v.name: v for v in inferred.graph.output})
    except Exception:  # noqa: BLE001 - then shoal says what is wrong
        known = {}
    del aug.graph.output[:]
    for t in names:
        v = known.get(t)
        if v is None or not v.type.tensor_type.HasField("shape"):
            v = helper.make_tensor_value_info(t, TensorProto.FLOAT, [])
        aug.graph.output.append(v)
    return aug


def _calibrate(model, shape, x, tensors, method, batch=8):
    """Runs the model with shoal, `tensors` as extra outputs, over x; returns a
    _Range per tensor (min/max, and a histogram unless method is minmax)."""
    from . import Runtime, compile as shoal_compile

    graph_inputs = {i.name for i in model.graph.input}
    ranges = {t: _Range() for t in tensors}
    inner = [t for t in tensors if t not in graph_inputs]
    aug = _with_outputs(model, inner)
    rt = None
    if inner:
        rt = Runtime(shoal_compile(aug.SerializeToString(), shape=shape))
    input_name = model.graph.input[0].name

    def each_batch():
        for i in range(0, x.shape[0], batch):
            xb = x[i:i + batch]
            values = dict(zip(inner, rt.run(xb))) if rt else {}
            if input_name in ranges:
                values[input_name] = xb
            yield values

    for values in each_batch():
        for t, v in values.items():
            ranges[t].add_minmax(v)
    if method != "minmax":
        for values in each_batch():
            for t, v in values.items():
                ranges[t].add_hist(v)
    return ranges


def _quantize_weight(w, axis):
    """Symmetric s8 per output channel: (int8 array, float32 scales)."""
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    amax = np.abs(moved).max(axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    bshape = [1] * w.ndim
    bshape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(bshape)), -127, 127).astype(np.int8)
    return q, scale


def _output_points(model, nodes):
    """Where results are quantized, so that an engine chains int8 kernels:
    the result of each quantized Conv, or of the Relu/Clip that alone reads
    it (fused into the int8 convolution); and each Add of two activations one
    of which is such a result (a residual connection): both its inputs and
    its result (after a sole Relu/Clip), which an engine runs as an int8 Add.
    Graph outputs stay float."""
    import onnx

    g = model.graph
    readers = {}
    for n in g.node:
        for t in n.input:
            readers.setdefault(t, []).append(n)
    graph_outputs = {o.name for o in g.output}
    inits = {i.name for i in g.initializer}

    def after_activation(t):
        r = readers.get(t, [])
        if len(r) == 1 and r[0].op_type in ("Relu", "Clip") and t not in graph_outputs:
            return r[0].output[0]
        return t

    points = []
    for node, _ in nodes:
        if node.op_type != "Conv":
            continue
        t = after_activation(node.output[0])
        if t not in graph_outputs and readers.get(t):
            points.append(t)
    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph
        shapes = {v.name: [d.dim_value if d.HasField("dim_value") else d.dim_param
                           for d in v.type.tensor_type.shape.dim]
                  for v in list(inferred.value_info) + list(inferred.input)}
    except Exception:  # noqa: BLE001 - no residual Adds quantized then
        shapes = {}
    for n in g.node:  # in order: an Add's result may feed the next one
        if n.op_type != "Add" or len(n.input) != 2 or any(t in inits for t in n.input):
            continue
        a, b = n.input
        if a not in points and b not in points:
            continue
        if shapes.get(a) is None or shapes.get(a) != shapes.get(b):
            continue
        points.extend(t for t in (a, b) if t not in points)
        t = after_activation(n.output[0])
        if t not in graph_outputs and readers.get(t) and t not in points:
            points.append(t)
    return points


def _rewrite(model, quantized, params, outputs=()):
    """Inserts the QDQ nodes: one Q/DQ pair per calibrated activation (shared
    by its quantized readers; for the output points, by all its readers),
    DequantizeLinear for weights and biases."""
    from onnx import helper, numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    new_inits, new_nodes = [], {}
    dq_of = {}  # activation -> its dequantized name

    def const(name, array):
        new_inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def activation_qdq(t):
        if t in dq_of:
            return dq_of[t]
        scale, zp = params[t]
        s = const(t + "_scale", scale)
        z = const(t + "_zero_point", zp)
        q, dq = t + "_QuantizeLinear", t + "_DequantizeLinear"
        new_nodes.setdefault(t, []).extend([
            helper.make_node("QuantizeLinear", [t, s, z], [t + "_quantized"], name=q),
            helper.make_node("DequantizeLinear", [t + "_quantized", s, z], [t + "_dequantized"],
                             name=dq)])
        dq_of[t] = t + "_dequantized"
        return dq_of[t]

    before = {}  # node name -> DequantizeLinear nodes of its constants
    for node, axis in quantized:
        x = node.input[0]
        xs = params[x][0]
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        wq, ws = _quantize_weight(w, axis)
        base = node.name or node.output[0]
        wname = const(node.input[1] + "_quantized", wq)
        wsn = const(node.input[1] + "_scale", ws)
        wzp = const(node.input[1] + "_zero_point", np.zeros(ws.shape, np.int8))
        dqs = [helper.make_node("DequantizeLinear", [wname, wsn, wzp],
                                [node.input[1] + "_dequantized"], name=base + "_weight_DQ",
                                axis=axis)]
        node.input[1] = node.input[1] + "_dequantized"
        if len(node.input) > 2 and node.input[2] in inits:
            b = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64)
            if b.ndim == 1 and b.shape[0] == ws.shape[0]:
                bs = (np.float64(xs) * ws.astype(np.float64)).astype(np.float32)
                bq = np.clip(np.round(b / bs.astype(np.float64)), -2**31, 2**31 - 1)
                bname = const(node.input[2] + "_quantized", bq.astype(np.int32))
                bsn = const(node.input[2] + "_scale", bs)
                bzp = const(node.input[2] + "_zero_point", np.zeros(bs.shape, np.int32))
                dqs.append(helper.make_node("DequantizeLinear", [bname, bsn, bzp],
                                            [node.input[2] + "_dequantized"],
                                            name=base + "_bias_DQ", axis=0))
                node.input[2] = node.input[2] + "_dequantized"
        node.input[0] = activation_qdq(x)
        before[id(node)] = dqs
    for t in outputs:  # every reader takes the dequantized value
        dq = activation_qdq(t)
        for n in g.node:
            for i, name in enumerate(n.input):
                if name == t:
                    n.input[i] = dq

    # Rebuild the node list in order: each activation's Q/DQ right after its
    # producer (graph inputs: first), each weight's DQ right before its node.
    produced_by = {}
    for n in g.node:
        for o in n.output:
            produced_by[o] = n
    order = []
    for t, qdq in new_nodes.items():
        if t not in produced_by:
            order.extend(qdq)
    for n in list(g.node):
        order.extend(before.get(id(n), []))
        order.append(n)
        for o in n.output:
            order.extend(new_nodes.get(o, []))
    used = set()
    for n in order:
        used.update(n.input)
    del g.node[:]
    g.node.extend(order)
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep + new_inits)
    # Weights and biases replaced by their quantized form leave the inputs
    # list (old exporters list initializers as inputs too).
    kept_inputs = [i for i in g.input if i.name in used or i.name not in inits]
    del g.input[:]
    g.input.extend(kept_inputs)


def _sample_shape(model, shape):
    """The model's input shape for one sample: `shape` (as shoal.compile takes
    it) or the model's own static one."""
    from . import _shape_arg

    if len(model.graph.input) == 0:
        raise _fail("the model has no inputs")
    inits = {i.name for i in model.graph.initializer}
    real = [i for i in model.graph.input if i.name not in inits]
    if len(real) != 1:
        raise errors.UnsupportedError(
            f"quantize takes models with one input; this one has {len(real)}")
    if shape is not None:
        return _shape_arg(shape)
    dims = real[0].type.tensor_type.shape.dim
    out = [d.dim_value if d.HasField("dim_value") else 0 for d in dims]
    if out and out[0] == 0:
        out[0] = 1
    if not out or any(d <= 0 for d in out):
        raise _fail(f"the model's input '{real[0].name}' has no static shape: give shape=")
    return out


def quantize(model, shape=None, calibration=None, method="minmax", output=None,
             activations="auto", exclude=(), keep_first_last=False, percentile=99.999,
             report=False):
    """Quantizes an ONNX model into a QDQ model; returns the onnx.ModelProto
    (and writes it to `output` when given).

    model: a path, bytes or an onnx.ModelProto (float32, one input).
    shape: the input shape of one sample, as shoal.compile takes it (None:
        the model's own static shape).
    calibration: sample inputs, N x C x H x W (one sample's dims after N),
        or a .npy file or a directory of .npy files (each one sample or a
        batch of them). Errors (shoal.InvalidArgumentError) for a wrong shape,
        NaN or Inf, an empty set, or constant inputs.
    method: how activation ranges are taken from the calibration values:
        "minmax" (the extremes), "percentile" (|x| clipped at `percentile`
        percent of the values) or "entropy" (the clipping threshold
        minimizing the KL divergence of the 8-bit histogram, TensorRT's
        method).
    activations: "auto" (the default: uint8 with zero point 0 for tensors
        that are never negative, such as ReLU outputs, symmetric int8
        otherwise: no zero points, the fastest int8 kernels), "u8"
        (asymmetric uint8, zero point from the range, as onnxruntime's
        quantizer writes by default) or "s8" (symmetric int8, zero point 0).
        Weights are always symmetric s8, one scale per output channel;
        biases int32.
    exclude: names of Conv/Gemm/MatMul nodes to leave in float32;
        keep_first_last: also leave the first and the last one.
    report: also return, per quantized layer, the signal-to-noise ratio (dB)
        of its output when only its own input and weights are quantized,
        worst first: (model, [(node name, snr_db), ...]).
    Nothing is written unless everything succeeded (the output file is
    written to a temporary name and renamed).
    """
    import onnx

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if activations not in ACTIVATION_TYPES:
        raise ValueError(f"activations must be 'auto', 'u8' or 's8', got {activations!r}")
    if not 50.0 < float(percentile) <= 100.0:
        raise ValueError(f"percentile must be in (50, 100], got {percentile!r}")
    exclude = list(exclude or ())
    m = _at_least_opset13(_load_model(model))
    _fold_batchnorm(m)
    _fold_weight_transposes(m)
    sample_shape = _sample_shape(m, shape)
    x = _calibration_batch(calibration, sample_shape)
    nodes = _candidates(m, exclude, keep_first_last)
    if not nodes:
        raise errors.UnsupportedError(
            "the model has no Conv, Gemm or MatMul with a constant weight left to quantize")
    outputs = _output_points(m, nodes)
    tensors = list(dict.fromkeys([n.input[0] for n, _ in nodes] + outputs))
    ranges = _calibrate(m, sample_shape, x, tensors, method)
    params = {t: _scale_zero_point(ranges[t], method, float(percentile), activations)
              for t in tensors}
    layer_report = _layer_report(m, sample_shape, x, nodes, params) if report else None
    _rewrite(m, nodes, params, outputs)
    m.producer_name, m.producer_version = "shoal.quantize", _version()
    try:
        onnx.checker.check_model(m)
    except Exception as e:  # noqa: BLE001
        raise errors.InternalError(f"the quantized model fails the ONNX checker: {e}")
    if output is not None:
        _write_atomically(m, output)
    return (m, layer_report) if report else m


def _layer_report(model, shape, x, nodes, params):
    """Per quantized layer: the SNR of its output with its input and weight
    quantized (the rest float), on the calibration inputs, worst first."""
    from onnx import helper, numpy_helper

    from . import Runtime, compile as shoal_compile

    outs = [n.output[0] for n, _ in nodes]
    ins = list(dict.fromkeys(n.input[0] for n, _ in nodes))
    names = [t for t in ins + outs if t not in {i.name for i in model.graph.input}]
    aug = _with_outputs(model, names)
    rt = Runtime(shoal_compile(aug.SerializeToString(), shape=shape))
    xs = x[:min(len(x), 16)]
    got = dict(zip(names, rt.run(xs)))
    got[model.graph.input[0].name] = xs
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    out = []
    for node, axis in nodes:
        xin = got[node.input[0]]
        scale, zp = params[node.input[0]]
        lo, hi = (-128, 127) if zp.dtype == np.int8 else (0, 255)
        xq = (np.clip(np.round(xin / scale) + int(zp), lo, hi) - int(zp)) * scale
        w = inits[node.input[1]].astype(np.float32)
        wq, ws = _quantize_weight(w, axis)
        bshape = [1] * w.ndim
        bshape[axis] = -1
        wdq = wq.astype(np.float32) * ws.reshape(bshape)
        one = helper.make_graph(
            [helper.make_node(node.op_type, ["x", "w"] + list(node.input[2:]), ["y"],
                              **{a.name: helper.get_attribute_value(a) for a in node.attribute})],
            "layer", [helper.make_tensor_value_info("x", 1, [1] + list(xq.shape[1:]))],
            [helper.make_tensor_value_info("y", 1, [1] + list(got[node.output[0]].shape[1:]))],
            initializer=[numpy_helper.from_array(wdq, "w")] +
            [numpy_helper.from_array(inits[i], i) for i in node.input[2:] if i in inits])
        lm = helper.make_model(one, opset_imports=model.opset_import)
        y = Runtime(shoal_compile(lm.SerializeToString(), shape=[1] + list(xq.shape[1:]))).run(
            xq.astype(np.float32))[0]
        ref = got[node.output[0]].astype(np.float64)
        noise = ((ref - y) ** 2).sum()
        snr = float("inf") if noise == 0 else float(10 * np.log10((ref ** 2).sum() / noise))
        out.append((node.name, snr))
    return sorted(out, key=lambda r: r[1])


def _version():
    try:
        from . import __version__
        return __version__
    except ImportError:
        return ""


def _write_atomically(model, output):
    output = os.fspath(output)
    d = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(d):
        raise _fail(f"cannot write '{output}': directory '{d}' does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".shoal-quantize-", suffix=".onnx", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(model.SerializeToString())
        os.replace(tmp, output)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="shoal quantize",
        description="Calibrates and quantizes an ONNX model into a QDQ model (int8 weights "
                    "per output channel, int8 activations per tensor, int32 biases).")
    p.add_argument("model", help="the float32 ONNX model")
    p.add_argument("-o", "--output", help="the QDQ model to write (default: MODEL.qdq.onnx)")
    p.add_argument("-s", "--shape", help="input shape of one sample: WxHxC or N,C,H,W")
    p.add_argument("--calibration", required=True,
                   help="sample inputs: an N x C x H x W .npy file or a directory of .npy files")
    p.add_argument("--method", default="minmax", choices=METHODS)
    p.add_argument("--activations", default="auto", choices=ACTIVATION_TYPES)
    p.add_argument("--percentile", type=float, default=99.999)
    p.add_argument("--exclude", default="", help="comma-separated node names to keep in fp32")
    p.add_argument("--keep-first-last", action="store_true",
                   help="keep the first and last quantizable layers in fp32")
    p.add_argument("--report", action="store_true",
                   help="print the layers losing the most to quantization (SNR of their output)")
    a = p.parse_args(argv)
    output = a.output or (a.model[:-5] if a.model.endswith(".onnx") else a.model) + ".qdq.onnx"
    try:
        res = quantize(a.model, shape=a.shape, calibration=a.calibration, method=a.method,
                       output=output, activations=a.activations,
                       exclude=[e for e in a.exclude.split(",") if e],
                       keep_first_last=a.keep_first_last, percentile=a.percentile,
                       report=a.report)
    except (errors.Error, ValueError) as e:
        print(f"shoal: error: {e}", file=sys.stderr)
        return 1
    model = res[0] if a.report else res
    n = sum(1 for node in model.graph.node if node.op_type == "QuantizeLinear")
    print(f"quantized {a.model} -> {output} ({a.method}, {a.activations} activations; "
          f"{n} activation tensors quantized)")
    if a.report:
        print("per-layer output SNR with that layer quantized (worst first):")
        for name, snr in res[1]:
            print(f"  {snr:7.1f} dB  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
