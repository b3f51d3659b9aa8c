"""``verifier batch``: parallel runs, expected results, resume after a kill, hard time limits, Dask."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.app.faults import inject
from verifier.batch import RESULT_COLUMNS, Outcome, ResultsFile, Task, run, run_local, split_resumed
from verifier.cli import main

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO.parent / "shared" / "benchmarks" / "vnncomp2021"
TEST_LIST = BENCH / "test" / "instances.csv"
needs_shared = pytest.mark.skipif(not BENCH.is_dir(), reason=f"shared VNN-COMP benchmarks not found at {BENCH}")

# fast ACAS Xu instances (measured: each well under 3 s): two proved, two with a counterexample
ACAS = [("ACASXU_run2a_1_1_batch_2000.onnx", "prop_1.vnnlib"), ("ACASXU_run2a_1_9_batch_2000.onnx", "prop_1.vnnlib"),
        ("ACASXU_run2a_2_1_batch_2000.onnx", "prop_2.vnnlib"), ("ACASXU_run2a_4_4_batch_2000.onnx", "prop_2.vnnlib")]


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the installed CLI in a subprocess (real exit codes, real signals)."""
    return subprocess.run([sys.executable, "-m", "verifier.cli", *args], check=False, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=REPO)


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def verdicts(rows: list[dict]) -> dict[tuple[str, str], str]:
    return {(r["onnx"], r["vnnlib"]): r["result"] for r in rows}


def alive(pids: list[int]) -> list[int]:
    """The pids that are still running (zombies count as gone)."""
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, IndexError):
            continue
        if state != "Z":
            out.append(pid)
    return out


def children_of(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def hang_children() -> list[int]:
    """Processes started by the hang fault of tests.app.faults (stand-ins for a hung CBC)."""
    pids = []
    for cmd in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"verifier-test-hang-child" in cmd.read_bytes() and b"import time" in cmd.read_bytes():
                pids.append(int(cmd.parent.name))
        except OSError:
            continue
    return alive(pids)


def wait_until(cond, limit: float = 10.0) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@pytest.fixture(scope="module")
def acas_list(tmp_path_factory) -> Path:
    """An instances.csv of a few fast ACAS Xu instances (absolute paths, in a folder named acasxu)."""
    if not BENCH.is_dir():
        pytest.skip(f"shared VNN-COMP benchmarks not found at {BENCH}")
    folder = tmp_path_factory.mktemp("lists") / "acasxu"
    folder.mkdir()
    lst = folder / "instances.csv"
    lst.write_text("".join(f"{BENCH / 'acasxu' / o},{BENCH / 'acasxu' / v},60\n" for o, v in ACAS))
    return lst


@pytest.fixture(scope="module")
def two_jobs_run(acas_list, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """The test instances and the ACAS Xu ones with --jobs 2 and both expected.csv files."""
    out = tmp_path_factory.mktemp("run") / "results.csv"
    proc = cli("batch", str(TEST_LIST), str(acas_list), "--jobs", "2", "--out", str(out), "--json",
               "--expected", str(BENCH / "test" / "expected.csv"), "--expected", str(BENCH / "acasxu" / "expected.csv"))
    return proc, out


@needs_shared
def test_batch_matches_expected(two_jobs_run):
    proc, out = two_jobs_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = read_rows(out)
    assert len(rows) == 5 + len(ACAS)
    assert list(rows[0]) == list(RESULT_COLUMNS)
    assert all(r["match"] == "yes" for r in rows), rows
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    summary = {s["benchmark"]: s for s in report["summary"]}
    assert summary["test"]["holds"] == 4 and summary["test"]["violated"] == 1
    assert summary["acasxu"]["holds"] == 2 and summary["acasxu"]["violated"] == 2
    assert summary["total"]["instances"] == 9 and summary["total"]["wrong"] == 0
    assert report["contradictions"] == 0
    # the per-instance lines (stderr is not a terminal) and the summary table
    assert proc.stderr.count("] ") >= 9
    assert "benchmark" in proc.stdout and "median_s" in proc.stdout
    # rows of a JSON report carry the counterexample of violated instances
    sat = [r for r in report["rows"] if r["result"] == "violated"]
    assert sat and all(r["counterexample"]["input"] for r in sat)


@needs_shared
def test_one_job_gives_the_same_results(two_jobs_run, acas_list, tmp_path):
    _, out2 = two_jobs_run
    out1 = tmp_path / "one.csv"
    proc = cli("batch", str(TEST_LIST), str(acas_list), "--jobs", "1", "--out", str(out1))
    assert proc.returncode == 0, proc.stderr
    assert verdicts(read_rows(out1)) == verdicts(read_rows(out2))


@needs_shared
def test_contradiction_is_loud_and_exit_1(tmp_path):
    wrong = tmp_path / "expected.csv"
    wrong.write_text("onnx,vnnlib,timeout_s,expected\n"
                     f"{BENCH / 'test' / 'test_sat.onnx'},{BENCH / 'test' / 'test_prop.vnnlib'},60,holds\n")
    proc = cli("batch", str(TEST_LIST), "--expected", str(wrong), "--filter", "test_sat", "--jobs", "1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "CONTRADICTION" in proc.stdout and "CONTRADICTION" in proc.stderr
    assert "result VIOLATED, expected HOLDS" in proc.stdout


@needs_shared
def test_killed_batch_resumes_without_duplicates_or_losses(two_jobs_run, tmp_path):
    out = tmp_path / "results.csv"
    # the last instance hangs (a fault runner injected by tests.app.fault_cli), so the batch is surely mid-run
    batch = subprocess.Popen([sys.executable, "-m", "tests.app.fault_cli", "--hang-on", "test_unsat", "batch",
                              str(TEST_LIST), "--jobs", "1", "--out", str(out)], cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: out.exists() and len(read_rows(out)) >= 4, 60), "no rows appeared"
        assert wait_until(lambda: bool(hang_children()), 10)
        workers = children_of(batch.pid)
        assert workers
        batch.send_signal(signal.SIGKILL)  # no clean-up possible in the batch itself
        batch.wait(10)
    finally:
        if batch.poll() is None:
            batch.kill()
    # orphaned workers notice their parent is gone and take their solver children with them
    assert wait_until(lambda: not alive(workers) and not hang_children(), 10)
    with out.open("a") as f:
        f.write("test_unsat.onnx,test_prop.vnn")  # a row cut short by the kill
    proc = cli("batch", str(TEST_LIST), "--jobs", "1", "--out", str(out), "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "resumed: 4 of 5" in proc.stderr
    rows = read_rows(out)
    keys = [(r["onnx"], r["vnnlib"]) for r in rows]
    assert len(keys) == len(set(keys)) == 5
    assert out.read_text().count("onnx,vnnlib,result") == 1
    expected = {k: v for k, v in verdicts(read_rows(two_jobs_run[1])).items() if k[0].startswith("test/")}
    assert {("test/" + o, "test/" + v): r for (o, v), r in verdicts(rows).items()} == expected
    # resuming a complete file runs nothing
    again = cli("batch", str(TEST_LIST), "--jobs", "1", "--out", str(out), "--resume")
    assert again.returncode == 0 and "5 instances (5 resumed)" in again.stdout
    assert len(read_rows(out)) == 5


@needs_shared
def test_sigterm_stops_the_batch_and_its_workers(tmp_path):
    out = tmp_path / "results.csv"
    batch = subprocess.Popen([sys.executable, "-m", "tests.app.fault_cli", "--hang-on", "test_tiny", "batch",
                              str(TEST_LIST), "--jobs", "1", "--out", str(out)], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: bool(hang_children()), 60)
        batch.send_signal(signal.SIGTERM)
        _, err = batch.communicate(timeout=20)
    finally:
        if batch.poll() is None:
            batch.kill()
    assert batch.returncode == 130
    assert "--resume" in err
    assert wait_until(lambda: not hang_children(), 5)
    assert [r["onnx"] for r in read_rows(out)] == ["test_nano.onnx"]


@needs_shared
def test_hung_and_crashed_workers_give_unknown_and_the_rest_completes():
    t = BENCH / "test"
    tasks = inject([Task(o, v, str(t / o), str(t / v), 1.0, "test") for o, v in
                    [("test_nano.onnx", "test_nano.vnnlib"), ("test_tiny.onnx", "test_tiny.vnnlib"),
                     ("test_small.onnx", "test_small.vnnlib"), ("test_sat.onnx", "test_prop.vnnlib"),
                     ("test_unsat.onnx", "test_prop.vnnlib")]], hang_on="test_tiny", crash_on="test_small")
    got: dict[str, Outcome] = {}
    t0 = time.monotonic()
    run_local(tasks, 2, lambda o: got.setdefault(o.task.onnx, o))
    assert time.monotonic() - t0 < 30
    assert got["test_tiny.onnx"].status == "unknown" and got["test_tiny.onnx"].reason.startswith("timeout")
    assert got["test_tiny.onnx"].timed_out
    assert got["test_small.onnx"].status == "unknown" and "SIGKILL" in got["test_small.onnx"].reason
    assert [got[k].status for k in ("test_nano.onnx", "test_sat.onnx", "test_unsat.onnx")] == \
        ["holds", "violated", "holds"]
    assert wait_until(lambda: not hang_children(), 5), "the hung worker's child process survived"


@pytest.mark.parametrize(("content", "line", "message"), [
    ("a.onnx,b.vnnlib\n", 1, "expected 3 columns"),
    ("{m},{s},60\n{m},{s},soon\n", 2, "bad timeout 'soon'"),
    ("{m},{s},60\n\n{m},{s},0\n", 3, "bad timeout '0'"),
    ("{m},{s},60\n{m},missing.vnnlib,60\n", 2, "vnnlib file not found: missing.vnnlib"),
    ("{m},{s},60,extra\n", 1, "got 4"),
])
def test_malformed_list_exits_2_with_file_and_line(tmp_path, content, line, message):
    lst = tmp_path / "instances.csv"
    lst.write_text(content.format(m=REPO / "models" / "leaky_classifier.onnx",
                                  s=REPO / "specs" / "leaky_centre_is_class0.vnnlib"))
    res = CliRunner().invoke(main, ["batch", str(lst)])
    assert res.exit_code == 2, res.output
    assert f"{lst}:{line}: " in res.output and message in res.output


def test_malformed_expected_file_exits_2(tmp_path):
    lst = tmp_path / "instances.csv"
    lst.write_text(f"{REPO / 'models' / 'leaky_classifier.onnx'},{REPO / 'specs' / 'leaky_centre_is_class0.vnnlib'},9\n")
    exp = tmp_path / "expected.csv"
    exp.write_text("onnx,vnnlib,timeout_s,expected\nx.onnx,y.vnnlib,9,proved\n")
    res = CliRunner().invoke(main, ["batch", str(lst), "--expected", str(exp)])
    assert res.exit_code == 2 and f"{exp}:2: bad expected value 'proved'" in res.output


def test_missing_list_and_bad_options_exit_2(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["batch", str(tmp_path / "none.csv")])
    assert res.exit_code == 2 and "none.csv: file not found" in res.output
    lst = tmp_path / "instances.csv"
    lst.write_text(f"{REPO / 'models' / 'leaky_classifier.onnx'},{REPO / 'specs' / 'leaky_centre_is_class0.vnnlib'},9\n")
    assert runner.invoke(main, ["batch", str(lst), "--resume"]).exit_code == 2
    assert runner.invoke(main, ["batch", str(lst), "--filter", "nomatch"]).exit_code == 2
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("a,b,c\n1,2,3\n")
    res = runner.invoke(main, ["batch", str(lst), "--out", str(foreign), "--resume"])
    assert res.exit_code == 2 and "not a results file" in res.output
    assert foreign.read_text() == "a,b,c\n1,2,3\n"


def test_scheduler_without_dask_is_a_clear_exit_2(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name in ("dask", "distributed"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    lst = tmp_path / "instances.csv"
    lst.write_text(f"{REPO / 'models' / 'leaky_classifier.onnx'},{REPO / 'specs' / 'leaky_centre_is_class0.vnnlib'},9\n")
    res = CliRunner().invoke(main, ["batch", str(lst), "--scheduler", "local"])
    assert res.exit_code == 2 and 'pip install ".[dask]"' in res.output


def test_results_file_recovery_and_resume_bookkeeping(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(",".join(RESULT_COLUMNS) + "\n" + "a.onnx,p.vnnlib,holds,1.5,,holds,yes\n"
                    "a.onnx,p.vnnlib,unknown,3.0,timeout after 3 s,,\n" + "b.onnx,p.vn")
    rf = ResultsFile(path, resume=True)
    assert len(rf.rows) == 2
    rf.close()
    assert path.read_text().endswith("timeout after 3 s,,\n")  # the cut row is gone
    t = [Task("a.onnx", "p.vnnlib", "/a", "/p", 1), Task("a.onnx", "p.vnnlib", "/a", "/p", 1),
         Task("a.onnx", "p.vnnlib", "/a", "/p", 1), Task("b.onnx", "p.vnnlib", "/b", "/p", 1)]
    done, todo = split_resumed(t, rf.rows)
    assert [o.status for o in done] == ["holds", "unknown"] and done[1].timed_out
    assert len(todo) == 2 and todo[1].onnx == "b.onnx"


@needs_shared
def test_dask_local_cluster_gives_the_same_results(two_jobs_run):
    pytest.importorskip("distributed", reason="Dask is an optional extra: pip install '.[dask]'")
    t = BENCH / "test"
    tasks = [Task(f"test/{o}", f"test/{v}", str(t / o), str(t / v), 30, "test") for o, v in
             [("test_nano.onnx", "test_nano.vnnlib"), ("test_tiny.onnx", "test_tiny.vnnlib"),
              ("test_small.onnx", "test_small.vnnlib"), ("test_sat.onnx", "test_prop.vnnlib"),
              ("test_unsat.onnx", "test_prop.vnnlib")]]
    got: list[Outcome] = []
    run(tasks, 2, got.append, scheduler="local")
    local = {k: v for k, v in verdicts(read_rows(two_jobs_run[1])).items() if k[0].startswith("test/")}
    assert {(o.task.onnx, o.task.vnnlib): o.status for o in got} == local
    sat = [o for o in got if o.status == "violated"]
    assert sat[0].counterexample is not None
