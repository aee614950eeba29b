#!/usr/bin/python3
"""`shoal serve` under load, next to in-process Runtime.run.

For each model (torchvision CNNs with seeded random weights, exported by
scripts/export_torchvision.py into BUILD/models, compiled with `shoal compile`):
  1. in process: Runtime.run at batch 1, 2, 4, 8, 16 (p50/p99 ms per run,
     images/s), in this Python process, nothing else running;
  2. `shoal serve` (a snapshot of the build, on all devices) with dynamic
     batching (the default: up to max(8, clusters) samples, no queue delay)
     and without it (--max-batch-size 1), each driven by C closed-loop
     clients (threads with shoal.client.Client, the binary extension, one
     image per request) for C = 1, 2, 4, ..., 64: images/s, p50/p99 latency
     of a request, and the average batch the server ran (from /metrics).
The clients run on the same machine as the server (their CPU time is part of
what is measured). Writes bench/results/serve.json (every measurement, the
machine, the commit), bench/results/serve.png, and the tables of
docs/SERVING.md between its serve_bench markers.

Usage: /usr/bin/python3 bench/serve_bench.py [--models resnet50,mobilenet_v2]
           [--concurrency 1,2,4,8,16,32,64] [--seconds 8] [--quick]
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
sys.path.insert(0, BENCH)
from run_bench import PYTHON, die, log, machine_info, run, snapshot_shoal, wait_for_builds  # noqa

BATCHES = [1, 2, 4, 8, 16]
MARK_BEGIN, MARK_END = "<!-- serve_bench:begin -->", "<!-- serve_bench:end -->"


def percentile(values, q):
    return float(np.percentile(np.asarray(values) * 1e3, q)) if values else None


# ---- in process --------------------------------------------------------------

def bench_in_process(program, seconds):
    import shoal
    rt = shoal.Runtime(shoal.load(program))
    rows = []
    rng = np.random.default_rng(0)
    for b in BATCHES:
        x = rng.standard_normal((b, 3, 224, 224)).astype(np.float32)
        for _ in range(2):
            rt.run(x)  # kernels for this size, caches
        times = []
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end or len(times) < 5:
            t0 = time.perf_counter()
            rt.run(x)
            times.append(time.perf_counter() - t0)
        total = sum(times)
        rows.append({"batch": b, "runs": len(times), "p50_ms": percentile(times, 50),
                     "p99_ms": percentile(times, 99), "images_per_s": b * len(times) / total})
        log(f"    in process batch {b:2d}: p50 {rows[-1]['p50_ms']:.2f} ms, "
            f"{rows[-1]['images_per_s']:.1f} images/s")
    plan = rt.plan()
    del rt
    return rows, plan


# ---- through the server ------------------------------------------------------

class Server:
    def __init__(self, exe, env, name, program, extra):
        self.proc = subprocess.Popen([exe, "serve", "--model", f"{name}={program}", "--port", "0",
                                      *extra], stderr=subprocess.PIPE, text=True, env=env)
        self.lines = []
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())
            m = re.search(r"ready: listening on (http://\S+)", line)
            if m:
                self.url = m.group(1)
                threading.Thread(target=lambda: [self.lines.append(x.rstrip())
                                                 for x in self.proc.stderr], daemon=True).start()
                return
        die(f"shoal serve exited {self.proc.wait()}:\n" + "\n".join(self.lines))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(120)
        if rc != 0:
            die(f"shoal serve exited {rc} after SIGTERM:\n" + "\n".join(self.lines[-20:]))


def counters(client, name):
    text = client.metrics()
    out = {}
    for key in ("nv_inference_count", "nv_inference_exec_count"):
        m = re.search(rf'^{key}\{{model="{re.escape(name)}",version="1"\}} (\S+)$', text, re.M)
        out[key] = float(m.group(1))
    return out


def drive(url, name, concurrency, seconds, warmup):
    """C closed-loop clients for warmup + seconds. Throughput: the images the
    server ran within the measured window (its counters, read at the window's
    start and end); latency: the requests that ended within it."""
    from shoal.client import Client
    client = Client(url, timeout=600)
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    t_start = time.perf_counter()
    t_measure, t_end = t_start + warmup, t_start + warmup + seconds
    latencies = [[] for _ in range(concurrency)]
    errors = []
    marks = []

    def loop(k):
        try:
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                client.infer(name, x)
                t1 = time.perf_counter()
                if t_measure <= t1 <= t_end:
                    latencies[k].append(t1 - t0)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            client.close()

    def snapshots():
        for t in (t_measure, t_end):
            time.sleep(max(0.0, t - time.perf_counter()))
            marks.append((time.perf_counter(), counters(client, name)))
        client.close()

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(concurrency)]
    threads.append(threading.Thread(target=snapshots))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        die(f"{name}, {concurrency} clients: {errors[0]!r}")
    (t0, before), (t1, after) = marks
    lat = [v for per in latencies for v in per]
    count = after["nv_inference_count"] - before["nv_inference_count"]
    execs = after["nv_inference_exec_count"] - before["nv_inference_exec_count"]
    return {"clients": concurrency, "requests": len(lat), "images": count,
            "images_per_s": count / (t1 - t0), "p50_ms": percentile(lat, 50),
            "p99_ms": percentile(lat, 99), "avg_batch": count / execs if execs else None}


def bench_server(exe, env, name, program, extra, levels, seconds):
    server = Server(exe, env, name, program, extra)
    rows = []
    try:
        for c in levels:
            # Long enough for every client to finish a few requests.
            warmup = 2.0 if c < 16 else 4.0
            r = drive(server.url, name, c, seconds, warmup)
            rows.append(r)
            log(f"    {c:2d} clients: {r['images_per_s']:.1f} images/s, p50 {r['p50_ms']:.2f} ms, "
                f"p99 {r['p99_ms']:.2f} ms, average batch {r['avg_batch']:.2f}")
    finally:
        server.stop()
    plan = next((line for line in server.lines if f"model '{name}' (" in line), "")
    return rows, plan


# ---- report ------------------------------------------------------------------

def targets(model):
    inproc = {r["batch"]: r for r in model["in_process"]}
    batching = {r["clients"]: r for r in model["server"]["batching"]}
    out = {}
    if 1 in inproc and 1 in batching:
        out["overhead_ms_p50_batch1"] = batching[1]["p50_ms"] - inproc[1]["p50_ms"]
        out["overhead_ok"] = out["overhead_ms_p50_batch1"] <= 0.5
    if 8 in inproc and 16 in batching:
        out["ratio_16_clients_vs_batch8"] = batching[16]["images_per_s"] / inproc[8]["images_per_s"]
        out["throughput_ok"] = out["ratio_16_clients_vs_batch8"] >= 0.85
    return out


def markdown(result):
    m = result["machine"]
    lines = [f"Measured by `bench/serve_bench.py` on {m.get('cpu')} ({m.get('cores')} cores), "
             f"commit {m.get('git')}, {m.get('date')}; load average at start "
             f"{', '.join(f'{x:.2f}' for x in m.get('loadavg_start', []))}. "
             f"{result['seconds']:.0f} s per point; clients and server on the same machine.", ""]
    for name, model in result["models"].items():
        t = model["targets"]
        plan = re.sub(r"^.*?model '[^']*' \([^)]*\): ", "", model["server"]["plan_batching"])
        lines += [f"### {name}", "", f"Server plan: {plan}", ""]
        lines += ["| in process | p50 ms | p99 ms | images/s |", "|---|---|---|---|"]
        for r in model["in_process"]:
            lines.append(f"| batch {r['batch']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                         f"{r['images_per_s']:.1f} |")
        lines += ["", "| clients | batching: images/s | p50 ms | p99 ms | avg batch | "
                  "no batching: images/s | p50 ms | p99 ms |", "|---|---|---|---|---|---|---|---|"]
        nob = {r["clients"]: r for r in model["server"]["no_batching"]}
        for r in model["server"]["batching"]:
            n = nob.get(r["clients"])
            tail = (f"{n['images_per_s']:.1f} | {n['p50_ms']:.2f} | {n['p99_ms']:.2f}" if n
                    else "- | - | -")
            lines.append(f"| {r['clients']} | {r['images_per_s']:.1f} | {r['p50_ms']:.2f} | "
                         f"{r['p99_ms']:.2f} | {r['avg_batch']:.2f} | {tail} |")
        lines.append("")
        if "overhead_ms_p50_batch1" in t:
            d = t["overhead_ms_p50_batch1"]
            lines.append(f"- Batch 1, one client: p50 through the server minus p50 in process "
                         f"**{d:.3f} ms** (target <= 0.5 ms: "
                         f"{'met' if t['overhead_ok'] else 'NOT met'}"
                         f"{'; below zero is run-to-run noise' if d < 0 else ''}).")
        if "ratio_16_clients_vs_batch8" in t:
            lines.append(f"- 16 clients sending single images, dynamic batching: "
                         f"**{t['ratio_16_clients_vs_batch8']:.2f}x** the in-process batch-8 "
                         f"throughput (target >= 0.85: "
                         f"{'met' if t['throughput_ok'] else 'NOT met'}).")
        lines.append("")
    return "\n".join(lines)


def chart(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(result["models"])
    fig, axes = plt.subplots(len(names), 2, figsize=(11, 4 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        model = result["models"][name]
        ax, lx = axes[row]
        for mode, style in (("batching", "o-"), ("no_batching", "s--")):
            rs = model["server"][mode]
            c = [r["clients"] for r in rs]
            label = mode.replace("_", " ")
            ax.plot(c, [r["images_per_s"] for r in rs], style, label=f"server, {label}")
            lx.plot(c, [r["p50_ms"] for r in rs], style, label=f"p50, {label}")
            lx.plot(c, [r["p99_ms"] for r in rs], style, alpha=0.4, label=f"p99, {label}")
        for r in model["in_process"]:
            if r["batch"] in (1, 8):
                ax.axhline(r["images_per_s"], color="gray", lw=0.8,
                           ls=":" if r["batch"] == 1 else "-.")
                ax.annotate(f"in process, batch {r['batch']}", (1, r["images_per_s"]),
                            fontsize=8, color="gray", va="bottom" if r["batch"] == 8 else "top")
        levels = [r["clients"] for r in model["server"]["batching"]]
        for a in (ax, lx):
            a.set_xscale("log", base=2)
            a.set_xticks(levels, [str(c) for c in levels])
            a.set_xlabel("concurrent clients (one image per request)")
            a.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.set_ylabel("images/s")
        ax.set_title(f"{name}: throughput")
        lx.set_ylabel("latency per request, ms")
        lx.set_yscale("log")
        lx.set_title(f"{name}: latency")
        ax.legend(fontsize=8)
        lx.legend(fontsize=7)
    m = result["machine"]
    fig.suptitle(f"shoal serve vs in-process Runtime.run: {m.get('cpu')}, {m.get('cores')} cores, "
                 f"{m.get('git')}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_docs(result):
    path = os.path.join(ROOT, "docs", "SERVING.md")
    with open(path) as f:
        text = f.read()
    if MARK_BEGIN not in text or MARK_END not in text:
        die(f"{path} lacks the {MARK_BEGIN} ... {MARK_END} markers")
    head, rest = text.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    with open(path, "w") as f:
        f.write(head + MARK_BEGIN + "\n" + markdown(result) + "\n" + MARK_END + tail)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Benchmark shoal serve against Runtime.run.")
    ap.add_argument("--models", default="resnet50,mobilenet_v2")
    ap.add_argument("--concurrency", default="1,2,4,8,16,32,64")
    ap.add_argument("--seconds", type=float, default=8.0, help="measured seconds per point (8)")
    ap.add_argument("--server-args", default="",
                    help="extra `shoal serve` options for both modes, e.g. '--instances 1'")
    ap.add_argument("--quick", action="store_true", help="smoke test: short points, 1,16 clients")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--out", default=os.path.join(BENCH, "results"))
    ap.add_argument("--name", default="serve", help="results file stem (serve)")
    ap.add_argument("--no-docs", action="store_true", help="leave docs/SERVING.md alone")
    ap.add_argument("--replot", metavar="JSON", help="only redraw the chart and the docs table")
    args = ap.parse_args(argv)
    if args.replot:
        with open(args.replot) as f:
            result = json.load(f)
        chart(result, os.path.splitext(args.replot)[0] + ".png")
        if not args.no_docs:
            write_docs(result)
        return 0
    if args.quick:
        args.seconds, args.concurrency = 2.0, "1,16"
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    levels = [int(c) for c in args.concurrency.split(",")]
    sys.path.insert(0, os.path.join(args.build, "python"))

    exe, env = snapshot_shoal(args.build)
    model_dir = os.path.join(args.build, "models")
    data_dir = os.path.join(args.build, "bench-data")
    os.makedirs(data_dir, exist_ok=True)
    run([PYTHON, os.path.join(ROOT, "scripts", "export_torchvision.py"), "--out", model_dir,
         "--models", ",".join(models)], timeout=1800)
    result = {"machine": machine_info(), "seconds": args.seconds, "server_args": args.server_args,
              "models": {}}
    for name in models:
        program = os.path.join(data_dir, f"{name}.shoal")
        run([exe, "compile", os.path.join(model_dir, f"{name}.onnx"), "-o", program],
            timeout=600, env=env)
        wait_for_builds(600)
        log(f"{name}:")
        inproc, plan = bench_in_process(program, min(args.seconds, 5.0))
        model = {"in_process": inproc, "runtime_plan": plan, "server": {}}
        common = args.server_args.split()
        for mode, extra in (("batching", common), ("no_batching", common + ["--max-batch-size", "1"])):
            log(f"  server, {mode.replace('_', ' ')}:")
            rows, splan = bench_server(exe, env, name, program, extra, levels, args.seconds)
            model["server"][mode] = rows
            model["server"][f"plan_{mode}"] = splan.split(": ", 1)[-1]
        model["targets"] = targets(model)
        log(f"  targets: {model['targets']}")
        result["models"][name] = model
    result["machine"]["loadavg_end"] = os.getloadavg()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{args.name}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    chart(result, os.path.splitext(path)[0] + ".png")
    log(f"wrote {os.path.relpath(path)} and {os.path.relpath(os.path.splitext(path)[0])}.png")
    if not args.no_docs:
        write_docs(result)
        log("updated docs/SERVING.md")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
