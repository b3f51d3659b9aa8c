"""Worker isolation without test hooks in production code: explicit environment, own session, faults
injected through ``Task.runner``."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from dataclasses import replace
from pathlib import Path

from verifier.app.pool import run_isolated, run_local
from verifier.app.procenv import PACKAGE_ROOT, SINGLE_THREAD_ENV, child_environment
from verifier.app.tasks import Outcome, Task

REPO = Path(__file__).resolve().parents[2]
MODEL, SPEC = REPO / "models" / "leaky_classifier.onnx", REPO / "specs" / "leaky_centre_is_class0.toml"
TASK = Task("m", "s", str(MODEL), str(SPEC), 20.0, "t")


def test_no_environment_hooks_in_production_code():
    for path in (REPO / "verifier").rglob("*.py"):
        text = path.read_text()
        assert "VERIFIER_TEST" not in text, path
        assert "_config[" not in text, path  # multiprocessing's private process fields


def test_child_environment_pins_threads_and_leaves_the_parent_alone(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = child_environment()
    assert all(env[k] == "1" for k in SINGLE_THREAD_ENV)
    assert env["PYTHONPATH"].split(os.pathsep) == [PACKAGE_ROOT, "/elsewhere"]
    assert os.environ["OMP_NUM_THREADS"] == "8"


def test_worker_gets_its_environment_and_session_explicitly(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    before = dict(os.environ)
    out = run_isolated(replace(TASK, runner="tests.app.faults:report_process"))
    facts = json.loads(out.reason)
    assert facts["env"] == {k: "1" for k in SINGLE_THREAD_ENV}
    assert facts["sid"] == facts["pid"] == facts["pgrp"]  # a session leader: CBC joins its group
    assert dict(os.environ) == before


def test_runner_errors_are_unknown_not_a_dead_batch():
    got: list[Outcome] = []
    run_local([replace(TASK, runner="tests.app.faults:fail"), replace(TASK, runner="no_such_module:run"), TASK],
              2, got.append)
    by_runner = {o.task.runner: o for o in got}
    assert "RuntimeError: runner bug" in by_runner["tests.app.faults:fail"].reason
    assert "ModuleNotFoundError" in by_runner["no_such_module:run"].reason
    assert by_runner[None].status == "holds" and by_runner[None].stats["cases"] >= 1


def test_crash_is_reported_with_its_signal():
    out = run_isolated(replace(TASK, runner="tests.app.faults:crash"))
    assert out.status == "unknown" and "SIGKILL" in out.reason


def _isolated_in_daemon(conn) -> None:
    conn.send(run_isolated(TASK).status)


def test_a_daemonic_process_can_run_isolated_instances():
    """Dask workers are daemonic: multiprocessing refuses them children, a fresh worker interpreter is fine."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_isolated_in_daemon, args=(child,), daemon=True)
    proc.start()
    try:
        assert parent.poll(120)
        assert parent.recv() == "holds"
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
