"""A Dask cluster of local processes on 127.0.0.1, for trials, tests and
benchmarks: a dask-scheduler and one `python -m shoal.dask worker` (or plain
dask-worker) process per device, nothing listening beyond loopback.

    with LocalProcessCluster({"w0": "cpu:0", "w1": "cpu:1"},
                             env={"SHOAL_CPU_DEVICES": "2"}) as cluster:
        client = cluster.client()
        rt = shoal.dask.DaskRuntime(client, program)

Real deployments start the same commands on each machine (docs/DISTRIBUTED.md).
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

__all__ = ["LocalProcessCluster"]


def _package_env(extra):
    env = dict(os.environ)
    pkg = pathlib.Path(__file__).resolve().parents[2]  # the dir holding shoal/
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([str(pkg)] + parts)
    env.pop("SHOAL_DEVICE", None)
    env.update(extra or {})
    return env


def _signal_group(proc, sig):
    """Signals the process group of `proc` (it leads one: start_new_session),
    so that a nanny's worker process goes too. Only while `proc` has not been
    reaped: until then its id (the group's id) cannot be reused."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(proc, grace):
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=grace)


class LocalProcessCluster:
    """workers: {name: SHOAL_DEVICE} (e.g. {"w0": "cpu:0"}; "" = whole host).
    plain: names started as plain `dask-worker` with SHOAL_DEVICE in their
    environment instead of `python -m shoal.dask worker --device`.
    tls: (ca_file, cert_file, key_file) to run everything over tls://.
    env: extra environment of every process (e.g. SHOAL_CPU_DEVICES).
    nanny: start workers under a nanny (restarted if they die).
    directory: logs and worker space (default: a temporary dir, removed).
    idle_timeout: the scheduler exits after this many seconds without work,
        and the workers exit when they lose it (or after 60 s when they
        cannot reach it at start), so that nothing outlives a parent killed
        before close() for long.
    """

    def __init__(self, workers, plain=(), tls=None, env=None, nanny=False,
                 directory=None, start_timeout=60.0, idle_timeout=600.0):
        self.tls = tuple(map(str, tls)) if tls else None
        self.env = dict(env or {})
        self.nanny = nanny
        self.start_timeout = float(start_timeout)
        self.idle_timeout = float(idle_timeout)
        self._own_dir = directory is None
        self.directory = pathlib.Path(directory or tempfile.mkdtemp(prefix="shoal-dask-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.procs = []
        self.scheduler = None  # Popen
        self.workers = {}  # name -> Popen
        self.address = None
        self._clients = []
        try:
            self._start_scheduler()
            for name, device in workers.items():
                self.start_worker(name, device, plain=name in plain)
        except BaseException:
            self.close()
            raise

    def _tls_args(self):
        if not self.tls:
            return []
        ca, cert, key = self.tls
        return ["--tls-ca-file", ca, "--tls-cert", cert, "--tls-key", key]

    def _spawn(self, args, log, env=None):
        with open(self.directory / log, "wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                    env=_package_env({**self.env, **(env or {})}),
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def _start_scheduler(self):
        sched_file = self.directory / "scheduler.json"
        args = [sys.executable, "-m", "distributed.cli.dask_scheduler",
                "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(sched_file),
                "--idle-timeout", f"{self.idle_timeout:g}s"]
        if self.tls:
            args += ["--protocol", "tls"] + self._tls_args()
        proc = self.scheduler = self._spawn(args, "scheduler.log")
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("dask-scheduler exited:\n" + self.log("scheduler"))
            try:
                self.address = json.loads(sched_file.read_text())["address"]
                return
            except (OSError, ValueError, KeyError):
                time.sleep(0.05)
        raise RuntimeError("dask-scheduler did not start:\n" + self.log("scheduler"))

    def start_worker(self, name, device, plain=False):
        """Starts one more worker (its process id is workers[name].pid)."""
        if name in self.workers:
            raise ValueError(f"worker name '{name}' is taken")
        common = ["--nthreads", "1", "--name", name, "--host", "127.0.0.1",
                  "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                  "--local-directory", str(self.directory / name),
                  "--death-timeout", "60", "--nanny" if self.nanny else "--no-nanny"]
        common += self._tls_args()
        if plain:
            args = [sys.executable, "-m", "distributed.cli.dask_worker", self.address]
            env = {"SHOAL_DEVICE": device}
        else:
            args = [sys.executable, "-m", "shoal.dask", "worker", self.address,
                    "--device", device]
            env = None
        self.workers[name] = self._spawn(args + common, f"{name}.log", env)

    def security(self):
        if not self.tls:
            return None
        from .tls import tls_security

        return tls_security(*self.tls)

    def client(self, n_workers=None, timeout=None, **kwargs):
        """A distributed.Client, once n_workers (default: all) have joined."""
        from distributed import Client

        timeout = self.start_timeout if timeout is None else timeout
        client = Client(self.address, security=self.security(), timeout=timeout, **kwargs)
        self._clients.append(client)
        n = len(self.workers) if n_workers is None else n_workers
        try:
            client.wait_for_workers(n, timeout=timeout)
        except Exception as e:
            raise RuntimeError(f"{n} worker(s) did not join: {e}\n" + "\n".join(
                self.log(w) for w in self.workers)) from None
        return client

    def kill(self, name, sig=signal.SIGKILL):
        """Kills a worker process (SIGKILL: no goodbye to the scheduler)."""
        proc = self.workers[name]
        if proc.poll() is None:
            os.kill(proc.pid, sig)
        proc.wait(timeout=30)

    def kill_scheduler(self, sig=signal.SIGKILL):
        """Kills the scheduler process (its workers stop as they lose it)."""
        if self.scheduler.poll() is None:
            os.kill(self.scheduler.pid, sig)
        self.scheduler.wait(timeout=30)

    def running(self):
        """The processes of this cluster still running (none after close())."""
        return [p for p in self.procs if p.poll() is None]

    def log(self, name):
        try:
            text = (self.directory / f"{name}.log").read_text(errors="replace")
            return f"--- {name} ---\n{text[-3000:]}"
        except OSError:
            return ""

    def close(self, grace=5.0):
        for c in self._clients:
            try:
                c.close(timeout=grace)
            except Exception:
                pass
        self._clients = []
        for proc in reversed(self.procs):  # workers first, then the scheduler
            _stop(proc, grace)
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
