#!/usr/bin/python3
"""SDK tutorial case 3: two clusters of one device, with input batching.

A device's cores are split into clusters; each cluster runs its own copy of
the instructions on whole inputs, and all clusters share the device's one
copy of the weights. This compiles the bundled digits CNN for numfpga=1,
numclus=2, runs 2 images (one per cluster) with the SDK's calls and checks
the outputs against a plain one-cluster run. Exits 1 on a mismatch.

Run from a build:  PYTHONPATH=build/python /usr/bin/python3 examples/sdk_two_clusters_batch.py
"""

import os
import sys
import tempfile

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
from shoal.compat import fwdnxt  # noqa: E402


def main():
    model = os.path.join(MODEL_DIR, "digits_cnn.onnx")
    images = np.load(os.path.join(MODEL_DIR, "heldout_x.npy"))[:2]
    labels = np.load(os.path.join(MODEL_DIR, "heldout_y.npy"))[:2]

    with shoal.Runtime(shoal.compile(model, shape="8x8x1")) as rt:  # the reference
        (reference,) = rt.run(images)

    numfpga, numclus = 1, 2
    with tempfile.TemporaryDirectory() as tmp:
        program = os.path.join(tmp, "fwdnxt.bin")
        sf = fwdnxt.FWDNXT()
        snwresults = sf.Compile("8x8x1", model, program, numfpga, numclus)
        sf.Init(program, "")
        output = np.ndarray(2 * snwresults, dtype=np.float32)  # 2 outputs: one per cluster
        sf.Run(images.reshape(-1), output)
        device = shoal.devices()[sf.devices[0]]
        print(f"compiled for {numfpga} device x {numclus} clusters; output size {snwresults}")
        print(f"{device.describe()}")
        print(f"plan: {sf.runtime.plan()}")
        print(f"ran 2 images in {sf.GetInfo('hwtime'):.3f} ms "
              f"(numbatch {sf.GetInfo('numbatch')})")
        sf.Free()

    output = output.reshape(2, snwresults)
    diff = float(np.abs(output - reference).max())
    print(f"predicted {output.argmax(1).tolist()}, labels {labels.tolist()}, "
          f"max |diff| vs one cluster {diff:.3g}")
    if not diff <= 1e-5:
        print("FAIL: the 2-cluster outputs differ from the 1-cluster run", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
