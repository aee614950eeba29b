"""Tests of the Python API: compile, Program, Runtime, errors, threads, pickling."""

import gc
import pickle
import threading

import numpy as np
import pytest

import shoal
from shoal import _shoal, errors

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

TOL = dict(rtol=1e-4, atol=1e-4)
rng = np.random.default_rng(1234)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def torch():
    """PyTorch, for the few tests that compare with it (imported by them
    alone: the rest of this file runs without it)."""
    return pytest.importorskip("torch")


def F():
    return torch().nn.functional


def t64(a):
    return torch().from_numpy(np.asarray(a, np.float64))


def run_once(model, inputs, **compile_kw):
    program = shoal.compile(model, **compile_kw)
    return shoal.Runtime(program).run(inputs)


# ---------------------------------------------------------------- basics ----

def test_version(source_dir):
    assert isinstance(shoal.__version__, str) and shoal.__version__
    assert shoal.version == shoal.__version__
    # The C++ library's version, which is the CMake project's.
    cmake = (source_dir / "CMakeLists.txt").read_text()
    assert f"project(shoal VERSION {shoal.__version__} " in cmake


def test_parse_shape():
    assert tuple(shoal.parse_shape("224x224x3")) == (1, 3, 224, 224)
    assert tuple(shoal.parse_shape("6x5x3")) == (1, 3, 5, 6)
    assert tuple(shoal.parse_shape("1,3,8,8")) == (1, 3, 8, 8)
    with pytest.raises(shoal.InvalidArgumentError):
        shoal.parse_shape("abc")
    with pytest.raises(TypeError):
        shoal.parse_shape(224)


def test_error_classes():
    assert issubclass(shoal.InvalidArgumentError, shoal.Error)
    assert issubclass(shoal.InvalidArgumentError, ValueError)
    assert issubclass(shoal.UnsupportedError, NotImplementedError)
    assert issubclass(shoal.OutOfMemoryError, MemoryError)
    assert issubclass(shoal.DeviceError, RuntimeError)
    assert issubclass(shoal.InternalError, RuntimeError)
    assert issubclass(shoal.DTypeError, shoal.InvalidArgumentError)
    assert issubclass(shoal.DTypeError, TypeError)
    # The one kind -> class table covers every shoal::ErrorKind.
    assert set(errors._BY_KIND) == set(_shoal.ERROR_KINDS)
    for kind, cls in errors._BY_KIND.items():
        e = errors._from_kind(kind, "msg")
        assert type(e) is cls and str(e) == "msg"


def test_devices():
    devs = shoal.devices()
    assert len(devs) >= 2
    assert [d.id for d in devs] == list(range(len(devs)))
    # cpu devices first, then the one ref device (SHOAL_REF_DEVICES unset).
    assert [d.kind for d in devs] == ["cpu"] * (len(devs) - 1) + ["ref"]
    for d in devs:
        assert d.name == f"{d.kind}:{d.index}"
        assert shoal.find_device(d.name) == d.id == shoal.find_device(str(d.id))
        assert isinstance(d.cores, list) and d.clusters >= 1 and d.compute_units >= 1
        assert isinstance(d.memory_bytes, int)
        assert set(d.to_dict()) == {"id", "kind", "index", "name", "cores", "compute_units",
                                    "compute_unit", "clusters", "memory_bytes",
                                    "host_addressable"}
        assert isinstance(d.describe(), str) and d.name in repr(d)
    cpu, ref = devs[0], devs[-1]
    assert cpu.name == "cpu:0" and cpu.cores and cpu.host_addressable
    assert ref.name == "ref:0" and not ref.cores and not ref.host_addressable
    assert [d.id for d in shoal.devices("ref")] == [ref.id]
    with pytest.raises(shoal.InvalidArgumentError, match="cpu:0, .*ref:0"):
        shoal.find_device("gpu:0")


def test_ref_devices_follow_shoal_ref_devices(monkeypatch):
    monkeypatch.setenv("SHOAL_REF_DEVICES", "2")
    assert [d.name for d in shoal.devices("ref")] == ["ref:0", "ref:1"]
    monkeypatch.setenv("SHOAL_REF_DEVICES", "0")
    assert shoal.devices("ref") == []
    monkeypatch.setenv("SHOAL_REF_DEVICES", "x")
    with pytest.raises(shoal.InvalidArgumentError, match="SHOAL_REF_DEVICES"):
        shoal.devices()


def test_program_has_no_public_constructor():
    with pytest.raises(TypeError):
        shoal.Program()


# ---------------------------------------------------------------- digits ----

@pytest.fixture(scope="module")
def digits_program(digits_model):
    return shoal.compile(digits_model)


@pytest.fixture(scope="module")
def digits_rt(digits_program):
    return shoal.Runtime(digits_program)


def digits_input(n):
    return randn(n, 1, 8, 8)


def test_digits_compile_path_bytes_proto(digits_model):
    x = digits_input(3)
    outs = []
    for model in (digits_model, str(digits_model), digits_model.read_bytes(),
                  bytearray(digits_model.read_bytes()), onnx.load(str(digits_model))):
        p = shoal.compile(model)
        assert [i.shape for i in p.inputs] == [(1, 1, 8, 8)]
        assert p.inputs[0].dtype == np.float32
        assert [o.shape for o in p.outputs] == [(1, 10)]
        assert p.output_size() == 10 and p.output_size(0) == 10
        outs.append(shoal.Runtime(p).run(x)[0])
    for y in outs[1:]:
        np.testing.assert_allclose(y, outs[0], rtol=1e-6, atol=1e-6)


def test_digits_program_properties(digits_program):
    p = digits_program
    assert (p.devices, p.clusters, p.split) == (1, 0, False)  # 0: one per core
    assert p.arena_bytes > 0 and p.weight_bytes > 0 and p.num_instructions > 0
    assert isinstance(p.describe(), str) and p.describe()
    assert "shoal.Program" in repr(p)
    assert isinstance(p.inputs[0], shoal.TensorInfo) and p.inputs[0].name
    assert p.inputs[0].numel == 64
    with pytest.raises(shoal.InvalidArgumentError):
        p.output_size(1)


def test_digits_run_n1_n5(digits_rt):
    x = digits_input(5)
    (y5,) = digits_rt.run(x)
    assert y5.shape == (5, 10) and y5.dtype == np.float32
    assert y5.flags["C_CONTIGUOUS"] and np.isfinite(y5).all()
    for i in range(5):
        (y1,) = digits_rt.run(x[i:i + 1])
        assert y1.shape == (1, 10)
        np.testing.assert_allclose(y1[0], y5[i], rtol=1e-5, atol=1e-5)
    assert digits_rt.last_run_ms > 0
    # A list with one array and a dict by name work too.
    name = digits_rt.inputs[0].name
    np.testing.assert_array_equal(digits_rt.run([x])[0], y5)
    np.testing.assert_array_equal(digits_rt.run({name: x})[0], y5)


def test_outputs_own_their_memory(digits_program):
    rt = shoal.Runtime(digits_program)
    x1, x2 = digits_input(2), digits_input(2)
    (y1,) = rt.run(x1)
    kept = y1.copy()
    rt.run(x2)
    del rt
    gc.collect()
    np.testing.assert_array_equal(y1, kept)


def test_save_load_round_trip(digits_program, digits_rt, tmp_path):
    x = digits_input(4)
    (ref,) = digits_rt.run(x)
    path = tmp_path / "digits.shoal"
    digits_program.save(path)
    for p in (shoal.load(path), shoal.load(str(path)), shoal.Program.load(str(path)),
              shoal.Program.from_bytes(digits_program.to_bytes()),
              shoal.Program.from_bytes(path.read_bytes())):
        np.testing.assert_array_equal(shoal.Runtime(p).run(x)[0], ref)
    assert path.read_bytes() == digits_program.to_bytes()
    # Runtime accepts a path too.
    np.testing.assert_array_equal(shoal.Runtime(path).run(x)[0], ref)


def test_pickle_program(digits_program, digits_rt):
    x = digits_input(3)
    p2 = pickle.loads(pickle.dumps(digits_program))
    assert isinstance(p2, shoal.Program)
    assert p2.to_bytes() == digits_program.to_bytes()
    np.testing.assert_array_equal(shoal.Runtime(p2).run(x)[0], digits_rt.run(x)[0])


def test_clusters_and_split(digits_model, digits_rt):
    x = digits_input(5)
    (ref,) = digits_rt.run(x)
    for kw in (dict(clusters=2), dict(clusters=2, split=True), dict(optimize=False)):
        p = shoal.compile(digits_model, **kw)
        assert p.clusters == kw.get("clusters", 0)
        assert p.split == kw.get("split", False)
        np.testing.assert_allclose(shoal.Runtime(p).run(x)[0], ref, **TOL)


def test_two_devices(digits_model, digits_rt, monkeypatch):
    # Two devices on any host: the cores split in two (one core each on 2).
    monkeypatch.setenv("SHOAL_CPU_DEVICES", "2")
    assert len(shoal.devices("cpu")) == 2, shoal.devices()
    x = digits_input(5)
    p = shoal.compile(digits_model, devices=2)
    assert p.devices == 2
    np.testing.assert_allclose(shoal.Runtime(p).run(x)[0], digits_rt.run(x)[0], **TOL)


def test_runtime_device_ids(digits_program):
    rt = shoal.Runtime(digits_program, devices=[shoal.devices()[0].id])
    assert rt.run(digits_input(1))[0].shape == (1, 10)
    del rt
    # The Device objects shoal.devices() returns are accepted as they are.
    rt = shoal.Runtime(digits_program, devices=[shoal.devices()[0]])
    assert rt.run(digits_input(1))[0].shape == (1, 10)
    del rt
    with pytest.raises(shoal.Error):
        shoal.Runtime(digits_program, devices=[9999])


def test_weight_placement(digits_model, digits_program, digits_rt, tmp_path, monkeypatch):
    """Weights copied into each device or read in place from the program
    (its mapped file, or its bytes) compute the same; plan() says which."""
    x = digits_input(5)
    (ref,) = digits_rt.run(x)
    path = tmp_path / "digits.shoal"
    digits_program.save(path)
    for source in (digits_program, shoal.load(path)):
        for weights, said in (("copy", "copied"), ("shared", "in place")):
            rt = shoal.Runtime(source, weights=weights)
            assert said in rt.plan()
            np.testing.assert_array_equal(rt.run(x)[0], ref)
    # Saving over the file a runtime reads its weights from replaces the
    # file; the runtime keeps the old one's pages.
    rt = shoal.Runtime(shoal.load(path), weights="shared")
    shoal.compile(digits_model, optimize=False, clusters=2).save(path)
    np.testing.assert_array_equal(rt.run(x)[0], ref)
    assert not list(tmp_path.glob("*.tmp*"))
    # Saving through a symlink replaces the file it names, keeping its mode.
    link = tmp_path / "link.shoal"
    link.symlink_to(path)
    path.chmod(0o640)
    digits_program.save(link)
    assert link.is_symlink() and (path.stat().st_mode & 0o777) == 0o640
    np.testing.assert_array_equal(shoal.Runtime(shoal.load(link)).run(x)[0], ref)
    monkeypatch.setenv("SHOAL_WEIGHTS", "copy")  # overrides auto only
    assert "copied" in shoal.Runtime(digits_program).plan()
    assert "in place" in shoal.Runtime(digits_program, weights="shared").plan()
    device = shoal.devices()[0].id
    # A malformed variable fails every API call that reads the environment.
    monkeypatch.setenv("SHOAL_WEIGHTS", "everywhere")
    with pytest.raises(errors.InvalidArgumentError, match="SHOAL_WEIGHTS"):
        shoal.Runtime(digits_program)
    with pytest.raises(errors.InvalidArgumentError, match="SHOAL_WEIGHTS"):
        shoal.Runtime(digits_program, devices=[device])
    monkeypatch.delenv("SHOAL_WEIGHTS")
    shoal.Runtime(digits_program, devices=[device]).close()  # the failed one claimed nothing
    with pytest.raises(errors.InvalidArgumentError, match="weights must be"):
        shoal.Runtime(digits_program, weights="nowhere")


def test_profile(digits_program):
    rt = shoal.Runtime(digits_program, profile=True)
    rt.run(digits_input(3))
    prof = rt.profile()
    assert prof
    for layer in prof:
        assert set(layer) >= {"name", "op", "impl", "ms", "flops", "calls"}
        # Every layer ran once per sample of the batch of 3, and took time.
        assert layer["calls"] == 3, layer
        assert layer["impl"], layer
    assert sum(layer["ms"] for layer in prof) > 0
    rt.reset_profile()
    assert all(layer["calls"] == 0 and layer["ms"] == 0 for layer in rt.profile())
    rt.run(digits_input(2))
    assert all(layer["calls"] == 2 for layer in rt.profile())
    assert rt.program is digits_program


def test_threads(digits_rt):
    """run() releases the GIL and is thread-safe: two Python threads share one
    Runtime and both get the sequential results."""
    xs = [digits_input(n) for n in (1, 2, 3, 4, 5, 6)]
    refs = [digits_rt.run(x)[0] for x in xs]
    failures = []

    def worker(order):
        try:
            for _ in range(10):
                for i in order:
                    (y,) = digits_rt.run(xs[i])
                    if not np.allclose(y, refs[i], rtol=1e-5, atol=1e-5):
                        failures.append(i)
        except Exception as e:  # noqa: BLE001 - reported below
            failures.append(repr(e))

    threads = [threading.Thread(target=worker, args=(o,))
               for o in (range(6), reversed(range(6)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


# ---------------------------------------------------------- input errors ----

def test_wrong_dtype_rejected(digits_rt):
    for dtype in (np.float64, np.int32, np.float16):
        x = np.zeros((1, 1, 8, 8), dtype)
        with pytest.raises(shoal.InvalidArgumentError) as e:
            digits_rt.run(x)
        assert isinstance(e.value, TypeError)
        assert np.dtype(dtype).name in str(e.value) and "float32" in str(e.value)
    # The binding itself checks too (no silent cast, no crash).
    with pytest.raises(shoal.InvalidArgumentError, match="float64"):
        digits_rt._rt.run([np.zeros((1, 1, 8, 8), np.float64)])


@pytest.mark.parametrize("shape", [(1, 1, 8, 9), (1, 8, 8), (2, 1, 64), (1, 1, 1, 8, 8)])
def test_wrong_shape_rejected(digits_rt, shape):
    # Checked once, by the runtime: the same message through every API.
    x = np.zeros(shape, np.float32)
    with pytest.raises(shoal.InvalidArgumentError) as e:
        digits_rt.run(x)
    assert "[N,1,8,8]" in str(e.value)
    with pytest.raises(shoal.InvalidArgumentError, match=r"\[N,1,8,8\]"):
        digits_rt._rt.run([x])


def test_wrong_input_count(digits_rt):
    x = digits_input(1)
    with pytest.raises(shoal.InvalidArgumentError, match="1 input"):
        digits_rt.run([x, x])
    with pytest.raises(shoal.InvalidArgumentError):
        digits_rt._rt.run([x, x])
    with pytest.raises(shoal.InvalidArgumentError):
        digits_rt._rt.run([x.tolist()])


def test_non_contiguous_input(digits_rt):
    base = randn(5, 1, 8, 16)
    x = base[..., ::2]
    assert not x.flags["C_CONTIGUOUS"]
    (ref,) = digits_rt.run(np.ascontiguousarray(x))
    np.testing.assert_array_equal(digits_rt.run(x)[0], ref)
    np.testing.assert_array_equal(digits_rt._rt.run([x])[0], ref)
    xf = np.asfortranarray(np.ascontiguousarray(x))
    np.testing.assert_array_equal(digits_rt.run(xf)[0], ref)


# --------------------------------------------------------- model errors ----

def test_missing_model_file(tmp_path):
    path = tmp_path / "no_such_model.onnx"
    with pytest.raises(shoal.InvalidArgumentError, match="no_such_model.onnx"):
        shoal.compile(path)


def test_missing_program_file(tmp_path):
    path = tmp_path / "no_such_program.shoal"
    with pytest.raises(shoal.InvalidArgumentError, match="no_such_program.shoal"):
        shoal.load(path)
    with pytest.raises(shoal.InvalidArgumentError, match="no_such_program.shoal"):
        shoal.Runtime(str(path))


def conv_model(make_onnx):
    w = randn(16, 16, 3, 3)
    return make_onnx("Conv", [("x", [1, 16, 6, 6])], [("y", [1, 16, 6, 6])],
                     initializers={"w": w}, attrs=dict(pads=[1, 1, 1, 1]))


def test_truncated_onnx(make_onnx):
    data = conv_model(make_onnx).SerializeToString()
    for bad in (data[: len(data) // 2], data[:-100], b"definitely not an onnx model"):
        with pytest.raises(shoal.InvalidArgumentError):
            shoal.compile(bad)


def test_unsupported_ops_listed(make_onnx):
    nodes = [
        helper.make_node("TopK", ["x", "k"], ["values", "indices"], name="my_topk"),
        helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["selected"],
                         name="my_nms"),
    ]
    model = make_onnx.graph(
        nodes,
        [("x", [1, 10]), ("boxes", [1, 6, 4]), ("scores", [1, 1, 6])],
        [("values", [1, 3]), ("indices", [1, 3], TensorProto.INT64),
         ("selected", ["M", 3], TensorProto.INT64)],
        initializers={"k": np.array([3], np.int64)})
    with pytest.raises(shoal.UnsupportedError) as e:
        shoal.compile(model)
    assert isinstance(e.value, NotImplementedError)
    assert "my_topk" in str(e.value) and "my_nms" in str(e.value)


def test_corrupt_program_bytes(digits_program, tmp_path):
    data = digits_program.to_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x5A
    for bad in (bytes(flipped), data[: len(data) // 2], data[:10], b"", b"garbage" * 10):
        with pytest.raises(shoal.InvalidArgumentError):
            shoal.Program.from_bytes(bad)
    path = tmp_path / "bad.shoal"
    path.write_bytes(bytes(flipped))
    with pytest.raises(shoal.InvalidArgumentError):
        shoal.load(path)


def test_bad_compile_arguments(make_onnx):
    model = make_onnx("Relu", [("x", [1, 3, 4, 4])], [("y", [1, 3, 4, 4])])
    with pytest.raises(TypeError):
        shoal.compile(12345)
    with pytest.raises(TypeError):
        shoal.compile(model, shape=3.5)
    with pytest.raises(shoal.InvalidArgumentError):
        shoal.compile(model, shape=(1, -3, 4, 4))
    with pytest.raises(shoal.InvalidArgumentError):
        shoal.compile(model, shape="abc")
    with pytest.raises(shoal.InvalidArgumentError):
        shoal.compile(model, clusters=-1)


# ------------------------------------------------------ compile options ----

def test_shape_option(make_onnx):
    model = make_onnx("Relu", [("x", [1, 3, "H", "W"])], [("y", [1, 3, "H", "W"])])
    p = shoal.compile(model, shape="6x5x3")
    assert p.inputs[0].shape == (1, 3, 5, 6) and p.outputs[0].shape == (1, 3, 5, 6)
    p = shoal.compile(model, shape=(1, 3, 4, 4))
    assert p.inputs[0].shape == (1, 3, 4, 4)
    p = shoal.compile(model, shape=[1, 3, 2, 7])
    x = randn(2, 3, 2, 7)
    np.testing.assert_allclose(shoal.Runtime(p).run(x)[0], np.maximum(x, 0), **TOL)
    with pytest.raises(shoal.Error):  # dynamic dims need a shape
        shoal.compile(model)


def test_verbose_and_log(make_onnx, capsys):
    model = conv_model(make_onnx)
    lines = []
    shoal.compile(model, verbose=True, log=lines.append)
    err = capsys.readouterr().err
    assert all(isinstance(line, str) for line in lines)
    assert err == "".join(line + "\n" for line in lines)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_log_callback_errors_do_not_break_compile(make_onnx):
    def bad_log(line):
        raise RuntimeError("log sink failed")

    p = shoal.compile(conv_model(make_onnx), log=bad_log)
    assert p.outputs[0].shape == (1, 16, 6, 6)


# ------------------------------------------------- single-op numerics ----

def case_relu(make_onnx):
    m = make_onnx("Relu", [("x", [1, 3, 5, 7])], [("y", [1, 3, 5, 7])])
    return m, [(1, 3, 5, 7)], lambda x: np.maximum(x, 0)


def case_add_two_inputs(make_onnx):
    m = make_onnx("Add", [("a", [1, 3, 4, 5]), ("b", [1, 3, 1, 5])], [("y", [1, 3, 4, 5])])
    return m, [(1, 3, 4, 5), (1, 3, 1, 5)], lambda a, b: a + b


def case_add_const(make_onnx):
    bias = randn(3, 1, 1)
    m = make_onnx("Add", [("x", [1, 3, 4, 5])], [("y", [1, 3, 4, 5])],
                  initializers={"bias": bias})
    return m, [(1, 3, 4, 5)], lambda x: x + bias


def case_conv_groups(make_onnx):
    w, b = randn(6, 2, 3, 3), randn(6)
    m = make_onnx("Conv", [("x", [1, 4, 9, 9])], [("y", [1, 6, 5, 5])],
                  initializers={"w": w, "b": b},
                  attrs=dict(group=2, strides=[2, 2], pads=[1, 1, 1, 1],
                             kernel_shape=[3, 3]))
    return m, [(1, 4, 9, 9)], lambda x: F().conv2d(
        t64(x), t64(w), t64(b), stride=2, padding=1, groups=2).numpy()


def case_conv_asym_pads(make_onnx):
    w = randn(5, 3, 3, 2)
    # ONNX pads: [top, left, bottom, right]; F.pad: (left, right, top, bottom).
    m = make_onnx("Conv", [("x", [1, 3, 7, 6])], [("y", [1, 5, 6, 8])],
                  initializers={"w": w}, attrs=dict(pads=[0, 1, 1, 2]))
    return m, [(1, 3, 7, 6)], lambda x: F().conv2d(
        F().pad(t64(x), (1, 2, 0, 1)), t64(w)).numpy()


def case_conv_depthwise_dilated(make_onnx):
    w, b = randn(3, 1, 3, 3), randn(3)
    m = make_onnx("Conv", [("x", [1, 3, 8, 8])], [("y", [1, 3, 8, 8])],
                  initializers={"w": w, "b": b},
                  attrs=dict(group=3, dilations=[2, 2], pads=[2, 2, 2, 2]))
    return m, [(1, 3, 8, 8)], lambda x: F().conv2d(
        t64(x), t64(w), t64(b), padding=2, dilation=2, groups=3).numpy()


def case_gemm(make_onnx):
    b, c = randn(8, 16), randn(8)
    m = make_onnx("Gemm", [("a", [1, 16])], [("y", [1, 8])],
                  initializers={"b": b, "c": c},
                  attrs=dict(transB=1, alpha=0.5, beta=2.0))
    return m, [(1, 16)], lambda a: 0.5 * (a.astype(np.float64) @ b.T) + 2.0 * c


def case_maxpool(make_onnx):
    m = make_onnx("MaxPool", [("x", [1, 3, 9, 9])], [("y", [1, 3, 5, 5])],
                  attrs=dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    return m, [(1, 3, 9, 9)], lambda x: F().max_pool2d(t64(x), 3, 2, 1).numpy()


def case_softmax_last(make_onnx):
    m = make_onnx("Softmax", [("x", [1, 10])], [("y", [1, 10])], attrs=dict(axis=-1))
    return m, [(1, 10)], lambda x: torch().softmax(t64(x), -1).numpy()


def case_softmax_channels(make_onnx):
    m = make_onnx("Softmax", [("x", [1, 3, 4, 4])], [("y", [1, 3, 4, 4])],
                  attrs=dict(axis=1))
    return m, [(1, 3, 4, 4)], lambda x: torch().softmax(t64(x), 1).numpy()


CASES = [case_relu, case_add_two_inputs, case_add_const, case_conv_groups,
         case_conv_asym_pads, case_conv_depthwise_dilated, case_gemm, case_maxpool,
         case_softmax_last, case_softmax_channels]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__[5:])
@pytest.mark.parametrize("n", [1, 3])
def test_single_op(make_onnx, case, n):
    model, shapes, reference = case(make_onnx)
    xs = [randn(n, *s[1:]) for s in shapes]
    outs = run_once(model, xs)
    assert len(outs) == 1
    expected = np.asarray(reference(*xs))
    assert outs[0].shape == expected.shape
    assert outs[0].dtype == np.float32
    np.testing.assert_allclose(outs[0], expected, **TOL)


def test_multi_input_by_name_and_batch_mismatch(make_onnx):
    model, _, _ = case_add_two_inputs(make_onnx)
    rt = shoal.Runtime(shoal.compile(model))
    assert [i.name for i in rt.inputs] == ["a", "b"]
    a, b = randn(2, 3, 4, 5), randn(2, 3, 1, 5)
    np.testing.assert_allclose(rt.run({"b": b, "a": a})[0], a + b, **TOL)
    with pytest.raises(shoal.InvalidArgumentError, match="batch"):
        rt.run([a, b[:1]])
    with pytest.raises(shoal.InvalidArgumentError, match="batch"):
        rt._rt.run([a, b[:1]])
    with pytest.raises(shoal.InvalidArgumentError, match="missing"):
        rt.run({"a": a})
