#!/usr/bin/python3
"""Classifies the held-out 8x8 digits with shoal: the main job, end to end.

Compiles models/digits/digits_cnn.onnx (input shape "8x8x1"), saves the
program, loads it back, runs the held-out images in batches and compares with
PyTorch (models/digits/torch_logits.npy, made by scripts/train_digits.py):
prints shoal's accuracy, PyTorch's accuracy, the largest logit difference and
the throughput. Exits 1 if the accuracies differ or the logits differ by more
than --tolerance * max(1, range of PyTorch's logits); 2 on a shoal error.

Run from a build:  PYTHONPATH=build/python /usr/bin/python3 \\
                       examples/classify_digits.py [--batch 32]
"""

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
MODEL_DIR = os.path.join(SOURCE_DIR, "models", "digits")
BUILD_DIR = os.environ.get("SHOAL_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")

try:
    import shoal
except ImportError:
    # Not on PYTHONPATH: try the in-tree build.
    sys.path.insert(0, os.path.join(BUILD_DIR, "python"))
    try:
        import shoal
    except ImportError:
        shoal = None


def load_data(model_dir=MODEL_DIR):
    """Returns (x float32 [N,1,8,8], y int64 [N], torch_logits float32 [N,10])."""
    x = np.load(os.path.join(model_dir, "heldout_x.npy"))
    y = np.load(os.path.join(model_dir, "heldout_y.npy"))
    torch_logits = np.load(os.path.join(model_dir, "torch_logits.npy"))
    return np.ascontiguousarray(x, np.float32), y, torch_logits


def classify(runtime, x, batch):
    """Runs x through the runtime `batch` samples at a time.

    Returns (logits [N,10] float32, seconds spent in run()).
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    parts, seconds = [], 0.0
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        t0 = time.perf_counter()
        (logits,) = runtime.run(xb)
        seconds += time.perf_counter() - t0
        if logits.shape != (len(xb), 10):
            raise RuntimeError(f"unexpected output shape {logits.shape} "
                               f"for a batch of {len(xb)}")
        parts.append(np.array(logits, dtype=np.float32, copy=True))
    return np.concatenate(parts), seconds


def main_job(program_path, batch=32, model_dir=MODEL_DIR, log=print):
    """Compile -> save -> load -> classify. Returns a dict of results."""
    if shoal is None:
        raise SystemExit("error: cannot import shoal; set PYTHONPATH to the "
                         "build's python directory (e.g. build/python)")
    x, y, torch_logits = load_data(model_dir)
    onnx_path = os.path.join(model_dir, "digits_cnn.onnx")

    t0 = time.perf_counter()
    program = shoal.compile(onnx_path, shape="8x8x1")
    compile_s = time.perf_counter() - t0
    os.makedirs(os.path.dirname(os.path.abspath(program_path)), exist_ok=True)
    program.save(program_path)
    loaded = shoal.load(program_path)
    log(f"compiled {os.path.relpath(onnx_path)} in {compile_s * 1e3:.1f} ms, "
        f"saved {program_path} ({os.path.getsize(program_path)} bytes)")
    log(f"inputs {[(i.name, tuple(i.shape)) for i in loaded.inputs]}, "
        f"outputs {[(o.name, tuple(o.shape)) for o in loaded.outputs]}, "
        f"output_size {loaded.output_size(0)}")

    runtime = shoal.Runtime(loaded)
    runtime.run(x[:batch])  # warm-up, not timed
    logits, seconds = classify(runtime, x, batch)

    correct = int((logits.argmax(1) == y).sum())
    torch_correct = int((torch_logits.argmax(1) == y).sum())
    max_diff = float(np.abs(logits - torch_logits).max())
    logit_range = float(torch_logits.max() - torch_logits.min())
    return {
        "n": len(x),
        "batch": batch,
        "correct": correct,
        "torch_correct": torch_correct,
        "accuracy": correct / len(x),
        "torch_accuracy": torch_correct / len(x),
        "max_abs_diff": max_diff,
        "logit_range": logit_range,
        "images_per_s": len(x) / seconds if seconds > 0 else float("inf"),
        "seconds": seconds,
        "logits": logits,
        "predictions_equal": bool(
            (logits.argmax(1) == torch_logits.argmax(1)).all()),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Compile the bundled digits CNN with shoal, classify the "
                    "held-out digits and compare with PyTorch.")
    ap.add_argument("--program", default=os.path.join(BUILD_DIR, "digits.shoal"),
                    help="where to save the compiled program "
                         "(default: %(default)s)")
    ap.add_argument("--batch", type=int, default=32,
                    help="samples per run() call (default: %(default)s)")
    ap.add_argument("--model-dir", default=MODEL_DIR,
                    help="directory with digits_cnn.onnx and the .npy files "
                         "(default: %(default)s)")
    ap.add_argument("--tolerance", type=float, default=1e-4,
                    help="allowed max |logit diff| / max(1, logit range) "
                         "(default: %(default)s)")
    args = ap.parse_args(argv)
    if args.batch < 1:
        ap.error("--batch must be >= 1")

    try:
        r = main_job(args.program, args.batch, args.model_dir)
    except Exception as e:  # noqa: BLE001 - report shoal errors, exit 2
        if shoal is not None and isinstance(e, shoal.Error):
            print(f"shoal error ({type(e).__name__}): {e}", file=sys.stderr)
            return 2
        raise

    n = r["n"]
    print(f"held-out samples: {n}, batch {r['batch']}")
    print(f"shoal accuracy:   {100 * r['accuracy']:.2f}% "
          f"({r['correct']}/{n})")
    print(f"PyTorch accuracy: {100 * r['torch_accuracy']:.2f}% "
          f"({r['torch_correct']}/{n})")
    print(f"max |logit diff|: {r['max_abs_diff']:.3g} "
          f"(logit range {r['logit_range']:.3g})")
    print(f"throughput:       {r['images_per_s']:.0f} images/s")

    ok = True
    if r["accuracy"] != r["torch_accuracy"]:
        print("FAIL: shoal's accuracy differs from PyTorch's", file=sys.stderr)
        ok = False
    limit = args.tolerance * max(1.0, r["logit_range"])
    if not r["max_abs_diff"] <= limit:  # also catches NaN
        print(f"FAIL: logits differ by {r['max_abs_diff']:.3g} > {limit:.3g}",
              file=sys.stderr)
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
