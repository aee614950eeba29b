"""int8 execution of QDQ models (issue 13).

The compiler fuses DequantizeLinear -> Conv [-> Relu] -> QuantizeLinear into
one QLinearConv that oneDNN runs as an int8 convolution. Its results must
equal, exactly, an integer reference computed here with numpy (int64
accumulation, then the requantization in float32 arithmetic:
(float(acc) + float(bias)) * (x_scale * w_scale / y_scale), ReLU, round half
to even, + zero point, saturate), and the reference kernel's
(SHOAL_REFERENCE_ONLY=1).
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import shoal

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _qdq_conv_model(rng, cin, cout, k, stride, pad, group, x_type, relu, x_zp, with_bias,
                    y_zp=0):
    x_np = np.uint8 if x_type == "u8" else np.int8
    y_np = x_np
    w = rng.integers(-127, 128, (cout, cin // group, k, k)).astype(np.int8)
    ws = (rng.random(cout) * 0.01 + 0.002).astype(np.float32)
    xs = np.float32(0.05)
    ys = np.float32(0.25)
    inits = {
        "xs": np.array(xs), "xz": np.array(x_zp, x_np), "wq": w, "ws": ws,
        "wz": np.zeros(cout, np.int8), "ys": np.array(ys), "yz": np.array(y_zp, y_np),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
    ]
    conv_in = ["xd", "wd"]
    b = None
    if with_bias:
        b = rng.integers(-20000, 20000, cout).astype(np.int32)
        inits.update({"bq": b, "bs": (xs * ws).astype(np.float32),
                      "bz": np.zeros(cout, np.int32)})
        nodes.append(helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["bd"], axis=0))
        conv_in.append("bd")
    nodes.append(helper.make_node("Conv", conv_in, ["c"], name="conv", kernel_shape=[k, k],
                                  strides=[stride, stride], pads=[pad] * 4, group=group))
    last = "c"
    if relu:
        nodes.append(helper.make_node("Relu", ["c"], ["r"]))
        last = "r"
    nodes += [helper.make_node("QuantizeLinear", [last, "ys", "yz"], ["yq"]),
              helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    h = 12
    o = (h + 2 * pad - k) // stride + 1
    graph = helper.make_graph(
        nodes, "qconv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, h, h])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, o, o])],
        initializer=[numpy_helper.from_array(v, n) for n, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return model, dict(w=w, ws=ws, xs=xs, ys=ys, x_zp=x_zp, b=b, x_np=x_np, y_np=y_np,
                       y_zp=y_zp)


def _integer_reference(x, p, cout, k, stride, pad, group, relu):
    info = np.iinfo(p["x_np"])
    xq = np.clip(np.round(x / p["xs"]) + p["x_zp"], info.min, info.max).astype(np.int64)
    xq = np.pad(xq - p["x_zp"], ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, cin, hp, _ = xq.shape
    o = (hp - k) // stride + 1
    w = p["w"].astype(np.int64)
    cg, mg = cin // group, cout // group
    acc = np.zeros((n, cout, o, o), np.int64)
    for m in range(cout):
        c0 = (m // mg) * cg
        for i in range(k):
            for j in range(k):
                patch = xq[:, c0:c0 + cg, i:i + stride * o:stride, j:j + stride * o:stride]
                acc[:, m] += np.einsum("nchw,c->nhw", patch, w[m, :, i, j])
    s = (p["xs"] * p["ws"] / p["ys"]).astype(np.float32)
    v = acc.astype(np.float32)
    if p["b"] is not None:
        v = v + p["b"].astype(np.float32)[None, :, None, None]
    v = (v * s[None, :, None, None]).astype(np.float32)
    if relu:
        v = np.maximum(v, np.float32(0))
    yinfo = np.iinfo(p["y_np"])
    yq = np.clip(np.rint(v) + p["y_zp"], yinfo.min, yinfo.max)  # rint: half to even
    return ((yq - p["y_zp"]) * p["ys"]).astype(np.float32)


CASES = [
    # cin, cout, k, stride, pad, group, x type, relu, x zero point, bias[, y zero point]
    (8, 16, 3, 1, 1, 1, "u8", True, 0, True),
    (8, 16, 3, 1, 1, 1, "u8", True, 7, True),
    (3, 32, 3, 2, 1, 1, "u8", True, 11, True),
    (16, 16, 3, 1, 1, 16, "u8", True, 0, True),  # depthwise
    (32, 64, 1, 1, 0, 1, "s8", False, 0, True),
    (16, 24, 3, 2, 1, 1, "s8", True, 0, False),
    (8, 16, 3, 1, 1, 1, "u8", False, 5, True, 9),  # output zero point: a float32 pass
    (8, 16, 1, 1, 0, 1, "u8", False, 0, True, 128),
]


@pytest.mark.parametrize("case", CASES)
def test_int8_conv_matches_integer_reference(case):
    cin, cout, k, stride, pad, group, x_type, relu, x_zp, bias = case[:10]
    y_zp = case[10] if len(case) > 10 else 0
    rng = np.random.default_rng(hash(case) % 2**32)
    model, p = _qdq_conv_model(rng, cin, cout, k, stride, pad, group, x_type, relu, x_zp, bias,
                               y_zp)
    x = (rng.standard_normal((3, cin, 12, 12)) * 3).astype(np.float32)
    program = shoal.compile(model)
    rt = shoal.Runtime(program, profile=True)
    (y,) = rt.run(x)
    layers = [lay for lay in rt.profile() if lay["op"] == "QLinearConv"]
    assert len(layers) == 1, rt.profile()
    impl = layers[0]["impl"]  # e.g. onednn:brgconv:avx512_core_amx_int8, :brdgmm_dw:..._vnni
    assert layers[0]["precision"] == "int8", layers
    assert impl.startswith("onednn:") and not impl.startswith("onednn:ref"), layers
    np.testing.assert_array_equal(y, _integer_reference(x, p, cout, k, stride, pad, group, relu))
    assert "[int8]" in program.describe()


_REFERENCE_ONLY = r"""
import sys, numpy as np, shoal
p = shoal.load(sys.argv[1])
x = np.load(sys.argv[2])
rt = shoal.Runtime(p, profile=True)
(y,) = rt.run(x)
assert [l["impl"] for l in rt.profile() if l["op"] == "QLinearConv"] == ["reference"]
np.save(sys.argv[3], y)
"""


def test_int8_conv_matches_reference_kernel(tmp_path):
    rng = np.random.default_rng(5)
    model, _ = _qdq_conv_model(rng, 16, 32, 3, 1, 1, 1, "u8", True, 9, True)
    x = (rng.standard_normal((4, 16, 12, 12)) * 3).astype(np.float32)
    program = shoal.compile(model)
    (y,) = shoal.Runtime(program).run(x)
    program.save(str(tmp_path / "q.shoal"))
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, SHOAL_REFERENCE_ONLY="1")
    res = subprocess.run([sys.executable, "-c", _REFERENCE_ONLY, str(tmp_path / "q.shoal"),
                          str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    np.testing.assert_array_equal(y, np.load(tmp_path / "y.npy"))


def test_digits_layer_precisions(digits_model):
    """Every quantized Conv of the digits CNN runs int8 (its result is
    requantized for the next layer); the Gemm (no int8 kernel yet) and a
    layer left in float32 (keep_first_last) run float32."""
    x = np.load(digits_model.parent / "heldout_x.npy").astype(np.float32)

    def precisions(q):
        rt = shoal.Runtime(shoal.compile(q), profile=True)
        rt.run(x[:4])
        return {lay["name"]: lay["precision"] for lay in rt.profile()
                if lay["op"] in ("Conv", "QLinearConv", "Gemm")}

    q = shoal.quantize(digits_model, calibration=x[:100])
    assert precisions(q) == {"/features/features.0/Conv": "int8",
                             "/features/features.3/Conv": "int8",
                             "/features/features.7/Conv": "int8",
                             "/classifier/Gemm": "f32"}
    assert "precision: 3 layers int8" in shoal.compile(q).describe()
    q = shoal.quantize(digits_model, calibration=x[:100], keep_first_last=True)
    assert precisions(q) == {"/features/features.0/Conv": "f32",
                             "/features/features.3/Conv": "int8",
                             "/features/features.7/Conv": "int8",
                             "/classifier/Gemm": "f32"}


def test_compile_int8_shortcut(digits_model):
    x = np.load(digits_model.parent / "heldout_x.npy").astype(np.float32)
    y = np.load(digits_model.parent / "heldout_y.npy")
    program = shoal.compile(digits_model, precision="int8", calibration=x[:100],
                            quantize_options={"method": "percentile"})
    assert "[int8]" in program.describe()
    (logits,) = shoal.Runtime(program).run(x[100:])
    assert float((logits.argmax(1) == y[100:]).mean()) > 0.95
