"""shoal without its compiler, as on a worker that has only the runtime
(python3-shoal without python3-shoal-compiler, docs/INSTALL.md): importing
shoal and running programs never loads shoal._shoal_compiler or the libraries
behind it, and shoal.compile says which package is missing.
scripts/test-install.sh checks the same on the installed Debian packages."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import shoal

# The compiler's libraries: none may be loaded by a runtime-only process.
COMPILER_LIBS = ("libshoal_compiler", "libonnx", "libprotobuf")


def test_import_does_not_load_the_compiler(digits_model, tmp_path):
    shoal.compile(digits_model, shape="8x8x1").save(tmp_path / "d.shoal")
    code = """if True:
        import json, sys, numpy as np, shoal
        rt = shoal.Runtime(shoal.load(sys.argv[1]))
        (y,) = rt.run(np.ones((3, 1, 8, 8), np.float32))
        maps = open("/proc/self/maps").read()
        print(json.dumps({"modules": sorted(m for m in sys.modules if m.startswith("shoal")),
                          "libs": [l for l in %r if l in maps], "shape": list(y.shape)}))
    """ % (COMPILER_LIBS,)
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "d.shoal")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert "shoal._shoal" in out["modules"]
    assert "shoal._shoal_compiler" not in out["modules"]
    assert out["libs"] == []
    assert out["shape"] == [3, 10]


def test_compile_without_the_compiler_names_the_package(digits_model, monkeypatch):
    program = shoal.compile(digits_model, shape="8x8x1")
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    (want,) = shoal.Runtime(program).run(x)
    # As if shoal._shoal_compiler were not installed.
    monkeypatch.delattr(shoal, "_shoal_compiler", raising=False)
    monkeypatch.setitem(sys.modules, "shoal._shoal_compiler", None)
    for model in (digits_model, digits_model.read_bytes()):
        with pytest.raises(shoal.UnsupportedError) as e:
            shoal.compile(model, shape="8x8x1")
        assert "compiler is not installed" in str(e.value)
        assert "python3-shoal-compiler" in str(e.value)
    # The runtime goes on: programs load and run.
    again = shoal.Program.from_bytes(program.to_bytes())
    (y,) = shoal.Runtime(again).run(x)
    np.testing.assert_array_equal(y, want)


def test_package_copy_without_the_compiler_extension(digits_model, source_dir, tmp_path):
    """A copy of the built package without _shoal_compiler*.so: the digits
    program compiled here runs there with the same outputs."""
    pkg = pathlib.Path(shoal.__file__).parent
    assert list(pkg.glob("_shoal_compiler*.so")), f"{pkg} has no compiler extension"
    shutil.copytree(pkg, tmp_path / "site" / "shoal",
                    ignore=shutil.ignore_patterns("_shoal_compiler*", "__pycache__"))
    shoal.compile(digits_model, shape="8x8x1").save(tmp_path / "d.shoal")
    x_path = source_dir / "models" / "digits" / "heldout_x.npy"
    (want,) = shoal.Runtime(shoal.load(tmp_path / "d.shoal")).run(np.load(x_path))
    code = """if True:
        import json, sys, numpy as np, shoal
        (y,) = shoal.Runtime(sys.argv[1]).run(np.load(sys.argv[2]))
        np.save(sys.argv[3], y)
        try:
            shoal.compile(sys.argv[4])
            error = None
        except shoal.UnsupportedError as e:
            error = str(e)
        maps = open("/proc/self/maps").read()
        print(json.dumps({"file": shoal.__file__, "error": error,
                          "libs": [l for l in %r if l in maps]}))
    """ % (COMPILER_LIBS,)
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "d.shoal"), str(x_path),
                        str(tmp_path / "y.npy"), str(digits_model)],
                       capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["file"] == str(tmp_path / "site" / "shoal" / "__init__.py")
    assert out["error"] and "python3-shoal-compiler" in out["error"]
    assert out["libs"] == []
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)
