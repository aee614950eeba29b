#!/usr/bin/python3
"""The asynchronous pipeline of shoal's native API: put() and get() with tags.

One thread puts the held-out digits in small batches, each with a tag (the
slice it came from); another thread gets the results, which come back in
put order with their tags, and stores them where the tag says. put() waits
while queue_capacity batches are outstanding, so the producer never runs far
ahead of the consumer; get() raises when nothing is pending instead of
waiting forever. The results are checked against one Runtime.run of all
images; exits 1 on a mismatch.

Run from a build:  PYTHONPATH=build/python /usr/bin/python3 examples/async_pipeline.py
"""

import os
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
MODEL_DIR = os.path.join(SOURCE_DIR, "models", "digits")
BUILD_DIR = os.environ.get("SHOAL_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")

try:
    import shoal
except ImportError:
    sys.path.insert(0, os.path.join(BUILD_DIR, "python"))
    import shoal

BATCH = 8


def main():
    x = np.load(os.path.join(MODEL_DIR, "heldout_x.npy"))
    labels = np.load(os.path.join(MODEL_DIR, "heldout_y.npy"))
    program = shoal.compile(os.path.join(MODEL_DIR, "digits_cnn.onnx"), shape="8x8x1",
                            clusters=2)
    rt = shoal.Runtime(program)
    print(f"plan: {rt.plan()}; queue capacity {rt.queue_capacity}")

    slices = [slice(i, min(i + BATCH, len(x))) for i in range(0, len(x), BATCH)]
    logits = np.full((len(x), 10), np.nan, np.float32)
    done = threading.Event()  # the producer has put everything
    errors = []

    def producer():
        try:
            for s in slices:
                rt.put(x[s], tag=s)  # waits while the queue is full
        except BaseException as e:  # noqa: BLE001 - reported by main
            errors.append(e)
        finally:
            done.set()

    def consumer():
        taken = 0
        try:
            while taken < len(slices):
                if rt.pending == 0:
                    if done.is_set() and rt.pending == 0:
                        break  # the producer stopped early
                    time.sleep(0.0005)  # nothing put yet: get() would raise
                    continue
                (y,), s = rt.get()  # the oldest put; its tag is the slice
                logits[s] = y
                taken += 1
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=producer), threading.Thread(target=consumer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise errors[0]
    print(f"put {len(slices)} batches of up to {BATCH} from one thread, took their results "
          f"in another: {len(x)} images in {seconds * 1e3:.1f} ms")

    (reference,) = rt.run(x)
    diff = float(np.abs(logits - reference).max())  # NaN if one was missed
    accuracy = float((logits.argmax(1) == labels).mean())
    print(f"accuracy {100 * accuracy:.2f}%, max |diff| vs Runtime.run {diff:.3g}")
    rt.close()
    if not diff <= 1e-6:
        print("FAIL: pipeline results differ from Runtime.run", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
