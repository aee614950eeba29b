"""Stacked samples: a runtime runs up to `micro_batch` samples of a batch
through each kernel at once, but only when every operator computes samples
independently (src/ops/batch_rules.cpp, src/runtime/batching.cpp).

Programs that must stack are checked against a one-sample-at-a-time runtime
(equal within 1e-5 relative); programs that must not stack (an operator that
would mix samples, or whose shapes depend on the batch) are checked to say so
in plan() and to give the per-sample results (against numpy).
"""

import numpy as np
import pytest
from onnx import TensorProto, helper

import shoal

F = TensorProto.FLOAT
STACKED = "inputs at once through each kernel"


def run_both(model, x, **compile_kw):
    """Outputs of a batch through a stacking runtime and a one-at-a-time one."""
    program = shoal.compile(model.SerializeToString(), **compile_kw)
    stacked = shoal.Runtime(program)
    single = shoal.Runtime(program, micro_batch=1)
    return stacked, [np.array(a) for a in stacked.run(x)], [np.array(a) for a in single.run(x)]


def assert_close(a, b):
    for u, v in zip(a, b):
        assert u.shape == v.shape
        tol = 1e-5 * max(1.0, float(np.abs(v).max()))
        assert float(np.abs(u - v).max()) <= tol


def conv_net():
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.2
    w2 = rng.standard_normal((8, 8, 1, 1)).astype(np.float32) * 0.2
    fc = rng.standard_normal((10, 16 * 6 * 6)).astype(np.float32) * 0.05
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2"),
        helper.make_node("Add", ["c2", "r1"], ["a"], name="residual"),
        helper.make_node("Concat", ["a", "r1"], ["cat"], axis=1, name="cat"),
        helper.make_node("MaxPool", ["cat"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc"], ["g"], transB=1, name="fc"),
        helper.make_node("Softmax", ["g"], ["y"], axis=1, name="softmax"),
    ]
    graph = helper.make_graph(
        nodes, "conv_net", [helper.make_tensor_value_info("x", F, [1, 3, 12, 12])],
        [helper.make_tensor_value_info("y", F, [1, 10])],
        [helper.make_tensor("w1", F, w1.shape, w1.ravel()),
         helper.make_tensor("w2", F, w2.shape, w2.ravel()),
         helper.make_tensor("fc", F, fc.shape, fc.ravel())])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("batch", [1, 2, 5, 8, 11, 19])
def test_cnn_stacked_equals_one_at_a_time(batch):
    x = np.random.default_rng(batch).standard_normal((batch, 3, 12, 12)).astype(np.float32)
    rt, stacked, single = run_both(conv_net(), x)
    assert STACKED in rt.plan(), rt.plan()
    assert_close(stacked, single)


@pytest.mark.parametrize("split", ["0", "1", "4", "7", "100"])
def test_first_layers_a_sample_at_a_time(monkeypatch, split):
    """The runtime measures where to stop running a sample at a time and
    start stacking; SHOAL_STACK_SPLIT forces that point: every choice gives
    the same results."""
    monkeypatch.setenv("SHOAL_STACK_SPLIT", split)
    x = np.random.default_rng(5).standard_normal((6, 3, 12, 12)).astype(np.float32)
    _, stacked, single = run_both(conv_net(), x)
    assert_close(stacked, single)


def test_stack_tunes_itself_on_its_first_runs(monkeypatch, capfd):
    """A new stack size runs a sample at a time the first time it comes (its
    kernels are made when it comes again: a first result is not delayed by
    making them), then learns its split point from its next three runs (two
    stacked, one a sample at a time: no extra passes); every one of them, and
    the runs after, give the one-at-a-time results."""
    monkeypatch.setenv("SHOAL_DEBUG_STACK", "1")
    program = shoal.compile(conv_net().SerializeToString(), clusters=1)
    x = np.random.default_rng(6).standard_normal((4, 3, 12, 12)).astype(np.float32)
    (ref,) = shoal.Runtime(program, micro_batch=1).run(x)
    rt = shoal.Runtime(program, micro_batch=4)
    capfd.readouterr()
    for run in range(1, 6):
        (y,) = rt.run(x)
        assert_close(y, ref)
        tuned = "stack of 4 on cluster 0: the first" in capfd.readouterr().err
        assert tuned == (run == 4), run


def test_stacked_on_two_clusters(monkeypatch):
    monkeypatch.setenv("SHOAL_CPU_DEVICES", "0-1")
    x = np.random.default_rng(3).standard_normal((13, 3, 12, 12)).astype(np.float32)
    rt, stacked, single = run_both(conv_net(), x, clusters=2)
    assert STACKED in rt.plan()
    assert_close(stacked, single)


def test_stacked_pipeline():
    program = shoal.compile(conv_net().SerializeToString())
    rt, one = shoal.Runtime(program, micro_batch=4), shoal.Runtime(program, micro_batch=1)
    assert "up to 4 inputs" in rt.plan()
    xs = [np.random.default_rng(i).standard_normal((i + 1, 3, 12, 12)).astype(np.float32)
          for i in range(6)]
    got = []
    for i, x in enumerate(xs):  # at most two batches outstanding
        rt.put(x, i)
        if i:
            got.append(rt.get())
    got.append(rt.get())
    for i, ((y,), tag) in enumerate(got):
        assert tag == i
        assert_close([y], one.run(xs[i]))


def test_micro_batch_must_be_positive():
    program = shoal.compile(conv_net().SerializeToString())
    for bad in (0, -3, 4097, 2**31 - 1):
        with pytest.raises(shoal.InvalidArgumentError, match="micro_batch must be at least 1"):
            shoal.Runtime(program, micro_batch=bad)


def one_node(op, out_shape, attrs=None, in_shape=(1, 4), inits=None, extra_inputs=()):
    node = helper.make_node(op, ["x", *extra_inputs], ["y"], name="the_" + op.lower(),
                            **(attrs or {}))
    graph = helper.make_graph(
        [node], op, [helper.make_tensor_value_info("x", F, list(in_shape))],
        [helper.make_tensor_value_info("y", F, list(out_shape))], inits or [])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def ints(name, values):
    return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)


# (model, per-sample numpy reference): operators that would mix the samples
# of a stack, or whose result shape depends on the batch.
UNSTACKABLE = {
    "softmax_axis0": (one_node("Softmax", [1, 4], {"axis": 0}), lambda x: np.ones_like(x)),
    "concat_axis0": (
        helper.make_model(helper.make_graph(
            [helper.make_node("Concat", ["x", "x"], ["y"], axis=0, name="the_concat")], "c",
            [helper.make_tensor_value_info("x", F, [1, 4])],
            [helper.make_tensor_value_info("y", F, [2, 4])]),
            opset_imports=[helper.make_opsetid("", 13)]),
        lambda x: np.concatenate([x, x])),
    "reshape_batch_to_2": (
        one_node("Reshape", [2, 2], in_shape=(1, 2, 2), inits=[ints("s", [2, -1])], extra_inputs=["s"]),
        lambda x: x.reshape(2, -1)),
    "transpose_batch": (one_node("Transpose", [4, 1], {"perm": [1, 0]}), lambda x: x.T),
    "reduce_axis0": (one_node("ReduceSum", [4], {"keepdims": 0}, inits=[ints("ax", [0])],
                              extra_inputs=["ax"]),
                     lambda x: x.sum(axis=0)),
    "tile_axis0": (one_node("Tile", [2, 4], inits=[ints("r", [2, 1])], extra_inputs=["r"]),
                   lambda x: np.tile(x, (2, 1))),
    "slice_reverse_axis0": (
        one_node("Slice", [1, 4], inits=[ints("st", [-1]), ints("en", [-(2**62)]), ints("ax", [0]),
                                 ints("sp", [-1])],
                 extra_inputs=["st", "en", "ax", "sp"]),
        lambda x: x[::-1]),
}


@pytest.mark.parametrize("case", sorted(UNSTACKABLE))
def test_unstackable_programs_run_one_at_a_time(case):
    model, reference = UNSTACKABLE[case]
    program = shoal.compile(model.SerializeToString())
    rt = shoal.Runtime(program)
    assert "one input at a time through the kernels" in rt.plan(), rt.plan()
    per_sample_shape = tuple(program.inputs[0].shape)
    x = np.random.default_rng(7).standard_normal((3,) + per_sample_shape[1:]).astype(np.float32)
    (y,) = rt.run(x)
    for i in range(3):
        ref = reference(x[i:i + 1]).astype(np.float32)
        np.testing.assert_allclose(np.asarray(y[i]).reshape(ref.shape), ref, rtol=1e-6,
                                   atol=1e-6)


def test_reshape_keeping_the_batch_stacks():
    """[1, -1] as exporters write it at batch 1 keeps the batch dim
    (batch_generic_reshapes makes it [0, -1]): samples stack through it."""
    model = one_node("Reshape", [1, 4], in_shape=(1, 2, 2), inits=[ints("s", [1, -1])],
                     extra_inputs=["s"])
    rt = shoal.Runtime(shoal.compile(model.SerializeToString()))
    assert STACKED in rt.plan(), rt.plan()
    x = np.random.default_rng(7).standard_normal((3, 2, 2)).astype(np.float32)
    (y,) = rt.run(x)
    np.testing.assert_array_equal(y, x.reshape(3, 4))


def test_plan_names_the_blocking_node():
    rt = shoal.Runtime(shoal.compile(UNSTACKABLE["softmax_axis0"][0].SerializeToString()))
    assert "the_softmax" in rt.plan()


def test_winograd_layers_stack(monkeypatch):
    """Winograd convolutions (forced on every 3x3 stride-1 layer) give the
    direct convolution's results, one at a time and stacked: the stacked
    kernels may pick another Winograd variant, with another weight layout."""
    monkeypatch.setenv("SHOAL_WINOGRAD", "all")
    lines = []
    program = shoal.compile(conv_net().SerializeToString(), log=lines.append)
    assert any("winograd: 1 of 1" in line for line in lines), lines
    monkeypatch.delenv("SHOAL_WINOGRAD")
    direct = shoal.Runtime(shoal.compile(conv_net().SerializeToString(), winograd=False),
                           micro_batch=1)
    x = np.random.default_rng(9).standard_normal((16, 3, 12, 12)).astype(np.float32)
    (ref,) = direct.run(x)
    for micro_batch in (1, 4, 16):
        (y,) = shoal.Runtime(program, micro_batch=micro_batch).run(x)
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("c_in,c_out,size,chosen", [
    (64, 64, 14, True),     # ResNet's 3x3 layers down to 14x14
    (32, 128, 27, True),    # SqueezeNet's fire 6-7 expand3x3
    (16, 64, 55, False),    # too few input channels to pay
    (64, 256, 13, True),    # SqueezeNet's fire 9-12 expand3x3
    (128, 32, 28, True),    # DenseNet's 3x3 layers
    (512, 512, 7, False),   # maps under 13x13
    (64, 16, 28, False),    # too few output channels
    (384, 256, 13, False),  # F(2x2,3x3)'s weight block past L2 (AlexNet's features.8)
    (512, 512, 14, True),   # ... within it (VGG's 14x14 layers)
])
def test_winograd_rule(c_in, c_out, size, chosen):
    """The fixed rule choosing Winograd per 3x3 stride-1 layer (on a CPU
    that has oneDNN's Winograd kernel, as CI's AVX-512 machine does)."""
    from onnx import helper, numpy_helper
    w = numpy_helper.from_array(np.zeros((c_out, c_in, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], kernel_shape=[3, 3])],
        "g", [helper.make_tensor_value_info("x", 1, [1, c_in, size, size])],
        [helper.make_tensor_value_info("y", 1, [1, c_out, size, size])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    lines = []
    shoal.compile(model.SerializeToString(), log=lines.append)
    assert any(f"winograd: {int(chosen)} of 1" in line for line in lines), lines


def test_winograd_weights_from_a_program_file(monkeypatch, tmp_path):
    """A program file stores Winograd layers' transformed weights next to the
    plain ones; read in place from the mapped file or copied to the device,
    one at a time or stacked, they give the in-memory program's results."""
    monkeypatch.setenv("SHOAL_WINOGRAD", "all")
    program = shoal.compile(conv_net().SerializeToString())
    monkeypatch.delenv("SHOAL_WINOGRAD")
    path = tmp_path / "wino.shoal"
    program.save(path)
    x = np.random.default_rng(10).standard_normal((9, 3, 12, 12)).astype(np.float32)
    (ref,) = shoal.Runtime(program, micro_batch=1).run(x)
    for weights in ("shared", "copy"):
        for micro_batch in (1, 9):
            rt = shoal.Runtime(shoal.load(path), micro_batch=micro_batch, weights=weights)
            (y,) = rt.run(x)
            if micro_batch == 1:
                np.testing.assert_array_equal(y, ref)
            else:  # stacked kernels may pick another Winograd variant
                np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)
