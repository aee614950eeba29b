#!/usr/bin/python3
"""shoal.dask: time to classify a data set against the number of workers.

The Distributed-PYNQ experiment (../shared/seeds/004_*.txt) redone with
shoal: a dask-scheduler and 1..N workers (one per device, all local processes
on 127.0.0.1), classifying the held-out digits repeated to ~20k samples.

For each worker count it times
  * shoal.dask.DaskRuntime.run (program sent and loaded once per worker,
    chunks scattered and gathered in order),
  * the naive pattern of the PYNQ notebook: one chunk per worker, scatter +
    map + gather, the engine rebuilt (program loaded) inside every task,
  * the same naive pattern with DaskRuntime's chunk count,
against a single local shoal.Runtime on one device (efficiency = speedup /
workers). At N workers it also sweeps the chunk size (per-chunk overhead =
the slope of time against chunks) and measures how fast numpy buffers travel
(scatter: out of band, no copy; a task argument: pickled in band through the
scheduler).

Writes DIR/dask_bench.json, DIR/dask_bench.md and DIR/dask_workers.png.

    PYTHONPATH=build/python /usr/bin/python3 bench/dask_bench.py \\
        [--workers 2] [--samples 20000] [--repeats 5] [--model digits|heavy]
"""

import argparse
import json
import os
import platform
import statistics
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
from shoal.dask.local import LocalProcessCluster  # noqa: E402

sys.path.insert(0, HERE)
import run_bench as rb  # noqa: E402  (machine_info)


# ---- tasks of the naive pattern (defined in __main__: pickled by value) -------

def naive_classify(program_path, x):
    """The PYNQ notebook's task: build the classifier, then classify."""
    import shoal
    import shoal.dask

    rt = shoal.Runtime(shoal.load(program_path), devices=shoal.dask.worker_device())
    return rt.run(x)[0]


def nbytes_of(arrays):
    return sum(a.nbytes for a in arrays)


def echo(a):
    return a


# ---- data ---------------------------------------------------------------------

def heavy_model(hidden=2048):
    """A synthetic CNN with a big classifier (~17 MB of weights, ~10 MFLOP a
    sample, ~20x the digits CNN): what rebuilding the engine per task costs
    shows, and compute outweighs dispatch."""
    import onnx
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)

    def param(name, *shape, scale=None):
        a = rng.standard_normal(shape) * (scale if scale else 1 / np.sqrt(np.prod(shape[1:])))
        inits.append(numpy_helper.from_array(a.astype(np.float32), name))
        return name

    inits, nodes, prev, cin = [], [], "x", 1
    for i in range(2):
        nodes += [helper.make_node("Conv", [prev, param(f"w{i}", 32, cin, 3, 3),
                                            param(f"b{i}", 32, scale=0.1)], [f"c{i}"],
                                   pads=[1] * 4),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        prev, cin = f"r{i}", 32
    nodes.append(helper.make_node("Flatten", [prev], ["f"]))
    nodes += [helper.make_node("Gemm", ["f", param("g0", hidden, 32 * 64),
                                        param("h0", hidden, scale=0.1)], ["d0"], transB=1),
              helper.make_node("Relu", ["d0"], ["e0"]),
              helper.make_node("Gemm", ["e0", param("g1", 10, hidden),
                                        param("h1", 10, scale=0.1)], ["y"], transB=1)]
    graph = helper.make_graph(
        nodes, "heavy", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 10])], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def load_data(samples, model):
    d = os.path.join(ROOT, "models", "digits")
    x = np.load(os.path.join(d, "heldout_x.npy")).astype(np.float32)
    reps = max(1, round(samples / len(x)))
    x = np.ascontiguousarray(np.concatenate([x] * reps))
    source = os.path.join(d, "digits_cnn.onnx") if model == "digits" else heavy_model()
    return x, shoal.compile(source, shape="8x8x1")


# ---- timing helpers -----------------------------------------------------------

def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"best": min(times), "median": statistics.median(times), "all": times}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_busy(interval=1.0):
    """Fraction of the host's CPU time spent busy over `interval` (/proc/stat)."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait

    t0, i0 = sample()
    time.sleep(interval)
    t1, i1 = sample()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def wait_for_quiet(max_wait, threshold=0.2):
    """Waits up to max_wait s for other work on the machine to stop (CPU use
    under threshold with none of ours running); returns the last reading."""
    deadline = time.monotonic() + max_wait
    busy = cpu_busy()
    while busy > threshold and time.monotonic() < deadline:
        print(f"  machine {busy:.0%} busy: waiting", file=sys.stderr, flush=True)
        time.sleep(5)
        busy = cpu_busy()
    return busy


def interleaved(fns, repeats):
    """timed() for several functions, taking turns each repeat."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for t, fn in zip(times, fns):
            t0 = time.perf_counter()
            fn()
            t.append(time.perf_counter() - t0)
    return [{"best": min(t), "median": statistics.median(t), "all": t} for t in times]


def local_baseline(program, x, devices, repeats):
    rt = shoal.Runtime(program, devices=devices)
    rt.run(x[:64])
    (ref,) = rt.run(x)
    return timed(lambda: rt.run(x), repeats), ref


def naive_job(client, program_path, x, chunks):
    parts = np.array_split(x, chunks)
    data = client.scatter(parts, hash=False)
    futures = client.map(naive_classify, [program_path] * len(parts), data, pure=False)
    return np.concatenate(client.gather(futures))


def transport(client, worker, cluster, mib=64, repeats=3):
    """MB/s of numpy buffers client -> worker: scattered (through the
    scheduler, and straight to the worker) vs as a task argument, and back (a
    result gathered)."""
    a = np.random.default_rng(0).standard_normal((mib << 20) // 4).astype(np.float32)
    out = {"bytes": a.nbytes}

    def scatter():
        f = client.scatter(a, workers=[worker], hash=False)
        assert client.submit(nbytes_of, [f], pure=False).result() == a.nbytes
        f.release()

    def argument():
        assert client.submit(nbytes_of, [a], pure=False, workers=[worker]).result() == a.nbytes

    direct = cluster.client(direct_to_workers=True)

    def scatter_direct():
        f = direct.scatter(a, workers=[worker], hash=False)
        assert direct.submit(nbytes_of, [f], pure=False).result() == a.nbytes
        f.release()

    f = client.scatter(a, workers=[worker], hash=False)

    def gather():
        assert client.submit(echo, f, pure=False).result().nbytes == a.nbytes

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Large object ... in task graph": the point
        for name, fn in (("scatter", scatter), ("scatter_direct", scatter_direct),
                         ("task_argument", argument),
                         ("gather_result", gather)):
            t = timed(fn, repeats)
            out[name] = {"best_s": t["best"], "MB_per_s": a.nbytes / t["best"] / 1e6}
    f.release()
    direct.close()
    # No copy on the way out: the frame Dask sends is the array's own memory.
    from distributed.protocol import serialize

    _, frames = serialize((a,))
    out["scatter_frames_share_array_memory"] = any(
        isinstance(fr, memoryview) and np.shares_memory(np.asarray(fr), a) for fr in frames)
    return out


# ---- main -----------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=None,
                    help="largest worker count (default: the host's cores)")
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--model", choices=("digits", "heavy"), default="digits")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "dask"))
    ap.add_argument("--no-chart", action="store_true")
    ap.add_argument("--idle-wait", type=float, default=300,
                    help="wait up to this many seconds before each measurement "
                         "while other work keeps the CPU over 20%% busy (300)")
    args = ap.parse_args()

    ncores = len(os.sched_getaffinity(0))
    nmax = args.workers or ncores
    os.environ["SHOAL_CPU_DEVICES"] = str(max(nmax, 1) if nmax <= ncores else ncores)
    ndev = int(os.environ["SHOAL_CPU_DEVICES"])
    x, program = load_data(args.samples, args.model)
    tmp = tempfile.mkdtemp(prefix="shoal-dask-bench-")
    program_path = os.path.join(tmp, "model.shoal")
    program.save(program_path)
    print(f"{args.model}: {len(x)} samples of {x.shape[1:]}, {ndev} device(s) of "
          f"{ncores} cores, workers 1..{nmax}", flush=True)

    busy = wait_for_quiet(args.idle_wait)
    local1, ref = local_baseline(program, x, [0], args.repeats)
    result = {
        # run_bench's record (CPU family/model, L2, commit; -dirty when code
        # differs from it) plus what this benchmark adds.
        "machine": {**rb.machine_info(), "cpu": cpu_model(),
                    "cores": ncores, "python": platform.python_version(),
                    "dask": __import__("distributed").__version__,
                    "shoal": shoal.__version__, "load": os.getloadavg()},
        "model": args.model, "samples": len(x), "sample_shape": list(x.shape[1:]),
        "busy_before_local": busy,
        "local_1_device": local1,
        "local_all_devices": local_baseline(program, x, list(range(ndev)), args.repeats)[0],
        "workers": [],
    }
    print(f"local, 1 device: {local1['best']:.3f} s; all {ndev} devices: "
          f"{result['local_all_devices']['best']:.3f} s", flush=True)

    for w in range(1, nmax + 1):
        workers = {f"w{i}": f"cpu:{i % ndev}" for i in range(w)}
        busy = wait_for_quiet(args.idle_wait)
        with LocalProcessCluster(workers, env={"SHOAL_CPU_DEVICES": str(ndev)}) as cluster:
            client = cluster.client()
            t0 = time.perf_counter()
            rt = shoal.dask.DaskRuntime(client, program, progress=False)
            init_s = time.perf_counter() - t0
            (y,) = rt.run(x)
            assert np.allclose(y, ref, rtol=1e-5, atol=1e-5), "outputs differ"
            chunks = rt.stats["chunks"]
            compute_s = rt.stats["compute_s"]
            y = naive_job(client, program_path, x, w)
            assert np.allclose(y, ref, rtol=1e-5, atol=1e-5), "naive outputs differ"
            # Interleaved, so that a busy moment of the machine hits all three.
            t_dask, t_naive, t_naive_k = interleaved(
                [lambda: rt.run(x), lambda: naive_job(client, program_path, x, w),
                 lambda: naive_job(client, program_path, x, chunks)], args.repeats)
            if w == nmax:
                sizes = sorted({max(1, len(x) // k) for k in (w, 4 * w, 16 * w, 64 * w,
                                                               256 * w)}, reverse=True)
                times = interleaved([lambda s=s: rt.run(x, chunk_size=s) for s in sizes],
                                    args.repeats)
                sweep = [{"chunk_size": size, "chunks": -(-len(x) // size),
                          "best_s": t["best"]} for size, t in zip(sizes, times)]
                n = np.array([s["chunks"] for s in sweep], float)
                s = np.array([s["best_s"] for s in sweep], float)
                slope = float(np.polyfit(n, s, 1)[0]) if len(n) > 1 else float("nan")
                result["chunk_sweep"] = {"workers": w, "points": sweep,
                                         "overhead_ms_per_chunk": slope * 1e3}
                result["transport"] = transport(client, rt.workers()[0], cluster)
            row = {"workers": w, "busy_before": busy, "init_s": init_s, "chunks": chunks,
                   "window": rt.stats["window"], "compute_s_last": compute_s,
                   "shoal_dask": t_dask, "naive_1_chunk_per_worker": t_naive,
                   "naive_same_chunks": t_naive_k}
            row["speedup"] = local1["best"] / t_dask["best"]
            row["efficiency"] = row["speedup"] / w
            rt.close()
        result["workers"].append(row)
        print(f"{w} worker(s): shoal.dask {t_dask['best']:.3f} s ({chunks} chunks, "
              f"speedup {row['speedup']:.2f}, efficiency {row['efficiency']:.0%}); naive "
              f"{t_naive['best']:.3f} s (1 chunk/worker), {t_naive_k['best']:.3f} s "
              f"({chunks} chunks); init {init_s * 1e3:.0f} ms", flush=True)

    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"dask_bench_{args.model}")
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=1)
    md = markdown(result)
    with open(stem + ".md", "w") as f:
        f.write(md)
    print(md)
    if not args.no_chart:
        chart(result, stem + ".png")
        print(f"wrote {stem}.json, .md, .png")


def markdown(r):
    l1 = r["local_1_device"]["best"]
    lines = [
        f"{r['model']}: {r['samples']} samples {tuple(r['sample_shape'])}, machine: "
        f"{r['machine']['cpu']}, {r['machine']['cores']} cores, Dask "
        f"{r['machine']['dask']}; CPU busy with other work before the runs: "
        + ", ".join(f"{b:.0%}" for b in [r["busy_before_local"]]
                    + [w["busy_before"] for w in r["workers"]]),
        "",
        f"Local shoal.Runtime, 1 device: **{l1:.3f} s** "
        f"({r['samples'] / l1:,.0f} samples/s); all devices: "
        f"{r['local_all_devices']['best']:.3f} s.",
        "",
        "| workers | shoal.dask (s) | chunks | speedup vs 1 local device | efficiency "
        "| naive, 1 chunk/worker (s) | naive, same chunks (s) | init (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in r["workers"]:
        lines.append(
            f"| {w['workers']} | {w['shoal_dask']['best']:.3f} | {w['chunks']} | "
            f"{w['speedup']:.2f} | {w['efficiency']:.0%} | "
            f"{w['naive_1_chunk_per_worker']['best']:.3f} | "
            f"{w['naive_same_chunks']['best']:.3f} | {w['init_s'] * 1e3:.0f} |")
    if "chunk_sweep" in r:
        cs = r["chunk_sweep"]
        lines += ["", f"Chunk size sweep at {cs['workers']} workers: "
                  + ", ".join(f"{p['chunks']} chunks {p['best_s']:.3f} s" for p in cs["points"])
                  + f"; overhead **{cs['overhead_ms_per_chunk']:.2f} ms per chunk**."]
    if "transport" in r:
        t = r["transport"]
        lines += ["", f"Transport of a {t['bytes'] >> 20} MiB float32 array to one worker: "
                  f"scattered {t['scatter']['MB_per_s']:,.0f} MB/s through the scheduler, "
                  f"{t['scatter_direct']['MB_per_s']:,.0f} MB/s straight to the worker "
                  "(direct_to_workers=True), as a task argument "
                  f"{t['task_argument']['MB_per_s']:,.0f} MB/s, result gathered back "
                  f"{t['gather_result']['MB_per_s']:,.0f} MB/s; scatter frames are the "
                  f"array's own memory: {t['scatter_frames_share_array_memory']}."]
    return "\n".join(lines) + "\n"


def chart(r, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ws = [w["workers"] for w in r["workers"]]
    series = [("shoal.dask", "shoal_dask"), ("naive: 1 chunk/worker, rebuilt per task",
                                              "naive_1_chunk_per_worker"),
              ("naive: same chunks, rebuilt per task", "naive_same_chunks")]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    width = 0.8 / len(series)
    for i, (label, key) in enumerate(series):
        xs = [w + (i - (len(series) - 1) / 2) * width for w in ws]
        ax.bar(xs, [w[key]["best"] for w in r["workers"]], width, label=label)
    ax.axhline(r["local_1_device"]["best"], color="k", ls="--", lw=1,
               label="local shoal.Runtime, 1 device")
    ax.axhline(r["local_all_devices"]["best"], color="gray", ls=":", lw=1,
               label="local shoal.Runtime, all devices of the host")
    top = max(max(w[key]["best"] for w in r["workers"]) for _, key in series)
    ax.set_ylim(0, 1.45 * max(top, r["local_1_device"]["best"]))
    ax.set_xticks(ws)
    ax.set_xlabel("workers (one device each)")
    ax.set_ylabel("execution time (s)")
    ax.set_title(f"{r['samples']} {r['model']} samples on a local Dask cluster "
                 f"({r['machine']['cores']} cores)")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
