"""`shoal serve` end to end: each test starts a real server process on a free
loopback port, drives it with real HTTP clients (http.client, raw sockets and
shoal.client.Client) and stops it.

Covers the Open Inference Protocol endpoints, outputs equal to Runtime.run
(JSON tensors and the binary extension), 32 concurrent clients, dynamic
batching (merging, preferred sizes), bad input (4xx, and the server keeps
serving), overload (503), the drain on SIGTERM, the metrics, the model
repository and per-model devices.
"""

import json
import re
import signal
import socket
import threading
import time

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

import shoal  # noqa: E402
from shoal.client import Client, InferenceServerError  # noqa: E402
from serve_util import (ServerProcess, error_of, infer_json, model_metrics,  # noqa: E402
                        parse_metrics, request)

F = TensorProto.FLOAT
HEADER = "Inference-Header-Content-Length"


@pytest.fixture(scope="module")
def cli(build_dir):
    path = build_dir / "bin" / "shoal"
    if not path.exists():
        pytest.fail(f"{path} is missing (build first)")
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory, digits_model):
    """digits.shoal (input [N,1,8,8] -> logits [N,10]) and multi.onnx (inputs
    a, b [N,2,3] -> s = a + b [N,2,3], t = ReduceSum(b, axis 2) [N,2])."""
    d = tmp_path_factory.mktemp("serve")
    shoal.compile(str(digits_model), shape="8x8x1").save(str(d / "digits.shoal"))
    g = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["s"]),
         helper.make_node("ReduceSum", ["b"], ["t"], axes=[2], keepdims=0)],
        "multi",
        [helper.make_tensor_value_info("a", F, [1, 2, 3]),
         helper.make_tensor_value_info("b", F, [1, 2, 3])],
        [helper.make_tensor_value_info("s", F, [1, 2, 3]),
         helper.make_tensor_value_info("t", F, [1, 2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 12)])
    onnx.save(m, str(d / "multi.onnx"))
    return d


@pytest.fixture(scope="module")
def digits_x(source_dir):
    return np.load(source_dir / "models" / "digits" / "heldout_x.npy").astype(np.float32)


@pytest.fixture(scope="module")
def digits_ref(models):
    rt = shoal.Runtime(shoal.load(str(models / "digits.shoal")))
    return lambda x: rt.run(x)[0]


@pytest.fixture(scope="module")
def server(cli, models):
    """One server with both models, shared by the tests that do not stop it."""
    with ServerProcess(cli, "--model", f"digits={models / 'digits.shoal'}",
                       "--model", f"multi={models / 'multi.onnx'}",
                       "--max-body-mb", "1") as s:
        yield s
        assert s.stop() == 0, s.log


def metrics_of(port, model):
    status, _, body = request(port, "GET", "/metrics")
    assert status == 200
    return model_metrics(body.decode(), model)


# ------------------------------------------------------------ endpoints ----

def test_health_and_metadata(server):
    p = server.port
    assert request(p, "GET", "/v2/health/live")[:1] == (200,)
    status, headers, body = request(p, "GET", "/v2/health/ready")
    assert status == 200 and json.loads(body) == {"ready": True}
    assert headers["content-type"] == "application/json"
    meta = json.loads(request(p, "GET", "/v2")[2])
    assert meta["name"] == "shoal" and "binary_tensor_data" in meta["extensions"]
    assert meta["version"] == shoal.__version__
    digits = json.loads(request(p, "GET", "/v2/models/digits")[2])
    assert digits["name"] == "digits"
    assert digits["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert digits["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
    multi = json.loads(request(p, "GET", "/v2/models/multi")[2])
    assert [t["name"] for t in multi["inputs"]] == ["a", "b"]
    assert [t["shape"] for t in multi["outputs"]] == [[-1, 2, 3], [-1, 2]]
    assert request(p, "GET", "/v2/models/digits/ready")[0] == 200
    for path in ("/v2/models/nope", "/v2/models/nope/ready"):
        status, _, body = request(p, "GET", path)
        assert status == 404 and "unknown model 'nope'" in error_of(body)
    status, _, body = request(p, "GET", "/v3/whatever")
    assert status == 404 and "no endpoint" in error_of(body)


def test_startup_log_names_devices_plan_and_endpoint(server):
    log = server.log
    assert re.search(r"model 'digits' \(.*digits\.shoal\): \d+ devices? \[[a-z0-9:,]+\]", log), log
    assert f"POST http://127.0.0.1:{server.port}/v2/models/digits/infer" in log
    assert f"POST http://127.0.0.1:{server.port}/v2/models/multi/infer" in log
    assert "dynamic batching: up to" in log
    assert "compiling" in log and "multi.onnx" in log  # the ONNX model compiled at start


# ------------------------------------------------------------ outputs ----

def test_outputs_equal_runtime_run(server, models, digits_x, digits_ref):
    x = digits_x[:7]
    want = digits_ref(x)
    client = Client(server.url)
    (got,) = client.infer("digits", x)  # the binary extension
    assert got.dtype == np.float32 and got.shape == (7, 10)
    np.testing.assert_array_equal(got, want)
    status, _, body = infer_json(server.port, "digits", [("input", x)])  # JSON tensors
    assert status == 200, body
    doc = json.loads(body)
    (out,) = doc["outputs"]
    assert out["name"] == "logits" and out["datatype"] == "FP32" and out["shape"] == [7, 10]
    np.testing.assert_array_equal(np.array(out["data"], np.float32).reshape(7, 10), want)

    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 2, 3)).astype(np.float32)
    b = rng.standard_normal((3, 2, 3)).astype(np.float32)
    s_want, t_want = shoal.Runtime(shoal.compile(str(models / "multi.onnx"))).run([a, b])
    s, t = client.infer("multi", {"b": b, "a": a})
    np.testing.assert_array_equal(s, s_want)
    np.testing.assert_array_equal(t, t_want)
    (t_only,) = client.infer("multi", [a, b], outputs=["t"])
    np.testing.assert_array_equal(t_only, t_want)
    # JSON: nested data, the id echoed, one output asked for as binary.
    doc = {"id": "req-7",
           "inputs": [{"name": "a", "shape": [3, 2, 3], "datatype": "FP32", "data": a.tolist()},
                      {"name": "b", "shape": [3, 2, 3], "datatype": "FP32",
                       "data": b.ravel().tolist()}],
           "outputs": [{"name": "t", "parameters": {"binary_data": True}}, {"name": "s"}]}
    status, headers, body = request(server.port, "POST", "/v2/models/multi/infer",
                                    json.dumps(doc).encode())
    assert status == 200, body
    n = int(headers[HEADER.lower()])
    head = json.loads(body[:n])
    assert head["id"] == "req-7" and head["model_name"] == "multi"
    assert [o["name"] for o in head["outputs"]] == ["t", "s"]
    assert head["outputs"][0]["parameters"]["binary_data_size"] == t_want.nbytes == len(body) - n
    np.testing.assert_array_equal(np.frombuffer(body[n:], np.float32).reshape(3, 2), t_want)
    np.testing.assert_array_equal(np.array(head["outputs"][1]["data"], np.float32), s_want.ravel())


def test_32_concurrent_clients_get_their_own_answers(server, digits_x, digits_ref):
    clients, per_client = 32, 50
    rng = np.random.default_rng(1)
    # Each request its own input: a held-out digit with its own noise.
    picks = rng.integers(0, len(digits_x), size=(clients, per_client))
    noise = rng.standard_normal((clients, per_client, 1, 1, 8, 8)).astype(np.float32)
    xs = digits_x[picks][:, :, None] + noise  # clients x per_client x 1 x 1 x 8 x 8
    want = digits_ref(xs.reshape(-1, 1, 8, 8)).reshape(clients, per_client, 10)
    before = metrics_of(server.port, "digits")
    client = Client(server.url)
    errors = []

    def run(c):
        try:
            for r in range(per_client):
                (y,) = client.infer("digits", xs[c, r], request_id=f"{c}-{r}")
                np.testing.assert_array_equal(y[0], want[c, r], err_msg=f"client {c} request {r}")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    after = metrics_of(server.port, "digits")
    n = clients * per_client
    assert after["nv_inference_request_success"] - before["nv_inference_request_success"] == n
    assert after["nv_inference_count"] - before["nv_inference_count"] == n
    execs = after["nv_inference_exec_count"] - before["nv_inference_exec_count"]
    assert 1 <= execs <= n


# ------------------------------------------------------------ bad input ----

def raw_http(port, data, shutdown_write=True, timeout=30):
    """Sends raw bytes on a fresh connection; returns what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if shutdown_write:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)


def test_bad_requests_get_a_clear_4xx_and_the_server_keeps_serving(server, digits_x, digits_ref):
    p = server.port
    x = digits_x[:1]
    good_header = json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 8, 8],
                                          "datatype": "FP32",
                                          "parameters": {"binary_data_size": 256}}]}).encode()

    def infer(body, headers=None, model="digits"):
        return request(p, "POST", f"/v2/models/{model}/infer", body, headers)

    def expect(resp, status, *words):
        got, _, body = resp
        assert got == status, (got, body)
        message = error_of(body)
        for w in words:
            assert w in message, (w, message)
        # ... and the server still answers a good request correctly.
        (y,) = Client(f"http://127.0.0.1:{p}").infer("digits", x)
        np.testing.assert_array_equal(y, digits_ref(x))

    before = metrics_of(p, "digits")
    expect(infer(b'{"inputs": [ {"name": '), 400, "malformed JSON")
    expect(infer(b'[1, 2]'), 400, "JSON object")
    expect(infer(b'{"inputs": 3}'), 400, '"inputs"')
    expect(infer_json(p, "digits", [("input", np.zeros((1, 1, 8, 7), np.float32))]), 400,
           "input 'input' must have shape [N,1,8,8]", "[1,1,8,7]")
    expect(infer_json(p, "digits", [("input", np.zeros((1, 64), np.float32))]), 400, "shape")
    expect(infer_json(p, "digits", [("wrong", x)]), 400, "unknown input 'wrong'", "'input'")
    expect(infer_json(p, "digits", [("input", x)], outputs=["nope"]), 400, "unknown output 'nope'")
    doc = {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "INT64",
                       "data": [0] * 64}]}
    expect(infer(json.dumps(doc).encode()), 400, "datatype FP32, got INT64")
    doc["inputs"][0]["datatype"] = "FP16"
    expect(infer(json.dumps(doc).encode()), 400, "unsupported datatype 'FP16'")
    doc["inputs"][0].update(datatype="FP32", data=[0] * 63)
    expect(infer(json.dumps(doc).encode()), 400, "63 elements", "needs 64")
    doc["inputs"][0]["data"] = ["a"] * 64
    expect(infer(json.dumps(doc).encode()), 400, "not a valid FP32")
    expect(infer_json(p, "nope", [("input", x)]), 404, "unknown model 'nope'")
    # The binary extension: truncated payload, sizes that disagree, a
    # header length past the body or inside the JSON.
    expect(infer(good_header + x.tobytes()[:100], {HEADER: str(len(good_header))}), 400,
           "truncated")
    expect(infer(good_header + x.tobytes() + b"xx", {HEADER: str(len(good_header))}), 400,
           "258 bytes", "add up to 256")
    expect(infer(good_header + x.tobytes(), {HEADER: str(len(good_header) + 1000)}), 400,
           HEADER)
    expect(infer(good_header + x.tobytes(), {HEADER: str(len(good_header) - 5)}), 400,
           "malformed JSON")
    expect(infer(good_header + x.tobytes(), {HEADER: "12abc"}), 400, HEADER)
    expect(infer(good_header + x.tobytes()), 400, "no binary data")
    wrong_size = good_header.replace(b"256", b"255")
    expect(infer(wrong_size + x.tobytes()[:255], {HEADER: str(len(wrong_size))}), 400,
           "binary_data_size", "needs 256")
    # An oversized body (the limit is 1 MiB here) is refused before it is read.
    expect(infer(b" " * (2 << 20)), 413, "larger than the server's limit")
    after = metrics_of(p, "digits")
    bad_for_digits = 18  # all of the above but the unknown model and the 413 (refused
    # by the HTTP layer before any model sees it)
    assert after["nv_inference_request_failure"] - before["nv_inference_request_failure"] == \
        bad_for_digits

    # A body shorter than its Content-Length: the server answers 400 (or
    # closes), never hangs or dies, and keeps serving.
    reply = raw_http(p, b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Length: 1000\r\n\r\n{\"inputs\": []}")
    assert reply == b"" or reply.startswith(b"HTTP/1.1 400"), reply[:200]
    reply = raw_http(p, b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Length: -5\r\n\r\n{}")
    assert reply == b"" or reply.startswith(b"HTTP/1.1 4"), reply[:200]
    reply = raw_http(p, b"GARBAGE\r\n\r\n")
    assert reply == b"" or reply.startswith(b"HTTP/1.1 4"), reply[:200]
    expect(infer(b"{}"), 400, '"inputs"')


def test_client_raises_the_servers_error(server):
    client = Client(server.url)
    with pytest.raises(InferenceServerError) as e:
        client.infer("digits", np.zeros((1, 1, 8, 9), np.float32))
    assert e.value.status == 400 and "must have shape" in e.value.message
    with pytest.raises(InferenceServerError) as e:
        client.model_metadata("nope")
    assert e.value.status == 404


# ------------------------------------------------------------ metrics ----

def test_metrics_parse_and_add_up(cli, models, digits_x):
    with ServerProcess(cli, "--model", f"digits={models / 'digits.shoal'}",
                       "--max-batch-size", "4") as s:
        status, headers, body = request(s.port, "GET", "/metrics")
        assert status == 200 and headers["content-type"].startswith("text/plain")
        m = model_metrics(body.decode(), "digits")
        names = ["nv_inference_request_success", "nv_inference_request_failure",
                 "nv_inference_count", "nv_inference_exec_count",
                 "nv_inference_request_duration_us", "nv_inference_queue_duration_us",
                 "nv_inference_compute_input_duration_us",
                 "nv_inference_compute_infer_duration_us",
                 "nv_inference_compute_output_duration_us",
                 "nv_inference_pending_request_count"]
        assert set(m) == set(names) and all(v == 0 for v in m.values()), m
        client = Client(s.url)
        sizes = [1, 3, 2, 1, 5, 1]
        for n in sizes:
            client.infer("digits", digits_x[:n])
        threads = [threading.Thread(target=lambda: client.infer("digits", digits_x[:1]))
                   for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for _ in range(3):
            with pytest.raises(InferenceServerError):
                client.infer("digits", np.zeros((1, 2), np.float32))
        text = request(s.port, "GET", "/metrics")[2].decode()
        parse_metrics(text)  # every line well-formed
        assert "# TYPE nv_inference_request_success counter" in text
        assert "# TYPE nv_inference_pending_request_count gauge" in text
        m = model_metrics(text, "digits")
        requests = len(sizes) + 8
        assert m["nv_inference_request_success"] == requests
        assert m["nv_inference_request_failure"] == 3
        assert m["nv_inference_count"] == sum(sizes) + 8
        # The six sequential requests run one by one (5 samples exceed max 4:
        # alone too), the eight concurrent ones in 2 to 8 batches.
        assert 6 + 2 <= m["nv_inference_exec_count"] <= requests
        compute = (m["nv_inference_compute_input_duration_us"] +
                   m["nv_inference_compute_infer_duration_us"] +
                   m["nv_inference_compute_output_duration_us"])
        assert m["nv_inference_compute_infer_duration_us"] > 0
        assert m["nv_inference_request_duration_us"] >= m["nv_inference_queue_duration_us"] + compute
        assert m["nv_inference_pending_request_count"] == 0
        assert s.stop() == 0


# ------------------------------------------------------------ batching ----

def concurrently(fn, args):
    results = [None] * len(args)

    def run(i):
        try:
            results[i] = fn(*args[i])
        except Exception as e:  # noqa: BLE001 - returned to the caller
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_dynamic_batching_merges_requests_and_splits_outputs(cli, models, digits_x, digits_ref):
    # A long queue delay: the batch goes when it is full (5 samples), which
    # the three requests make together: one execution.
    with ServerProcess(cli, "--model", f"digits={models / 'digits.shoal'}",
                       "--max-batch-size", "5", "--max-queue-delay-us", "60000000") as s:
        client = Client(s.url)
        parts = [digits_x[0:2], digits_x[10:13]]
        got = concurrently(lambda x: client.infer("digits", x)[0], [(p,) for p in parts])
        for x, y in zip(parts, got):
            assert not isinstance(y, Exception), y
            np.testing.assert_array_equal(y, digits_ref(x))
        m = metrics_of(s.port, "digits")
        assert m["nv_inference_exec_count"] == 1 and m["nv_inference_count"] == 5
        assert s.stop() == 0


def test_preferred_batch_size_goes_without_waiting(cli, models, digits_x, digits_ref):
    # Preferred size 2 of max 8: two requests go at once, long before the
    # 60 s delay (the client's 30 s timeout would fail the test otherwise).
    with ServerProcess(cli, "--model", f"digits={models / 'digits.shoal'}",
                       "--max-batch-size", "8", "--preferred-batch-sizes", "2",
                       "--max-queue-delay-us", "60000000") as s:
        client = Client(s.url, timeout=30)
        got = concurrently(lambda i: client.infer("digits", digits_x[i:i + 1])[0],
                           [(0,), (1,)])
        for i, y in enumerate(got):
            assert not isinstance(y, Exception), y
            np.testing.assert_array_equal(y, digits_ref(digits_x[i:i + 1]))
        m = metrics_of(s.port, "digits")
        assert m["nv_inference_exec_count"] == 1 and m["nv_inference_count"] == 2
        assert s.stop() == 0


def wait_pending(port, model, n, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics_of(port, model)["nv_inference_pending_request_count"] == n:
            return
        time.sleep(0.02)
    raise AssertionError(f"{model}: {n} pending requests expected")


# ------------------------------------------------------------ lifecycle ----

def test_overload_is_503_and_sigterm_drains_every_accepted_request(cli, models, digits_x,
                                                                    digits_ref):
    # The queue holds 3 requests; a batch waits up to 60 s to fill to 8, so
    # the three stay queued until SIGTERM flushes them.
    with ServerProcess(cli, "--model", f"digits={models / 'digits.shoal'}",
                       "--queue-capacity", "3", "--max-batch-size", "8",
                       "--max-queue-delay-us", "60000000") as s:
        client = Client(s.url, timeout=120)
        results = [None] * 3

        def send(i):
            try:
                results[i] = client.infer("digits", digits_x[i:i + 1])[0]
            except Exception as e:  # noqa: BLE001 - checked below
                results[i] = e

        threads = [threading.Thread(target=send, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        wait_pending(s.port, "digits", 3)
        t0 = time.monotonic()
        with pytest.raises(InferenceServerError) as e:
            client.infer("digits", digits_x[:1])
        assert e.value.status == 503 and "overloaded" in e.value.message
        assert time.monotonic() - t0 < 30  # at once, not after the queue delay
        assert metrics_of(s.port, "digits")["nv_inference_request_failure"] == 1

        assert s.stop(signal.SIGTERM) == 0, s.log
        for t in threads:
            t.join(60)
        for i, y in enumerate(results):
            assert not isinstance(y, Exception), f"request {i} was lost: {y!r}\n{s.log}"
            np.testing.assert_array_equal(y, digits_ref(digits_x[i:i + 1]))
        assert "draining: 3 request(s) in flight" in s.log
        assert "drained; stopped" in s.log
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", s.port), timeout=5).close()


def test_sigint_also_drains_and_exits_0(cli, models):
    with ServerProcess(cli, "--model", f"digits={models / 'digits.shoal'}") as s:
        assert Client(s.url).ready()
        assert s.stop(signal.SIGINT) == 0
        assert "SIGINT: shutting down" in s.log


# ------------------------------------------------------------ configuration ----

def test_model_repository_configs_and_devices(cli, models, tmp_path, digits_x, digits_ref):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "left.shoal").write_bytes((models / "digits.shoal").read_bytes())
    (repo / "right.shoal").write_bytes((models / "digits.shoal").read_bytes())
    (repo / "right.json").write_text(json.dumps(
        {"max_batch_size": 3, "max_queue_delay_us": 100, "preferred_batch_sizes": [2, 3],
         "queue_capacity": 7, "instances": 1}))
    (repo / "notes.txt").write_text("not a model")
    # Two devices: each model gets its own.
    with ServerProcess(cli, "--model-repository", repo, env={"SHOAL_CPU_DEVICES": "2"}) as s:
        log = s.log
        left = next(line for line in s.lines if "model 'left' (" in line)
        right = next(line for line in s.lines if "model 'right' (" in line)
        assert "1 device [cpu:0] (owned)" in left, left
        assert "1 device [cpu:1] (owned)" in right, right
        assert "up to 3 samples, queue delay 100 us, preferred sizes 2,3, queue capacity 7, " \
               "1 batch at once" in right, right
        client = Client(s.url)
        for name in ("left", "right"):
            (y,) = client.infer(name, digits_x[:4])
            np.testing.assert_array_equal(y, digits_ref(digits_x[:4]))
        assert "notes" not in log
        assert s.stop() == 0


def test_bad_command_lines_and_configs(cli, models, tmp_path):
    import subprocess

    def serve(*args):
        return subprocess.run([str(cli), "serve", *map(str, args), "--port", "0"],
                              capture_output=True, text=True, timeout=120)

    r = serve()
    assert r.returncode == 2 and "at least one --model" in r.stderr
    r = serve("--model", "digits")
    assert r.returncode == 2 and "NAME=VALUE" in r.stderr
    r = serve("--model", f"d={tmp_path / 'missing.shoal'}")
    assert r.returncode == 1 and "missing.shoal" in r.stderr
    cfg = tmp_path / "c.json"
    cfg.write_text('{"max_batch_size": "eight"}')
    r = serve("--model", f"d={models / 'digits.shoal'}", "--model-config", f"d={cfg}")
    assert r.returncode == 1 and "max_batch_size" in r.stderr
    cfg.write_text('{"max_batch": 8}')
    r = serve("--model", f"d={models / 'digits.shoal'}", "--model-config", f"d={cfg}")
    assert r.returncode == 1 and "unknown key \"max_batch\"" in r.stderr
    r = serve("--model", f"d={models / 'digits.shoal'}", "--model", f"d={models / 'digits.shoal'}")
    assert r.returncode == 1 and "given twice" in r.stderr
    r = serve("--model", f"d={models / 'digits.shoal'}", "--preferred-batch-sizes", "16",
              "--max-batch-size", "8")
    assert r.returncode == 1 and "preferred batch size 16 exceeds" in r.stderr
