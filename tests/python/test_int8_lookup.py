"""int8 table ops of QDQ models (issue 13): passes::fuse_qdq_lookup.

A float32 function of one 8-bit tensor (elementwise ops on its
DequantizeLinear: SiLU, HardSwish, Tanh, ...) read by a QuantizeLinear, by
GlobalAveragePool -> QuantizeLinear or by Mul -> QuantizeLinear becomes
shoal.QLinearLookup, shoal.QLinearGlobalAveragePool or shoal.QLinearMul, with
tables computed at compile time by the ops' reference kernels. Each must equal,
exactly, the unfused QDQ graph run on the reference kernels (optimize=False,
SHOAL_REFERENCE_ONLY=1), on native kernels and on the fused op's own reference
kernel, and be within a quantization step of numpy's float32 computation.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import shoal

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

NP = {"u8": np.uint8, "s8": np.int8}


def _qdq(name, scale, zp, qtype, inits):
    """QuantizeLinear -> DequantizeLinear of `name`: nodes, dequantized name."""
    inits[name + "_s"] = np.array(scale, np.float32)
    inits[name + "_z"] = np.array(zp, NP[qtype])
    return [helper.make_node("QuantizeLinear", [name, name + "_s", name + "_z"], [name + "_q"]),
            helper.make_node("DequantizeLinear", [name + "_q", name + "_s", name + "_z"],
                             [name + "_d"])], name + "_d"


def _function(kind, x, out, inits):
    """Elementwise nodes computing out = kind(x)."""
    if kind == "silu":
        return [helper.make_node("Sigmoid", [x], [out + "_sig"]),
                helper.make_node("Mul", [x, out + "_sig"], [out])]
    if kind == "clip":
        inits.update({"lo": np.array(-0.5, np.float32), "hi": np.array(2, np.float32)})
        return [helper.make_node("Clip", [x, "lo", "hi"], [out])]
    if kind == "affine_tanh":  # scalar constants on either side
        inits.update({"k": np.array(0.75, np.float32), "c": np.array(0.25, np.float32)})
        return [helper.make_node("Mul", ["k", x], [out + "_m"]),
                helper.make_node("Sub", [out + "_m", "c"], [out + "_a"]),
                helper.make_node("Tanh", [out + "_a"], [out])]
    return [helper.make_node(kind, [x], [out])]


def _np_function(kind, v):
    v = v.astype(np.float32)
    sig = (np.float32(1) / (np.float32(1) + np.exp(-v))).astype(np.float32)
    if kind == "silu":
        return v * sig
    if kind == "Sigmoid":
        return sig
    if kind == "HardSwish":
        return v * np.clip(v / np.float32(6) + np.float32(0.5), 0, 1)
    if kind == "clip":
        return np.clip(v, np.float32(-0.5), np.float32(2))
    if kind == "affine_tanh":
        return np.tanh(np.float32(0.75) * v - np.float32(0.25))
    raise AssertionError(kind)


def _model(nodes, inits, inputs, out_shape):
    graph = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(v, n) for n, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def _deq(q, s, z):
    return ((q.astype(np.int64) - np.int64(z)).astype(np.float32) * np.float32(s))


def _quant(v, s, z):
    info = np.iinfo(np.asarray(z).dtype)
    return np.clip(np.rint(v / np.float32(s)) + np.int64(z), info.min, info.max)


def lookup_case(kind, xt, xz, yt, yz, shape):
    inits = {}
    nodes, xd = _qdq("x", 0.05, xz, xt, inits)
    nodes += _function(kind, xd, "f", inits)
    more, _ = _qdq("f", 0.02, yz, yt, inits)
    nodes += more + [helper.make_node("Identity", ["f_d"], ["y"])]
    return _model(nodes, inits, [("x", [1] + shape[1:])], [1] + shape[1:]), inits


def gap_case(xt, xz, yt, yz, shape, flatten=False):
    """silu -> GlobalAveragePool -> Q, or (flatten) a classifier's head:
    DQ -> GlobalAveragePool -> Flatten -> Q."""
    inits = {}
    nodes, xd = _qdq("x", 0.05, xz, xt, inits)
    if flatten:
        nodes += [helper.make_node("GlobalAveragePool", [xd], ["g"], name="gap"),
                  helper.make_node("Flatten", ["g"], ["p"])]
    else:
        nodes += _function("silu", xd, "f", inits)
        nodes.append(helper.make_node("GlobalAveragePool", ["f"], ["p"], name="gap"))
    more, _ = _qdq("p", 0.01, yz, yt, inits)
    nodes += more + [helper.make_node("Identity", ["p_d"], ["y"])]
    out = [1, shape[1]] + ([] if flatten else [1] * (len(shape) - 2))
    return _model(nodes, inits, [("x", [1] + shape[1:])], out), inits


def maxpool_case(xt, xz, yt, yz, shape, y_scale):
    """DQ -> MaxPool (3x3, stride 2, padded) -> Q: MaxPool on the bytes."""
    inits = {}
    nodes, xd = _qdq("x", 0.05, xz, xt, inits)
    nodes.append(helper.make_node("MaxPool", [xd], ["p"], name="pool", kernel_shape=[3, 3],
                                  strides=[2, 2], pads=[1, 1, 1, 1]))
    more, _ = _qdq("p", y_scale, yz, yt, inits)
    nodes += more + [helper.make_node("Identity", ["p_d"], ["y"])]
    out = [1, shape[1], (shape[2] + 1) // 2, (shape[3] + 1) // 2]
    return _model(nodes, inits, [("x", [1] + shape[1:])], out), inits


def avgpool_case(xt, xz, yt, yz, shape, silu, include_pad):
    """DQ [-> silu] -> AveragePool (3x3, stride 2, padded) -> Q."""
    inits = {}
    nodes, xd = _qdq("x", 0.05, xz, xt, inits)
    if silu:
        nodes += _function("silu", xd, "f", inits)
        xd = "f"
    nodes.append(helper.make_node("AveragePool", [xd], ["p"], name="pool", kernel_shape=[3, 3],
                                  strides=[2, 2], pads=[1, 1, 1, 1],
                                  count_include_pad=int(include_pad)))
    more, _ = _qdq("p", 0.01, yz, yt, inits)
    nodes += more + [helper.make_node("Identity", ["p_d"], ["y"])]
    out = [1, shape[1], (shape[2] + 1) // 2, (shape[3] + 1) // 2]
    return _model(nodes, inits, [("x", [1] + shape[1:])], out), inits


def concat_case(shapes, axis, scales, y_scale):
    """DQ(x0), DQ(x1) -> Concat -> Q: a Concat of the bytes."""
    inits = {}
    nodes, names = [], []
    for i, sc in enumerate(scales):
        more, d = _qdq(f"x{i}", sc, 0, "s8", inits)
        nodes += more
        names.append(d)
    nodes.append(helper.make_node("Concat", names, ["c"], name="cat", axis=axis))
    more, _ = _qdq("c", y_scale, 0, "s8", inits)
    nodes += more + [helper.make_node("Identity", ["c_d"], ["y"])]
    out = list(shapes[0])
    out[axis] = sum(sh[axis] for sh in shapes)
    return _model(nodes, inits, [(f"x{i}", sh) for i, sh in enumerate(shapes)], out), inits


def mul_case(xt, xz, yt, yz, shape, per_channel, swap):
    """The squeeze-excitation's scale: Mul(silu(x), sigmoid(s)) -> Q."""
    inits = {}
    nodes, xd = _qdq("x", 0.05, xz, xt, inits)
    nodes += _function("silu", xd, "f", inits)
    s_shape = [1, shape[1]] + [1] * (len(shape) - 2) if per_channel else [1] + shape[1:]
    more, sd = _qdq("s", 0.04, 0, "s8", inits)
    nodes += more + [helper.make_node("Sigmoid", [sd], ["g"])]
    nodes.append(helper.make_node("Mul", ["g", "f"] if swap else ["f", "g"], ["m"], name="mul"))
    more, _ = _qdq("m", 0.015, yz, yt, inits)
    nodes += more + [helper.make_node("Identity", ["m_d"], ["y"])]
    return _model(nodes, inits, [("x", [1] + shape[1:]), ("s", s_shape)], [1] + shape[1:]), inits


def _inputs(rng, model):
    out = []
    for inp in model.graph.input:
        dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        out.append((rng.standard_normal([2] + dims[1:]) * 3).astype(np.float32))
    return out


def _cases():
    c = {}
    for kind in ("silu", "Sigmoid", "HardSwish", "clip", "affine_tanh"):
        c["lookup_" + kind] = lookup_case(kind, "s8", 0, "s8", 0, [2, 8, 5, 7]) + (
            "shoal.QLinearLookup",)
    c["lookup_u8_zp"] = lookup_case("silu", "u8", 120, "u8", 30, [2, 70, 3]) + (
        "shoal.QLinearLookup",)
    c["gap_s8"] = gap_case("s8", 0, "s8", 0, [2, 40, 9, 11]) + (
        "shoal.QLinearGlobalAveragePool",)
    c["gap_u8_plain"] = gap_case("u8", 100, "u8", 20, [2, 6, 50]) + (
        "shoal.QLinearGlobalAveragePool",)
    c["gap_flatten"] = gap_case("u8", 0, "s8", 0, [2, 24, 7, 7], flatten=True) + (
        "shoal.QLinearGlobalAveragePool",)
    c["maxpool_same"] = maxpool_case("u8", 0, "u8", 0, [2, 16, 9, 9], 0.05) + (["MaxPool"],)
    c["maxpool_requant"] = maxpool_case("s8", 0, "u8", 7, [2, 16, 9, 9], 0.03) + (
        ["MaxPool", "shoal.QLinearLookup"],)
    c["avgpool_silu"] = avgpool_case("s8", 0, "s8", 0, [2, 40, 9, 11], True, False) + (
        "shoal.QLinearAveragePool",)
    c["avgpool_pad_u8"] = avgpool_case("u8", 100, "u8", 20, [2, 24, 8, 8], False, True) + (
        "shoal.QLinearAveragePool",)
    c["concat_same"] = concat_case([[1, 8, 5, 7], [1, 4, 5, 7]], 1, [0.05, 0.05], 0.05) + (
        ["Concat"],)
    c["concat_requant"] = concat_case([[1, 6, 10], [1, 6, 7]], 2, [0.05, 0.02], 0.05) + (
        ["shoal.QLinearLookup", "Concat"],)
    c["mul_channel"] = mul_case("s8", 0, "s8", 0, [2, 40, 9, 11], True, False) + (
        "shoal.QLinearMul",)
    c["mul_channel_swap_u8"] = mul_case("u8", 110, "u8", 3, [2, 24, 6, 6], True, True) + (
        "shoal.QLinearMul",)
    c["mul_channel_plain"] = mul_case("s8", 0, "s8", -4, [2, 6, 50], True, False) + (
        "shoal.QLinearMul",)
    c["mul_same_shape"] = mul_case("s8", 5, "s8", 0, [2, 8, 5, 7], False, True) + (
        "shoal.QLinearMul",)
    return c


_RUN = r"""
import sys, json, numpy as np, shoal
for name in json.loads(sys.argv[2]):
    d = sys.argv[1] + "/" + name
    rt = shoal.Runtime(shoal.load(d + ".shoal"), profile=True)
    xs = list(np.load(d + ".in.npz").values())
    (y,) = rt.run(xs)
    prof = [l for l in rt.profile() if l["op"] not in ("Identity", "Flatten")]
    if sys.argv[3] == "ref":
        assert {l["impl"] for l in prof} == {"reference"}, prof
    else:
        want = "native:" + sys.argv[3]
        assert {l["impl"] for l in prof if l["op"] != "MaxPool"} == {want}, prof
    np.save(d + "." + sys.argv[3] + ".npy", y)
"""


def test_int8_table_ops_match_reference_path(tmp_path):
    """Native fused == unfused graph on the reference kernels == the fused
    ops' reference kernels, exactly; numpy's float32 within a step."""
    rng = np.random.default_rng(7)
    cases = _cases()
    native = {}
    for name, (model, inits, op, *_) in cases.items():
        xs = _inputs(rng, model)
        fused = shoal.compile(model)
        rt = shoal.Runtime(fused, profile=True)
        (native[name],) = rt.run(xs)
        layers = [lay for lay in rt.profile()
                  if lay["op"] not in ("QuantizeLinear", "DequantizeLinear", "Flatten")]
        ops = op if isinstance(op, list) else [op]
        assert [(lay["op"], lay["precision"]) for lay in layers] == [(o, "int8") for o in ops], (
            name, layers)
        for lay in layers:
            assert lay["impl"].startswith("onednn:" if lay["op"] == "MaxPool" else "native:"), (
                name, layers)
        fused.save(str(tmp_path / (name + ".shoal")))
        shoal.compile(model, optimize=False).save(str(tmp_path / (name + "_unfused.shoal")))
        np.savez(tmp_path / (name + ".in.npz"), *xs)
        np.savez(tmp_path / (name + "_unfused.in.npz"), *xs)
        # numpy float32 of the unfused graph: within one step of y's scale.
        y_scale = [v for k, v in inits.items() if k in ("f_s", "p_s", "m_s", "c_s")][0]
        assert np.all(np.abs(native[name] - _numpy_case(name, inits, xs)) <= y_scale * 1.001), name
    names = list(cases) + [n + "_unfused" for n in cases]
    runs = [("ref", names, dict(os.environ, SHOAL_REFERENCE_ONLY="1"))]
    # The plain loops of the other ISA tables (no VBMI, no in-register tables).
    runs += [(isa, list(cases), dict(os.environ, SHOAL_ISA=isa)) for isa in ("generic", "avx2")]
    for tag, which, env in runs:
        res = subprocess.run([sys.executable, "-c", _RUN, str(tmp_path), json.dumps(which), tag],
                             capture_output=True, text=True, timeout=300, env=env)
        assert res.returncode == 0, res.stderr
    for name in cases:
        for tag in ("ref", "generic", "avx2"):
            np.testing.assert_array_equal(native[name], np.load(tmp_path / f"{name}.{tag}.npy"),
                                          (name, tag))
        np.testing.assert_array_equal(native[name],
                                      np.load(tmp_path / (name + "_unfused.ref.npy")), name)


def _numpy_case(name, p, xs):
    if name.startswith("concat"):
        parts = [_deq(_quant(x, p[f"x{i}_s"], p[f"x{i}_z"]), p[f"x{i}_s"], p[f"x{i}_z"])
                 for i, x in enumerate(xs)]
        c = np.concatenate(parts, axis=1 if name == "concat_same" else 2)
        return _deq(_quant(c, p["c_s"], p["c_z"]), p["c_s"], p["c_z"])
    xq = _quant(xs[0], p["x_s"], p["x_z"])
    if name.startswith("lookup"):
        kind = name[len("lookup_"):] if not name.startswith("lookup_u8") else "silu"
        f = _np_function(kind, _deq(xq, p["x_s"], p["x_z"]))
        return _deq(_quant(f, p["f_s"], p["f_z"]), p["f_s"], p["f_z"])
    f = _deq(xq, p["x_s"], p["x_z"])
    if name.startswith("maxpool"):
        pad = np.pad(f, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
        h, w = (f.shape[2] + 1) // 2, (f.shape[3] + 1) // 2
        m = np.stack([pad[:, :, i:i + 2 * h:2, j:j + 2 * w:2] for i in range(3)
                      for j in range(3)]).max(0)
        return _deq(_quant(m, p["p_s"], p["p_z"]), p["p_s"], p["p_z"])
    if name.startswith("avgpool"):
        if name == "avgpool_silu":
            f = _np_function("silu", f)
        pad = np.pad(f.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
        ones = np.pad(np.ones(f.shape[2:]), 1)
        h, w = (f.shape[2] + 1) // 2, (f.shape[3] + 1) // 2
        total = sum(pad[:, :, i:i + 2 * h:2, j:j + 2 * w:2] for i in range(3) for j in range(3))
        count = 9 if name == "avgpool_pad_u8" else sum(
            ones[i:i + 2 * h:2, j:j + 2 * w:2] for i in range(3) for j in range(3))
        m = (total / count).astype(np.float32)
        return _deq(_quant(m, p["p_s"], p["p_z"]), p["p_s"], p["p_z"])
    if name != "gap_flatten":
        f = _np_function("silu", f)
    if name.startswith("gap"):
        m = f.astype(np.float64).mean(axis=tuple(range(2, f.ndim)), keepdims=name != "gap_flatten")
        return _deq(_quant(m.astype(np.float32), p["p_s"], p["p_z"]), p["p_s"], p["p_z"])
    g = _np_function("Sigmoid", _deq(_quant(xs[1], p["s_s"], p["s_z"]), p["s_s"], p["s_z"]))
    return _deq(_quant((f * g).astype(np.float32), p["m_s"], p["m_z"]), p["m_s"], p["m_z"])


def test_squeeze_excitation_block_runs_int8():
    """An EfficientNet-style block quantized by shoal.quantize (1x1 Conv,
    SiLU, depthwise Conv, SiLU, squeeze-excitation, 1x1 Conv): every op
    between the first and the last layer runs int8."""
    rng = np.random.default_rng(3)
    c, r = 16, 4

    def w(*s):
        return (rng.standard_normal(s) * 0.3).astype(np.float32)

    inits = {"w1": w(c, 3, 1, 1), "w2": w(c, 1, 3, 3), "wr": w(r, c, 1, 1), "br": w(r),
             "we": w(c, r, 1, 1), "be": w(c), "w3": w(8, c, 1, 1)}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="c1"),
             helper.make_node("Sigmoid", ["c1"], ["s1"]),
             helper.make_node("Mul", ["c1", "s1"], ["a1"]),
             helper.make_node("Conv", ["a1", "w2"], ["c2"], name="dw", group=c, pads=[1] * 4),
             helper.make_node("Sigmoid", ["c2"], ["s2"]),
             helper.make_node("Mul", ["c2", "s2"], ["a2"]),
             helper.make_node("GlobalAveragePool", ["a2"], ["g"], name="gap"),
             helper.make_node("Conv", ["g", "wr", "br"], ["r1"], name="reduce"),
             helper.make_node("Sigmoid", ["r1"], ["rs"]),
             helper.make_node("Mul", ["r1", "rs"], ["ra"]),
             helper.make_node("Conv", ["ra", "we", "be"], ["e1"], name="expand"),
             helper.make_node("Sigmoid", ["e1"], ["es"]),
             helper.make_node("Mul", ["es", "a2"], ["se"], name="scale"),
             helper.make_node("Conv", ["se", "w3"], ["y"], name="c3")]
    model = _model(nodes, inits, [("x", [1, 3, 12, 12])], [1, 8, 12, 12])
    x = rng.standard_normal((16, 3, 12, 12)).astype(np.float32)
    q = shoal.quantize(model, calibration=x)
    rt = shoal.Runtime(shoal.compile(q), profile=True)
    (y,) = rt.run(x[:4])
    ops = sorted((lay["op"], lay["precision"]) for lay in rt.profile()
                 if lay["op"] not in ("QuantizeLinear", "DequantizeLinear"))
    assert ops == sorted([("QLinearConv", "int8")] * 4 + [("Conv", "f32")] +
                         [("shoal.QLinearLookup", "int8")] * 2 +
                         [("shoal.QLinearGlobalAveragePool", "int8"),
                          ("shoal.QLinearMul", "int8")]), ops
    (ref,) = shoal.Runtime(shoal.compile(model)).run(x[:4])
    snr = 10 * np.log10(np.sum(ref ** 2) / np.sum((y - ref) ** 2))
    assert snr > 20, snr
