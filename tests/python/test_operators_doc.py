"""The operator table is the single source of truth: docs/OPERATORS.md must be
what `shoal ops --markdown` generates from it, and every operator the
issue names must be in it."""
import subprocess

import shoal

REQUIRED = """Conv ConvTranspose BatchNormalization Relu LeakyRelu PRelu Clip Sigmoid Tanh
HardSigmoid HardSwish Elu Add Sub Mul Div MaxPool AveragePool GlobalAveragePool
GlobalMaxPool Gemm MatMul Flatten Reshape Transpose Squeeze Unsqueeze Concat Split
Slice Softmax LogSoftmax Pad Resize Upsample ReduceMean Identity Dropout Constant
Shape Gather""".split()


def test_required_operators_present():
    names = {op["name"] for op in shoal.operators()}
    missing = [op for op in REQUIRED if op not in names]
    assert not missing, f"operators missing from the table: {missing}"


def test_operator_entries_are_complete():
    for op in shoal.operators():
        assert op["summary"], f"{op['name']} has no summary"
        assert op["min_opset"] >= 1
        assert op["min_inputs"] <= op["max_inputs"]
        if op["runtime"]:
            assert op["dtypes"], f"{op['name']} runs but lists no dtypes"


def test_docs_match_the_table(source_dir, build_dir):
    doc = (source_dir / "docs" / "OPERATORS.md").read_text()
    assert doc == shoal._shoal.operators_markdown(), (
        "docs/OPERATORS.md is stale: regenerate it with "
        "`build/bin/shoal ops --markdown > docs/OPERATORS.md`")
    cli = subprocess.run([str(build_dir / "bin" / "shoal"), "ops", "--markdown"],
                         capture_output=True, text=True, check=True)
    assert cli.stdout == doc
