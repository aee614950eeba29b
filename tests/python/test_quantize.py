"""shoal.quantize / `shoal quantize`: calibrated QDQ models (issue 13).

The digits CNN is calibrated on its first 100 held-out samples and evaluated
on the other 259: for every calibration method the quantized model (run by
shoal: QuantizeLinear/DequantizeLinear kernels, float convolutions on the
dequantized weights) keeps the float model's accuracy within 0.5 points.
The file is a standard QDQ model: int8 weights with one scale per output
channel (symmetric), int32 biases with scale = input scale x weight scale,
uint8/int8 activations per tensor. Bad calibration data fails with
InvalidArgumentError naming the problem, and writes nothing.
"""

import os
import re
import subprocess

import numpy as np
import pytest

import shoal

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

CALIBRATION = 100


@pytest.fixture(scope="module")
def digits(digits_model):
    x = np.load(digits_model.parent / "heldout_x.npy").astype(np.float32)
    y = np.load(digits_model.parent / "heldout_y.npy")
    return digits_model, x, y


def _accuracy(model, x, y):
    (logits,) = shoal.Runtime(shoal.compile(model)).run(x)
    return float((logits.argmax(1) == y).mean())


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy"])
@pytest.mark.parametrize("activations", ["auto", "u8", "s8"])
def test_digits_accuracy_per_method(digits, method, activations):
    path, x, y = digits
    q = shoal.quantize(path, calibration=x[:CALIBRATION], method=method,
                       activations=activations)
    f32 = _accuracy(str(path), x[CALIBRATION:], y[CALIBRATION:])
    int8 = _accuracy(q, x[CALIBRATION:], y[CALIBRATION:])
    assert f32 > 0.95
    assert abs(f32 - int8) <= 0.005, (method, activations, f32, int8)


def _inits(model):
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def test_qdq_structure(digits):
    path, x, _ = digits
    q = shoal.quantize(path, calibration=x[:CALIBRATION])
    onnx.checker.check_model(q)
    ops = [n.op_type for n in q.graph.node]
    assert "BatchNormalization" not in ops  # folded before quantizing
    inits = _inits(q)
    nodes = {n.name: n for n in q.graph.node}
    convs = [n for n in q.graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(convs) == 4
    producer = {o: n for n in q.graph.node for o in n.output}
    for conv in convs:
        x_dq, w_dq, b_dq = (producer[t] for t in conv.input[:3])
        assert {x_dq.op_type, w_dq.op_type, b_dq.op_type} == {"DequantizeLinear"}
        # Activation: per tensor, uint8 (the default), from a QuantizeLinear.
        assert producer[x_dq.input[0]].op_type == "QuantizeLinear"
        assert inits[x_dq.input[1]].shape == () and inits[x_dq.input[2]].dtype == np.uint8
        # Weight: int8, symmetric, one scale per output channel.
        w, ws, wz = (inits[t] for t in w_dq.input)
        axis = next(a.i for a in w_dq.attribute if a.name == "axis")
        out_channels = w.shape[axis]
        assert w.dtype == np.int8 and ws.shape == (out_channels,) and not wz.any()
        assert np.abs(w).max() == 127 and w.min() >= -127
        # Bias: int32, scale = input scale x weight scale, zero point 0.
        b, bs, bz = (inits[t] for t in b_dq.input)
        assert b.dtype == np.int32 and bz.dtype == np.int32 and not bz.any()
        np.testing.assert_allclose(bs, inits[x_dq.input[1]] * ws, rtol=1e-6)
    assert nodes  # names kept


def test_s8_activations_are_symmetric(digits):
    path, x, _ = digits
    q = shoal.quantize(path, calibration=x[:CALIBRATION], activations="s8")
    inits = _inits(q)
    qs = [n for n in q.graph.node if n.op_type == "QuantizeLinear"]
    assert qs
    for n in qs:
        zp = inits[n.input[2]]
        assert zp.dtype == np.int8 and zp == 0


def test_exclude_and_keep_first_last(digits):
    path, x, _ = digits
    q = shoal.quantize(path, calibration=x[:CALIBRATION], keep_first_last=True,
                       exclude=["/features/features.3/Conv"])
    quantized = [n.name for n in q.graph.node if n.op_type in ("Conv", "Gemm")
                 and any(t.endswith("_dequantized") for t in n.input[1:2])]
    assert quantized == ["/features/features.7/Conv"]
    with pytest.raises(shoal.InvalidArgumentError, match="no_such_layer"):
        shoal.quantize(path, calibration=x[:CALIBRATION], exclude=["no_such_layer"])


def test_report_lists_every_layer_worst_first(digits):
    path, x, _ = digits
    _, report = shoal.quantize(path, calibration=x[:CALIBRATION], report=True)
    assert len(report) == 4
    snrs = [snr for _, snr in report]
    assert snrs == sorted(snrs) and all(20 < s < 80 for s in snrs), report


def test_calibration_directory(digits, tmp_path):
    path, x, y = digits
    d = tmp_path / "samples"
    d.mkdir()
    for i in range(20):
        np.save(d / f"{i:03d}.npy", x[i])  # one sample [1, 8, 8] each
    np.save(d / "batch.npy", x[20:CALIBRATION])  # and a batch
    a = shoal.quantize(path, calibration=str(d))
    b = shoal.quantize(path, calibration=x[:CALIBRATION])
    assert {k: v.tobytes() for k, v in _inits(a).items()} == \
        {k: v.tobytes() for k, v in _inits(b).items()}


@pytest.mark.parametrize("bad, message", [
    (np.zeros((10, 1, 7, 8), np.float32), r"shape \(10, 1, 7, 8\).*N x 1 x 8 x 8"),
    (np.zeros((0, 1, 8, 8), np.float32), "empty"),
    (np.full((5, 1, 8, 8), 0.5, np.float32), "constant"),
    ("nan", "sample 3 holds NaN"),
    ("inf", "sample 3 holds NaN or Inf"),
])
def test_bad_calibration_writes_nothing(digits, tmp_path, bad, message):
    path, x, _ = digits
    if isinstance(bad, str):
        bad = x[:10].copy()
        bad[3, 0, 2, 2] = np.nan if bad.size and message.endswith("NaN") else np.inf
    out = tmp_path / "out.qdq.onnx"
    with pytest.raises(shoal.InvalidArgumentError, match=message):
        shoal.quantize(path, calibration=bad, output=str(out))
    assert os.listdir(tmp_path) == []
    # An existing output stays as it was.
    out.write_bytes(b"keep")
    with pytest.raises(shoal.InvalidArgumentError):
        shoal.quantize(path, calibration=bad, output=str(out))
    assert out.read_bytes() == b"keep" and os.listdir(tmp_path) == ["out.qdq.onnx"]


def test_bad_calibration_directory(digits, tmp_path):
    path, _, _ = digits
    with pytest.raises(shoal.InvalidArgumentError, match="no .npy files"):
        shoal.quantize(path, calibration=str(tmp_path))
    (tmp_path / "a.npy").write_bytes(b"not numpy")
    with pytest.raises(shoal.InvalidArgumentError, match="not a readable .npy"):
        shoal.quantize(path, calibration=str(tmp_path))


def test_bad_options(digits):
    path, x, _ = digits
    with pytest.raises(ValueError, match="method"):
        shoal.quantize(path, calibration=x, method="kl")
    with pytest.raises(ValueError, match="activations"):
        shoal.quantize(path, calibration=x, activations="u4")


def test_cli(digits, build_dir, tmp_path):
    path, x, y = digits
    cal = tmp_path / "cal.npy"
    np.save(cal, x[:CALIBRATION])
    out = tmp_path / "d.qdq.onnx"
    cli = str(build_dir / "bin" / "shoal")
    res = subprocess.run([cli, "quantize", str(path), "--calibration", str(cal), "-o", str(out),
                          "--method", "percentile", "--report"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert re.search(r"\b6 activation tensors quantized", res.stdout), res.stdout
    assert "dB" in res.stdout
    assert res.stderr == ""
    assert _accuracy(str(out), x[CALIBRATION:], y[CALIBRATION:]) > 0.95
    np.save(cal, np.zeros((3, 1, 4, 4), np.float32))
    bad = tmp_path / "bad.qdq.onnx"
    res = subprocess.run([cli, "quantize", str(path), "--calibration", str(cal), "-o", str(bad)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 1 and "shoal: error:" in res.stderr and "shape" in res.stderr
    assert not bad.exists()


def test_transformer_style_linear(tmp_path):
    """A Linear as exporters write it in transformers: MatMul(x, Transpose(W))
    on a tensor Reshape'd to sizes computed from Shape, which ONNX's shape
    inference cannot type. The quantizer folds the Transpose, calibrates the
    untyped tensor anyway, and the MatMul runs int8 (shoal.QMatMul)."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(4)
    w = rng.standard_normal((8, 24)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(np.array([0], np.int64), "i0"),
             numpy_helper.from_array(np.array([-1], np.int64), "m1")]
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "i0"], ["n"]),
             helper.make_node("Concat", ["n", "m1"], ["shp"], axis=0),
             helper.make_node("Reshape", ["x", "shp"], ["r"]),
             helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
             helper.make_node("MatMul", ["r", "wt"], ["y"], name="linear")]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 4, 6])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 8])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = rng.standard_normal((16, 4, 6)).astype(np.float32)
    q = shoal.quantize(model, calibration=x[:8])
    assert "Transpose" not in [n.op_type for n in q.graph.node]
    rt = shoal.Runtime(shoal.compile(q), profile=True)
    (y,) = rt.run(x[8:])
    assert {lay["op"]: lay["precision"] for lay in rt.profile()}["shoal.QMatMul"] == "int8"
    ref = x[8:].reshape(8, 24) @ w.T
    snr = 10 * np.log10(np.sum(ref ** 2) / np.sum((y - ref) ** 2))
    assert snr > 30, snr
