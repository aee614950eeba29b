"""A small client for ``shoal serve`` (and any Open Inference Protocol / KServe v2
REST server): the standard library's http.client plus numpy, no native code.

    from shoal.client import Client
    client = Client("http://127.0.0.1:8000")
    (logits,) = client.infer("digits", x)       # x: N x 1 x 8 x 8 float32

Tensors travel with the binary tensor data extension (raw bytes after a JSON
header), not as JSON numbers. infer() returns one numpy array per output, in
the model's output order (or the order of ``outputs=``), like Runtime.run.
One keep-alive connection per thread; a Client may be shared by threads.
"""

import http.client
import json
import threading
import urllib.parse

import numpy as np

__all__ = ["Client", "InferenceServerError"]

_DTYPES = {
    "FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32,
    "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_,
}
_HEADER_LENGTH = "Inference-Header-Content-Length"


class InferenceServerError(Exception):
    """The server answered with an error: ``status`` (400, 404, 413, 503...) and
    the server's message."""

    def __init__(self, status, message):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class Client:
    def __init__(self, url="http://127.0.0.1:8000", timeout=60.0):
        parsed = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        if parsed.scheme != "http":
            raise ValueError(f"only http:// URLs are supported, got {url!r}")
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        self.timeout = timeout
        self._local = threading.local()
        self._metadata = {}

    # -- plumbing ---------------------------------------------------------------
    def _connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def close(self):
        """Closes this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _request(self, method, path, body=None, headers=None, extra=None):
        """Sends one request (body bytes, then the buffers in `extra`) and
        returns (status, headers, body bytes). A reused keep-alive connection
        the server has closed is reopened once (nothing was processed then)."""
        for attempt in (0, 1):
            conn = self._connection()
            reused = conn.sock is not None
            try:
                conn.putrequest(method, path, skip_accept_encoding=True)
                length = (len(body) if body else 0) + sum(memoryview(b).nbytes
                                                          for b in (extra or ()))
                for k, v in (headers or {}).items():
                    conn.putheader(k, v)
                conn.putheader("Content-Length", str(length))
                conn.endheaders(message_body=body)
                for b in extra or ():
                    conn.send(memoryview(b).cast("B"))
                resp = conn.getresponse()
                n = resp.getheader("Content-Length")
                if n is not None:
                    data = bytearray(int(n))
                    view, got = memoryview(data), 0
                    while got < len(data):
                        k = resp.readinto(view[got:])
                        if not k:
                            raise http.client.IncompleteRead(bytes(data[:got]), len(data) - got)
                        got += k
                else:
                    data = bytearray(resp.read())
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                return resp.status, resp, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if not reused or attempt == 1:
                    raise

    def _get_json(self, path, ok=(200,)):
        status, _, data = self._request("GET", path)
        if status not in ok:
            raise InferenceServerError(status, _message(data))
        return status, json.loads(data) if data else None

    # -- the protocol -------------------------------------------------------------
    def live(self):
        return self._request("GET", "/v2/health/live")[0] == 200

    def ready(self):
        return self._request("GET", "/v2/health/ready")[0] == 200

    def model_ready(self, name):
        return self._request("GET", f"/v2/models/{_quote(name)}/ready")[0] == 200

    def server_metadata(self):
        return self._get_json("/v2")[1]

    def model_metadata(self, name):
        if name not in self._metadata:
            self._metadata[name] = self._get_json(f"/v2/models/{_quote(name)}")[1]
        return self._metadata[name]

    def metrics(self):
        """The Prometheus text of GET /metrics."""
        status, _, data = self._request("GET", "/metrics")
        if status != 200:
            raise InferenceServerError(status, _message(data))
        return data.decode()

    def infer(self, name, inputs, outputs=None, request_id=None):
        """Runs model `name` on `inputs`: one array (a one-input model), a
        list in the model's input order, or a dict name -> array; each N x
        (the input's sample shape). Returns a list of arrays, one per output
        (all, or those named in `outputs`), each with N rows."""
        meta = self.model_metadata(name)
        specs = meta["inputs"]
        if isinstance(inputs, dict):
            unknown = set(inputs) - {s["name"] for s in specs}
            if unknown:
                raise ValueError(f"model {name!r} has no input(s) {sorted(unknown)}")
            arrays = [inputs.get(s["name"]) for s in specs]
        elif isinstance(inputs, (list, tuple)):
            arrays = list(inputs)
        else:
            arrays = [inputs]
        if len(arrays) != len(specs) or any(a is None for a in arrays):
            raise ValueError(f"model {name!r} takes {len(specs)} input(s): "
                             f"{[s['name'] for s in specs]}")
        header_inputs, buffers = [], []
        for spec, a in zip(specs, arrays):
            a = np.ascontiguousarray(a, dtype=_DTYPES[spec["datatype"]])
            header_inputs.append({"name": spec["name"], "shape": list(a.shape),
                                  "datatype": spec["datatype"],
                                  "parameters": {"binary_data_size": a.nbytes}})
            buffers.append(a)
        request = {"inputs": header_inputs}
        if request_id is not None:
            request["id"] = str(request_id)
        if outputs is None:
            request["parameters"] = {"binary_data_output": True}
        else:
            request["outputs"] = [{"name": o, "parameters": {"binary_data": True}}
                                  for o in outputs]
        header = json.dumps(request).encode()
        status, resp, data = self._request(
            "POST", f"/v2/models/{_quote(name)}/infer", header,
            {_HEADER_LENGTH: str(len(header)), "Content-Type": "application/octet-stream"},
            buffers)
        if status != 200:
            raise InferenceServerError(status, _message(data))
        return decode_response(data, resp.getheader(_HEADER_LENGTH))


def decode_response(data, header_length=None):
    """The output arrays of an infer response body (JSON, or JSON followed by
    binary data when `header_length` is given)."""
    n = len(data) if header_length is None else int(header_length)
    doc = json.loads(bytes(data[:n]))
    out, offset = [], n
    for o in doc["outputs"]:
        dtype = _DTYPES[o["datatype"]]
        size = (o.get("parameters") or {}).get("binary_data_size")
        if size is None:
            out.append(np.array(o["data"], dtype=dtype).reshape(o["shape"]))
            continue
        out.append(np.frombuffer(data, dtype=dtype, count=size // np.dtype(dtype).itemsize,
                                 offset=offset).reshape(o["shape"]))
        offset += size
    return out


def _message(data):
    try:
        return json.loads(data)["error"]
    except (ValueError, KeyError, TypeError):
        return bytes(data[:200]).decode(errors="replace")


def _quote(name):
    return urllib.parse.quote(name, safe="")
