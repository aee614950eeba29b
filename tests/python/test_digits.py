"""The main job on the bundled digits CNN (models/digits), end to end.

Runs examples/classify_digits.py's logic: compile digits_cnn.onnx with shape
"8x8x1", save, load, classify the 359 held-out digits, and compare with
PyTorch's logits (torch_logits.npy). Requirements:
  * shoal's accuracy equals PyTorch's, and every prediction matches (the
    smallest top-1/top-2 logit margin in PyTorch's logits is 0.41, far above
    the tolerance below, so this follows from it);
  * max |logit diff| <= 1e-4 * max(1, range of PyTorch's logits);
  * a saved and reloaded program gives bitwise identical outputs.
"""

import importlib.util
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import shoal

REL_TOL = 1e-4


@pytest.fixture(scope="module")
def model_dir(source_dir):
    return source_dir / "models" / "digits"


@pytest.fixture(scope="module")
def example_path(source_dir):
    return source_dir / "examples" / "classify_digits.py"


@pytest.fixture(scope="module")
def example(example_path):
    """examples/classify_digits.py, imported as a module."""
    spec = importlib.util.spec_from_file_location("classify_digits",
                                                  example_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data(example, model_dir):
    return example.load_data(str(model_dir))


@pytest.fixture(scope="module")
def program(model_dir):
    return shoal.compile(str(model_dir / "digits_cnn.onnx"), shape="8x8x1")


def _limit(torch_logits):
    return REL_TOL * max(1.0, float(torch_logits.max() - torch_logits.min()))


def test_bundled_files_are_consistent(data):
    x, y, torch_logits = data
    assert x.dtype == np.float32 and x.shape == (len(y), 1, 8, 8)
    assert y.dtype == np.int64 and torch_logits.shape == (len(y), 10)
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert (torch_logits.argmax(1) == y).mean() >= 0.95


def test_program_info(program):
    assert [tuple(i.shape) for i in program.inputs] == [(1, 1, 8, 8)]
    assert program.inputs[0].dtype == np.float32
    assert [tuple(o.shape) for o in program.outputs] == [(1, 10)]
    assert program.output_size(0) == 10


def test_main_job(example, model_dir, tmp_path):
    lines = []
    r = example.main_job(str(tmp_path / "digits.shoal"), batch=32,
                         model_dir=str(model_dir), log=lines.append)
    assert (tmp_path / "digits.shoal").is_file()
    assert r["n"] == 359
    assert r["correct"] == r["torch_correct"]
    assert r["accuracy"] == r["torch_accuracy"]
    assert r["predictions_equal"]
    limit = REL_TOL * max(1.0, r["logit_range"])
    assert r["max_abs_diff"] <= limit, (r["max_abs_diff"], limit)
    assert r["images_per_s"] > 0


# The cpu backend (the default), the ref backend (reference kernels, memory
# the runtime cannot address), and both at once in batch mode.
DEVICES = {"cpu": None, "ref": ["ref:0"], "cpu+ref": ["cpu:0", "ref:0"]}


@pytest.mark.parametrize("devices", DEVICES)
@pytest.mark.parametrize("batch", [1, 7, 64, 359])
def test_batch_sizes(example, program, data, batch, devices):
    """Any batch split (including a ragged last batch) gives the same answer,
    on every backend and on devices of two kinds sharing each batch."""
    x, y, torch_logits = data
    rt = shoal.Runtime(program, devices=DEVICES[devices])
    if devices == "cpu+ref":
        assert "[cpu:0,ref:0]" in rt.plan(), rt.plan()
    logits, _ = example.classify(rt, x, batch)
    rt.close()
    assert logits.shape == torch_logits.shape
    diff = float(np.abs(logits - torch_logits).max())
    assert diff <= _limit(torch_logits), diff
    assert (logits.argmax(1) == torch_logits.argmax(1)).all()


def test_save_load_bitwise(program, data, tmp_path):
    x, _, _ = data
    path = tmp_path / "digits.shoal"
    program.save(str(path))
    loaded = shoal.load(str(path))
    rt_a, rt_b = shoal.Runtime(program), shoal.Runtime(loaded)
    for xb in (x[:1], x[:32], x):
        (a,) = rt_a.run(xb)
        (b,) = rt_b.run(xb)
        assert a.dtype == np.float32 and a.shape == (len(xb), 10)
        assert np.array_equal(a, b)
    assert rt_b.last_run_ms >= 0
    # Loading the same file twice, and re-saving, changes nothing either.
    path2 = tmp_path / "digits2.shoal"
    loaded.save(str(path2))
    (c,) = shoal.Runtime(shoal.load(str(path2))).run(x)
    (a,) = rt_a.run(x)
    assert np.array_equal(a, c)


def test_repeated_runs_identical(program, data):
    x, _, _ = data
    rt = shoal.Runtime(program)
    (a,) = rt.run(x[:32])
    a = a.copy()
    for _ in range(3):
        (b,) = rt.run(x[:32])
        assert np.array_equal(a, b)


def _env_with_shoal():
    env = dict(os.environ)
    shoal_parent = str(pathlib.Path(shoal.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (shoal_parent, env.get("PYTHONPATH")) if p)
    return env


def test_cli(example_path, tmp_path):
    prog = tmp_path / "cli.shoal"
    res = subprocess.run(
        [sys.executable, str(example_path), "--program", str(prog), "--batch", "16"],
        env=_env_with_shoal(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "shoal accuracy" in res.stdout and "PyTorch accuracy" in res.stdout
    assert "images/s" in res.stdout
    assert prog.is_file()


def test_cli_help(example_path):
    res = subprocess.run([sys.executable, str(example_path), "--help"],
                         env=_env_with_shoal(), capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0
    assert "--program" in res.stdout and "--batch" in res.stdout
