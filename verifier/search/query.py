"""Bound queries, the Python API for people who study a network: ranges of outputs, of every
layer's pre-activations, and of linear functions of the outputs over an input box.

Methods, each at least as tight as the one before: ``interval``, ``symbolic``, ``lp``, ``milp``
(the MILP solver's proved bounds; ``Bounds.exact`` says where they are the extrema to the stated
tolerance, see ``tighten.milp_extrema``). ``exact`` (``search.exact_query``): branch and bound
per end of each row to an absolute ``gap``, with a witness input for each end replayed by the
oracle (onnxruntime for an ONNX model); ``Bounds.exact`` says where both ends closed the gap.
Its bounds are sound for the float32 network (rounding included) and nest in ``symbolic``'s
(in ``lp``'s too when it LP-tightens its root bounds).

Any ``Network`` works: a DAG (residual blocks), max layers (their ``layer_bounds`` entry bounds
the pre-activations, before the max), sparse weights.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from ..bounds import LayerBounds, check_box, interval_bounds, linear_bounds, symbolic_bounds
from ..budget import Deadline
from ..errors import VerifierError
from ..io.onnx import load_model
from ..network import Network

METHODS = ("interval", "symbolic", "lp", "milp", "exact")
#: the default absolute gap of method ``exact``
DEFAULT_GAP = 1e-3


@dataclass
class Bounds:
    """Sound bounds ``lower <= f <= upper`` per queried quantity over the input box.

    Method ``exact`` also fills the witness fields: per row the input where the lowest (highest)
    value was found and the value the oracle computes there (``nan`` where there is none), so
    ``lower <= value_lower`` and ``value_upper <= upper``; ``gap`` is the requested absolute gap,
    ``stats`` per row the branch-and-bound counters of both ends.
    """

    lower: np.ndarray
    upper: np.ndarray
    exact: np.ndarray  # per entry: both bounds are the true min / max (milp: to milp_extrema's tolerance; exact: to gap)
    method: str
    time_s: float
    layers: LayerBounds | None = None
    gap: float | None = None
    witness_lower: np.ndarray | None = None  # (rows, n_inputs)
    witness_upper: np.ndarray | None = None
    value_lower: np.ndarray | None = None  # (rows,) replayed
    value_upper: np.ndarray | None = None
    engine: str | None = None
    oracle: str | None = None
    stats: list[dict] | None = None

    def to_json(self) -> dict:
        out = {"method": self.method, "time_s": round(self.time_s, 4), "lower": self.lower.tolist(),
               "upper": self.upper.tolist(), "exact": self.exact.tolist()}
        if self.witness_lower is not None:
            out.update({"gap": self.gap, "engine": self.engine, "oracle": self.oracle, "witness": {
                "lower": {"input": _rows(self.witness_lower), "value": _json_floats(self.value_lower)},
                "upper": {"input": _rows(self.witness_upper), "value": _json_floats(self.value_upper)}},
                "stats": self.stats})
        return out


def _json_floats(v: np.ndarray) -> list:
    """Floats for JSON, ``nan`` as null (JSON has no NaN)."""
    return [None if not np.isfinite(x) else float(x) for x in np.asarray(v, float)]


def _rows(X: np.ndarray) -> list:
    return [None if np.isnan(x).any() else [float(v) for v in x] for x in X]


def _network(model: Network | str | os.PathLike) -> Network:
    return model if isinstance(model, Network) else load_model(model)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise VerifierError(f"unknown bound method {method!r}; choose one of: {', '.join(METHODS)}")


def layer_bounds(model: Network | str | os.PathLike, lower, upper, method: str = "symbolic",
                 timeout: float | None = None) -> LayerBounds:
    """Pre-activation bounds of every layer (the last entry is the output layer).

    ``milp`` gives the ``lp`` bounds here (exact MILP extrema are computed for outputs only).
    """
    _check_method(method)
    net = _network(model)
    lower, upper = check_box(lower, upper, net.n_inputs)
    if method == "interval":
        return interval_bounds(net, lower, upper)
    sym = symbolic_bounds(net, lower, upper)
    if method == "symbolic":
        return sym
    from .tighten import lp_bounds

    return lp_bounds(net, lower, upper, start=sym, deadline=Deadline.after(timeout))


def linear_query(model: Network | str | os.PathLike, lower, upper, C, d=None, method: str = "symbolic",
                 timeout: float | None = None, gap: float = DEFAULT_GAP, settings=None, lp: bool | None = None,
                 progress=None) -> Bounds:
    """Bounds of ``C @ y + d`` (rows of ``C`` over the outputs ``y``), e.g. ``y0 - y1``.

    ``gap``, ``settings`` (``branch_bound.Settings``), ``lp`` (LP-tighten the root bounds: None
    decides, ``exact_query.lp_pays``) and ``progress`` (a callable taking a status text) are for
    method ``exact`` only."""
    t0 = time.perf_counter()
    _check_method(method)
    net = _network(model)
    lower, upper = check_box(lower, upper, net.n_inputs)
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    if C.shape[1] != net.n_outputs:
        raise VerifierError(f"query has {C.shape[1]} output coefficients, the network has {net.n_outputs} outputs")
    d = np.zeros(C.shape[0]) if d is None else np.asarray(d, dtype=np.float64)
    deadline = Deadline(None if timeout is None else t0 + timeout, timeout)
    exact = np.zeros(C.shape[0], bool)
    if method == "exact":
        return _exact(net, lower, upper, C, d, gap, deadline, settings, lp, progress, t0)
    if method == "interval":
        lb = interval_bounds(net, lower, upper)
        Cp, Cn = np.maximum(C, 0), np.minimum(C, 0)
        lo = Cp @ lb.output_lower + Cn @ lb.output_upper + d
        hi = Cp @ lb.output_upper + Cn @ lb.output_lower + d
        return Bounds(lo, hi, exact, method, time.perf_counter() - t0, lb)
    lb = symbolic_bounds(net, lower, upper)
    lo, hi = linear_bounds(net, lb, lower, upper, C)  # d is added at the end, for every method
    if method in ("lp", "milp"):
        from .tighten import lp_bounds

        # milp: the LP stage (which gives the big-M values) gets at most half of the budget
        lp_deadline = deadline if method != "milp" or timeout is None else Deadline(t0 + timeout / 2, timeout / 2)
        lb = lp_bounds(net, lower, upper, start=lb, deadline=lp_deadline)
        # back-substitution is not monotone in the layer bounds (the relaxations' slopes change with
        # them): keep the symbolic result where it is tighter, so each method nests in the one before
        lo_lp, hi_lp = linear_bounds(net, lb, lower, upper, C)
        lo, hi = np.maximum(lo, lo_lp), np.minimum(hi, hi_lp)
    if method == "milp":
        from .tighten import milp_extrema

        lo, hi, exact = milp_extrema(net, lower, upper, C, lb, deadline, start=(lo, hi))
    return Bounds(lo + d, hi + d, exact, method, time.perf_counter() - t0, lb)


def _exact(net, lower, upper, C, d, gap, deadline, settings, lp, progress, t0) -> Bounds:
    from .exact_query import exact_bounds

    if not np.isfinite(gap) or gap < 0:
        raise VerifierError(f"the gap must be a finite number >= 0, got {gap!r}")
    r = exact_bounds(net, lower, upper, C, d, float(gap), deadline, settings, lp, progress)
    return Bounds(r.lower, r.upper, r.exact, "exact", time.perf_counter() - t0, r.layers, float(gap),
                  r.witness_lower, r.witness_upper, r.value_lower, r.value_upper, r.engine, r.oracle, r.stats)


def output_bounds(model: Network | str | os.PathLike, lower, upper, method: str = "symbolic",
                  timeout: float | None = None, gap: float = DEFAULT_GAP, **kwargs) -> Bounds:
    """Bounds of every output over the box ``[lower, upper]`` (``gap`` and ``kwargs``: see ``linear_query``)."""
    net = _network(model)
    return linear_query(net, lower, upper, np.eye(net.n_outputs), None, method, timeout, gap, **kwargs)
