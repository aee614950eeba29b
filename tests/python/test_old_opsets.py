"""Models written for opsets 1 to 6: the ONNX frontend converts them to
opset 7 with ONNX's version converter (src/frontend/onnx/opset_upgrade.hpp)
and they compute what the old operators mean; where the conversion or an
operator's 'from opset' rules a model out, the error names the opset."""

import numpy as np
import pytest

import shoal

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

F = TensorProto.FLOAT


def old_model(nodes, inputs, outputs, inits=(), opset=6):
    """A checked model of IR version 3, as exporters of the time wrote them
    (initializers listed among the graph inputs too)."""
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in inits]
    graph = helper.make_graph(
        nodes, "old",
        [helper.make_tensor_value_info(*i) for i in inputs] +
        [helper.make_tensor_value_info(t.name, t.data_type, t.dims) for t in inits],
        [helper.make_tensor_value_info(*o) for o in outputs], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 3
    onnx.checker.check_model(m)
    return m


def run(model, x):
    return shoal.Runtime(shoal.compile(model)).run(x)[0]


def test_opset6_cnn_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    scale, bias = np.float32([1.5, 0.5, 2.0]), np.float32([0.1, -0.2, 0.3])
    mean, var = np.float32([0.2, -0.1, 0.0]), np.float32([1.0, 0.5, 2.0])
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        # Opset 6 BatchNormalization and Dropout say is_test=1 for inference.
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"],
                         is_test=1, epsilon=1e-5),
        helper.make_node("Elu", ["n"], ["e"], alpha=0.5),
        helper.make_node("Dropout", ["e"], ["d"], is_test=1, ratio=0.3),
        helper.make_node("MaxPool", ["d"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["p"], ["y"]),
    ]
    m = old_model(nodes, [("x", F, [1, 2, 5, 5])], [("y", F, [1, 3, 1, 1])],
                  [("w", w), ("s", scale), ("b", bias), ("m", mean), ("v", var)])
    # numpy: the same graph
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    c = np.zeros((1, 3, 5, 5), np.float64)
    for i in range(5):
        for j in range(5):
            c[0, :, i, j] = np.tensordot(w, xp[0, :, i:i + 3, j:j + 3], axes=3)
    k = lambda a: a[None, :, None, None]  # noqa: E731
    n = k(scale) * (c - k(mean)) / np.sqrt(k(var) + 1e-5) + k(bias)
    e = np.where(n > 0, n, 0.5 * (np.exp(n) - 1))
    p = e[:, :, :4, :4].reshape(1, 3, 2, 2, 2, 2).max(axis=(3, 5))
    want = p.mean(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(run(m, x), want, rtol=1e-5, atol=1e-5)


def test_opset1_attributes_become_inputs():
    """Opset 1: Concat without axis (1 then), Reshape with a 'shape'
    attribute (an input from opset 5), Relu with consumed_inputs."""
    x = np.arange(-6, 6, dtype=np.float32).reshape(1, 2, 6)
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], consumed_inputs=[0]),
        helper.make_node("Concat", ["r", "x"], ["c"]),
        helper.make_node("Reshape", ["c"], ["y"], shape=[1, 24]),
    ]
    m = old_model(nodes, [("x", F, [1, 2, 6])], [("y", F, [1, 24])], opset=1)
    want = np.concatenate([np.maximum(x, 0), x], axis=1).reshape(1, 24)
    np.testing.assert_array_equal(run(m, x), want)


def test_operator_before_its_from_opset_is_named():
    """Pad-1 ('paddings') has no converter adapter: Pad is imported from
    opset 2, and the error says so for the node."""
    m = old_model([helper.make_node("Pad", ["x"], ["y"], name="old_pad",
                                    paddings=[0, 0, 1, 1])],
                  [("x", F, [1, 2])], [("y", F, [1, 4])], opset=1)
    with pytest.raises(shoal.UnsupportedError, match=r"Pad node 'old_pad'.*opset 1.*"
                                                     r"from opset 2"):
        shoal.compile(m)


def test_failed_conversion_names_the_opsets():
    """BatchNormalization-6 in training mode (is_test=0) has no opset 7 form:
    the converter refuses, and the error names both opsets and the reason."""
    c = np.float32([1, 1])
    m = old_model([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"],
                                    is_test=0)],
                  [("x", F, [1, 2, 3])], [("y", F, [1, 2, 3])],
                  [("s", c), ("b", c), ("m", c), ("v", c)])
    with pytest.raises(shoal.UnsupportedError) as e:
        shoal.compile(m)
    msg = str(e.value)
    assert "opset 6" in msg and "opset 7" in msg and "version converter" in msg, msg
    assert "is_test" in msg, msg


@pytest.mark.parametrize("opset", [0, 19])
def test_opset_out_of_range(opset):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", F, [1, 2])],
                              [helper.make_tensor_value_info("y", F, [1, 2])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    with pytest.raises(shoal.UnsupportedError, match=f"opset {opset}; shoal supports opsets 1 to 18"):
        shoal.compile(m.SerializeToString())
