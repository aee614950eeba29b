#!/usr/bin/python3
"""Reduced precision against float32 (issue 13's targets), side by side in one run.

For each model and case (1 core batch 1, all cores batch 8 by default) times,
each repetition a fresh process per engine and the engines alternating:

  shoal f32   the float32 model (`shoal compile`)
  shoal bf16  the same model, `--precision bf16` (skipped, and said so, on a
              CPU without AVX512-BF16/AMX-BF16)
  shoal int8  the QDQ model `shoal quantize` writes (percentile calibration on
              random-normal inputs; the models have seeded random weights)
  ort f32     onnxruntime-node on the float32 model (bench/ort_bench.js)
  ort int8    onnxruntime-node on the same QDQ file

and reports the speedups against the targets: int8 ResNet-50 >= 2.5x shoal
f32 and >= 1.5x onnxruntime on the QDQ file; int8 MobileNetV2 and
EfficientNet-B0 >= 1.8x shoal f32; bf16 ResNet-50 >= 1.6x shoal f32.

Writes bench/results/precision.json (every measurement, machine, versions;
--quick: BUILD/bench-data/precision_quick.json, not a result). Uses
bench/run_bench.py's helpers (machine info, the shoal snapshot, onnxruntime
setup, the measuring commands).

Usage: /usr/bin/python3 bench/precision_bench.py [--quick] [--models a,b]
           [--cases 1:1,all:8] [--reps 3]
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_bench as rb  # noqa: E402

MODELS = "resnet50,mobilenet_v2,efficientnet_b0"
TARGETS = {  # (model, engine, against): minimum speedup
    ("resnet50", "shoal int8", "shoal f32"): 2.5,
    ("resnet50", "shoal int8", "ort int8"): 1.5,
    ("resnet50", "shoal bf16", "shoal f32"): 1.6,
    ("mobilenet_v2", "shoal int8", "shoal f32"): 1.8,
    ("efficientnet_b0", "shoal int8", "shoal f32"): 1.8,
}


def quantize(shoal, onnx_path, out, calibration, env):
    rb.run([shoal, "quantize", onnx_path, "--calibration", calibration, "--method",
            "percentile", "-o", out], timeout=1800, env=env)
    return out


def prepare(name, batches, build, shoal, env, calibration, bf16):
    """Programs and ONNX files of one model: {engine: {batch: file}}."""
    data = os.path.join(build, "bench-data")
    src = os.path.join(build, "models", f"{name}.onnx")
    qdq = quantize(shoal, src, os.path.join(data, f"{name}.qdq.onnx"), calibration, env)
    files = {"shoal f32": {}, "shoal int8": {}, "ort f32": {}, "ort int8": {}}
    if bf16:
        files["shoal bf16"] = {}
    for engine, model, extra in (("shoal f32", src, []), ("shoal int8", qdq, []),
                                 ("shoal bf16", src, ["--precision", "bf16"])):
        if engine not in files:
            continue
        program = os.path.join(data, f"{name}.{engine.split()[1]}.shoal")
        rb.run([shoal, "compile", model, "-o", program] + extra, timeout=900, env=env)
        files[engine] = {b: program for b in batches}
    for b in batches:
        f32 = src if b == 1 else rb.batch_model(name, b, build)
        files["ort f32"][b] = f32
        # The same QDQ file with a free batch dimension (shoal's quantizer
        # calibrates one-sample models, so a batch-b trace cannot be
        # quantized itself; the same file also keeps the ranges identical).
        files["ort int8"][b] = qdq if b == 1 else any_batch(
            qdq, os.path.join(data, f"{name}_anybatch.qdq.onnx"))
    return files


def any_batch(path, out):
    """`path` with dimension 0 of its graph inputs and outputs symbolic (the
    torchvision models flatten with Flatten, so nothing else names the
    batch); intermediate shapes are dropped for onnxruntime to infer."""
    import onnx
    m = onnx.load(path)
    for v in list(m.graph.input) + list(m.graph.output):
        d = v.type.tensor_type.shape.dim[0]
        d.ClearField("dim_value")
        d.dim_param = "N"
    del m.graph.value_info[:]
    onnx.save(m, out)
    return out


def measure(engine, path, batch, threads, args, shoal, env):
    if engine.startswith("shoal"):
        return rb.bench_shoal(shoal, path, batch, threads, args, None, env)
    return rb.bench_ort(path, batch, threads, args)


def main(argv=None):
    cores = len(os.sched_getaffinity(0))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--cases", default="1:1,all:8", metavar="T:B,...",
                    help="threads:batch pairs ('all': every core, here %d)" % cores)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--max-time", type=float, default=5.0)
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--idle-wait", type=int, default=600)
    ap.add_argument("--calibration-samples", type=int, default=32)
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: mobilenet_v2, 1 core batch 1, 1 rep, 3 runs, no "
                         "onnxruntime batch-8 trace")
    ap.add_argument("--build", default=os.path.join(rb.ROOT, "build"))
    ap.add_argument("--out", default=os.path.join(rb.BENCH, "results", "precision.json"))
    args = ap.parse_args(argv)
    if args.quick:
        args.models, args.cases, args.reps, args.iters, args.warmup = \
            "mobilenet_v2", "1:1", 1, 3, 1
        args.calibration_samples = 8
        args.out = os.path.join(args.build, "bench-data", "precision_quick.json")
    cases = []
    for pair in args.cases.split(","):
        t, _, b = pair.partition(":")
        cases.append((cores if t == "all" else int(t), int(b)))
    batches = sorted({b for _, b in cases})
    machine = rb.machine_info()
    machine["onnxruntime_node"] = rb.ensure_ort()
    shoal, env = rb.snapshot_shoal(args.build)
    env["PYTHONPATH"] = os.path.join(args.build, "python")  # the quantizer (the snapshot's
    # binary has no package next to it)
    bf16 = "avx512_bf16" in machine.get("isa", []) or "amx_tile" in machine.get("isa", [])
    data = os.path.join(args.build, "bench-data")
    os.makedirs(data, exist_ok=True)
    calibration = os.path.join(data, "precision_calibration.npy")
    np.save(calibration, np.random.default_rng(0).standard_normal(
        (args.calibration_samples, 3, 224, 224)).astype(np.float32))
    models = args.models.split(",")
    rb.log(f"exporting {args.models} ...")
    rb.run([rb.PYTHON, os.path.join(rb.ROOT, "scripts", "export_torchvision.py"), "--out",
            os.path.join(args.build, "models"), "--models", args.models], timeout=1800)
    results = []
    for name in models:
        files = prepare(name, batches, args.build, shoal, env, calibration, bf16)
        for threads, batch in cases:
            case = {"model": name, "threads": threads, "batch": batch,
                    "idle": rb.wait_for_builds(args.idle_wait), "loadavg": os.getloadavg(),
                    "runs": {e: [] for e in files}}
            for rep in range(args.reps):
                order = list(files) if rep % 2 == 0 else list(reversed(files))
                for engine in order:
                    r = measure(engine, files[engine][batch], batch, threads, args, shoal, env)
                    case["runs"][engine].append(r)
                    rb.log(f"  {name} {threads}c b{batch} {engine:10s} {r['median_ms']:9.2f} ms")
            case["median_ms"] = {e: rb.summarize(rs, "median_ms")
                                 for e, rs in case["runs"].items()}
            results.append(case)
    print(f"{'model':16s} {'cores':>5s} {'batch':>5s} " +
          " ".join(f"{e:>11s}" for e in ("shoal f32", "shoal bf16", "shoal int8", "ort f32",
                                         "ort int8")) + "   (median ms)")
    verdicts = []
    for c in results:
        ms = c["median_ms"]
        print(f"{c['model']:16s} {c['threads']:5d} {c['batch']:5d} " +
              " ".join(f"{ms[e]:11.2f}" if ms.get(e) else f"{'-':>11s}"
                       for e in ("shoal f32", "shoal bf16", "shoal int8", "ort f32",
                                 "ort int8")))
        for (model, engine, against), need in TARGETS.items():
            if model == c["model"] and ms.get(engine) and ms.get(against):
                x = ms[against] / ms[engine]
                verdicts.append({"model": model, "threads": c["threads"], "batch": c["batch"],
                                 "engine": engine, "against": against, "speedup": x,
                                 "target": need, "met": x >= need})
    for v in verdicts:
        print(f"  {v['model']} {v['threads']}c b{v['batch']}: {v['engine']} is "
              f"{v['speedup']:.2f}x {v['against']} (target {v['target']}x: "
              f"{'met' if v['met'] else 'NOT met'})")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"machine": machine, "quick": args.quick, "cases": results,
                   "targets": verdicts}, f, indent=1)
    rb.log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
