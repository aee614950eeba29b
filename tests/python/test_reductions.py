"""The Reduce* family in float32 against numpy in float64: Mean, Max, Min,
Sum, Prod, L1, L2, SumSquare, LogSum and LogSumExp over several axes, with
and without keepdims, each as the reference kernel runs it (unoptimized) and
as compiled (lower_reductions turns L1/L2/SumSquare/LogSum into an
elementwise op and the native ReduceSum: no reference layer left). The
official node tests of ReduceLogSumExp use float64 inputs (outside the
claim), so its float32 cases live here, large inputs included (the stable
form subtracts each group's max)."""

import numpy as np
import pytest

import shoal

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

RNG = np.random.default_rng(5)


def _np(op, x, axes, keepdims):
    x = x.astype(np.float64)
    ax = tuple(axes) if axes is not None else None
    k = bool(keepdims)
    if op == "ReduceLogSumExp":
        m = np.max(x, axis=ax, keepdims=True)
        y = np.log(np.sum(np.exp(x - m), axis=ax, keepdims=True)) + m
        return y if k else np.squeeze(y, axis=ax) if ax is not None else y.reshape(())
    f = {
        "ReduceMean": lambda v: np.mean(v, axis=ax, keepdims=k),
        "ReduceMax": lambda v: np.max(v, axis=ax, keepdims=k),
        "ReduceMin": lambda v: np.min(v, axis=ax, keepdims=k),
        "ReduceSum": lambda v: np.sum(v, axis=ax, keepdims=k),
        "ReduceProd": lambda v: np.prod(v, axis=ax, keepdims=k),
        "ReduceL1": lambda v: np.sum(np.abs(v), axis=ax, keepdims=k),
        "ReduceL2": lambda v: np.sqrt(np.sum(v * v, axis=ax, keepdims=k)),
        "ReduceSumSquare": lambda v: np.sum(v * v, axis=ax, keepdims=k),
        "ReduceLogSum": lambda v: np.log(np.sum(v, axis=ax, keepdims=k)),
    }[op]
    return f(x)


OPS = ["ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL1",
       "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]
LOWERED = {"ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum"}
# (axes, keepdims) over a [1, 3, 4, 5] input; None: every axis.
CASES = [([3], 1), ([1], 0), ([-1, -2], 1), ([1, 2, 3], 0), (None, 1), ([0], 1)]


def model(op, shape, axes, keepdims):
    """One node at opset 13: ReduceSum takes its axes as input 1, the others
    as an attribute."""
    inputs = ["x"]
    inits = []
    attrs = {"keepdims": keepdims}
    if axes is not None and op == "ReduceSum":
        inits.append(helper.make_tensor("axes", TensorProto.INT64, [len(axes)], axes))
        inputs.append("axes")
    elif axes is not None:
        attrs["axes"] = axes
    node = helper.make_node(op, inputs, ["y"], name="the_reduce", **attrs)
    out_shape = _np("ReduceSum", np.zeros(shape), axes, keepdims).shape
    graph = helper.make_graph(
        [node], "reduce", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def data(op, shape):
    x = RNG.standard_normal(shape).astype(np.float32)
    if op == "ReduceLogSum":
        x = np.abs(x) + 0.1  # a positive sum
    if op == "ReduceProd":
        x = (0.5 + RNG.random(shape)).astype(np.float32)  # keeps the product in range
    return x


def run(m, x, optimize):
    rt = shoal.Runtime(shoal.compile(m.SerializeToString(), optimize=optimize), profile=True)
    (y,) = rt.run(x)
    return y, [(layer["op"], layer["impl"]) for layer in rt.profile()]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("axes,keepdims", CASES)
def test_reduce_against_numpy(op, axes, keepdims):
    shape = (1, 3, 4, 5)  # one sample: axis 0 and "every axis" reduce it alone
    x = data(op, shape)
    want = _np(op, x, axes, keepdims)
    m = model(op, shape, axes, keepdims)
    for optimize in (False, True):
        y, layers = run(m, x, optimize)
        assert y.shape == want.shape, (op, optimize, y.shape, want.shape)
        np.testing.assert_allclose(y, want, rtol=2e-5, atol=2e-5 * max(1.0, np.abs(want).max()),
                                   err_msg=f"{op} axes={axes} keepdims={keepdims} "
                                           f"optimize={optimize}")
        if optimize and op in LOWERED:
            assert all(impl != "reference" for _, impl in layers), layers
            assert op not in [o for o, _ in layers] and "ReduceSum" in [o for o, _ in layers]


def test_log_sum_exp_of_large_inputs_is_finite():
    """exp(1000) overflows float32 and float64: the stable form does not."""
    x = (1000 + RNG.standard_normal((1, 3, 4, 5))).astype(np.float32)
    y, _ = run(model("ReduceLogSumExp", x.shape, [3], 0), x, True)
    want = _np("ReduceLogSumExp", x, [3], 0)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, want, rtol=1e-6)


def test_lowered_norm_runs_in_batches():
    """A lowered ReduceL2 over the last axis keeps samples apart: a batch
    of eight gives each sample's own norms (F.normalize in Swin V2)."""
    m = model("ReduceL2", (1, 3, 4, 5), [-1], 1)
    x = RNG.standard_normal((8, 3, 4, 5)).astype(np.float32)
    rt = shoal.Runtime(shoal.compile(m.SerializeToString()))
    (y,) = rt.run(x)
    np.testing.assert_allclose(y, _np("ReduceL2", x, [-1], 1), rtol=2e-5)
