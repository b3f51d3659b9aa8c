"""Regression test for a soundness fault found in review: with ``--jobs > 1``, sub-boxes that branch
and bound left undecided before handing the open ones to the workers were forgotten, so the answer
could be *holds*."""

from __future__ import annotations

import pytest

from tests.helpers.paths import REPO as ROOT
from verifier import bab, parallel
from verifier.verify import Options, verify


def test_undecided_boxes_are_not_lost_when_the_search_goes_parallel(monkeypatch):
    orig = bab.milp_box
    calls = {"n": 0}

    def first_milp_fails(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            return "solver error: injected (this sub-box stays undecided)"
        return orig(*args, **kwargs)

    def sequential_run_boxes(net, oracle, case, disjuncts, boxes, jobs, settings, wall_deadline, ci=0, fixed=None):
        assert fixed is None  # no fixed inputs in this spec
        return bab.input_split(net, case, disjuncts, oracle, settings, None, ci, boxes=boxes)

    monkeypatch.setattr(bab, "milp_box", first_milp_fails)
    monkeypatch.setattr(parallel, "run_boxes", sequential_run_boxes)
    for jobs in (1, 2):
        calls["n"] = 0
        opts = Options(strategy="input-split", jobs=jobs, parallel_after=40, timeout=60)
        r = verify(ROOT / "models/collision_advisory.onnx", ROOT / "specs/collision_behind_is_clear.toml",
                   options=opts)
        if calls["n"] == 0:
            pytest.skip("this search needed no MILP leaf, so nothing was injected")
        assert r.status == "unknown", (jobs, r.status, r.reason)
        assert "injected" in r.reason
