"""Resize on the native kernel: the way exporters write it (an empty roi
constant, scales or sizes) between channels-last convolutions, and as a
segmentation head's last layer (channels-last in, the plain model output
out), against PyTorch's F.interpolate."""

import numpy as np
import pytest

import shoal

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

torch = pytest.importorskip("torch")
F = torch.nn.functional

rng = np.random.default_rng(5)


def model(resize_inputs, inits, out_shape, attrs, head):
    """Conv -> Resize [-> Conv]: Resize between channels-last convolutions,
    or (head) the model's last layer."""
    c = 6
    inits = dict(inits, w=rng.standard_normal((c, 3, 3, 3)).astype(np.float32),
                 w2=rng.standard_normal((4, c, 1, 1)).astype(np.float32))
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Resize", ["a"] + resize_inputs, ["r" if not head else "y"], **attrs)]
    if not head:
        nodes.append(helper.make_node("Conv", ["r", "w2"], ["y"]))
    ys = [1, c if head else 4] + out_shape
    g = helper.make_graph(
        nodes, "resize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 9, 11])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ys)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("head", [False, True])
@pytest.mark.parametrize("mode,torch_mode,align", [
    ("linear", "bilinear", False), ("nearest", "nearest", None), ("cubic", "bicubic", False),
    ("linear", "bilinear", True)])
def test_resize_native_against_torch(head, mode, torch_mode, align):
    x = rng.standard_normal((3, 3, 9, 11)).astype(np.float32)
    size = [20, 31]
    coord = {None: "asymmetric", False: "pytorch_half_pixel", True: "align_corners"}[align]
    attrs = {"mode": mode, "coordinate_transformation_mode": coord}
    if mode == "nearest":
        attrs["nearest_mode"] = "floor"
    if mode == "cubic":
        attrs["cubic_coeff_a"] = -0.75
    m = model(["roi", "scales", "sizes"],
              {"roi": np.zeros(0, np.float32), "scales": np.zeros(0, np.float32),
               "sizes": np.array([1, 6] + size, np.int64)}, size, attrs, head)
    program = shoal.compile(m.SerializeToString())
    rt = shoal.Runtime(program, profile=True)
    (y,) = rt.run(x)
    impl = {p["op"]: p["impl"] for p in rt.profile()}
    assert impl["Resize"].startswith("native:"), impl
    assert "every layer runs a fast kernel" in rt.plan()
    # PyTorch on the convolution's output, computed by shoal's float64 twin:
    # the Conv is reproduced in torch.
    t = torch.from_numpy(x.astype(np.float64))
    w = torch.from_numpy(numpy_helper.to_array(m.graph.initializer[-2]).astype(np.float64))
    a = F.conv2d(t, w, padding=1)
    kw = {} if align is None else {"align_corners": align}
    r = F.interpolate(a, size=size, mode=torch_mode, **kw)
    if not head:
        w2 = torch.from_numpy(numpy_helper.to_array(m.graph.initializer[-1]).astype(np.float64))
        r = F.conv2d(r, w2)
    want = r.numpy()
    np.testing.assert_allclose(y, want, rtol=0, atol=2e-5 * float(np.ptp(want)))
