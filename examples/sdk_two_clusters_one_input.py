#!/usr/bin/python3
"""SDK tutorial case 4: two clusters working together on ONE input.

With SetFlag('nobatch', '1') the next Compile makes the clusters of a device
share every operator of a single input (shoal: compile(..., split=True)),
which cuts the latency of one input instead of raising throughput. The
output size is that of one input, not twice. This compiles the bundled
digits CNN that way for 1 device x 2 clusters, runs one image and checks the
output against a plain run (equal within 1e-5: a split operator may sum in
another order). Exits 1 on a mismatch.

Run from a build:  PYTHONPATH=build/python /usr/bin/python3 examples/sdk_two_clusters_one_input.py
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
    image = np.load(os.path.join(MODEL_DIR, "heldout_x.npy"))[0]  # [1,8,8]: [P,H,W]
    label = int(np.load(os.path.join(MODEL_DIR, "heldout_y.npy"))[0])

    with shoal.Runtime(shoal.compile(model, shape="8x8x1")) as rt:  # the reference
        (reference,) = rt.run(image[None])

    numfpga, numclus = 1, 2
    with tempfile.TemporaryDirectory() as tmp:
        program = os.path.join(tmp, "fwdnxt.bin")
        sf = fwdnxt.FWDNXT()
        sf.SetFlag("nobatch", "1")  # the clusters split one input between them
        snwresults = sf.Compile("8x8x1", model, program, numfpga, numclus)
        sf.Init(program, "")
        output = np.ndarray(snwresults, dtype=np.float32)  # ONE output
        sf.Run(image, output)
        print(f"compiled with nobatch for {numfpga} device x {numclus} clusters; "
              f"output size {snwresults} (split: {shoal.load(program).split})")
        print(f"plan: {sf.runtime.plan()}")
        print(f"ran 1 image in {sf.GetInfo('hwtime'):.3f} ms "
              f"(numbatch {sf.GetInfo('numbatch')})")
        sf.Free()

    diff = float(np.abs(output - reference[0]).max())
    print(f"predicted {int(output.argmax())}, label {label}, max |diff| vs a plain run "
          f"{diff:.3g}")
    if not diff <= 1e-5:
        print("FAIL: the split output differs from the plain run", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
