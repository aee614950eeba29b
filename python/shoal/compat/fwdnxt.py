"""The FWDNXT inference SDK's Python API, running on shoal's CPU devices.

Code written for the SDK (``import fwdnxt``; later ``microndla.MDLA``) runs
with one changed import::

    import numpy as np
    from shoal.compat import fwdnxt

    sf = fwdnxt.FWDNXT()
    size = sf.Compile("8x8x1", "digits_cnn.onnx", "digits.bin", numfpga=1, numclus=2)
    sf.Init("digits.bin", "")              # bitfile: "" (or "0,1" / "cpu:1": devices)
    out = np.empty(2 * size, np.float32)
    sf.Run(images, out)                   # images: 2 inputs [P,H,W] float32, concatenated
    sf.Free()

What each call does here is tabled in docs/DEVICES.md. Differences from the
SDK: inputs are float32 and computed in float32 (no fixed point); several
objects may share the host and run at once (no deadlock); a PutInput that
finds the queue full waits only while another thread takes results, and
raises instead of hanging a lone thread forever.
"""

import os
import re
import threading
import time
import warnings
import weakref

import numpy as np

from .. import Program, Runtime, compile as _compile, devices as _devices, load as _load
from .. import __version__ as _version
from ..errors import DeviceError, DTypeError, Error, InvalidArgumentError, UnsupportedError

__all__ = ["FWDNXT", "SDK_FLAGS"]

# Flags the SDK had and shoal honours.
_ACTIVE_FLAGS = ("nobatch", "debug", "blockingmode")
# Flags tuning the FPGA's code generation: recorded, no effect on CPU.
_NO_EFFECT_FLAGS = ("hwlinear", "convalgo", "paddingalgo", "max_instr", "options")
SDK_FLAGS = _ACTIVE_FLAGS + _NO_EFFECT_FLAGS

# GetInfo names.
_INFO = ("hwtime", "numcluster", "numfpga", "numbatch", "freq", "maxcluster", "maxfpga",
         "version")

# A PutInput finding the queue full waits for room in slices of this many
# seconds; if no other thread has ever called GetResult on the object, it
# gives up after _LONE_PUT_GRACE_S (a lone thread would wait forever).
_PUT_SLICE_S = 0.05
_LONE_PUT_GRACE_S = 1.0

# Device ids held by FWDNXT objects of this process (Init picks free ones).
_held = set()
_held_lock = threading.Lock()


def _release_devices(ids):
    with _held_lock:
        _held.difference_update(ids)


def _flag_int(name, value):
    if isinstance(value, (bool, int, np.integer)):
        return int(value)
    try:
        return int(str(value).strip(), 0)
    except ValueError:
        raise InvalidArgumentError(
            f"SetFlag('{name}', {value!r}): expected an integer such as '0' or '1'") from None


def _shape_of_file(path):
    """NCHW shape of one input from an image or .npy file."""
    if path.lower().endswith(".npy"):
        shape = np.load(path, mmap_mode="r").shape
        # One input in Run's layout: [H,W], [P,H,W] or [1,P,H,W].
        if len(shape) == 2:
            return [1, 1, *shape]
        if len(shape) == 3:
            return [1, *shape]
        if len(shape) == 4 and shape[0] == 1:
            return list(shape)
        raise InvalidArgumentError(
            f"Compile: '{path}' holds an array of shape {shape}; expected one input as "
            "[H,W], [P,H,W] or [1,P,H,W]")
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is not None:
        try:
            with Image.open(path) as im:  # reads the header only
                (w, h), planes = im.size, len(im.getbands())
            return [1, planes, h, w]
        except OSError as e:
            raise InvalidArgumentError(f"Compile: cannot read image '{path}': {e}") from None
    try:
        import matplotlib.image as mpimg
    except ImportError:
        raise InvalidArgumentError(
            f"Compile: cannot read the size of image '{path}' (needs Pillow or matplotlib); "
            "pass its size as 'WxHxP' instead") from None
    a = mpimg.imread(path)
    return [1, 1 if a.ndim == 2 else a.shape[2], a.shape[0], a.shape[1]]


def _input_shape(image):
    """The SDK's image argument -> an NCHW shape for shoal.compile."""
    if isinstance(image, os.PathLike) or (isinstance(image, str) and os.path.isfile(image)):
        return _shape_of_file(os.fsdecode(os.fspath(image)))
    if not isinstance(image, str):
        raise TypeError("Compile: image must be a 'WxHxP' string (e.g. '224x224x3') or the "
                        f"path of an image or .npy file, got {type(image).__name__}")
    if not re.fullmatch(r"\s*\d+\s*x\s*\d+\s*x\s*\d+\s*", image):
        raise InvalidArgumentError(
            f"Compile: image '{image}' is neither an existing file nor a size 'WxHxP' "
            "(width x height x planes, e.g. '224x224x3')")
    w, h, p = (int(v) for v in image.split("x"))
    if min(w, h, p) < 1:
        raise InvalidArgumentError(f"Compile: image size '{image}' has a zero dimension")
    return [1, p, h, w]


def _model_file(modelpath):
    path = os.fsdecode(os.fspath(modelpath))
    if os.path.isdir(path):
        found = sorted(f for f in os.listdir(path) if f.endswith(".onnx"))
        if len(found) != 1:
            raise InvalidArgumentError(
                f"Compile: directory '{path}' must hold exactly one .onnx model, "
                f"found {found or 'none'}")
        path = os.path.join(path, found[0])
    return path


def _device_selection(bitfile):
    """Init's bitfile -> device ids, or None to pick free devices.

    "" / None / a hardware design file name -> None (no design to load on
    CPU); "0,1" or "cpu:0,1" -> [0, 1]; a sequence of ints -> itself.
    """
    if bitfile is None:
        return None
    if isinstance(bitfile, (list, tuple)):
        return [int(i) for i in bitfile]
    if isinstance(bitfile, int) and not isinstance(bitfile, bool):
        return [bitfile]
    spec = os.fsdecode(os.fspath(bitfile)).strip()
    explicit = spec.lower().startswith("cpu:")
    if explicit:
        spec = spec[4:].strip()
    if re.fullmatch(r"\d+(\s*,\s*\d+)*", spec):
        return [int(s) for s in spec.split(",")]
    if explicit:
        raise InvalidArgumentError(
            f"Init: bad device selection '{bitfile}' (expected e.g. 'cpu:0' or 'cpu:0,1')")
    return None  # "" or a bitfile: nothing to load on CPU devices


def _cpu_mhz():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("cpu mhz"):
                    return int(round(float(line.split(":", 1)[1])))
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _output_size(program):
    sizes = [program.output_size(i) for i in range(len(program.outputs))]
    return sizes[0] if len(sizes) == 1 else tuple(sizes)


class FWDNXT:
    """One SDK handle: a compiled model loaded on its own devices.

    Methods keep the SDK's names and arguments. Errors are shoal's exception
    classes (InvalidArgumentError is also a ValueError, DTypeError a
    TypeError, DeviceError a RuntimeError) where the SDK returned -1.
    """

    def __init__(self):
        self._flags = {}
        self._split = False
        self._debug = ""
        self._blocking = True
        self._compiled = None  # the Program of the last Compile
        self._program = None   # the Program Init loaded
        self._rt = None
        self._ids = []
        self._release = None   # finalizer giving self._ids back
        self._hwtime = 0.0
        self._lock = threading.Lock()
        self._getters = set()  # threads that called GetResult
        self._stash = None     # a result GetResult could not store

    # --------------------------------------------------------- compile/init --

    def Compile(self, image, modelpath, outfile, numfpga=1, numclus=1, nlayers=-1):
        """Compiles an ONNX model for numfpga devices x numclus clusters and
        saves the program to outfile ("" or None: do not save). image: the
        input size 'WxHxP' or an image / .npy file of that size. Returns the
        output size for ONE input (a tuple for several outputs)."""
        if nlayers is not None and nlayers != -1:
            raise UnsupportedError(
                f"Compile: nlayers={nlayers}: compiling part of a model is not supported; "
                "use nlayers=-1 (the whole model)")
        shape = _input_shape(image)
        program = _compile(_model_file(modelpath), shape=shape, devices=numfpga,
                           clusters=numclus, split=self._split, verbose="b" in self._debug)
        if outfile:
            program.save(os.fspath(outfile))
        self._compiled = program
        return _output_size(program)

    Compile2 = Compile  # the tutorial's name for a second model

    def Init(self, infile, bitfile=""):
        """Loads the program file onto devices. bitfile: "" or a hardware
        design file (ignored: nothing to load on CPU devices), or a device
        selection "0,1" / "cpu:1". Without one, takes the first devices no
        other FWDNXT object holds. Returns the output size for one input."""
        self._close()
        program = infile if isinstance(infile, Program) else _load(infile)
        ids = _device_selection(bitfile)
        with _held_lock:
            if ids is None:
                free = [d.id for d in _devices("cpu") if d.id not in _held]
                if len(free) < program.devices:
                    raise DeviceError(
                        f"Init: the program needs {program.devices} device(s) (numfpga) and "
                        f"{len(free)} of this host's {len(_devices('cpu'))} are free (the others "
                        "belong to other FWDNXT objects: Free() them, or set SHOAL_CPU_DEVICES "
                        "to split the cores into more devices)")
                ids = free[:program.devices]
            elif len(ids) != program.devices:
                raise InvalidArgumentError(
                    f"Init: the program was compiled for {program.devices} device(s) "
                    f"(numfpga) but the selection '{bitfile}' names {len(ids)}")
            _held.update(ids)
        try:
            rt = Runtime(program, devices=ids, profile="n" in self._debug)
        except BaseException:
            _release_devices(ids)
            raise
        self._rt, self._program, self._ids = rt, program, ids
        self._release = weakref.finalize(self, _release_devices, list(ids))
        self._hwtime = 0.0
        if "b" in self._debug:
            print(f"FWDNXT.Init: {rt.plan()}", flush=True)
        return _output_size(program)

    def Free(self):
        """Releases the devices and the program (the object may Init again)."""
        self._close()
        self._compiled = None

    def _close(self):
        rt, self._rt, self._program = self._rt, None, None
        if rt is not None:
            rt.close()
        if self._release is not None:
            self._release()  # gives the device ids back
            self._release = None
        self._ids = []
        with self._lock:
            self._stash = None

    def _runtime(self, call):
        rt = self._rt
        if rt is None:
            raise InvalidArgumentError(f"{call}: call Init first (or after Free)")
        return rt

    # ------------------------------------------------------------ buffers --

    def _inputs(self, call, images):
        """images -> (arrays for Runtime, number of inputs)."""
        infos = self._program.inputs
        if len(infos) == 1:
            parts = [images]
        elif isinstance(images, (list, tuple)) and len(images) == len(infos):
            parts = list(images)
        else:
            raise InvalidArgumentError(
                f"{call}: the model has {len(infos)} inputs; pass a list of {len(infos)} "
                "float32 arrays, one per input")
        arrays, batch = [], None
        for info, a in zip(infos, parts):
            a = np.asarray(a)
            if a.dtype != np.float32:
                raise DTypeError(f"{call}: images must be float32, got {a.dtype} "
                                 "(convert with .astype(numpy.float32))")
            per = int(np.prod(info.shape[1:]))
            dims = ",".join(str(d) for d in info.shape[1:])
            layout = f"[P,H,W] = [{dims}]" if len(info.shape) == 4 else f"[{dims}]"
            if a.size == 0 or a.size % per:
                raise InvalidArgumentError(
                    f"{call}: images hold {a.size} floats; input '{info.name}' takes {per} "
                    f"per image ({layout}, plane-major), so the size must be a positive "
                    f"multiple of {per}")
            n = a.size // per
            if batch is None:
                batch = n
            elif n != batch:
                raise InvalidArgumentError(
                    f"{call}: input '{info.name}' holds {n} images, the first input {batch}")
            arrays.append(np.ascontiguousarray(a).reshape((n, *info.shape[1:])))
        return arrays, batch

    def _store(self, call, result, outputs, n):
        """Copies the outputs of n inputs into the caller's float32 buffer(s)."""
        if len(outputs) == 1:
            targets = [result]
        elif isinstance(result, (list, tuple)) and len(result) == len(outputs):
            targets = list(result)
        else:
            raise InvalidArgumentError(
                f"{call}: the model has {len(outputs)} outputs; pass a list of "
                f"{len(outputs)} float32 arrays, one per output")
        for i, (dst, out) in enumerate(zip(targets, outputs)):
            what = "result" if len(outputs) == 1 else f"result[{i}]"
            if not isinstance(dst, np.ndarray):
                raise InvalidArgumentError(
                    f"{call}: {what} must be a preallocated numpy float32 array, got "
                    f"{type(dst).__name__}")
            if dst.dtype != np.float32:
                raise DTypeError(f"{call}: {what} must be float32, got {dst.dtype}")
            if not (dst.flags.c_contiguous and dst.flags.writeable):
                raise InvalidArgumentError(
                    f"{call}: {what} must be a writable C-contiguous array")
            need = out.size
            if dst.size < need:
                per = need // max(n, 1)
                raise InvalidArgumentError(
                    f"{call}: {what} has room for {dst.size} floats; {n} image(s) x output "
                    f"size {per} = {need} are needed")
        for dst, out in zip(targets, outputs):
            dst.reshape(-1)[:out.size] = out.reshape(-1)

    def _print_layers(self, rt):
        rows = rt.profile()
        rt.reset_profile()
        w = max([len("layer")] + [len(r["name"]) for r in rows])
        print(f"{'layer':<{w}}  {'op':<18} {'impl':<28} {'ms':>9} {'calls':>6}")
        for r in rows:
            print(f"{r['name']:<{w}}  {r['op']:<18} {r['impl']:<28} {r['ms']:9.3f} "
                  f"{r['calls']:6d}")
        print(f"{'total':<{w + 48}} {sum(r['ms'] for r in rows):9.3f}", flush=True)

    # ---------------------------------------------------------------- run --

    def Run(self, images, result):
        """Runs the inputs in `images` (float32, each [P,H,W], concatenated)
        and writes nbatch x output size floats into `result`."""
        rt = self._runtime("Run")
        arrays, n = self._inputs("Run", images)
        outputs = rt.run(arrays)
        self._hwtime = rt.last_run_ms
        self._store("Run", result, outputs, n)
        if "n" in self._debug:
            self._print_layers(rt)

    def PutInput(self, images, userobj):
        """Starts the inputs and returns; GetResult returns userobj with
        their result. When the queue is full this waits for another thread's
        GetResult, and raises if no other thread ever called GetResult (the
        SDK blocked forever there)."""
        rt = self._runtime("PutInput")
        arrays, n = self._inputs("PutInput", images)
        tag = (userobj, n)
        if rt.put(arrays, tag, timeout=0):
            return
        me = threading.get_ident()
        give_up = time.monotonic() + _LONE_PUT_GRACE_S
        while not rt.put(arrays, tag, timeout=_PUT_SLICE_S):
            with self._lock:
                consumer = bool(self._getters - {me})
            if consumer:
                give_up = time.monotonic() + _LONE_PUT_GRACE_S
            elif time.monotonic() > give_up:
                raise InvalidArgumentError(
                    f"PutInput: {rt.pending} inputs are pending (the queue holds "
                    f"{rt.queue_capacity}) and no other thread calls GetResult: call "
                    "GetResult first")

    def GetResult(self, result):
        """Writes the oldest PutInput's output into `result` and returns its
        userobj. With blockingmode 0, returns None at once if that input is
        not done (result untouched). Raises when no PutInput is pending."""
        rt = self._runtime("GetResult")
        with self._lock:
            self._getters.add(threading.get_ident())
            stashed, self._stash = self._stash, None
        if stashed is None:
            try:
                taken = rt.get(timeout=None if self._blocking else 0)
            except Error as e:
                if isinstance(getattr(e, "tag", None), tuple):  # that input failed
                    e.tag = e.tag[0]  # its userobj
                elif isinstance(e, InvalidArgumentError) and rt.pending == 0:
                    raise InvalidArgumentError(
                        "GetResult: no PutInput is pending (every result was taken "
                        "already)") from None
                raise
            if taken is None:
                return None
            outputs, (userobj, n) = taken
            self._hwtime = rt.last_run_ms
        else:
            outputs, userobj, n = stashed
        try:
            self._store("GetResult", result, outputs, n)
        except BaseException:
            with self._lock:  # keep it for the next GetResult
                if self._stash is None:
                    self._stash = (outputs, userobj, n)
            raise
        if "n" in self._debug and any(r["calls"] for r in rt.profile()):
            self._print_layers(rt)
        return userobj

    def Run_sw(self, images, result):
        raise UnsupportedError(
            "Run_sw emulated the FPGA's fixed-point arithmetic; shoal computes in float32 "
            "on CPU devices: use Run")

    # -------------------------------------------------------- flags/info --

    def SetFlag(self, name, value):
        """Sets an SDK flag. nobatch (1: the clusters of a device share one
        input; read by the next Compile), debug (letters: b basic, n per-layer
        times, ...; read by Compile, Init and Run), blockingmode (0:
        GetResult returns None at once if not done). hwlinear, convalgo,
        paddingalgo, max_instr and options are recorded with a warning: they
        tuned FPGA code and have no effect here."""
        if not isinstance(name, str):
            raise TypeError(f"SetFlag: flag name must be a str, got {type(name).__name__}")
        key = name.strip().lower()
        if key == "nobatch":
            self._split = _flag_int(name, value) != 0
        elif key == "debug":
            self._debug = "" if value is None else str(value)
        elif key == "blockingmode":
            self._blocking = _flag_int(name, value) != 0
        elif key in _NO_EFFECT_FLAGS:
            warnings.warn(f"SetFlag('{name}'): no effect on shoal's CPU devices (recorded only)",
                          RuntimeWarning, stacklevel=2)
        else:
            raise InvalidArgumentError(
                f"SetFlag: unknown flag '{name}'; known flags: {', '.join(SDK_FLAGS)}")
        self._flags[key] = value

    def GetFlag(self, name):
        """The value SetFlag recorded for a flag (None if never set)."""
        return self._flags.get(str(name).strip().lower())

    def GetInfo(self, name):
        """hwtime (ms of the last Run/GetResult, float), numcluster, numfpga,
        numbatch (inputs run at once), freq (CPU MHz), maxcluster (clusters
        of the largest device), maxfpga (devices on this host), version."""
        if not isinstance(name, str):
            raise TypeError(f"GetInfo: name must be a str, got {type(name).__name__}")
        key = name.strip().lower()
        p = self._program or self._compiled
        if key == "hwtime":
            return float(self._hwtime)
        # A native program compiled with clusters=0 has one per core.
        clusters = (p.clusters or max((d.clusters for d in _devices("cpu")), default=1)) if p else 0
        if key == "numcluster":
            return clusters
        if key == "numfpga":
            return p.devices if p else 0
        if key == "numbatch":
            return p.devices * (1 if p.split else clusters) if p else 0
        if key == "freq":
            return _cpu_mhz()
        if key == "maxcluster":
            return max((d.clusters for d in _devices("cpu")), default=0)
        if key == "maxfpga":
            return len(_devices("cpu"))
        if key == "version":
            return _version
        raise InvalidArgumentError(f"GetInfo: unknown name '{name}'; known: {', '.join(_INFO)}")

    # ---------------------------------------------------------- extras --

    @property
    def runtime(self):
        """The shoal.Runtime Init created (None before Init / after Free)."""
        return self._rt

    @property
    def devices(self):
        """The device ids this object holds."""
        return list(self._ids)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.Free()

    def __repr__(self):
        state = f"on devices {self._ids}" if self._rt is not None else "not initialised"
        return f"<shoal.compat.fwdnxt.FWDNXT {state}>"
