"""int8 execution of QDQ models (issue 13).

The compiler fuses DequantizeLinear -> Conv [-> Relu|Clip] -> QuantizeLinear
into one QLinearConv that oneDNN runs as an int8 convolution, and
DequantizeLinear(a), DequantizeLinear(b) -> Add [-> Relu|Clip] -> QuantizeLinear
into one shoal.QLinearAdd. Its results must
equal, exactly, an integer reference computed here with numpy (int64
accumulation, then the requantization in float32 arithmetic:
(float(acc) + float(bias)) * (x_scale * w_scale / y_scale), ReLU, round half
to even, + zero point, saturate), and the reference kernel's
(SHOAL_REFERENCE_ONLY=1).
"""

import os
import subprocess

import numpy as np
import pytest

import shoal
from saved_run import run_saved

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
    if relu == "clip":  # ReLU6, its bounds from Constant nodes as exporters write them
        nodes += [helper.make_node("Constant", [], ["lo"], value=numpy_helper.from_array(
                      np.array(0, np.float32))),
                  helper.make_node("Constant", [], ["hi"], value=numpy_helper.from_array(
                      np.array(6, np.float32))),
                  helper.make_node("Clip", ["c", "lo", "hi"], ["r"])]
        last = "r"
    elif relu:
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
    if relu == "clip":
        # The fused Clip acts on the requantized value (units of y_scale): its
        # bounds are 0 / y_scale and 6 / y_scale, in float32 as the compiler
        # divides them.
        v = np.minimum(np.maximum(v, np.float32(0) / p["ys"]), np.float32(6) / p["ys"])
    elif relu:
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
    (8, 16, 3, 1, 1, 1, "u8", "clip", 0, True),  # ReLU6 fused
    (16, 16, 3, 1, 1, 16, "u8", "clip", 3, True),  # depthwise, ReLU6
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


def test_int8_conv_matches_reference_kernel(tmp_path):
    rng = np.random.default_rng(5)
    model, _ = _qdq_conv_model(rng, 16, 32, 3, 1, 1, 1, "u8", True, 9, True)
    x = (rng.standard_normal((4, 16, 12, 12)) * 3).astype(np.float32)
    program = shoal.compile(model)
    (y,) = shoal.Runtime(program).run(x)
    ref, impls = run_saved(program, x, tmp_path, {"SHOAL_REFERENCE_ONLY": "1"}, ["QLinearConv"])
    assert impls == ["reference"]
    np.testing.assert_array_equal(y, ref)


def test_digits_layer_precisions(digits_model):
    """Every quantized Conv of the digits CNN runs int8 (its result is
    requantized for the next layer), so does the MaxPool between two and the
    classifier Gemm (shoal.QMatMul, float32 logits); a layer left in float32
    (keep_first_last) runs float32."""
    x = np.load(digits_model.parent / "heldout_x.npy").astype(np.float32)

    def precisions(q):
        rt = shoal.Runtime(shoal.compile(q), profile=True)
        rt.run(x[:4])
        return {lay["name"]: lay["precision"] for lay in rt.profile()
                if lay["op"] in ("Conv", "QLinearConv", "Gemm", "shoal.QMatMul")}

    q = shoal.quantize(digits_model, calibration=x[:100])
    assert precisions(q) == {"/features/features.0/Conv": "int8",
                             "/features/features.3/Conv": "int8",
                             "/features/features.7/Conv": "int8",
                             "/classifier/Gemm": "int8"}
    # and the MaxPool between them, on the 8-bit map (minmax: its result
    # keeps its input's scale, so no requantizing shoal.QLinearLookup)
    assert "precision: 5 layers int8" in shoal.compile(q).describe()
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


def _qdq_add_model(a_type, a_zp, b_type, b_zp, y_type, y_zp, act, shape):
    np_of = {"u8": np.uint8, "s8": np.int8}
    inits = {"as": np.array(0.07, np.float32), "az": np.array(a_zp, np_of[a_type]),
             "bs": np.array(0.03, np.float32), "bz": np.array(b_zp, np_of[b_type]),
             "ys": np.array(0.11, np.float32), "yz": np.array(y_zp, np_of[y_type])}
    nodes = [helper.make_node("QuantizeLinear", ["a", "as", "az"], ["aq"]),
             helper.make_node("DequantizeLinear", ["aq", "as", "az"], ["ad"]),
             helper.make_node("QuantizeLinear", ["b", "bs", "bz"], ["bq"]),
             helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["bd"]),
             helper.make_node("Add", ["ad", "bd"], ["s"], name="add")]
    last = "s"
    if act == "relu":
        nodes.append(helper.make_node("Relu", ["s"], ["r"]))
        last = "r"
    elif act == "clip":
        inits.update({"lo": np.array(-1, np.float32), "hi": np.array(4, np.float32)})
        nodes.append(helper.make_node("Clip", ["s", "lo", "hi"], ["r"]))
        last = "r"
    nodes += [helper.make_node("QuantizeLinear", [last, "ys", "yz"], ["yq"]),
              helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    graph = helper.make_graph(
        nodes, "qadd", [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape)
                        for n in ("a", "b")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        initializer=[numpy_helper.from_array(v, n) for n, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), inits


def _quantize_ref(x, s, z):
    info = np.iinfo(z.dtype)
    return np.clip(np.rint(x / s) + np.int64(z), info.min, info.max).astype(np.int64)


ADD_CASES = [
    # a type, a zero point, b type, b zero point, y type, y zero point, activation
    ("u8", 0, "s8", 0, "u8", 0, "relu"),
    ("s8", 0, "s8", 0, "s8", 0, None),
    ("u8", 13, "u8", 200, "u8", 7, None),
    ("s8", -3, "u8", 9, "s8", 5, "clip"),
]


@pytest.mark.parametrize("case", ADD_CASES)
def test_int8_add_matches_integer_reference(case):
    """shoal.QLinearAdd computes what the unfused DequantizeLinear, Add,
    [Relu|Clip] and QuantizeLinear compute in float32 (each step rounded to
    float32 as numpy rounds it here), so the result is exact, not within a
    step; and it equals the unfused graph's (optimize=False)."""
    a_type, a_zp, b_type, b_zp, y_type, y_zp, act = case
    shape = [2, 8, 5, 7]  # two samples
    model, p = _qdq_add_model(a_type, a_zp, b_type, b_zp, y_type, y_zp, act, [1] + shape[1:])
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    a = (rng.standard_normal(shape) * 4).astype(np.float32)
    b = (rng.standard_normal(shape) * 2).astype(np.float32)
    rt = shoal.Runtime(shoal.compile(model), profile=True)
    (y,) = rt.run([a, b])
    layers = {lay["op"]: lay for lay in rt.profile()}
    assert "Add" not in layers and "shoal.QLinearAdd" in layers, rt.profile()
    assert layers["shoal.QLinearAdd"]["precision"] == "int8"
    assert layers["shoal.QLinearAdd"]["impl"].startswith("native:")
    aq, bq = _quantize_ref(a, p["as"], p["az"]), _quantize_ref(b, p["bs"], p["bz"])
    v = (((aq - np.int64(p["az"])).astype(np.float32) * p["as"])
         + ((bq - np.int64(p["bz"])).astype(np.float32) * p["bs"]))
    if act == "relu":
        v = np.maximum(v, np.float32(0))
    elif act == "clip":
        v = np.clip(v, np.float32(-1), np.float32(4))
    yq = _quantize_ref(v.astype(np.float32), p["ys"], p["yz"])
    want = ((yq - np.int64(p["yz"])).astype(np.float32) * p["ys"]).astype(np.float32)
    np.testing.assert_array_equal(y, want)
    (unfused,) = shoal.Runtime(shoal.compile(model, optimize=False)).run([a, b])
    np.testing.assert_array_equal(y, unfused)


def test_int8_add_reference_kernel(tmp_path):
    model, _ = _qdq_add_model("u8", 4, "s8", -2, "u8", 3, "relu", [1, 4, 3, 3])
    rng = np.random.default_rng(3)
    a, b = [(rng.standard_normal((1, 4, 3, 3)) * 3).astype(np.float32) for _ in range(2)]
    program = shoal.compile(model)
    (y,) = shoal.Runtime(program).run([a, b])
    ref, impls = run_saved(program, [a, b], tmp_path, {"SHOAL_REFERENCE_ONLY": "1"},
                           ["shoal.QLinearAdd"])
    assert impls == ["reference"]
    np.testing.assert_array_equal(y, ref)


def test_quantized_residual_block_runs_int8():
    """A MobileNetV2-style block (Conv, ReLU6, Conv, residual Add, Relu):
    shoal.quantize puts the QDQ nodes where the compiler chains int8 kernels
    (after the ReLU6, on both Add inputs and after the Add's Relu), so no
    float32 op is left between the first and the last layer."""
    rng = np.random.default_rng(11)
    w1 = (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((8, 8, 1, 1)) * 0.3).astype(np.float32)
    w3 = (rng.standard_normal((4, 8, 1, 1)) * 0.3).astype(np.float32)
    inits = {"w1": w1, "b1": np.zeros(8, np.float32), "w2": w2, "b2": np.zeros(8, np.float32),
             "w3": w3, "b3": np.zeros(4, np.float32), "lo": np.array(0, np.float32),
             "hi": np.array(6, np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="c1", pads=[1] * 4),
             helper.make_node("Clip", ["c1", "lo", "hi"], ["r1"], name="relu6"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="c2"),
             helper.make_node("Add", ["c2", "r1"], ["s"], name="add"),
             helper.make_node("Relu", ["s"], ["r2"], name="relu"),
             helper.make_node("Conv", ["r2", "w3", "b3"], ["y"], name="c3")]
    graph = helper.make_graph(
        nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 10, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 10, 10])],
        initializer=[numpy_helper.from_array(v, n) for n, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = rng.standard_normal((16, 3, 10, 10)).astype(np.float32)
    q = shoal.quantize(model, calibration=x)
    rt = shoal.Runtime(shoal.compile(q), profile=True)
    (y,) = rt.run(x[:4])
    ops = {lay["name"]: (lay["op"], lay["precision"]) for lay in rt.profile()
           if lay["op"] not in ("QuantizeLinear", "DequantizeLinear")}
    assert ops == {"c1": ("QLinearConv", "int8"), "c2": ("QLinearConv", "int8"),
                   "add": ("shoal.QLinearAdd", "int8"), "c3": ("Conv", "f32")}, ops
    (ref,) = shoal.Runtime(shoal.compile(model)).run(x[:4])
    snr = 10 * np.log10(np.sum(ref ** 2) / np.sum((y - ref) ** 2))
    assert snr > 25, snr


def test_cli_compile_int8(digits_model, build_dir, tmp_path):
    """`shoal compile --precision int8 --calibration X`: quantizes (Python's
    quantizer, in a child process), compiles the QDQ model and removes it."""
    cli = build_dir / "bin" / "shoal"
    x = np.load(digits_model.parent / "heldout_x.npy").astype(np.float32)
    np.save(tmp_path / "cal.npy", x[:50])
    out = tmp_path / "d.shoal"
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(shoal.__file__)))
    res = subprocess.run([str(cli), "compile", str(digits_model), "-o", str(out), "--precision",
                          "int8", "--calibration", str(tmp_path / "cal.npy"), "--method",
                          "percentile"], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal.npy", "d.shoal"]
    res = subprocess.run([str(cli), "inspect", str(out)], capture_output=True, text=True,
                         timeout=60)
    # 3 Convs, the MaxPool and its requantization (percentile: a new scale),
    # the classifier Gemm
    assert "precision: 6 layers int8" in res.stdout, res.stdout
    (y,) = shoal.Runtime(shoal.load(str(out))).run(x[100:])
    labels = np.load(digits_model.parent / "heldout_y.npy")[100:]
    assert float((y.argmax(1) == labels).mean()) > 0.95
    res = subprocess.run([str(cli), "compile", str(digits_model), "-o", str(tmp_path / "e.shoal"),
                          "--precision", "int8"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "needs --calibration" in res.stderr, res.stderr
    res = subprocess.run([str(cli), "compile", str(digits_model), "-o", str(tmp_path / "e.shoal"),
                          "--precision", "int8", "--calibration", str(tmp_path / "none.npy")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 1 and "none.npy" in res.stderr, res.stderr
    assert not (tmp_path / "e.shoal").exists()


@pytest.mark.parametrize("x_type", ["u8", "s8"])
def test_int8_weights_are_prepacked(tmp_path, x_type):
    """The compiler stores QLinearConv's int8 weights in oneDNN's layout, with
    its compensation sums (program format 3): the plain bytes first, the
    packed copy after them. The kernel uses the copy in place; a CPU that
    wants another layout (here oneDNN limited to VNNI, no AMX) and the
    reference kernel use the plain bytes; every result is the same."""
    rng = np.random.default_rng(11)
    model, p = _qdq_conv_model(rng, 16, 32, 3, 1, 1, 1, x_type, True, 5 if x_type == "u8" else 0,
                               True)
    x = (rng.standard_normal((2, 16, 12, 12)) * 3).astype(np.float32)
    program = shoal.compile(model)
    assert "packed weights: 1 tensors" in program.describe(), program.describe()
    assert program.info()["format_version"] == 3
    (y,) = shoal.Runtime(program).run(x)
    want = _integer_reference(x, p, 32, 3, 1, 1, 1, True)
    np.testing.assert_array_equal(y, want)
    for env, impl in (({"DNNL_MAX_CPU_ISA": "AVX512_CORE_VNNI"}, "vnni"),
                      ({"SHOAL_REFERENCE_ONLY": "1"}, "reference")):
        y2, impls = run_saved(program, x, tmp_path, env, ["QLinearConv"])
        assert len(impls) == 1 and impl in impls[0], impls
        np.testing.assert_array_equal(y2, want)
