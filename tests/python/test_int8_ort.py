"""shoal's int8 execution against onnxruntime's on the same QDQ files
(issue 13): "a quantized model run by shoal agrees with the same QDQ file run
by onnxruntime, within one quantization step per output".

CI has no onnxruntime, so its outputs are committed: tests/data/ort/ holds two
QDQ models quantized by shoal.quantize (the digits CNN; an EfficientNet-style
block with SiLU, squeeze-excitation, a residual Add and a classifier), their
inputs (none a calibration sample) and what onnxruntime 1.30 computed for
them (scripts/make_ort_fixtures.py writes them). Both models end in a Gemm
with float32 logits; one quantization step of a logit is one unit of that
Gemm's int32 accumulator: x_scale * w_scale[n].
"""

import os

import numpy as np
import pytest

import shoal

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "ort")


def _logit_steps(model):
    """x_scale * w_scale[n] of the final Gemm's DequantizeLinear inputs."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    gemm = model.graph.node[-1]
    assert gemm.op_type == "Gemm", gemm.op_type
    dx, dw = producer[gemm.input[0]], producer[gemm.input[1]]
    assert dx.op_type == dw.op_type == "DequantizeLinear"
    return (inits[dx.input[1]] * inits[dw.input[1]]).astype(np.float32)


@pytest.mark.parametrize("name", ["digits_cnn", "se_block"])
def test_int8_agrees_with_onnxruntime(name):
    path = os.path.join(DATA, name + ".qdq.onnx")
    x = np.load(os.path.join(DATA, name + ".x.npy"))
    ort = np.load(os.path.join(DATA, name + ".ort.npy"))
    program = shoal.compile(path)
    # The int8 kernels run (every quantized layer, the classifier too).
    rt = shoal.Runtime(program, profile=True)
    (y,) = rt.run(x)
    precisions = {lay["op"]: lay["precision"] for lay in rt.profile()}
    assert precisions["QLinearConv"] == precisions["shoal.QMatMul"] == "int8", precisions
    assert y.shape == ort.shape
    # The reference output depends on the input (no constant network).
    assert np.abs(ort - ort[0]).max() > 0.05 * np.abs(ort).max()
    step = _logit_steps(onnx.load(path))
    assert np.all(np.abs(y - ort) <= step), np.abs(y - ort).max()
    np.testing.assert_array_equal(y.argmax(1), ort.argmax(1))
