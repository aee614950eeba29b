#!/usr/bin/python3
"""shoal vs onnxruntime on CPU, side by side in one run.

For each case (model x batch x threads) runs `shoal bench` and
bench/ort_bench.js (onnxruntime-node) alternately, each repetition a fresh
process per engine, and reports medians over the repetitions:

  median ms per batch, the ratio ort_ms / shoal_ms (> 1: shoal is faster),
  images/s, GFLOP/s and % of the cores' fp32 FMA peak (bench/fma_peak),
  load-to-first-result (shoal: program file -> runtime -> first output;
  onnxruntime: session creation + first run) and peak RSS of each process.

Models are torchvision CNNs with seeded random weights, exported by
scripts/export_torchvision.py into BUILD/models (cached) and compiled with
`shoal compile` into BUILD/bench-data on every run. onnxruntime gets the same
ONNX models, traced at batch N for batch N > 1 (BUILD/models/NAME_bN.onnx).

Writes bench/results/latest.json (every measurement, machine, versions) and
bench/results/latest.png (a chart). Needs build/bin/shoal (cmake --build
build), node and bench/node_modules (installed here with
`npm ci --ignore-scripts` when missing).

Usage: /usr/bin/python3 bench/run_bench.py [--quick] [--models a,b]
           [--batches 1,8] [--threads 1,all] [--reps 3]
"""

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
DEFAULT_MODELS = "resnet18,resnet50,mobilenet_v2,squeezenet1_1"
QUICK_MODEL = "squeezenet1_1"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") \
    else sys.executable


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def die(msg):
    log(f"run_bench: error: {msg}")
    sys.exit(1)


def run(cmd, cwd=None, timeout=None, env=None):
    """Runs cmd; returns (stdout, wall seconds). Dies with its stderr."""
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        die(f"timed out after {timeout} s: {' '.join(cmd)}")
    wall = time.monotonic() - t0
    if p.returncode != 0:
        die(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stderr.strip()}")
    return p.stdout, wall


def int_list(text, what):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        die(f"{what}: expected a comma list of integers, got '{text}'")
    if not values or min(values) < 1:
        die(f"{what}: expected integers >= 1, got '{text}'")
    return values


def thread_list(text, cores):
    out = []
    for v in text.split(","):
        v = v.strip()
        if not v:
            continue
        n = cores if v == "all" else int_list(v, "--threads")[0]
        if n > cores:
            die(f"--threads {n}: this process may use {cores} cores")
        if n not in out:
            out.append(n)
    return out


# ---- setup ------------------------------------------------------------------

def git_commit(tree):
    """The short commit of the checkout at `tree`, "-dirty" when its tracked
    code differs from it. Changes under bench/results/ and docs/MODELS.md are
    this or another benchmark's own output (bench/zoo.py writes both as it
    goes), not code: they do not make the measured commit dirty."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree,
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no",
                            "--", ".", ":(exclude)bench/results",
                            ":(exclude)docs/MODELS.md"], cwd=tree,
                           capture_output=True, text=True).stdout.strip()
    return commit + ("-dirty" if dirty else "")


def build_source(build):
    """{} for this checkout's own build; for another (--build), the commit of
    the source tree it was configured from (CMakeCache's
    CMAKE_HOME_DIRECTORY), so that `git` (this script's commit) is not taken
    for the measured one."""
    if os.path.realpath(build) == os.path.realpath(os.path.join(ROOT, "build")):
        return {}
    info = {"build_dir": os.path.realpath(build)}
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            src = next(line.split("=", 1)[1].strip() for line in f
                       if line.startswith("CMAKE_HOME_DIRECTORY:"))
        info["build_commit"] = git_commit(src)
    except (OSError, StopIteration):
        info["build_commit"] = "unknown"
    return info


def machine_info():
    info = {"date": datetime.datetime.now().astimezone().isoformat(
                timespec="seconds"),
            "cpu": platform.processor() or platform.machine(),
            "cores": len(os.sched_getaffinity(0)),
            "kernel": platform.release(), "loadavg_start": os.getloadavg()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                info["cpu"] = value.strip()
            elif key.strip() == "CPU family":  # the name alone may not
                info["cpu_family"] = value.strip()  # tell machines apart
            elif key.strip() == "Model":
                info["cpu_model"] = value.strip()
            elif key.strip() == "L2 cache":
                info["l2"] = value.strip()
            elif key.strip() == "Flags":
                flags = value.split()
                info["isa"] = [f for f in ("avx2", "avx512f", "avx512_bf16",
                                           "amx_tile") if f in flags]
    except OSError:
        pass
    try:
        info["git"] = git_commit(ROOT)
    except OSError:
        pass
    return info


def ensure_ort():
    if shutil.which("node") is None:
        die("node is not installed (apt-get install nodejs npm)")
    pkg = os.path.join(BENCH, "node_modules", "onnxruntime-node")
    if not os.path.isdir(pkg):
        log("installing onnxruntime-node into bench/node_modules ...")
        # Its install script downloads extra binaries (GPU providers); the
        # CPU library ships in the package itself.
        run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=BENCH, timeout=900)
    with open(os.path.join(pkg, "package.json")) as f:
        return json.load(f)["version"]


def snapshot_shoal(build):
    """Copies the shoal CLI and its libraries into BUILD/bench-data/snapshot,
    so that a rebuild during a long run cannot mix versions. Returns (exe,
    env for running it)."""
    snap = os.path.join(build, "bench-data", "snapshot")
    shutil.rmtree(snap, ignore_errors=True)
    os.makedirs(os.path.join(snap, "bin"))
    os.makedirs(os.path.join(snap, "lib"))
    exe = shutil.copy2(os.path.join(build, "bin", "shoal"),
                       os.path.join(snap, "bin"))
    libdir = os.path.join(build, "lib")
    for name in os.listdir(libdir) if os.path.isdir(libdir) else []:
        if ".so" in name:
            shutil.copy2(os.path.join(libdir, name), os.path.join(snap, "lib"))
    env = dict(os.environ)
    # LD_LIBRARY_PATH comes before the binary's RUNPATH (BUILD/lib).
    env["LD_LIBRARY_PATH"] = os.path.join(snap, "lib") + (
        ":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    env.pop("SHOAL_CPU_DEVICES", None)
    return exe, env


def fma_peak(build):
    """One core's fp32 FMA peak in GFLOP/s (builds fma_peak if needed)."""
    exe = os.path.join(build, "bin", "fma_peak")
    if not os.path.exists(exe):
        exe = os.path.join(build, "bench-data", "fma_peak")
        src = os.path.join(BENCH, "fma_peak.cpp")
        if not os.path.exists(exe) or \
                os.path.getmtime(exe) < os.path.getmtime(src):
            os.makedirs(os.path.dirname(exe), exist_ok=True)
            run(["g++", "-std=c++20", "-O2", src, "-o", exe], timeout=300)
    out, _ = run([exe, "--json"], timeout=120)
    return json.loads(out)


def batch_model(name, batch, build):
    """The ONNX file of torchvision model `name` traced at batch `batch` by
    the exporter (same weights), for onnxruntime: shapes the exporter writes
    as constants then carry the batch."""
    model_dir = os.path.join(build, "models")
    run([PYTHON, os.path.join(ROOT, "scripts", "export_torchvision.py"),
         "--out", model_dir, "--models", name, "--batch", str(batch)], timeout=1800)
    return os.path.join(model_dir, f"{name}_b{batch}.onnx")


def prepare_models(models, batches, build, shoal, env):
    model_dir = os.path.join(build, "models")
    out_dir = os.path.join(build, "bench-data")
    os.makedirs(out_dir, exist_ok=True)
    log(f"exporting {','.join(models)} (cached in {model_dir}) ...")
    run([PYTHON, os.path.join(ROOT, "scripts", "export_torchvision.py"),
         "--out", model_dir, "--models", ",".join(models)], timeout=1800)
    files = {}
    for name in models:
        onnx_path = os.path.join(model_dir, f"{name}.onnx")
        program = os.path.join(out_dir, f"{name}.shoal")
        # Always recompiled: the program must come from this shoal.
        _, wall = run([shoal, "compile", onnx_path, "-o", program],
                      timeout=600, env=env)
        log(f"  {name}: compiled in {wall:.1f} s")
        ort = {1: onnx_path}
        for b in batches:
            if b != 1:
                ort[b] = batch_model(name, b, build)
        files[name] = {"onnx": onnx_path, "program": program, "ort": ort,
                       "compile_s": wall}
    return files


# ---- measuring --------------------------------------------------------------

def wait_for_builds(max_wait):
    """Waits (up to max_wait s) while a compiler runs on this shared box."""
    t0 = time.monotonic()
    warned = False
    while time.monotonic() - t0 < max_wait:
        p = subprocess.run(["pgrep", "-x", "cc1plus"], capture_output=True)
        if p.returncode != 0:
            return True
        if not warned:
            log("  (a build is running; waiting for it to finish ...)")
            warned = True
        time.sleep(5)
    return False


def bench_shoal(shoal, program, batch, threads, args, peak, env):
    cmd = [shoal, "bench", program, "--batch", str(batch), "--threads",
           str(threads), "--warmup", str(args.warmup), "--iters",
           str(args.iters), "--max-time", str(args.max_time), "--json"]
    if peak:
        cmd += ["--peak-gflops", f"{peak:.3f}"]
    out, wall = run(cmd, timeout=args.timeout, env=env)
    r = json.loads(out)
    r["process_s"] = wall
    r["file"] = os.path.relpath(r["file"], ROOT)
    return r


def bench_ort(model, batch, threads, args):
    cmd = ["node", os.path.join(BENCH, "ort_bench.js"), model, "--batch",
           str(batch), "--threads", str(threads), "--warmup",
           str(args.warmup), "--iters", str(args.iters), "--max-time",
           str(args.max_time), "--json"]
    # onnxruntime spreads its threads itself; pin the process to the same
    # cores shoal gets (the first `threads` this process may use).
    cores = sorted(os.sched_getaffinity(0))[:threads]
    out, wall = run(["taskset", "-c", ",".join(map(str, cores))] + cmd
                    if shutil.which("taskset") else cmd, timeout=args.timeout)
    r = json.loads(out)
    r["process_s"] = wall
    r["file"] = os.path.relpath(r["file"], ROOT)
    r["pinned_cores"] = cores
    return r


def summarize(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def run_case(case, files, shoal, env, args, peak):
    name, batch, threads = case["model"], case["batch"], case["threads"]
    f = files[name]
    case["idle"] = wait_for_builds(args.idle_wait)
    case["loadavg"] = os.getloadavg()
    runs = {"shoal": [], "onnxruntime": []}
    for rep in range(args.reps):
        # Alternate which engine goes first, so drift hits both alike.
        order = ["shoal", "onnxruntime"] if rep % 2 == 0 \
            else ["onnxruntime", "shoal"]
        for engine in order:
            if engine == "shoal":
                r = bench_shoal(shoal, f["program"], batch, threads, args,
                                peak, env)
            else:
                r = bench_ort(f["ort"][batch], batch, threads, args)
            runs[engine].append(r)
            log(f"    rep {rep + 1} {engine:11s} {r['median_ms']:10.2f} ms"
                f"  ({len(r['iters_ms'])} runs)")
    gflop = runs["shoal"][0]["gflop_per_sample"]
    case["gflop_per_sample"] = gflop
    case["runs"] = runs
    for engine, rs in runs.items():
        ms = summarize(rs, "median_ms")
        gflops = gflop * batch * 1e3 / ms if ms else None
        case[engine] = {
            "median_ms": ms,
            "images_per_s": batch * 1e3 / ms if ms else None,
            "gflops": gflops,
            "pct_peak": 100 * gflops / (peak * threads)
            if peak and gflops else None,
            "load_ms": summarize(rs, "load_ms"),
            "first_result_ms": summarize(rs, "first_result_ms"),
            "peak_rss_mib": summarize(rs, "peak_rss_mib"),
            "rss_start_mib": summarize(rs, "rss_start_mib"),
            "reps_ms": [r["median_ms"] for r in rs],
        }
    s, o = case["shoal"]["median_ms"], case["onnxruntime"]["median_ms"]
    case["ratio"] = o / s if s and o else None
    return case


# ---- output -----------------------------------------------------------------

def fmt(x, spec=".1f", none="-"):
    return none if x is None else format(x, spec)


def pct(x):
    return "" if x is None else f" ({x:.1f}%)"


def print_case(c):
    s, o = c["shoal"], c["onnxruntime"]
    print(f"\n{c['model']}, batch {c['batch']}, {c['threads']} thread"
          f"{'s' if c['threads'] > 1 else ''}"
          f"  ({c['gflop_per_sample']:.2f} GFLOP per image;"
          f" ratio ort/shoal {fmt(c['ratio'], '.3f')})")
    rows = [("median ms", fmt(s["median_ms"], ".2f"),
             fmt(o["median_ms"], ".2f")),
            ("images/s", fmt(s["images_per_s"]), fmt(o["images_per_s"])),
            ("GFLOP/s (% peak)", fmt(s["gflops"]) + pct(s["pct_peak"]),
             fmt(o["gflops"]) + pct(o["pct_peak"])),
            ("load -> 1st result ms", fmt(s["first_result_ms"], ".0f"),
             fmt(o["first_result_ms"], ".0f")),
            ("  of which load ms", fmt(s["load_ms"], ".0f"),
             fmt(o["load_ms"], ".0f")),
            ("peak RSS MiB", fmt(s["peak_rss_mib"], ".0f"),
             fmt(o["peak_rss_mib"], ".0f")),
            ("reps ms", " ".join(fmt(x, ".1f") for x in s["reps_ms"]),
             " ".join(fmt(x, ".1f") for x in o["reps_ms"]))]
    print(f"  {'':24s}{'shoal':>22s}{'onnxruntime':>22s}")
    for label, a, b in rows:
        print(f"  {label:24s}{a:>22s}{b:>22s}")


def summary_table(cases):
    lines = ["| model | batch | threads | shoal ms | ort ms | ort/shoal | "
             "shoal img/s | shoal GFLOP/s (% peak) | ort GFLOP/s (% peak) | "
             "shoal load→1st ms | ort create+1st ms | shoal RSS MiB | "
             "ort RSS MiB |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for c in cases:
        s, o = c["shoal"], c["onnxruntime"]
        lines.append(
            f"| {c['model']} | {c['batch']} | {c['threads']} | "
            f"{fmt(s['median_ms'], '.2f')} | {fmt(o['median_ms'], '.2f')} | "
            f"{fmt(c['ratio'], '.3f')} | {fmt(s['images_per_s'])} | "
            f"{fmt(s['gflops'])}{pct(s['pct_peak'])} | "
            f"{fmt(o['gflops'])}{pct(o['pct_peak'])} | "
            f"{fmt(s['first_result_ms'], '.0f')} | "
            f"{fmt(o['first_result_ms'], '.0f')} | "
            f"{fmt(s['peak_rss_mib'], '.0f')} | "
            f"{fmt(o['peak_rss_mib'], '.0f')} |")
    return "\n".join(lines)


def geomean(values):
    values = [v for v in values if v]
    return math.exp(sum(math.log(v) for v in values) / len(values)) \
        if values else None


def chart(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cases = result["cases"]
    labels = [f"{c['model']} b{c['batch']} t{c['threads']}" for c in cases]
    x = range(len(cases))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(9, 1.0 * len(cases)),
                                                  8), sharex=True)
    w = 0.38
    ax1.bar([i - w / 2 for i in x],
            [c["shoal"]["images_per_s"] or 0 for c in cases], w,
            label=f"shoal {result['versions']['shoal']}", color="#1f77b4")
    ax1.bar([i + w / 2 for i in x],
            [c["onnxruntime"]["images_per_s"] or 0 for c in cases], w,
            label=f"onnxruntime {result['versions']['onnxruntime']}",
            color="#ff7f0e")
    ax1.set_yscale("log")
    ax1.set_ylabel("images/s (log)")
    ax1.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax1.grid(axis="y", alpha=0.3)
    m = result["machine"]
    ax1.set_title(f"shoal vs onnxruntime, {m['cpu']}, {m['cores']} cores, "
                  f"{m['date'][:10]}")
    ratios = [c["ratio"] or float("nan") for c in cases]
    valid = [r for r in ratios if r > 0] + [1.0]
    # Bars grow from 1 (parity), up when shoal is faster, down when slower.
    ax2.bar(list(x), [r - 1 for r in ratios], 0.6, bottom=1,
            color=["#2ca02c" if r >= 1 else "#d62728" for r in ratios])
    for i, r in zip(x, ratios):
        ax2.annotate(f"{r:.3g}", (i, r), ha="center", fontsize=8,
                     va="bottom" if r >= 1 else "top",
                     xytext=(0, 2 if r >= 1 else -2),
                     textcoords="offset points")
    ax2.set_ylim(min(valid) / 2, max(valid) * 2)
    ax2.axhline(1.0, color="black", linewidth=0.8)
    ax2.set_yscale("log")
    from matplotlib.ticker import FormatStrFormatter
    ax2.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    ax2.yaxis.set_minor_formatter(FormatStrFormatter("%.3g"))
    ax2.set_ylabel("ort ms / shoal ms (log; > 1: shoal faster)")
    ax2.grid(axis="y", alpha=0.3)
    ax2.set_xticks(list(x))
    ax2.set_xticklabels(labels, fontsize=8, rotation=35, ha="right",
                        rotation_mode="anchor")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---- main -------------------------------------------------------------------

def main(argv=None):
    cores = len(os.sched_getaffinity(0))
    ap = argparse.ArgumentParser(
        description="Benchmark shoal against onnxruntime (CPU).")
    ap.add_argument("--models", default=None,
                    help=f"comma list (default {DEFAULT_MODELS})")
    ap.add_argument("--batches", default="1,8", help="comma list (1,8)")
    ap.add_argument("--threads", default="1,all",
                    help="comma list; 'all' = every core this process may "
                         f"use, here {cores} (1,all)")
    ap.add_argument("--cases", default=None, metavar="T:B,...",
                    help="only these threads:batch pairs (e.g. 1:1,all:8, "
                         "the two settings of the ten-model benchmark) "
                         "instead of every --threads x --batches pair")
    ap.add_argument("--reps", type=int, default=3,
                    help="fresh processes per engine and case (3)")
    ap.add_argument("--iters", type=int, default=10,
                    help="timed runs per process (10)")
    ap.add_argument("--warmup", type=int, default=2,
                    help="untimed runs per process after the first (2)")
    ap.add_argument("--max-time", type=float, default=5.0,
                    help="seconds of warmup + timed runs per process, at "
                         "most (at least one timed run) (5)")
    ap.add_argument("--timeout", type=int, default=900,
                    help="seconds one process may take (900)")
    ap.add_argument("--idle-wait", type=int, default=600,
                    help="wait up to this many seconds before each case "
                         "while a compiler (cc1plus) runs (600)")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke test: {QUICK_MODEL} only, 1 rep, 3 runs")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="the build directory (ROOT/build)")
    ap.add_argument("--out", default=os.path.join(BENCH, "results"),
                    help="results directory (bench/results)")
    ap.add_argument("--name", default="latest",
                    help="results file stem (latest)")
    ap.add_argument("--no-chart", action="store_true")
    ap.add_argument("--replot", metavar="JSON",
                    help="only redraw the chart of a results file (next to "
                         "it, .png)")
    args = ap.parse_args(argv)
    if args.replot:
        with open(args.replot) as f:
            result = json.load(f)
        png = os.path.splitext(args.replot)[0] + ".png"
        chart(result, png)
        print(f"wrote {os.path.relpath(png)}")
        return 0

    if args.quick:
        args.models = args.models or QUICK_MODEL
        args.reps, args.iters, args.warmup = 1, 3, 1
    models = [m.strip() for m in (args.models or DEFAULT_MODELS).split(",")
              if m.strip()]
    batches = int_list(args.batches, "--batches")
    threads = thread_list(args.threads, cores)
    pairs = [(t, b) for t in threads for b in batches]
    if args.cases:
        pairs = []
        for item in args.cases.split(","):
            t, _, b = item.strip().partition(":")
            if not b:
                die(f"--cases: expected THREADS:BATCH, got {item!r}")
            pairs.append((thread_list(t, cores)[0], int_list(b, "--cases")[0]))
        threads = sorted({t for t, _ in pairs})
        batches = sorted({b for _, b in pairs})
    if args.reps < 1 or args.iters < 1 or args.warmup < 0:
        die("--reps and --iters must be >= 1, --warmup >= 0")

    if not os.path.exists(os.path.join(args.build, "bin", "shoal")):
        die(f"{args.build}/bin/shoal not found; build first: cmake -B build "
            "&& cmake --build build -j2")
    shoal, env = snapshot_shoal(args.build)
    ort_version = ensure_ort()
    shoal_version = run([shoal, "--version"], env=env)[0].split()[-1]
    machine = machine_info()
    machine.update(build_source(args.build))
    peak = fma_peak(args.build)
    log(f"{machine['cpu']}, {cores} cores; one core's fp32 FMA peak "
        f"{peak['gflops']:.1f} GFLOP/s ({peak['isa']})")
    files = prepare_models(models, batches, args.build, shoal, env)

    cases = []
    t0 = time.monotonic()
    for name in models:
        for t, b in pairs:
            log(f"  {name} batch {b} threads {t}")
            case = run_case({"model": name, "batch": b, "threads": t},
                            files, shoal, env, args, peak["gflops"])
            print_case(case)
            sys.stdout.flush()
            cases.append(case)

    base = [c["ratio"] for c in cases if c["batch"] == 1 and
            c["threads"] == 1]
    gm = geomean(base)
    gm_all = geomean([c["ratio"] for c in cases
                      if c["batch"] == max(batches) and c["threads"] == cores])
    result = {
        "machine": machine,
        "versions": {"shoal": shoal_version, "onnxruntime": ort_version,
                     "node": subprocess.run(["node", "--version"],
                                            capture_output=True,
                                            text=True).stdout.strip()},
        "fma_peak": peak,
        "settings": {"reps": args.reps, "iters": args.iters,
                     "warmup": args.warmup, "max_time_s": args.max_time,
                     "models": models, "batches": batches,
                     "threads": threads,
                     "cases": [[t, b] for t, b in pairs]},
        "compile_s": {n: f["compile_s"] for n, f in files.items()},
        "geomean_ratio_t1_b1": gm,
        f"geomean_ratio_t{cores}_b{max(batches)}": gm_all,
        "wall_s": time.monotonic() - t0,
        "cases": cases,
    }
    print("\n" + summary_table(cases))
    print(f"\ngeometric mean of ort_ms/shoal_ms at 1 thread, batch 1: "
          f"{fmt(gm, '.3f')} (> 1: shoal is faster)")
    print(f"geometric mean at {cores} threads, batch {max(batches)}: "
          f"{fmt(gm_all, '.3f')}")
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, f"{args.name}.json")
    with open(json_path, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.relpath(json_path)}", end="")
    if not args.no_chart:
        png = os.path.join(args.out, f"{args.name}.png")
        chart(result, png)
        print(f" and {os.path.relpath(png)}", end="")
    print(f" ({result['wall_s']:.0f} s of measuring)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
