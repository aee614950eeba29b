"""The worker side of shoal.dask: code that runs inside Dask worker processes.

A DaskRuntime registers a ProgramPlugin carrying the program's bytes: the
scheduler sends it once to every worker (and to workers that join later).
The first chunk a worker runs loads the program onto the worker's device
(SHOAL_DEVICE) and keeps the shoal.Runtime in a process-wide cache keyed by
the program's checksum, so later chunks only run. Nothing here is rebuilt per
task.
"""

import inspect
import os
import threading
import time
from collections import Counter

from distributed.diagnostics.plugin import WorkerPlugin

from .. import Program, Runtime
from ..errors import DeviceError, InvalidArgumentError
from . import _device

# checksum -> {"blob": bytes, "names": set of plugin names holding it}
_programs = {}
# checksum -> _Entry (a loaded runtime)
_runtimes = {}
_cond = threading.Condition()
_loads = Counter()  # checksum -> runtimes created in this process
_chunks = Counter()  # checksum -> chunks run in this process
_SHARE = "share_devices" in inspect.signature(Runtime.__init__).parameters
# How long a worker waits for a busy runtime to release a claimed device.
_CLAIM_WAIT_S = 120.0


class _Entry:
    __slots__ = ("runtime", "users", "load_s")

    def __init__(self, runtime, load_s):
        self.runtime = runtime
        self.users = 0
        self.load_s = load_s


class ProgramPlugin(WorkerPlugin):
    """Carries a program's bytes to every worker (once per worker)."""

    def __init__(self, checksum, blob, name):
        self.checksum = checksum
        self.blob = blob
        self.name = name

    def setup(self, worker=None):
        register(self.checksum, self.blob, self.name)

    def teardown(self, worker=None):
        unregister(self.checksum, self.name)


def register(checksum, blob, name):
    with _cond:
        entry = _programs.setdefault(checksum, {"blob": bytes(blob), "names": set()})
        entry["names"].add(name)


def unregister(checksum, name):
    with _cond:
        entry = _programs.get(checksum)
        if entry is None:
            return
        entry["names"].discard(name)
        if not entry["names"]:
            del _programs[checksum]
            rt = _runtimes.get(checksum)
            if rt is not None and rt.users == 0:
                del _runtimes[checksum]  # frees the device memory
            _cond.notify_all()


def _create(checksum, devices):
    """Loads the program onto `devices`; called with _cond held."""
    entry = _programs.get(checksum)
    if entry is None:
        raise InvalidArgumentError(
            f"program {checksum} is not registered on this worker (pid "
            f"{os.getpid()}); was its DaskRuntime closed?")
    program = Program.from_bytes(entry["blob"])
    kwargs = {"share_devices": True} if (_SHARE and devices is not None) else {}
    deadline = time.monotonic() + _CLAIM_WAIT_S
    while True:
        try:
            t0 = time.perf_counter()
            rt = Runtime(program, devices=devices, **kwargs)
            return _Entry(rt, time.perf_counter() - t0)
        except DeviceError:
            # Without share_devices, one runtime per named device: another
            # program holding the device is dropped when idle (reloaded later).
            if devices is None or kwargs:
                raise
            idle = [k for k, e in _runtimes.items() if e.users == 0]
            if idle:
                for k in idle:
                    del _runtimes[k]
                continue
            left = deadline - time.monotonic()
            if not _runtimes or left <= 0:
                raise
            _cond.wait(timeout=left)


def _acquire(checksum):
    with _cond:
        entry = _runtimes.get(checksum)
        if entry is None:
            entry = _create(checksum, _device.worker_device())
            _runtimes[checksum] = entry
            _loads[checksum] += 1
        entry.users += 1
        return entry


def _release(checksum, entry):
    with _cond:
        entry.users -= 1
        if entry.users == 0:
            if checksum not in _programs and _runtimes.get(checksum) is entry:
                del _runtimes[checksum]
            _cond.notify_all()


def run_chunk(checksum, arrays):
    """The task: runs one chunk. Returns (outputs, seconds in Runtime.run)."""
    entry = _acquire(checksum)
    try:
        t0 = time.perf_counter()
        outputs = entry.runtime.run(list(arrays))
        seconds = time.perf_counter() - t0
    finally:
        _release(checksum, entry)
    with _cond:
        _chunks[checksum] += 1
    return outputs, seconds


def warm(checksum):
    """Loads the program if it is not loaded; returns the load time (s)."""
    entry = _acquire(checksum)
    _release(checksum, entry)
    return entry.load_s


def info():
    """What this worker process holds (for DaskRuntime.worker_info)."""
    with _cond:
        try:
            device = _device.describe(_device.worker_device())
        except Exception as e:  # a bad SHOAL_DEVICE: report it, do not fail
            device = f"invalid ({e})"
        return {
            "pid": os.getpid(),
            "device": device,
            "SHOAL_DEVICE": os.environ.get(_device.ENV),
            "SHOAL_CPU_DEVICES": os.environ.get("SHOAL_CPU_DEVICES"),
            "programs": sorted(_programs),
            "loaded": sorted(_runtimes),
            "loads": dict(_loads),
            "chunks": dict(_chunks),
            "share_devices": _SHARE,
        }
