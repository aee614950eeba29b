"""Strict mode and the naming of slow layers: compile(strict=True) and
`shoal compile --strict` refuse a model with layers no fast kernel takes,
naming them; Runtime.plan() and `shoal inspect` name them too; a model whose
every layer has a fast kernel passes."""

import subprocess

import numpy as np
import pytest

import shoal

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402

RNG = np.random.default_rng(3)


def conv_then(make_onnx, tail):
    """Conv -> `tail` ("Relu": fast; "Tile": reference only) on [1,4,6,6]."""
    inits = {"w": RNG.standard_normal((4, 4, 3, 3)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv")]
    out_shape = [1, 4, 6, 6]
    if tail == "Tile":
        inits["reps"] = np.array([1, 1, 1, 2], np.int64)
        nodes.append(helper.make_node("Tile", ["c", "reps"], ["y"], name="the_tile"))
        out_shape = [1, 4, 6, 12]
    else:
        nodes.append(helper.make_node(tail, ["c"], ["y"], name="the_tail"))
    return make_onnx.graph(nodes, [("x", [1, 4, 6, 6])], [("y", out_shape)], inits)


def test_strict_refuses_and_names_slow_layers(make_onnx):
    model = conv_then(make_onnx, "Tile")
    with pytest.raises(shoal.UnsupportedError) as e:
        shoal.compile(model, strict=True)
    assert "strict: 1 layer has no fast CPU kernel" in str(e.value)
    assert "Tile 'the_tile'" in str(e.value)
    # Without strict it compiles, runs, and plan() names the slow layer.
    rt = shoal.Runtime(shoal.compile(model))
    assert "1 layer runs the slow reference kernels: Tile 'the_tile'" in rt.plan()
    x = RNG.standard_normal((2, 4, 6, 6)).astype(np.float32)
    (y,) = rt.run(x)
    (ref,) = shoal.Runtime(shoal.compile(model, optimize=False)).run(x)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_strict_passes_when_every_layer_is_fast(make_onnx):
    lines = []
    program = shoal.compile(conv_then(make_onnx, "Sigmoid"), strict=True, log=lines.append)
    assert any("strict: every layer has a fast CPU kernel" in line for line in lines), lines
    assert "every layer runs a fast kernel" in shoal.Runtime(program).plan()


def test_cli_strict_and_inspect(make_onnx, build_dir, tmp_path):
    cli = build_dir / "bin" / "shoal"
    assert cli.exists(), f"{cli} is missing (build first)"
    slow = tmp_path / "slow.onnx"
    slow.write_bytes(conv_then(make_onnx, "Tile").SerializeToString())
    res = subprocess.run([str(cli), "compile", str(slow), "--strict", "-o",
                          str(tmp_path / "s.shoal")], capture_output=True, text=True)
    assert res.returncode == 1 and "Tile 'the_tile'" in res.stderr, res.stderr
    res = subprocess.run([str(cli), "compile", str(slow), "-o", str(tmp_path / "s.shoal")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([str(cli), "inspect", str(tmp_path / "s.shoal")],
                         capture_output=True, text=True, check=True)
    assert ("layers on the slow reference kernels (no fast kernel on this CPU): "
            "Tile 'the_tile'") in res.stdout
    import json
    info = json.loads(subprocess.run([str(cli), "inspect", str(tmp_path / "s.shoal"), "--json"],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["reference_layers"] == ["Tile 'the_tile'"]
