"""``RunStats``: the typed stats of a run, its JSON (unset fields left out) and its mapping view."""

from __future__ import annotations

import json

import numpy as np

from verifier.result import DisjunctOutcomes, Result, RunStats


def test_unset_fields_are_left_out_of_the_json():
    st = RunStats(oracle="onnxruntime")
    assert st.to_json() == {"oracle": "onnxruntime"}
    assert "bounds_s" not in st and st.get("bounds_s") is None


def test_accumulators():
    st = RunStats()
    st.add_time("bounds_s", 0.12345)
    st.add_time("bounds_s", 0.1)
    st.append("unstable_used", 3)
    st.append("unstable_used", 5)
    st.raise_to("float_error_max_hidden", 1e-6)
    st.raise_to("float_error_max_hidden", 1e-7)
    assert st.bounds_s == round(0.1235 + 0.1, 4) and st.unstable_used == [3, 5]
    assert st.float_error_max_hidden == 1e-6


def test_disjunct_outcomes_count_and_reason():
    d = DisjunctOutcomes()
    d.count("proved_by_bounds")
    d.count("undecided", "timeout")
    d.count("undecided", "timeout")
    d.count("undecided", "open box")
    assert d.reason == "timeout; open box"
    st = RunStats(disjunct_outcomes=d)
    assert st["disjunct_outcomes"] == {"proved_by_bounds": 1, "proved_by_lp": 0, "proved_by_milp": 0,
                                       "proved_by_split": 0, "undecided": 3}


def test_json_is_plain_and_the_mapping_view_keeps_python_values():
    st = RunStats(fixed_inputs={0: 4}, margin_tau=np.float64(1e-6), milp={"binaries": np.int64(3)})
    js = st.to_json()
    assert json.loads(json.dumps(js)) == {"fixed_inputs": {"0": 4}, "margin_tau": 1e-6, "milp": {"binaries": 3}}
    assert st["fixed_inputs"] == {0: 4}


def test_a_result_given_a_mapping_converts_it_and_keeps_unknown_keys():
    r = Result("unknown", stats={"timed_out": True, "custom": 1})
    assert isinstance(r.stats, RunStats) and r.timed_out and r.stats.extra == {"custom": 1}
    assert r.to_json()["stats"] == {"timed_out": True, "custom": 1}
