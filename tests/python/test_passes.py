"""Graph passes seen from outside: what the compile log says a pass did, and
that the optimized program computes what the unoptimized one (the reference
path, no passes) and numpy compute."""

import numpy as np
import pytest

import shoal

onnx = pytest.importorskip("onnx")
from onnx import helper, numpy_helper  # noqa: E402

RNG = np.random.default_rng(11)


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def fire_pair(make_onnx, pool=False, out_channels=8, stride=1, extra_use=False, parts=2):
    """Relu'd 1x1 and 3x3 "expand" convs concatenated, (MaxPool,) then a 1x1
    "squeeze" conv + Relu: the shape of a SqueezeNet fire module boundary."""
    c_in, widths = 4, [6, 10, 4][:parts]
    inits = {"s": randn(out_channels, sum(widths), 1, 1), "sb": randn(out_channels)}
    nodes, names = [], []
    for k, c in enumerate(widths):
        ks = 1 if k % 2 == 0 else 3
        inits[f"e{k}"] = randn(c, c_in, ks, ks)
        nodes += [helper.make_node("Conv", ["x", f"e{k}"], [f"c{k}"], pads=[ks // 2] * 4),
                  helper.make_node("Relu", [f"c{k}"], [f"r{k}"])]
        names.append(f"r{k}")
    nodes.append(helper.make_node("Concat", names, ["cat"], axis=1))
    src = "cat"
    if pool:
        nodes.append(helper.make_node("MaxPool", ["cat"], ["pooled"], kernel_shape=[3, 3],
                                      strides=[2, 2]))
        src = "pooled"
    nodes += [helper.make_node("Conv", [src, "s", "sb"], ["q"], strides=[stride, stride]),
              helper.make_node("Relu", ["q"], ["y"])]
    size = 9
    if pool:
        size = (size - 3) // 2 + 1
    size = (size - 1) // stride + 1
    outputs = [("y", [1, out_channels, size, size])]
    if extra_use:
        outputs.append(("cat", [1, sum(widths), 9, 9]))
    return make_onnx.graph(nodes, [("x", [1, c_in, 9, 9])], outputs, inits), inits


def numpy_fire(x, inits, pool, parts=2):
    def conv(x, w, pad):
        n, c, h, wd = x.shape
        xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        k = w.shape[2]
        out = np.zeros((n, w.shape[0], h, wd), np.float64)
        for i in range(k):
            for j in range(k):
                out += np.einsum("nchw,oc->nohw", xp[:, :, i:i + h, j:j + wd], w[:, :, i, j])
        return out

    cat = np.concatenate([np.maximum(conv(x, inits[f"e{k}"], 1 if k % 2 else 0), 0)
                          for k in range(parts)], axis=1)
    if pool:
        h = (cat.shape[2] - 3) // 2 + 1
        cat = np.stack([np.stack([cat[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max(axis=(2, 3))
                                  for j in range(h)], -1) for i in range(h)], -2)
    q = np.einsum("nchw,oc->nohw", cat, inits["s"][:, :, 0, 0]) + inits["sb"][None, :, None, None]
    return np.maximum(q, 0)


@pytest.mark.parametrize("pool", [False, True])
@pytest.mark.parametrize("parts", [2, 3])
def test_concat_into_1x1_conv_is_split(make_onnx, pool, parts):
    model, inits = fire_pair(make_onnx, pool=pool, parts=parts)
    lines = []
    program = shoal.compile(model, log=lines.append)
    said = [line for line in lines if "Concat -> 1x1 Conv" in line]
    assert said and "split 1 Concat" in said[0] and f"({int(pool)} through a MaxPool)" in said[0]
    assert "Concat" not in [layer["op"] for layer in program_layers(program)]
    x = np.stack([randn(4, 9, 9) for _ in range(5)])
    (y,) = shoal.Runtime(program).run(x)
    (ref,) = shoal.Runtime(shoal.compile(model, optimize=False)).run(x)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y, numpy_fire(x.astype(np.float64), inits, pool, parts),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", ["wider_output", "strided", "concat_also_an_output"])
def test_concat_kept_where_splitting_does_not_pay_or_apply(make_onnx, case):
    model, _ = fire_pair(make_onnx, out_channels=32 if case == "wider_output" else 8,
                         stride=2 if case == "strided" else 1,
                         extra_use=case == "concat_also_an_output")
    lines = []
    program = shoal.compile(model, log=lines.append)
    assert not any("Concat -> 1x1 Conv" in line for line in lines), lines
    assert "Concat" in [layer["op"] for layer in program_layers(program)]
    x = randn(2, 4, 9, 9)
    got = shoal.Runtime(program).run(x)
    ref = shoal.Runtime(shoal.compile(model, optimize=False)).run(x)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def program_layers(program):
    rt = shoal.Runtime(program, profile=True)
    rt.run(np.zeros((1, 4, 9, 9), np.float32))
    return rt.profile()


def pad_pool(make_onnx, pads=(0, 0, 1, 1, 0, 0, 1, 1), value=0.0, pool_pads=(0, 0, 0, 0),
             count_include_pad=0, ceil_mode=0, pad_also_an_output=False):
    """Conv -> Pad (input 1, constant value input 2) -> AveragePool 3x3 stride 2
    -> Conv: PyTorch's export of AvgPool2d(3, 2, padding=1)."""
    channels = 8 + pads[1] + pads[5]
    inits = {"w": randn(8, 4, 3, 3), "w2": randn(6, channels, 1, 1),
             "pads": np.array(pads, np.int64), "v": np.array(value, np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Pad", ["c", "pads", "v"], ["p"], mode="constant"),
             helper.make_node("AveragePool", ["p"], ["a"], kernel_shape=[3, 3], strides=[2, 2],
                              pads=list(pool_pads), count_include_pad=count_include_pad,
                              ceil_mode=ceil_mode),
             helper.make_node("Conv", ["a", "w2"], ["y"])]
    padded = 9 + pads[2] + pads[6] + pool_pads[0] + pool_pads[2]
    size = -(-(padded - 3) // 2) + 1 if ceil_mode else (padded - 3) // 2 + 1
    outputs = [("y", [1, 6, size, size])]
    if pad_also_an_output:
        outputs.append(("p", [1, channels, 9 + pads[2] + pads[6], 9 + pads[3] + pads[7]]))
    return make_onnx.graph(nodes, [("x", [1, 4, 9, 9])], outputs, inits)


def compare_with_reference(model, x):
    got = shoal.Runtime(shoal.compile(model)).run(x)
    ref = shoal.Runtime(shoal.compile(model, optimize=False)).run(x)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["plain", "pool_pads_counted", "asymmetric"])
def test_zero_pad_folds_into_average_pool(make_onnx, case):
    kw = {"plain": {},
          "pool_pads_counted": {"pads": (0, 0, 1, 0, 0, 0, 0, 1), "pool_pads": (0, 1, 1, 0),
                                "count_include_pad": 1},
          "asymmetric": {"pads": (0, 0, 0, 1, 0, 0, 2, 0)}}[case]
    model = pad_pool(make_onnx, **kw)
    lines = []
    program = shoal.compile(model, log=lines.append)
    assert any("folded 1 zero Pad nodes into AveragePool" in line for line in lines), lines
    layers = program_layers(program)
    assert "Pad" not in [layer["op"] for layer in layers]
    # The pool reads and writes the convolutions' channels-last maps.
    pool = [layer for layer in layers if layer["op"] == "AveragePool"]
    assert pool and "ref" not in pool[0]["impl"] and pool[0]["impl"] != "reference", pool
    compare_with_reference(model, randn(3, 4, 9, 9))


@pytest.mark.parametrize("case", ["nonzero_value", "channel_pad", "pool_pads_not_counted",
                                  "ceil_mode", "pad_also_an_output", "pad_reaches_kernel"])
def test_pad_kept_where_folding_would_change_the_averages(make_onnx, case):
    kw = {"nonzero_value": {"value": 1.5},
          "channel_pad": {"pads": (0, 1, 1, 1, 0, 1, 1, 1)},
          "pool_pads_not_counted": {"pool_pads": (1, 1, 1, 1)},
          "ceil_mode": {"ceil_mode": 1},
          "pad_also_an_output": {"pad_also_an_output": True},
          "pad_reaches_kernel": {"pads": (0, 0, 3, 3, 0, 0, 3, 3)}}[case]
    model = pad_pool(make_onnx, **kw)
    lines = []
    program = shoal.compile(model, log=lines.append)
    assert any("folded 0 zero Pad nodes" in line for line in lines), lines
    assert "Pad" in [layer["op"] for layer in program_layers(program)]
    compare_with_reference(model, randn(2, 4, 9, 9))


def test_pool_of_a_plain_map_writes_a_plain_map(make_onnx):
    """A pool reading a view (plain layout) into a Conv (channels-last) writes
    plain: oneDNN pools plain into channels-last on its reference kernel."""
    inits = {"w": randn(8, 4, 3, 3), "w2": randn(6, 8, 1, 1),
             "s1": np.array([1, 8, 81], np.int64), "s2": np.array([1, 8, 9, 9], np.int64)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Reshape", ["c", "s1"], ["r1"]),
             helper.make_node("Reshape", ["r1", "s2"], ["r2"]),
             helper.make_node("MaxPool", ["r2"], ["m"], kernel_shape=[3, 3], strides=[2, 2]),
             helper.make_node("Conv", ["m", "w2"], ["y"])]
    model = make_onnx.graph(nodes, [("x", [1, 4, 9, 9])], [("y", [1, 6, 4, 4])], inits)
    pool = [layer for layer in program_layers(shoal.compile(model))
            if layer["op"] == "MaxPool"]
    assert pool and "ref" not in pool[0]["impl"] and pool[0]["impl"] != "reference", pool
    compare_with_reference(model, randn(3, 4, 9, 9))


def expand_depthwise(make_onnx, expanded, size=112, extra_use=False, act="Clip"):
    """Conv 1x1 (16 -> expanded channels) + activation -> depthwise 3x3
    stride 2 + Relu -> 1x1 projection: a MobileNetV2 block's first half."""
    inits = {"e": randn(expanded, 16, 1, 1) * 0.3, "eb": randn(expanded),
             "d": randn(expanded, 1, 3, 3) * 0.3, "db": randn(expanded),
             "p": randn(8, expanded, 1, 1) * 0.1, "lo": np.array(0, np.float32),
             "hi": np.array(6, np.float32)}
    nodes = [helper.make_node("Conv", ["x", "e", "eb"], ["c"]),
             helper.make_node("Clip", ["c", "lo", "hi"], ["t"]) if act == "Clip" else
             helper.make_node("Relu", ["c"], ["t"]),
             helper.make_node("Conv", ["t", "d", "db"], ["dc"], group=expanded,
                              kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["dc"], ["dr"]),
             helper.make_node("Conv", ["dr", "p"], ["y"])]
    half = (size - 1) // 2 + 1
    outputs = [("y", [1, 8, half, half])]
    if extra_use:
        outputs.append(("t", [1, expanded, size, size]))
    return make_onnx.graph(nodes, [("x", [1, 16, size, size])], outputs, inits)


@pytest.mark.parametrize("expanded, extra_use, fused", [(48, False, True), (8, False, False),
                                                        (48, True, False)])
def test_expansion_and_depthwise_fuse(make_onnx, expanded, extra_use, fused):
    """A 1x1 conv whose output (over 1.5 MiB a sample) only a depthwise conv
    reads becomes one shoal.PointwiseDepthwise, run in bands of rows; smaller
    ones, and one whose output is also a graph output, stay apart."""
    model = expand_depthwise(make_onnx, expanded, extra_use=extra_use)
    lines = []
    program = shoal.compile(model, log=lines.append)
    said = [line for line in lines if "with the depthwise convolutions" in line]
    assert said and f"fused {int(fused)} 1x1" in said[0], said
    rt = shoal.Runtime(program, profile=True)
    x = np.stack([randn(16, 112, 112) for _ in range(3)])
    got = rt.run(x)
    ops = [layer["op"] for layer in rt.profile()]
    assert ("shoal.PointwiseDepthwise" in ops) == fused, ops
    ref = shoal.Runtime(shoal.compile(model, optimize=False)).run(x)
    for a, b in zip(got, ref):
        assert np.ptp(b) > 0
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.ptp(b))


def squeeze_excitation(make_onnx, channels=24, size=56, out_channels=16, extra_use=False,
                       residual=False):
    """x -> GlobalAveragePool -> 1x1 + Relu -> 1x1 + Sigmoid = s; x * s ->
    1x1 projection (+ x, when the channels allow): the end of an EfficientNet
    or MobileNetV3 block."""
    mid = max(channels // 4, 1)
    inits = {"f1": randn(mid, channels, 1, 1) * 0.3, "f1b": randn(mid),
             "f2": randn(channels, mid, 1, 1) * 0.3, "f2b": randn(channels),
             "p": randn(out_channels, channels, 1, 1) * 0.2, "pb": randn(out_channels)}
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["g"]),
             helper.make_node("Conv", ["g", "f1", "f1b"], ["h"]),
             helper.make_node("Relu", ["h"], ["hr"]),
             helper.make_node("Conv", ["hr", "f2", "f2b"], ["e"]),
             helper.make_node("Sigmoid", ["e"], ["s"]),
             helper.make_node("Mul", ["x", "s"], ["xs"]),
             helper.make_node("Conv", ["xs", "p", "pb"], ["proj"])]
    if residual:
        nodes.append(helper.make_node("Add", ["proj", "x"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", ["proj"], ["y"]))
    outputs = [("y", [1, out_channels, size, size])]
    if extra_use:
        outputs.append(("xs", [1, channels, size, size]))
    return make_onnx.graph(nodes, [("x", [1, channels, size, size])], outputs, inits)


@pytest.mark.parametrize("size, out_channels, extra_use, residual, fused", [
    (56, 16, False, False, True), (28, 24, False, True, True), (7, 64, False, False, False),
    (56, 16, True, False, False)])
def test_channel_scale_fuses_into_the_projection(make_onnx, size, out_channels, extra_use,
                                                 residual, fused):
    """A squeeze-excitation's channel scale read only by a 1x1 conv with few
    weights against its input becomes the conv's input 4 (its kernel scales
    the weights per sample); with more weights than half the input (a 7x7
    map), or a scaled tensor used elsewhere, the Mul stays."""
    model = squeeze_excitation(make_onnx, 24, size, out_channels, extra_use, residual)
    lines = []
    program = shoal.compile(model, log=lines.append)
    said = [line for line in lines if "channel-scale Mul" in line]
    assert said and f"fused {int(fused)} channel-scale" in said[0], said
    rt = shoal.Runtime(program, profile=True)
    x = np.stack([randn(24, size, size) for _ in range(3)])  # a scale per sample
    got = rt.run(x)
    layers = rt.profile()
    assert any("+scaled weights" in layer["impl"] for layer in layers) == fused, layers
    assert any(layer["op"] == "Mul" for layer in layers) != fused, layers
    ref = shoal.Runtime(shoal.compile(model, optimize=False)).run(x)
    for a, b in zip(got, ref):
        assert np.ptp(b) > 0
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.ptp(b))
    # Each sample's output depends on its own scale: the stack is not one scale.
    single = shoal.Runtime(program).run(x[1:2])
    np.testing.assert_allclose(got[0][1:2], single[0], rtol=1e-5, atol=1e-5 * np.ptp(single[0]))


@pytest.mark.parametrize("anchored", [False, True])
def test_channels_last_only_where_a_layout_anchor_reads_it(make_onnx, anchored):
    """A 4-D map between plain-only ops (MatMuls over NHWC tensors, as in
    Swin's and ConvNeXt's MLPs) stays plain even where the elementwise ops
    on it would take channels-last: it would only add a conversion at each
    end. Next to a convolution (a layout anchor) it is channels-last."""
    w = randn(8, 8)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("Sigmoid", ["m"], ["s"]),
             helper.make_node("Exp", ["s"], ["e"])]
    inits = {"w": w}
    if anchored:  # a conv reads the map: channels-last pays there
        inits["k"] = randn(8, 6, 1, 1)
        nodes.append(helper.make_node("Conv", ["e", "k"], ["y"]))
    else:
        nodes.append(helper.make_node("MatMul", ["e", "w"], ["y"]))
    model = make_onnx.graph(nodes, [("x", [1, 6, 6, 8])],
                            [("y", [1, 8, 6, 6] if anchored else [1, 6, 6, 8])], inits)
    lines = []
    program = shoal.compile(model, log=lines.append)
    said = [line for line in lines if "channels-last layout to" in line]
    n = int(said[0].split("channels-last layout to ")[1].split()[0])
    assert (n > 0) == anchored, said
    x = np.stack([randn(6, 6, 8) for _ in range(3)])
    (y,) = shoal.Runtime(program).run(x)
    (ref,) = shoal.Runtime(shoal.compile(model, optimize=False)).run(x)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_nodes_no_output_reads_are_dropped_before_folding():
    """A dead branch (here a 64 MiB constant Resize nobody reads) is removed
    before shape inference and folding: nothing of it is computed or kept."""
    nodes = [helper.make_node("Relu", ["x"], ["y"]),
             helper.make_node("ConstantOfShape", ["s"], ["c"],
                              value=helper.make_tensor("v", onnx.TensorProto.FLOAT, [1], [1.0])),
             helper.make_node("Resize", ["c", "", "", "sizes"], ["big"], mode="nearest"),
             helper.make_node("Relu", ["big"], ["unused"])]
    graph = helper.make_graph(
        nodes, "dead", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.array([1, 1, 1, 1], np.int64), "s"),
         numpy_helper.from_array(np.array([1, 1, 4096, 4096], np.int64), "sizes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    lines = []
    program = shoal.compile(model.SerializeToString(), log=lines.append)
    assert any("removed 3 nodes no output depends on" in line for line in lines), lines
    assert len(program.to_bytes()) < 64 << 10
    x = np.array([[-1, 2, -3, 4]], np.float32)
    np.testing.assert_array_equal(shoal.Runtime(program).run(x)[0], np.maximum(x, 0))
