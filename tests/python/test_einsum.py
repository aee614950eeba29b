"""Einsum: the reference kernel against numpy.einsum (explicit and implicit
outputs, "...", diagonals, three operands, letters summed away), the
lowering of two-operand matrix products to MatMul (lower_einsum: no Einsum
layer left, or the one Einsum left on the reference kernel), stacking of
samples through both, and the errors a malformed equation gives."""

import numpy as np
import pytest

import shoal

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import shoal.onnx_backend  # noqa: E402

RNG = np.random.default_rng(11)
STACKED = "inputs at once through each kernel"


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def einsum_model(equation, shapes, consts=None, opset=13, name="the_einsum", out_shape=None):
    """One Einsum over graph inputs x0, x1... of `shapes` (float32), or over
    the constants in `consts` (index -> array); a model of constants only
    gets an unused input."""
    consts = consts or {}
    names = [f"x{k}" for k in range(len(shapes))]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s))
              for k, (n, s) in enumerate(zip(names, shapes)) if k not in consts]
    if not inputs:
        inputs = [helper.make_tensor_value_info("unused", TensorProto.FLOAT, [1, 1])]
    inits = [numpy_helper.from_array(consts[k], names[k]) for k in consts]
    if out_shape is None:
        out_shape = np.einsum(equation.replace(" ", ""), *[np.zeros(s) for s in shapes]).shape
    node = helper.make_node("Einsum", names, ["y"], equation=equation, name=name)
    graph = helper.make_graph(
        [node], "einsum", inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def run_backend(equation, arrays):
    """Runs Einsum through shoal.onnx_backend (each array one sample);
    returns (output, the ops of the compiled program's layers)."""
    model = einsum_model(equation, [a.shape for a in arrays])
    rep = shoal.onnx_backend.prepare(model)
    (y,) = rep.run(arrays)
    rt = shoal.Runtime(shoal.compile(rep.last_model), profile=True)
    rt.run([a[None] for a in arrays])
    return y, [(layer["op"], layer["impl"]) for layer in rt.profile()]


def check(equation, arrays, lowered):
    y, layers = run_backend(equation, arrays)
    want = np.einsum(equation.replace(" ", ""), *[a.astype(np.float64) for a in arrays])
    assert y.shape == want.shape, (y.shape, want.shape)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-5 * scale)
    ops = [op for op, _ in layers]
    if lowered:
        assert "Einsum" not in ops and "MatMul" in ops, layers
    else:
        assert ops.count("Einsum") == 1 and "MatMul" not in ops, layers
        assert ("Einsum", "reference") in layers, layers
    return ops


# (equation, operand shapes): two-operand matrix products, run as MatMul.
LOWERED = [
    ("bij,bjk->bik", [(5, 2, 3), (5, 3, 4)]),  # batched matmul
    ("B G H I D, B G H J D -> B G H I J", [(2, 3, 4, 5, 8), (2, 3, 4, 6, 8)]),  # MaxViT
    ("B G H I J, B G H J D -> B G H I D", [(2, 3, 4, 5, 6), (2, 3, 4, 6, 8)]),  # MaxViT
    ("ij,jk->ki", [(3, 4), (4, 5)]),  # transposed output
    ("bij,bkj->bki", [(2, 3, 4), (2, 5, 4)]),  # transposed operand and output
    ("ij,jk", [(3, 4), (4, 5)]),  # implicit output: ik
    ("Ab,bc", [(3, 4), (4, 5)]),  # implicit: Ac (ASCII order)
    ("ji,kj", [(4, 3), (5, 4)]),  # implicit: ik, operands transposed
    ("i,i", [(7,), (7,)]),  # inner product: a scalar
    ("i,j->ij", [(3,), (4,)]),  # outer product: nothing contracted
    ("abcd,cdef->abef", [(2, 3, 4, 5), (4, 5, 2, 3)]),  # two contracted, two free each
    ("...ij,...jk->...ik", [(2, 3, 4, 5), (2, 3, 5, 6)]),  # "..." as batch dims
    ("ij...,jk->ik...", [(3, 4, 2), (4, 5)]),  # "..." free in A only
    ("bhqd,bhkd->bhqk", [(1, 4, 6, 8), (1, 4, 7, 8)]),  # attention scores
]

# Everything else runs the reference kernel.
REFERENCE = [
    ("ii->i", [(4, 4)]),  # diagonal
    ("ii", [(4, 4)]),  # trace (implicit: a scalar)
    ("bii->bi", [(3, 4, 4)]),  # batched diagonal
    ("...ii->...i", [(3, 5, 5)]),  # ONNX's test_einsum_batch_diagonal
    ("ij->ji", [(3, 4)]),  # transpose
    ("ij->i", [(3, 4)]),  # a letter summed away
    ("ij,jk->i", [(3, 4), (4, 5)]),  # k summed within B alone
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),  # three operands
    ("i,i,i->", [(6,), (6,), (6,)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),  # "..." broadcast
    ("ij,ij->ij", [(3, 4), (3, 4)]),  # elementwise product
    ("bij,bjj->bi", [(2, 3, 4), (2, 4, 4)]),  # diagonal in a product
]


@pytest.mark.parametrize("equation,shapes", LOWERED, ids=[e for e, _ in LOWERED])
def test_matrix_products_run_as_matmul(equation, shapes):
    check(equation, [randn(*s) for s in shapes], lowered=True)


@pytest.mark.parametrize("equation,shapes", REFERENCE, ids=[e for e, _ in REFERENCE])
def test_other_equations_run_the_reference_kernel(equation, shapes):
    check(equation, [randn(*s) for s in shapes], lowered=False)


def test_maxvit_attention_is_views_around_one_matmul():
    """MaxViT's 'B G H I J, B G H J D -> B G H I D' needs no data movement:
    Reshape views (G and H merged: oneDNN's matmul takes 4 dims) around one
    MatMul; its 'I D, J D -> I J' transposes the second operand once."""
    _, layers = run_backend("B G H I J, B G H J D -> B G H I D",
                            [randn(1, 2, 3, 4, 5), randn(1, 2, 3, 5, 6)])
    assert [op for op, impl in layers if impl != "view"] == ["MatMul"], layers
    _, layers = run_backend("B G H I D, B G H J D -> B G H I J",
                            [randn(1, 2, 3, 4, 5), randn(1, 2, 3, 6, 5)])
    assert [op for op, impl in layers if impl != "view"] == ["Transpose", "MatMul"], layers


def test_constant_operand_is_transposed_at_compile_time():
    w = randn(6, 4)
    model = einsum_model("bij,kj->bik", [(1, 3, 4), w.shape], consts={1: w})
    lines = []
    program = shoal.compile(model, log=lines.append)
    assert any("lowered 1 Einsum to MatMul (0 left" in s for s in lines), lines
    rt = shoal.Runtime(program, profile=True)
    x = randn(5, 3, 4)
    (y,) = rt.run(x)
    assert [layer["op"] for layer in rt.profile()] == ["MatMul"], rt.profile()
    np.testing.assert_allclose(y, np.einsum("bij,kj->bik", x, w), rtol=1e-5, atol=1e-5)
    assert STACKED in rt.plan(), rt.plan()


def test_int64_einsum():
    """Einsum of int64 values (Cast in, Cast out) runs the reference kernel."""
    nodes = [helper.make_node("Cast", ["x"], ["xi"], to=TensorProto.INT64),
             helper.make_node("Einsum", ["xi", "xi"], ["yi"], equation="bij,bkj->bik"),
             helper.make_node("Cast", ["yi"], ["y"], to=TensorProto.FLOAT)]
    graph = helper.make_graph(nodes, "einsum_int",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = RNG.integers(-50, 50, (2, 3, 4)).astype(np.float32)
    (y,) = shoal.Runtime(shoal.compile(model)).run(x)
    xi = x.astype(np.int64)
    np.testing.assert_array_equal(y, np.einsum("bij,bkj->bik", xi, xi).astype(np.float32))


# --- stacking samples ---------------------------------------------------------

# (equation, per-sample shapes, stacks): dim 0 of every input is the sample.
STACKING = [
    ("bij,bjk->bik", [(1, 3, 4), (1, 4, 5)], True),  # lowered, batch letter first
    ("bgid,bgjd->bgij", [(1, 2, 3, 4), (1, 2, 5, 4)], True),
    ("bii->bi", [(1, 4, 4)], True),  # reference kernel, sample letter kept first
    ("bij,bjk,bkl->bil", [(1, 2, 3), (1, 3, 4), (1, 4, 2)], True),
    ("...ij->...ji", [(1, 2, 3, 4)], True),
    ("bij->ij", [(1, 3, 4)], False),  # the sample summed away
    ("bij->ibj", [(1, 3, 4)], False),  # the sample dim moved
    ("bij,bjk->ik", [(1, 3, 4), (1, 4, 5)], False),  # contracted over samples
    ("bij,bjk->bki", [(1, 3, 4), (1, 4, 5)], True),  # output transposed after dim 0
]


@pytest.mark.parametrize("equation,shapes,stacks", STACKING, ids=[e for e, _, _ in STACKING])
def test_samples_stack_only_where_the_equation_keeps_them(equation, shapes, stacks):
    model = einsum_model(equation, shapes)
    rt = shoal.Runtime(shoal.compile(model))
    plan = rt.plan()
    assert (STACKED in plan) == stacks, plan
    xs = [randn(3, *s[1:]) for s in shapes]
    (y,) = rt.run(xs)
    for i in range(3):
        want = np.einsum(equation, *[x[i:i + 1].astype(np.float64) for x in xs])
        got = np.asarray(y[i])
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=0, atol=1e-5)


# --- errors -------------------------------------------------------------------

ERRORS = [
    ("ij,jk->ik", [(3, 4)], r"has 2 input terms, but the node has 1 input"),
    ("ij", [(3, 4), (4, 5)], r"has 1 input term, but the node has 2 inputs"),
    ("ijk,jk->ik", [(3, 4), (4, 5)], r"input term 0 'ijk' names 3 dims, but input 0 has "
                                     r"shape \[3,4\] \(rank 2\)"),
    ("ij,jk->ik", [(3, 4), (5, 6)], r"letter 'j' has size 4 in input 0 but size 5 in input 1"),
    ("i1,jk->ik", [(3, 4), (4, 5)], r"has the character '1'"),
    ("ij,jk->iz", [(3, 4), (4, 5)], r"output letter 'z' appears in no input"),
    ("ij,jk->ii", [(3, 4), (4, 5)], r"letter 'i' appears twice in the output"),
    ("i..j,jk->ik", [(3, 4), (4, 5)], r"a '\.' that is not part of '\.\.\.'"),
    ("...ij->ij", [(2, 3, 4)], r"the output term 'ij' has no '\.\.\.'"),
    ("ij->i->j", [(3, 4)], r"more than one '->'"),
]


@pytest.mark.parametrize("equation,shapes,message", ERRORS, ids=[e for e, _, _ in ERRORS])
def test_malformed_equations(equation, shapes, message):
    consts = {k: np.zeros(s, np.float32) for k, s in enumerate(shapes)}
    model = einsum_model(equation, shapes, consts, name="bad_einsum", out_shape=[1])
    for optimize in (True, False):
        with pytest.raises(shoal.InvalidArgumentError, match=message) as info:
            shoal.compile(model.SerializeToString(), optimize=optimize)
        text = str(info.value)
        assert "bad_einsum" in text and f"equation '{equation}'" in text, text
