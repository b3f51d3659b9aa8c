"""Optimisation-based bound tightening (MIPVerify-style progressive tightening).

``lp_bounds``: layer by layer, every neuron that is still unstable is minimised and maximised over
the LP relaxation of the layers before it (with the bounds found so far); the symbolic bounds of
the later layers are then recomputed from the tightened ones. ``milp_extrema``: the same for the
outputs (or any linear function of them) with the binaries kept, giving the exact extremum when
the solver proves optimality and the solver's proved bound otherwise.
Every result is intersected with the bounds it started from, so tightening never loosens.
"""

from __future__ import annotations

import time

import numpy as np

from .bounds import LayerBounds, check_box, symbolic_bounds
from .encoding import encode, output_rows
from .lp import LinearProgram
from .network import Layer, Network
from .relax import kinks_inside


def _prefix(network: Network, k: int) -> Network:
    """Layers ``0..k-1`` as they are, then layer ``k`` as a plain affine output layer."""
    last = network.layers[k]
    return Network(network.layers[:k] + (Layer(last.weight, last.bias, None),), network.input_shape,
                   (last.n_out,), network.source)


def _objective(prefix: Network, milp, row_out: np.ndarray, row_in: np.ndarray | None = None):
    """(variable indices, coefficients, constant) of ``row_out . y + row_in . x`` in ``milp``."""
    ax = np.zeros((1, prefix.n_inputs)) if row_in is None else row_in[None, :]
    (idx, val, rhs), = output_rows(prefix, milp, ax, row_out[None, :], np.zeros(1))
    return idx, val, -rhs


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.perf_counter()


def lp_bounds(network: Network, lower: np.ndarray, upper: np.ndarray, start: LayerBounds | None = None,
              deadline: float | None = None) -> LayerBounds:
    """LP-tightened pre-activation bounds of every layer (outputs included).

    Stops tightening (keeping what it has, which is sound) when ``deadline`` passes.
    """
    lower, upper = check_box(lower, upper, network.n_inputs)
    b = start if start is not None else symbolic_bounds(network, lower, upper)
    los, his = list(b.lower), list(b.upper)
    for k in range(1, len(network.layers)):
        rem = _remaining(deadline)
        if rem is not None and rem <= 0:
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
            rem = _remaining(deadline)
            if rem is not None and rem <= 0:
                break
            e = np.zeros(layer.n_out)
            e[i] = 1.0
            idx, val, const = _objective(prefix, milp, e)
            lo_v, _ = prog.minimize(idx, val, rem)
            if lo_v is not None:
                lo_k[i] = max(lo_k[i], lo_v + const)
            hi_v, _ = prog.maximize(idx, val, _remaining(deadline))
            if hi_v is not None:
                hi_k[i] = min(hi_k[i], hi_v + const)
        hi_k = np.maximum(hi_k, lo_k)  # rounding can cross them on a degenerate neuron
        los[k], his[k] = lo_k, hi_k
        if k + 1 < len(network.layers):
            # propagate: symbolic bounds of later layers from the tightened relaxations
            start_b = LayerBounds(tuple(los), tuple(his), "lp")
            nb = symbolic_bounds(network, lower, upper, start=start_b)
            los = [np.maximum(a, c) for a, c in zip(los, nb.lower)]
            his = [np.minimum(a, c) for a, c in zip(his, nb.upper)]
        rem = _remaining(deadline)
        if rem is not None and rem <= 0:
            break
    return LayerBounds(tuple(los), tuple(his), "lp")


def milp_extrema(network: Network, lower: np.ndarray, upper: np.ndarray, C: np.ndarray, bounds: LayerBounds,
                 deadline: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min and max of each row of ``C @ y`` with the binaries kept, plus per-row exactness.

    ``bounds`` (e.g. LP bounds) give the big-M values; rows the solver cannot close in time keep
    the best proved bound (at worst what ``bounds`` already implied).
    """
    from .bounds import linear_bounds

    lower, upper = check_box(lower, upper, network.n_inputs)
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    lo, hi = linear_bounds(network, bounds, lower, upper, C)
    exact_lo = np.zeros(C.shape[0], bool)
    exact_hi = np.zeros(C.shape[0], bool)
    milp = encode(network, bounds, lower, upper)
    prog = LinearProgram(milp, integer=True)
    n = C.shape[0]
    for r in range(n):
        idx, val, const = _objective(network, milp, C[r])
        rem = _remaining(deadline)
        if rem is not None and rem <= 0:
            break
        # share what is left fairly between the remaining solves (2 per row)
        v, ex = prog.minimize(idx, val, None if rem is None else rem / (2 * (n - r)))
        if v is not None:  # the padded exact optimum may sit a hair below an already-tight bound
            lo[r], exact_lo[r] = max(lo[r], v + const), ex
        rem = _remaining(deadline)
        if rem is not None and rem <= 0:
            break
        v, ex = prog.maximize(idx, val, None if rem is None else rem / (2 * (n - r) - 1))
        if v is not None:
            hi[r], exact_hi[r] = min(hi[r], v + const), ex
    return lo, hi, exact_lo & exact_hi
