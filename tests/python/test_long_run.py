"""Long run: the digits model 10,000 times at batch 1 must not leak.

Resident memory (from /proc/self/statm) may grow while allocators and caches
warm up; between run 1,000 and run 10,000 it must grow by less than
MARGIN_MIB (a leak of 600 bytes or more per run exceeds it). Smaller leaks of
whole output arrays are caught by counting the live Python objects too. (The
sanitizer jobs, scripts/test-sanitizers.sh, find small C++ leaks.)
"""

import gc
import os
import time

import numpy as np
import pytest

import shoal

RUNS = 10_000
WARMUP = 1_000
MARGIN_MIB = 5.0


def resident_mib():
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
@pytest.mark.skipif("asan" in os.environ.get("LD_PRELOAD", ""),
                    reason="ASan's quarantine holds freed memory (and ASan checks leaks itself)")
def test_ten_thousand_runs_do_not_leak(digits_model):
    rt = shoal.Runtime(shoal.compile(digits_model))
    x = np.load(digits_model.parent / "heldout_x.npy")[:1].astype(np.float32)
    (ref,) = rt.run(x)
    gc.collect()
    t0 = time.perf_counter()
    objects_at_warmup = rss_at_warmup = None
    for i in range(1, RUNS + 1):
        (y,) = rt.run(x)
        if i == WARMUP:
            gc.collect()
            rss_at_warmup = resident_mib()
            objects_at_warmup = len(gc.get_objects())
    gc.collect()
    grown = resident_mib() - rss_at_warmup
    objects_grown = len(gc.get_objects()) - objects_at_warmup
    seconds = time.perf_counter() - t0
    np.testing.assert_array_equal(y, ref)  # still computing the same thing
    print(f"{RUNS} runs in {seconds:.2f} s; resident memory grew {grown:+.2f} MiB "
          f"from run {WARMUP} to run {RUNS}; {objects_grown:+d} Python objects")
    assert grown < MARGIN_MIB, f"resident memory grew {grown:.2f} MiB over {RUNS - WARMUP} runs"
    assert objects_grown < 100, f"{objects_grown} Python objects were left behind"
    assert seconds < 60
