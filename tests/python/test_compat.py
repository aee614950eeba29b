"""shoal.compat.fwdnxt: the FWDNXT SDK's Python API on shoal's CPU devices."""

import os
import threading
import time
import warnings

import numpy as np
import pytest

import shoal
from shoal.compat import fwdnxt, microndla

JOIN_S = 120


@pytest.fixture(scope="module")
def digits_x(source_dir):
    path = source_dir / "models" / "digits" / "heldout_x.npy"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return np.ascontiguousarray(np.load(path)[:64], np.float32)


@pytest.fixture(scope="module")
def reference(digits_model, digits_x):
    rt = shoal.Runtime(shoal.compile(digits_model, shape="8x8x1"), devices=[0],
                       share_devices=True)
    (y,) = rt.run(digits_x)
    return np.array(y, copy=True)


@pytest.fixture
def sdks():
    """make() -> a new FWDNXT; every one made is freed after the test."""
    made = []

    def make(cls=fwdnxt.FWDNXT):
        sf = cls()
        made.append(sf)
        return sf

    yield make
    for sf in made:
        sf.Free()


@pytest.fixture
def ready(sdks, digits_model, tmp_path):
    """An FWDNXT with the digits model compiled (1 device, 2 clusters) and Init'ed."""
    sf = sdks()
    size = sf.Compile("8x8x1", str(digits_model), str(tmp_path / "digits.bin"), 1, 2)
    assert size == 10
    assert sf.Init(str(tmp_path / "digits.bin"), "") == 10
    return sf


@pytest.fixture
def two_devices(monkeypatch):
    cores = sorted(os.sched_getaffinity(0))
    monkeypatch.setenv("SHOAL_CPU_DEVICES",
                       "2" if len(cores) >= 2 else f"{cores[0]},{cores[0]}")
    assert len(shoal.devices("cpu")) == 2


def small_model(make_onnx, seed, outputs=1):
    """Conv 1->4 3x3 + Relu, GlobalAveragePool, Gemm 4->3 (output 'y'); with
    outputs=2 also the Relu output 'r' [1,4,8,8]."""
    from onnx import helper

    rng = np.random.default_rng(seed)
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
    outs = [("y", [1, 3])] + ([("r", [1, 4, 8, 8])] if outputs == 2 else [])
    return make_onnx.graph(nodes, [("x", [1, 1, 8, 8])], outs, inits, name=f"small{seed}")


def save_model(model, path):
    path.write_bytes(model.SerializeToString())
    return str(path)


# -------------------------------------------------------------- Compile ----

def test_compile_saves_the_program_and_returns_the_output_size(sdks, digits_model, tmp_path):
    sf = sdks()
    out = tmp_path / "p.bin"
    assert sf.Compile("8x8x1", str(digits_model), str(out)) == 10
    p = shoal.load(out)
    assert (p.devices, p.clusters, p.split) == (1, 1, False)
    assert sf.Compile2("8x8x1", digits_model, tmp_path / "q.bin", 2, 3) == 10
    q = shoal.load(tmp_path / "q.bin")
    assert (q.devices, q.clusters) == (2, 3)
    assert sf.GetInfo("numfpga") == 2 and sf.GetInfo("numcluster") == 3
    assert sf.GetInfo("numbatch") == 6


def test_compile_image_forms(sdks, digits_model, tmp_path):
    sf = sdks()
    npy = tmp_path / "one.npy"
    np.save(npy, np.zeros((1, 8, 8), np.float32))
    assert sf.Compile(str(npy), digits_model, "") == 10
    np.save(npy, np.zeros((8, 8), np.float32))
    assert sf.Compile(npy, digits_model, "") == 10
    Image = pytest.importorskip("PIL.Image")
    png = tmp_path / "digit.png"
    Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(png)
    assert sf.Compile(str(png), digits_model, "") == 10
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "m.onnx").write_bytes(digits_model.read_bytes())
    assert sf.Compile("8x8x1", str(model_dir), "") == 10  # the SDK's modeldir


def test_compile_errors(sdks, digits_model, tmp_path):
    sf = sdks()
    with pytest.raises(shoal.InvalidArgumentError, match="WxHxP"):
        sf.Compile("eight by eight", digits_model, "")
    with pytest.raises(shoal.InvalidArgumentError, match="zero"):
        sf.Compile("8x0x1", digits_model, "")
    with pytest.raises(TypeError):
        sf.Compile(8, digits_model, "")
    with pytest.raises(shoal.UnsupportedError, match="nlayers"):
        sf.Compile("8x8x1", digits_model, "", nlayers=3)
    with pytest.raises(shoal.InvalidArgumentError):  # the model takes 8x8x1
        sf.Compile("16x16x1", digits_model, "")
    with pytest.raises(shoal.InvalidArgumentError):
        sf.Compile("8x8x1", digits_model, "", numfpga=0)
    with pytest.raises(shoal.InvalidArgumentError, match="exactly one"):
        sf.Compile("8x8x1", tmp_path, "")


# ------------------------------------------------------------ Init/Run ----

def test_run_equals_runtime_run(ready, digits_x, reference):
    for n in (1, 2, 3, 7):
        out = np.full(n * 10, np.nan, np.float32)
        ready.Run(digits_x[:n].reshape(-1), out)  # flat, concatenated [P,H,W]
        np.testing.assert_array_equal(out.reshape(n, 10), reference[:n])
    out = np.empty((2, 10), np.float32)
    ready.Run(digits_x[4:6], out)  # any shape with the right size
    np.testing.assert_array_equal(out, reference[4:6])
    out = np.empty(10, np.float32)
    ready.Run(digits_x[9, 0], out)  # one image [H,W]
    np.testing.assert_array_equal(out, reference[9])
    assert ready.GetInfo("hwtime") > 0
    big = np.zeros(50, np.float32)  # room to spare: the rest is untouched
    ready.Run(digits_x[:2], big)
    np.testing.assert_array_equal(big[:20].reshape(2, 10), reference[:2])
    assert not big[20:].any()


def test_run_errors(ready, sdks, digits_x):
    out = np.empty(20, np.float32)
    with pytest.raises(shoal.InvalidArgumentError, match="multiple of 64"):
        ready.Run(np.zeros(100, np.float32), out)
    with pytest.raises(ValueError):  # InvalidArgumentError is a ValueError
        ready.Run(np.zeros(0, np.float32), out)
    with pytest.raises(shoal.InvalidArgumentError, match="room for 20"):
        ready.Run(digits_x[:3], out)
    with pytest.raises(shoal.DTypeError):
        ready.Run(digits_x[:2].astype(np.float64), out)
    with pytest.raises(shoal.DTypeError):
        ready.Run(digits_x[:2], np.empty(20, np.float64))
    with pytest.raises(shoal.InvalidArgumentError, match="contiguous"):
        ready.Run(digits_x[:2], np.empty(40, np.float32)[::2])
    with pytest.raises(shoal.InvalidArgumentError, match="preallocated"):
        ready.Run(digits_x[:2], [0.0] * 20)
    fresh = sdks()
    with pytest.raises(shoal.InvalidArgumentError, match="Init"):
        fresh.Run(digits_x[:1], out)
    with pytest.raises(shoal.UnsupportedError, match="float32"):
        ready.Run_sw(digits_x[:1], out)


def test_init_device_selection(sdks, digits_model, tmp_path, two_devices, digits_x, reference):
    path = str(tmp_path / "d.bin")
    sfa = sdks()
    sfa.Compile("8x8x1", digits_model, path)
    assert sfa.Init(path, "cpu:1") == 10
    assert sfa.devices == [1]
    assert "[cpu:1]" in sfa.runtime.plan()
    sfb = sdks()
    assert sfb.Init(path, "bitfile.bit") == 10  # a design file: ignored, picks a free device
    assert sfb.devices == [0]
    out = np.empty(30, np.float32)
    for sf in (sfa, sfb):
        sf.Run(digits_x[:3], out)
        np.testing.assert_array_equal(out.reshape(3, 10), reference[:3])
    sfc = sdks()
    with pytest.raises(shoal.DeviceError, match="free"):
        sfc.Init(path, "")
    with pytest.raises(shoal.DeviceError, match="device 1"):
        sfc.Init(path, "1")  # held by sfa
    with pytest.raises(shoal.InvalidArgumentError, match="device selection"):
        sfc.Init(path, "cpu:one")
    with pytest.raises(shoal.InvalidArgumentError, match="names 2"):
        sfc.Init(path, "0,1")
    sfa.Free()
    assert sfc.Init(path, "") == 10 and sfc.devices == [1]
    sfa.Free()  # twice is fine
    with pytest.raises(shoal.InvalidArgumentError, match="Init"):
        sfa.Run(digits_x[:1], out)


def test_two_device_program(sdks, digits_model, tmp_path, two_devices, digits_x, reference):
    sf = sdks()
    size = sf.Compile("8x8x1", digits_model, str(tmp_path / "two.bin"), 2, 1)
    sf.Init(str(tmp_path / "two.bin"), "")
    assert sf.devices == [0, 1]
    assert sf.GetInfo("numbatch") == 2
    out = np.empty(2 * size, np.float32)
    sf.Run(digits_x[:2], out)
    np.testing.assert_array_equal(out.reshape(2, 10), reference[:2])


def test_several_outputs(sdks, make_onnx, tmp_path, digits_x):
    model = small_model(make_onnx, 3, outputs=2)
    sf = sdks()
    sizes = sf.Compile("8x8x1", save_model(model, tmp_path / "m2.onnx"), str(tmp_path / "m2"))
    assert sizes == (3, 256)
    assert sf.Init(str(tmp_path / "m2"), "") == (3, 256)
    y, r = np.empty(2 * 3, np.float32), np.empty(2 * 256, np.float32)
    sf.Run(digits_x[:2], [y, r])
    ry, rr = shoal.Runtime(shoal.load(tmp_path / "m2"), share_devices=True,
                           devices=[0]).run(digits_x[:2])
    np.testing.assert_array_equal(y.reshape(2, 3), ry)
    np.testing.assert_array_equal(r.reshape(2, 4, 8, 8), rr)
    with pytest.raises(shoal.InvalidArgumentError, match="2 outputs"):
        sf.Run(digits_x[:2], y)


# -------------------------------------------------- PutInput/GetResult ----

def test_putinput_getresult_userobj(ready, digits_x, reference):
    objs = ["first", ("second", 2), None, {"fourth": 4}]
    for i, obj in enumerate(objs):
        ready.PutInput(digits_x[i], obj)
    out = np.empty(10, np.float32)
    for i, obj in enumerate(objs):
        assert ready.GetResult(out) is obj
        np.testing.assert_array_equal(out, reference[i])
    with pytest.raises(shoal.InvalidArgumentError, match="no PutInput is pending"):
        ready.GetResult(out)
    ready.PutInput(digits_x[:3], "batch of 3")  # several inputs in one PutInput
    out3 = np.empty(30, np.float32)
    assert ready.GetResult(out3) == "batch of 3"
    np.testing.assert_array_equal(out3.reshape(3, 10), reference[:3])
    assert ready.GetInfo("hwtime") > 0


def test_getresult_too_small_keeps_the_result(ready, digits_x, reference):
    ready.PutInput(digits_x[:2], "two")
    ready.PutInput(digits_x[2:3], "one")
    with pytest.raises(shoal.InvalidArgumentError, match="room for 10"):
        ready.GetResult(np.empty(10, np.float32))
    out = np.empty(20, np.float32)
    assert ready.GetResult(out) == "two"
    np.testing.assert_array_equal(out.reshape(2, 10), reference[:2])
    assert ready.GetResult(out[:10]) == "one"


def test_nonblocking_getresult(ready, digits_x, reference):
    ready.SetFlag("blockingmode", "0")
    batch = np.ascontiguousarray(np.tile(digits_x, (50, 1, 1, 1)))  # 3200 inputs
    out = np.zeros(batch.shape[0] * 10, np.float32)
    saw_none = False
    for _ in range(5):
        ready.PutInput(batch, "big")
        r = ready.GetResult(out)
        if r is None:
            saw_none = True
            assert not out.any()  # untouched
            ready.SetFlag("blockingmode", 1)
            r = ready.GetResult(out)
            ready.SetFlag("blockingmode", 0)
        assert r == "big"
        np.testing.assert_array_equal(out[:640].reshape(64, 10), reference)
        if saw_none:
            break
        out[:] = 0
    assert saw_none


def test_lone_thread_putinput_on_a_full_queue_raises(ready, digits_x, monkeypatch):
    monkeypatch.setattr(fwdnxt, "_LONE_PUT_GRACE_S", 0.1)
    cap = ready.runtime.queue_capacity
    for i in range(cap):
        ready.PutInput(digits_x[i], i)
    with pytest.raises(shoal.InvalidArgumentError, match="call GetResult first"):
        ready.PutInput(digits_x[0], "one too many")  # the SDK hung here
    out = np.empty(10, np.float32)
    assert [ready.GetResult(out) for _ in range(cap)] == list(range(cap))


def test_putinput_waits_for_a_consumer_thread(ready, digits_x, reference, monkeypatch):
    monkeypatch.setattr(fwdnxt, "_LONE_PUT_GRACE_S", 30.0)  # a loaded machine is slow
    n = 60
    got, errors = [], []

    def consumer():
        out = np.empty(10, np.float32)
        try:
            while len(got) < n:
                if ready.runtime.pending == 0:
                    time.sleep(0.001)
                    continue
                obj = ready.GetResult(out)
                np.testing.assert_array_equal(out, reference[obj % 64])
                got.append(obj)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=consumer, daemon=True)
    t.start()
    for i in range(n):  # far beyond the queue's capacity
        ready.PutInput(digits_x[i % 64], i)
    t.join(JOIN_S)
    assert not t.is_alive(), "deadlock"
    assert not errors, errors
    assert got == list(range(n))


# ------------------------------------------------------- SetFlag/GetInfo ----

def test_setflag(sdks, digits_model, tmp_path, capsys, digits_x, reference):
    sf = sdks()
    with pytest.raises(shoal.InvalidArgumentError, match="unknown flag 'turbo'.*nobatch"):
        sf.SetFlag("turbo", "1")
    with pytest.raises(shoal.InvalidArgumentError, match="integer"):
        sf.SetFlag("nobatch", "yes")
    with pytest.raises(TypeError):
        sf.SetFlag(3, "1")
    for name in ("hwlinear", "convalgo", "paddingalgo", "max_instr", "options"):
        with pytest.warns(RuntimeWarning, match="no effect"):
            sf.SetFlag(name, "1")
        assert sf.GetFlag(name) == "1"
    sf.SetFlag("nobatch", "1")
    sf.SetFlag("debug", "bn")
    path = str(tmp_path / "split.bin")
    assert sf.Compile("8x8x1", digits_model, path, 1, 2) == 10
    assert shoal.load(path).split
    assert sf.GetInfo("numbatch") == 1  # the clusters share one input
    sf.Init(path, "")
    assert "split" in sf.runtime.plan()
    capsys.readouterr()
    out = np.empty(10, np.float32)
    sf.Run(digits_x[0], out)
    np.testing.assert_allclose(out, reference[0], rtol=1e-5, atol=1e-5)
    printed = capsys.readouterr().out
    assert "Conv" in printed and "Gemm" in printed and "total" in printed  # debug 'n'
    sf.SetFlag("debug", "")
    sf.Run(digits_x[0], out)
    assert capsys.readouterr().out == ""


def test_getinfo(ready):
    info = {k: ready.GetInfo(k) for k in ("hwtime", "numcluster", "numfpga", "numbatch",
                                          "freq", "maxcluster", "maxfpga", "version")}
    assert isinstance(info["hwtime"], float)
    assert (info["numcluster"], info["numfpga"], info["numbatch"]) == (2, 1, 2)
    assert isinstance(info["freq"], int) and info["freq"] >= 0
    assert info["maxfpga"] == len(shoal.devices("cpu"))
    assert info["maxcluster"] == max(d.clusters for d in shoal.devices("cpu"))
    assert info["version"] == shoal.__version__
    with pytest.raises(shoal.InvalidArgumentError, match="unknown name 'speed'"):
        ready.GetInfo("speed")
    assert fwdnxt.FWDNXT().GetInfo("numfpga") == 0  # nothing compiled yet


def test_microndla_alias():
    assert microndla.MDLA is fwdnxt.FWDNXT


# ------------------------------------------------------------ concurrency ----

def test_two_objects_on_two_devices_from_two_threads(sdks, make_onnx, digits_model, tmp_path,
                                                     two_devices, digits_x, reference):
    """The SDK deadlocked when two objects shared the hardware; here each
    object owns a device and both run at once, in both call styles."""
    second = save_model(small_model(make_onnx, 5), tmp_path / "second.onnx")
    ref2 = shoal.Runtime(shoal.compile(second, shape="8x8x1"), devices=[0],
                         share_devices=True).run(digits_x)[0]
    sf1, sf2 = sdks(), microndla.MDLA()
    sf1.Compile("8x8x1", digits_model, str(tmp_path / "1.bin"), 1, 1)
    sf2.Compile2("8x8x1", second, str(tmp_path / "2.bin"), 1, 1)
    sf1.Init(str(tmp_path / "1.bin"), "")
    sf2.Init(str(tmp_path / "2.bin"), "")
    assert sorted(sf1.devices + sf2.devices) == [0, 1]
    errors = []

    def work(sf, ref, size):
        try:
            out = np.empty(3 * size, np.float32)
            for k in range(40):
                s = k % 50
                sf.Run(digits_x[s:s + 3], out)
                np.testing.assert_array_equal(out.reshape(3, size), ref[s:s + 3])
                sf.PutInput(digits_x[s], ("a", s))
                sf.PutInput(digits_x[s + 1], ("b", s + 1))
                one = np.empty(size, np.float32)
                for tag in ("a", "b"):
                    got = sf.GetResult(one)
                    assert got[0] == tag
                    np.testing.assert_array_equal(one, ref[got[1]])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=a, daemon=True)
               for a in ((sf1, reference, 10), (sf2, ref2, 3))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert not errors, errors
    sf2.Free()


def test_objects_are_released_when_dropped(digits_model, tmp_path, two_devices):
    path = str(tmp_path / "p.bin")
    sf = fwdnxt.FWDNXT()
    sf.Compile("8x8x1", digits_model, path, 2, 1)
    sf.Init(path, "")
    del sf  # without Free: the finalizer gives the devices back
    import gc

    gc.collect()
    again = fwdnxt.FWDNXT()
    again.Init(path, "")
    assert again.devices == [0, 1]
    again.Free()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again.Free()
