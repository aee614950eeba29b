"""Devices, clusters and the four execution modes of the SDK tutorial.

1. a batch across 2 devices        (compile(devices=2))
2. two programs on disjoint devices (Runtime(devices=[0]) / [1]), two threads
3. a batch across 2 clusters       (compile(clusters=2))
4. 2 clusters on ONE input         (compile(clusters=2, split=True), the SDK's nobatch)

CPU devices are enumerated when a Runtime is created, from
SHOAL_CPU_DEVICES; the tests set it with monkeypatch.
"""

import os
import threading

import numpy as np
import pytest

import shoal

BATCHES = (1, 2, 3, 7)
JOIN_S = 120


@pytest.fixture
def two_devices(monkeypatch):
    """Two CPU devices: one core each, or two sharing the only core."""
    cores = sorted(os.sched_getaffinity(0))
    spec = "2" if len(cores) >= 2 else f"{cores[0]},{cores[0]}"
    monkeypatch.setenv("SHOAL_CPU_DEVICES", spec)
    assert len(shoal.devices("cpu")) == 2
    return spec


@pytest.fixture(scope="module")
def digits_x(source_dir):
    path = source_dir / "models" / "digits" / "heldout_x.npy"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return np.ascontiguousarray(np.load(path)[:40], np.float32)


@pytest.fixture(scope="module")
def second_model(make_onnx):
    """A small second CNN: Conv 1->4 3x3 + Relu, GlobalAveragePool, Gemm 4->3."""
    from onnx import helper

    rng = np.random.default_rng(7)
    inits = {
        "w": rng.standard_normal((4, 1, 3, 3)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
        "fw": rng.standard_normal((3, 4)).astype(np.float32),
        "fb": rng.standard_normal(3).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1, name="fc"),
    ]
    return make_onnx.graph(nodes, [("x", [1, 1, 8, 8])], [("y", [1, 3])], inits,
                           name="second")


def single_device_run(model, x, **compile_kw):
    """The reference: one device, one cluster, batch mode."""
    compile_kw.setdefault("clusters", 1)
    rt = shoal.Runtime(shoal.compile(model, shape="8x8x1", **compile_kw), devices=[0],
                       share_devices=True)
    (y,) = rt.run(x)
    return np.array(y, copy=True)


def assert_rows_equal(y, ref):
    # Same kernels per sample: equal up to rounding of thread partitioning.
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-6)


# ------------------------------------------------------------- devices ----

def test_devices_follow_shoal_cpu_devices(monkeypatch, two_devices):
    devs = shoal.devices("cpu")
    assert [d.id for d in devs] == [0, 1]
    assert all(d.kind == "cpu" and d.cores and d.clusters == len(d.cores) for d in devs)
    monkeypatch.setenv("SHOAL_CPU_DEVICES", "1")
    assert len(shoal.devices("cpu")) == 1
    monkeypatch.setenv("SHOAL_CPU_DEVICES", "9999")
    with pytest.raises(shoal.InvalidArgumentError, match="SHOAL_CPU_DEVICES"):
        shoal.devices()


def test_more_devices_than_the_host_has(digits_model, two_devices):
    program = shoal.compile(digits_model, shape="8x8x1", devices=3)
    with pytest.raises(shoal.DeviceError, match="SHOAL_CPU_DEVICES"):
        shoal.Runtime(program)


def test_named_devices_are_claimed(digits_model, two_devices):
    program = shoal.compile(digits_model, shape="8x8x1")
    a = shoal.Runtime(program, devices=[0])
    with pytest.raises(shoal.DeviceError, match="device 0"):
        shoal.Runtime(program, devices=[0])
    shared = shoal.Runtime(program, devices=[0], share_devices=True)
    b = shoal.Runtime(program, devices=[1])
    assert "[cpu:0]" in a.plan() and "[cpu:1]" in b.plan()
    with pytest.raises(shoal.DeviceError):  # no free device left for an unnamed runtime
        shoal.Runtime(program)
    a.close()
    shoal.Runtime(program, devices=[0]).close()  # released by close()
    with pytest.raises(shoal.DeviceError, match="no device 5"):
        shoal.Runtime(program, devices=[5])
    del shared, b


# ---------------------------------------------------------------- modes ----

def test_mode1_batch_across_two_devices(digits_model, digits_x, two_devices):
    rt = shoal.Runtime(shoal.compile(digits_model, shape="8x8x1", devices=2))
    assert rt.plan().startswith("2 devices")
    ref = single_device_run(digits_model, digits_x)
    for n in BATCHES:
        for start in (0, 11):
            (y,) = rt.run(digits_x[start:start + n])
            assert_rows_equal(y, ref[start:start + n])


def test_mode2_two_programs_on_disjoint_devices(digits_model, second_model, digits_x,
                                                two_devices):
    ref1 = single_device_run(digits_model, digits_x)
    ref2 = single_device_run(second_model, digits_x)
    rt1 = shoal.Runtime(shoal.compile(digits_model, shape="8x8x1"), devices=[0])
    rt2 = shoal.Runtime(shoal.compile(second_model, shape="8x8x1"), devices=[1])
    assert "[cpu:0]" in rt1.plan() and "[cpu:1]" in rt2.plan()
    errors = []

    def loop(rt, ref):
        try:
            for k in range(60):
                n = BATCHES[k % len(BATCHES)]
                s = k % (len(digits_x) - n)
                (y,) = rt.run(digits_x[s:s + n])
                assert_rows_equal(y, ref[s:s + n])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=loop, args=a, daemon=True)
               for a in ((rt1, ref1), (rt2, ref2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    assert not any(t.is_alive() for t in threads), "deadlock"
    if errors:
        raise errors[0]


def test_mode3_batch_across_two_clusters(digits_model, digits_x, monkeypatch):
    monkeypatch.delenv("SHOAL_CPU_DEVICES", raising=False)
    rt = shoal.Runtime(shoal.compile(digits_model, shape="8x8x1", clusters=2, mode="batch"))
    assert "2 clusters; batch mode" in rt.plan(), rt.plan()
    ref = single_device_run(digits_model, digits_x)
    for n in BATCHES:
        (y,) = rt.run(digits_x[:n])
        assert_rows_equal(y, ref[:n])


def test_mode3_and_mode1_together(digits_model, digits_x, two_devices):
    rt = shoal.Runtime(shoal.compile(digits_model, shape="8x8x1", devices=2, clusters=2))
    ref = single_device_run(digits_model, digits_x)
    for n in BATCHES:
        (y,) = rt.run(digits_x[3:3 + n])
        assert_rows_equal(y, ref[3:3 + n])


def test_mode4_split_one_input(digits_model, second_model, digits_x, monkeypatch):
    monkeypatch.delenv("SHOAL_CPU_DEVICES", raising=False)
    for model in (digits_model, second_model):
        program = shoal.compile(model, shape="8x8x1", clusters=2, split=True)
        assert program.split
        rt = shoal.Runtime(program)
        assert "split" in rt.plan()
        ref = single_device_run(model, digits_x)
        (y,) = rt.run(digits_x[5:6])
        np.testing.assert_allclose(y, ref[5:6], rtol=1e-5, atol=1e-5)
        for n in BATCHES:  # several inputs run one after another
            (y,) = rt.run(digits_x[:n])
            np.testing.assert_allclose(y, ref[:n], rtol=1e-5, atol=1e-5)


def test_mode4_split_on_two_devices(digits_model, digits_x, two_devices):
    rt = shoal.Runtime(shoal.compile(digits_model, shape="8x8x1", devices=2, clusters=2,
                                     split=True))
    ref = single_device_run(digits_model, digits_x)
    for n in BATCHES:
        (y,) = rt.run(digits_x[:n])
        np.testing.assert_allclose(y, ref[:n], rtol=1e-5, atol=1e-5)


def winograd_net():
    """Two 3x3 convolutions 32->64->64 on 28x28 maps, the second with a
    residual: both Winograd layers (CI's AVX-512 CPU) with weights smaller
    than their input, which a team cuts into bands of rows."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(a, n) for n, a in (
        ("w1", (rng.standard_normal((64, 32, 3, 3)) * 0.1).astype(np.float32)),
        ("b1", rng.standard_normal(64).astype(np.float32)),
        ("w2", (rng.standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32)))]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Add", ["c2", "r1"], ["y"], name="residual"),
    ]
    graph = helper.make_graph(
        nodes, "wino", [helper.make_tensor_value_info("x", 1, [1, 32, 28, 28])],
        [helper.make_tensor_value_info("y", 1, [1, 64, 28, 28])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("bands", ["default", "all"])
def test_mode4_split_row_bands(bands, monkeypatch):
    """Split mode on a two-core team runs Winograd layers (or, forced, every
    convolution) of one input as one band of output rows per thread: the
    results are those of whole layers, for one input and for stacked batches
    (whose kernels keep oneDNN's threading)."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores")
    monkeypatch.setenv("SHOAL_CPU_DEVICES", "1")  # one device of every core
    model = winograd_net().SerializeToString()
    # The reference: whole layers, oneDNN's threading (kernels are made now).
    monkeypatch.setenv("SHOAL_ROW_BANDS", "none")
    one = shoal.Runtime(shoal.compile(model, clusters=1, mode="batch"), micro_batch=1)
    if bands == "all":
        monkeypatch.setenv("SHOAL_ROW_BANDS", "all")
    else:
        monkeypatch.delenv("SHOAL_ROW_BANDS")
    program = shoal.compile(model, clusters=2, split=True)
    rt = shoal.Runtime(program, profile=True)
    x = np.random.default_rng(4).standard_normal((5, 32, 28, 28)).astype(np.float32)
    (ref,) = one.run(x)
    for n in (1, 2, 5):
        (y,) = rt.run(x[:n])
        np.testing.assert_allclose(y, ref[:n], rtol=1e-4, atol=1e-4)
    impls = {layer["name"]: layer["impl"] for layer in rt.profile()}
    if bands == "all" or "wino" in impls["conv1"]:
        assert all("row bands" in impls[n] for n in ("conv1", "conv2")), impls


def test_auto_mode_is_the_default(digits_model, second_model, digits_x, monkeypatch):
    """mode="auto": a batch with an input for every cluster runs in batch
    mode, a smaller one in split mode; the results are the same either way."""
    monkeypatch.delenv("SHOAL_CPU_DEVICES", raising=False)
    for model in (digits_model, second_model):
        program = shoal.compile(model, shape="8x8x1", clusters=2)
        assert program.mode == "auto" and not program.split
        rt = shoal.Runtime(program)
        assert "auto mode: a batch of 2 inputs or more runs in batch mode" in rt.plan()
        ref = single_device_run(model, digits_x)
        for n in (1, 2, 3, 1, 9):
            (y,) = rt.run(digits_x[:n])
            np.testing.assert_allclose(y, ref[:n], rtol=1e-5, atol=1e-5)


def test_default_clusters_one_per_core(digits_model, digits_x, monkeypatch):
    """clusters=0 (the default): one cluster per core of each device, decided
    at load; with auto mode, a whole-device team for small batches."""
    monkeypatch.delenv("SHOAL_CPU_DEVICES", raising=False)
    program = shoal.compile(digits_model, shape="8x8x1")
    assert program.clusters == 0
    rt = shoal.Runtime(program)
    cores = len(shoal.devices()[0].cores)
    assert rt.clusters == cores
    assert f"x {cores} cluster" in rt.plan() and "(one per core)" in rt.plan(), rt.plan()
    if cores > 1:
        assert f"auto mode: a batch of {cores} inputs or more" in rt.plan(), rt.plan()
    ref = single_device_run(digits_model, digits_x)
    for n in (1, 2, 3, 9):
        (y,) = rt.run(digits_x[:n])
        np.testing.assert_allclose(y, ref[:n], rtol=1e-5, atol=1e-5)
    assert shoal.Runtime(shoal.compile(digits_model, shape="8x8x1", split=True)).clusters == 1


def test_default_clusters_on_one_core_devices(digits_model, digits_x, two_devices):
    rt = shoal.Runtime(shoal.compile(digits_model, shape="8x8x1", devices=2))
    assert rt.clusters == 1 and "batch mode" in rt.plan(), rt.plan()
    ref = single_device_run(digits_model, digits_x)
    for n in (1, 2, 5):
        (y,) = rt.run(digits_x[:n])
        np.testing.assert_allclose(y, ref[:n], rtol=1e-5, atol=1e-5)


def test_auto_mode_on_devices_of_different_sizes(digits_model, digits_x, monkeypatch):
    """Devices of 2 cores and 1 core, a cluster per core: the 2-core device
    gets a team for small batches, the 1-core device's only cluster serves as
    its own; every batch size gives the single device's results, and the
    profile counts each sample once."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or cores[1] != cores[0] + 1:
        pytest.skip("needs two adjacent cores")
    monkeypatch.setenv("SHOAL_CPU_DEVICES", f"{cores[0]}-{cores[1]},{cores[1]}-{cores[1]}")
    rt = shoal.Runtime(shoal.compile(digits_model, shape="8x8x1", devices=2), profile=True)
    assert "auto mode" in rt.plan(), rt.plan()
    ref = single_device_run(digits_model, digits_x)
    for n in (1, 2, 3, 5):
        (y,) = rt.run(digits_x[:n])
        np.testing.assert_allclose(y, ref[:n], rtol=1e-5, atol=1e-5)
    assert {layer["calls"] for layer in rt.profile()} == {1 + 2 + 3 + 5}


def test_auto_mode_on_two_devices_and_pipeline(digits_model, digits_x, two_devices):
    rt = shoal.Runtime(shoal.compile(digits_model, shape="8x8x1", devices=2, clusters=2))
    assert "a batch of 4 inputs or more" in rt.plan(), rt.plan()
    ref = single_device_run(digits_model, digits_x)
    for n in (1, 3, 4, 7):
        (y,) = rt.run(digits_x[:n])
        np.testing.assert_allclose(y, ref[:n], rtol=1e-5, atol=1e-5)
    got = []
    for i, n in enumerate((1, 5, 2, 4)):  # small and large batches in flight together
        rt.put(digits_x[i:i + n], n)
        if i:
            got.append(rt.get())
    got.append(rt.get())
    for i, ((y,), n) in enumerate(got):
        np.testing.assert_allclose(y, ref[i:i + n], rtol=1e-5, atol=1e-5)


def test_mode_argument(digits_model):
    assert shoal.compile(digits_model, shape="8x8x1", clusters=2, mode="batch").mode == "batch"
    assert shoal.compile(digits_model, shape="8x8x1", clusters=2, split=True).mode == "split"
    assert shoal.compile(digits_model, shape="8x8x1", clusters=2, mode="split").split
    with pytest.raises(ValueError, match="mode must be"):
        shoal.compile(digits_model, mode="fast")
    with pytest.raises(ValueError, match="contradicts"):
        shoal.compile(digits_model, split=True, mode="batch")


def test_pipeline_across_devices(digits_model, digits_x, two_devices):
    rt = shoal.Runtime(shoal.compile(digits_model, shape="8x8x1", devices=2))
    ref = single_device_run(digits_model, digits_x)
    assert rt.queue_capacity == 4  # 2 x (2 devices x 1 cluster)
    for i in range(4):
        assert rt.put(digits_x[i:i + 1], i, timeout=0)
    assert rt.put(digits_x[:1], "full", timeout=0) is False
    for i in range(4):
        (y,), tag = rt.get()
        assert tag == i
        assert_rows_equal(y, ref[i:i + 1])
