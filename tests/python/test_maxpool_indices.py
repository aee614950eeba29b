"""MaxPool's Indices output: computed (by the reference kernel) when the model
reads it, counted within each sample as ONNX counts them for a batch of
one; left out, so that oneDNN's pooling runs, when nothing reads it."""

import numpy as np
import pytest

import shoal

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

RNG = np.random.default_rng(5)


def numpy_maxpool(x, k, s, p, column):
    """Y and Indices of a 2-D MaxPool over one sample x [C, H, W]."""
    c, h, w = x.shape
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    y = np.zeros((c, oh, ow), np.float32)
    idx = np.zeros((c, oh, ow), np.int64)
    for ch in range(c):
        for i in range(oh):
            for j in range(ow):
                best, at = -np.inf, None
                for a in range(i * s - p, i * s - p + k):
                    for b in range(j * s - p, j * s - p + k):
                        if 0 <= a < h and 0 <= b < w and (at is None or x[ch, a, b] > best):
                            best, at = x[ch, a, b], (a, b)
                y[ch, i, j] = best
                pos = at[0] + at[1] * h if column else at[0] * w + at[1]
                idx[ch, i, j] = ch * h * w + pos
    return y, idx


@pytest.mark.parametrize("storage_order", [0, 1])
def test_indices_per_sample(make_onnx, storage_order):
    node = helper.make_node("MaxPool", ["x"], ["y", "z"], name="pool", kernel_shape=[3, 3],
                            strides=[2, 2], pads=[1, 1, 1, 1], storage_order=storage_order)
    model = make_onnx.graph([node], [("x", ["N", 2, 7, 6])],
                            [("y", ["N", 2, 4, 3]), ("z", ["N", 2, 4, 3], TensorProto.INT64)])
    rt = shoal.Runtime(shoal.compile(model))
    assert "MaxPool 'pool'" in rt.plan()  # the reference kernel computes the indices
    x = RNG.standard_normal((3, 2, 7, 6)).astype(np.float32)
    y, z = rt.run(x)
    assert z.dtype == np.int64
    for n in range(3):
        want_y, want_z = numpy_maxpool(x[n], 3, 2, 1, storage_order == 1)
        np.testing.assert_array_equal(y[n], want_y)
        np.testing.assert_array_equal(z[n], want_z)


def test_unread_indices_leave_the_fast_kernel(make_onnx):
    """Indices named but read by nothing: not computed, oneDNN pools."""
    nodes = [helper.make_node("MaxPool", ["x"], ["p", "unused"], name="pool",
                              kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Relu", ["p"], ["y"])]
    model = make_onnx.graph(nodes, [("x", [1, 4, 8, 8])], [("y", [1, 4, 4, 4])])
    program = shoal.compile(model, strict=True)  # every layer has a fast kernel
    x = RNG.standard_normal((2, 4, 8, 8)).astype(np.float32)
    (y,) = shoal.Runtime(program).run(x)
    want = np.maximum(x.reshape(2, 4, 4, 2, 4, 2).max(axis=(3, 5)), 0)
    np.testing.assert_array_equal(y, want)
