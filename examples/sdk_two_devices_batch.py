#!/usr/bin/python3
"""SDK tutorial case 1: two devices with input batching.

The FWDNXT SDK tutorial ran one model on 2 FPGA cards, one image per card:
instructions and weights are broadcast to each card's memory and a batch of
2 images is split between them. Here the cards are CPU devices: this script
asks for two (SHOAL_CPU_DEVICES=2, one core each on a 2-core machine, unless
SHOAL_CPU_DEVICES is already set), compiles the bundled digits CNN for
numfpga=2, runs 2 images with the SDK's calls and checks the outputs against
a plain one-device run. Exits 1 on a mismatch.

Run from a build:  PYTHONPATH=build/python /usr/bin/python3 examples/sdk_two_devices_batch.py
"""

import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
MODEL_DIR = os.path.join(SOURCE_DIR, "models", "digits")
BUILD_DIR = os.environ.get("SHOAL_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")

# Devices are enumerated when a runtime is created: set this before Init.
if "SHOAL_CPU_DEVICES" not in os.environ:
    cores = sorted(os.sched_getaffinity(0))
    # Two one-core devices, or two devices sharing the only core.
    os.environ["SHOAL_CPU_DEVICES"] = "2" if len(cores) >= 2 else f"{cores[0]},{cores[0]}"

try:
    import shoal
except ImportError:
    sys.path.insert(0, os.path.join(BUILD_DIR, "python"))
    import shoal
from shoal.compat import fwdnxt  # noqa: E402


def main():
    model = os.path.join(MODEL_DIR, "digits_cnn.onnx")
    images = np.load(os.path.join(MODEL_DIR, "heldout_x.npy"))[:2]  # [2,1,8,8] float32
    labels = np.load(os.path.join(MODEL_DIR, "heldout_y.npy"))[:2]
    if len(shoal.devices()) < 2:
        print(f"need 2 devices, SHOAL_CPU_DEVICES={os.environ['SHOAL_CPU_DEVICES']} gives "
              f"{len(shoal.devices())}", file=sys.stderr)
        return 2

    # The reference: a plain shoal runtime on one device.
    with shoal.Runtime(shoal.compile(model, shape="8x8x1")) as rt:
        (reference,) = rt.run(images)

    numfpga, numclus = 2, 1
    with tempfile.TemporaryDirectory() as tmp:
        program = os.path.join(tmp, "fwdnxt.bin")
        sf = fwdnxt.FWDNXT()  # Create FWDNXT API
        snwresults = sf.Compile("8x8x1", model, program, numfpga, numclus)  # instructions
        sf.Init(program, "")  # no bitfile to load: CPU devices
        output = np.ndarray(2 * snwresults, dtype=np.float32)  # room for 2 outputs
        sf.Run(images.reshape(-1), output)  # 2 images concatenated, [P,H,W] each
        print(f"compiled {os.path.relpath(model)} for {numfpga} devices x {numclus} cluster; "
              f"output size {snwresults}")
        print(f"plan: {sf.runtime.plan()}")
        print(f"ran 2 images in {sf.GetInfo('hwtime'):.3f} ms on devices {sf.devices}")
        sf.Free()

    output = output.reshape(2, snwresults)
    diff = float(np.abs(output - reference).max())
    print(f"predicted {output.argmax(1).tolist()}, labels {labels.tolist()}, "
          f"max |diff| vs one device {diff:.3g}")
    if not diff <= 1e-5:
        print("FAIL: the 2-device outputs differ from the 1-device run", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
