"""int8 quantization from the C API (shoal_quantize), which C and C++ callers
share (shoal::quantize runs the Python quantizer in a child process): a
calibrated QDQ model that compiles to int8 layers, the quantizer's errors as
status codes with its message, and nothing written on failure. Through ctypes
on the built libshoal, with PYTHONPATH unset so that the library finds its
own Python package."""

import ctypes

import numpy as np
import pytest

import shoal


@pytest.fixture
def capi(build_dir, monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)  # the child finds build/python itself
    lib = ctypes.CDLL(str(build_dir / "lib" / "libshoal.so"))
    lib.shoal_quantize.argtypes = [ctypes.c_char_p] * 4
    lib.shoal_quantize.restype = ctypes.c_int
    lib.shoal_last_error.restype = ctypes.c_char_p
    return lib


def _b(p):
    return str(p).encode()


def test_shoal_quantize_writes_an_int8_model(capi, digits_model, tmp_path):
    x = np.load(digits_model.parent / "heldout_x.npy").astype(np.float32)
    np.save(tmp_path / "cal.npy", x[:100])
    out = tmp_path / "d.qdq.onnx"
    rc = capi.shoal_quantize(_b(digits_model), _b(tmp_path / "cal.npy"), b"percentile", _b(out))
    assert rc == 0, capi.shoal_last_error()
    program = shoal.compile(str(out))
    assert "precision: 6 layers int8" in program.describe(), program.describe()
    (y,) = shoal.Runtime(program).run(x[100:])
    labels = np.load(digits_model.parent / "heldout_y.npy")[100:]
    assert float((y.argmax(1) == labels).mean()) > 0.95


def test_shoal_quantize_errors(capi, digits_model, tmp_path, monkeypatch):
    out = tmp_path / "bad.qdq.onnx"
    # Calibration samples of the wrong shape: the quantizer's message.
    np.save(tmp_path / "wrong.npy", np.zeros((4, 3, 8, 8), np.float32))
    rc = capi.shoal_quantize(_b(digits_model), _b(tmp_path / "wrong.npy"), None, _b(out))
    assert rc == -1, rc  # SHOAL_ERR_INVALID_ARGUMENT
    assert b"shape" in capi.shoal_last_error(), capi.shoal_last_error()
    # A missing calibration file, an unknown method.
    rc = capi.shoal_quantize(_b(digits_model), _b(tmp_path / "none.npy"), None, _b(out))
    assert rc == -1 and b"none.npy" in capi.shoal_last_error(), capi.shoal_last_error()
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).random((8, 1, 8, 8), np.float32))
    rc = capi.shoal_quantize(_b(digits_model), _b(tmp_path / "cal.npy"), b"median", _b(out))
    assert rc == -1 and b"'median' is not one of minmax" in capi.shoal_last_error()
    # No interpreter: SHOAL_ERR_UNSUPPORTED naming what it needs.
    monkeypatch.setenv("SHOAL_PYTHON", str(tmp_path / "no-python"))
    rc = capi.shoal_quantize(_b(digits_model), _b(tmp_path / "cal.npy"), None, _b(out))
    assert rc == -2, rc
    assert b"python3-onnx" in capi.shoal_last_error(), capi.shoal_last_error()
    assert not out.exists()
    # Null arguments.
    assert capi.shoal_quantize(None, _b(tmp_path / "cal.npy"), None, _b(out)) == -1
