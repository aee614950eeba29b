#!/usr/bin/python3
"""bf16 and int8 outputs against float32 on held-out inputs (issue 13, item 5).

For each benchmark model (the torchvision exports of
scripts/export_torchvision.py: seeded random weights, BatchNorm statistics
measured on seeded random inputs; no trained weights are available offline)
runs float32, bf16 (`precision="bf16"`, where the CPU has AVX512-BF16/AMX)
and int8 (the QDQ model `shoal.quantize` writes, percentile calibration on
the same 32 random-normal inputs as bench/precision_bench.py: seed 0) on
--samples random-normal inputs of another seed (1), none of them a
calibration input, and reports against float32:

  top1_agree   the share of inputs whose top-1 class is float32's
  top1_in_f32_top5   the share whose top-1 class is among float32's top 5
  snr_db       10 log10(sum f32^2 / sum (y - f32)^2) over all outputs
  snr_db_median, snr_db_min   the same per input: median and worst

Writes bench/results/precision_accuracy.json (machine, git commit, every
number). Usage: /usr/bin/python3 bench/precision_accuracy.py [--models a,b]
[--samples 200] [--build BUILD]
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_bench as rb  # noqa: E402

MODELS = "resnet50,mobilenet_v2,efficientnet_b0"


def run_all(shoal, program, x, batch):
    rt = shoal.Runtime(program)
    return np.concatenate([rt.run(x[i:i + batch])[0] for i in range(0, len(x), batch)])


def compare(ref, y):
    def snr(r, d):
        return float(10 * np.log10(np.sum(r.astype(np.float64) ** 2) /
                                   max(np.sum((d - r).astype(np.float64) ** 2), 1e-30)))
    per = [snr(ref[i], y[i]) for i in range(len(ref))]
    top5 = np.argsort(-ref, axis=1)[:, :5]
    return {"top1_agree": float(np.mean(ref.argmax(1) == y.argmax(1))),
            "top1_in_f32_top5": float(np.mean([y[i].argmax() in top5[i]
                                               for i in range(len(y))])),
            "snr_db": snr(ref, y), "snr_db_median": float(np.median(per)),
            "snr_db_min": float(np.min(per))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--calibration-samples", type=int, default=32)
    ap.add_argument("--batch", type=int, default=20, help="inputs per run")
    ap.add_argument("--build", default=os.path.join(rb.ROOT, "build"))
    ap.add_argument("--out", default=os.path.join(rb.BENCH, "results",
                                                  "precision_accuracy.json"))
    args = ap.parse_args(argv)
    sys.path.insert(0, os.path.join(args.build, "python"))
    import shoal

    machine = rb.machine_info()
    rb.log(f"exporting {args.models} ...")
    rb.run([rb.PYTHON, os.path.join(rb.ROOT, "scripts", "export_torchvision.py"), "--out",
            os.path.join(args.build, "models"), "--models", args.models], timeout=1800)
    calibration = np.random.default_rng(0).standard_normal(
        (args.calibration_samples, 3, 224, 224)).astype(np.float32)
    x = np.random.default_rng(1).standard_normal((args.samples, 3, 224, 224)).astype(np.float32)
    results = []
    for name in args.models.split(","):
        src = os.path.join(args.build, "models", f"{name}.onnx")
        rb.log(f"{name}: quantizing, compiling, running {args.samples} inputs ...")
        ref = run_all(shoal, shoal.compile(src), x, args.batch)
        row = {"model": name, "samples": args.samples,
               "calibration_samples": args.calibration_samples, "method": "percentile"}
        try:
            row["bf16"] = compare(ref, run_all(shoal, shoal.compile(src, precision="bf16"), x,
                                               args.batch))
        except shoal.UnsupportedError as e:
            row["bf16"] = {"unsupported": str(e)}
        qdq = shoal.quantize(src, calibration=calibration, method="percentile")
        row["int8"] = compare(ref, run_all(shoal, shoal.compile(qdq), x, args.batch))
        results.append(row)
        rb.log(f"  {name}: {json.dumps({k: row[k] for k in ('bf16', 'int8')})}")
    print(f"{'model':16s} {'bf16 top-1':>11s} {'bf16 SNR':>9s} {'int8 top-1':>11s} "
          f"{'int8 SNR':>9s}  (SNR: dB over all outputs)")
    for r in results:
        b, i = r["bf16"], r["int8"]
        bf = (f"{100 * b['top1_agree']:10.1f}% {b['snr_db']:9.1f}" if "snr_db" in b
              else f"{'-':>11s} {'-':>9s}")
        print(f"{r['model']:16s} {bf} {100 * i['top1_agree']:10.1f}% {i['snr_db']:9.1f}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"machine": machine, "inputs": "random normal, seed 1 (calibration: seed 0)",
                   "weights": "seeded random (scripts/export_torchvision.py), BatchNorm "
                              "statistics measured on random inputs; not trained",
                   "results": results}, f, indent=1)
    rb.log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
