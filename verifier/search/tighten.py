"""Optimisation-based bound tightening (MIPVerify-style progressive tightening).

``lp_bounds``: layer by layer, every neuron that is still unstable is minimised and maximised over
the LP relaxation of the layers before it (with the bounds found so far); the symbolic bounds of
the later layers are then recomputed from the tightened ones. ``milp_extrema``: the same for the
outputs (or any linear function of them) with the binaries kept: the solver's proved bound, padded
for its stated optimality tolerance, and exact (to that tolerance) when the solver closes the gap.
Every result is intersected with the bounds it started from, so tightening never loosens.

Networks are DAGs (residual blocks, max layers, sparse weights): the LPs and MILPs are
``milp.encoding.encode`` of the network or of a prefix of it, which walks the DAG.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..activations import kinks_inside
from ..bounds import LayerBounds, check_box, symbolic_bounds
from ..budget import Deadline
from ..milp.encoding import encode, output_rows
from ..milp.solvers.cbc import numerical_doubt
from ..milp.solvers.highs import LinearProgram, milp_pad
from ..network import Network


def _prefix(network: Network, k: int) -> Network:
    """Layers ``0..k-1`` as they are, then layer ``k`` as a plain affine output layer: its output is
    layer ``k``'s pre-activation (``n_out`` values, also for a max layer). Still a valid DAG: every
    layer keeps its sources, all among tensors ``0..k`` (layers only read earlier tensors); a layer
    before ``k`` that does not reach it stays, unused (the bounds keep their indices)."""
    last = network.layers[k]
    return Network(network.layers[:k] + (replace(last, activation=None),), network.input_shape,
                   (last.n_out,), network.source)


def _objective(prefix: Network, milp, row_out: np.ndarray, row_in: np.ndarray | None = None):
    """(variable indices, coefficients, constant, float rounding) of ``row_out . y + row_in . x`` in
    ``milp``: the real value is ``coef . v + constant``; the float one is within the rounding of it."""
    ax = np.zeros((1, prefix.n_inputs)) if row_in is None else row_in[None, :]
    (idx, val, rhs), = output_rows(prefix, milp, ax, row_out[None, :], np.zeros(1), widen=False)
    return idx, val, -rhs, float(np.abs(row_out) @ milp.output_error)


def lp_bounds(network: Network, lower: np.ndarray, upper: np.ndarray, start: LayerBounds | None = None,
              deadline: Deadline | float | None = None) -> LayerBounds:
    """LP-tightened pre-activation bounds of every layer (outputs included).

    Stops tightening (keeping what it has, which is sound) when ``deadline`` (a ``Deadline`` or an
    absolute ``time.perf_counter`` time) passes.
    """
    deadline = Deadline.coerce(deadline)
    lower, upper = check_box(lower, upper, network.n_inputs)
    b = start if start is not None else symbolic_bounds(network, lower, upper)
    los, his = list(b.lower), list(b.upper)
    for k in range(1, len(network.layers)):
        if deadline.expired():
            break
        layer = network.layers[k]
        if layer.activation is not None:
            targets = np.flatnonzero(kinks_inside(layer.activation, los[k], his[k]))
        else:
            targets = np.arange(layer.n_out)
        if targets.size == 0:
            continue
        prefix = _prefix(network, k)
        milp = encode(prefix, LayerBounds(tuple(los[:k + 1]), tuple(his[:k + 1]), "partial"), lower, upper)
        prog = LinearProgram(milp, integer=False)
        lo_k, hi_k = los[k].copy(), his[k].copy()
        for i in targets:
            if deadline.expired():
                break
            e = np.zeros(layer.n_out)
            e[i] = 1.0
            idx, val, const, err = _objective(prefix, milp, e)
            lo_v, _ = prog.minimize(idx, val, deadline.remaining())
            if lo_v is not None:
                lo_k[i] = max(lo_k[i], lo_v + const - err)
            hi_v, _ = prog.maximize(idx, val, deadline.remaining())
            if hi_v is not None:
                hi_k[i] = min(hi_k[i], hi_v + const + err)
        hi_k = np.maximum(hi_k, lo_k)  # rounding can cross them on a degenerate neuron
        los[k], his[k] = lo_k, hi_k
        if k + 1 < len(network.layers):
            # propagate: symbolic bounds of later layers from the tightened relaxations
            start_b = LayerBounds(tuple(los), tuple(his), "lp")
            nb = symbolic_bounds(network, lower, upper, start=start_b)
            los = [np.maximum(a, c) for a, c in zip(los, nb.lower)]
            his = [np.minimum(a, c) for a, c in zip(his, nb.upper)]
        if deadline.expired():
            break
    return LayerBounds(tuple(los), tuple(his), "lp")


def milp_extrema(network: Network, lower: np.ndarray, upper: np.ndarray, C: np.ndarray, bounds: LayerBounds,
                 deadline: Deadline | float | None = None, start: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min and max of each row of ``C @ y`` with the binaries kept, plus per-row exactness.

    ``bounds`` (e.g. LP bounds) give the big-M values. Each direction is one HiGHS MILP solved to
    the stated optimality tolerance ``tol(v) = lp.MILP_ABS_GAP + lp.MILP_REL_GAP * |v|`` (1e-6
    absolute plus 1e-9 relative; ``lp.milp_gap_tolerance``). What is reported for a direction is
    the solver's proved (dual) bound, never its incumbent, padded outward (``_final_padding``) by
    ``tol`` plus the solver-feasibility pad ``lp.MILP_PAD_ABS + lp.MILP_PAD_REL * |v|`` (1e-6 +
    1e-6 |v|: feasibility tolerances relax the big-M rows), and intersected with the bound that
    ``bounds`` already implied (and with ``start``, sound bounds of the rows the caller already has).
    So every bound is sound in real arithmetic.

    ``exact[r]``: in both directions the solver ended optimal (not on the deadline) with incumbent
    and proved bound within ``tol``; then each reported bound is within ``2 tol + pad`` of the true
    extremum (one ``tol`` for the gap, one for what the solver may prune within it). A direction
    that runs out of time keeps its proved bound (at worst the one ``bounds`` implied), not exact.
    A MILP whose numbers are too large for the solver's tolerances (``cbc.numerical_doubt``) is not
    solved: its bounds broke there (the start bounds are returned, not exact).
    """
    from ..bounds import linear_bounds

    deadline = Deadline.coerce(deadline)
    lower, upper = check_box(lower, upper, network.n_inputs)
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    n = C.shape[0]
    lo_start, hi_start = linear_bounds(network, bounds, lower, upper, C)
    if start is not None:
        lo_start, hi_start = np.maximum(lo_start, start[0]), np.minimum(hi_start, start[1])
    # per row and direction, unpadded: the solver's proved bound of the row (constant included),
    # the magnitude the tolerances scale with, and whether the solve closed its gap
    proved = np.array([np.full(n, -np.inf), np.full(n, np.inf)])
    scale = np.zeros((2, n))
    closed = np.zeros((2, n), bool)
    milp = encode(network, bounds, lower, upper)
    if numerical_doubt(milp) is not None:  # the solver's bounds are not to be trusted on such numbers
        return lo_start, hi_start, np.zeros(n, bool)
    prog = LinearProgram(milp, integer=True)
    objectives = [_objective(network, milp, C[r]) for r in range(n)]
    float_err = np.array([o[3] for o in objectives])  # onnxruntime's output rounding per row
    # d = 0: min of row r; d = 1: its max, as the min of its negation
    solves = [(r, d) for r in range(n) for d in (0, 1)]
    for k, (r, d) in enumerate(solves):
        if deadline.expired():
            break  # the rows not solved keep the bounds they started from
        idx, val, const, _ = objectives[r]
        sign = 1.0 if d == 0 else -1.0
        # share what is left fairly between the remaining solves
        res = prog.mip_minimize(idx, sign * val, deadline.share(len(solves) - k))
        if res.bound is not None:
            proved[d, r] = sign * res.bound + const
            scale[d, r] = abs(res.bound) + abs(const)
            closed[d, r] = res.closed
    lo, hi = _final_padding(lo_start, hi_start, proved, scale, float_err)
    return lo, hi, closed[0] & closed[1]


def _final_padding(lo_start: np.ndarray, hi_start: np.ndarray, proved: np.ndarray, scale: np.ndarray,
                   float_err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one place where ``milp_extrema``'s bounds are padded outward: the proved MILP bounds
    (``proved[0]`` lower, ``proved[1]`` upper; infinite where no solve gave one) widened by
    ``lp.milp_pad`` (optimality tolerance + solver-feasibility pad, at the magnitude ``scale``) and by
    the output layer's float rounding ``float_err`` (the MILP's rounding variables cover the hidden
    layers), then intersected with the sound bounds the search started from."""
    d = milp_pad(scale)
    lo = np.maximum(lo_start, proved[0] - d[0] - float_err)
    hi = np.minimum(hi_start, proved[1] + d[1] + float_err)
    return lo, hi
