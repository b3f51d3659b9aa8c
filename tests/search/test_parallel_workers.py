"""``--jobs N`` input splitting: workers receive the Network and the model's bytes (never the ONNX
path), their set-up is explicit (thread pinning applied in the child only), and the parent's
environment and warning filters are left alone."""

from __future__ import annotations

import os
import shutil
import warnings

import pytest

import verifier
from tests.helpers.checks import check_counterexample
from tests.helpers.paths import REPO
from verifier import Options, verify
from verifier.io.replay import ONNX_BYTES, OnnxOracle
from verifier.procenv import single_thread_values
from verifier.search import parallel

PAR = Options(strategy="input-split", falsify=False, jobs=2, parallel_after=0, timeout=120)
SPECS = {"violated": REPO / "specs/collision_no_strong_beyond_0p3.toml",
         "holds": REPO / "specs/collision_behind_is_clear.toml"}


@pytest.fixture
def moved_model(tmp_path):
    """collision_advisory loaded from a copy that is deleted before verifying, and a copy kept
    elsewhere for the independent check."""
    src = tmp_path / "gone.onnx"
    shutil.copy(REPO / "models/collision_advisory.onnx", src)
    net = verifier.load_model(src)
    src.unlink()
    return net, src


@pytest.mark.parametrize("expected", ["violated", "holds"])
def test_workers_never_open_the_onnx_path(moved_model, expected):
    net, gone = moved_model
    assert not gone.exists() and net.source == str(gone)
    res = verify(net, SPECS[expected], options=PAR)
    assert res.status == expected, res.reason
    assert res.stats["parallel_jobs"] == 2 and res.stats["oracle"] == "onnxruntime"
    if expected == "violated":  # replayed from bytes in a worker; checked again on the original file
        spec = verifier.load_spec(SPECS[expected]).bind(net.n_inputs, net.n_outputs)
        check_counterexample(REPO / "models/collision_advisory.onnx", spec, res.counterexample.input,
                             res.counterexample.output)


def test_worker_payload_is_the_network_and_the_bytes(moved_model):
    net, _ = moved_model
    oracle = OnnxOracle(net)
    shipped, data = parallel.worker_payload(net, oracle)
    assert data is net.meta[ONNX_BYTES] and ONNX_BYTES not in shipped.meta
    assert shipped.layers is net.layers and ONNX_BYTES in net.meta  # the caller's network is untouched


def test_parent_environment_and_state_untouched(moved_model, monkeypatch):
    net, _ = moved_model
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    writes = []
    monkeypatch.setattr(os, "putenv", lambda k, v: writes.append(("set", k, v)))
    monkeypatch.setattr(os, "unsetenv", lambda k: writes.append(("unset", k)))
    before, filters = dict(os.environ), list(warnings.filters)
    res = verify(net, SPECS["violated"], options=PAR)
    assert res.status == "violated", res.reason
    assert writes == [] and dict(os.environ) == before
    assert warnings.filters == filters  # the CBC deprecation filter is scoped, not installed
    assert parallel._STATE is None  # worker state exists in the workers only


def test_worker_initializer_refuses_the_parent(moved_model):
    net, _ = moved_model
    with pytest.raises(RuntimeError, match="worker processes only"):
        parallel._init({"OMP_NUM_THREADS": "1"}, net, None)
    assert parallel._STATE is None


def _env_of_worker(name: str) -> str | None:
    return os.environ.get(name)


def test_pool_children_get_the_pinned_environment(moved_model, monkeypatch):
    import multiprocessing as mp

    net, _ = moved_model
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    shipped, data = parallel.worker_payload(net, OnnxOracle(net))
    env = single_thread_values()
    with mp.get_context("spawn").Pool(1, initializer=parallel._init, initargs=(env, shipped, data)) as pool:
        assert pool.map(_env_of_worker, ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"]) == ["1", "1"]
    assert os.environ["OMP_NUM_THREADS"] == "3"
