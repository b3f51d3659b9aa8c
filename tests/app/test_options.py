"""Verify options (strategy, bounds, solver, per-instance processes, seed) reach every batch / check instance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from verifier.app.suite import ListError, load_instances, load_suite
from verifier.app.tasks import Task
from verifier.cli import main

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "collision_advisory.onnx"
SPEC = REPO / "specs" / "collision_far_is_clear.toml"  # auto picks input splitting (5 inputs)


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


@pytest.fixture
def one_instance(tmp_path) -> Path:
    lst = tmp_path / "instances.csv"
    lst.write_text(f"{MODEL},{SPEC},60\n")
    return lst


def test_batch_strategy_and_bounds_reach_the_instance(one_instance):
    runner = CliRunner()
    res = runner.invoke(main, ["batch", str(one_instance), "--jobs", "1", "--json"])
    assert res.exit_code == 0, res.output
    row = last_json(res.output)["rows"][0]
    assert row["result"] == "holds" and row["stats"]["strategy"] == "input-split"
    assert row["options"] == {"solver": "cbc", "strategy": "auto", "bounds": "symbolic", "instance_jobs": 1, "seed": 0}
    res = runner.invoke(main, ["batch", str(one_instance), "--jobs", "1", "--json", "--strategy", "milp",
                               "--bounds", "interval", "--instance-jobs", "2", "--seed", "7", "--solver", "highs"])
    assert res.exit_code == 0, res.output
    row = last_json(res.output)["rows"][0]
    assert row["result"] == "holds"
    assert row["stats"]["strategy"] == "milp" and row["stats"]["bounds_method"] == "interval"
    assert row["stats"]["solver"] == "highs"
    assert row["options"] == {"solver": "highs", "strategy": "milp", "bounds": "interval", "instance_jobs": 2,
                              "seed": 7}


def test_batch_times_are_reported_both_ways(one_instance):
    res = CliRunner().invoke(main, ["batch", str(one_instance), "--jobs", "1", "--json"])
    row = last_json(res.output)["rows"][0]
    # in-worker verify time <= parent-side time; worker start-up is counted in neither
    assert 0 < row["time_s"] <= row["wall_s"] + 1e-3
    assert row["worker_startup_s"] > 0


def test_task_options_are_the_verify_options():
    t = Task("m", "s", "/m", "/s", 9.0).with_options({"strategy": "milp", "bounds": "interval", "instance_jobs": 3,
                                                      "seed": 5, "solver": None})
    o = t.options
    assert (o.timeout, o.solver, o.strategy, o.bounds, o.jobs, o.seed) == (9.0, "cbc", "milp", "interval", 3, 5)


SUITE = """
name = "opts"
strategy = "milp"
instance_jobs = 2

[[check]]
name = "suite defaults"
model = "MODEL"
spec = "SPEC"

[[check]]
name = "own settings"
model = "MODEL"
spec = "SPEC"
strategy = "input-split"
bounds = "interval"
solver = "highs"
seed = 4
"""


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(body.replace("MODEL", str(MODEL)).replace("SPEC", str(SPEC)))
    return path


def test_suite_sets_options_per_suite_and_per_check_and_the_command_line_wins(tmp_path):
    suite = load_suite(write(tmp_path, SUITE))
    a, b = suite.tasks()
    assert a.option_values() == {"solver": "cbc", "strategy": "milp", "bounds": "symbolic", "instance_jobs": 2,
                                 "seed": 0}
    assert b.option_values() == {"solver": "highs", "strategy": "input-split", "bounds": "interval",
                                 "instance_jobs": 2, "seed": 4}
    a, b = suite.tasks(options={"strategy": "auto", "instance_jobs": None, "bounds": None})
    assert a.strategy == b.strategy == "auto" and b.bounds == "interval" and a.instance_jobs == 2


def test_check_runs_each_check_with_its_options(tmp_path):
    res = CliRunner().invoke(main, ["check", str(write(tmp_path, SUITE)), "--jobs", "2", "--json"])
    assert res.exit_code == 0, res.output
    checks = {c["name"]: c for c in last_json(res.output)["checks"]}
    assert checks["suite defaults"]["stats"]["strategy"] == "milp"
    assert checks["own settings"]["stats"]["strategy"] == "input-split"
    assert checks["own settings"]["stats"]["solver"] == "highs"
    res = CliRunner().invoke(main, ["check", str(write(tmp_path, SUITE)), "--jobs", "2", "--json",
                                    "--strategy", "milp"])
    checks = {c["name"]: c for c in last_json(res.output)["checks"]}
    assert {c["stats"]["strategy"] for c in checks.values()} == {"milp"}


@pytest.mark.parametrize(("extra", "line", "message"), [
    ('strategy = "fast"\n', 5, "bad strategy 'fast'"),
    ('instance_jobs = 0\n', 5, "bad instance_jobs 0"),
    ('bounds = "lp"\n', 5, "bad bounds 'lp'"),
    ('seed = -1\n', 5, "bad seed -1"),
])
def test_bad_suite_options_name_the_line(tmp_path, extra, line, message):
    path = write(tmp_path, '[[check]]\nmodel = "MODEL"\nspec = "SPEC"\n\n' + extra)
    with pytest.raises(ListError) as err:
        load_suite(path)
    assert f"{path}:{line}: " in str(err.value) and message in str(err.value)
    res = CliRunner().invoke(main, ["check", str(path)])
    assert res.exit_code == 2 and message in res.output


def test_instances_csv_takes_the_options(one_instance):
    (t,) = load_instances(one_instance, options={"strategy": "milp", "seed": 2})
    assert t.strategy == "milp" and t.seed == 2 and t.solver == "cbc"


def test_batch_and_check_help_name_the_per_instance_jobs():
    for command in ("batch", "check"):
        out = CliRunner().invoke(main, [command, "--help"]).output
        assert "--instance-jobs" in out and "--strategy" in out and "--bounds" in out and "--solver" in out
