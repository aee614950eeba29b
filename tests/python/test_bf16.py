"""precision="bf16": Conv/Gemm/MatMul on oneDNN's bf16 kernels (issue 13).

On a CPU with AVX512-BF16 or AMX-BF16 (what /proc/cpuinfo says): bf16
programs agree with float32 ones within the tolerances below, and the
profile shows that bf16 kernels ran. oneDNN's DNNL_MAX_CPU_ISA stands in for
a CPU without them: compiling for bf16, or loading a bf16 program, must then
fail naming the missing instruction sets (never emulate). On a CPU without
bf16, the positive tests assert that very error instead.

Tolerances (bf16 keeps 8 significant bits, a relative rounding error of
2^-9 per operand, accumulated over the layers):
  * digits CNN: held-out accuracy within 1 sample of float32's, logits
    within 2% of their range;
  * resnet18 (seeded random weights): signal-to-noise ratio of the outputs
    >= 30 dB (measured 41.8 dB) and the same top-1 class on 4 inputs.
"""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import shoal


def _cpu_has_bf16():
    flags = pathlib.Path("/proc/cpuinfo").read_text().split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


HAS_BF16 = _cpu_has_bf16()
NO_BF16_ENV = {"DNNL_MAX_CPU_ISA": "AVX512_CORE_VNNI"}


def _compile_bf16(model, **kw):
    """Compiles for bf16, or on a CPU without it checks the error and returns
    None (the caller then has nothing more to check)."""
    if not HAS_BF16:
        with pytest.raises(shoal.UnsupportedError, match="avx512_bf16.*amx_bf16"):
            shoal.compile(model, precision="bf16", **kw)
        return None
    return shoal.compile(model, precision="bf16", **kw)


def _bf16_layers(runtime):
    return [lay for lay in runtime.profile() if lay["op"] in ("Conv", "Gemm", "MatMul")]


def _snr_db(ref, got):
    ref = ref.astype(np.float64)
    noise = ((ref - got.astype(np.float64)) ** 2).sum()
    return 10 * np.log10((ref ** 2).sum() / noise)


def test_digits_bf16_accuracy_and_kernels(digits_model):
    p16 = _compile_bf16(digits_model)
    if p16 is None:
        return
    x = np.load(digits_model.parent / "heldout_x.npy").astype(np.float32)
    y = np.load(digits_model.parent / "heldout_y.npy")
    (a,) = shoal.Runtime(shoal.compile(digits_model)).run(x)
    rt = shoal.Runtime(p16, profile=True)
    (b,) = rt.run(x)
    acc32 = float((a.argmax(1) == y).mean())
    acc16 = float((b.argmax(1) == y).mean())
    assert abs(acc32 - acc16) <= 1.0 / len(y) + 1e-9, (acc32, acc16)
    assert np.abs(a - b).max() <= 0.02 * float(a.max() - a.min())
    assert not np.array_equal(a, b)  # bf16 really ran: it rounds
    heavy = _bf16_layers(rt)
    assert len(heavy) == 4
    for lay in heavy:
        assert lay["precision"] == "bf16", lay
        assert "bf16" in lay["impl"], lay  # e.g. onednn:brgconv:avx512_core_amx_bf16
    others = [lay for lay in rt.profile() if lay["op"] == "MaxPool"]
    assert others and all(lay["precision"] == "f32" for lay in others)
    plan = rt.plan()
    assert "precision: 4 layers bf16, 2 layers f32" in plan, plan
    text = p16.describe()
    assert text.count("[bf16]") == 4 and "Conv '/features/features.0/Conv' +Relu [bf16]" in text


def test_bf16_program_round_trip(digits_model, tmp_path):
    p16 = _compile_bf16(digits_model)
    if p16 is None:
        return
    path = tmp_path / "d.shoal"
    p16.save(str(path))
    x = np.load(digits_model.parent / "heldout_x.npy").astype(np.float32)[:8]
    (a,) = shoal.Runtime(p16).run(x)
    (b,) = shoal.Runtime(shoal.Program.load(str(path))).run(x)
    np.testing.assert_array_equal(a, b)


_NO_ISA_SCRIPT = r"""
import sys
import shoal
model, program = sys.argv[1], sys.argv[2]
for what, call in (("compile", lambda: shoal.compile(model, precision="bf16")),
                   ("load", lambda: shoal.Runtime(shoal.Program.load(program)))):
    try:
        call()
        print(what, "ran")
    except shoal.UnsupportedError as e:
        print(what, "UnsupportedError", e)
"""


def test_bf16_without_the_isa_fails_clearly(digits_model, tmp_path):
    program = tmp_path / "d16.shoal"
    if HAS_BF16:
        shoal.compile(digits_model, precision="bf16").save(str(program))
    env = dict(os.environ, **NO_BF16_ENV)
    res = subprocess.run([sys.executable, "-c", _NO_ISA_SCRIPT, str(digits_model), str(program)],
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("compile UnsupportedError"), res.stdout
    assert "avx512_bf16" in lines[0] and "amx_bf16" in lines[0], lines[0]
    assert "does not emulate" in lines[0]
    if HAS_BF16:
        assert lines[1].startswith("load UnsupportedError"), res.stdout
        assert "Conv '/features/features.0/Conv' was compiled for bf16" in lines[1]


def test_bad_precision_name(digits_model):
    with pytest.raises(ValueError, match="precision"):
        shoal.compile(digits_model, precision="fp16")
    with pytest.raises(ValueError, match="calibration"):
        shoal.compile(digits_model, precision="int8")
    with pytest.raises(ValueError, match="calibration"):
        shoal.compile(digits_model, calibration=np.zeros((1, 1, 8, 8), np.float32))


def test_cli_precision_and_inspect(digits_model, build_dir, tmp_path):
    cli = build_dir / "bin" / "shoal"
    out = tmp_path / "d.shoal"
    res = subprocess.run([str(cli), "compile", str(digits_model), "-o", str(out),
                          "--precision", "bf16"], capture_output=True, text=True, timeout=120)
    if not HAS_BF16:
        assert res.returncode == 1 and "avx512_bf16" in res.stderr, res.stderr
        return
    assert res.returncode == 0, res.stderr
    res = subprocess.run([str(cli), "inspect", str(out)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and res.stdout.count("[bf16]") == 4, res.stdout
    res = subprocess.run([str(cli), "inspect", "--json", str(out)], capture_output=True,
                         text=True, timeout=120)
    assert '"precision": {"bf16": 4, "f32": 3}' in res.stdout, res.stdout
    res = subprocess.run([str(cli), "compile", str(digits_model), "-o", str(out),
                          "--precision", "int4"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "--precision" in res.stderr, res.stderr


def test_resnet18_bf16_against_f32(build_dir):
    models = build_dir / "models"
    onnx_path = models / "resnet18.onnx"
    if not onnx_path.exists():
        script = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "export_torchvision.py"
        res = subprocess.run([sys.executable, str(script), "--out", str(models), "--models",
                              "resnet18", "--seed", "0"], capture_output=True, text=True,
                             timeout=900)
        assert res.returncode == 0, res.stdout + res.stderr
    p16 = _compile_bf16(str(onnx_path))
    if p16 is None:
        return
    x0 = np.load(models / "resnet18_input.npy")
    rng = np.random.default_rng(1)
    x = np.concatenate([x0, rng.standard_normal((3, 3, 224, 224)).astype(np.float32)])
    (a,) = shoal.Runtime(shoal.compile(str(onnx_path))).run(x)
    rt = shoal.Runtime(p16, profile=True)
    (b,) = rt.run(x)
    assert _snr_db(a, b) >= 30.0
    np.testing.assert_array_equal(a.argmax(1), b.argmax(1))
    heavy = _bf16_layers(rt)
    assert len(heavy) == 21  # 20 Conv + the classifier's Gemm
    assert all(lay["precision"] == "bf16" and "bf16" in lay["impl"] for lay in heavy), heavy
