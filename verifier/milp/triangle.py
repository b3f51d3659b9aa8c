"""A compact LP relaxation over the inputs and the unstable neurons only (the "triangle" LP).

For networks with few inputs (ACAS Xu: 5), branch and bound solves thousands of small LPs, one per
sub-box. The big-M encoding relaxed to an LP keeps a variable and an equality row for every stable
neuron and a relaxed binary for every unstable one; HiGHS then spends most of its time on rows
that carry no choice. Here stable neurons are substituted away instead: every neuron's
pre-activation is written as an affine function of the inputs and of the post-activation
variables of the unstable neurons before it, so the LP has one variable per input and per
unstable neuron, and two rows per unstable ReLU (three per unstable LeakyReLU):

* ReLU, ``l < 0 < u``: ``y >= p``, ``y <= u (p - l) / (u - l)``, ``0 <= y <= u``.
* LeakyReLU(alpha): ``y >= p``, ``y >= alpha p``, ``y <= alpha l + s (p - l)`` with the chord slope
  ``s = (u - alpha l) / (u - l)``, ``alpha l <= y <= u``.

These are the convex hulls of the activation on ``[l, u]``, the projection of the big-M LP
relaxation with the same bounds; the only constraints dropped are the bounds ``l <= p <= u`` of
stable neurons, so the optimum is at most that of ``encoding.encode`` relaxed (equal in the tests
and on ACAS Xu to 1e-7) at a fraction of the size. A stable neuron is replaced by the linear
piece it is on, which is exact because its bounds are sound. Proofs rest on the weak-duality
bound of ``lp.LinearProgram`` computed from this LP's own (float64) rows.

Floating point: each expression carries a radius ``r`` (per neuron) within which the value that
onnxruntime computes may lie: a layer's radius is ``|W| r + e`` (its inputs' radii, its own rounding
``e`` from ``bounds.rounding_errors``, and a float64 term for composing the rows here). Each
relaxation row holds for every pre-activation within the radius of its expression, so each row
is loosened by its worst case over that interval (``y >= p - r``, ``y <= s (p + r - l) + alpha l``),
and the property rows by ``|c| r``.
"""

from __future__ import annotations

import numpy as np

from .. import activations
from ..layer_bounds import LayerBounds, rounding_errors
from ..network import Network
from .model import MILP, check_layer_bounds

#: at most this many inputs: beyond, rows dense in the inputs outgrow the sparse big-M encoding
MAX_INPUTS = 64


def worthwhile(network: Network) -> bool:
    """True if the compact LP applies (ReLU / LeakyReLU only) and the network has few inputs (the
    rows are dense over the inputs and the earlier unstable neurons)."""
    return network.n_inputs <= MAX_INPUTS and all(
        layer.activation is None or activations.in_triangle_lp(layer.activation) for layer in network.layers)


def triangle_lp(network: Network, bounds: LayerBounds, lower: np.ndarray, upper: np.ndarray,
                out_rows: np.ndarray, in_rows: np.ndarray | None, rhs: np.ndarray,
                t_lower: float, t_upper: float) -> tuple[MILP, int]:
    """The LP ``min t`` s.t. ``out_rows @ y + in_rows @ x - t <= rhs`` (row-wise) over the relaxation.

    Returns the LP (as a ``MILP`` with no integer variables) and the index of ``t``; ``t`` is boxed
    by ``[t_lower, t_upper]``, which callers take from sound bounds of the rows.
    """
    check_layer_bounds(network, bounds)
    n_in = network.n_inputs
    lower = np.asarray(lower, dtype=np.float64).ravel()
    upper = np.asarray(upper, dtype=np.float64).ravel()
    # expressions of the current layer's input over the basis [inputs, unstable neurons..., 1]
    n_unstable = bounds.n_unstable(network)
    width = n_in + n_unstable
    E = np.zeros((n_in, width))
    E[:, :n_in] = np.eye(n_in)
    e = np.zeros(n_in)
    r = np.zeros(n_in)  # radius: |float value - (E v + e)| <= r
    errors = rounding_errors(network, bounds, lower, upper)
    vmag = np.zeros(width)  # magnitude of the basis variables (unstable columns filled below)
    vmag[:n_in] = np.maximum(np.abs(lower), np.abs(upper))
    lbs = [lower]
    ubs = [upper]
    blocks: list[np.ndarray] = []  # rows [coef over basis | rhs] of "coef . v <= rhs"
    col = n_in
    for k, layer in enumerate(network.layers):
        P = layer.weight @ E
        p = layer.weight @ e + layer.bias
        # float64 rounding of composing the rows (gamma_n of float64 on the magnitudes involved)
        n = layer.weight.shape[1] + E.shape[1] + 2
        comp = n * 2.0 ** -52 * (layer.abs_weight @ (np.abs(E) @ vmag + np.abs(e)) + np.abs(layer.bias))
        R = layer.abs_weight @ r + errors[k] + comp
        act = layer.activation
        if act is None:
            E, e, r = P, p, R
            continue
        lo, hi = bounds.lower[k], bounds.upper[k]
        unst = np.flatnonzero((lo < 0) & (hi > 0))
        slope, _ = activations.stable_line(act, lo, hi)  # stable: identity / zero / alpha * p, no offset
        E = P * slope[:, None]
        e = p * slope
        r = np.abs(slope) * R + act.output_error(lo, hi)
        if unst.size:
            cols = np.arange(col, col + unst.size)
            col += unst.size
            l_u, u_u = lo[unst], hi[unst]
            alpha = activations.triangle_alpha(act)
            blocks += _hull_rows(P[unst], p[unst], R[unst], l_u, u_u, cols, width, alpha)
            lbs.append(alpha * l_u)
            ubs.append(u_u)
            vmag[cols] = np.maximum(np.abs(alpha * l_u), np.abs(u_u))
            r[unst] = act.output_error(l_u, u_u)
            E[unst] = 0.0
            e[unst] = 0.0
            E[unst, cols] = 1.0
    assert col == width
    # the property's rows, with the margin variable t as the last column
    out_rows = np.atleast_2d(np.asarray(out_rows, dtype=np.float64))
    coef = out_rows @ E
    const = out_rows @ e - np.abs(out_rows) @ r  # the rows hold if some value within the radius does
    if in_rows is not None:
        coef[:, :n_in] += np.atleast_2d(in_rows)
    return _assemble(blocks, coef, np.asarray(rhs, dtype=np.float64) - const, lbs, ubs, t_lower, t_upper, n_in), width


def _hull_rows(Pu: np.ndarray, pu: np.ndarray, Ru: np.ndarray, l_u: np.ndarray, u_u: np.ndarray, cols: np.ndarray,
               width: int, alpha: float) -> list[np.ndarray]:
    """Rows ``[coef | rhs]`` of the convex hull of unstable ReLU / LeakyReLU(alpha) neurons whose
    pre-activation ``x`` lies within ``Ru`` of ``Pu v + pu``, each row at its worst over that interval."""
    eye = np.zeros((pu.size, width))
    eye[np.arange(pu.size), cols] = 1.0
    # y >= x >= p - R   <=>   P v - y <= -p + R
    rows = [np.hstack([Pu - eye, (-pu + Ru)[:, None]])]
    if alpha > 0.0:
        # y >= alpha x >= alpha (p - R)
        rows.append(np.hstack([alpha * Pu - eye, (-alpha * pu + alpha * Ru)[:, None]]))
    # y <= alpha l + s (x - l) <= alpha l + s (p + R - l)   <=>   y - s P v <= alpha l - s l + s p + s R
    s = (u_u - alpha * l_u) / (u_u - l_u)
    rows.append(np.hstack([eye - s[:, None] * Pu, (alpha * l_u - s * l_u + s * pu + s * Ru)[:, None]]))
    return rows


def _assemble(blocks: list[np.ndarray], coef: np.ndarray, prop_rhs: np.ndarray, lbs: list, ubs: list,
              t_lower: float, t_upper: float, n_in: int) -> MILP:
    """The sparse LP from the hull rows and the property rows ``coef . v - t <= prop_rhs``."""
    width = coef.shape[1]
    A = np.hstack([np.vstack([blk[:, :-1] for blk in blocks] + [coef]) if blocks else coef,
                   np.zeros((sum(blk.shape[0] for blk in blocks) + coef.shape[0], 1))])
    A[-coef.shape[0]:, -1] = -1.0
    row_rhs = np.concatenate([blk[:, -1] for blk in blocks] + [prop_rhs])
    mask = A != 0.0
    indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int64)
    indices = np.nonzero(mask)[1].astype(np.int64)
    n_vars = width + 1
    return MILP(np.concatenate(lbs + [[t_lower]]), np.concatenate(ubs + [[t_upper]]), np.zeros(n_vars, bool),
                indptr, indices, A[mask], row_rhs, np.zeros(row_rhs.size, bool), np.arange(n_in),
                (np.zeros(0), np.zeros(0)))
