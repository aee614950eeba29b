"""Runs each example script as a subprocess: it must exit 0 (each checks its
own outputs and exits 1 on a mismatch). Also runs the snippets of
docs/DEVICES.md."""

import os
import re
import subprocess
import sys

import pytest

# script -> extra arguments (given tmp_path)
EXAMPLES = {
    "sdk_two_devices_batch.py": lambda tmp: [],
    "sdk_two_devices_two_models.py": lambda tmp: [],
    "sdk_two_clusters_batch.py": lambda tmp: [],
    "sdk_two_clusters_one_input.py": lambda tmp: [],
    "async_pipeline.py": lambda tmp: [],
    "serve_client.py": lambda tmp: [],
    "classify_digits.py": lambda tmp: ["--program", str(tmp / "digits.shoal")],
}


@pytest.mark.parametrize("script", sorted(EXAMPLES))
def test_example_runs(script, source_dir, build_dir, digits_model, tmp_path):
    source_dir, build_dir = source_dir.resolve(), build_dir.resolve()  # cwd changes
    path = source_dir / "examples" / script
    assert path.exists(), f"{path} is missing"
    env = dict(os.environ)
    env.pop("SHOAL_CPU_DEVICES", None)  # the scripts choose their devices
    python_dir = str(build_dir / "python")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (python_dir, env.get("PYTHONPATH")) if p)
    env["SHOAL_BUILD_DIR"] = str(build_dir)
    r = subprocess.run([sys.executable, str(path), *EXAMPLES[script](tmp_path)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (
        f"{script} exited {r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}")
    if script != "classify_digits.py":
        assert r.stdout.rstrip().endswith("OK"), r.stdout


def test_every_sdk_example_is_tested(source_dir):
    found = {p.name for p in (source_dir / "examples").glob("*.py")
             if p.name.startswith("sdk_") or p.name in ("async_pipeline.py", "serve_client.py")}
    assert found <= set(EXAMPLES), f"untested examples: {sorted(found - set(EXAMPLES))}"


def doc_snippets(source_dir):
    text = (source_dir / "docs" / "DEVICES.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_devices_doc_snippets_run(source_dir, build_dir, digits_model):
    source_dir, build_dir = source_dir.resolve(), build_dir.resolve()
    snippets = doc_snippets(source_dir)
    assert len(snippets) >= 6
    env = dict(os.environ)
    env.pop("SHOAL_CPU_DEVICES", None)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(build_dir / "python"), env.get("PYTHONPATH")) if p)
    for i, code in enumerate(snippets):
        r = subprocess.run([sys.executable, "-c", code], cwd=source_dir, env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (
            f"docs/DEVICES.md snippet {i + 1} failed:\n{code}\n--- stdout\n{r.stdout}"
            f"\n--- stderr\n{r.stderr}")
