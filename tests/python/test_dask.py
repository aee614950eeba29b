"""shoal.dask on a real Dask cluster of local processes (127.0.0.1 only).

Each cluster is a dask-scheduler plus workers started as subprocesses with
SHOAL_CPU_DEVICES=2 and each its own SHOAL_DEVICE, on random free ports,
without dashboards; every process is stopped in a finalizer even when a test
fails (and the finalizer checks that none is left), and every wait is
bounded. Needs Debian's python3-distributed.
"""

import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

import shoal

distributed = pytest.importorskip("distributed")
import shoal.dask  # noqa: E402  (needs distributed)
from shoal.dask.local import LocalProcessCluster  # noqa: E402

START_TIMEOUT = 60  # s for a process to come up / a cluster to form
JOB_TIMEOUT = 90  # s any one job may take


def _env(extra=None):
    env = dict(os.environ)
    pkg = pathlib.Path(shoal.__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join(
        [str(pkg)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["SHOAL_CPU_DEVICES"] = "2"
    env.pop("SHOAL_DEVICE", None)
    env.update(extra or {})
    return env


def _leftovers(cluster):
    """Processes of a closed cluster still alive: its own, and any process
    whose command line names its directory (they all do)."""
    left = [f"pid {p.pid}: {p.args}" for p in cluster.running()]
    mark = str(cluster.directory).encode()
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if mark in cmdline:
                args = cmdline.replace(b"\0", b" ")[:200]
                left.append(f"pid {entry.name}: {args!r}")
    return left


def _close_cluster(cluster):
    cluster.close()
    assert not _leftovers(cluster), _leftovers(cluster)


def _start(directory, workers, plain=(), tls=None):
    """A LocalProcessCluster (scheduler + one worker process per device, all on
    127.0.0.1) and a client that has seen every worker join."""
    cluster = LocalProcessCluster(workers, plain=plain, tls=tls, directory=directory,
                                  env={"SHOAL_CPU_DEVICES": "2"},
                                  start_timeout=START_TIMEOUT)
    try:
        return cluster, cluster.client()
    except BaseException:
        cluster.close()
        raise


@pytest.fixture
def make_cluster(tmp_path):
    """make_cluster({name: device}, tls=None, plain=()) -> (cluster, client):
    started now, torn down after the test whatever happens."""
    clusters = []

    def make(workers, tls=None, plain=()):
        cluster, client = _start(tmp_path / f"cluster{len(clusters)}", workers, plain, tls)
        clusters.append(cluster)
        return cluster, client

    yield make
    for cluster in clusters:
        _close_cluster(cluster)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The shared cluster: three workers, cpu:0 and cpu:1 via `python -m
    shoal.dask worker`, and a plain dask-worker on the whole host."""
    c, client = _start(tmp_path_factory.mktemp("dask"),
                       {"w0": "cpu:0", "w1": "cpu:1", "w2": ""}, plain=("w2",))
    try:
        yield c, client
    finally:
        _close_cluster(c)


# ---- programs and data ---------------------------------------------------------

def _heavy_model(channels=48, size=32, layers=4, seed=0):
    """A conv stack heavy enough (~1 ms a sample) that a job lasts a while."""
    from onnx import helper

    from conftest import build_model

    rng = np.random.default_rng(seed)
    nodes, inits, prev = [], {}, "x"
    cin = 4
    for i in range(layers):
        inits[f"w{i}"] = (rng.standard_normal((channels, cin, 3, 3))
                          / np.sqrt(9 * cin)).astype(np.float32)
        inits[f"b{i}"] = (rng.standard_normal(channels) * 0.1).astype(np.float32)
        nodes += [helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"],
                                   pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        prev, cin = f"r{i}", channels
    nodes += [helper.make_node("GlobalAveragePool", [prev], ["g"]),
              helper.make_node("Flatten", ["g"], ["y"])]
    return build_model(nodes, [("x", [1, 4, size, size])], [("y", [1, channels])], inits)


@pytest.fixture(scope="module")
def digits(digits_model):
    program = shoal.compile(str(digits_model), shape="8x8x1")
    x = np.load(digits_model.parent / "heldout_x.npy").astype(np.float32)
    (ref,) = shoal.Runtime(program).run(x)
    return program, x, ref


@pytest.fixture(scope="module")
def heavy():
    pytest.importorskip("onnx")
    program = shoal.compile(_heavy_model())
    x = np.random.default_rng(7).standard_normal((480, 4, 32, 32)).astype(np.float32)
    (ref,) = shoal.Runtime(program).run(x)
    return program, x, ref


def _close(y, ref):
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


# ---- no cluster ------------------------------------------------------------------

def test_parse_device():
    parse = shoal.dask.parse_device
    assert parse(None) is None and parse("") is None and parse("all") is None
    assert parse("cpu") is None
    assert parse("cpu:1") == [1] and parse("1") == [1] and parse(" CPU:0,1 ") == [0, 1]
    assert parse("0-2") == [0, 1, 2]
    assert parse("ref:0") == ["ref:0"] and parse("cpu:0,ref:0") == [0, "ref:0"]
    assert parse("cpu:1,ref:0-1") == [1, "ref:0", "ref:1"]
    for bad in ("gpu:0", "cpu:x", "1,1", "3-1", "-1", "ref:0,ref:0"):
        with pytest.raises(shoal.InvalidArgumentError, match="SHOAL_DEVICE"):
            parse(bad)


def test_worker_cache_loads_once_and_evicts_without_share_devices(monkeypatch, digits,
                                                                  heavy):
    """The worker side in this process: one load per program; where the
    binding cannot share a device, programs take turns on it."""
    from shoal.dask import _worker

    monkeypatch.setenv("SHOAL_CPU_DEVICES", "2")
    monkeypatch.setenv("SHOAL_DEVICE", "cpu:1")
    (p1, x1, ref1), (p2, x2, ref2) = digits, heavy
    b1, b2 = p1.to_bytes(), p2.to_bytes()
    try:
        for share in (True, False):
            monkeypatch.setattr(_worker, "_SHARE", share and _worker._SHARE)
            _worker._runtimes.clear()
            _worker._loads.clear()
            for _ in range(2):
                (y1,), _ = _worker.run_chunk("test-a", b1, (x1[:9],))
                (y2,), _ = _worker.run_chunk("test-b", b2, (x2[:3],))
                _close(y1, ref1[:9])
                _close(y2, ref2[:3])
            expected = 1 if _worker._SHARE else 2  # reloaded after each eviction
            assert _worker._loads["test-a"] == expected
        assert _worker.forget("test-b") and "test-b" not in _worker._runtimes
        # Owners: a runtime stays while a DaskRuntime (token) still uses it,
        # and a forget during a running chunk takes effect when it ends.
        _worker._runtimes.clear()
        _worker.warm("test-a", b1, "A")
        _worker.warm("test-a", b1, "B")
        assert _worker.forget("test-a", "A") and "test-a" in _worker._runtimes
        entry = _worker._acquire("test-a", b1, "B")  # a chunk running...
        _worker.forget("test-a", "B")
        assert "test-a" in _worker._runtimes
        _worker._release("test-a", entry)  # ...ends: dropped
        assert "test-a" not in _worker._runtimes
    finally:
        _worker._runtimes.clear()
        _worker._loads.clear()
    with pytest.raises(shoal.InvalidArgumentError, match="program's bytes"):
        _worker.run_chunk("test-a", None, (x1[:1],))


# ---- the shared cluster -----------------------------------------------------------

def test_outputs_equal_local_runtime(cluster, digits):
    _, client = cluster
    program, x, ref = digits
    with shoal.dask.DaskRuntime(client, program, progress=False, timeout=JOB_TIMEOUT) as rt:
        (y,) = rt.run(x)
        assert y.shape == ref.shape and y.dtype == np.float32
        _close(y, ref)
        assert rt.stats["chunks"] > 1 and rt.stats["samples"] == len(x)
        chunks = rt.stats["chunks"]
        # Program bytes sent once, loaded once per worker, whatever the chunks.
        rt.run(x, chunk_size=16)
        chunks += rt.stats["chunks"]
        info = rt.worker_info()
    assert len(info) == 3
    devices = sorted(i["device"] for i in info.values())
    assert devices == ["cpu:0", "cpu:1", "the whole host"]
    for worker in info.values():
        assert worker["loads"].get(rt.checksum) == 1, worker
    assert sum(w["chunks"].get(rt.checksum, 0) for w in info.values()) == chunks


def test_order_preserved_and_uneven_chunks(cluster, digits):
    _, client = cluster
    program, x, ref = digits
    perm = np.random.default_rng(3).permutation(len(x))
    with shoal.dask.DaskRuntime(client, program.to_bytes(), progress=False,
                                chunk_size=4, max_in_flight=3,
                                timeout=JOB_TIMEOUT) as rt:
        (y,) = rt.run(x[perm][:13])  # 13 = 4 + 4 + 4 + 1
        assert rt.stats["chunks"] == 4
        _close(y, ref[perm][:13])
        (y,) = rt.run(x[perm])
        _close(y, ref[perm])
        (y,) = rt.run(x[:1])
        _close(y, ref[:1])


def test_imap_streams_in_order(cluster, digits, capsys):
    _, client = cluster
    program, x, ref = digits
    sizes = [7, 1, 30, 13, 64, 2]
    edges = np.cumsum([0] + sizes)

    def batches():  # a generator: imap never needs them all at once
        for a, b in zip(edges[:-1], edges[1:]):
            yield x[a:b]

    with shoal.dask.DaskRuntime(client, program, progress=False, max_in_flight=2,
                                timeout=JOB_TIMEOUT) as rt:
        outs = list(rt.imap(batches(), chunk_size=5))
        assert [o[0].shape[0] for o in outs] == sizes
        _close(np.concatenate([o[0] for o in outs]), ref[:edges[-1]])
        assert rt.stats["window"] == 2
        outs = list(rt.imap([x[:10], x[10:20]]))  # no chunk_size: a chunk per batch
        _close(np.concatenate([o[0] for o in outs]), ref[:20])
        rt.progress = True
        (y,) = rt.run(x[:30], chunk_size=10)
        _close(y, ref[:30])
    assert "30/30" in capsys.readouterr().err  # the tqdm bar


def test_two_programs_on_one_cluster(cluster, digits, heavy):
    _, client = cluster
    p1, x1, ref1 = digits
    p2, x2, ref2 = heavy
    with shoal.dask.DaskRuntime(client, p1, progress=False, timeout=JOB_TIMEOUT) as a, \
            shoal.dask.DaskRuntime(client, p2, progress=False, timeout=JOB_TIMEOUT) as b:
        assert a.checksum != b.checksum
        (y2,) = b.run(x2[:64], chunk_size=8)
        (y1,) = a.run(x1, chunk_size=32)
        _close(y1, ref1)
        _close(y2, ref2[:64])
        # Interleaved jobs: streams of both programs in flight together.
        it1 = a.imap(x1[i:i + 40] for i in range(0, 200, 40))
        it2 = b.imap(x2[i:i + 16] for i in range(0, 80, 16))
        for (o1,), (o2,), i in zip(it1, it2, range(5)):
            _close(o1, ref1[i * 40:(i + 1) * 40])
            _close(o2, ref2[i * 16:(i + 1) * 16])


def test_runtime_shared_until_its_last_user_closes(cluster, heavy):
    """Two DaskRuntimes of one program share each worker's runtime: closing
    one does not make the other reload; closing the last frees it."""
    _, client = cluster
    program, x, ref = heavy
    from shoal.dask import _worker

    def loads(rt):
        return {w: i["loads"].get(rt.checksum, 0) for w, i in rt.worker_info().items()}

    a = shoal.dask.DaskRuntime(client, program, progress=False, timeout=JOB_TIMEOUT)
    b = shoal.dask.DaskRuntime(client, program.to_bytes(), progress=False,
                               timeout=JOB_TIMEOUT)
    try:
        assert a.checksum == b.checksum
        before = loads(b)
        a.close()
        (y,) = b.run(x[:24], chunk_size=4)
        _close(y, ref[:24])
        assert loads(b) == before  # no reload after a.close()
        assert all(b.checksum in i["loaded"] for i in client.run(_worker.info).values())
    finally:
        a.close()
        b.close()
    assert all(b.checksum not in i["loaded"] for i in client.run(_worker.info).values())


def test_resources_keep_chunks_on_shoal_workers(cluster, digits):
    """resources={"shoal": 1}: only the `shoal worker`s (w0, w1) get chunks
    and their inputs, not the plain dask-worker (w2)."""
    _, client = cluster
    program, x, ref = digits

    def ran(rt):
        return {i["device"]: i["chunks"].get(rt.checksum, 0)
                for i in rt.worker_info().values()}

    with shoal.dask.DaskRuntime(client, program, progress=False, resources={"shoal": 1},
                                chunk_size=16, timeout=JOB_TIMEOUT) as rt:
        assert len(rt.workers()) == 2
        before = ran(rt)
        (y,) = rt.run(x)
        _close(y, ref)
        after = ran(rt)
    assert after["the whole host"] == before["the whole host"]
    assert sum(after.values()) - sum(before.values()) == rt.stats["chunks"]


def test_bad_input_and_timeout(cluster, digits):
    _, client = cluster
    program, x, _ = digits
    with shoal.dask.DaskRuntime(client, program, progress=False, preload=False) as rt:
        with pytest.raises(shoal.DTypeError):
            rt.run(x.astype(np.float64))
        with pytest.raises(shoal.InvalidArgumentError, match="must have shape"):
            rt.run(x[:, :, :4])
        with pytest.raises(shoal.InvalidArgumentError):
            rt.run(x, chunk_size=0)
        rt.timeout = 1e-6  # a job past its time limit fails, and cancels its chunks
        with pytest.raises(shoal.dask.ClusterError, match="timeout"):
            rt.run(x, chunk_size=8)
        rt.timeout = None
        (y,) = rt.run(x[:3])
        assert y.shape == (3, 10)


def test_python_cli_run(cluster, digits, tmp_path):
    c, _ = cluster
    program, x, ref = digits
    prog, inp, out = tmp_path / "d.shoal", tmp_path / "x.npy", tmp_path / "y.npy"
    program.save(str(prog))
    np.save(inp, x)
    r = subprocess.run([sys.executable, "-m", "shoal.dask", "run", "--scheduler",
                        c.address, str(prog), str(inp), "-o", str(out), "--no-progress",
                        "--chunk-size", "50", "--timeout", str(JOB_TIMEOUT)],
                       env=_env(), capture_output=True, text=True, timeout=JOB_TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert "359 samples on 3 worker(s)" in r.stdout
    _close(np.load(out), ref)


def test_shoal_cli_forwards_to_dask(cluster, digits, tmp_path, build_dir):
    binary = build_dir / "bin" / "shoal"
    if not binary.exists():
        pytest.skip(f"{binary} is missing")
    if b"worker" not in subprocess.run([str(binary), "--help"], capture_output=True,
                                       timeout=30).stdout:
        pytest.skip("this shoal binary has no `worker` command (rebuild)")
    c, _ = cluster
    program, x, ref = digits
    prog, inp, out = tmp_path / "d.shoal", tmp_path / "x.npy", tmp_path / "y.npy"
    program.save(str(prog))
    np.save(inp, x[:40])
    env = _env()
    env.pop("PYTHONPATH")  # the binary finds build/python itself
    r = subprocess.run([str(binary), "run", "--scheduler", c.address, str(prog), str(inp),
                        "-o", str(out), "--no-progress"],
                       env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT)
    assert r.returncode == 0, r.stderr
    _close(np.load(out), ref[:40])
    r = subprocess.run([str(binary), "worker", c.address, "--device", "cpu:1",
                        "--dry-run"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "distributed.cli.dask_worker" in r.stdout and "--nthreads 1" in r.stdout
    r = subprocess.run([str(binary), "worker", c.address, "--device", "cpu:9"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "do not exist" in r.stderr


def test_worker_command_line_finds_the_scheduler():
    """`shoal worker`: the scheduler address wherever it stands, or
    --scheduler-file; dask-worker options and their values pass through."""
    def dry(*args):
        r = subprocess.run([sys.executable, "-m", "shoal.dask", "worker", *args,
                            "--dry-run"], env=_env(), capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.split()[3:]  # after python -m distributed.cli.dask_worker

    base = ["--nthreads", "1", "--resources", "shoal=1"]
    assert dry("tcp://h:8786", "--name", "w0", "--device", "cpu:1") == \
        ["tcp://h:8786"] + base + ["--name", "w0"]
    assert dry("--name", "w0", "tcp://h:8786", "--no-nanny") == \
        ["tcp://h:8786"] + base + ["--name", "w0", "--no-nanny"]
    assert dry("--scheduler-file", "/tmp/s.json", "--device=cpu:0") == \
        base + ["--scheduler-file", "/tmp/s.json"]
    r = subprocess.run([sys.executable, "-m", "shoal.dask", "worker", "--no-nanny"],
                       env=_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "scheduler" in r.stderr


def test_worker_rejects_a_missing_device(cluster):
    c, _ = cluster
    r = subprocess.run([sys.executable, "-m", "shoal.dask", "worker", c.address,
                        "--device", "cpu:5"], env=_env(), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2
    assert "device(s) [5] do not exist" in r.stderr


# ---- failures ------------------------------------------------------------------------

def test_worker_killed_mid_job(make_cluster, heavy):
    c, client = make_cluster({"k0": "cpu:0", "k1": "cpu:1", "k2": "cpu:0"})
    program, x, ref = heavy
    pids = client.run(os.getpid)
    with shoal.dask.DaskRuntime(client, program, progress=False, chunk_size=8,
                                max_in_flight=9, timeout=JOB_TIMEOUT) as rt:
        got, killed = [], None
        for (y,) in rt.imap([x[i:i + 8] for i in range(0, len(x), 8)]):
            got.append(y)
            if len(got) == 4:
                # Kill the worker that holds the most of this job's chunks.
                held = {w: sum(k.startswith(("shoal-chunk", "tuple-")) for k in keys)
                        for w, keys in client.has_what().items()}
                victim = max(held, key=held.get)
                name = next(n for n, p in c.workers.items() if p.pid == pids[victim])
                c.kill(name)
                killed = (name, held[victim])
        assert killed is not None and killed[1] > 0, killed
        resent = rt.stats["resent"]
        assert len(got) == len(x) // 8  # exactly one result per chunk...
        _close(np.concatenate(got), ref)  # ...in input order
        assert len(client.scheduler_info()["workers"]) == 2
        # The survivors still serve the next job.
        (y,) = rt.run(x[:48])
        _close(y, ref[:48])
    print(f"killed {killed[0]} holding {killed[1]} keys; {resent} chunk(s) resent")


def test_all_workers_gone_fails_clearly(make_cluster, digits):
    c, client = make_cluster({"g0": "cpu:0"})
    program, x, ref = digits
    rt = shoal.dask.DaskRuntime(client, program, progress=False, chunk_size=4,
                                no_workers_timeout=3, timeout=JOB_TIMEOUT)
    c.kill("g0")
    t0 = time.monotonic()
    with pytest.raises(shoal.dask.NoWorkersError, match="no worker") as err:
        rt.run(x)
    assert time.monotonic() - t0 < 30
    assert isinstance(err.value, shoal.Error) and isinstance(err.value, TimeoutError)
    # A stream fails the same way, and a new DaskRuntime does not hang either.
    with pytest.raises(shoal.dask.NoWorkersError):
        list(rt.imap([x[:5]]))
    with pytest.raises(shoal.dask.NoWorkersError):
        shoal.dask.DaskRuntime(client, program, progress=False, no_workers_timeout=1)
    # A new worker: the program (lost with the only worker that held it) is
    # sent again and the same DaskRuntime works.
    c.start_worker("g1", "cpu:1")
    client.wait_for_workers(1, timeout=START_TIMEOUT)
    (y,) = rt.run(x)
    _close(y, ref)
    rt.close()


def test_scheduler_lost_fails_clearly(make_cluster, heavy):
    """The scheduler dies mid-job: a ClusterError saying so once the client
    gives up reconnecting (its timeout), not a hang or a Dask internal."""
    c, _ = make_cluster({"s0": "cpu:0", "s1": "cpu:1"})
    client = c.client(timeout=5)  # reconnects for 5 s, then closes
    program, x, _ = heavy
    rt = shoal.dask.DaskRuntime(client, program, progress=False, chunk_size=8,
                                max_in_flight=4, timeout=JOB_TIMEOUT)
    killed_at = None
    with pytest.raises(shoal.dask.ClusterError, match="lost the scheduler"):
        for i, _ in enumerate(rt.imap(x[j:j + 8] for j in range(0, len(x), 8))):
            if i == 1:
                c.kill_scheduler()
                killed_at = time.monotonic()
    assert killed_at is not None and time.monotonic() - killed_at < 30
    t0 = time.monotonic()
    rt.close()  # nothing to reach: returns at once
    assert time.monotonic() - t0 < 5


def test_tls_on_loopback(make_cluster, digits, tmp_path):
    import cryptography  # noqa: F401  (scripts/install-deps.sh installs it)
    tls = tuple(map(str, shoal.dask.make_certificates(tmp_path / "certs")))
    c, client = make_cluster({"t0": "cpu:0", "t1": "cpu:1"}, tls=tls)
    assert c.address.startswith("tls://127.0.0.1:")
    program, x, ref = digits
    with shoal.dask.DaskRuntime(client, program, progress=False, chunk_size=40,
                                timeout=JOB_TIMEOUT) as rt:
        (y,) = rt.run(x)
    _close(y, ref)
    # The command line over TLS.
    prog, inp, out = tmp_path / "d.shoal", tmp_path / "x.npy", tmp_path / "y.npy"
    program.save(str(prog))
    np.save(inp, x[:50])
    r = subprocess.run([sys.executable, "-m", "shoal.dask", "run", "--scheduler", c.address,
                        str(prog), str(inp), "-o", str(out), "--no-progress", "--json",
                        "--tls-ca-file", tls[0], "--tls-cert", tls[1], "--tls-key", tls[2]],
                       env=_env(), capture_output=True, text=True, timeout=JOB_TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["samples"] == 50
    _close(np.load(out), ref[:50])
    # A client whose certificate another CA signed is refused.
    other = tuple(map(str, shoal.dask.make_certificates(tmp_path / "other")))
    with pytest.raises((OSError, TimeoutError), match="(?i)certificate|timed out"):
        distributed.Client(c.address, security=shoal.dask.tls_security(*other), timeout=5)
