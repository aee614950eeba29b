#!/usr/bin/python3
"""SDK tutorial case 2: two devices, a different model on each.

Each FWDNXT object compiles its own model and loads it on its own device;
here both then run at the same time from two threads (two SDK objects
sharing the hardware could deadlock; shoal gives each object its own
device). The first model is the bundled digits CNN, the second a small CNN
built at run time with onnx.helper (without the onnx package, the digits CNN
again). Outputs are checked against plain one-device runs; exits 1 on a
mismatch.

Run from a build:  PYTHONPATH=build/python /usr/bin/python3 examples/sdk_two_devices_two_models.py
"""

import os
import sys
import tempfile
import threading

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
MODEL_DIR = os.path.join(SOURCE_DIR, "models", "digits")
BUILD_DIR = os.environ.get("SHOAL_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")

if "SHOAL_CPU_DEVICES" not in os.environ:  # read when a runtime is created
    cores = sorted(os.sched_getaffinity(0))
    os.environ["SHOAL_CPU_DEVICES"] = "2" if len(cores) >= 2 else f"{cores[0]},{cores[0]}"

try:
    import shoal
except ImportError:
    sys.path.insert(0, os.path.join(BUILD_DIR, "python"))
    import shoal
from shoal.compat import fwdnxt  # noqa: E402


def second_model(path):
    """Writes a small CNN for 8x8x1 inputs (Conv 1->4 3x3, Relu, global
    average pool, Gemm 4->3) to `path`; returns False without onnx."""
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        return False
    rng = np.random.default_rng(0)
    weights = {
        "w": rng.standard_normal((4, 1, 3, 3)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
        "fw": rng.standard_normal((3, 4)).astype(np.float32),
        "fb": rng.standard_normal(3).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "second",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])],
        initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, path)
    return True


def main():
    images = np.load(os.path.join(MODEL_DIR, "heldout_x.npy"))[:20]
    if len(shoal.devices("cpu")) < 2:
        print(f"need 2 devices, SHOAL_CPU_DEVICES={os.environ['SHOAL_CPU_DEVICES']} gives "
              f"{len(shoal.devices('cpu'))}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        model1 = os.path.join(MODEL_DIR, "digits_cnn.onnx")
        model2 = os.path.join(tmp, "model2.onnx")
        if not second_model(model2):
            print("(no onnx package: the second model is the digits CNN again)")
            model2 = model1

        references = []
        for m in (model1, model2):  # plain one-device runs
            with shoal.Runtime(shoal.compile(m, shape="8x8x1")) as rt:
                references.append(rt.run(images)[0])

        numfpga, numclus = 1, 1
        sf1 = fwdnxt.FWDNXT()  # Create FWDNXT API
        sf2 = fwdnxt.FWDNXT()  # Create second FWDNXT API
        snwresults1 = sf1.Compile("8x8x1", model1, os.path.join(tmp, "fwdnxt1.bin"),
                                  numfpga, numclus)
        snwresults2 = sf2.Compile2("8x8x1", model2, os.path.join(tmp, "fwdnxt2.bin"),
                                   numfpga, numclus)
        sf1.Init(os.path.join(tmp, "fwdnxt1.bin"), "")  # the first free device
        sf2.Init(os.path.join(tmp, "fwdnxt2.bin"), "")  # the next one
        print(f"model 1: {os.path.basename(model1)}, output size {snwresults1}, "
              f"{sf1.runtime.plan()}")
        print(f"model 2: {os.path.basename(model2)}, output size {snwresults2}, "
              f"{sf2.runtime.plan()}")

        results = [np.zeros((len(images), snwresults1), np.float32),
                   np.zeros((len(images), snwresults2), np.float32)]

        def classify(sf, size, result):
            output = np.ndarray(size, dtype=np.float32)
            for i, image in enumerate(images):  # one image at a time
                sf.Run(image, output)
                result[i] = output

        threads = [threading.Thread(target=classify, args=(sf1, snwresults1, results[0])),
                   threading.Thread(target=classify, args=(sf2, snwresults2, results[1]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(f"ran {len(images)} images through each model at once, from two threads")
        sf1.Free()
        sf2.Free()

    ok = True
    for k, (got, ref) in enumerate(zip(results, references), 1):
        diff = float(np.abs(got - ref).max())
        print(f"model {k}: max |diff| vs its one-device run {diff:.3g}")
        ok &= diff <= 1e-5
    if not ok:
        print("FAIL: outputs differ from the one-device runs", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
