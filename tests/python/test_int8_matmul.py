"""int8 Gemm and MatMul of QDQ models (issue 13).

The compiler fuses DequantizeLinear(x) x DequantizeLinear(W) [+ int32 bias]
(Gemm or MatMul, W a constant int8 matrix) into one shoal.QMatMul that
oneDNN runs as an int8 matmul: with a float32 result (a classifier's
logits: (float(acc) + float(bias)) * (x_scale * w_scale)) or, when a
QuantizeLinear (after a Relu) alone reads it, requantized. Its results must
equal, exactly, an integer reference computed here with numpy and the
reference kernel's (SHOAL_REFERENCE_ONLY=1), and the unfused float32 graph
(optimize=False) to float32 rounding.
"""

import numpy as np
import pytest

import shoal
from saved_run import run_saved

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

K, N = 96, 40


def _model(rng, op, x_type, x_zp, per_column, bias, requant, trans_b=True, rank=2):
    x_np = np.uint8 if x_type == "u8" else np.int8
    w = rng.integers(-127, 128, (K, N)).astype(np.int8)  # [K, N]
    ws = ((rng.random(N) * 0.01 + 0.002) if per_column else np.array(0.004)).astype(np.float32)
    xs = np.float32(0.05)
    stored = w.T.copy() if trans_b else w
    inits = {"xs": np.array(xs), "xz": np.array(x_zp, x_np), "wq": stored, "ws": ws,
             "wz": np.zeros(ws.shape, np.int8)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"],
                              axis=0 if trans_b else 1)]
    ins = ["xd", "wd"]
    b = None
    if bias:
        b = rng.integers(-20000, 20000, N).astype(np.int32)
        inits.update({"bq": b, "bs": (xs * ws * np.ones(N)).astype(np.float32),
                      "bz": np.zeros(N, np.int32)})
        nodes.append(helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["bd"], axis=0))
        ins.append("bd")
    if op == "Gemm":
        nodes.append(helper.make_node("Gemm", ins, ["g"], name="mm", transB=int(trans_b)))
    else:
        nodes.append(helper.make_node("MatMul", ins, ["g"], name="mm"))
    shape = [1, 3, K] if rank == 3 else [1, K]  # one sample; runs take batches
    yshape = shape[:-1] + [N]
    last = "g"
    if requant:
        inits.update({"ys": np.array(np.float32(0.5)), "yz": np.array(0, np.uint8)})
        nodes += [helper.make_node("Relu", ["g"], ["r"]),
                  helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["yq"]),
                  helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
        last = "y"
    graph = helper.make_graph(
        nodes, "qmm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, yshape)],
        initializer=[numpy_helper.from_array(v, n) for n, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return model, dict(w=w, ws=ws, xs=xs, x_zp=x_zp, x_np=x_np, b=b, requant=requant)


def _reference(x, p):
    info = np.iinfo(p["x_np"])
    xq = np.clip(np.rint(x / p["xs"]) + p["x_zp"], info.min, info.max).astype(np.int64)
    acc = (xq - p["x_zp"]) @ p["w"].astype(np.int64)
    v = acc.astype(np.float32)
    if p["b"] is not None:
        v = v + p["b"].astype(np.float32)
    s = (p["xs"] * p["ws"]).astype(np.float32)
    if not p["requant"]:
        return (v * s).astype(np.float32)
    ys = np.float32(0.5)
    v = np.maximum((v * (s / ys).astype(np.float32)).astype(np.float32), 0)
    return (np.clip(np.rint(v), 0, 255) * ys).astype(np.float32)


CASES = [
    # op, x type, x zero point, per-column scales, bias, requantized, transB, rank
    ("Gemm", "u8", 0, True, True, False, True, 2),  # a classifier
    ("Gemm", "u8", 7, True, True, False, False, 2),
    ("Gemm", "s8", 0, False, False, False, True, 2),
    ("Gemm", "u8", 3, True, True, True, True, 2),  # requantized after a Relu
    ("MatMul", "s8", 0, True, False, False, False, 3),
    ("MatMul", "u8", 5, False, False, True, False, 3),
]


def _x(rng, shape):
    return (rng.standard_normal(shape) * 3).astype(np.float32)


@pytest.mark.parametrize("case", CASES)
def test_int8_matmul_matches_integer_reference(case):
    op, x_type, x_zp, per_column, bias, requant, trans_b, rank = case
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    model, p = _model(rng, op, x_type, x_zp, per_column, bias, requant, trans_b, rank)
    x = _x(rng, (2, 3, K) if rank == 3 else (2, K))
    program = shoal.compile(model)
    assert "shoal.QMatMul" in program.describe() and "[int8]" in program.describe()
    rt = shoal.Runtime(program, profile=True)
    (y,) = rt.run(x)
    layers = [lay for lay in rt.profile() if lay["op"] == "shoal.QMatMul"]
    assert len(layers) == 1 and layers[0]["precision"] == "int8", rt.profile()
    assert layers[0]["impl"].startswith("onednn:") and "ref" not in layers[0]["impl"], layers
    np.testing.assert_array_equal(y, _reference(x, p))
    # The unfused QDQ graph computes the same sum in float32.
    (y0,) = shoal.Runtime(shoal.compile(model, optimize=False)).run(x)
    if requant:  # one quantization step where float32 rounding meets a tie
        assert np.abs(y - y0).max() <= 0.5 + 1e-6
    else:
        np.testing.assert_allclose(y, y0, rtol=1e-5, atol=1e-5 * np.abs(y0).max())


@pytest.mark.parametrize("requant", [False, True])
def test_int8_matmul_matches_reference_kernel(tmp_path, requant):
    rng = np.random.default_rng(3)
    model, _ = _model(rng, "Gemm", "u8", 9, True, True, requant)
    x = _x(rng, (2, K))
    program = shoal.compile(model)
    (y,) = shoal.Runtime(program).run(x)
    ref, impls = run_saved(program, x, tmp_path, {"SHOAL_REFERENCE_ONLY": "1"}, ["shoal.QMatMul"])
    assert impls == ["reference"]
    np.testing.assert_array_equal(y, ref)


def test_gemm_with_float_bias_stays_float():
    """A Gemm whose C is not an int32 bias in the accumulator's units keeps
    its QDQ nodes and runs in float32 (what the QDQ graph says)."""
    rng = np.random.default_rng(4)
    model, _ = _model(rng, "Gemm", "u8", 0, True, True, False)
    for init in model.graph.initializer:
        if init.name == "bs":  # a bias scale other than x_scale * w_scale
            init.CopyFrom(numpy_helper.from_array(np.full(N, 0.001, np.float32), "bs"))
    program = shoal.compile(model)
    assert "shoal.QMatMul" not in program.describe()
    x = _x(rng, (2, K))
    (y,) = shoal.Runtime(program).run(x)
    (y0,) = shoal.Runtime(shoal.compile(model, optimize=False)).run(x)
    np.testing.assert_allclose(y, y0, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rank, relu", [(2, False), (3, True)])
def test_float_bias_add_fuses_into_the_int8_matmul(tmp_path, rank, relu):
    """A transformer's Linear: MatMul of dequantized operands, then a float32
    bias Add (and an activation). The Add becomes the int8 matmul's post_bias
    (a oneDNN binary post-op) and the Relu its activation: no float32 pass
    over the logits is left, and the result is still exactly
    act(float(acc) * (x_scale * w_scale[n]) + bias[n])."""
    rng = np.random.default_rng(21 + rank)
    model, p = _model(rng, "MatMul", "u8", 4, True, False, False, False, rank)
    fb = (rng.standard_normal(N) * 2).astype(np.float32)
    model.graph.initializer.append(numpy_helper.from_array(fb, "fb"))
    model.graph.node.append(helper.make_node("Add", ["g", "fb"], ["ga"], name="bias"))
    last = "ga"
    if relu:
        model.graph.node.append(helper.make_node("Relu", ["ga"], ["gr"]))
        last = "gr"
    model.graph.output[0].name = last
    x = _x(rng, (2, 3, K) if rank == 3 else (2, K))
    program = shoal.compile(model)
    rt = shoal.Runtime(program, profile=True)
    (y,) = rt.run(x)
    ops = [lay["op"] for lay in rt.profile()]
    assert "Add" not in ops and "Relu" not in ops and ops.count("shoal.QMatMul") == 1, ops
    qmm = [lay for lay in rt.profile() if lay["op"] == "shoal.QMatMul"][0]
    assert qmm["impl"].startswith("onednn:") and qmm["precision"] == "int8", qmm
    want = (_reference(x, p) + fb).astype(np.float32)
    np.testing.assert_array_equal(y, np.maximum(want, 0) if relu else want)
    ref, impls = run_saved(program, x, tmp_path, {"SHOAL_REFERENCE_ONLY": "1"}, ["shoal.QMatMul"])
    assert impls == ["reference"]
    np.testing.assert_array_equal(y, ref)


@pytest.mark.parametrize("x_type", ["u8", "s8"])
def test_qlinear_matmul_runs_on_the_int8_matmul(tmp_path, x_type):
    """ONNX's QOperator QLinearMatMul with a constant int8 b takes the same
    oneDNN int8 matmul: equal to the integer reference and the reference
    kernel."""
    rng = np.random.default_rng(8)
    x_np = np.uint8 if x_type == "u8" else np.int8
    x_zp = 6 if x_type == "u8" else 0
    w = rng.integers(-127, 128, (K, N)).astype(np.int8)
    ws = (rng.random(N) * 0.01 + 0.002).astype(np.float32)
    inits = {"xs": np.array(np.float32(0.05)), "xz": np.array(x_zp, x_np), "wq": w, "ws": ws,
             "wz": np.zeros(N, np.int8), "ys": np.array(np.float32(0.5)),
             "yz": np.array(3, np.uint8)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("QLinearMatMul", ["xq", "xs", "xz", "wq", "ws", "wz", "ys", "yz"],
                              ["yq"], name="qmm"),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    graph = helper.make_graph(
        nodes, "qlmm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, N])],
        initializer=[numpy_helper.from_array(v, n) for n, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = _x(rng, (2, 3, K))
    program = shoal.compile(model)
    rt = shoal.Runtime(program, profile=True)
    (y,) = rt.run(x)
    impls = [lay["impl"] for lay in rt.profile() if lay["op"] == "QLinearMatMul"]
    assert len(impls) == 1 and impls[0].startswith("onednn:") and "ref" not in impls[0], impls
    info = np.iinfo(x_np)
    xq = np.clip(np.rint(x / np.float32(0.05)) + x_zp, info.min, info.max).astype(np.int64)
    acc = (xq - x_zp) @ w.astype(np.int64)
    s = (np.float32(0.05) * ws / np.float32(0.5)).astype(np.float32)
    want = (np.clip(np.rint((acc.astype(np.float32) * s).astype(np.float32)) + 3, 0, 255) - 3)
    np.testing.assert_array_equal(y, (want * np.float32(0.5)).astype(np.float32))
    ref, impls = run_saved(program, x, tmp_path, {"SHOAL_REFERENCE_ONLY": "1"}, ["QLinearMatMul"])
    assert impls == ["reference"]
    np.testing.assert_array_equal(y, ref)
