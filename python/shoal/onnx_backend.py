"""An ``onnx.backend.base.Backend`` over shoal's compiler and runtime.

    import shoal.onnx_backend as backend
    rep = backend.prepare(model)            # an onnx.ModelProto
    (y,) = rep.run([x])                     # numpy arrays, model input order
    outputs = backend.run_node(node, [x])   # one onnx.NodeProto

It exists so that ONNX's backend test suite (``onnx.backend.test``) can run
against shoal (tests/python/test_onnx_conformance.py). Two things differ
between ONNX's backend contract and shoal's programs, and the adapter bridges
them by rewriting a copy of the model when it runs it:

* A shoal program is compiled for ONE sample (input dim 0 is 1) and splits a
  batch along dim 0 at run time, while a backend test feeds whole tensors of
  any shape (e.g. [3, 4, 5]). Each run-time input X of shape S becomes a graph
  input of shape [1, *S] followed by ``Squeeze(axes=[0])``, so the whole
  tensor is one sample and no op sees shoal's batch dim; the runtime hands
  back each output with a leading batch dim of 1, which ``run`` drops.
* Shoal compiles ahead of time with static shapes and its programs take
  float32 inputs. Inputs of any other dtype (indices, shapes, axes, masks) and
  float32 inputs that determine an output's shape (Resize scales, Range
  bounds) or what an op can compute (Dropout's ratio; see _SHAPE_INPUTS) are
  what real models hold as initializers; the
  adapter turns them into initializers holding the values of the run, so the
  model is compiled when ``run`` sees the inputs (once per distinct set of
  such values). A model left with no run-time input gets an unused one, and
  shoal computes all of it at compile time (constant folding).

Only ONNX's CPU device is supported. Which shoal devices run the models is
``shoal.onnx_backend.DEVICES`` (None: the runtime's default, cpu devices);
``["ref:0"]`` runs them on the reference kernels (the conformance suite does
with SHOAL_CONFORMANCE_DEVICES=ref:0).
"""

import numpy as np

import onnx
from onnx import helper, numpy_helper
from onnx.backend.base import Backend, BackendRep, Device, DeviceType, namedtupledict

import shoal

# The shoal devices models run on (names, ids or None for the default).
DEVICES = None

__all__ = ["ShoalBackend", "ShoalBackendRep", "prepare", "run_model", "run_node",
           "supports_device", "is_compatible"]

# Inputs (by ONNX schema name) that determine the shape of an op's output (and
# Resize's roi, Dropout's ratio: shoal runs training-mode Dropout at ratio 0
# only), so an ahead-of-time compiler needs their values. Non-float32 inputs
# are always baked; this table matters for the float32 ones.
_SHAPE_INPUTS = {
    "ConstantOfShape": {"input"},
    "Dropout": {"ratio"},
    "Expand": {"shape"},
    "Pad": {"pads", "axes"},
    "Range": {"start", "limit", "delta"},
    "ReduceMax": {"axes"},
    "ReduceMean": {"axes"},
    "ReduceSum": {"axes"},
    "Reshape": {"shape"},
    "Resize": {"roi", "scales", "sizes"},
    "Slice": {"starts", "ends", "axes", "steps"},
    "Split": {"split"},
    "Squeeze": {"axes"},
    "Tile": {"repeats"},
    "Unsqueeze": {"axes"},
    "Upsample": {"scales"},
}

_PREFIX = "__shoal_"
_UNUSED = _PREFIX + "unused"


def _device_type(device):
    try:
        return Device(device).type
    except (AttributeError, ValueError):
        return None


def _tensor_type(dtype):
    """The TensorProto.DataType of a numpy dtype (onnx 1.12 and later)."""
    dtype = np.dtype(dtype)
    if hasattr(helper, "np_dtype_to_tensor_dtype"):
        return helper.np_dtype_to_tensor_dtype(dtype)
    return onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[dtype]


def _default_opset(model):
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    raise shoal.InvalidArgumentError("the ONNX model imports no default-domain opset")


def _shape_input_names(model):
    """Names of the graph tensors that feed a shape-determining input slot."""
    opset = _default_opset(model)
    names = set()
    for node in model.graph.node:
        wanted = _SHAPE_INPUTS.get(node.op_type)
        if not wanted or node.domain not in ("", "ai.onnx"):
            continue
        try:
            schema = onnx.defs.get_schema(node.op_type, opset)
        except Exception:  # unknown op / opset: the compiler will say
            continue
        formal = [p.name for p in schema.inputs]
        for i, name in enumerate(node.input):
            # A variadic last formal parameter covers the remaining inputs.
            slot = formal[min(i, len(formal) - 1)] if formal else None
            if name and slot in wanted:
                names.add(name)
    return names


def _squeeze0(data, out, opset, graph):
    """A node Squeeze(data, axes=[0]) -> out, in the form the opset spells it."""
    op = "Squeeze"
    if opset >= 13:
        axes = _PREFIX + "axes0"
        if not any(t.name == axes for t in graph.initializer):
            graph.initializer.append(
                numpy_helper.from_array(np.zeros(1, np.int64), axes))
        return helper.make_node(op, [data, axes], [out], name=_PREFIX + op + "_" + out)
    return helper.make_node(op, [data], [out], name=_PREFIX + op + "_" + out, axes=[0])


def _set_shape(value_info, shape):
    if not value_info.type.HasField("tensor_type"):
        raise shoal.UnsupportedError(f"input '{value_info.name}' is not a tensor")
    tt = value_info.type.tensor_type
    tt.shape.ClearField("dim")
    for d in shape:
        tt.shape.dim.add().dim_value = d


def rewrite_model(model, feeds):
    """The model shoal compiles for one run: feeds maps each run-time input
    name to its array. Returns (model, runtime, baked): the names of the
    inputs fed at run time (in the compiled model's order, each as a [1, *S]
    array) and of those turned into initializers."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    opset = _default_opset(m)
    shape_inputs = _shape_input_names(m)
    runtime, baked = [], []
    prologue = []
    for vi in g.input:
        if vi.name not in feeds:
            continue  # an initializer with a default
        a = feeds[vi.name]
        if a.dtype != np.float32 or vi.name in shape_inputs:
            t = numpy_helper.from_array(a, vi.name)
            declared = vi.type.tensor_type.elem_type
            if declared == onnx.TensorProto.BFLOAT16 and a.dtype == np.uint16:
                t.data_type = declared  # numpy holds bfloat16 as uint16 bits
            g.initializer.append(t)
            _set_shape(vi, a.shape)  # the fed tensor's shape is the truth
            baked.append(vi.name)
            continue
        # X [1, *S] -> Squeeze(axes=[0]) -> the graph's X of shape S.
        runtime.append(vi.name)
        batched = _PREFIX + "in_" + vi.name
        _set_shape(vi, (1,) + a.shape)
        prologue.append(_squeeze0(batched, vi.name, opset, g))
        vi.name = batched
    # Baked inputs stay listed as graph inputs (valid for every IR version;
    # shoal treats an input that has an initializer as a constant).
    if not runtime:
        # Everything is known at compile time: shoal folds the whole graph
        # into constants, but a program needs an input; give it an unused one.
        runtime.append(_UNUSED)
        g.input.append(helper.make_tensor_value_info(_UNUSED, onnx.TensorProto.FLOAT, [1, 1]))
    nodes = prologue + list(g.node)
    g.ClearField("node")
    g.node.extend(nodes)
    return m, runtime, baked


class ShoalBackendRep(BackendRep):
    """A model prepared for shoal; compiled on the first run (see module doc)."""

    def __init__(self, model, device="CPU", optimize=True, log=None):
        super().__init__()
        self._model = model
        self._optimize = bool(optimize)
        self._log = log
        inits = {t.name for t in model.graph.initializer}
        self._input_names = [i.name for i in model.graph.input if i.name not in inits]
        self._output_names = [o.name for o in model.graph.output]
        self._compiled = {}  # baked values -> (program, runtime input names)
        self.last_model = None  # the rewritten model of the last compile

    @property
    def input_names(self):
        return list(self._input_names)

    def _feeds(self, inputs):
        if isinstance(inputs, dict):
            unknown = sorted(set(inputs) - set(self._input_names))
            missing = [n for n in self._input_names if n not in inputs]
            if unknown or missing:
                raise shoal.InvalidArgumentError(
                    f"inputs by name: the model's inputs are {self._input_names}; "
                    f"missing {missing}, unknown {unknown}")
            items = [inputs[n] for n in self._input_names]
        elif isinstance(inputs, (list, tuple)):
            items = list(inputs)
        else:
            items = [inputs]
        if len(items) != len(self._input_names):
            raise shoal.InvalidArgumentError(
                f"the model has {len(self._input_names)} input(s) {self._input_names}, "
                f"got {len(items)}")
        feeds = {}
        for name, x in zip(self._input_names, items):
            if not isinstance(x, np.ndarray):
                raise shoal.InvalidArgumentError(
                    f"input '{name}': expected a numpy array, got {type(x).__name__}")
            feeds[name] = x
        return feeds

    def _program(self, feeds):
        model, runtime, baked = rewrite_model(self._model, feeds)
        key = tuple((n, feeds[n].dtype.str, feeds[n].shape, feeds[n].tobytes())
                    for n in baked)
        key += tuple((n, feeds[n].shape) for n in self._input_names if n not in baked)
        hit = self._compiled.get(key)
        if hit is None:
            self.last_model = model
            program = shoal.compile(model, optimize=self._optimize, log=self._log)
            hit = self._compiled[key] = (program, runtime)
        return hit

    def run(self, inputs, **kwargs):
        feeds = self._feeds(inputs)
        program, runtime = self._program(feeds)
        rt = shoal.Runtime(program, devices=DEVICES)
        try:
            ys = rt.run([np.zeros((1, 1), np.float32) if n == _UNUSED else feeds[n][None]
                         for n in runtime])
        finally:
            del rt  # release the device's threads and memory now
        outs = []
        for name, info, y in zip(self._output_names, program.outputs, ys):
            # The runtime returns an output of shape S as [N, *S] for a batch
            # of N samples, or as [N, *S[1:]] when S[0] is 1 (the batch dim).
            shape = tuple(info.shape)
            if not (shape and shape[0] == 1):
                y = y[0]
            if y.shape != shape:
                raise shoal.InternalError(
                    f"output '{name}': expected shape {shape}, got {y.shape}")
            outs.append(y)
        return namedtupledict("Outputs", self._output_names)(*outs)


class ShoalBackend(Backend):
    """onnx.backend.base.Backend for shoal (CPU only)."""

    @classmethod
    def supports_device(cls, device):
        return _device_type(device) == DeviceType.CPU

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        """kwargs: optimize (bool, default True), log (a callable per line)."""
        if not cls.supports_device(device):
            raise shoal.DeviceError(f"shoal's ONNX backend runs on CPU, not '{device}'")
        if isinstance(model, (bytes, bytearray)):
            model = onnx.load_model_from_string(bytes(model))
        if not isinstance(model, onnx.ModelProto):
            raise TypeError(f"model must be an onnx.ModelProto, got {type(model).__name__}")
        super().prepare(model, device, **kwargs)  # the ONNX checker
        return ShoalBackendRep(model, device, optimize=kwargs.get("optimize", True),
                               log=kwargs.get("log"))

    @classmethod
    def run_model(cls, model, inputs, device="CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device="CPU", outputs_info=None, **kwargs):
        """Runs one node: inputs are arrays for node.input in order (absent
        optional inputs, named "", take no array); returns its outputs."""
        super().run_node(node, inputs, device=device, outputs_info=outputs_info, **kwargs)
        if isinstance(inputs, dict):
            inputs = [inputs[n] for n in node.input if n]
        inputs = [np.asarray(x) for x in inputs]
        names = [n for n in node.input if n]
        if len(names) != len(inputs):
            raise shoal.InvalidArgumentError(
                f"{node.op_type} node: {len(names)} inputs named, {len(inputs)} given")
        # The installed onnx's newest opset, within what shoal imports.
        opset = kwargs.get("opset_version", min(onnx.defs.onnx_opset_version(), 18))
        graph_inputs = [
            helper.make_tensor_value_info(n, _tensor_type(x.dtype), x.shape)
            for n, x in zip(names, inputs)]
        outs = [n for n in node.output if n]
        if outputs_info is not None:
            graph_outputs = [
                helper.make_tensor_value_info(n, _tensor_type(t), s)
                for n, (t, s) in zip(outs, outputs_info)]
        else:
            graph_outputs = [helper.make_empty_tensor_value_info(n) for n in outs]
        graph = helper.make_graph([node], "run_node_" + node.op_type, graph_inputs,
                                  graph_outputs)
        model = helper.make_model(graph, producer_name="shoal.onnx_backend",
                                  opset_imports=[helper.make_opsetid("", opset)])
        if outputs_info is None:  # output types from ONNX shape inference
            inferred = onnx.shape_inference.infer_shapes(model)
            known = {v.name: v for v in inferred.graph.value_info}
            for o in model.graph.output:
                if o.name in known:
                    o.CopyFrom(known[o.name])
        return cls.run_model(model, inputs, device, **kwargs)


prepare = ShoalBackend.prepare
run_model = ShoalBackend.run_model
run_node = ShoalBackend.run_node
supports_device = ShoalBackend.supports_device
is_compatible = ShoalBackend.is_compatible
