#!/usr/bin/python3
"""Walkthrough: classify the held-out digits on a Dask cluster with shoal.dask.

The Distributed-PYNQ setup (a dask-scheduler, one dask-worker per board) with
shoal devices in place of boards. Without --scheduler this starts a cluster
of local processes on 127.0.0.1 (a scheduler and one worker per device); with
--scheduler it uses yours, e.g. one started as

    dask-scheduler --host 10.0.0.1                        # port 8786
    shoal worker tcp://10.0.0.1:8786 --device cpu:0       # on each machine,
    shoal worker tcp://10.0.0.1:8786 --device cpu:1       # one per device

Steps: compile the model; connect; DaskRuntime (the program goes to each
worker once and is loaded there once); run() the whole set and check the
accuracy against the labels and the outputs against a local runtime; imap()
a memory-mapped .npy in batches (streaming, bounded memory); show what each
worker holds.

    PYTHONPATH=build/python /usr/bin/python3 examples/dask_cluster.py \\
        [--workers 2] [--scheduler tcp://HOST:8786] [--repeat 20]
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(os.environ.get("SHOAL_BUILD_DIR", os.path.join(ROOT, "build")),
                                "python"))

import shoal  # noqa: E402
import shoal.dask  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scheduler", help="an existing cluster (default: start one here)")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                    help="local workers, one device each (without --scheduler)")
    ap.add_argument("--repeat", type=int, default=20, help="copies of the held-out set")
    ap.add_argument("--tls-ca-file")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--progress", action="store_true", help="tqdm progress bars")
    args = ap.parse_args()

    # 1. Compile (once, anywhere; the program file is what the workers get).
    model_dir = os.path.join(ROOT, "models", "digits")
    program = shoal.compile(os.path.join(model_dir, "digits_cnn.onnx"), shape="8x8x1")
    x = np.load(os.path.join(model_dir, "heldout_x.npy")).astype(np.float32)
    labels = np.load(os.path.join(model_dir, "heldout_y.npy"))
    x, labels = np.concatenate([x] * args.repeat), np.concatenate([labels] * args.repeat)
    print(f"1. compiled {program!r}; {len(x)} samples")

    # 2. A cluster: yours, or local processes (one worker per device).
    local = None
    if args.scheduler:
        from distributed import Client

        security = None
        if args.tls_ca_file:
            security = shoal.dask.tls_security(args.tls_ca_file, args.tls_cert, args.tls_key)
        client = Client(args.scheduler, security=security, timeout=30)
    else:
        from shoal.dask.local import LocalProcessCluster

        n = max(1, args.workers)
        ndev = min(n, len(os.sched_getaffinity(0)))
        local = LocalProcessCluster({f"w{i}": f"cpu:{i % ndev}" for i in range(n)},
                                    env={"SHOAL_CPU_DEVICES": str(ndev)})
        client = local.client()
    print(f"2. scheduler {client.scheduler.address}, "
          f"{len(client.scheduler_info()['workers'])} worker(s)")

    try:
        # 3. The program goes to every worker once and is loaded there once.
        t0 = time.perf_counter()
        rt = shoal.dask.DaskRuntime(client, program, progress=args.progress)
        print(f"3. DaskRuntime ready in {(time.perf_counter() - t0) * 1e3:.0f} ms "
              f"on {len(rt.workers())} worker(s)")

        # 4. One call for the whole set; outputs in input order.
        t0 = time.perf_counter()
        (logits,) = rt.run(x)
        seconds = time.perf_counter() - t0
        accuracy = float((logits.argmax(1) == labels).mean())
        (local_logits,) = shoal.Runtime(program).run(x)
        diff = float(np.abs(logits - local_logits).max())
        print(f"4. run: {len(x)} samples in {seconds:.3f} s ({len(x) / seconds:,.0f}/s, "
              f"{rt.stats['chunks']} chunks); accuracy {accuracy:.4f}; "
              f"max |diff| vs a local runtime {diff:.2g}")

        # 5. Streaming: batches read from a memory-mapped file as they are
        # needed; at most max_in_flight chunks are out at any time.
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "inputs.npy")
            np.save(path, x)
            data = np.load(path, mmap_mode="r")
            batches = (data[i:i + 1000] for i in range(0, len(data), 1000))
            correct = 0
            for b, (out,) in enumerate(rt.imap(batches, chunk_size=250)):
                correct += int((out.argmax(1) == labels[b * 1000:b * 1000 + len(out)]).sum())
            print(f"5. imap: {b + 1} batches streamed, accuracy {correct / len(x):.4f}")

        # 6. What each worker holds: its device, the program loaded once.
        for worker, info in sorted(rt.worker_info().items()):
            print(f"6. {worker}: {info['device']}, loads {info['loads'].get(rt.checksum, 0)}, "
                  f"chunks {info['chunks'].get(rt.checksum, 0)}")
        rt.close()
        return 0 if accuracy > 0.9 and diff < 1e-3 else 1
    finally:
        client.close()
        if local is not None:
            local.close()


if __name__ == "__main__":
    sys.exit(main())
