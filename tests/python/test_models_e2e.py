"""torchvision models with seeded random weights, end to end against PyTorch.

Each model is exported once by scripts/export_torchvision.py into
build_dir/models (conftest's build_dir: $SHOAL_BUILD_DIR or build/; a cache
kept across runs), with a seeded random input and PyTorch's output for it. Each model is compiled with shoal (its own
static input shape [1,3,224,224]) and checked:

  * accuracy: max |shoal - torch| <= 1e-4 * (max - min of torch's output)
    + 1e-5, over all 1000 outputs;
  * save -> load -> run gives outputs identical (np.array_equal) to the
    in-memory program's;
  * a batch of 2 (the input stacked with its negation) gives, per sample,
    the batch-1 results within the same tolerance, and the two outputs differ
    by more than 1% of the output range (the reference depends on its input);
  * no layer runs a slow reference kernel, except where the model needs an
    op no fast kernel covers yet (SLOW_OK names them);
  * the ref backend (reference kernels only, its memory not addressable by
    the runtime) matches PyTorch within the same tolerance, and a batch
    shared by cpu:0 and ref:0 comes back in input order.

vit_b_16, swin_t, maxvit_t and resnet50 are marked `slow` (deselect with -m "not slow"); all of
them together take a few minutes on 2 cores, mostly export, the first time.
"""

import subprocess
import sys

import numpy as np
import pytest

import shoal

SEED = 0
REL_TOL = 1e-4
ABS_TOL = 1e-5

# One model per family (issue 12): plain, depthwise + squeeze-excitation
# (SiLU, HardSwish), channel shuffle, dense concatenation, ConvNeXt
# (LayerNorm, GELU, MatMul), vision transformers (attention: batched MatMul,
# Softmax; Swin's shifted windows: Mod, ScatterND folded at compile time;
# MaxViT's window and grid attention: Einsum lowered to MatMul) and
# segmentation (Resize, a 21-channel map).
MODELS = [
    "squeezenet1_1",
    "mobilenet_v2",
    "resnet18",
    "efficientnet_b0",
    "mobilenet_v3_large",
    "shufflenet_v2_x1_0",
    "densenet121",
    "convnext_tiny",
    "lraspp_mobilenet_v3_large",
    pytest.param("vit_b_16", marks=pytest.mark.slow),
    pytest.param("swin_t", marks=pytest.mark.slow),
    pytest.param("maxvit_t", marks=pytest.mark.slow),
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
    want = model["expected"].shape
    assert [tuple(i.shape) for i in program.inputs] == [(1, 3, 224, 224)]
    assert [tuple(o.shape) for o in program.outputs] == [want]
    assert program.output_size(0) == int(np.prod(want[1:]))


# Layers allowed on the reference kernels, per model: ops no fast kernel
# covers yet (see docs/PERFORMANCE.md).
SLOW_OK = {"vit_b_16": {"Gather"}, "lraspp_mobilenet_v3_large": {"Resize"}}


# Models whose samples cannot be stacked through one kernel, and the op that
# says so: the exported Resize has constant output sizes, batch included;
# ViT concatenates a constant class token to each sample.
NO_STACK = {"lraspp_mobilenet_v3_large": "Resize", "vit_b_16": "Concat",
            "swin_t": "tensor"}  # Swin's windows take dim 0


def test_every_layer_fast(model):
    plan = model["runtime"].plan()
    allowed = SLOW_OK.get(model["name"], set())
    if "every layer runs a fast kernel" in plan:
        return
    slow = plan.split("the slow reference kernels: ")[1].split(", ")
    assert all(s.split(" ")[0] in allowed for s in slow), (model["name"], slow)


def test_matches_torch(model):
    y, expected = model["y"], model["expected"]
    assert y.dtype == np.float32
    assert np.isfinite(y).all()
    diff, tol = _max_diff(y, expected), _tolerance(expected)
    assert diff <= tol, f"{model['name']}: max |diff| {diff:.3g} > {tol:.3g}"


@pytest.mark.ref_models
def test_ref_backend(model):
    """The same program on the ref backend (every layer on the reference
    kernels, in memory the runtime cannot address) matches PyTorch too; a
    batch shared by cpu:0 and ref:0 comes back in input order. Marked
    ref_models: the sanitizer job leaves these out (reference convolutions
    of whole networks under ASan take many minutes; the ref backend's
    kernels run there through the conformance suite on ref)."""
    x = model["x"]
    ref = shoal.Runtime(model["program"], devices=["ref:0"])
    assert "[ref:0]" in ref.plan() and "fast kernel" not in ref.plan(), ref.plan()
    (y,) = ref.run(x)
    ref.close()
    diff, tol = _max_diff(y, model["expected"]), _tolerance(model["expected"])
    assert diff <= tol, f"{model['name']} on ref:0: max |diff| {diff:.3g} > {tol:.3g}"
    (y_neg,) = model["runtime"].run(np.ascontiguousarray(-x))
    y_neg = np.array(y_neg, copy=True)
    both = shoal.Runtime(model["program"], devices=["cpu:0", "ref:0"], micro_batch=1)
    (y3,) = both.run(np.concatenate([x, -x, x]))
    both.close()
    for i, want in enumerate((model["y"], y_neg, model["y"])):
        diff, tol = _max_diff(y3[i:i + 1], want), _tolerance(want)
        assert diff <= tol, f"{model['name']} cpu+ref sample {i}: {diff:.3g} > {tol:.3g}"


def test_save_load_identical(model, tmp_path):
    path = tmp_path / f"{model['name']}.shoal"
    model["program"].save(str(path))
    loaded = shoal.load(str(path))
    assert [tuple(o.shape) for o in loaded.outputs] == [model["expected"].shape]
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
    assert y2.shape == (2,) + model["expected"].shape[1:]
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
    if model["name"] in NO_STACK:  # the op that blocks stacking is named
        assert f"one input at a time through the kernels ({NO_STACK[model['name']]}" in rt.plan()
    else:
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
