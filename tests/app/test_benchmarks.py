"""Verdicts on the shared VNN-COMP 2021 benchmarks against their ``expected.csv``.

All five ``test/`` instances, and a fast subset of ACAS Xu (each decided in a few seconds): a *holds* must
match, a *violated* must match and its counterexample must replay in onnxruntime (checked here directly).
An *unknown* is never wrong, but on these instances it would be a regression, so it fails too.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.helpers.checks import check_counterexample
from tests.helpers.paths import BENCH
from verifier.spec import load_spec
from verifier.verify import Options, verify

pytestmark = pytest.mark.skipif(not BENCH.is_dir(), reason=f"shared benchmarks not found at {BENCH}")


def expected(folder: str) -> dict[tuple[str, str], str]:
    path = BENCH / folder / "expected.csv"
    if not path.exists():
        return {}
    with path.open() as f:
        return {(r["onnx"], r["vnnlib"]): r["expected"] for r in csv.DictReader(f)}


def check(folder: str, onnx_name: str, vnnlib: str, timeout: float = 60, options: Options | None = None) -> str:
    want = expected(folder)[(onnx_name, vnnlib)]
    model, prop = BENCH / folder / onnx_name, BENCH / folder / vnnlib
    res = verify(model, prop, timeout=timeout, options=options)
    assert res.status != ("holds" if want == "violated" else "violated"), (
        f"WRONG ANSWER on {onnx_name} {vnnlib}: {res.status}, expected {want}")
    assert res.status == want, f"{onnx_name} {vnnlib}: {res.status} ({res.reason}), expected {want}"
    if res.status == "violated":
        check_counterexample(Path(model), load_spec(prop), res.counterexample.input, res.counterexample.output)
        text = res.vnncomp_text()
        assert text.startswith("sat\n((X_0 ") and text.rstrip().endswith(")")
    elif res.status == "holds":
        assert res.counterexample is None and res.vnncomp_text() == "unsat\n"
    return res.status


TEST_INSTANCES = [
    ("test_nano.onnx", "test_nano.vnnlib"),
    ("test_tiny.onnx", "test_tiny.vnnlib"),
    ("test_small.onnx", "test_small.vnnlib"),
    ("test_sat.onnx", "test_prop.vnnlib"),
    ("test_unsat.onnx", "test_prop.vnnlib"),
]


def test_test_folder_lists_exactly_these_instances():
    assert set(expected("test")) == set(TEST_INSTANCES)


@pytest.mark.parametrize(("onnx_name", "vnnlib"), TEST_INSTANCES)
def test_vnncomp_test_instances(onnx_name, vnnlib):
    check("test", onnx_name, vnnlib)


# measured with `verifier verify ... --timeout 30`: each of these takes well under 10 s
ACAS_FAST = [
    ("ACASXU_run2a_2_1_batch_2000.onnx", "prop_1.vnnlib"),  # holds
    ("ACASXU_run2a_1_2_batch_2000.onnx", "prop_1.vnnlib"),  # holds
    ("ACASXU_run2a_2_1_batch_2000.onnx", "prop_2.vnnlib"),  # violated
    ("ACASXU_run2a_3_1_batch_2000.onnx", "prop_2.vnnlib"),  # violated
    ("ACASXU_run2a_5_1_batch_2000.onnx", "prop_2.vnnlib"),  # violated
    ("ACASXU_run2a_1_7_batch_2000.onnx", "prop_3.vnnlib"),  # violated
    ("ACASXU_run2a_2_2_batch_2000.onnx", "prop_3.vnnlib"),  # holds
    ("ACASXU_run2a_4_5_batch_2000.onnx", "prop_3.vnnlib"),  # holds
    ("ACASXU_run2a_1_8_batch_2000.onnx", "prop_4.vnnlib"),  # violated
    ("ACASXU_run2a_3_3_batch_2000.onnx", "prop_4.vnnlib"),  # holds
    ("ACASXU_run2a_5_5_batch_2000.onnx", "prop_4.vnnlib"),  # holds
]


@pytest.mark.parametrize(("onnx_name", "vnnlib"), ACAS_FAST, ids=[f"{o[13:16]}-{v[:6]}" for o, v in ACAS_FAST])
def test_acasxu_fast_subset(onnx_name, vnnlib):
    check("acasxu", onnx_name, vnnlib, timeout=60)


@pytest.mark.parametrize(("onnx_name", "vnnlib"), [ACAS_FAST[2], ACAS_FAST[8]], ids=["2_1-prop_2", "1_8-prop_4"])
def test_acasxu_violations_found_without_falsification(onnx_name, vnnlib):
    """The proof machinery itself (bounds, branch and bound, MILP) finds replayable counterexamples."""
    check("acasxu", onnx_name, vnnlib, timeout=60, options=Options(falsify=False))


def test_acasxu_subset_covers_every_property_and_both_verdicts():
    exp = expected("acasxu")
    assert {v for _, v in ACAS_FAST} == {"prop_1.vnnlib", "prop_2.vnnlib", "prop_3.vnnlib", "prop_4.vnnlib"}
    assert {exp[i] for i in ACAS_FAST} == {"holds", "violated"}
