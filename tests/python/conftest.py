"""Shared fixtures for shoal's Python tests.

Run with: PYTHONPATH=build/python /usr/bin/python3 -m pytest tests/python
(SHOAL_BUILD_DIR / SHOAL_SOURCE_DIR override the build and source trees.)
"""

import fnmatch
import os
import pathlib

import numpy as np
import pytest

_ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def source_dir():
    return pathlib.Path(os.environ.get("SHOAL_SOURCE_DIR", _ROOT))


@pytest.fixture(scope="session")
def build_dir(source_dir):
    return pathlib.Path(os.environ.get("SHOAL_BUILD_DIR", source_dir / "build"))


@pytest.fixture(scope="session")
def digits_model(source_dir):
    """models/digits/digits_cnn.onnx: input [1,1,8,8] float32, output [1,10]."""
    path = source_dir / "models" / "digits" / "digits_cnn.onnx"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return path


def _value_info(name, shape, elem_type=None):
    from onnx import TensorProto, helper

    if elem_type is None:
        elem_type = TensorProto.FLOAT
    return helper.make_tensor_value_info(name, elem_type, shape)


def build_model(nodes, inputs, outputs, initializers=None, opset=13, check=True,
                name="test"):
    """Builds an ONNX ModelProto from onnx.helper nodes.

    inputs / outputs: lists of (name, shape) or (name, shape, TensorProto type);
    a shape may hold strings (symbolic dims) or be None (unknown).
    initializers: dict name -> numpy array.
    """
    import onnx
    from onnx import helper, numpy_helper

    inits = [numpy_helper.from_array(np.asarray(v), k)
             for k, v in (initializers or {}).items()]
    graph = helper.make_graph(
        nodes, name,
        [_value_info(*i) for i in inputs],
        [_value_info(*o) for o in outputs],
        initializer=inits)
    model = helper.make_model(
        graph, producer_name="shoal-tests",
        opset_imports=[helper.make_opsetid("", opset)])
    if check:
        onnx.checker.check_model(model)
    return model


def make_single_node(op_type, inputs, outputs, initializers=None, attrs=None,
                     opset=13, node_name=None, node_inputs=None):
    """A one-node model. The node's inputs are the graph inputs followed by the
    initializers (dict order) unless node_inputs names them explicitly."""
    from onnx import helper

    initializers = initializers or {}
    if node_inputs is None:
        node_inputs = [i[0] for i in inputs] + list(initializers)
    node = helper.make_node(op_type, node_inputs, [o[0] for o in outputs],
                            name=node_name or op_type.lower() + "_0", **(attrs or {}))
    return build_model([node], inputs, outputs, initializers, opset=opset)


@pytest.fixture(scope="session")
def make_onnx():
    """make_onnx(op_type, inputs, outputs, initializers=None, attrs=None, ...)
    -> onnx.ModelProto with one node; make_onnx.graph(nodes, inputs, outputs,
    initializers=None, ...) for several nodes. See make_single_node."""
    pytest.importorskip("onnx")
    make_single_node.graph = build_model
    return make_single_node


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: long model tests (resnet50, vit_b_16, swin_t, maxvit_t)")
    config.addinivalue_line(
        "markers", "ref_models: whole models on the ref backend (left out under ASan)")


# --- no silent skips ---------------------------------------------------------
# A test that skips fails the run unless tests/skip_allowlist.txt lists it
# with a reason: a missing binary, package or model must not pass quietly.

def _allowlist():
    path = pathlib.Path(__file__).resolve().parent.parent / "skip_allowlist.txt"
    entries = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pattern, _, reason = line.partition("  ")
        if not reason.strip():
            raise ValueError(f"{path}: entry without a reason: {line!r}")
        entries.append(pattern.strip())
    return entries


_ALLOWED = _allowlist()


def _allowed(nodeid):
    name = nodeid.split("tests/python/")[-1]
    return any(fnmatch.fnmatch(name, p) for p in _ALLOWED)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and not _allowed(item.nodeid):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (f"skipped, and tests/skip_allowlist.txt does not allow it: {reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not _allowed(report.nodeid):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (f"module skipped, and tests/skip_allowlist.txt does not allow "
                           f"it: {reason}")
