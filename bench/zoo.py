#!/usr/bin/python3
"""The model zoo: every torchvision classification model whose weights are
under 600 MB, and four segmentation models, through shoal and onnxruntime.

For each model: export with seeded random weights (scripts/
export_torchvision.py: measured BatchNorm statistics, no zero parameters;
cached in BUILD/zoo), compile with shoal, run the exported input and compare
with the network's float64 output (matches: max |error| <= 1e-4 of the output
range, or <= TORCH_FACTOR times PyTorch's own float32 error, whichever is
larger: deep networks such as resnet152 round by more than 1e-4 of the range
in float32, PyTorch included),
list the layers that run slow reference kernels, then time shoal and
onnxruntime at 1 core, batch 1 (alternating, --reps fresh processes each,
medians). A model that fails to export, compile or run is a row saying so.

Writes bench/results/zoo.json (every measurement, machine, commit) and
docs/MODELS.md (the table). Needs build/bin/shoal and the onnxruntime-node
package that run_bench.py installs.

Usage: /usr/bin/python3 bench/zoo.py [--models a,b] [--reps 1] [--iters 5]
           [--no-timing] [--doc docs/MODELS.md] [--update]
--update re-runs the --models only and replaces their rows in the JSON (each
such row records its commit and date).
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run_bench as rb  # noqa: E402

MAX_WEIGHT_MB = 600
# A model matches when shoal's float32 error (against float64) is within
# 1e-4 of the output range, or within this many times PyTorch's own float32
# error where that is larger.
TORCH_FACTOR = 4
SEGMENTATION = ["fcn_resnet50", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large",
                "lraspp_mobilenet_v3_large"]


def zoo_models():
    """torchvision's classification models under MAX_WEIGHT_MB (fp32
    parameters), then the segmentation models."""
    import torch
    import torchvision
    names = []
    for name in sorted(torchvision.models.list_models(module=torchvision.models)):
        model = getattr(torchvision.models, name)(weights=None)
        mb = sum(p.numel() for p in model.parameters()) * 4 / 1e6
        del model
        if mb < MAX_WEIGHT_MB:
            names.append((mb, name))
    # Smallest first: an interrupted run has covered the most models.
    return [n for _, n in sorted(names)] + SEGMENTATION


def export(name, out):
    script = os.path.join(rb.ROOT, "scripts", "export_torchvision.py")
    p = subprocess.run([rb.PYTHON, script, "--out", out, "--models", name],
                       capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        lines = (p.stderr or p.stdout).strip().splitlines()
        return lines[-1] if lines else f"exit {p.returncode}"
    return None


def check(name, out, build):
    """Compiles and runs the model in this process's shoal module (from
    `build`); returns the row's correctness fields."""
    sys.path.insert(0, os.path.join(build, "python"))
    import shoal as sh
    row = {}
    onnx_path = os.path.join(out, f"{name}.onnx")
    t0 = time.monotonic()
    program = sh.compile(onnx_path)
    row["compile_s"] = time.monotonic() - t0
    program.save(os.path.join(out, f"{name}.shoal"))
    x = np.load(os.path.join(out, f"{name}_input.npy"))
    want32 = np.load(os.path.join(out, f"{name}_expected.npy"))
    want = np.load(os.path.join(out, f"{name}_expected64.npy"))
    rt = sh.Runtime(program)
    (y,) = rt.run(x)
    # Errors against the float64 answer, as fractions of the output range.
    # PyTorch's own float32 run has one too (deep networks: 1e-4 and more),
    # so a model matches when shoal's is within 1e-4 of the range or within
    # TORCH_FACTOR times PyTorch's float32 error.
    rng = float(want.max() - want.min())
    err = float(np.abs(y.astype(np.float64) - want).max()) / rng
    torch_err = float(np.abs(want32.astype(np.float64) - want).max()) / rng
    row.update(rel_err=err, torch_fp32_rel_err=torch_err, output_range=rng,
               matches=err <= max(1e-4, TORCH_FACTOR * torch_err))
    plan = rt.plan()
    row["reference_layers"] = [] if "every layer runs a fast kernel" in plan else \
        plan.split("the slow reference kernels: ")[1].split(", ")
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description="shoal over the torchvision zoo.")
    ap.add_argument("--models", default=None, help="comma list (default: the whole zoo)")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--max-time", type=float, default=3.0)
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--idle-wait", type=int, default=600)
    ap.add_argument("--no-timing", action="store_true", help="correctness only")
    ap.add_argument("--build", default=os.path.join(rb.ROOT, "build"))
    ap.add_argument("--json", default=os.path.join(HERE, "results", "zoo.json"))
    ap.add_argument("--doc", default=os.path.join(rb.ROOT, "docs", "MODELS.md"))
    ap.add_argument("--doc-only", action="store_true",
                    help="only rewrite the doc from the JSON (no model is run)")
    ap.add_argument("--update", action="store_true",
                    help="re-run --models only and replace their rows in the JSON; each such "
                         "row records its own commit and date (same machine required)")
    args = ap.parse_args(argv)
    if args.doc_only:
        with open(args.json) as f:
            write_doc(json.load(f), args.doc, os.path.relpath(args.json, rb.ROOT))
        return 0
    models = args.models.split(",") if args.models else zoo_models()
    out = os.path.join(args.build, "zoo")
    os.makedirs(out, exist_ok=True)
    shoal, env = rb.snapshot_shoal(args.build)
    if not args.no_timing:
        rb.ensure_ort()
    rows = []
    import torchvision
    result = {"machine": rb.machine_info(), "date": datetime.date.today().isoformat(),
              "torchvision": torchvision.__version__,
              "settings": {"threads": 1, "batch": 1, "reps": args.reps, "iters": args.iters},
              "models": rows, "planned": models}
    if args.update:
        if not args.models:
            rb.die("--update needs --models")
        with open(args.json) as f:
            old = json.load(f)
        now = result["machine"]
        if any(old["machine"].get(k) != now.get(k) for k in ("cpu", "cpu_family", "cpu_model")):
            rb.die(f"--update: {args.json} was measured on another machine")
        result, rows = old, old["models"]
    for name in models:
        save(result, args)  # after every model: an interrupted run keeps its rows
        rb.log(f"{name} ...")
        row = {"model": name}
        if args.update:  # in place of its old row (or at the end)
            row.update(git=rb.machine_info().get("git"), date=datetime.date.today().isoformat())
            at = next((i for i, r in enumerate(rows) if r["model"] == name), len(rows))
            rows[at:at + 1] = [row]
        else:
            rows.append(row)
        err = export(name, out)
        if err:
            row["error"] = f"export: {err}"
            rb.log(f"  {row['error']}")
            continue
        try:
            row.update(check(name, out, args.build))
        except Exception as e:  # a row, not a crash: the table shows it
            row["error"] = f"{type(e).__name__}: {e}"[:300]
            rb.log(f"  {row['error']}")
            continue
        if args.no_timing:
            remove_quietly(os.path.join(out, f"{name}.shoal"))
            continue
        onnx_path = os.path.join(out, f"{name}.onnx")
        case = {"model": name, "batch": 1, "threads": 1}
        files = {name: {"program": os.path.join(out, f"{name}.shoal"),
                        "ort": {1: onnx_path}}}
        try:
            rb.run_case(case, files, shoal, env, args, None)
            row["shoal_ms"] = case["shoal"]["median_ms"]
            row["ort_ms"] = case["onnxruntime"]["median_ms"]
            row["ratio"] = case["ratio"]
        except SystemExit:
            row["error"] = "timing failed (see the log)"
        finally:
            # Programs are compiled afresh on every run; kept, the whole
            # zoo's filled 16 GB of disk.
            remove_quietly(files[name]["program"])
        rb.log(f"  {json.dumps({k: v for k, v in row.items() if k != 'model'})}")
    save(result, args)
    print(f"wrote {os.path.relpath(args.json, rb.ROOT)} and {os.path.relpath(args.doc, rb.ROOT)}")
    return 0


def remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def save(result, args):
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    write_doc(result, args.doc, os.path.relpath(args.json, rb.ROOT))


def write_doc(result, path, json_rel):
    m = result["machine"]
    rows = result["models"]
    done = {r["model"] for r in rows}
    left = [n for n in result.get("planned", []) if n not in done]
    ok = sum(1 for r in rows if r.get("matches"))
    fast = sum(1 for r in rows if r.get("matches") and not r.get("reference_layers"))
    lines = [
        "# Model zoo",
        "",
        "Generated by `bench/zoo.py` from `" + json_rel + "`; do not edit by hand.",
        "",
        f"Every torchvision {result.get('torchvision', '')} classification model "
        f"with weights under {MAX_WEIGHT_MB} MB, and four segmentation models, exported at "
        "opset 13 with seeded random weights (measured BatchNorm statistics, no zero "
        "parameters) by `scripts/export_torchvision.py`, input [1,3,224,224] "
        "(inception_v3: 299x299). Errors are against the same network run in "
        "float64 by PyTorch, as fractions of the output range: *shoal err* is shoal's, "
        "*torch err* PyTorch's own in float32. *matches*: shoal err <= 1e-4, or <= "
        f"{TORCH_FACTOR}x torch err where that is larger (deep networks round by more than "
        "1e-4 in float32, PyTorch included). Times: "
        "1 core, batch 1, medians of alternating fresh processes "
        f"({result['settings']['reps']} per engine); ratio = onnxruntime ms / shoal ms "
        "(> 1: shoal is faster).",
        "",
        f"Machine: {m.get('cpu', '?')} (family {m.get('cpu_family', '?')}, model "
        f"{m.get('cpu_model', '?')}), commit {m.get('git', '?')}, {result['date']}"
        + (f"; the rows marked with a commit were measured again later (`--update`), "
           f"on the same machine" if any("git" in r for r in rows) else "")
        + ". "
        + ("Rows without a torch err are older: their error is against PyTorch's float32 "
           "output, and they match within 1e-4 of the range (+1e-5). "
           if any("max_diff" in r and "rel_err" not in r for r in rows) else "")
        + f"{ok} of {len(rows)} models match; {fast} run every layer on a fast kernel."
        + (f" Not run yet (the run was stopped): {', '.join(left)}." if left else ""),
        "",
        "| model | matches | shoal err | torch err | shoal ms | onnxruntime ms | ratio | "
        "layers on reference kernels |",
        "|---|---|--:|--:|--:|--:|--:|---|",
    ]
    for r in rows:
        if "error" in r and "matches" not in r:
            err = " ".join(r["error"].replace("|", "/").split())  # one table row
            name = r["model"] + (f" ({r['git']})" if "git" in r else "")
            lines.append(f"| {name} | no: {err[:240]} | | | | | | |")
            continue
        rel = r.get("rel_err")
        if rel is None and r.get("output_range"):  # results written before float64 references
            rel = r["max_diff"] / r["output_range"]
        slow = r.get("reference_layers") or []
        ops = sorted({s.split(" ")[0] for s in slow})
        name = r["model"] + (f" ({r['git']})" if "git" in r else "")
        lines.append(
            f"| {name} | {'yes' if r['matches'] else '**no**'} | "
            f"{rb.fmt(rel, '.1e')} | {rb.fmt(r.get('torch_fp32_rel_err'), '.1e')} | "
            f"{rb.fmt(r.get('shoal_ms'), '.1f')} | "
            f"{rb.fmt(r.get('ort_ms'), '.1f')} | {rb.fmt(r.get('ratio'), '.2f')} | "
            f"{(str(len(slow)) + ': ' + ', '.join(ops)) if slow else ''} |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
