"""Max over windows (MaxPool, ``Max`` of several tensors): ``y_j = max_{i in G_j} x_i``.

Not elementwise: the activation carries ``groups``, an integer array of shape ``(n_post, k)``
whose row ``j`` lists the pre-activation indices of window ``j`` (``-1`` pads windows with fewer
candidates, as at a padded border). Windows may overlap (stride < kernel). ``max`` is exact in
floating point, so the activation adds no rounding; a float error ``e_i`` of the candidates
carries to the output as ``max_{i in G_j} e_i`` (``max`` is 1-Lipschitz in the sup norm).

Candidates (window ``j``, bounds ``[l_i, u_i]``): let ``i*`` have the largest lower bound
``L = l_{i*}``. Every other candidate with ``u_i <= L`` is dropped: ``x_i <= u_i <= L <= x_{i*}``,
so it never changes the maximum. ``i*`` itself is never dropped, so a window always keeps one
candidate (a window of inactive ReLUs, all ``[0, 0]``, keeps ``i*``). One candidate left means
``y = x_{i*}`` (linear, "stable").

Relaxation: ``y >= x_{i*}`` (lower), ``y <= U = max_{remaining} u_i`` (upper; ``y = x_{i*}`` when
one candidate remains).

Big-M rows for a window with ``k >= 2`` remaining candidates, binaries ``a_i``::

    sum_i a_i = 1,   y >= x_i,   y <= x_i + (U - l_i)(1 - a_i)        for every remaining i

Exact: ``y >= x_i`` for all ``i`` gives ``y >= max x_i``; the selected ``i`` (``a_i = 1``) gives
``y <= x_i``, so ``y = x_i = max``; for the others the row reads ``y <= x_i + U - l_i``, which
holds for every feasible point because ``y <= U`` and ``x_i >= l_i``. Conversely the maximiser's
binary set to one satisfies every row, so the rows describe exactly ``y = max``. Dropped
candidates are below ``x_{i*} <= y`` and need no row. (This rests on ``l_i <= x_i <= u_i``, which
the encoder's pre-activation variables ``x = p + d`` carry as their bounds, and ``L <= y <= U``
as the bounds of ``y``.) A window with one remaining candidate is ``y = x_{i*}``: its output is
that candidate's variable, no row. A candidate shared by overlapping windows has one variable.

Triangle LP (``triangle_rows``; ``x_i`` within radius ``R_i`` of its expression ``P_i v + p_i``):
``y >= x_i`` for every remaining candidate, ``L <= y <= U``, and the big-M rows relaxed with the
binaries projected out. With ``0 <= a_i <= 1``, ``sum a_i = 1`` the relaxed rows say
``(y - x_i) / (U - l_i) <= 1 - a_i``; such ``a`` exist iff ``sum_i (y - x_i) / (U - l_i) <= k - 1``
(each term is at most 1 by the bounds). Every point of the real max satisfies it: the maximiser's
term is 0, the others are at most 1. ``U - l_i > 0`` for every remaining candidate of a window
with ``k >= 2`` (``U`` exceeds ``L``, and a candidate other than ``i*`` has ``u_i > L >= l_i``).
"""

from __future__ import annotations

import numpy as np

DEFAULT_REL_ERROR = 0.0  # max is exact in floating point
DEFAULT_ABS_ERROR = 0.0
TRIANGLE = True  # the compact triangle LP covers max windows (``triangle_rows``)
ELEMENTWISE = False


def n_outputs(act, n_pre: int) -> int:
    return int(act.groups.shape[0])


def _gathered(act, x: np.ndarray, fill: float) -> np.ndarray:
    """``x[..., groups]`` with padded slots set to ``fill``: shape ``(..., n_post, k)``."""
    g = act.groups
    xg = np.take(x, np.maximum(g, 0), axis=-1)
    return np.where(g >= 0, xg, fill)


def forward(act, x: np.ndarray) -> np.ndarray:
    return _gathered(act, np.asarray(x, dtype=np.float64), -np.inf).max(axis=-1)


def carry(act, v: np.ndarray) -> np.ndarray:
    """A non-negative per-candidate quantity (a float error) carried to the outputs: its group max."""
    return _gathered(act, np.asarray(v, dtype=np.float64), 0.0).max(axis=-1)


def backprop(act, p: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Vector-Jacobian product at pre-activations ``p``: each output's gradient goes to its arg-max
    candidate (a subgradient of the max; ties go to the first)."""
    p = np.atleast_2d(np.asarray(p, dtype=np.float64))
    delta = np.atleast_2d(delta)
    arg = _gathered(act, p, -np.inf).argmax(axis=-1)  # (b, n_post)
    idx = np.take_along_axis(np.broadcast_to(act.groups, arg.shape + act.groups.shape[-1:]), arg[..., None], -1)[..., 0]
    out = np.zeros(p.shape)
    rows = np.broadcast_to(np.arange(p.shape[0])[:, None], idx.shape)
    np.add.at(out, (rows, idx), delta)
    return out


def describe(act) -> str:
    return f"Max over {act.groups.shape[0]} windows of up to {act.groups.shape[1]}"


def output_error(act, l: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.zeros(np.shape(l)[:-1] + (act.groups.shape[0],))


def candidates(act, l: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window: the remaining candidates (mask ``(n_post, k)``), ``i*`` (pre index of the
    largest lower bound) and ``U`` (largest remaining upper bound)."""
    g = act.groups
    lg = _gathered(act, l, -np.inf)
    ug = _gathered(act, u, -np.inf)
    best = lg.argmax(axis=1)
    L = lg[np.arange(g.shape[0]), best]
    keep = (g >= 0) & (ug > L[:, None])
    keep[np.arange(g.shape[0]), best] = True
    U = np.where(keep, ug, -np.inf).max(axis=1)
    return keep, g[np.arange(g.shape[0]), best], U


def kinks_inside(act, l: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Per pre-activation neuron: 1 if it is a remaining candidate of a window with two or more
    (those windows need binaries), else 0."""
    keep, _, _ = candidates(act, l, u)
    live = keep & (keep.sum(axis=1) >= 2)[:, None]
    out = np.zeros(np.shape(l), dtype=int)
    out[act.groups[live]] = 1
    return out


def relaxation(act, l, u, adaptive: bool = True):
    """``(lines, i*)``: per window, lower ``y >= x_{i*}`` and upper ``y <= U`` (or ``= x_{i*}``)."""
    keep, star, U = candidates(act, l, u)
    single = keep.sum(axis=1) == 1
    n = star.size
    a_lo = np.ones(n)
    c_lo = np.zeros(n)
    a_up = single.astype(np.float64)
    c_up = np.where(single, 0.0, U)
    return _MaxLines(a_lo, c_lo, a_up, c_up, star)


class _MaxLines(tuple):
    """``(a_lo, c_lo, a_up, c_up)`` per window, each line over the single candidate ``star``."""

    def __new__(cls, a_lo, c_lo, a_up, c_up, star):
        obj = super().__new__(cls, (a_lo, c_lo, a_up, c_up))
        obj.star = star
        return obj


def backward_cols(act, lines, L: np.ndarray, cols: np.ndarray | None):
    """Upper bound of ``L @ y`` by the lines, ``L`` over the windows ``cols`` (None: all): positive
    coefficients take the upper line, negative ones the lower; the result is over the candidates
    those windows' lines use (``star``), compressed the same way."""
    a_lo, c_lo, a_up, c_up = (v if cols is None else v[cols] for v in lines)
    star = lines.star if cols is None else lines.star[cols]
    Lp = np.maximum(L, 0.0)
    Ln = L - Lp
    coef = Lp * a_up + Ln * a_lo
    pre, inv = np.unique(star, return_inverse=True)
    out = np.zeros((L.shape[0], pre.size))
    np.add.at(out.T, inv, coef.T)
    return out, pre, Lp @ c_up + Ln @ c_lo, Lp @ np.abs(c_up) - Ln @ np.abs(c_lo)

def milp_rows(act, V, R, l: np.ndarray, u: np.ndarray, x_of) -> tuple[np.ndarray, np.ndarray]:
    """The big-M rows of the module docstring (``V`` / ``R``: ``milp.model``'s builders; ``x_of(idx)``
    gives variables ``x = p + d`` of the pre-activations ``idx``). Returns (variable, constant 0) per output."""
    keep, star, U = candidates(act, l, u)
    xv = np.full(np.size(l), -1, dtype=np.int64)
    need = np.unique(act.groups[keep])  # every remaining candidate, once (windows may overlap)
    xv[need] = x_of(need)
    out = xv[star]  # one candidate left: y = x_{i*}
    live = np.flatnonzero(keep.sum(axis=1) >= 2)
    if live.size:
        m = live.size
        jj, slot = np.nonzero(keep[live])  # pairs (window, remaining candidate)
        cand = act.groups[live][jj, slot]
        yv = V.new(l[star[live]], U[live])
        out[live] = yv
        a = V.new(np.zeros(jj.size), np.ones(jj.size), integer=True)
        one, pairs = np.ones(jj.size), np.arange(jj.size)
        R.add_coo(m, jj, a, one, np.ones(m), True)  # sum_i a_i = 1
        R.add_coo(jj.size, np.concatenate([pairs, pairs]), np.concatenate([xv[cand], yv[jj]]),
                  np.concatenate([one, -one]), np.zeros(jj.size), False)  # x_i - y <= 0
        M = U[live][jj] - l[cand]
        R.add_coo(jj.size, np.concatenate([pairs, pairs, pairs]), np.concatenate([yv[jj], xv[cand], a]),
                  np.concatenate([one, -one, M]), M, False)  # y - x_i + M a_i <= M
    return out, np.zeros(out.size)


def triangle_rows(act, P: np.ndarray, p: np.ndarray, R: np.ndarray, l: np.ndarray, u: np.ndarray, col: int,
                  vmag: np.ndarray):
    """The triangle LP's rows (module docstring) of a max layer whose pre-activations lie within
    ``R`` of ``P v + p`` (``v``: the LP's basis, ``col`` columns so far, magnitudes ``vmag``).

    Returns ``(E, e, r, rows, lb, ub)``: the outputs within ``r`` of ``E v + e`` over the basis
    grown by one column per window with two or more remaining candidates (its ``y``, bounded by
    ``[lb, ub]``), and the rows ``[coef | rhs]`` of ``coef . v <= rhs`` over the grown basis.
    """
    keep, star, U = candidates(act, l, u)
    live = np.flatnonzero(keep.sum(axis=1) >= 2)
    m = live.size
    width = col + m
    E = np.zeros((star.size, width))
    E[:, :col] = P[star]  # one candidate left: y = x_{i*}, with its radius
    e, r = p[star].copy(), R[star].copy()
    if m == 0:
        return E, e, r, [], np.zeros(0), np.zeros(0)
    cols = col + np.arange(m)
    E[live], e[live], r[live] = 0.0, 0.0, 0.0  # max is exact in floating point
    E[live, cols] = 1.0
    jj, slot = np.nonzero(keep[live])
    cand = act.groups[live][jj, slot]
    Pc = np.zeros((jj.size, width))
    Pc[:, :col] = P[cand]
    Pc[np.arange(jj.size), cols[jj]] = -1.0
    rows = [np.hstack([Pc, (-p[cand] + R[cand])[:, None]])]  # y >= x_i >= P_i v + p_i - R_i
    Pc[np.arange(jj.size), cols[jj]] = 0.0
    # sum_i w_i (y - x_i) <= k - 1 with w_i = 1 / (U - l_i) and x_i <= P_i v + p_i + R_i
    w = 1.0 / (U[live][jj] - l[cand])
    agg = np.zeros((m, width))
    np.add.at(agg, jj, -w[:, None] * Pc)
    S = np.bincount(jj, w, m)
    agg[np.arange(m), cols] = S
    k = np.bincount(jj, minlength=m).astype(np.float64)
    rhs = (k - 1.0) * (1.0 + 2.0 ** -40) + np.bincount(jj, w * (p[cand] + R[cand]), m)
    # float64 rounding of the weighted sums (gamma_{k+2} of the magnitudes summed)
    y_mag = np.maximum(np.abs(l[star[live]]), np.abs(U[live]))
    terms = S * y_mag + np.bincount(jj, w * (np.abs(Pc[:, :col]) @ vmag[:col] + np.abs(p[cand]) + R[cand]), m)
    rhs = rhs + (k + 2.0) * 2.0 ** -52 * terms
    rows.append(np.hstack([agg, rhs[:, None]]))
    return E, e, r, rows, l[star[live]], U[live]
