"""shoal: ahead-of-time compiled CNN inference on CPU devices.

    import numpy as np, shoal
    program = shoal.compile("model.onnx", shape="224x224x3")
    program.save("model.shoal")
    rt = shoal.Runtime(shoal.load("model.shoal"))
    (y,) = rt.run(np.zeros((8, 3, 224, 224), np.float32))

The C++ core lives in ``shoal._shoal`` (a thin binding); the argument
conveniences are here. Errors are the classes of :mod:`shoal.errors`.
"""

import operator
import os
import sys

import numpy as np

from . import _shoal
from .errors import (
    DeviceError,
    DTypeError,
    Error,
    InternalError,
    InvalidArgumentError,
    OutOfMemoryError,
    UnsupportedError,
)

__all__ = [
    "__version__",
    "version",
    "compile",
    "load",
    "parse_shape",
    "devices",
    "operators",
    "Program",
    "Runtime",
    "TensorInfo",
    "Device",
    "Error",
    "InvalidArgumentError",
    "DTypeError",
    "UnsupportedError",
    "OutOfMemoryError",
    "DeviceError",
    "InternalError",
]

__version__ = _shoal.version()
version = __version__

Program = _shoal.Program
TensorInfo = _shoal.TensorInfo
Device = _shoal.Device


def parse_shape(text):
    """Parses "WxHxC" (e.g. "224x224x3" -> (1, 3, 224, 224)) or "N,C,H,W"."""
    if not isinstance(text, str):
        raise TypeError(f"parse_shape expects a str, got {type(text).__name__}")
    return _shoal.parse_shape(text)


def devices():
    """The devices on this host (CPU devices follow SHOAL_CPU_DEVICES)."""
    return _shoal.devices()


def operators():
    """The operator table: a list of dicts (name, min_opset, min_inputs,
    max_inputs, runtime, dtypes, summary), sorted by name."""
    return _shoal.operators()


def load(path):
    """Loads a program file written by Program.save (or the shoal CLI)."""
    return Program.load(os.fspath(path))


def _positive_int(value, what):
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an int, got bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an int, got {type(value).__name__}") from None
    if v < 1:
        raise InvalidArgumentError(f"{what} must be >= 1, got {v}")
    return v


def _shape_arg(shape):
    """None -> [] (the model's own); "WxHxC" or "N,C,H,W" text; or NCHW ints."""
    if shape is None:
        return []
    if isinstance(shape, str):
        return list(parse_shape(shape))
    if isinstance(shape, (bytes, bytearray)) or not hasattr(shape, "__iter__"):
        raise TypeError(
            "shape must be a 'WxHxC' string or a sequence of ints (NCHW), "
            f"got {type(shape).__name__}")
    dims = list(shape)
    if not dims:
        raise InvalidArgumentError("shape must not be empty")
    return [_positive_int(d, f"shape {tuple(dims)}: dimension") for d in dims]


def _log_sink(verbose, log):
    sinks = []
    if verbose:
        sinks.append(lambda line: print(line, file=sys.stderr, flush=True))
    if log is not None:
        if not callable(log):
            raise TypeError("log must be callable")
        sinks.append(log)
    if not sinks:
        return None
    if len(sinks) == 1:
        return sinks[0]

    def both(line):
        for s in sinks:
            s(line)

    return both


def compile(model, shape=None, devices=1, clusters=1, split=False, optimize=True,
            verbose=False, log=None):
    """Compiles an ONNX model into a Program.

    model: a path (str or os.PathLike), the model's bytes, or an
        onnx.ModelProto.
    shape: the input shape of one sample: "WxHxC" (e.g. "224x224x3"), an NCHW
        tuple/list such as (1, 3, 224, 224), or None for the model's own.
    devices, clusters: devices the program will run on, clusters per device.
    split: clusters share one input (the SDK's "nobatch").
    optimize: run the fusion passes.
    verbose: print the compile log to stderr; log: a callable receiving each
        log line (both may be given).
    """
    args = (
        _shape_arg(shape),
        _positive_int(devices, "devices"),
        _positive_int(clusters, "clusters"),
        bool(split),
        bool(optimize),
        _log_sink(verbose, log),
    )
    if isinstance(model, (bytes, bytearray, memoryview)):
        return _shoal.compile_bytes(model, *args)
    if hasattr(model, "SerializeToString"):  # onnx.ModelProto
        return _shoal.compile_bytes(model.SerializeToString(), *args)
    if isinstance(model, (str, os.PathLike)):
        return _shoal.compile_file(os.fsdecode(os.fspath(model)), *args)
    raise TypeError(
        "model must be a path, bytes or an onnx.ModelProto, "
        f"got {type(model).__name__}")


def _batch_shape(shape):
    return "(" + ", ".join(["N"] + [str(d) for d in shape[1:]]) + ")"


class Runtime:
    """A Program loaded onto devices; run() is thread-safe and releases the GIL.

    program: a Program or the path of a program file.
    devices: device ids to use (see shoal.devices()); None = the program's
        device count, starting at the first free device.
    profile: collect per-layer timings (see profile()).
    """

    def __init__(self, program, devices=None, profile=False):
        if not isinstance(program, Program):
            program = load(program)
        if devices is not None:
            devices = [operator.index(d) for d in devices]
        self._rt = _shoal.Runtime(program, devices, bool(profile))
        self._program = program
        self._inputs = program.inputs
        self._names = [i.name for i in self._inputs]

    @property
    def program(self):
        return self._program

    @property
    def inputs(self):
        return self._inputs

    @property
    def outputs(self):
        return self._program.outputs

    @property
    def last_run_ms(self):
        """Wall time of the last run, in milliseconds."""
        return self._rt.last_run_ms

    def profile(self):
        """Per-layer timings: a list of dicts {name, op, impl, ms, flops, calls}."""
        return self._rt.profile()

    def reset_profile(self):
        self._rt.reset_profile()

    def _normalize(self, x):
        if isinstance(x, dict):
            unknown = sorted(set(x) - set(self._names))
            missing = [n for n in self._names if n not in x]
            if unknown or missing:
                raise InvalidArgumentError(
                    f"inputs by name: the model's inputs are {self._names}; "
                    f"missing {missing}, unknown {unknown}")
            items = [x[n] for n in self._names]
        elif isinstance(x, (list, tuple)):
            items = list(x)
        else:
            items = [x]
        if len(items) != len(self._inputs):
            raise InvalidArgumentError(
                f"the model has {len(self._inputs)} input(s) {self._names}, "
                f"got {len(items)}")
        arrays, batch = [], None
        for info, a in zip(self._inputs, items):
            a = np.asarray(a)
            if a.dtype != info.dtype:
                raise DTypeError(
                    f"input '{info.name}': expected dtype {info.dtype}, got {a.dtype} "
                    f"(convert with .astype(numpy.{info.dtype}))")
            want = info.shape
            if a.ndim != len(want) or a.ndim == 0 or a.shape[0] < 1 or \
                    a.shape[1:] != tuple(want[1:]):
                raise InvalidArgumentError(
                    f"input '{info.name}': expected shape {_batch_shape(want)} with "
                    f"batch N >= 1 (one sample: {tuple(want)}), got {a.shape}")
            if batch is None:
                batch = a.shape[0]
            elif a.shape[0] != batch:
                raise InvalidArgumentError(
                    f"input '{info.name}': batch {a.shape[0]} differs from the "
                    f"first input's batch {batch}")
            arrays.append(np.require(a, requirements="CA"))  # C order, aligned
        return arrays

    def run(self, x):
        """Runs a batch and returns one float32 array per model output.

        x: an array of shape (N, *per-sample shape[1:]) for a single-input
        model; for several inputs a list/tuple in model order or a dict by
        input name. Arrays must have the model's dtype (float32); they are
        never cast. Each output has leading dim N.
        """
        return self._rt.run(self._normalize(x))

    __call__ = run

    def __repr__(self):
        return f"<shoal.Runtime {self._program!r}>"
