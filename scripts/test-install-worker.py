"""A Python and Dask worker on a runtime-only shoal (scripts/test-install.sh
runs it with libshoal-runtime and python3-shoal unpacked, without shoal and
python3-shoal-compiler, as docs/INSTALL.md tells a worker to install them).

    test-install-worker.py ROOT PROGRAM DIGITS_DIR

ROOT: where the packages were unpacked; PROGRAM: the digits program, compiled
elsewhere. Checks that shoal imports and runs the program from ROOT, on its
own and on a Dask worker process started from ROOT, without loading the
compiler or its libraries, and that shoal.compile names the missing package.
"""

import importlib.util
import sys

import numpy as np

import shoal
import shoal.dask
from shoal.dask.local import LocalProcessCluster

COMPILER_LIBS = ("libshoal_compiler", "libonnx", "libprotobuf")


def fail(message):
    sys.exit(f"test-install-worker: FAIL: {message}")


def loaded():
    """What this process has of shoal: its file, the compiler libraries
    mapped, and whether the compiler extension was imported."""
    maps = open("/proc/self/maps").read()
    return {"file": shoal.__file__, "libs": [lib for lib in COMPILER_LIBS if lib in maps],
            "compiler_module": "shoal._shoal_compiler" in sys.modules}


def check_process(what, info, root):
    if not info["file"].startswith(root + "/"):
        fail(f"{what} imported shoal from {info['file']}, not from {root}")
    if info["libs"] or info["compiler_module"]:
        fail(f"{what} loaded the compiler: {info}")


def main(root, program_path, digits):
    if importlib.util.find_spec("shoal._shoal_compiler") is not None:
        fail("the runtime-only install has shoal._shoal_compiler")
    x = np.load(f"{digits}/heldout_x.npy")
    labels = np.load(f"{digits}/heldout_y.npy")
    program = shoal.load(program_path)
    with shoal.Runtime(program) as rt:
        (y,) = rt.run(x)
    right = int((y.argmax(1) == labels).sum())
    print(f"runtime-only shoal {shoal.__version__}: accuracy {100 * right / len(labels):.2f}% "
          f"({right}/{len(labels)})")

    try:
        shoal.compile(f"{digits}/digits_cnn.onnx", shape="8x8x1")
        fail("shoal.compile worked without the compiler")
    except shoal.UnsupportedError as e:
        if "python3-shoal-compiler" not in str(e):
            fail(f"shoal.compile's error does not name the package: {e}")
        print(f"shoal.compile: {type(e).__name__}: {str(e)[:60]}...")

    # A Dask worker process started from ROOT (`python -m shoal.dask worker`).
    with LocalProcessCluster({"w0": "cpu:0"}, env={"SHOAL_CPU_DEVICES": "1"},
                             start_timeout=120) as cluster:
        client = cluster.client()
        with shoal.dask.DaskRuntime(client, program, progress=False) as drt:
            (yd,) = drt.run(x)
        workers = client.run(loaded)
    if not np.array_equal(yd, y):
        fail(f"the Dask worker's outputs differ by up to {np.abs(yd - y).max()}")
    if len(workers) != 1:
        fail(f"expected one worker, got {workers}")
    for info in workers.values():
        check_process("the Dask worker", info, root)
    check_process("this process", loaded(), root)
    print(f"Dask worker (runtime only): {len(yd)} outputs equal the local run's")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        fail(__doc__)
    main(*sys.argv[1:])
