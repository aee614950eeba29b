"""ONNX conformance: ONNX's own node tests run through shoal.onnx_backend.

    PYTHONPATH=build/python /usr/bin/python3 -m pytest -q tests/python/test_onnx_conformance.py

The node test data (a model.onnx and input/output .pb files per test) is
generated from the installed onnx package's test cases into
$SHOAL_BUILD_DIR/onnx_node_tests on the first run (what `backend-test-tools
generate-data` does) and reused afterwards; delete that folder to regenerate.

Selected: every node test whose graph uses only operators shoal claims (its
operator table, shoal.operators()), including the "_expanded" variants of
function ops. Each must pass unless tests/onnx_exclusions.txt excludes it
with a reason, which starts with a category (CATEGORIES): a gap in what
docs/OPERATORS.md claims, or a test outside the claim (an element type the
operator's row does not list, training mode, values that are not tensors).
The run ends with a line

    ONNX conformance: P passed, F failed, G excluded gaps, U outside the claim
    (...) of N selected; P/(N-U) = xx.x% of claimed

also written to $SHOAL_BUILD_DIR/onnx_conformance.txt with the excluded and
failing tests; test_claimed_conformance_rate requires at least 98%.

SHOAL_CONFORMANCE_DEVICES=ref:0 runs the same suite on the ref backend (the
reference kernels on memory the runtime cannot address; ctest's
pytest_conformance_ref), its summary in onnx_conformance_ref.txt.
Run directly (python3 tests/python/test_onnx_conformance.py) it uses unittest.
"""

import argparse
import functools
import os
import pathlib
import re
import sys
import unittest
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
import onnx.backend.test  # noqa: E402
import onnx.backend.test.runner  # noqa: E402
from onnx.backend.test import cmd_tools  # noqa: E402
from onnx.backend.test.loader import load_model_tests  # noqa: E402

import shoal  # noqa: E402
import shoal.onnx_backend  # noqa: E402

if os.environ.get("SHOAL_CONFORMANCE_DEVICES"):
    shoal.onnx_backend.DEVICES = os.environ["SHOAL_CONFORMANCE_DEVICES"]

_SOURCE = pathlib.Path(os.environ.get("SHOAL_SOURCE_DIR",
                                      pathlib.Path(__file__).resolve().parents[2]))
_BUILD = pathlib.Path(os.environ.get("SHOAL_BUILD_DIR", _SOURCE / "build"))
DATA_DIR = _BUILD / "onnx_node_tests"
EXCLUSIONS = _SOURCE / "tests" / "onnx_exclusions.txt"
_DEVICES = os.environ.get("SHOAL_CONFORMANCE_DEVICES", "")
SUMMARY_FILE = _BUILD / ("onnx_conformance.txt" if not _DEVICES else
                         f"onnx_conformance_{_DEVICES.split(':')[0]}.txt")

def _numpy_aliases():
    """onnx 1.12's test generator and runner still use np.float, np.object...,
    which numpy 1.24 removed; restore them (process-wide, harmless)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, value in dict(float=float, int=int, bool=bool, object=object,
                                complex=complex).items():
            if name not in vars(np):
                setattr(np, name, value)


def _generate(data_dir):
    """Writes ONNX's node test data under data_dir/node (once)."""
    marker = data_dir / f"generated-onnx-{onnx.__version__}"
    if marker.exists():
        return
    import shutil
    tmp = data_dir.with_name(f"{data_dir.name}.tmp{os.getpid()}")
    cmd_tools.generate_data(argparse.Namespace(output=str(tmp), op_type=None))
    (tmp / marker.name).write_text("written by tests/python/test_onnx_conformance.py\n")
    if marker.exists():  # another run finished first
        shutil.rmtree(tmp)
        return
    if data_dir.exists():  # another onnx version's
        shutil.rmtree(data_dir)
    os.replace(tmp, data_dir)


def claimed_ops():
    """The operators in shoal's operator table."""
    return {op["name"] for op in shoal.operators()}


# Each exclusion reason starts with "<category>:". True: a gap, something
# docs/OPERATORS.md claims and shoal does not do; it counts against the
# claimed rate. False: outside the claim, not counted in it.
CATEGORIES = {
    "dtype": False,  # an element type the operator's row in OPERATORS.md does not list
    "training mode": False,  # training semantics: shoal runs inference (OPERATORS.md)
    "unsupported type": False,  # optional / sequence values: shoal has tensors only
    "unsupported attribute": True,
    "unsupported output": True,
}
CLAIM_SCOPE = "dtype/training-mode/non-tensor types OPERATORS.md does not claim"
MIN_CLAIMED_RATE = 0.98


def category_of(reason):
    """The category a reason starts with; ValueError if it names none."""
    category = reason.partition(":")[0].strip()
    if ":" not in reason or category not in CATEGORIES:
        raise ValueError(f"exclusion reason '{reason}' must start with one of "
                         f"{sorted(c + ':' for c in CATEGORIES)}")
    return category


def load_exclusions(path=EXCLUSIONS):
    """[(regex, reason)]: one pattern per line, a reason after '#' required,
    starting with a category."""
    out = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        pattern, hash_, reason = line.partition("#")
        pattern, reason = pattern.strip(), reason.strip()
        if not pattern and hash_:
            continue  # a comment line
        if not reason:
            raise ValueError(f"{path}:{lineno}: '{pattern}' has no reason after '#'")
        try:
            category_of(reason)
        except ValueError as e:
            raise ValueError(f"{path}:{lineno}: {e}") from None
        out.append((re.compile(pattern), reason))
    return out


def _ops_of(model_dir):
    model = onnx.load(os.path.join(model_dir, "model.onnx"))
    return {(n.domain or "ai.onnx") + ":" + n.op_type for n in model.graph.node}


def select_tests(data_dir, ops):
    """Names (with the _cpu suffix) of the node tests using only `ops`."""
    wanted = {"ai.onnx:" + o for o in ops}
    names = set()
    for case in load_model_tests(str(data_dir), kind="node"):
        if _ops_of(case.model_dir) <= wanted:
            names.add(case.name + "_cpu")
    return names


def _node_tests_only(data_dir):
    """load_model_tests reading data_dir, with only the 'node' kind."""
    def load(data_dir_=None, kind=None):
        if kind != "node":
            return []
        return load_model_tests(str(data_dir), kind="node")
    return load


_numpy_aliases()
_generate(DATA_DIR)
SELECTED = select_tests(DATA_DIR, claimed_ops())
EXCLUDED_BY = load_exclusions()

def exclusion_reasons(selected, exclusions):
    """{test name: the reason of the first pattern excluding it}."""
    reasons = {}
    for name in selected:
        for pattern, reason in exclusions:
            if pattern.search(name):
                reasons[name] = reason
                break
    return reasons


EXCLUDED_REASON = exclusion_reasons(SELECTED, EXCLUDED_BY)
EXCLUDED = set(EXCLUDED_REASON)
GAPS = {n for n, r in EXCLUDED_REASON.items() if CATEGORIES[category_of(r)]}
OUTSIDE_CLAIM = EXCLUDED - GAPS
_RESULTS = {}  # test name -> "passed" / "failed"

onnx.backend.test.runner.load_model_tests = _node_tests_only(DATA_DIR)
backend_test = onnx.backend.test.BackendTest(shoal.onnx_backend, __name__)
backend_test.include("^(" + "|".join(re.escape(n) for n in sorted(SELECTED)) + ")$")
for _pattern, _reason in EXCLUDED_BY:
    backend_test.exclude(_pattern.pattern)


class ShoalCrashed(Exception):
    pass


# The tests run in a worker process forked from this one, so that a crash
# (a shoal bug) fails one test instead of ending the suite; a new worker takes
# over after one dies. SHOAL_CONFORMANCE_ISOLATE=0 runs them in-process.
_ISOLATE = hasattr(os, "fork") and os.environ.get("SHOAL_CONFORMANCE_ISOLATE", "1") != "0"
_TIMEOUT_S = 120  # per test
_TESTS = {}  # name -> the BackendTest function, looked up by the worker


def _outcome(func):
    """Runs func; None, or (exception type name, text) of what it raised."""
    import traceback
    try:
        func(unittest.TestCase())
        return None
    except unittest.SkipTest as e:
        return ("skip", str(e))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        return (type(e).__name__,
                f"{type(e).__name__}: {e}\n\n" + "".join(traceback.format_exception(e)))


class _Worker:
    """A forked process running tests by name, one at a time."""

    def __init__(self):
        import multiprocessing
        self.conn, child = multiprocessing.Pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the worker: never returns into pytest
            self.conn.close()
            try:
                while True:
                    try:
                        name = child.recv()
                    except EOFError:
                        break
                    child.send(_outcome(_TESTS[name]))
            finally:
                os._exit(0)
        child.close()

    def run(self, name):
        import signal
        self.conn.send(name)
        if not self.conn.poll(_TIMEOUT_S):
            os.kill(self.pid, signal.SIGKILL)
            self.close()
            raise ShoalCrashed(f"the test ran over {_TIMEOUT_S} s and was killed")
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            status = self.close()
            how = (f"signal {signal.Signals(os.WTERMSIG(status)).name}"
                   if os.WIFSIGNALED(status) else
                   f"exit status {os.waitstatus_to_exitcode(status)}")
            raise ShoalCrashed(f"the test process died ({how})") from None

    def close(self):
        self.conn.close()
        return os.waitpid(self.pid, 0)[1]


_worker = None


def _run_isolated(name):
    global _worker
    if _worker is None:
        _worker = _Worker()
    try:
        result = _worker.run(name)
    except ShoalCrashed:
        _worker = None
        raise
    if result is None:
        return
    kind, text = result
    if kind == "skip":
        raise unittest.SkipTest(text)
    if kind == "AssertionError":
        raise AssertionError(text)
    raise RuntimeError(text)


def _stop_worker():
    global _worker
    if _worker is not None:
        _worker.close()
        _worker = None


def _warm_up():
    """Compiles a tiny model before the first fork, so that workers inherit
    the initialized ONNX schemas (no Runtime is made here: a worker must not
    inherit device threads)."""
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "warm_up", [x], [y])
    shoal.compile(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


if _ISOLATE:
    _warm_up()


def _counted(name, func):
    _TESTS[name] = func

    @functools.wraps(func)
    def test(*args, **kwargs):
        try:
            if _ISOLATE:
                _run_isolated(name)
            else:
                func(*args, **kwargs)
        except unittest.SkipTest:
            raise
        except BaseException:
            _RESULTS[name] = "failed"
            raise
        _RESULTS[name] = "passed"
    return test


def _test_cases():
    cases = {}
    for cls_name, cls in backend_test.test_cases.items():
        names = [n for n in vars(cls) if n.startswith("test_")]
        for n in names:
            if n in SELECTED:
                setattr(cls, n, _counted(n, getattr(cls, n)))
            else:  # another operator's test, or another device's
                delattr(cls, n)
        if any(n in SELECTED for n in names):
            cases[cls_name] = cls
    return cases


globals().update(_test_cases())
if _ISOLATE:
    # Forked now, at collection, before any test of any module has started
    # device threads in this process (forking those is unsafe).
    _worker = _Worker()


def claimed_rate(passed):
    """passed / the selected tests within the claim (N - U)."""
    claimed = len(SELECTED) - len(OUTSIDE_CLAIM)
    return passed / claimed if claimed else 0.0


def summary():
    passed = sum(r == "passed" for r in _RESULTS.values())
    failed = sorted(n for n, r in _RESULTS.items() if r == "failed")
    n, u = len(SELECTED), len(OUTSIDE_CLAIM)
    line = (f"ONNX conformance: {passed} passed, {len(failed)} failed, "
            f"{len(GAPS)} excluded gaps, {u} outside the claim ({CLAIM_SCOPE}) "
            f"of {n} selected; P/(N-U) = {100 * claimed_rate(passed):.1f}% of claimed")
    return line, failed


def _write_summary():
    line, failed = summary()
    lines = [line]
    for title, names in (("excluded gap", GAPS), ("outside the claim", OUTSIDE_CLAIM)):
        by_reason = {}
        for name in sorted(names):
            by_reason.setdefault(EXCLUDED_REASON[name], []).append(name)
        for reason, tests in sorted(by_reason.items()):
            lines.append(f"{title} ({len(tests)}): {reason}: {' '.join(tests)}")
    lines += [f"failed: {n}" for n in failed]
    try:
        SUMMARY_FILE.write_text("\n".join(lines) + "\n")
    except OSError:
        pass
    return line


class _SummaryPlugin:
    """Prints the summary line in pytest's terminal summary."""

    def __init__(self, line):
        self.line = line

    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.write_sep("-", "ONNX conformance")
        terminalreporter.write_line(self.line)


@pytest.fixture(scope="module", autouse=True)
def _print_summary(request):
    yield
    _stop_worker()
    line = _write_summary()
    plugins = request.config.pluginmanager
    if not plugins.has_plugin("shoal-onnx-conformance"):
        plugins.register(_SummaryPlugin(line), "shoal-onnx-conformance")


def test_claimed_conformance_rate():
    """At least 98% of the selected tests within the claim pass: every
    selected test that is not excluded must pass (each is a test of its own),
    so the gaps may be at most 2% of the claimed ones. Once the node tests
    have run, the rate of those that passed is checked too."""
    claimed = len(SELECTED) - len(OUTSIDE_CLAIM)
    best = claimed_rate(claimed - len(GAPS))
    assert best >= MIN_CLAIMED_RATE, (
        f"{len(GAPS)} gaps of {claimed} claimed node tests: at most "
        f"{100 * best:.1f}% can pass (need {100 * MIN_CLAIMED_RATE:.0f}%): {sorted(GAPS)}")
    if len(_RESULTS) == len(SELECTED) - len(EXCLUDED):  # every node test ran
        passed = sum(r == "passed" for r in _RESULTS.values())
        assert claimed_rate(passed) >= MIN_CLAIMED_RATE, summary()[0]


def test_exclusions_are_in_use():
    """Every exclusion pattern matches a selected test (none is stale)."""
    stale = [p.pattern for p, _ in EXCLUDED_BY if not any(p.search(n) for n in SELECTED)]
    assert not stale, f"{EXCLUSIONS}: patterns matching no selected test: {stale}"


if __name__ == "__main__":
    try:
        unittest.main(verbosity=1, exit=False)
    finally:
        _stop_worker()
        print(_write_summary())
    sys.exit(0 if not summary()[1] else 1)
