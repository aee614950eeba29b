"""recognize_composites and fuse_matmul_bias seen from outside: the
decomposed SiLU, HardSwish, GELU and LayerNorm an exporter writes become one
layer each (or vanish into the producing Conv/MatMul), and the program still
computes what the unoptimized one (reference kernels, no passes) and numpy
compute. The models run channels-last convolutions into the native
elementwise, reduction and copy kernels, so those are checked end to end."""

import math

import numpy as np
import pytest

import shoal

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402

RNG = np.random.default_rng(5)


def randn(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def layers(program, x):
    rt = shoal.Runtime(program, profile=True)
    rt.run(x)
    return rt.profile()


def check(model, x, lines_want, ops_gone, numpy_y=None, tol=1e-4):
    lines = []
    program = shoal.compile(model, log=lines.append)
    said = " ".join(lines)
    for want in lines_want:
        assert want in said, lines
    ops = [layer["op"] for layer in layers(program, x[:1])]
    for op in ops_gone:
        assert op not in ops, ops
    (y,) = shoal.Runtime(program).run(x)
    (ref,) = shoal.Runtime(shoal.compile(model, optimize=False)).run(x)
    rng = float(ref.max() - ref.min())
    np.testing.assert_allclose(y, ref, rtol=0, atol=tol * rng)
    if numpy_y is not None:
        np.testing.assert_allclose(y, numpy_y, rtol=0, atol=tol * rng)
    # The output depends on the input (a broken pattern cannot hide).
    (y2,) = shoal.Runtime(program).run(x[::-1].copy())
    assert np.abs(y2 - y).max() > 0.01 * rng
    return ops


def conv_np(x, w, b):
    return np.einsum("nchw,oc->nohw", x, w[:, :, 0, 0]) + b[None, :, None, None]


@pytest.mark.parametrize("gate", ["Sigmoid", "HardSigmoid"])
def test_gated_activation_fuses_into_conv(make_onnx, gate):
    w, b = randn(8, 4, 1, 1), randn(8)
    attrs = {"alpha": 1 / 6, "beta": 0.5} if gate == "HardSigmoid" else {}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"]),
             helper.make_node(gate, ["c"], ["g"], **attrs),
             helper.make_node("Mul", ["c", "g"], ["y"])]
    model = make_onnx.graph(nodes, [("x", [1, 4, 6, 6])], [("y", [1, 8, 6, 6])],
                            {"w": w, "b": b})
    x = randn(3, 4, 6, 6, scale=3)
    c = conv_np(x, w, b)
    g = 1 / (1 + np.exp(-c)) if gate == "Sigmoid" else np.clip(c / 6 + 0.5, 0, 1)
    check(model, x, ["1 SiLU/HardSwish"], [gate, "Mul"], c * g)


def test_gelu_after_matmul_with_bias(make_onnx):
    w, b = randn(16, 24, scale=0.5), randn(24)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Div", ["a", "s2"], ["d"]),
             helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["e1"]),
             helper.make_node("Mul", ["a", "e1"], ["p"]),
             helper.make_node("Mul", ["p", "half"], ["y"])]
    inits = {"w": w, "b": b, "s2": np.array(math.sqrt(2), np.float32),
             "one": np.array(1, np.float32), "half": np.array(0.5, np.float32)}
    model = make_onnx.graph(nodes, [("x", [1, 5, 7, 16])], [("y", [1, 5, 7, 24])], inits)
    x = randn(2, 5, 7, 16)
    a = x.astype(np.float64) @ w + b
    erf = np.vectorize(math.erf)
    ops = check(model, x, ["1 GELU", "fused 1 bias Add nodes into MatMul"],
                ["Erf", "Add", "Div", "Mul"], 0.5 * a * (1 + erf(a / math.sqrt(2))))
    assert ops == ["MatMul"]


@pytest.mark.parametrize("affine", [True, False])
def test_decomposed_layernorm(make_onnx, affine):
    c = 12
    g, b = randn(c) + 1, randn(c)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("ReduceMean", ["t"], ["m"], axes=[-1]),
             helper.make_node("Sub", ["t", "m"], ["d"]),
             helper.make_node("Pow", ["d", "two"], ["d2"]),
             helper.make_node("ReduceMean", ["d2"], ["v"], axes=[-1]),
             helper.make_node("Add", ["v", "eps"], ["ve"]),
             helper.make_node("Sqrt", ["ve"], ["s"]),
             helper.make_node("Div", ["d", "s"], ["n"])]
    inits = {"two": np.array(2, np.float32), "eps": np.array(1e-6, np.float32)}
    last = "n"
    if affine:
        nodes += [helper.make_node("Mul", ["n", "g"], ["ng"]),
                  helper.make_node("Add", ["ng", "b"], ["nb"])]
        inits.update(g=g, b=b)
        last = "nb"
    nodes.append(helper.make_node("Transpose", [last], ["y"], perm=[0, 3, 1, 2]))
    model = make_onnx.graph(nodes, [("x", [1, c, 5, 6])], [("y", [1, c, 5, 6])], inits)
    x = randn(3, c, 5, 6, scale=2) + 1
    t = x.transpose(0, 2, 3, 1).astype(np.float64)
    n = (t - t.mean(-1, keepdims=True)) / np.sqrt(t.var(-1, keepdims=True) + 1e-6)
    if affine:
        n = n * g + b
    ops = check(model, x, ["1 LayerNormalization"], ["ReduceMean", "Pow", "Sqrt", "Div"],
                n.transpose(0, 3, 1, 2))
    assert "LayerNormalization" in ops


def test_squeeze_excitation_stays_channels_last(make_onnx):
    """Pool, two 1x1 convs, sigmoid and the channel scale: every layer runs a
    fast kernel (no reference layout conversions)."""
    c = 16
    inits = {"w0": randn(c, 4, 3, 3), "w1": randn(4, c, 1, 1), "b1": randn(4),
             "w2": randn(c, 4, 1, 1), "b2": randn(c)}
    nodes = [helper.make_node("Conv", ["x", "w0"], ["f"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["f"], ["p"]),
             helper.make_node("Conv", ["p", "w1", "b1"], ["q"]),
             helper.make_node("Relu", ["q"], ["r"]),
             helper.make_node("Conv", ["r", "w2", "b2"], ["s"]),
             helper.make_node("Sigmoid", ["s"], ["sg"]),
             helper.make_node("Mul", ["f", "sg"], ["m"]),
             helper.make_node("Conv", ["m", "w1", "b1"], ["y"])]
    model = make_onnx.graph(nodes, [("x", [1, 4, 9, 9])], [("y", [1, 4, 9, 9])], inits)
    x = randn(4, 4, 9, 9)
    program = shoal.compile(model)
    found = layers(program, x[:1])
    impls = {layer["op"]: layer["impl"] for layer in found}
    assert impls["GlobalAveragePool"].startswith("native:"), impls
    # The channel scale went into the last conv's weights (fuse_channel_scale).
    assert "Mul" not in impls and any("+scaled weights" in layer["impl"] for layer in found), found
    assert not any(i.startswith("reference") or ":ref" in i for i in impls.values()), impls
    check(model, x, [], [])


def test_channel_shuffle_and_split(make_onnx):
    """ShuffleNet's Split / Reshape-Transpose-Reshape / Concat, between convs."""
    c = 8
    inits = {"w0": randn(c, 3, 1, 1), "w1": randn(c // 2, c // 2, 1, 1),
             "shape5": np.array([1, 2, c // 2, 6, 6], np.int64),
             "shape4": np.array([1, c, 6, 6], np.int64)}
    nodes = [helper.make_node("Conv", ["x", "w0"], ["f"]),
             helper.make_node("Split", ["f"], ["a", "b"], axis=1),
             helper.make_node("Conv", ["b", "w1"], ["bc"]),
             helper.make_node("Concat", ["a", "bc"], ["cat"], axis=1),
             helper.make_node("Reshape", ["cat", "shape5"], ["r5"]),
             helper.make_node("Transpose", ["r5"], ["t5"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["t5", "shape4"], ["y"])]
    nodes.append(helper.make_node("Conv", ["y0", "w2"], ["y"]))
    nodes[-2].output[0] = "y0"
    inits["w2"] = randn(c, c, 1, 1)
    model = make_onnx.graph(nodes, [("x", [1, 3, 6, 6])], [("y", [1, c, 6, 6])], inits)
    x = randn(3, 3, 6, 6)
    ops = check(model, x, ["1 channel shuffle", "fused 1 Concat -> Gather pairs"],
                ["Transpose", "Reshape", "Concat", "Gather"])
    assert "shoal.ConcatGather" in ops
    f = np.einsum("nchw,oc->nohw", x, inits["w0"][:, :, 0, 0])
    a, b = f[:, :c // 2], np.einsum("nchw,oc->nohw", f[:, c // 2:], inits["w1"][:, :, 0, 0])
    cat = np.concatenate([a, b], 1)
    shuffled = cat.reshape(3, 2, c // 2, 6, 6).transpose(0, 2, 1, 3, 4).reshape(3, c, 6, 6)
    want = np.einsum("nchw,oc->nohw", shuffled, inits["w2"][:, :, 0, 0])
    (y,) = shoal.Runtime(shoal.compile(model)).run(x)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("slices", [True, False])
def test_shuffle_between_blocks_is_one_copy(make_onnx, slices):
    """ShuffleNet between two blocks: Concat, the shuffle, then the next
    block's halves as two Slices (or read whole). The joined and the
    permuted tensors are never written: each half (or the whole) is one
    shoal.ConcatGather copy from the Concat's inputs."""
    c = 12
    inits = {"w0": randn(c // 2, 3, 1, 1), "w1": randn(c // 2, 3, 1, 1),
             "w2": randn(c // 2, c // 2, 1, 1), "w3": randn(c, c, 1, 1),
             "shape5": np.array([1, 2, c // 2, 7, 7], np.int64),
             "shape4": np.array([1, c, 7, 7], np.int64),
             "s0": np.array([0], np.int64), "s1": np.array([c // 2], np.int64),
             "e1": np.array([c], np.int64), "ax": np.array([1], np.int64)}
    nodes = [helper.make_node("Conv", ["x", "w0"], ["a"]),
             helper.make_node("Conv", ["x", "w1"], ["b"]),
             helper.make_node("Concat", ["a", "b"], ["cat"], axis=1),
             helper.make_node("Reshape", ["cat", "shape5"], ["r5"]),
             helper.make_node("Transpose", ["r5"], ["t5"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["t5", "shape4"], ["sh"])]
    if slices:
        nodes += [helper.make_node("Slice", ["sh", "s0", "s1", "ax"], ["h0"]),
                  helper.make_node("Slice", ["sh", "s1", "e1", "ax"], ["h1"]),
                  helper.make_node("Conv", ["h1", "w2"], ["h1c"]),
                  helper.make_node("Concat", ["h0", "h1c"], ["y"], axis=1)]
        said = ["fused 1 Concat -> Gather pairs (channel shuffles) and 2 Slices"]
        gone = ["Transpose", "Reshape", "Gather", "Slice"]
    else:
        nodes.append(helper.make_node("Conv", ["sh", "w3"], ["y"]))
        said = ["fused 1 Concat -> Gather pairs (channel shuffles) and 0 Slices"]
        gone = ["Transpose", "Reshape", "Gather", "Concat"]
    model = make_onnx.graph(nodes, [("x", [1, 3, 7, 7])], [("y", [1, c, 7, 7])], inits)
    x = randn(3, 3, 7, 7)
    f = {k: np.einsum("nchw,oc->nohw", x, inits[k][:, :, 0, 0]) for k in ("w0", "w1")}
    cat = np.concatenate([f["w0"], f["w1"]], 1)
    sh = cat.reshape(3, 2, c // 2, 7, 7).transpose(0, 2, 1, 3, 4).reshape(3, c, 7, 7)
    if slices:
        h1 = np.einsum("nchw,oc->nohw", sh[:, c // 2:], inits["w2"][:, :, 0, 0])
        want = np.concatenate([sh[:, :c // 2], h1], 1)
    else:
        want = np.einsum("nchw,oc->nohw", sh, inits["w3"][:, :, 0, 0])
    ops = check(model, x, said, gone, want)
    assert ops.count("shoal.ConcatGather") == (2 if slices else 1), ops


@pytest.mark.parametrize("idx,axis", [(-7, 1), ([5, 0, 0, 2], 3), ([[5, 0], [0, 2]], 3),
                                      ([[5, 0], [0, 2]], 1), ([3, 1], 2)])
def test_gather_with_constant_indices(make_onnx, idx, axis):
    """The native Gather (any index rank, any axis) against numpy.take."""
    idx = np.array(idx, np.int64)
    x = randn(2, 7, 5, 6)
    want = np.take(x, idx, axis=axis)
    model = make_onnx("Gather", [("x", [1, 7, 5, 6])], [("y", [1] + list(want.shape[1:]))],
                      {"i": idx}, {"axis": axis})
    program = shoal.compile(model)
    assert layers(program, x[:1])[0]["impl"].startswith("native:")
    (y,) = shoal.Runtime(program).run(x)
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("act", ["Relu", "Sigmoid", "Clip"])
def test_batchnorm_activation_fuse(make_onnx, act):
    """A BatchNormalization no convolution precedes (DenseNet's pre-activation
    after a Concat) takes the following activation: one pass of the native
    per-channel affine kernel, matching the unfused reference."""
    c = 6
    inits = {"w": randn(c, 3, 3, 3), "s": randn(c) + 1.5, "b": randn(c), "m": randn(c),
             "v": np.abs(randn(c)) + 0.5, "w2": randn(4, 2 * c, 1, 1)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["f"], pads=[1, 1, 1, 1]),
             helper.make_node("Concat", ["f", "f"], ["cat"], axis=1),
             helper.make_node("Slice", ["cat", "st", "en", "ax"], ["half"]),
             helper.make_node("BatchNormalization", ["half", "s", "b", "m", "v"], ["bn"]),
             helper.make_node(act, ["bn"], ["r"]),
             helper.make_node("Concat", ["r", "f"], ["cat2"], axis=1),
             helper.make_node("Conv", ["cat2", "w2"], ["y"])]
    inits.update(st=np.array([c], np.int64), en=np.array([2 * c], np.int64),
                 ax=np.array([1], np.int64))
    model = make_onnx.graph(nodes, [("x", [1, 3, 7, 7])], [("y", [1, 4, 7, 7])], inits)
    x = randn(3, 3, 7, 7)
    program = shoal.compile(model)
    bn = [la for la in layers(program, x[:1]) if la["op"] == "BatchNormalization"]
    assert len(bn) == 1 and bn[0]["impl"].startswith("native:"), bn
    ops = check(model, x, ["activations into Conv/Gemm/MatMul/BatchNormalization"], [act])
    assert "BatchNormalization" in ops


@pytest.mark.parametrize("act", ["Relu", "Sigmoid", None])
def test_concat_batchnorm_fuse(make_onnx, act):
    """DenseNet's pre-activation: Concat -> BatchNormalization -> Relu ->
    Conv. The Concat writes the normalized, activated channels in one pass
    (its native kernel), and the BatchNormalization is gone."""
    c1, c2 = 5, 7
    c = c1 + c2
    inits = {"w1": randn(c1, 3, 3, 3), "w2": randn(c2, 3, 1, 1), "s": randn(c) + 1.5,
             "b": randn(c), "m": randn(c), "v": np.abs(randn(c)) + 0.5,
             "w3": randn(4, c, 1, 1)}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["f1"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "w2"], ["f2"]),
             helper.make_node("Concat", ["f1", "f2"], ["cat"], axis=1),
             helper.make_node("BatchNormalization", ["cat", "s", "b", "m", "v"], ["bn"])]
    last = "bn"
    if act:
        nodes.append(helper.make_node(act, ["bn"], ["r"]))
        last = "r"
    nodes.append(helper.make_node("Conv", [last, "w3"], ["y"]))
    model = make_onnx.graph(nodes, [("x", [1, 3, 7, 7])], [("y", [1, 4, 7, 7])], inits)
    x = randn(3, 3, 7, 7)
    gone = ["BatchNormalization"] + ([act] if act else [])
    check(model, x, ["fused 1 BatchNormalizations into the Concat"], gone)
    program = shoal.compile(model)
    cat = [la for la in layers(program, x[:1]) if la["op"] == "Concat"]
    assert len(cat) == 1 and cat[0]["impl"].startswith("native:"), cat


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_slice_with_int32_or_int64_bounds(make_onnx, dtype):
    """ONNX lets Slice's starts/ends/axes/steps be int32 too: the native
    kernel reads both (a review found int32 made loading fail)."""
    x = randn(2, 6, 5, 4)
    inits = {"st": np.array([-1, 1], dtype), "en": np.array([-7, 4], dtype),
             "ax": np.array([1, 2], dtype), "sp": np.array([-2, 1], dtype)}
    want = x[:, ::-2][:, :, 1:4]
    model = make_onnx("Slice", [("x", [1, 6, 5, 4])], [("y", [1, 3, 3, 4])], inits)
    program = shoal.compile(model)
    assert layers(program, x[:1])[0]["impl"].startswith("native:")
    (y,) = shoal.Runtime(program).run(x)
    np.testing.assert_array_equal(y, want)


def test_gelu_pattern_kept_when_a_part_is_a_graph_output(make_onnx):
    """x / sqrt(2) is also a graph output: the pattern must not be rewritten
    (its producer would vanish)."""
    nodes = [helper.make_node("Div", ["x", "s2"], ["d"]),
             helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["e1"]),
             helper.make_node("Mul", ["x", "e1"], ["p"]),
             helper.make_node("Mul", ["p", "half"], ["y"])]
    inits = {"s2": np.array(math.sqrt(2), np.float32), "one": np.array(1, np.float32),
             "half": np.array(0.5, np.float32)}
    model = make_onnx.graph(nodes, [("x", [1, 8])], [("y", [1, 8]), ("d", [1, 8])], inits)
    x = randn(3, 8)
    lines = []
    y, d = shoal.Runtime(shoal.compile(model, log=lines.append)).run(x)
    assert any("0 GELU" in line for line in lines), lines
    erf = np.vectorize(math.erf)
    np.testing.assert_allclose(d, x / math.sqrt(2), rtol=1e-6)
    np.testing.assert_allclose(y, 0.5 * x * (1 + erf(x / math.sqrt(2))), rtol=1e-5, atol=1e-6)
