"""Helpers for the `shoal serve` tests: a real server process on a free
loopback port (--port 0; the port is read from its "ready" line), raw HTTP,
and a parser for the Prometheus text format."""

import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time


class ServerProcess:
    """`shoal serve ARGS --port 0`, started and waited for until ready."""

    def __init__(self, cli, *args, env=None, timeout=180):
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen([str(cli), "serve", *map(str, args), "--port", "0"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, env=e)
        self.lines = []
        self._ready = threading.Event()
        self.port = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self._reader.join(5)
                raise AssertionError(f"shoal serve did not become ready (exit "
                                     f"{self.proc.returncode}):\n{self.log}")
        self.url = f"http://127.0.0.1:{self.port}"

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            m = re.search(r"ready: listening on http://[^:]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                self._ready.set()

    @property
    def log(self):
        return "\n".join(self.lines)

    def stop(self, sig=signal.SIGTERM, timeout=120):
        """Sends `sig` and returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"shoal serve did not exit after {sig!r}:\n{self.log}")
        self._reader.join(10)
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def request(port, method, path, body=b"", headers=None, timeout=60):
    """One request on a fresh connection: (status, headers dict, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def infer_json(port, model, inputs, outputs=None, **extra):
    """POST /v2/models/MODEL/infer with JSON tensors: inputs is a list of
    (name, array)."""
    doc = {"inputs": [{"name": n, "shape": list(a.shape), "datatype": "FP32",
                       "data": a.ravel().tolist()} for n, a in inputs]}
    if outputs is not None:
        doc["outputs"] = [{"name": o} for o in outputs]
    doc.update(extra)
    return request(port, "POST", f"/v2/models/{model}/infer", json.dumps(doc).encode(),
                   {"Content-Type": "application/json"})


def error_of(body):
    doc = json.loads(body)
    assert set(doc) == {"error"} and doc["error"], doc
    return doc["error"]


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ([-+0-9.eE]+|NaN|[+-]Inf)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """The Prometheus text format -> {(name, frozenset(labels)): value}, with
    every line checked: HELP/TYPE comments or one sample."""
    samples, types = {}, {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            types[name] = kind
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = frozenset(_LABEL.findall(m.group(3) or ""))
        assert m.group(1) in types, f"sample before its # TYPE: {line!r}"
        samples[(m.group(1), labels)] = float(m.group(4))
    return samples


def model_metrics(text, model):
    """{name: value} of one model's series (labels model=MODEL, version=1)."""
    want = frozenset({("model", model), ("version", "1")})
    return {name: v for (name, labels), v in parse_metrics(text).items() if labels == want}
