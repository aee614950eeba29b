#!/usr/bin/python3
"""`shoal serve` and its Python client, shoal.client.Client.

Compiles the digits CNN, starts `shoal serve` on a free loopback port, sends
the held-out digits from 8 threads, one image per request (the server merges
concurrent requests into batches), and checks every answer against one
Runtime.run of all images. Then SIGTERM: the server drains and exits 0.
Exits 1 on a mismatch.

The client is the standard library plus numpy (the binary tensor extension of
the Open Inference Protocol):

    from shoal.client import Client
    (logits,) = Client("http://127.0.0.1:8000").infer("digits", x)

Run from a build:  PYTHONPATH=build/python /usr/bin/python3 examples/serve_client.py
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
MODEL_DIR = os.path.join(SOURCE_DIR, "models", "digits")
BUILD_DIR = os.environ.get("SHOAL_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")

try:
    import shoal
except ImportError:
    sys.path.insert(0, os.path.join(BUILD_DIR, "python"))
    import shoal
from shoal.client import Client

THREADS = 8


def start_server(program):
    """shoal serve on a free port; returns the process and its URL."""
    proc = subprocess.Popen([os.path.join(BUILD_DIR, "bin", "shoal"), "serve",
                             "--model", f"digits={program}", "--port", "0"],
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        print(line, end="")
        m = re.search(r"ready: listening on (http://\S+)", line)
        if m:
            # Keep reading its log so that the pipe never fills.
            threading.Thread(target=lambda: [print(l, end="") for l in proc.stderr],
                             daemon=True).start()
            return proc, m.group(1)
    raise RuntimeError(f"shoal serve exited with {proc.wait()}")


def main():
    x = np.load(os.path.join(MODEL_DIR, "heldout_x.npy")).astype(np.float32)
    labels = np.load(os.path.join(MODEL_DIR, "heldout_y.npy"))
    with tempfile.TemporaryDirectory() as tmp:
        program = os.path.join(tmp, "digits.shoal")
        shoal.compile(os.path.join(MODEL_DIR, "digits_cnn.onnx"), shape="8x8x1").save(program)
        (reference,) = shoal.Runtime(shoal.load(program)).run(x)
        proc, url = start_server(program)
        try:
            client = Client(url)
            logits = np.full((len(x), 10), np.nan, np.float32)

            def work(k):
                for i in range(k, len(x), THREADS):
                    (logits[i:i + 1],) = client.infer("digits", x[i:i + 1])

            t0 = time.perf_counter()
            threads = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            seconds = time.perf_counter() - t0
            metrics = client.metrics()
        finally:
            proc.send_signal(signal.SIGTERM)
            status = proc.wait(60)
    count = re.search(r'^nv_inference_count\{.*\} (\S+)$', metrics, re.M).group(1)
    execs = re.search(r'^nv_inference_exec_count\{.*\} (\S+)$', metrics, re.M).group(1)
    print(f"{len(x)} requests of one image from {THREADS} threads in {seconds * 1e3:.0f} ms; "
          f"the server ran {float(count):.0f} images in {float(execs):.0f} batches")
    accuracy = float((logits.argmax(1) == labels).mean())
    print(f"accuracy {100 * accuracy:.2f}%; server exit status {status}")
    if not np.array_equal(logits, reference) or status != 0:
        print("FAIL: answers differ from Runtime.run, or the server did not exit 0",
              file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
