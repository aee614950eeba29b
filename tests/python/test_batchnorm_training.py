"""BatchNormalization with training_mode=1 (opset 14+): Y normalized with the
statistics of what one program run sees (one sample: the runtime splits
batches), running statistics as outputs. It is never folded into the
convolution before it, and samples are never stacked through it."""

import numpy as np
import pytest

import shoal

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402

RNG = np.random.default_rng(7)


def test_conv_then_training_batchnorm(make_onnx):
    w = RNG.standard_normal((3, 2, 1, 1)).astype(np.float32)
    scale, bias = np.float32([1, 2, 0.5]), np.float32([0, 1, -1])
    mean, var = np.float32([0.5, 0, 1]), np.float32([1, 2, 3])
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"],
                              ["y", "running_mean", "running_var"], training_mode=1,
                              momentum=0.8, epsilon=1e-3)]
    model = make_onnx.graph(nodes, [("x", ["N", 2, 4, 4])],
                            [("y", ["N", 3, 4, 4]), ("running_mean", [3]), ("running_var", [3])],
                            {"w": w, "s": scale, "b": bias, "m": mean, "v": var}, opset=15)
    x = RNG.standard_normal((3, 2, 4, 4)).astype(np.float32)
    y, rm, rv = shoal.Runtime(shoal.compile(model)).run(x)
    for n in range(3):  # each sample's own statistics
        c = np.einsum("mc,chw->mhw", w[:, :, 0, 0], x[n])
        mu, sigma2 = c.mean(axis=(1, 2)), c.var(axis=(1, 2))
        k = lambda a: a[:, None, None]  # noqa: E731
        want = k(scale) * (c - k(mu)) / np.sqrt(k(sigma2) + 1e-3) + k(bias)
        np.testing.assert_allclose(y[n], want, rtol=1e-4, atol=1e-5)
        # outputs without a batch dim come back once per sample
        np.testing.assert_allclose(rm[n], 0.8 * mean + 0.2 * mu, rtol=1e-5)
        np.testing.assert_allclose(rv[n], 0.8 * var + 0.2 * sigma2, rtol=1e-5)
