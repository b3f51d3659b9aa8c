"""Regression tests from the second adversarial review of the DAG work: compressed
back-substitution (``bounds.symbolic``), the screen-then-attack-then-prove order of ``verify``,
and the typed run statistics. The review found no wrong answer; these tests pin the properties
it attacked so that a later change that breaks them fails here.

* Compression is exact: bounds with every coefficient matrix compressed (``COMPRESS_MIN_WIDTH``
  0 or a width that mixes compressed and plain tensors) equal those with compression disabled,
  on random DAGs with zero rows, empty supports, CSR weights (``W[cols]``), the input reached by
  several paths, duplicated max windows, LeakyReLU and Clip (lower lines with offsets).
* They are sound: every sampled pre-activation lies inside them.
* Multi-case specs whose boxes fix different inputs, with the counterexample only in the last
  box: never *holds* (input splitting and MILP, with and without the attack).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers.review_nets2 import mixed_dag_net
from verifier import linalg, make_spec
from verifier.bounds import linear_bounds, symbolic_bounds
from verifier.bounds import symbolic as symbolic_module
from verifier.io.replay import NetworkOracle
from verifier.verify import Options, verify


@pytest.fixture
def sparse_weights(monkeypatch):
    """Small CSR weights stay CSR (``linalg.as_weight``), so ``W[cols]`` runs on sparse rows."""
    monkeypatch.setattr(linalg, "SPARSE_MIN_SIZE", 0)
    monkeypatch.setattr(linalg, "SPARSE_MAX_DENSITY", 1.0)


def _bounds(monkeypatch, net, lo, hi, width: int, C: np.ndarray):
    monkeypatch.setattr(symbolic_module, "COMPRESS_MIN_WIDTH", width)
    b = symbolic_bounds(net, lo, hi)
    return b, linear_bounds(net, b, lo, hi, C)


@pytest.mark.parametrize("seed", range(60))
def test_compressed_back_substitution_is_exact_and_sound(seed, monkeypatch, sparse_weights):
    net, lo, hi = mixed_dag_net(seed)
    rng = np.random.default_rng(seed)
    C = rng.standard_normal((3, net.n_outputs))
    plain, plain_out = _bounds(monkeypatch, net, lo, hi, 10 ** 9, C)
    for width in (0, 4):
        b, out = _bounds(monkeypatch, net, lo, hi, width, C)
        for k in range(len(net.layers)):
            scale = 1.0 + np.max(np.abs(plain.upper[k]), initial=0.0)
            np.testing.assert_allclose(b.lower[k], plain.lower[k], rtol=0, atol=1e-9 * scale)
            np.testing.assert_allclose(b.upper[k], plain.upper[k], rtol=0, atol=1e-9 * scale)
        np.testing.assert_allclose(out[0], plain_out[0], rtol=0, atol=1e-9 * (1 + np.max(np.abs(plain_out[0]))))
    xs = np.vstack([rng.uniform(lo, hi, (300, lo.size)), lo, hi])
    pre = net.pre_activations(xs)
    for k in range(len(net.layers)):
        assert np.all(pre[k] >= b.lower[k] - 1e-9) and np.all(pre[k] <= b.upper[k] + 1e-9), k
    v = pre[-1] @ C.T
    assert np.all(v >= out[0] - 1e-9) and np.all(v <= out[1] + 1e-9)


def _later_case_spec(net, seed: int):
    """Two or three boxes fixing different inputs; ``y_j >= t`` with ``t`` above what the earlier
    boxes reach (when they reach less than the last): only the last box has sampled violations."""
    rng = np.random.default_rng(seed + 7)
    n, orc = net.n_inputs, NetworkOracle(net)
    los, his, samples = [], [], []
    for _ in range(int(rng.integers(2, 4))):
        lo = np.float32(rng.uniform(-1, 0.5, n)).astype(np.float64)
        hi = np.float32(lo + rng.uniform(0, 1, n)).astype(np.float64)
        fixed = rng.random(n) < 0.5
        hi[fixed] = lo[fixed]
        xs = rng.uniform(lo, hi, (200, n)).astype(np.float32).astype(np.float64)
        los.append(lo)
        his.append(hi)
        samples.append((xs, np.array([orc.run(x) for x in xs])))
    j = int(rng.integers(0, net.n_outputs))
    top = [y[:, j].max() for _, y in samples]
    last, others = top[-1], max(top[:-1])
    t = (last + others) / 2 if last > others else last - 0.01 * (abs(last) + 1)
    disjuncts = [[f"y{j} >= {float(t)!r}"], [f"y{(j + 1) % net.n_outputs} >= 1e9"]]
    spec = make_spec(los, his, disjuncts[::-1] if seed % 2 else disjuncts).bind(net.n_inputs, net.n_outputs)
    violated = any(spec.cases[c].violated_at(x, y) for c, (xs, ys) in enumerate(samples) for x, y in zip(xs, ys))
    return spec, violated


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("strategy", ["milp", "input-split"])
@pytest.mark.parametrize("falsify", [True, False])
def test_counterexample_in_a_later_box_with_other_fixed_inputs(seed, strategy, falsify):
    net, _, _ = mixed_dag_net(seed, sparse=False)
    spec, violated = _later_case_spec(net, seed)
    r = verify(net, spec, timeout=20, options=Options(strategy=strategy, falsify=falsify))
    if violated:
        assert r.status != "holds", r.stats.get("disjunct_outcomes")
    if r.status == "violated":
        cex = r.counterexample
        case = spec.cases[cex.case_index]
        assert case.contains(cex.input) and case.violated_at(cex.input, NetworkOracle(net).run(cex.input))
    json.dumps(r.to_json(), allow_nan=False)  # plain JSON: no numpy types, no NaN


def test_timeout_between_screening_and_proof_is_unknown(monkeypatch):
    """The deadline passes right after the bounds screened the first box: unknown (timed out), never holds."""
    import importlib

    verify_module = importlib.import_module("verifier.verify")  # the package's ``verify`` is the function

    net, _, _ = mixed_dag_net(3, sparse=False)
    spec, _ = _later_case_spec(net, 3)
    screened = verify_module._screen_case

    def screen_then_expire(run, case, tally):
        out = screened(run, case, tally)
        run.deadline.at = 0.0  # expired from now on
        return out

    monkeypatch.setattr(verify_module, "_screen_case", screen_then_expire)
    r = verify(net, spec, timeout=60, options=Options(strategy="milp"))
    assert r.status == "unknown" and r.timed_out, (r.status, r.reason)
