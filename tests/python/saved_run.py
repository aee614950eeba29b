"""Runs a program in a child process (fresh environment variables such as
SHOAL_REFERENCE_ONLY, DNNL_MAX_CPU_ISA or SHOAL_ISA take effect there) on
inputs saved to disk; returns its output and the kernels of the named ops."""

import json
import os
import subprocess
import sys

import numpy as np

_CHILD = r"""
import json, sys, numpy as np, shoal
rt = shoal.Runtime(shoal.load(sys.argv[1]), profile=True)
(y,) = rt.run(list(np.load(sys.argv[2]).values()))
np.save(sys.argv[3], y)
ops = json.loads(sys.argv[4])
print(json.dumps([l["impl"] for l in rt.profile() if l["op"] in ops]))
"""


def run_saved(program, x, tmp_path, env=None, ops=()):
    """(output, [impl of each layer whose op is in `ops`]) of `program` on x
    (an array, or a list of them), run by a child Python with `env` added to
    this environment."""
    program.save(str(tmp_path / "saved.shoal"))
    np.savez(tmp_path / "saved_x.npz", *(x if isinstance(x, (list, tuple)) else [x]))
    res = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path / "saved.shoal"),
                          str(tmp_path / "saved_x.npz"), str(tmp_path / "saved_y.npy"),
                          json.dumps(list(ops))],
                         capture_output=True, text=True, timeout=180,
                         env=dict(os.environ, **(env or {})))
    assert res.returncode == 0, res.stderr
    return np.load(tmp_path / "saved_y.npy"), json.loads(res.stdout.strip().splitlines()[-1])
