#!/usr/bin/python3
"""Writes tests/data/ort/: int8 QDQ models, their inputs, and what
onnxruntime computes for them, so that CI (which has no onnxruntime) checks
shoal's int8 execution against onnxruntime's (tests/python/test_int8_ort.py).

Needs onnxruntime-node (npm install --ignore-scripts in bench/, see
bench/ort_run.js). Run from the repository root with the build's Python
package on the path:

    PYTHONPATH=build/python /usr/bin/python3 scripts/make_ort_fixtures.py

Each case is NAME.qdq.onnx (quantized by shoal.quantize, percentile
calibration), NAME.x.npy (inputs, none a calibration sample) and
NAME.ort.npy (onnxruntime's output, one run per input: optimizations 'all',
one thread), plus README.md naming the onnxruntime version.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import shoal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "ort")


def block_model(rng):
    """An EfficientNet-style block with a residual Add and a classifier:
    1x1 Conv, SiLU, depthwise Conv, SiLU, squeeze-excitation, 1x1 Conv, Add,
    GlobalAveragePool, Flatten, Gemm."""
    c, r = 16, 4

    def w(*s):
        return (rng.standard_normal(s) * 0.3).astype(np.float32)

    inits = {"w1": w(c, 3, 1, 1), "w2": w(c, 1, 3, 3), "wr": w(r, c, 1, 1), "br": w(r),
             "we": w(c, r, 1, 1), "be": w(c), "w3": w(c, c, 1, 1), "wf": w(10, c), "bf": w(10)}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="c1"),
             helper.make_node("Sigmoid", ["c1"], ["s1"]),
             helper.make_node("Mul", ["c1", "s1"], ["a1"]),
             helper.make_node("Conv", ["a1", "w2"], ["c2"], name="dw", group=c, pads=[1] * 4),
             helper.make_node("Sigmoid", ["c2"], ["s2"]),
             helper.make_node("Mul", ["c2", "s2"], ["a2"]),
             helper.make_node("GlobalAveragePool", ["a2"], ["g"], name="gap"),
             helper.make_node("Conv", ["g", "wr", "br"], ["r1"], name="reduce"),
             helper.make_node("Sigmoid", ["r1"], ["rs"]),
             helper.make_node("Mul", ["r1", "rs"], ["ra"]),
             helper.make_node("Conv", ["ra", "we", "be"], ["e1"], name="expand"),
             helper.make_node("Sigmoid", ["e1"], ["es"]),
             helper.make_node("Mul", ["es", "a2"], ["se"], name="scale"),
             helper.make_node("Conv", ["se", "w3"], ["c3"], name="c3"),
             helper.make_node("Add", ["c3", "a1"], ["res"], name="residual"),
             helper.make_node("GlobalAveragePool", ["res"], ["p"], name="head"),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], name="fc", transB=1)]
    graph = helper.make_graph(
        nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        initializer=[numpy_helper.from_array(v, n) for n, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def ort_outputs(model_path, x):
    runner = os.path.join(ROOT, "bench", "ort_run.js")
    ys = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(x.shape[0]):
            xi = os.path.join(tmp, "x.f32")
            yi = os.path.join(tmp, "y.f32")
            x[i:i + 1].astype("<f4").tofile(xi)
            shape = ",".join(str(d) for d in (1,) + x.shape[1:])
            subprocess.run(["node", runner, model_path, xi, shape, yi], check=True)
            ys.append(np.fromfile(yi, "<f4"))
    return np.stack(ys)


def ort_version():
    out = subprocess.run(["node", "-e", "console.log(require(process.argv[1]).version)",
                          os.path.join(ROOT, "bench", "node_modules", "onnxruntime-node",
                                       "package.json")],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def main():
    os.makedirs(OUT, exist_ok=True)
    digits = os.path.join(ROOT, "models", "digits")
    hx = np.load(os.path.join(digits, "heldout_x.npy")).astype(np.float32)
    rng = np.random.default_rng(2026)
    cases = {
        "digits_cnn": (onnx.load(os.path.join(digits, "digits_cnn.onnx")), hx[:100], hx[100:132]),
        "se_block": (block_model(rng),
                     rng.standard_normal((32, 3, 12, 12)).astype(np.float32),
                     rng.standard_normal((16, 3, 12, 12)).astype(np.float32)),
    }
    for name, (model, calibration, x) in cases.items():
        q = shoal.quantize(model, calibration=calibration, method="percentile")
        path = os.path.join(OUT, name + ".qdq.onnx")
        onnx.save(q, path)
        np.save(os.path.join(OUT, name + ".x.npy"), x)
        np.save(os.path.join(OUT, name + ".ort.npy"), ort_outputs(path, x))
        print(name, "written")
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("# onnxruntime's outputs for int8 QDQ models\n\n"
                "Written by `scripts/make_ort_fixtures.py` with onnxruntime " + ort_version() +
                " (onnxruntime-node, CPU, optimizations 'all', one thread) and shoal's quantizer "
                "(percentile calibration); read by `tests/python/test_int8_ort.py`. Regenerate "
                "them when the quantizer changes what it writes.\n")


if __name__ == "__main__":
    sys.exit(main())
