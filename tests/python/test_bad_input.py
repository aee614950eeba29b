"""Bad input through the Python API: each case gives a shoal error (never a
crash) whose message names what was wrong. Covered in test_api.py already and
not repeated here: wrong dtype, wrong shape, wrong input count, non-contiguous
and Fortran-order arrays, missing files, truncated ONNX bytes, corrupt
program bytes, unsupported operators, bad compile arguments.
"""

import re
import resource

import numpy as np
import pytest

import shoal

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

F = TensorProto.FLOAT
GIB = 1 << 30


def model_bytes(nodes, inputs, outputs, inits=(), opset=13):
    """A model built without the ONNX checker (shoal must do the checking)."""
    graph = helper.make_graph(
        nodes, "bad",
        [helper.make_tensor_value_info(*i) for i in inputs],
        [helper.make_tensor_value_info(*o) for o in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return m.SerializeToString()


def conv_model(**attrs):
    w = np.ones((2, 1, 3, 3), np.float32)
    return model_bytes([helper.make_node("Conv", ["x", "w"], ["y"], name="my_conv", **attrs)],
                       [("x", F, [1, 1, 5, 5])], [("y", F, ["a", "b", "c", "d"])],
                       [("w", w)])


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(scope="module")
def digits_rt(digits_model):
    return shoal.Runtime(shoal.compile(digits_model))


# ------------------------------------------------------------- arrays ----

def test_read_only_array(digits_rt):
    x = np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32)
    ref = digits_rt.run(x)[0]
    ro = x.copy()
    ro.setflags(write=False)
    np.testing.assert_array_equal(digits_rt.run(ro)[0], ref)
    np.testing.assert_array_equal(digits_rt._rt.run([ro])[0], ref)
    # A read-only view of another buffer (bytes are immutable).
    frozen = np.frombuffer(x.tobytes(), np.float32).reshape(x.shape)
    assert not frozen.flags["WRITEABLE"]
    np.testing.assert_array_equal(digits_rt.run(frozen)[0], ref)
    # The input is not written to.
    np.testing.assert_array_equal(frozen, x)


def test_byte_swapped_and_odd_dtypes(digits_rt):
    x = np.zeros((1, 1, 8, 8), np.float32)
    for bad in (x.astype(">f4"), x.astype(np.float16), x.astype(object),
                np.full((1, 1, 8, 8), "a")):
        with pytest.raises(shoal.DTypeError) as e:
            digits_rt.run(bad)
        assert "float32" in str(e.value) and str(bad.dtype) in str(e.value)
        with pytest.raises(shoal.DTypeError, match="must be float32"):
            digits_rt._rt.run([bad])


def test_misaligned_and_strided_views(digits_rt):
    x = np.random.default_rng(1).standard_normal((2, 1, 8, 8)).astype(np.float32)
    ref = digits_rt.run(x)[0]
    raw = np.zeros(x.nbytes + 1, np.uint8)
    mis = raw[1:].view(np.float32).reshape(x.shape)  # not 4-byte aligned
    mis[...] = x
    assert not mis.flags["ALIGNED"]
    np.testing.assert_array_equal(digits_rt._rt.run([mis])[0], ref)
    rev = x[::-1]  # negative strides
    np.testing.assert_array_equal(digits_rt.run(rev)[0], ref[::-1])


def test_scalar_and_empty_arrays(digits_rt):
    # Inputs are checked once, by the runtime, with the same messages for
    # every API; an empty batch gives empty outputs, as in C++.
    for bad in (np.float32(1.0), np.zeros((), np.float32), np.zeros((1, 8, 8), np.float32)):
        with pytest.raises(shoal.InvalidArgumentError, match=r"must have shape \[N,1,8,8\]"):
            digits_rt.run(bad)
    with pytest.raises(shoal.DTypeError, match="must be float32, got float64"):
        digits_rt.run(np.zeros((1, 1, 8, 8)))
    assert digits_rt.run(np.zeros((0, 1, 8, 8), np.float32))[0].shape == (0, 10)


# ----------------------------------------------------------- NaN, Inf ----

def test_nan_inf_propagate_through_arithmetic():
    """NaN and Inf run (no error) and propagate through Add, Conv and Gemm."""
    w = np.ones((1, 1, 3, 3), np.float32)
    m = model_bytes(
        [helper.make_node("Add", ["x", "one"], ["a"]),
         helper.make_node("Conv", ["a", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Flatten", ["c"], ["f"]),
         helper.make_node("Gemm", ["f", "g"], ["y"], transB=1)],
        [("x", F, [1, 1, 4, 4])], [("y", F, [1, 2])],
        [("one", np.ones((1,), np.float32)), ("w", w),
         ("g", np.ones((2, 16), np.float32))])
    rt = shoal.Runtime(shoal.compile(m))
    x = np.zeros((3, 1, 4, 4), np.float32)
    x[1, 0, 0, 0] = np.nan
    x[2, 0, 2, 2] = np.inf
    y = rt.run(x)[0]
    # a = 1 everywhere; the padded 3x3 conv sums 4, 6 or 9 ones; Gemm adds all 16.
    np.testing.assert_allclose(y[0], [100.0, 100.0])
    assert np.isnan(y[1]).all()
    assert np.isposinf(y[2]).all()


@pytest.mark.parametrize("act", ["Relu", "Clip", "Sigmoid", "HardSigmoid", "Tanh", "Elu"])
def test_nan_through_fused_activations_and_max_pooling(act):
    """A NaN reaches exactly the outputs whose receptive field holds it, through
    Conv + a fused activation (oneDNN's post-ops map NaN to a number), max
    pooling (oneDNN's skips NaN) and BatchNormalization + fused Relu; every
    other output equals the clean run's (a 1x1 Conv ends the
    model, so the pooling and BatchNormalization run in channels-last). ONNX (numpy) semantics:
    relu(NaN) = clip(NaN) = max(NaN, x) = NaN."""
    rng = np.random.default_rng(3)
    c = 16
    act_attrs = {"Clip": {}, "HardSigmoid": {"alpha": 0.3}}.get(act, {})
    clip_bounds = ["", "lo", "hi"] if act == "Clip" else []
    m = model_bytes(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node(act, ["c"] + clip_bounds[1:], ["a"], **act_attrs),
         helper.make_node("MaxPool", ["a"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
         helper.make_node("BatchNormalization", ["p", "g", "bb", "mu", "var"], ["n"]),
         helper.make_node("Relu", ["n"], ["r"]),
         helper.make_node("Conv", ["r", "w1"], ["y"])],
        [("x", F, [1, c, 8, 8])], [("y", F, [1, c, 4, 4])],
        [("w", (rng.standard_normal((c, c, 3, 3)) * 0.2).astype(np.float32)),
         ("b", rng.standard_normal(c).astype(np.float32)),
         ("lo", np.float32(0.0)), ("hi", np.float32(6.0)),
         ("g", rng.uniform(0.5, 2, c).astype(np.float32)),
         ("bb", rng.standard_normal(c).astype(np.float32)),
         ("mu", rng.standard_normal(c).astype(np.float32)),
         ("var", rng.uniform(0.5, 2, c).astype(np.float32)),
         ("w1", rng.standard_normal((c, c, 1, 1)).astype(np.float32))])
    rt = shoal.Runtime(shoal.compile(m))
    assert "every layer runs a fast kernel" in rt.plan()
    x = rng.standard_normal((2, c, 8, 8)).astype(np.float32)
    clean = rt.run(x)[0]
    x[1, 5, 3, 3] = np.nan
    y = rt.run(x)[0]
    # The other sample is unaffected (its chunk may run the NaN-faithful path
    # too: oneDNN may pick another implementation for the bare op, so equal up
    # to float rounding).
    close = dict(rtol=1e-5, atol=1e-5 * np.ptp(clean))
    np.testing.assert_allclose(y[0], clean[0], **close)
    # The 3x3 conv spreads the NaN to rows/cols 2-4 of every channel; 2x2
    # pooling windows with stride 2 hold them at rows/cols 1-2.
    want = np.zeros((c, 4, 4), bool)
    want[:, 1:3, 1:3] = True
    np.testing.assert_array_equal(np.isnan(y[1]), want)
    np.testing.assert_allclose(y[1][~want], clean[1][~want], **close)


def test_check_inputs_rejects_nan_and_inf(digits_model):
    rt = shoal.Runtime(shoal.compile(digits_model), check_inputs=True)
    x = np.zeros((3, 1, 8, 8), np.float32)
    assert np.isfinite(rt.run(x)[0]).all()
    x[2, 0, 1, 4] = -np.inf
    with pytest.raises(shoal.InvalidArgumentError,
                       match=r"input 'input' holds -Inf in sample 2 \(element 12 of the sample\)"):
        rt.run(x)
    x[0, 0, 0, 1] = np.nan
    with pytest.raises(shoal.InvalidArgumentError, match=r"holds NaN in sample 0 \(element 1 "):
        rt.put(x, "t", timeout=1)


def test_nan_inf_in_the_digits_model(digits_rt):
    """Non-finite samples do not disturb their neighbours in the batch."""
    x = np.random.default_rng(2).uniform(0, 16, (4, 1, 8, 8)).astype(np.float32)
    clean = digits_rt.run(x)[0]
    x[1, 0, 3, 3] = np.nan
    x[2, 0, 3, 3] = np.inf
    x[3] = -np.inf
    y = digits_rt.run(x)[0]
    np.testing.assert_array_equal(y[0], clean[0])
    assert not np.isfinite(y[2]).all()  # +Inf meets weights of both signs: NaN
    assert y.shape == (4, 10)
    # A corrupted input never comes back as a confident answer: an all-NaN
    # sample gives NaN logits, as onnxruntime's do.
    x[1] = np.nan
    y = digits_rt.run(x)[0]
    assert np.isnan(y[1]).all()
    np.testing.assert_allclose(y[0], clean[0], rtol=1e-5, atol=1e-5 * np.ptp(clean))


# ------------------------------------------------------------- files ----

def test_empty_files(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(shoal.InvalidArgumentError, match="empty.onnx.*empty"):
        shoal.compile(empty)
    with pytest.raises(shoal.InvalidArgumentError, match="empty"):
        shoal.compile(b"")
    prog = tmp_path / "empty.shoal"
    prog.write_bytes(b"")
    with pytest.raises(shoal.InvalidArgumentError, match="empty.shoal.*empty"):
        shoal.load(prog)


def test_directories(tmp_path):
    with pytest.raises(shoal.InvalidArgumentError, match="is a directory"):
        shoal.compile(tmp_path)
    with pytest.raises(shoal.InvalidArgumentError, match="is a directory"):
        shoal.load(tmp_path)


def test_huge_sparse_files_are_not_read(tmp_path):
    """A few GB (sparse: no data written) are rejected without being read."""
    before = peak_rss_mib()
    onnx_path = tmp_path / "huge.onnx"
    with open(onnx_path, "wb") as f:
        f.truncate(3 * GIB)
    with pytest.raises(shoal.UnsupportedError, match=r"huge.onnx.*3221225472 bytes.*over 2 GiB"):
        shoal.compile(onnx_path)
    prog_path = tmp_path / "huge.shoal"
    with open(prog_path, "wb") as f:
        f.truncate(3 * GIB)
    with pytest.raises(shoal.InvalidArgumentError, match="huge.shoal.*bad magic"):
        shoal.load(prog_path)
    assert peak_rss_mib() - before < 512


def test_truncated_and_future_program_files(digits_model, tmp_path):
    data = shoal.compile(digits_model).to_bytes()
    half = tmp_path / "half.shoal"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(shoal.InvalidArgumentError, match="half.shoal.*truncated"):
        shoal.load(half)
    future = bytearray(data)
    future[8] = 9  # the format version (u32 at offset 8); this shoal reads 1 to 3
    future[36:39] = b"\x07\x08\x09"  # the writer's version, 7.8.9
    path = tmp_path / "future.shoal"
    path.write_bytes(bytes(future))
    both = (r"version 9 \(written by shoal 7\.8\.9\) is newer than this shoal "
            + re.escape(shoal.__version__) + r" loads \(format versions 1 to 3\)")
    with pytest.raises(shoal.InvalidArgumentError, match="future.shoal.*" + both):
        shoal.load(path)
    with pytest.raises(shoal.InvalidArgumentError, match=both):
        shoal.Program.from_bytes(bytes(future))


def test_model_where_program_expected_and_back(digits_model, tmp_path):
    with pytest.raises(shoal.InvalidArgumentError, match="not a shoal program file"):
        shoal.load(digits_model)
    prog = tmp_path / "digits.shoal"
    shoal.compile(digits_model).save(prog)
    with pytest.raises(shoal.InvalidArgumentError, match="digits.shoal.*not a valid ONNX model"):
        shoal.compile(prog)


# ------------------------------------------------------------ models ----

def test_model_with_a_cycle():
    m = model_bytes([helper.make_node("Relu", ["b"], ["a"], name="n1"),
                     helper.make_node("Add", ["x", "a"], ["b"], name="n2")],
                    [("x", F, [1, 4])], [("b", F, [1, 4])])
    with pytest.raises(shoal.InvalidArgumentError) as e:
        shoal.compile(m)
    assert "topologically sorted" in str(e.value) and "'b'" in str(e.value)
    assert "n1" in str(e.value)


def test_model_with_a_dangling_input():
    m = model_bytes([helper.make_node("Add", ["x", "ghost"], ["y"], name="n1")],
                    [("x", F, [1, 4])], [("y", F, [1, 4])])
    with pytest.raises(shoal.InvalidArgumentError, match="'ghost'.*\n?.*n1"):
        shoal.compile(m)


def test_model_with_an_unproduced_output():
    m = model_bytes([helper.make_node("Relu", ["x"], ["y"], name="n1")],
                    [("x", F, [1, 4])], [("y", F, [1, 4]), ("nowhere", F, [1, 4])])
    with pytest.raises(shoal.InvalidArgumentError, match="'nowhere'.*not produced"):
        shoal.compile(m)


@pytest.mark.parametrize("attrs, words", [
    (dict(strides=[0, 0]), "'strides' = [0,0] must be >= 1"),
    (dict(strides=[-1, 2]), "'strides' = [-1,2] must be >= 1"),
    (dict(strides=[1 << 40, 1]), "must be <= 2^31"),
    (dict(dilations=[0, 1]), "'dilations' = [0,1] must be >= 1"),
    (dict(pads=[-1, 0, 0, 0]), "negative pad"),
    (dict(pads=[1 << 62, 0, 0, 0]), "beyond 2^31"),
    (dict(group=0), "'group' = 0"),
    (dict(group=-(1 << 62)), "'group'"),
    (dict(kernel_shape=[5, 5]), "'kernel_shape' = [5,5] disagrees with weight W"),
    (dict(dilations=[4, 4]), "larger than padded input"),
    (dict(auto_pad="SIDEWAYS"), "'auto_pad' = 'SIDEWAYS'"),
])
def test_absurd_conv_attributes(attrs, words):
    with pytest.raises(shoal.InvalidArgumentError) as e:
        shoal.compile(conv_model(**attrs))
    assert words in str(e.value) and "my_conv" in str(e.value)


def test_kernel_larger_than_input():
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[9, 9], name="pool")
    m = model_bytes([node], [("x", F, [1, 1, 5, 5])], [("y", F, ["a", "b", "c", "d"])])
    with pytest.raises(shoal.InvalidArgumentError,
                       match="pool.*kernel 9x9 larger than padded input 5x5"):
        shoal.compile(m)


def test_huge_dimensions():
    relu = model_bytes([helper.make_node("Relu", ["x"], ["y"])],
                       [("x", F, [1, "H", "W"])], [("y", F, [1, "H", "W"])])
    # One dim over 2^31.
    with pytest.raises(shoal.InvalidArgumentError,
                       match=r"invalid dimension in \[1,2147483649,1\]"):
        shoal.compile(relu, shape=(1, (1 << 31) + 1, 1))
    # Dims of 2^31 each: 2^62 elements do not fit any tensor.
    with pytest.raises(shoal.InvalidArgumentError,
                       match=r"\[1,2147483648,2147483648\] would have 2\^62 bytes or more"):
        shoal.compile(relu, shape=(1, 1 << 31, 1 << 31))
    # An op making such a shape from a small input.
    expand = model_bytes([helper.make_node("Expand", ["x", "s"], ["y"], name="grow")],
                         [("x", F, [1, 1])], [("y", F, ["a", "b", "c"])],
                         [("s", np.array([1 << 31, 1 << 31, 1 << 31], np.int64))])
    with pytest.raises(shoal.InvalidArgumentError, match="grow.*2\\^62 bytes or more"):
        shoal.compile(expand)
    # 2^31 x 2^12 floats (32 TiB) compile, but no host holds the arena: the
    # runtime refuses it up front instead of touching it.
    p = shoal.compile(relu, shape=(1, 1 << 31, 1 << 12))
    with pytest.raises(shoal.OutOfMemoryError, match="cannot allocate.*bytes of memory"):
        shoal.Runtime(p)


def test_empty_tensors_with_huge_dims():
    """A zero dim empties a tensor however large its other dims; those dims
    still count (as if the zero were one), or code multiplying them in
    another order would overflow."""
    flat = [helper.make_node("Flatten", ["e"], ["f"], axis=2), helper.make_node("Shape", ["f"], ["s"])]
    m = model_bytes(flat, [("x", F, [1, 1])], [("s", TensorProto.INT64, [2])],
                    [("e", np.zeros((0, 1, 1), np.float32))])
    model = onnx.ModelProto()
    model.ParseFromString(m)
    del model.graph.initializer[0].dims[:]
    model.graph.initializer[0].dims.extend([0, 1 << 40, 1 << 40, 1 << 40])
    with pytest.raises(shoal.InvalidArgumentError,
                       match=r"initializer 'e' has shape \[0,1099511627776,.*zero dims counted"):
        shoal.compile(model)
    huge = [1, 0, 1 << 31, 1 << 31, 1 << 31]
    relu = model_bytes([helper.make_node("Relu", ["x"], ["y"])], [("x", F, huge)], [("y", F, huge)])
    with pytest.raises(shoal.InvalidArgumentError, match=r"2\^62 bytes or more \(zero dims"):
        shoal.compile(relu)


def test_sizes_summing_or_multiplying_past_int64():
    def fails(nodes, inits, words, opset=13):
        m = model_bytes(nodes, [("x", F, [1, 4])], [("y", F, ["a", "b"])], inits, opset)
        with pytest.raises(shoal.InvalidArgumentError, match=words):
            shoal.compile(m)
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    fails([helper.make_node("Split", ["x", "sp"], ["y", "z"], axis=1)],
          [("sp", i64(6052837967905423360, 3530822107858468864))], "sum to more than 2\\^63")
    fails([helper.make_node("Tile", ["x", "r"], ["y"])], [("r", i64(1, 1 << 62))],
          r"Tile: repeats \[1,4611686018427387904\] overflow")
    # An empty uint8 tensor of dim 2^60 joined 8 times along it.
    fill = helper.make_tensor("v", TensorProto.UINT8, [1], [7])
    fails([helper.make_node("ConstantOfShape", ["cs"], ["k"], value=fill),
           helper.make_node("Concat", ["k"] * 8, ["c"], axis=1),
           helper.make_node("Shape", ["c"], ["s"]), helper.make_node("Cast", ["s"], ["sf"], to=F),
           helper.make_node("Add", ["x", "sf"], ["y"])],
          [("cs", i64(0, 1 << 60))], "Concat: the inputs' sizes along axis 1 sum past 2\\^63")
    w = np.ones((1, 1, 3), np.float32)
    m = model_bytes([helper.make_node("ConvTranspose", ["c", "w"], ["y"], strides=[1 << 31],
                                      output_shape=[(1 << 63) - 1])],
                    [("c", F, [1, 1, 0])], [("y", F, ["a", "b", "c"])], [("w", w)])
    with pytest.raises(shoal.InvalidArgumentError, match=r"'output_shape'.*must be in \[1, 2\^31\]"):
        shoal.compile(m)


def test_huge_pool_windows_over_a_constant_cost_what_the_input_holds():
    """Kernels and pads of 2^31 over 8 constant values fold at compile time
    in no time: only the taps inside the input are visited."""
    k = 1 << 31
    pool = dict(kernel_shape=[k], pads=[k - 1, k - 1], strides=[k])
    nodes = [helper.make_node("AveragePool", ["c"], ["p"], **pool),
             helper.make_node("AveragePool", ["c"], ["q"], count_include_pad=1, **pool),
             helper.make_node("MaxPool", ["c"], ["m"], **pool),
             helper.make_node("Concat", ["p", "q", "m"], ["pqm"], axis=2),
             helper.make_node("Flatten", ["pqm"], ["f"]), helper.make_node("Add", ["x", "f"], ["y"])]
    m = model_bytes(nodes, [("x", F, [1, 6])], [("y", F, [1, 6])],
                    [("c", np.arange(8, dtype=np.float32).reshape(1, 1, 8))])
    y = shoal.Runtime(shoal.compile(m)).run(np.zeros((1, 6), np.float32))[0]
    # Two windows: taps -(2^31 - 1)..0 (value 0) and 1..2^31 (values 1..7,
    # mean 4, max 7); counted with padding, the second's 2^31 taps all lie in
    # the padded input: 28 / 2^31.
    np.testing.assert_allclose(y, [[0, 4, 0, 28 / k, 0, 7]], rtol=1e-6)


def test_range_of_extreme_int64_bounds():
    """Range's elements fit int64 even where i * delta alone does not."""
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    nodes = [helper.make_node("Range", ["a", "b", "d"], ["r"]),
             helper.make_node("Equal", ["r", "want"], ["eq"]),
             helper.make_node("Cast", ["eq"], ["ef"], to=F), helper.make_node("Add", ["x", "ef"], ["y"])]
    m = model_bytes(nodes, [("x", F, [1, 3])], [("y", F, [1, 3])],
                    [("a", np.array(lo)), ("b", np.array(hi)), ("d", np.array(hi)),
                     ("want", np.array([lo, -1, hi - 1]))], opset=13)
    y = shoal.Runtime(shoal.compile(m)).run(np.zeros((1, 3), np.float32))[0]
    np.testing.assert_array_equal(y, [[1, 1, 1]])


def test_initializer_without_its_data():
    m = model_bytes([helper.make_node("Add", ["x", "w"], ["y"])],
                    [("x", F, [1, 4])], [("y", F, [1, 4])])
    model = onnx.ModelProto()
    model.ParseFromString(m)
    w = model.graph.initializer.add()  # 16 GiB promised, 4 bytes given
    w.name, w.data_type = "w", F
    w.dims.extend([1 << 30, 4])
    w.raw_data = b"\0\0\0\0"
    before = peak_rss_mib()
    with pytest.raises(shoal.InvalidArgumentError,
                       match=r"initializer 'w' has 4 bytes of raw data; shape \[1073741824,4\]"):
        shoal.compile(model)
    assert peak_rss_mib() - before < 512


def test_bad_cpu_devices_variable(digits_model, monkeypatch):
    p = shoal.compile(digits_model)
    for value, words in ((",", "device 0 has no cores"), (";", "names no cores"),
                         ("0,,0", "device 1 has no cores"), ("x", "bad core list 'x'")):
        monkeypatch.setenv("SHOAL_CPU_DEVICES", value)
        with pytest.raises(shoal.InvalidArgumentError, match=words):
            shoal.Runtime(p)
        with pytest.raises(shoal.InvalidArgumentError, match=words):
            shoal.devices()
    monkeypatch.delenv("SHOAL_CPU_DEVICES")
    assert len(shoal.devices()) >= 1



def test_program_check_inputs_is_the_runtimes_check(digits_rt):
    """Program.check_inputs (what the Dask client runs before shipping a
    batch) raises what Runtime.run raises, and returns the batch size."""
    program = digits_rt.program
    x = np.zeros((3, 1, 8, 8), np.float32)
    assert program.check_inputs([x]) == 3
    assert program.check_inputs([x[:0]]) == 0
    for bad, kind in ((x.astype(np.float64), shoal.DTypeError),
                      (x[:, :, :4], shoal.InvalidArgumentError),
                      (x[0], shoal.InvalidArgumentError)):
        with pytest.raises(kind) as from_program:
            program.check_inputs([bad])
        with pytest.raises(kind) as from_run:
            digits_rt.run(bad)
        assert str(from_program.value) == str(from_run.value)
    with pytest.raises(shoal.InvalidArgumentError, match="takes 1 input, got 2"):
        program.check_inputs([x, x])
