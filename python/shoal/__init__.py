"""shoal: ahead-of-time compiled CNN inference on CPU devices.

    import numpy as np, shoal
    program = shoal.compile("model.onnx", shape="224x224x3")
    program.save("model.shoal")
    rt = shoal.Runtime(shoal.load("model.shoal"))
    (y,) = rt.run(np.zeros((8, 3, 224, 224), np.float32))

The C++ core lives in ``shoal._shoal`` (a thin binding of the runtime:
programs, runtimes, devices) and ``shoal._shoal_compiler`` (the compiler),
which :func:`compile` imports on first use: importing shoal and running
programs never loads the compiler, and a worker may have the runtime alone
(the python3-shoal package without python3-shoal-compiler; docs/INSTALL.md).
The argument conveniences are here. Errors are the classes of
:mod:`shoal.errors`.
"""

import itertools
import math
import numbers
import operator
import os
import sys
import threading
import weakref

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
    "quantize",
    "load",
    "parse_shape",
    "devices",
    "find_device",
    "debug_compare",
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


def devices(kind=None):
    """The devices on this host, of every backend or of `kind` ("cpu",
    "ref"): cpu devices follow SHOAL_CPU_DEVICES, ref devices (reference
    kernels, memory the runtime cannot address) SHOAL_REF_DEVICES (default
    1). Each has an id, a kind and a name such as "cpu:0" or "ref:0"."""
    devs = _shoal.devices()
    return devs if kind is None else [d for d in devs if d.kind == kind]


def debug_compare(program, x, devices=("cpu:0", "ref:0"), tolerance=1e-4):
    """Runs the first sample of x through `program` on two devices layer by
    layer (shoal debug-compare). Returns a list with one dict per layer
    (index, name, op, error = max |a - b|, magnitude = max |a|, relative =
    error / magnitude) up to and including the first whose relative error
    exceeds `tolerance`; that one has diverges=True."""
    if len(devices) != 2:
        raise InvalidArgumentError(f"debug_compare takes two devices, got {list(devices)}")
    if not isinstance(program, Program):
        program = load(program)
    runs = []
    for d in devices:
        with Runtime(program, devices=[d], share_devices=True) as rt:
            runs.append(rt.run_layers(x))
    report = []
    for i, ((name, op, a), (_, _, b)) in enumerate(zip(*runs)):
        err = mag = 0.0
        for u, v in zip(a, b):
            if u.dtype != np.float32 or u.size == 0:
                continue
            u64, v64 = u.astype(np.float64), v.astype(np.float64)
            if (np.isnan(u64) != np.isnan(v64)).any():
                err = float("inf")
            ok = ~np.isnan(u64) & ~np.isnan(v64)
            finite = np.isfinite(u64)
            if finite.any():
                mag = max(mag, float(np.abs(u64[finite]).max()))
            if ok.any():
                diff = np.abs(u64[ok] - v64[ok])
                diff[u64[ok] == v64[ok]] = 0  # equal infinities
                err = max(err, float(diff.max()))
        rel = 0.0 if err == 0 else err / max(mag, 1e-30)
        entry = dict(index=i, name=name, op=op, error=err, magnitude=mag, relative=rel,
                     diverges=rel > tolerance)
        report.append(entry)
        if entry["diverges"]:
            break
    return report


def find_device(name):
    """The id of the device named "kind:index" (e.g. "ref:0") or by its id."""
    return _shoal.find_device(str(name))


def _device_ids(devices):
    """Device objects, names ("cpu:0", "ref:0") or ids -> ids; a str is a
    comma-separated list of names."""
    if isinstance(devices, str):
        devices = [s for s in devices.split(",") if s.strip()]
    elif isinstance(devices, bytes) or not hasattr(devices, "__iter__"):
        raise TypeError("devices must be a sequence of devices, names or ids, or None, "
                        f"got {type(devices).__name__}")
    ids = []
    for d in devices:
        if isinstance(d, _shoal.Device):
            ids.append(d.id)
        elif isinstance(d, str):
            ids.append(find_device(d))
        else:
            ids.append(operator.index(d))
    return ids


def operators():
    """The operator table: a list of dicts (name, min_opset, min_inputs,
    max_inputs, runtime, dtypes, summary), sorted by name."""
    return _shoal.operators()


def load(path):
    """Loads a program file written by Program.save (or the shoal CLI)."""
    return Program.load(os.fspath(path))


def _positive_int(value, what, minimum=1):
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an int, got bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an int, got {type(value).__name__}") from None
    if v < minimum:
        raise InvalidArgumentError(f"{what} must be >= {minimum}, got {v}")
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


# The package holding shoal._shoal_compiler (docs/INSTALL.md).
_COMPILER_PACKAGE = "python3-shoal-compiler"


def _compiler():
    """shoal._shoal_compiler, imported on first use; UnsupportedError naming
    the package to install when it is not installed (a runtime-only install,
    as on a worker) or cannot load."""
    try:
        from . import _shoal_compiler
    except ImportError as e:
        raise UnsupportedError(
            "the shoal compiler is not installed: this shoal can load and run "
            "compiled programs (shoal.load, shoal.Runtime) but not compile ONNX "
            f"models; install the Debian package {_COMPILER_PACKAGE} (or pip-install "
            f"shoal, which includes it), or compile elsewhere and copy the program "
            f"file here ({e})") from e
    return _shoal_compiler


def _mode_arg(mode, split):
    if split:
        if mode not in (None, "split"):
            raise ValueError(f"split=True contradicts mode={mode!r}")
        return "split"
    if mode is None:
        return "auto"
    if mode not in ("auto", "batch", "split"):
        raise ValueError(f"mode must be 'auto', 'batch' or 'split', got {mode!r}")
    return mode


def _precision_arg(precision):
    if precision not in ("f32", "bf16", "int8"):
        raise ValueError(f"precision must be 'f32', 'bf16' or 'int8', got {precision!r}")
    return precision


def compile(model, shape=None, devices=1, clusters=0, split=False, optimize=True,
            verbose=False, log=None, mode=None, winograd=True, strict=False,
            precision="f32", calibration=None, quantize_options=None, target="cpu"):
    """Compiles an ONNX model into a Program.

    model: a path (str or os.PathLike), the model's bytes, or an
        onnx.ModelProto.
    shape: the input shape of one sample: "WxHxC" (e.g. "224x224x3"), an NCHW
        tuple/list such as (1, 3, 224, 224), or None for the model's own.
    devices, clusters: devices the program will run on, clusters per device
        (0, the default: one per core of each device, decided at load).
    mode: how the clusters of a device share a batch: "batch" (one input per
        cluster: throughput), "split" (the clusters share each input: latency)
        or "auto" (the default: per run, batch when the batch has an input for
        every cluster, else split). Runtime.plan() says what runs where.
    split: True is mode="split" (the SDK's "nobatch").
    optimize: run the fusion passes.
    winograd: use Winograd convolution for the 3x3 stride-1 layers where it
        pays (maps of 13x13 or more, 32+ input and output channels;
        outputs differ from direct convolution by about 1e-6 of their
        magnitude per layer; the program stores those weights twice, plain
        and transformed).
    strict: raise shoal.UnsupportedError, naming them, when some layers have
        no fast kernel on this CPU and would run the slow reference kernels
        (Runtime.plan() and `shoal inspect` name such layers too).
    precision: "f32" (the default) or "bf16": Conv, Gemm and MatMul with
        bf16 weights and inputs and float32 accumulation (oneDNN's bf16
        kernels); other ops stay float32. bf16 needs a CPU with AVX512-BF16
        or AMX-BF16 and raises shoal.UnsupportedError naming them elsewhere
        (never emulated). Runtime.plan(), the profile and `shoal inspect`
        show the precision of each layer. "int8": the one-step shortcut for
        shoal.compile(shoal.quantize(model, shape, calibration, ...)):
        calibrates on `calibration` (see shoal.quantize; quantize_options: a
        dict of its other options, e.g. {"method": "entropy"}) and compiles
        the QDQ model, whose quantized convolutions run int8 kernels. See
        docs/QUANTIZATION.md.
    target: the backend kind the program is for ("cpu", the default, or
        "ref"; shoal.devices() lists the kinds): its compile hook does the
        target-specific work, and devices of another kind that cannot run
        the program refuse it at load with an error naming the target.
    verbose: print the compile log to stderr; log: a callable receiving each
        log line (both may be given).
    """
    compiler = _compiler()
    if not isinstance(target, str):
        raise TypeError(f"target must be a backend kind such as 'cpu', got {type(target).__name__}")
    precision = _precision_arg(precision)
    if precision == "int8":
        if calibration is None:
            raise InvalidArgumentError("precision='int8' needs calibration= (sample inputs)")
        model = quantize(model, shape=shape, calibration=calibration,
                         **(quantize_options or {}))
        precision = "f32"  # the QDQ model says which layers are int8
    elif calibration is not None or quantize_options:
        raise InvalidArgumentError("calibration= is for precision='int8'")
    args = (
        _shape_arg(shape),
        _positive_int(devices, "devices"),
        _positive_int(clusters, "clusters", 0),
        _mode_arg(mode, split),
        bool(optimize),
        bool(winograd),
        bool(strict),
        precision,
        target,
        _log_sink(verbose, log),
    )
    if isinstance(model, (bytes, bytearray, memoryview)):
        return compiler.compile_bytes(model, *args)
    if hasattr(model, "SerializeToString"):  # onnx.ModelProto
        return compiler.compile_bytes(model.SerializeToString(), *args)
    if isinstance(model, (str, os.PathLike)):
        return compiler.compile_file(os.fsdecode(os.fspath(model)), *args)
    raise TypeError(
        "model must be a path, bytes or an onnx.ModelProto, "
        f"got {type(model).__name__}")


def _timeout_ms(timeout):
    """Seconds (None = no limit) -> the binding's milliseconds (< 0 = no limit)."""
    if timeout is None:
        return -1.0
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError("timeout must be a number of seconds or None, got "
                        f"{type(timeout).__name__}")
    t = float(timeout)
    if math.isnan(t) or t < 0:
        raise InvalidArgumentError(f"timeout must be >= 0 seconds or None, got {timeout!r}")
    return t * 1e3


_LIVE_RUNTIMES = weakref.WeakSet()


def _close_live_runtimes():
    """At interpreter exit, before it joins threads: wake threads blocked in
    put()/get() of runtimes still open, so they end and exit can proceed."""
    for rt in list(_LIVE_RUNTIMES):
        try:
            rt.close()
        except Exception:  # noqa: BLE001 - exit must go on
            pass


if hasattr(threading, "_register_atexit"):  # Python >= 3.9: runs before the join
    threading._register_atexit(_close_live_runtimes)


class Runtime:
    """A Program loaded onto devices; run(), put() and get() are thread-safe
    and release the GIL.

    program: a Program or the path of a program file.
    devices: the devices to use: shoal.devices() entries, their names
        ("cpu:0", "ref:0", also as one comma-separated str) or their ids, of
        any kinds mixed; naming devices claims them until this runtime is
        closed (another runtime naming one gets a DeviceError). None = the
        program's device count, from the cpu devices no runtime has claimed.
    profile: collect per-layer timings (see profile()).
    share_devices: use the named devices without claiming them (and even if
        another runtime claimed them).
    micro_batch: at most this many inputs of a batch go through each kernel
        at once on a cluster (when every operator of the program computes
        inputs independently; plan() says); 1 runs one input at a time.
    weights: "copy" gives every device its own copy of the weights (first
        touched by its own thread: NUMA-local); "shared" reads them in place
        from the program (the mapped file's pages), with no copy and no extra
        memory; "auto" is shared on a host with one NUMA node, else copy
        (SHOAL_WEIGHTS=copy|shared overrides auto).
    check_inputs: reject float inputs holding NaN or Inf with an
        InvalidArgumentError naming the input, sample and element. Off, they
        run and NaN propagates as ONNX's semantics say (samples with NaN or
        Inf take the kernels' NaN-faithful paths; the others are unaffected).

    Asynchronous pipeline: put(x, tag) starts a batch and returns; get()
    returns (outputs, tag) in put order. At most queue_capacity batches are
    outstanding (started, or finished but not yet taken by get()).
    """

    def __init__(self, program, devices=None, profile=False, share_devices=False,
                 micro_batch=8, weights="auto", check_inputs=False):
        if not isinstance(program, Program):
            program = load(program)
        if devices is not None:
            devices = _device_ids(devices)
        self._rt = _shoal.Runtime(program, devices, bool(profile), bool(share_devices),
                                  operator.index(micro_batch), str(weights),
                                  bool(check_inputs))
        _LIVE_RUNTIMES.add(self)
        self._program = program
        self._inputs = program.inputs
        self._names = [i.name for i in self._inputs]
        # put() tags: any Python object, kept here under an int key.
        self._tags = {}
        self._keys = itertools.count()
        self._tags_lock = threading.Lock()

    def _live(self):
        rt = self._rt
        if rt is None:
            raise InvalidArgumentError("this shoal.Runtime was closed")
        return rt

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
        """Wall time of the last run (or of the last put taken by get), in
        milliseconds."""
        return self._live().last_run_ms

    def plan(self):
        """What runs where: devices, clusters, mode (batch or split)."""
        return self._live().plan()

    @property
    def clusters(self):
        """Clusters per device taking whole inputs: the program's count, or
        one per core (clusters=0); 1 in split mode."""
        return self._live().clusters

    def profile(self):
        """Per-layer timings: a list of dicts {name, op, impl, ms, flops, calls}."""
        return self._live().profile()

    def reset_profile(self):
        self._live().reset_profile()

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
        # Count, dtypes, shapes and batch sizes are checked once, by the
        # runtime (C++), as for every other API: not here.
        return [np.asarray(a) for a in items]

    def run(self, x):
        """Runs a batch and returns one float32 array per model output.

        x: an array of shape (N, *per-sample shape[1:]) for a single-input
        model; for several inputs a list/tuple in model order or a dict by
        input name. Arrays must have the model's dtype (float32); they are
        never cast. Each output has leading dim N.
        """
        return self._live().run(self._normalize(x))

    __call__ = run

    def run_layers(self, x):
        """Runs the first sample of x (as for run()) on the first device and
        returns every layer's outputs: a list of (name, op, [arrays]) in
        program order, arrays as the program stores them for one sample."""
        return self._live().run_layers(self._normalize(x))

    # ------------------------------------------------------------ pipeline --

    def put(self, x, tag=None, timeout=None):
        """Starts a batch and returns without waiting for it.

        x: as for run(); the arrays are copied, so they may be reused at once.
        tag: any object; get() returns it with this batch's outputs.
        timeout: seconds to wait for room when queue_capacity batches are
            outstanding (None: wait until another thread's get() makes room;
            0: do not wait). Returns True if the batch was started, False if
            the queue stayed full.
        """
        rt = self._live()
        arrays = self._normalize(x)
        ms = _timeout_ms(timeout)
        with self._tags_lock:
            key = next(self._keys)
            self._tags[key] = tag
        ok = False
        try:
            ok = rt.put(arrays, key, ms)
        finally:
            if not ok:
                with self._tags_lock:
                    self._tags.pop(key, None)
        return ok

    def get(self, timeout=None):
        """Takes the oldest put's result: returns (outputs, tag).

        timeout: seconds to wait for that batch to finish (None: no limit;
            0: just look). Returns None if it is not done in time. When
            nothing is pending, a timeout also waits for another thread's
            put (a consumer may start before its producer); with None it
            raises InvalidArgumentError at once instead, so a lone thread
            never waits for nothing.
        If the batch itself failed, its error is raised with ``.tag`` set to
        its tag (the batch is taken). After close(), raises.
        """
        rt = self._live()
        try:
            r = rt.get(_timeout_ms(timeout))
        except Error as e:
            key = getattr(e, "_shoal_tag", None)
            if key is not None:
                with self._tags_lock:
                    e.tag = self._tags.pop(key, None)
            raise
        if r is None:
            return None
        outputs, key = r
        with self._tags_lock:
            tag = self._tags.pop(key, None)
        return outputs, tag

    @property
    def pending(self):
        """Puts not yet taken by get() (running or finished)."""
        return self._live().pending

    @property
    def queue_capacity(self):
        """At most this many puts are outstanding (default 2 x clusters)."""
        return self._live().queue_capacity

    @queue_capacity.setter
    def queue_capacity(self, value):
        self._live().queue_capacity = _positive_int(value, "queue_capacity")

    # ------------------------------------------------------------ lifetime --

    def close(self):
        """Releases the devices (once no other thread is inside a call).
        Threads waiting in put() or get() wake up with InvalidArgumentError.
        Results not yet taken are dropped. Further calls raise."""
        rt, self._rt = self._rt, None
        if rt is not None:
            rt.close()
        with self._tags_lock:
            self._tags.clear()

    @property
    def closed(self):
        return self._rt is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = " (closed)" if self._rt is None else ""
        return f"<shoal.Runtime{state} {self._program!r}>"


def quantize(model, shape=None, calibration=None, method="minmax", output=None, **options):
    """Post-training static quantization of an ONNX model into a QDQ model
    (int8 weights per output channel, int8 activations per tensor, int32
    biases), calibrated on `calibration`; see shoal.quantization.quantize for
    every option and docs/QUANTIZATION.md. Returns the onnx.ModelProto."""
    from .quantization import quantize as run  # imports onnx: only when used

    return run(model, shape=shape, calibration=calibration, method=method, output=output,
               **options)
