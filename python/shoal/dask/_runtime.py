"""DaskRuntime: one shoal program run across the workers of a Dask cluster."""

import asyncio
import hashlib
import math
import os
import time
import uuid
from concurrent.futures import CancelledError

import numpy as np
from distributed import KilledWorker, wait
from distributed.comm.core import CommClosedError
from distributed.client import FIRST_COMPLETED

from .. import Program
from ..errors import Error, InvalidArgumentError
from . import _inputs, _worker
from ._errors import ClusterError, NoWorkersError

# Default chunk: a few chunks per worker thread, at most this many bytes of
# input (so a chunk and its output stay far below any message limit).
_MAX_CHUNK_BYTES = 16 << 20
_CHUNKS_PER_THREAD = 4
_POLL_S = 0.5  # how often a waiting job looks at the cluster
# Default window: chunks in flight per worker thread. Each refill costs a
# scatter and each harvest a gather (a round trip each): a deep window keeps
# the workers busy meanwhile.
_WINDOW_PER_THREAD = 4
# A gather of finished chunks that takes longer than this (or than
# no_workers_timeout) is given up and retried: the workers holding the
# results died, and waiting for their recomputation must stay bounded.
_GATHER_TIMEOUT_S = 30.0
_SCATTER_TRIES = 3


def _program_and_bytes(program):
    """A Program, its bytes, or a path -> (Program, bytes)."""
    if isinstance(program, Program):
        return program, bytes(program.to_bytes())
    if isinstance(program, (bytes, bytearray, memoryview)):
        blob = bytes(program)
        return Program.from_bytes(blob), blob
    if isinstance(program, (str, os.PathLike)):
        with open(os.fspath(program), "rb") as f:
            blob = f.read()
        return Program.from_bytes(blob), blob
    raise TypeError("program must be a shoal.Program, its bytes or a path, "
                    f"got {type(program).__name__}")


def _positive(value, what, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgumentError(f"{what} must be an int >= 1, got {value!r}")
    return int(value)


class _Chunk:
    """One chunk in flight: its inputs (kept until its result is in, to
    resubmit it if a worker dies with them) and its current futures."""

    __slots__ = ("seq", "tag", "arrays", "data", "future", "attempts", "gather_errors")

    def __init__(self, seq, tag, arrays):
        self.seq, self.tag, self.arrays = seq, tag, arrays
        self.data = self.future = None
        self.attempts = 0
        self.gather_errors = 0


class DaskRuntime:
    """A shoal program run across the workers of a Dask cluster.

    client: a distributed.Client (``tls://`` addresses work with a
        distributed.security.Security, see shoal.dask.tls_security).
    program: a shoal.Program, its bytes (Program.to_bytes) or a path.
    chunk_size: samples per task for run() (default: about four chunks per
        worker thread, at most 16 MiB of input each); imap() cuts its batches
        only when it is given.
    max_in_flight: chunks dispatched but not yet returned to the caller
        (default: four per worker thread of the cluster, at least 4): bounds
        the memory a job holds on the client, the scheduler and the workers.
    progress: show a tqdm progress bar (stderr).
    retries: times Dask reruns a chunk whose task raised.
    resubmits: times a chunk whose inputs died with a worker is sent again.
    timeout: seconds a whole run()/imap() may take (None: no limit).
    no_workers_timeout: a job fails with NoWorkersError when the cluster has
        had no suitable worker for this long.
    resources: Dask resources each task needs, e.g. {"shoal": 1}: only
        workers started with them (``--resources shoal=1``; ``python -m
        shoal.dask worker`` does so) run chunks.
    preload: load the program on every current worker now (the first chunk
        of a worker that joins later loads it).

    The program's bytes travel once per worker (scattered with broadcast,
    out of band; a worker that joins later fetches them from a peer with its
    first chunk; sent again should every holder die); each worker loads them
    once onto its device (SHOAL_DEVICE) and keeps the runtime, keyed by the
    program's checksum, for every later chunk (shared with other open
    DaskRuntimes of the same program). A worker that dies mid-job loses
    nothing: Dask reruns its running tasks elsewhere, and chunks whose inputs
    died with it are sent again from the client; every sample gets exactly
    one result, in input order. A client that loses its scheduler fails the
    job with ClusterError.
    """

    def __init__(self, client, program, chunk_size=None, max_in_flight=None,
                 progress=True, retries=2, resubmits=3, timeout=None,
                 no_workers_timeout=60.0, resources=None, preload=True):
        self.client = client
        self.program, blob = _program_and_bytes(program)
        self.checksum = hashlib.blake2b(blob, digest_size=16).hexdigest()
        self.chunk_size = _positive(chunk_size, "chunk_size")
        self.max_in_flight = _positive(max_in_flight, "max_in_flight")
        self.progress = bool(progress)
        self.retries = int(retries)
        self.resubmits = int(resubmits)
        self.timeout = None if timeout is None else float(timeout)
        self.no_workers_timeout = float(no_workers_timeout)
        self.resources = dict(resources) if resources else None
        self.stats = {}
        self.address = client.scheduler.address  # kept: a closed client has none
        self._token = uuid.uuid4().hex  # this runtime's claim on the workers' runtimes
        self._infos = list(self.program.inputs)
        self._blob = blob
        self._program_future = None
        self._closed = False
        self._gather_slack = 1
        self._send_program()
        if preload:
            try:
                self.warmup()
            except BaseException:
                self.close()
                raise

    def _client_lost(self, reconnecting_too=False):
        """A ClusterError when the client has lost its scheduler (it gives up
        reconnecting after its timeout and closes), else None."""
        client = self.client
        gone = ("closing", "closed") + (("connecting",) if reconnecting_too else ())
        if client.status in gone or client.scheduler is None:
            return ClusterError(
                f"the Dask client lost the scheduler at {self.address} (client "
                f"{client.status}); the job's state is gone: restart the scheduler, "
                "connect a new client and run the job again")
        return None

    def _check_client(self):
        """Raises ClusterError when the client has lost its scheduler; while
        it is reconnecting (its futures are gone), waits for the outcome
        (bounded: the client closes itself after its connect timeout)."""
        deadline = time.monotonic() + max(self.no_workers_timeout,
                                          float(getattr(self.client, "_timeout", 0) or 0))
        while self.client.status == "connecting" and time.monotonic() < deadline:
            time.sleep(_POLL_S / 5)
        lost = self._client_lost(reconnecting_too=True)
        if lost is not None:
            raise lost

    def _scatter(self, data, what, broadcast=False):
        """client.scatter with bounded waits: NoWorkersError when no worker
        shows up within no_workers_timeout, a few tries when a worker picked
        for the data dies meanwhile, ClusterError when the client is gone.
        With resources, chunks go to the workers that can run them (none
        yet: anywhere, and the job waits for one to join)."""
        for attempt in range(_SCATTER_TRIES):
            self._check_client()
            where = (self.workers() or None) if (self.resources and not broadcast) else None
            try:
                return self.client.scatter(data, workers=where, broadcast=broadcast,
                                           hash=False, timeout=self.no_workers_timeout)
            except TimeoutError as e:  # "No valid workers found"
                raise NoWorkersError(self._no_workers_message(what[1])) from e
            except Exception as e:
                lost = self._client_lost()
                if lost is not None:
                    raise lost from e
                if not isinstance(e, (OSError, CommClosedError, KeyError)):
                    raise
                # A worker picked for the data died during the scatter (the
                # scheduler may then fail with a KeyError naming it).
                if attempt + 1 == _SCATTER_TRIES:
                    lost = self._client_lost(reconnecting_too=True)
                    if lost is not None:
                        raise lost from e
                    raise ClusterError(f"scattering {what[0]} failed "
                                       f"{_SCATTER_TRIES} times: {e!r}") from e
                time.sleep(_POLL_S)

    def _send_program(self):
        """Scatters the program's bytes to every worker (out of band, once;
        a worker that joins later fetches them from a peer when it needs them)."""
        key = f"shoal-program-{self.checksum[:16]}-{uuid.uuid4().hex[:8]}"
        self._program_future = self._scatter(
            {key: self._blob}, ("the program", None), broadcast=True)[key]

    def _program(self):
        """The program's future, sent again if every worker holding it died."""
        if self._closed:
            raise InvalidArgumentError("this DaskRuntime was closed")
        if self._program_future is None or self._program_future.status != "finished":
            self._send_program()
        return self._program_future

    # ---- cluster ---------------------------------------------------------

    def workers(self):
        """Addresses of the workers that can run chunks now."""
        info = self.client.scheduler_info().get("workers", {})
        if not self.resources:
            return sorted(info)
        return sorted(a for a, w in info.items()
                      if all(w.get("resources", {}).get(k, 0) >= v
                             for k, v in self.resources.items()))

    def _threads(self):
        info = self.client.scheduler_info().get("workers", {})
        return sum(int(info[a].get("nthreads", 1)) for a in self.workers())

    def _wait_for_workers(self):
        deadline = time.monotonic() + self.no_workers_timeout
        while True:
            found = self.workers()
            if found:
                return found
            if time.monotonic() >= deadline:
                raise NoWorkersError(self._no_workers_message())
            time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))

    def _no_workers_message(self, pending=None):
        what = "no worker" if not self.resources else \
            f"no worker with resources {self.resources}"
        tail = "" if pending is None else f"; {pending} chunk(s) of the job unfinished"
        return (f"the Dask cluster at {self.address} had {what} "
                f"for {self.no_workers_timeout:g} s{tail}")

    def warmup(self):
        """Loads the program on every current worker; returns {worker: the
        seconds its load took}. Raises ClusterError naming a worker that
        cannot load it (e.g. a bad SHOAL_DEVICE)."""
        workers = self._wait_for_workers()
        program = self._program()
        futures = {w: self.client.submit(
            _worker.warm, self.checksum, program, self._token, workers=[w],
            allow_other_workers=False, pure=False,
            key=f"shoal-warm-{self.checksum[:8]}-{uuid.uuid4().hex}")
            for w in workers}
        # Bounded: a worker that leaves meanwhile (its task would wait for it
        # forever) is given up at once; it loads on its first chunk instead.
        deadline = time.monotonic() + self.no_workers_timeout
        try:
            while True:
                pending = [f for w, f in futures.items() if not f.done()]
                if not pending or time.monotonic() >= deadline:
                    break
                try:
                    wait(pending, timeout=_POLL_S)
                except (TimeoutError, CancelledError):
                    pass  # a cancelled one: its program copy died with a worker
                self._check_client()
                alive = set(self.workers())
                if all(w not in alive for w, f in futures.items() if not f.done()):
                    break
            out = {}
            for w, f in futures.items():
                if f.status == "error":
                    raise ClusterError(f"worker {w} cannot load program "
                                       f"{self.checksum[:16]}: {f.exception()}")
                if f.status == "finished":
                    out[w] = f.result()
            return out
        finally:
            self._cancel([f for f in futures.values() if not f.done()])

    def _cancel(self, futures):
        """Cancels futures; never raises (it runs on the way out of errors)."""
        if futures:
            try:
                self.client.cancel(futures)
            except Exception:  # the client or the scheduler is gone: nothing to cancel
                pass

    def worker_info(self):
        """{worker address: what it holds}: device, loaded programs, how many
        times each was loaded and how many chunks each ran."""
        return self.client.run(_worker.info)

    def close(self):
        """Releases the program on the workers: each frees its runtime once
        no open DaskRuntime of the same program uses it."""
        if not self._closed:
            self._closed = True
            if self._client_lost(reconnecting_too=True) is not None:
                self._program_future = None
                return  # the workers cannot be reached (they keep the runtime)
            try:
                if self._program_future is not None:
                    self._program_future.release()
                self.client.run(_worker.forget, self.checksum, self._token)
            except Exception:  # the cluster may be gone already
                pass
            self._program_future = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- jobs ------------------------------------------------------------

    def _default_chunk(self, n):
        threads = max(1, self._threads())
        by_count = math.ceil(n / (_CHUNKS_PER_THREAD * threads))
        by_bytes = max(1, _MAX_CHUNK_BYTES // _inputs.sample_bytes(self._infos))
        return max(1, min(by_count, by_bytes))

    def _window(self):
        if self.max_in_flight:
            return self.max_in_flight
        return max(4, _WINDOW_PER_THREAD * self._threads())

    def run(self, x, chunk_size=None):
        """Runs a batch across the cluster: like shoal.Runtime.run, returns
        one array per model output with the samples in input order."""
        arrays, n = _inputs.normalize(self.program, x)
        size = _positive(chunk_size, "chunk_size") or self.chunk_size
        if size is None:
            self._wait_for_workers()
            size = self._default_chunk(n)
        chunks = ((i, [a[i:i + size] for a in arrays]) for i in range(0, n, size))
        parts = [outs for _, outs in self._stream(chunks, total=n)]
        if len(parts) == 1:
            return parts[0]
        return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]

    __call__ = run

    def imap(self, batches, chunk_size=None):
        """Streams batches (any iterable, e.g. a generator reading files):
        yields each batch's outputs (a list, as run() returns) in order while
        at most max_in_flight chunks are out, so the data never has to fit in
        memory. A batch is cut into chunks of chunk_size when one is given."""
        size = _positive(chunk_size, "chunk_size") or self.chunk_size
        total = len(batches) if hasattr(batches, "__len__") else None  # the bar counts batches

        def chunks():
            for b, x in enumerate(batches):
                arrays, n = _inputs.normalize(self.program, x)
                step = size or n
                parts = range(0, n, step)
                for p, i in enumerate(parts):
                    yield (b, p, len(parts)), [a[i:i + step] for a in arrays]

        pending = []
        for (b, p, count), outs in self._stream(chunks(), total=total, unit="batch"):
            pending.append(outs)
            if p == count - 1:
                if len(pending) == 1:
                    yield pending[0]
                else:
                    yield [np.concatenate([q[k] for q in pending])
                           for k in range(len(pending[0]))]
                pending = []

    # ---- the dispatch loop -----------------------------------------------

    def _submit(self, chunks):
        """Scatters the chunks' inputs (one message for all of them) and
        submits one task per chunk."""
        data = self._scatter([tuple(c.arrays) for c in chunks],
                             (f"{len(chunks)} chunk(s)", len(chunks)))
        # One map for the group: one graph update (and one look at the
        # caller's source, which Dask records per call) instead of one per chunk.
        keys = [f"shoal-chunk-{self.checksum[:8]}-{c.seq}-{uuid.uuid4().hex[:12]}"
                for c in chunks]
        program = self._program()
        futures = self.client.map(_worker.run_chunk, [self.checksum] * len(chunks),
                                  [program] * len(chunks), data,
                                  [self._token] * len(chunks),
                                  key=keys, pure=False, retries=self.retries,
                                  resources=self.resources)
        for c, d, f in zip(chunks, data, futures):
            c.attempts += 1
            c.data, c.future = d, f

    def _describe(self, c):
        return f"chunk {c.seq} ({len(c.arrays[0])} samples)"

    def _failed(self, c):
        """A chunk's future ended in error: raise, or return True to resend."""
        if c.future.status == "cancelled":
            # Its scattered inputs died with a worker before it ran (or its
            # result died and could not be recomputed): send it again.
            if c.attempts > self.resubmits:
                raise ClusterError(
                    f"{self._describe(c)} lost its inputs {c.attempts} times "
                    "(workers keep dying); giving up")
            return True
        exc = c.future.exception()
        if isinstance(exc, KilledWorker):
            raise ClusterError(
                f"{self._describe(c)}: every worker that ran it died ({exc}); "
                "it may crash its worker") from exc
        if isinstance(exc, Error):
            raise exc
        raise ClusterError(f"{self._describe(c)} failed on the cluster: "
                           f"{type(exc).__name__}: {exc}") from exc

    def _gather(self, futures):
        """client.gather with a time limit: None when it did not finish (a
        worker holding results died during the gather and no other worker
        has recomputed them yet); the futures are then pending again."""
        limit = max(_GATHER_TIMEOUT_S, self.no_workers_timeout) * self._gather_slack
        gather = getattr(self.client, "_gather", None)  # the coroutine behind gather()
        if gather is None:
            return self.client.gather(futures)
        try:
            values = self.client.sync(gather, futures, callback_timeout=limit)
        except (TimeoutError, asyncio.TimeoutError):
            self._gather_slack *= 2  # a slow link, perhaps: wait longer next time
            return None
        self._gather_slack = 1
        return values

    def _harvest(self, ok, resend):
        """Fetches finished chunks' results: yields (chunk, (outputs, seconds));
        chunks lost meanwhile go to `resend` or stay in flight."""
        try:
            values = self._gather([c.future for c in ok])
        except Exception:
            values, pause = None, False
            for c in ok:  # one of them failed or was lost: one at a time
                error = None
                if c.future.status == "finished":
                    try:
                        value = self._gather([c.future])
                    except Exception as e:
                        value, error = None, e
                    if value is not None:
                        c.gather_errors = 0
                        yield c, value[0]
                        continue
                if c.future.done() and c.future.status != "finished":
                    if self._failed(c):
                        resend.append(c)
                elif error is not None:
                    # Finished, yet its result would not come: bounded tries
                    # (a result that cannot be fetched must not spin forever).
                    self._check_client()
                    c.gather_errors += 1
                    if c.gather_errors >= _SCATTER_TRIES:
                        raise ClusterError(
                            f"{self._describe(c)}: fetching its result failed "
                            f"{c.gather_errors} times: {error!r}") from error
                    pause = True
            if pause:
                time.sleep(_POLL_S)
            return
        if values is None:
            return  # not gathered in time: the chunks stay in flight
        yield from zip(ok, values)

    def _stream(self, items, total=None, unit="sample"):
        """items: iterable of (tag, [arrays]). Yields (tag, outputs) in order."""
        window = self._window()
        it = iter(items)
        flight = {}  # seq -> _Chunk, dispatched and not yet yielded
        results = {}  # seq -> outputs, waiting for earlier chunks
        next_seq = next_out = 0
        exhausted = False
        start = time.monotonic()
        no_workers_since = None
        stats = {"chunks": 0, "samples": 0, "resent": 0, "compute_s": 0.0,
                 "wall_s": 0.0, "window": window}
        self.stats = stats
        bar = self._bar(total, unit)
        try:
            while True:
                self._check_client()
                fresh = []
                while not exhausted and next_seq - next_out < window:
                    try:
                        tag, arrays = next(it)
                    except StopIteration:
                        exhausted = True
                        break
                    c = _Chunk(next_seq, tag, arrays)
                    flight[next_seq] = c
                    fresh.append(c)
                    next_seq += 1
                if fresh:
                    self._submit(fresh)
                while next_out in results:
                    c = flight.pop(next_out)
                    outs = results.pop(next_out)
                    next_out += 1
                    stats["chunks"] += 1
                    n = len(c.arrays[0])
                    stats["samples"] += n
                    if bar is not None:
                        bar.update(n if unit == "sample" else int(c.tag[1] == c.tag[2] - 1))
                    yield c.tag, outs
                if exhausted and next_out == next_seq:
                    return
                if next_seq - next_out < window and not exhausted:
                    continue
                waiting = [c for c in flight.values() if c.seq not in results]
                now = time.monotonic()
                if self.timeout is not None and now - start > self.timeout:
                    raise ClusterError(
                        f"the job took longer than timeout={self.timeout:g} s; "
                        f"{len(waiting)} chunk(s) in flight unfinished")
                try:
                    wait([c.future for c in waiting], timeout=_POLL_S,
                         return_when=FIRST_COMPLETED)
                except TimeoutError:
                    now = time.monotonic()
                    if self.workers():
                        no_workers_since = None
                    elif no_workers_since is None:
                        no_workers_since = now
                    elif now - no_workers_since > self.no_workers_timeout:
                        raise NoWorkersError(
                            self._no_workers_message(len(waiting))) from None
                    continue
                except CancelledError:
                    pass  # a chunk's inputs died with a worker: resent below
                done = [c for c in waiting if c.future.done()]
                ok = [c for c in done if c.future.status == "finished"]
                resend = [c for c in done if c.future.status != "finished" and self._failed(c)]
                if ok:
                    for c, value in self._harvest(ok, resend):
                        if c.seq in results:  # never happens: one future per chunk
                            raise ClusterError(f"{self._describe(c)} came back twice")
                        results[c.seq], seconds = value
                        stats["compute_s"] += seconds
                        c.future = c.data = None  # frees the worker's copies
                if resend:
                    stats["resent"] += len(resend)
                    self._submit(resend)
        finally:
            stats["wall_s"] = time.monotonic() - start
            if bar is not None:
                bar.close()
            # Never masks the error that ended the job (the client may be gone).
            self._cancel([f for c in flight.values() for f in (c.future, c.data)
                          if f is not None])

    def _bar(self, total, unit):
        if not self.progress:
            return None
        try:
            from tqdm import tqdm
        except ImportError:
            return None
        return tqdm(total=total, unit=unit, desc="shoal", dynamic_ncols=True)

    def __repr__(self):
        return (f"<shoal.dask.DaskRuntime program={self.checksum[:16]} "
                f"scheduler={self.address}>")
