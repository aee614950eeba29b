#!/usr/bin/python3
"""Throughput and latency against the number of cores, for shoal's execution
modes and onnxruntime on the same cores.

For k = 1 .. all cores this process may use, per model:

  clusters  1 device of k cores, k clusters, mode batch, a batch of 8k:
            images/s (each cluster gets 8 inputs, stacked).
  devices   k devices of 1 core each (SHOAL_CPU_DEVICES), a batch of 8k.
  auto      1 device of k cores, k clusters, mode auto (the default), a
            batch of 8k: what a user gets without choosing.
  split     1 device of k cores, k clusters, mode split, ONE input: latency
            (ms), and the speedup over k = 1.
  ort       onnxruntime with k intra-op threads, pinned to the same k cores:
            a batch of 8k (images/s) and one input (ms).

Efficiency = images/s at k / (k x images/s of one cluster at k = 1). Each
measurement is a fresh process; engines alternate; medians over --reps.
Speedups of one input (shoal split, onnxruntime) are paired: each repetition
at k also times the same engine on one core right next to it, and the speedup
is the median of those per-repetition ratios, so that a noisy minute on a
shared machine moves both sides of a ratio rather than one.
Writes a table, bench/results/scaling.json and scaling.png.

    /usr/bin/python3 bench/scaling.py [--models resnet50,squeezenet1_1] [--reps 3]
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_bench as rb  # noqa: E402  (shared helpers: snapshot, ORT, models)

PER_CORE = 8  # inputs per core in a throughput batch


def shoal_case(shoal, env, onnx_path, out_dir, k, kind, args):
    """One `shoal bench` process; returns its JSON."""
    e = dict(env)
    devices, clusters, mode = 1, k, "batch"
    if kind == "devices":
        devices, clusters = k, 1
        e["SHOAL_CPU_DEVICES"] = ",".join(f"{c}-{c}" for c in args.cores[:k])
    else:
        e["SHOAL_CPU_DEVICES"] = f"{args.cores[0]}-{args.cores[k - 1]}" if k > 1 \
            else f"{args.cores[0]}-{args.cores[0]}"
        mode = {"clusters": "batch", "auto": "auto", "split": "split"}[kind]
    program = os.path.join(out_dir, f"{os.path.basename(onnx_path)[:-5]}_{kind}{k}.shoal")
    if not os.path.exists(program) or os.path.getmtime(program) < args.started:
        rb.run([shoal, "compile", onnx_path, "-o", program, "--devices", str(devices),
                "--clusters", str(clusters), "--mode", mode], timeout=600, env=e)
    batch = 1 if kind == "split" else PER_CORE * k
    out, _ = rb.run([shoal, "bench", program, "--batch", str(batch), "--warmup",
                     str(args.warmup), "--iters", str(args.iters), "--max-time",
                     str(args.max_time), "--json"], timeout=args.timeout, env=e)
    return json.loads(out)


def ort_case(model_file, k, batch, args):
    class A:  # the options bench_ort reads
        warmup, iters, max_time, timeout = args.warmup, args.iters, args.max_time, args.timeout
    return rb.bench_ort(model_file, batch, k, A)


def paired_speedup(row, base, kind, one_ms):
    """The median over repetitions of (one core's ms / this row's ms), each
    ratio from the same repetition; at k = 1, against the k = 1 row."""
    reps = row["reps_ms"]
    if base not in reps:
        return one_ms / row["ms"][kind]
    return statistics.median(b / v for b, v in zip(reps[base], reps[kind]))


def measure(name, files, shoal, env, out_dir, args):
    rows = []
    for k in range(1, len(args.cores) + 1):
        kinds = ["clusters", "devices", "auto", "split"]
        base_of = {"split_base": "split", "ort_one_base": "ort_one"}  # the same on 1 core
        paired = list(base_of) if k > 1 else []
        samples = {kind: [] for kind in kinds + ["ort_batch", "ort_one"] + paired}
        batch = PER_CORE * k
        ort_batch_model = rb.batch_model(name, batch, args.build)
        for rep in range(args.reps):
            rb.wait_for_builds(args.idle_wait)
            # A one-core base runs right after the case it is paired with
            # (before it, on odd repetitions), a second or two apart.
            order = kinds + ["ort_batch", "ort_one"]
            for base in paired:
                order.insert(order.index(base_of[base]) + 1, base)
            if rep % 2:
                order.reverse()
            for kind in order:
                what, cores = base_of.get(kind, kind), 1 if kind in base_of else k
                if what == "ort_batch":
                    r = ort_case(ort_batch_model, cores, batch, args)
                elif what == "ort_one":
                    r = ort_case(files["onnx"], cores, 1, args)
                else:
                    r = shoal_case(shoal, env, files["onnx"], out_dir, cores, what, args)
                samples[kind].append(r["median_ms"])
        ms = {kind: statistics.median(v) for kind, v in samples.items()}
        row = {"model": name, "cores": k, "batch": batch, "ms": ms, "reps_ms": samples,
               "images_per_s": {kind: batch * 1000.0 / ms[kind]
                                for kind in ("clusters", "devices", "auto", "ort_batch")}}
        rows.append(row)
        rb.log(f"  {name} k={k}: " + ", ".join(f"{kk} {v:.2f} ms" for kk, v in ms.items()))
    one_ms = rows[0]["ms"]["split"]
    for row in rows:
        k = row["cores"]
        # Each configuration against ITSELF on one core (onnxruntime against
        # onnxruntime), so an efficiency says how that engine scales.
        row["efficiency"] = {kind: row["images_per_s"][kind] /
                             (k * rows[0]["images_per_s"][kind])
                             for kind in ("clusters", "devices", "auto", "ort_batch")}
        row["split_speedup"] = paired_speedup(row, "split_base", "split", one_ms)
        row["ort_one_speedup"] = paired_speedup(row, "ort_one_base", "ort_one",
                                                rows[0]["ms"]["ort_one"])
        # Like with like: shoal's default configuration (auto mode), no best-of.
        row["ratio_batch"] = row["ms"]["ort_batch"] / row["ms"]["auto"]
        row["ratio_one"] = row["ms"]["ort_one"] / row["ms"]["split"]
    return rows


def table(rows):
    head = ("| model | cores | batch | clusters img/s (eff) | devices img/s (eff) | "
            "auto img/s (eff) | ort img/s (eff) | ort/shoal batch (auto) | split ms (speedup) | "
            "ort 1 ms (speedup) | ort/shoal 1 |")
    lines = [head, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        ips, eff = r["images_per_s"], r["efficiency"]
        cell = lambda kind: f"{ips[kind]:.1f} ({eff[kind]:.2f})"  # noqa: E731
        lines.append(
            f"| {r['model']} | {r['cores']} | {r['batch']} | {cell('clusters')} | "
            f"{cell('devices')} | {cell('auto')} | {cell('ort_batch')} | "
            f"{r['ratio_batch']:.3f} | {r['ms']['split']:.2f} ({r['split_speedup']:.2f}x) | "
            f"{r['ms']['ort_one']:.2f} ({r['ort_one_speedup']:.2f}x) | {r['ratio_one']:.3f} |")
    return "\n".join(lines)


def chart(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({r["model"] for r in result["rows"]})
    fig, axes = plt.subplots(2, len(models), figsize=(5.5 * len(models), 8), squeeze=False)
    for j, m in enumerate(models):
        rows = [r for r in result["rows"] if r["model"] == m]
        ks = [r["cores"] for r in rows]
        ax = axes[0][j]
        for kind, label in (("clusters", "shoal: k clusters"), ("devices", "shoal: k devices"),
                            ("auto", "shoal: auto mode"), ("ort_batch", "onnxruntime")):
            ax.plot(ks, [r["images_per_s"][kind] for r in rows], marker="o", label=label)
        ax.plot(ks, [k * rows[0]["images_per_s"]["clusters"] for k in ks], "k:",
                label="linear (1 cluster x k)")
        ax.set_title(f"{m}: throughput, batch 8 per core")
        ax.set_xlabel("cores")
        ax.set_ylabel("images/s")
        ax.set_xticks(ks)
        ax.legend(fontsize=8)
        ax = axes[1][j]
        ax.plot(ks, [r["ms"]["split"] for r in rows], marker="o", label="shoal split mode")
        ax.plot(ks, [r["ms"]["ort_one"] for r in rows], marker="o", label="onnxruntime")
        ax.set_title(f"{m}: latency of one input")
        ax.set_xlabel("cores")
        ax.set_ylabel("ms")
        ax.set_xticks(ks)
        ax.legend(fontsize=8)
    fig.suptitle(f"{result['machine']['cpu']} - shoal {result['versions']['shoal']}, "
                 f"onnxruntime {result['versions']['onnxruntime']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="resnet50,squeezenet1_1")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--max-time", type=float, default=4.0)
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--idle-wait", type=int, default=600)
    ap.add_argument("--build", default=os.path.join(rb.ROOT, "build"))
    ap.add_argument("--out", default=os.path.join(rb.BENCH, "results"))
    ap.add_argument("--name", default="scaling")
    ap.add_argument("--replot", metavar="JSON")
    args = ap.parse_args(argv)
    if args.replot:
        with open(args.replot) as f:
            result = json.load(f)
        chart(result, os.path.splitext(args.replot)[0] + ".png")
        return 0
    args.cores = sorted(os.sched_getaffinity(0))
    args.started = time.time()
    models = [m for m in args.models.split(",") if m]
    shoal, env = rb.snapshot_shoal(args.build)
    ort_version = rb.ensure_ort()
    out_dir = os.path.join(args.build, "bench-data")
    files = rb.prepare_models(models, [1], args.build, shoal, env)
    t0 = time.monotonic()
    rows = []
    for name in models:
        rows += measure(name, files[name], shoal, env, out_dir, args)
    result = {
        "machine": rb.machine_info(),
        "versions": {"shoal": rb.run([shoal, "--version"], env=env)[0].split()[-1],
                     "onnxruntime": ort_version},
        "settings": {"reps": args.reps, "iters": args.iters, "warmup": args.warmup,
                     "per_core_batch": PER_CORE, "cores": args.cores},
        "wall_s": time.monotonic() - t0,
        "rows": rows,
    }
    print(table(rows))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{args.name}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    chart(result, os.path.join(args.out, f"{args.name}.png"))
    print(f"wrote {os.path.relpath(path)} and {args.name}.png "
          f"({result['wall_s']:.0f} s of measuring)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
