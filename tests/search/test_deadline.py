"""``--timeout`` holds in every phase: loading counts against it, the sampling and PGD rounds of
falsification, the symbolic bounds (between blocks of neurons) and input splitting stop at the
deadline. The phases are checked with a clock that jumps past the deadline at a chosen moment
(``budget.clock`` is the one clock every deadline reads), so no test depends on how fast the
machine is; one test runs a really slow case with a short limit."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.helpers.dag_nets import conv1d_network
from tests.helpers.networks import RELU, random_network
from tests.helpers.paths import REPO
from verifier import Options, budget, make_spec, verify
from verifier.bounds import symbolic
from verifier.budget import Deadline, Expired
from verifier.search import falsify


class JumpingClock:
    """``time.perf_counter`` plus an offset that ``jump()`` moves a day ahead."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.perf_counter() + self.offset

    def jump(self) -> None:
        self.offset += 86400.0


@pytest.fixture
def clock(monkeypatch):
    fake = JumpingClock()
    monkeypatch.setattr(budget, "clock", fake)
    return fake


def _counting(monkeypatch, module, name: str, clock: JumpingClock | None = None, jump_at: int = 1,
              calls: list | None = None) -> list:
    """Replace ``module.name`` by a wrapper counting its calls (and jumping the clock at call ``jump_at``);
    ``calls``: a list shared with other wrapped functions (one count for all)."""
    real, calls = getattr(module, name), [] if calls is None else calls

    def wrapper(*args, **kwargs):
        calls.append(1)
        if clock is not None and len(calls) == jump_at:
            clock.jump()
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def _conv_case(offset: float = 3.0):
    """The conv net on a box that leaves ~4000 neurons unstable: symbolic bounds take seconds.
    The bounds leave y0 in about [y - 0.9, y + 0.9] (y: the centre's output): ``y0 >= y + 3`` is
    proved by them once they are done; ``y + 0.5`` is neither ruled out nor met at the centre, so
    the attack runs."""
    net = conv1d_network(0)
    x = np.random.default_rng(0).uniform(0, 1, net.n_inputs).astype(np.float32).astype(np.float64)
    y = float(net.forward(x)[0])
    return net, make_spec(x - 0.05, x + 0.05, [[f"y0 >= {y + offset!r}"]])


def test_check_raises_expired_with_the_phase(clock):
    d = Deadline.after(10.0)
    d.check("bounds")
    Deadline.never().check("bounds")
    clock.jump()
    with pytest.raises(Expired) as err:
        d.check("bounds")
    assert err.value.phase == "bounds"
    Deadline.never().check("bounds")


def test_loading_counts_against_the_timeout():
    started = budget.clock() - 100.0  # the caller spent 100 s before verify (e.g. loading the model)
    res = verify(REPO / "models/collision_advisory.onnx", REPO / "specs/collision_behind_is_clear.toml",
                 options=Options(timeout=10, started=started))
    assert res.status == "unknown" and res.timed_out
    assert res.reason == "timeout after 10 s (during loading the model)"
    assert res.time_s >= 100.0


def test_symbolic_bounds_stop_between_blocks(monkeypatch, clock):
    net, spec = _conv_case()
    calls = _counting(monkeypatch, symbolic, "backsubstitute", clock)
    res = verify(net, spec, options=Options(timeout=60, falsify=False))
    assert res.status == "unknown" and res.timed_out
    assert "(during bounds)" in res.reason
    assert len(calls) == 1  # the block running when the clock jumped, none after it
    # without the jump the same bounds take many blocks
    monkeypatch.setattr(budget, "clock", time.perf_counter)
    n_blocks = len(calls)
    symbolic.symbolic_bounds(net, spec.cases[0].lower, spec.cases[0].upper)
    assert len(calls) - n_blocks > 5


def test_falsification_stops_sampling_and_descent(monkeypatch, clock):
    net, spec = _conv_case(0.5)
    batches = _counting(monkeypatch, falsify, "margins", clock)
    steps = _counting(monkeypatch, falsify, "_margin_and_grad")
    res = verify(net, spec, options=Options(timeout=60))
    assert res.status == "unknown" and res.timed_out
    assert "(during falsification)" in res.reason
    # one sampling batch (the box centre's), no PGD step; the final margins of the starts
    assert len(steps) == 0 and len(batches) == 2


def test_input_splitting_stops(monkeypatch, clock):
    from verifier.search import input_split

    net = random_network(0, RELU, widths=(3, 16, 16, 2))
    ys = net.forward(np.random.default_rng(0).uniform(-1, 1, (4000, 3)))[:, 0]
    spec = make_spec([-1.0] * 3, [1.0] * 3, [[f"y0 >= {float(ys.max()) + 1e-3!r}"]])
    boxes = _counting(monkeypatch, input_split, "bound_box", clock, jump_at=3)  # one box, or a batch of them:
    _counting(monkeypatch, input_split, "bound_boxes", clock, jump_at=3, calls=boxes)  # one bounding step each
    res = verify(net, spec, options=Options(timeout=60, strategy="input-split", falsify=False))
    assert res.status == "unknown" and res.timed_out
    assert "timeout during branch and bound" in res.reason
    assert len(boxes) == 3


def test_slow_network_with_a_short_limit_is_unknown():
    """Its bounds alone (which would prove it) take about 1 s on an idle 2-core machine (20 s before
    the back-substitution compressed its coefficients): a 0.1 s limit must give unknown."""
    net, spec = _conv_case()
    t0 = time.perf_counter()
    res = verify(net, spec, options=Options(timeout=0.1))
    elapsed = time.perf_counter() - t0
    assert res.status == "unknown" and res.timed_out and "timeout after 0.1 s" in res.reason, res.reason
    assert elapsed < 30.0  # (a sanity bound only: unlimited, this instance runs far longer)
