"""Zero-size tensors at run time: a graph input may have a dim of 0 (not the
batch dim), and an op may make an empty value (a Slice to nothing). Kernels
with an empty operand are the reference ones (oneDNN fails on zero dims);
ops producing nothing do nothing, and ops reducing over nothing give what
numpy gives (0 for sums and products over K = 0, NaN for means)."""

import numpy as np
import pytest

import shoal

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402

N = helper.make_node


def run(model, x):
    return shoal.Runtime(shoal.compile(model)).run(x)


def test_empty_input_through_elementwise_and_views(make_onnx):
    nodes = [N("Relu", ["x"], ["r"]), N("Add", ["r", "b"], ["a"]),
             N("Transpose", ["a"], ["y"], perm=[0, 2, 1])]
    model = make_onnx.graph(nodes, [("x", [1, 0, 4])], [("y", [1, 4, 0])],
                            {"b": np.ones(4, np.float32)})
    (y,) = run(model, np.zeros((3, 0, 4), np.float32))
    assert y.shape == (3, 4, 0)


def test_products_over_nothing(make_onnx):
    """MatMul and Gemm with K = 0: zeros (plus Gemm's bias), as numpy."""
    mm = make_onnx.graph([N("MatMul", ["x", "w"], ["y"])], [("x", [1, 3, 0])],
                         [("y", [1, 3, 5])], {"w": np.ones((0, 5), np.float32)})
    (y,) = run(mm, np.zeros((2, 3, 0), np.float32))
    np.testing.assert_array_equal(y, np.zeros((2, 3, 5), np.float32))
    bias = np.arange(5, dtype=np.float32)
    gemm = make_onnx.graph([N("Gemm", ["x", "w", "b"], ["y"])], [("x", [1, 0])],
                           [("y", [1, 5])], {"w": np.ones((0, 5), np.float32), "b": bias})
    (y,) = run(gemm, np.zeros((2, 0), np.float32))
    np.testing.assert_array_equal(y, np.stack([bias, bias]))


def test_slice_to_nothing_then_matmul(make_onnx):
    """An empty activation made by a Slice reaching a MatMul crashed oneDNN
    (SIGFPE creating the primitive) before empty operands went to the
    reference kernel."""
    inits = {"s": np.array([0]), "e": np.array([0]), "a": np.array([2]),
             "w": np.ones((0, 5), np.float32)}
    nodes = [N("Slice", ["x", "s", "e", "a"], ["z"]), N("MatMul", ["z", "w"], ["y"])]
    model = make_onnx.graph(nodes, [("x", [1, 3, 4])], [("y", [1, 3, 5])], inits)
    (y,) = run(model, np.ones((2, 3, 4), np.float32))
    np.testing.assert_array_equal(y, np.zeros((2, 3, 5), np.float32))


def test_reductions_and_concat_with_empty_parts(make_onnx):
    nodes = [N("ReduceSum", ["x", "axes"], ["s"], keepdims=0),
             N("ReduceMean", ["x"], ["m"], axes=[2], keepdims=0),
             N("Concat", ["x", "c"], ["k"], axis=2)]
    model = make_onnx.graph(nodes, [("x", [1, 3, 0])],
                            [("s", [1, 3]), ("m", [1, 3]), ("k", [1, 3, 2])],
                            {"axes": np.array([2]), "c": np.ones((1, 3, 2), np.float32)})
    s, m, k = run(model, np.zeros((2, 3, 0), np.float32))
    np.testing.assert_array_equal(s, np.zeros((2, 3), np.float32))
    assert np.isnan(m).all()
    np.testing.assert_array_equal(k, np.ones((2, 3, 2), np.float32))


def test_split_and_reshape_allowzero(make_onnx):
    nodes = [N("Split", ["x", "sp"], ["a", "b"], axis=1),
             N("Reshape", ["a", "shape"], ["y"], allowzero=1)]
    model = make_onnx.graph(nodes, [("x", [1, 4, 3])], [("y", [1, 3, 0]), ("b", [1, 4, 3])],
                            {"sp": np.array([0, 4]), "shape": np.array([1, 3, 0])}, opset=14)
    x = np.arange(24, dtype=np.float32).reshape(2, 4, 3)
    y, b = run(model, x)
    assert y.shape == (2, 3, 0)
    np.testing.assert_array_equal(b, x)


def test_edge_pad_of_nothing_is_an_error(make_onnx):
    model = make_onnx.graph([N("Pad", ["x", "p"], ["y"], mode="edge")], [("x", [1, 0])],
                            [("y", [1, 3])], {"p": np.array([0, 2, 0, 1])})
    with pytest.raises(shoal.InvalidArgumentError, match="mode 'edge' cannot pad dim 1"):
        shoal.compile(model)


def test_batch_dim_stays_one(make_onnx):
    model = make_onnx.graph([N("Relu", ["x"], ["y"])], [("x", [0, 4])], [("y", [0, 4])])
    with pytest.raises(shoal.InvalidArgumentError, match="compiled for ONE sample"):
        shoal.compile(model)
