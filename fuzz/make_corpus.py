#!/usr/bin/env python3
"""Writes the fuzzers' seed corpus: tiny ONNX models (fuzz/corpus/onnx/) and
programs compiled from some of them (fuzz/corpus/program/).

Run from the repository root after a build:
    PYTHONPATH=build/python /usr/bin/python3 fuzz/make_corpus.py
The outputs are committed; rerun only to change the seeds. Every file is kept
small (a few hundred bytes) so that mutations stay cheap.
"""

import os
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = pathlib.Path(__file__).resolve().parents[1]
F = TensorProto.FLOAT
rng = np.random.default_rng(7)


def w(*shape):
    # Small integers: cheap to mutate, and exact in float32.
    return rng.integers(-3, 4, size=shape).astype(np.float32)


def model(name, nodes, inputs, outputs, inits=(), opset=13, ir_version=8):
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in inits]
    graph_inputs = [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs]
    if ir_version < 4:  # initializers are graph inputs too
        graph_inputs += [helper.make_tensor_value_info(t.name, t.data_type, t.dims)
                         for t in inits]
    graph = helper.make_graph(
        nodes, name, graph_inputs,
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs], initializer=inits)
    m = helper.make_model(graph, producer_name="shoal-fuzz",
                          opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = ir_version
    onnx.checker.check_model(m)
    return m


def models():
    yield "relu", model("relu", [helper.make_node("Relu", ["x"], ["y"])],
                        [("x", F, [1, 3, 4, 4])], [("y", F, [1, 3, 4, 4])])
    yield "conv_relu", model(
        "conv_relu",
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1],
                          kernel_shape=[3, 3], strides=[1, 1]),
         helper.make_node("Relu", ["c"], ["y"])],
        [("x", F, [1, 2, 4, 4])], [("y", F, [1, 2, 4, 4])],
        [("w", w(2, 2, 3, 3)), ("b", w(2))])
    yield "gemm_softmax", model(
        "gemm_softmax",
        [helper.make_node("Flatten", ["x"], ["f"], axis=1),
         helper.make_node("Gemm", ["f", "w", "b"], ["g"], transB=1),
         helper.make_node("Softmax", ["g"], ["y"], axis=-1)],
        [("x", F, [1, 2, 2, 2])], [("y", F, [1, 3])],
        [("w", w(3, 8)), ("b", w(3))])
    yield "two_inputs", model(
        "two_inputs",
        [helper.make_node("Add", ["a", "b"], ["s"]),
         helper.make_node("Mul", ["s", "k"], ["y"])],
        [("a", F, [1, 2, 3, 3]), ("b", F, [1, 2, 1, 3])], [("y", F, [1, 2, 3, 3])],
        [("k", w(2, 1, 1))])
    yield "pools_concat", model(
        "pools_concat",
        [helper.make_node("MaxPool", ["x"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
         helper.make_node("AveragePool", ["x"], ["a"], kernel_shape=[3, 3],
                          strides=[2, 2], pads=[1, 1, 1, 1]),
         helper.make_node("Concat", ["m", "a"], ["c"], axis=1),
         helper.make_node("GlobalAveragePool", ["c"], ["y"])],
        [("x", F, [1, 2, 4, 4])], [("y", F, [1, 4, 1, 1])])
    yield "shape_ops", model(
        "shape_ops",
        [helper.make_node("Reshape", ["x", "shape"], ["r"]),
         helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
         helper.make_node("Slice", ["t", "starts", "ends", "axes"], ["s"]),
         helper.make_node("Gather", ["s", "idx"], ["y"], axis=2)],
        [("x", F, [1, 2, 3, 2])], [("y", F, [1, 6, 1])],
        [("shape", np.array([1, 2, 6], np.int64)),
         ("starts", np.array([0], np.int64)), ("ends", np.array([6], np.int64)),
         ("axes", np.array([1], np.int64)), ("idx", np.array([1], np.int64))])
    yield "bn_clip_pad", model(
        "bn_clip_pad",
        [helper.make_node("BatchNormalization", ["x", "g", "be", "mu", "var"], ["n"]),
         helper.make_node("Clip", ["n", "lo", "hi"], ["c"]),
         helper.make_node("Pad", ["c", "pads"], ["y"], mode="constant")],
        [("x", F, [1, 2, 2, 2])], [("y", F, [1, 2, 4, 4])],
        [("g", w(2)), ("be", w(2)), ("mu", w(2)), ("var", np.ones(2, np.float32)),
         ("lo", np.array(0, np.float32)), ("hi", np.array(6, np.float32)),
         ("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))])
    yield "dynamic_batch", model(
        "dynamic_batch",
        [helper.make_node("Sigmoid", ["x"], ["s"]),
         helper.make_node("ReduceMean", ["s"], ["y"], axes=[2, 3], keepdims=1)],
        [("x", F, ["N", 2, 3, 3])], [("y", F, ["N", 2, 1, 1])])
    yield "resize_convt", model(
        "resize_convt",
        [helper.make_node("Resize", ["x", "", "scales"], ["r"], mode="nearest"),
         helper.make_node("ConvTranspose", ["r", "w"], ["y"], strides=[2, 2])],
        [("x", F, [1, 1, 2, 2])], [("y", F, [1, 1, 9, 9])],
        [("scales", np.array([1, 1, 2, 2], np.float32)), ("w", w(1, 1, 3, 3))])

    # Opsets below 7 go through ONNX's version converter.
    yield "opset6_bn_elu", model(
        "opset6_bn_elu",
        [helper.make_node("Conv", ["x", "w"], ["c"]),
         helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"], is_test=1),
         helper.make_node("Elu", ["n"], ["e"]),
         helper.make_node("Dropout", ["e"], ["y"], is_test=1)],
        [("x", F, [1, 1, 3, 3])], [("y", F, [1, 2, 2, 2])],
        [("w", w(2, 1, 2, 2)), ("s", w(2)), ("b", w(2)), ("m", w(2)),
         ("v", np.float32([1, 2]))], opset=6, ir_version=3)
    yield "opset1_reshape_concat", model(
        "opset1_reshape_concat",
        [helper.make_node("Concat", ["x", "x"], ["c"]),
         helper.make_node("Reshape", ["c"], ["y"], shape=[1, 8])],
        [("x", F, [1, 2, 2])], [("y", F, [1, 8])], opset=1, ir_version=3)
    # A dim of 0, and the reference-only modes and outputs.
    yield "zero_size", model(
        "zero_size",
        [helper.make_node("Split", ["x", "sp"], ["a", "b"], axis=1),
         helper.make_node("MatMul", ["a", "k"], ["y"])],
        [("x", F, [1, 0, 3])], [("y", F, [1, 0, 2]), ("b", F, [1, 0, 3])],
        [("sp", np.array([0, 0])), ("k", w(3, 2))])
    yield "resize_cubic_crop", model(
        "resize_cubic_crop",
        [helper.make_node("Resize", ["x", "", "scales"], ["r"], mode="cubic",
                          exclude_outside=1),
         helper.make_node("Resize", ["r", "roi", "", "sizes"], ["y"],
                          coordinate_transformation_mode="tf_crop_and_resize")],
        [("x", F, [1, 1, 2, 2])], [("y", F, [1, 1, 3, 3])],
        [("scales", np.array([1, 1, 2, 2], np.float32)),
         ("roi", np.array([0, 0, 0.2, -0.5, 1, 1, 1.1, 0.9], np.float32)),
         ("sizes", np.array([1, 1, 3, 3]))])
    yield "maxpool_indices_bn_training", model(
        "maxpool_indices_bn_training",
        [helper.make_node("MaxPool", ["x"], ["p", "i"], kernel_shape=[2, 2], storage_order=1),
         helper.make_node("BatchNormalization", ["p", "s", "b", "m", "v"], ["y", "rm", "rv"],
                          training_mode=1)],
        [("x", F, [1, 2, 3, 3])],
        [("y", F, [1, 2, 2, 2]), ("i", TensorProto.INT64, [1, 2, 2, 2]), ("rm", F, [2]),
         ("rv", F, [2])],
        [("s", w(2)), ("b", w(2)), ("m", w(2)), ("v", np.float32([1, 2]))], opset=15)


PROGRAMS = ["relu", "conv_relu", "gemm_softmax", "two_inputs", "pools_concat",
            "shape_ops"]


def main():
    onnx_dir = ROOT / "fuzz" / "corpus" / "onnx"
    prog_dir = ROOT / "fuzz" / "corpus" / "program"
    onnx_dir.mkdir(parents=True, exist_ok=True)
    prog_dir.mkdir(parents=True, exist_ok=True)
    import shoal  # from PYTHONPATH=build/python

    for name, m in models():
        data = m.SerializeToString()
        (onnx_dir / f"{name}.onnx").write_bytes(data)
        if name in PROGRAMS:
            p = shoal.compile(data)
            (prog_dir / f"{name}.shoal").write_bytes(p.to_bytes())
            noopt = shoal.compile(data, optimize=False).to_bytes()
            if noopt != p.to_bytes():
                (prog_dir / f"{name}_noopt.shoal").write_bytes(noopt)
    # A Winograd layer's weight (packing kind 2: plain bytes, then oneDNN's
    # transformed copy), forced onto a small 3x3 convolution.
    os.environ["SHOAL_WINOGRAD"] = "all"
    wino = model("winograd_conv",
                 [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1],
                                   kernel_shape=[3, 3])],
                 [("x", F, [1, 4, 4, 4])], [("y", F, [1, 4, 4, 4])], [("w", w(4, 4, 3, 3))])
    (prog_dir / "winograd_conv.shoal").write_bytes(
        shoal.compile(wino.SerializeToString()).to_bytes())
    del os.environ["SHOAL_WINOGRAD"]
    for d in (onnx_dir, prog_dir):
        for f in sorted(d.iterdir()):
            print(f"{f.relative_to(ROOT)}: {f.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
