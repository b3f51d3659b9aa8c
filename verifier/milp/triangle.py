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
* max over a window with ``k >= 2`` remaining candidates: one column ``y``, ``y >= x_i`` per
  candidate, ``L <= y <= U`` and one aggregated row, the big-M rows with the binaries projected out
  (``activations/maxpool.py``); a window with one candidate left is that candidate's expression.

On a DAG each tensor (input, layer outputs) keeps its own expression; a layer's pre-activation
is ``W`` applied to its sources' expressions stacked.

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
    """True if the compact LP applies (ReLU / LeakyReLU / max windows only) and the network has few
    inputs (the rows are dense over the inputs and the earlier unstable neurons)."""
    return network.n_inputs <= MAX_INPUTS and all(
        layer.activation is None or activations.in_triangle_lp(layer.activation) for layer in network.layers)


class _Basis:
    """The LP's variables so far (inputs, then one column per unstable neuron / live max window, in
    layer order): their bounds and magnitudes, and the relaxation rows ``(coef, rhs)`` written."""

    def __init__(self, lower: np.ndarray, upper: np.ndarray) -> None:
        self.lbs, self.ubs = [lower], [upper]
        self.vmag = np.maximum(np.abs(lower), np.abs(upper))
        self.rows: list[np.ndarray] = []  # [coef | rhs], coef over the basis as it was then
        self.width = lower.size

    def grow(self, lb: np.ndarray, ub: np.ndarray, rows: list[np.ndarray]) -> None:
        self.lbs.append(lb)
        self.ubs.append(ub)
        self.vmag = np.concatenate([self.vmag, np.maximum(np.abs(lb), np.abs(ub))])
        self.width += lb.size
        self.rows += rows


def _widen(E: np.ndarray, width: int) -> np.ndarray:
    """``E`` with zero columns appended up to ``width`` (columns added after it was built)."""
    return E if E.shape[1] == width else np.hstack([E, np.zeros((E.shape[0], width - E.shape[1]))])


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
    basis = _Basis(lower, upper)
    errors = rounding_errors(network, bounds, lower, upper)
    # per tensor: its expression E v + e over the basis, and the radius r with
    # |float value - (E v + e)| <= r
    tensors = [(np.eye(n_in), np.zeros(n_in), np.zeros(n_in))]
    for k, layer in enumerate(network.layers):
        src = network.sources(k)
        E = np.vstack([_widen(tensors[t][0], basis.width) for t in src])
        e = np.concatenate([tensors[t][1] for t in src])
        r = np.concatenate([tensors[t][2] for t in src])
        P = np.asarray(layer.weight @ E)
        p = layer.weight @ e + layer.bias
        # float64 rounding of composing the rows (gamma_n of float64 on the magnitudes involved)
        n = layer.weight.shape[1] + E.shape[1] + 2
        comp = n * 2.0 ** -52 * (layer.abs_weight @ (np.abs(E) @ basis.vmag + np.abs(e)) + np.abs(layer.bias))
        R = layer.abs_weight @ r + errors[k] + comp
        act = layer.activation
        if act is None:
            tensors.append((P, p, R))
            continue
        lo, hi = bounds.lower[k], bounds.upper[k]
        if activations.is_elementwise(act):
            E, e, r, rows, lb, ub = _elementwise_step(act, P, p, R, lo, hi, basis.width)
        else:
            E, e, r, rows, lb, ub = activations.triangle_rows(act, P, p, R, lo, hi, basis.width, basis.vmag)
        basis.grow(lb, ub, rows)
        tensors.append((E, e, r))
    # the property's rows, with the margin variable t as the last column
    E, e, r = tensors[-1]
    out_rows = np.atleast_2d(np.asarray(out_rows, dtype=np.float64))
    coef = out_rows @ _widen(E, basis.width)
    const = out_rows @ e - np.abs(out_rows) @ r  # the rows hold if some value within the radius does
    if in_rows is not None:
        coef[:, :n_in] += np.atleast_2d(in_rows)
    return _assemble(basis, coef, np.asarray(rhs, dtype=np.float64) - const, t_lower, t_upper, n_in), basis.width


def _elementwise_step(act, P: np.ndarray, p: np.ndarray, R: np.ndarray, lo: np.ndarray, hi: np.ndarray, col: int):
    """A ReLU / LeakyReLU layer: stable neurons become their linear piece, each unstable one a new
    column with its hull rows. Returns ``(E, e, r, rows, lb, ub)`` as ``maxpool.triangle_rows``."""
    unst = np.flatnonzero((lo < 0) & (hi > 0))
    slope, _ = activations.stable_line(act, lo, hi)  # stable: identity / zero / alpha * p, no offset
    width = col + unst.size
    E = _widen(P * slope[:, None], width)
    e = p * slope
    r = np.abs(slope) * R + act.output_error(lo, hi)
    if not unst.size:
        return E, e, r, [], np.zeros(0), np.zeros(0)
    cols = np.arange(col, width)
    l_u, u_u = lo[unst], hi[unst]
    alpha = activations.triangle_alpha(act)
    rows = _hull_rows(_widen(P[unst], width), p[unst], R[unst], l_u, u_u, cols, width, alpha)
    r[unst] = act.output_error(l_u, u_u)
    E[unst] = 0.0
    e[unst] = 0.0
    E[unst, cols] = 1.0
    return E, e, r, rows, alpha * l_u, u_u


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


def _assemble(basis: _Basis, coef: np.ndarray, prop_rhs: np.ndarray, t_lower: float, t_upper: float,
              n_in: int) -> MILP:
    """The sparse LP from the relaxation rows and the property rows ``coef . v - t <= prop_rhs``."""
    width = basis.width
    relax = [_widen(blk[:, :-1], width) for blk in basis.rows]
    n_relax = sum(blk.shape[0] for blk in relax)
    A = np.hstack([np.vstack(relax + [coef]), np.zeros((n_relax + coef.shape[0], 1))])
    A[n_relax:, -1] = -1.0
    row_rhs = np.concatenate([blk[:, -1] for blk in basis.rows] + [prop_rhs])
    mask = A != 0.0
    indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int64)
    indices = np.nonzero(mask)[1].astype(np.int64)
    n_vars = width + 1
    return MILP(np.concatenate(basis.lbs + [[t_lower]]), np.concatenate(basis.ubs + [[t_upper]]),
                np.zeros(n_vars, bool), indptr, indices, A[mask], row_rhs, np.zeros(row_rhs.size, bool),
                np.arange(n_in), (np.zeros(0), np.zeros(0)))
