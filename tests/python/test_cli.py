"""Bad input through the command line: build/bin/shoal run as a subprocess.

Every failure must exit with status 1 ("shoal: error: <message naming what
was wrong>") or 2 (a usage error), never crash (a negative status is a
signal), and must not leave a half-written output behind.
"""

import os
import subprocess

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

F = TensorProto.FLOAT
GIB = 1 << 30


@pytest.fixture(scope="module")
def cli(build_dir):
    path = build_dir / "bin" / "shoal"
    if not path.exists():
        pytest.skip(f"{path} is missing (build first)")
    return path


def shoal_cli(cli, *args, env=None, timeout=120):
    e = dict(os.environ)
    e.update(env or {})
    res = subprocess.run([str(cli), *map(str, args)], capture_output=True, text=True,
                         timeout=timeout, env=e)
    assert res.returncode >= 0, f"killed by signal {-res.returncode}: {res.stderr}"
    return res


def expect_error(res, *words, status=1):
    assert res.returncode == status, res.stdout + res.stderr
    for w in words:
        assert w in res.stderr, f"stderr lacks {w!r}: {res.stderr}"
    if status == 1:
        assert res.stderr.startswith("shoal: error: "), res.stderr


def model_file(path, nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(
        nodes, "cli",
        [helper.make_tensor_value_info(*i) for i in inputs],
        [helper.make_tensor_value_info(*o) for o in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path.write_bytes(m.SerializeToString())
    return path


@pytest.fixture(scope="module")
def relu_program(cli, tmp_path_factory):
    """A one-op program with input x [1, 3, 4, 4]."""
    d = tmp_path_factory.mktemp("cli")
    model = model_file(d / "relu.onnx", [helper.make_node("Relu", ["x"], ["y"])],
                       [("x", F, [1, 3, 4, 4])], [("y", F, [1, 3, 4, 4])])
    out = d / "relu.shoal"
    res = shoal_cli(cli, "compile", model, "-o", out)
    assert res.returncode == 0, res.stderr
    return out


# ------------------------------------------------------------ usage ----

def test_usage_errors(cli, tmp_path):
    expect_error(shoal_cli(cli), "usage", status=2)
    expect_error(shoal_cli(cli, "frobnicate"), "unknown command 'frobnicate'", status=2)
    expect_error(shoal_cli(cli, "compile"), "missing argument", status=2)
    model = tmp_path / "m.onnx"
    expect_error(shoal_cli(cli, "compile", model, "--shape", "abc"),
                 "--shape: bad input shape 'abc'", status=2)
    expect_error(shoal_cli(cli, "compile", model, "--shape", "1,-3,4,4"),
                 "bad input shape '1,-3,4,4'", status=2)
    expect_error(shoal_cli(cli, "compile", model, "--clusters", "-1"),
                 "--clusters expects an integer >= 0, got '-1'", status=2)
    expect_error(shoal_cli(cli, "compile", model, "--devices", "99999999999"),
                 "--devices expects an integer", status=2)
    expect_error(shoal_cli(cli, "run", "p.shoal"), "missing argument", status=2)
    expect_error(shoal_cli(cli, "run", "p.shoal", "x.npy", "--repeat", "-1"),
                 "--repeat", status=2)


# ------------------------------------------------------ model files ----

def test_compile_bad_model_files(cli, tmp_path):
    out = tmp_path / "out.shoal"
    expect_error(shoal_cli(cli, "compile", tmp_path / "missing.onnx", "-o", out),
                 "cannot open model file", "missing.onnx")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    expect_error(shoal_cli(cli, "compile", empty, "-o", out), "empty.onnx", "empty")
    expect_error(shoal_cli(cli, "compile", tmp_path, "-o", out), "is a directory")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\xff\xfe definitely not protobuf \x00\x01" * 8)
    expect_error(shoal_cli(cli, "compile", garbage, "-o", out), "garbage.onnx",
                 "not a valid ONNX model")
    huge = tmp_path / "huge.onnx"
    with open(huge, "wb") as f:
        f.truncate(3 * GIB)  # sparse: nothing is written
    expect_error(shoal_cli(cli, "compile", huge, "-o", out), "huge.onnx", "over 2 GiB")
    assert not out.exists()


def test_compile_truncated_model(cli, digits_model, tmp_path):
    half = tmp_path / "half.onnx"
    data = digits_model.read_bytes()
    half.write_bytes(data[: len(data) // 2])
    expect_error(shoal_cli(cli, "compile", half, "-o", tmp_path / "o.shoal"), "half.onnx")


def test_compile_broken_models(cli, tmp_path):
    out = tmp_path / "out.shoal"
    cycle = model_file(tmp_path / "cycle.onnx",
                       [helper.make_node("Relu", ["b"], ["a"], name="n1"),
                        helper.make_node("Add", ["x", "a"], ["b"], name="n2")],
                       [("x", F, [1, 4])], [("b", F, [1, 4])])
    expect_error(shoal_cli(cli, "compile", cycle, "-o", out), "cycle.onnx",
                 "topologically sorted")
    dangling = model_file(tmp_path / "dangling.onnx",
                          [helper.make_node("Add", ["x", "ghost"], ["y"], name="n1")],
                          [("x", F, [1, 4])], [("y", F, [1, 4])])
    expect_error(shoal_cli(cli, "compile", dangling, "-o", out), "'ghost'")
    w = np.ones((2, 1, 3, 3), np.float32)
    strides = model_file(tmp_path / "strides.onnx",
                         [helper.make_node("Conv", ["x", "w"], ["y"], strides=[0, 0],
                                           name="c0")],
                         [("x", F, [1, 1, 5, 5])], [("y", F, ["a", "b", "c", "d"])],
                         [("w", w)])
    expect_error(shoal_cli(cli, "compile", strides, "-o", out), "c0",
                 "'strides' = [0,0] must be >= 1")
    relu = model_file(tmp_path / "relu.onnx", [helper.make_node("Relu", ["x"], ["y"])],
                      [("x", F, [1, "H", "W"])], [("y", F, [1, "H", "W"])])
    expect_error(shoal_cli(cli, "compile", relu, "-o", out, "--shape", "1,2147483648,2147483648"),
                 "2^62 bytes or more")
    assert not out.exists()


# ---------------------------------------------------- program files ----

def test_bad_program_files(cli, relu_program, tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 3, 4, 4), np.float32))
    expect_error(shoal_cli(cli, "inspect", tmp_path / "missing.shoal"), "missing.shoal",
                 "No such file")
    expect_error(shoal_cli(cli, "run", tmp_path / "missing.shoal", x), "missing.shoal")
    empty = tmp_path / "empty.shoal"
    empty.write_bytes(b"")
    expect_error(shoal_cli(cli, "inspect", empty), "empty.shoal", "empty")
    expect_error(shoal_cli(cli, "inspect", tmp_path), "is a directory")
    data = relu_program.read_bytes()
    half = tmp_path / "half.shoal"
    half.write_bytes(data[: len(data) // 2])
    expect_error(shoal_cli(cli, "run", half, x), "half.shoal", "truncated")
    future = bytearray(data)
    future[8] = 9  # format version
    fut = tmp_path / "future.shoal"
    fut.write_bytes(bytes(future))
    expect_error(shoal_cli(cli, "inspect", fut), "future.shoal", "version 9 (written by shoal",
                 "is newer than this shoal")
    huge = tmp_path / "huge.shoal"
    with open(huge, "wb") as f:
        f.truncate(3 * GIB)
    expect_error(shoal_cli(cli, "run", huge, x), "huge.shoal", "bad magic")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x40
    bad = tmp_path / "flipped.shoal"
    bad.write_bytes(bytes(flipped))
    expect_error(shoal_cli(cli, "inspect", bad), "flipped.shoal", "checksum mismatch")


# -------------------------------------------------------- .npy inputs ----

def test_bad_npy_inputs(cli, relu_program, tmp_path):
    out = tmp_path / "y.npy"

    def run(arr_or_bytes, name="x.npy"):
        p = tmp_path / name
        if isinstance(arr_or_bytes, bytes):
            p.write_bytes(arr_or_bytes)
        else:
            np.save(p, arr_or_bytes)
        return shoal_cli(cli, "run", relu_program, p, "-o", out)

    expect_error(run(np.zeros((2, 3, 4, 5), np.float32)), "has shape [2,3,4,5]",
                 "expects [N,3,4,4]")
    expect_error(run(np.zeros((2, 3, 4, 4), np.complex64)), "unsupported dtype '<c8'")
    expect_error(run(np.array(["a", "b"])), "unsupported dtype")
    expect_error(run(b""), "x.npy", "not a .npy file")
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((2, 3, 4, 4), np.float32))
    expect_error(run(good.read_bytes()[:100]), "truncated")
    expect_error(run(good.read_bytes()[:-8]), "truncated data")
    expect_error(shoal_cli(cli, "run", relu_program, tmp_path / "nope.npy"), "cannot open",
                 "nope.npy")
    expect_error(shoal_cli(cli, "run", relu_program, good, good), "1 input")
    assert not out.exists()


def test_nan_inf_inputs_run(cli, relu_program, tmp_path):
    x = np.zeros((2, 3, 4, 4), np.float32)
    x[0, 0, 0, 1] = np.inf
    x[1, 2, 3, 3] = -np.inf
    x[1, 0, 0, 0] = np.nan
    p = tmp_path / "x.npy"
    np.save(p, x)
    out = tmp_path / "y.npy"
    res = shoal_cli(cli, "run", relu_program, p, "-o", out)
    assert res.returncode == 0, res.stderr
    y = np.load(out)
    assert y.shape == x.shape and y[0, 0, 0, 1] == np.inf and y[1, 2, 3, 3] == 0
    res = shoal_cli(cli, "run", relu_program, p, "--json")
    assert res.returncode == 0 and "null" in res.stdout  # JSON has no Inf


def test_bad_cpu_devices_variable(cli, relu_program, tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 3, 4, 4), np.float32))
    for value, words in ((",", "device 0 has no cores"), ("0,,0", "device 1 has no cores"),
                         (";", "names no cores"), ("abc", "bad core list 'abc'"),
                         ("9999", "devices"), ("0", "core 0 alone is written 0-0")):
        expect_error(shoal_cli(cli, "run", relu_program, x, env={"SHOAL_CPU_DEVICES": value}),
                     "SHOAL_CPU_DEVICES", words)
        expect_error(shoal_cli(cli, "devices", env={"SHOAL_CPU_DEVICES": value}), words)


def test_compile_modes(cli, digits_model, tmp_path):
    import json

    out = tmp_path / "d.shoal"
    for args, mode in ((["--clusters", "2"], "auto"), (["--mode", "batch"], "batch"),
                       (["--split"], "split"), (["-m", "split", "--split"], "split")):
        res = shoal_cli(cli, "compile", digits_model, "-o", out, "--shape", "8x8x1", *args)
        assert res.returncode == 0, res.stderr
        assert f"{mode} mode" in res.stdout
        info = json.loads(shoal_cli(cli, "inspect", out, "--json").stdout)
        assert info["mode"] == mode and info["split"] == (mode == "split")
    expect_error(shoal_cli(cli, "compile", digits_model, "-o", out, "--mode", "fast"),
                 "--mode expects auto, batch or split", status=2)
    expect_error(shoal_cli(cli, "compile", digits_model, "-o", out, "--mode", "batch", "--split"),
                 "--split contradicts --mode batch", status=2)
