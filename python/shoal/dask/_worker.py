"""The worker side of shoal.dask: code that runs inside Dask worker processes.

A DaskRuntime scatters the program's bytes to every worker once (broadcast;
a worker that joins later fetches them from a peer with its first chunk).
The first chunk a worker runs loads the program onto the worker's device
(SHOAL_DEVICE) and keeps the shoal.Runtime in a process-wide cache keyed by
the program's checksum, so later chunks only run. Nothing here is rebuilt per
task. Each DaskRuntime using a runtime is one of its owners (a token passed
with every task); DaskRuntime.close() removes its token, and the runtime is
dropped once no owner is left and no chunk is running on it.
"""

import inspect
import os
import threading
import time
from collections import Counter

from .. import Program, Runtime
from ..errors import DeviceError, InvalidArgumentError
from . import _device

# checksum -> _Entry (a loaded runtime)
_runtimes = {}
_cond = threading.Condition()
_loads = Counter()  # checksum -> runtimes created in this process
_chunks = Counter()  # checksum -> chunks run in this process
_SHARE = "share_devices" in inspect.signature(Runtime.__init__).parameters
# How long a worker waits for a busy runtime to release a claimed device.
_CLAIM_WAIT_S = 120.0


class _Entry:
    __slots__ = ("runtime", "users", "load_s", "owners")

    def __init__(self, runtime, load_s):
        self.runtime = runtime
        self.users = 0  # chunks running on it now
        self.load_s = load_s
        self.owners = set()  # tokens of the DaskRuntimes using it


def _drop_if_unused(checksum, entry):
    """Called with _cond held: frees a runtime nobody owns or runs."""
    if entry.users == 0 and not entry.owners and _runtimes.get(checksum) is entry:
        del _runtimes[checksum]  # frees the device memory
        _cond.notify_all()


def forget(checksum, owner=None):
    """DaskRuntime.close: `owner` no longer uses the program's runtime (None:
    nobody does). The runtime is dropped when no owner is left, at once or
    when its running chunks end. Returns whether this worker held it."""
    with _cond:
        entry = _runtimes.get(checksum)
        if entry is not None:
            if owner is None:
                entry.owners.clear()
            else:
                entry.owners.discard(owner)
            _drop_if_unused(checksum, entry)
        _cond.notify_all()
    return entry is not None


def _create(blob, devices):
    """Loads the program onto `devices`; called with _cond held."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise InvalidArgumentError(
            f"worker {os.getpid()}: expected the program's bytes, got "
            f"{type(blob).__name__}")
    program = Program.from_bytes(bytes(blob))
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


def _acquire(checksum, blob, owner):
    with _cond:
        entry = _runtimes.get(checksum)
        if entry is None:
            entry = _create(blob, _device.worker_device())
            _runtimes[checksum] = entry
            _loads[checksum] += 1
        entry.owners.add(owner)
        entry.users += 1
        return entry


def _release(checksum, entry):
    with _cond:
        entry.users -= 1
        if entry.users == 0:
            _cond.notify_all()
            _drop_if_unused(checksum, entry)


def run_chunk(checksum, blob, arrays, owner=None):
    """The task: runs one chunk of a program (checksum, bytes: the scattered
    program, loaded only the first time; owner: the DaskRuntime's token).
    Returns (outputs, seconds in Runtime.run)."""
    entry = _acquire(checksum, blob, owner)
    try:
        t0 = time.perf_counter()
        outputs = entry.runtime.run(list(arrays))
        seconds = time.perf_counter() - t0
    finally:
        _release(checksum, entry)
    with _cond:
        _chunks[checksum] += 1
    return outputs, seconds


def warm(checksum, blob, owner=None):
    """Loads the program if it is not loaded; returns the load time (s)."""
    entry = _acquire(checksum, blob, owner)
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
            "loaded": sorted(_runtimes),
            "loads": dict(_loads),
            "chunks": dict(_chunks),
            "share_devices": _SHARE,
        }
