"""Backends as plug-ins, from Python and the command line: device kinds and
names, the ref backend (reference kernels, memory the runtime cannot
address), runtimes across kinds, SHOAL_DEVICE kind:index, and the
layer-by-layer comparison of two devices (shoal debug-compare)."""

import json
import os
import subprocess

import numpy as np
import pytest

import shoal


@pytest.fixture(scope="module")
def cli(build_dir):
    return str(build_dir / "bin" / "shoal")


@pytest.fixture(scope="module")
def digits(digits_model, tmp_path_factory):
    program = shoal.compile(digits_model, shape="8x8x1")
    d = tmp_path_factory.mktemp("backends")
    path = d / "digits.shoal"
    program.save(str(path))
    x = np.random.default_rng(3).random((5, 1, 8, 8), dtype=np.float32)
    np.save(d / "x.npy", x)
    return program, path, x, d / "x.npy"


def _run(cli, *args, env=None):
    return subprocess.run([cli, *map(str, args)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **(env or {})))


def test_cli_lists_every_kind(cli):
    r = _run(cli, "devices", "--json")
    assert r.returncode == 0, r.stderr
    devs = json.loads(r.stdout)
    assert [d["name"] for d in devs] == [d.name for d in shoal.devices()]
    assert devs[-1]["kind"] == "ref" and devs[-1]["host_addressable"] is False
    table = _run(cli, "devices").stdout
    assert "cpu:0" in table and "ref:0" in table and "own memory" in table


def test_cli_run_on_named_devices(cli, digits, tmp_path):
    program, path, x, xpath = digits
    want = shoal.Runtime(program).run(x)[0]
    for devices in ("ref:0", "cpu:0,ref:0"):
        out = tmp_path / f"{devices}.npy"
        r = _run(cli, "run", path, xpath, "--devices", devices, "-o", out)
        assert r.returncode == 0, r.stderr
        np.testing.assert_allclose(np.load(out), want, rtol=1e-4, atol=1e-5)
    r = _run(cli, "run", path, xpath, "--devices", "gpu:0")
    assert r.returncode == 1 and "no device 'gpu:0'" in r.stderr and "ref:0" in r.stderr


def test_cli_compiles_per_target(cli, digits, digits_model, tmp_path):
    """shoal compile --target ref: plain weights, recorded as the target; ref
    devices run it, cpu devices refuse it naming the target."""
    program, _, x, xpath = digits
    want = shoal.Runtime(program).run(x)[0]
    ref_path = tmp_path / "digits_ref.shoal"
    r = _run(cli, "compile", digits_model, "--target", "ref", "-o", ref_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(_run(cli, "inspect", ref_path, "--json").stdout)
    assert info["target"] == "ref"
    assert "packed weights: 0 tensors" in _run(cli, "inspect", ref_path).stdout
    out = tmp_path / "y.npy"
    r = _run(cli, "run", ref_path, xpath, "--devices", "ref:0", "-o", out)
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(np.load(out), want, rtol=1e-4, atol=1e-5)
    r = _run(cli, "run", ref_path, xpath, "--devices", "cpu:0", "-o", out)
    assert r.returncode == 1 and "target 'ref'" in r.stderr and "cpu:0" in r.stderr, r.stderr
    r = _run(cli, "compile", digits_model, "--target", "gpu", "-o", tmp_path / "g.shoal")
    assert r.returncode == 1 and "target 'gpu'" in r.stderr and "cpu, ref" in r.stderr, r.stderr
    assert not (tmp_path / "g.shoal").exists()


def test_python_compiles_per_target_and_reports_program_info(digits, digits_model):
    """shoal.compile(target=...), Program.target and Program.info() from
    Python, as the CLI has them; Device.compute_unit names a cluster's unit."""
    program, _, x, _ = digits
    want = shoal.Runtime(program).run(x)[0]
    assert program.target == "cpu"
    ref_program = shoal.compile(digits_model, shape="8x8x1", target="ref")
    info = ref_program.info()
    assert info["target"] == "ref" and ref_program.target == "ref"
    assert info["producer"].startswith("shoal ") and info["format_version"] >= 2
    assert len(info["layers"]) == ref_program.num_instructions
    convs = [layer for layer in info["layers"] if layer["op"] == "Conv"]
    assert convs and all(layer["flops"] > 0 and layer["precision"] == "f32" for layer in convs)
    assert convs[0]["inputs"][0].shape == (1, 1, 8, 8)  # the model's input, one sample
    assert convs[0]["flops"] == 2 * 16 * 8 * 8 * 9  # 16 3x3 filters over one 8x8 channel
    with shoal.Runtime(ref_program, devices=["ref:0"]) as rt:
        np.testing.assert_allclose(rt.run(x)[0], want, rtol=1e-4, atol=1e-5)
    with pytest.raises(shoal.InvalidArgumentError, match="target 'ref'"):
        shoal.Runtime(ref_program, devices=["cpu:0"])
    with pytest.raises(shoal.InvalidArgumentError, match="target 'gpu'"):
        shoal.compile(digits_model, shape="8x8x1", target="gpu")
    cpu = shoal.devices("cpu")[0]
    assert cpu.compute_unit == "core" and cpu.to_dict()["compute_unit"] == "core"


def test_runtime_takes_names_ids_and_devices(digits):
    program, _, x, _ = digits
    want = shoal.Runtime(program).run(x)[0]
    ref = shoal.devices("ref")[0]
    for devices in (["ref:0"], [ref], [ref.id], "ref:0", ["cpu:0", ref]):
        with shoal.Runtime(program, devices=devices) as rt:
            assert "ref:0" in rt.plan()
            np.testing.assert_allclose(rt.run(x)[0], want, rtol=1e-4, atol=1e-5)
    with pytest.raises(shoal.InvalidArgumentError, match="no device 'ref:7'"):
        shoal.Runtime(program, devices=["ref:7"])
    # Named devices of any kind are claimed.
    with shoal.Runtime(program, devices=["ref:0"]):
        with pytest.raises(shoal.DeviceError, match="ref:0"):
            shoal.Runtime(program, devices=["ref:0"])
    # A runtime naming no device never picks a ref device.
    with shoal.Runtime(program) as rt:
        assert "ref:" not in rt.plan()


def test_weights_are_copied_to_a_device_the_host_cannot_address(digits):
    program, _, x, _ = digits
    with shoal.Runtime(program, devices=["cpu:0", "ref:0"], weights="shared") as rt:
        plan = rt.plan()
    assert "read in place from the program by cpu:0" in plan, plan
    assert "copied into the memory of ref:0" in plan, plan


def test_dask_worker_device_names(digits, monkeypatch):
    from shoal.dask import _device
    program, _, x, _ = digits
    monkeypatch.setenv("SHOAL_DEVICE", "cpu:0,ref:0")
    devices = _device.worker_device()
    assert devices == [0, "ref:0"] and _device.describe(devices) == "cpu:0,ref:0"
    _device.check_device(devices)
    with shoal.Runtime(program, devices=devices) as rt:
        assert "[cpu:0,ref:0]" in rt.plan()
    with pytest.raises(shoal.InvalidArgumentError, match="ref:5"):
        _device.check_device(["ref:5"])


def test_run_layers_and_debug_compare(digits):
    program, path, x, _ = digits
    with shoal.Runtime(program) as rt:
        layers = rt.run_layers(x)
        (y,) = rt.run(x[:1])
    assert len(layers) == program.num_instructions
    assert all(isinstance(n, str) and isinstance(op, str) for n, op, _ in layers)
    # The last layer's output is the model's output.
    np.testing.assert_array_equal(layers[-1][2][0].reshape(y.shape), y)
    report = shoal.debug_compare(program, x, devices=("cpu:0", "ref:0"))
    assert len(report) == program.num_instructions
    assert not any(r["diverges"] for r in report), report
    assert max(r["relative"] for r in report) < 1e-4
    # With no tolerance at all the first layer whose outputs differ by a bit
    # is the one reported, and nothing after it.
    strict = shoal.debug_compare(str(path), x, tolerance=0.0)
    first = next(r for r in report if r["error"] > 0)
    assert strict[-1]["diverges"] and strict[-1]["index"] == first["index"]
    assert not any(r["diverges"] for r in strict[:-1])


def test_cli_debug_compare(cli, digits):
    program, path, _, xpath = digits
    r = _run(cli, "debug-compare", path, xpath, "--devices", "cpu:0,ref:0", "--all")
    assert r.returncode == 0, r.stderr
    assert "cpu:0 vs ref:0" in r.stdout and "no layer diverges" in r.stdout
    assert r.stdout.count("ok layer") == program.num_instructions, r.stdout
    r = _run(cli, "debug-compare", path, xpath, "--tolerance", "0")
    assert r.returncode == 1 and "DIVERGES: layer" in r.stdout, r.stdout
    r = _run(cli, "debug-compare", path, xpath, "--devices", "cpu:0")
    assert r.returncode == 2 and "two devices" in r.stderr
