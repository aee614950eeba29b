"""torchvision CNNs with seeded random weights, end to end against PyTorch.

Each model is exported once by scripts/export_torchvision.py into
build_dir/models (conftest's build_dir: $SHOAL_BUILD_DIR or build/; a cache
kept across runs), with a seeded random input and PyTorch's output for it. Each model is compiled with shoal (its own
static input shape [1,3,224,224]) and checked:

  * accuracy: max |shoal - torch| <= 1e-4 * (max - min of torch's output)
    + 1e-5, over all 1000 outputs;
  * save -> load -> run gives outputs identical (np.array_equal) to the
    in-memory program's;
  * a batch of 2 (the input stacked with its negation) gives, per sample,
    the batch-1 results within the same tolerance.

resnet50 is marked `slow` (deselect with -m "not slow"); all four together
take a few minutes on 2 cores, mostly export and compile, the first time.
"""

import subprocess
import sys

import numpy as np
import pytest

import shoal

SEED = 0
REL_TOL = 1e-4
ABS_TOL = 1e-5

MODELS = [
    "squeezenet1_1",
    "mobilenet_v2",
    "resnet18",
    pytest.param("resnet50", marks=pytest.mark.slow),
]


def _tolerance(reference):
    return REL_TOL * float(reference.max() - reference.min()) + ABS_TOL


def _max_diff(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


@pytest.fixture(scope="session")
def models_dir(build_dir):
    d = build_dir / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="session")
def export(source_dir, models_dir):
    """export(name) -> (onnx path, input, expected); exports once, cached."""
    done = {}

    def get(name):
        if name not in done:
            script = source_dir / "scripts" / "export_torchvision.py"
            res = subprocess.run(
                [sys.executable, str(script), "--out", str(models_dir),
                 "--models", name, "--seed", str(SEED)],
                capture_output=True, text=True, timeout=900)
            assert res.returncode == 0, (
                f"exporting {name} failed:\n{res.stdout}\n{res.stderr}")
            x = np.load(models_dir / f"{name}_input.npy")
            expected = np.load(models_dir / f"{name}_expected.npy")
            done[name] = (models_dir / f"{name}.onnx", x, expected)
        return done[name]

    return get


@pytest.fixture(scope="module", params=MODELS)
def model(request, export):
    """One model at a time: its compiled program, input and expected output."""
    name = request.param
    onnx_path, x, expected = export(name)
    program = shoal.compile(str(onnx_path))
    runtime = shoal.Runtime(program)
    (y,) = runtime.run(x)
    return {"name": name, "program": program, "runtime": runtime, "x": x,
            "expected": expected, "y": np.array(y, copy=True)}


def test_program_shapes(model):
    program = model["program"]
    assert [tuple(i.shape) for i in program.inputs] == [(1, 3, 224, 224)]
    assert [tuple(o.shape) for o in program.outputs] == [(1, 1000)]
    assert program.output_size(0) == 1000


def test_matches_torch(model):
    y, expected = model["y"], model["expected"]
    assert y.dtype == np.float32
    assert np.isfinite(y).all()
    diff, tol = _max_diff(y, expected), _tolerance(expected)
    assert diff <= tol, f"{model['name']}: max |diff| {diff:.3g} > {tol:.3g}"


def test_save_load_identical(model, tmp_path):
    path = tmp_path / f"{model['name']}.shoal"
    model["program"].save(str(path))
    loaded = shoal.load(str(path))
    assert [tuple(o.shape) for o in loaded.outputs] == [(1, 1000)]
    (y,) = shoal.Runtime(loaded).run(model["x"])
    assert np.array_equal(y, model["y"]), model["name"]


def test_batch_of_two(model):
    rt, x = model["runtime"], model["x"]
    (y_neg,) = rt.run(np.ascontiguousarray(-x))
    y_neg = np.array(y_neg, copy=True)
    # The reference output depends on the input (random weights can make a
    # network's output a constant; then this test would check only a bias).
    (ref_neg,) = model["runtime"].run(np.ascontiguousarray(-x))
    spread = _max_diff(model["expected"], np.asarray(ref_neg))
    rng = float(model["expected"].max() - model["expected"].min())
    assert spread > 0.01 * rng, (
        f"{model['name']}: outputs for x and -x differ by {spread:.3g}, under 1% of the "
        f"output range {rng:.3g}")
    (y2,) = rt.run(np.concatenate([x, -x]))
    assert y2.shape == (2, 1000)
    for i, ref in enumerate((model["y"], y_neg)):
        diff, tol = _max_diff(y2[i:i + 1], ref), _tolerance(ref)
        assert diff <= tol, (
            f"{model['name']}: batch-2 sample {i} differs from batch 1 by "
            f"{diff:.3g} > {tol:.3g}")


def test_stacked_batch(model):
    """A batch of 5 runs stacked (several samples per kernel run, the first
    layers possibly a sample at a time): each sample equals its own run
    through a runtime that takes one sample at a time."""
    rt, x = model["runtime"], model["x"]
    assert "inputs at once through each kernel" in rt.plan(), rt.plan()
    rng = np.random.default_rng(1)
    xs = np.concatenate([x] + [rng.standard_normal(x.shape).astype(np.float32)
                               for _ in range(4)])
    (y5,) = rt.run(xs)
    one = shoal.Runtime(model["program"], micro_batch=1)
    assert "inputs at once through each kernel" not in one.plan(), one.plan()
    for i in range(5):
        (ref,) = one.run(xs[i:i + 1])
        diff, tol = _max_diff(y5[i:i + 1], ref), _tolerance(ref)
        assert diff <= tol, (
            f"{model['name']}: stacked sample {i} differs by {diff:.3g} > {tol:.3g}")
