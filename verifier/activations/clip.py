"""Clip(lo, hi), ``y = min(max(x, lo), hi)`` with per-neuron ``lo`` / ``hi`` (may be -inf / +inf):
exact in floating point. ``Max(x, c)`` and ``Min(x, c)`` load as one-sided clips.

Relaxation over ``[l, u]``:

* only ``lo`` inside ``(l, u)`` (convex piece, a shifted ReLU): chord through (l, lo), (u, f(u));
  lower is ``lo`` or ``x`` (adaptive);
* only ``hi`` inside (concave piece): lower = chord through (l, f(l)), (u, hi); upper is ``hi``
  or ``x`` (adaptive);
* both inside (S-shape): upper = ``hi`` or the line through (l, lo) and (hi, hi), which lies above
  ``f`` because its slope is at most 1 and it meets ``f`` at ``hi``; lower = ``lo`` or the line
  through (lo, lo) and (u, hi), by the mirrored argument. The flat line is chosen when it is
  closer on average over ``[l, u]``.

Big-M rows, kinks strictly inside ``(l, u)`` (``a_lo`` = "x >= lo", ``a_hi`` = "x >= hi"; a kink
outside the bounds fixes its indicator to 0 or 1)::

    x = p
    (1) y <= x - (l - lo)(1 - a_lo)        [a_lo = 1: y <= x;  a_lo = 0: slack, as x >= l]
    (2) y <= lo + (min(u, hi) - lo) a_lo   [a_lo = 0: y <= lo, so y = lo]
    (3) y >= x - (u - hi) a_hi             [a_hi = 0: y >= x;  a_hi = 1: slack, as x <= u]
    (4) y >= hi - (hi - max(l, lo))(1 - a_hi)  [a_hi = 1: y >= hi, so y = hi]
    a_hi <= a_lo,   f(l) <= y <= f(u)

Exact: a_lo = 1 forces y <= x and (with y >= lo) x >= lo; a_lo = 0 forces y = lo and (with (3))
x <= lo; a_hi = 1 forces y = hi and x >= hi; a_hi = 0 forces y >= x and x <= hi. So every
feasible (x, y) has y = clip(x).

The compact triangle LP does not cover Clip (``TRIANGLE = False``).
"""

from __future__ import annotations

import numpy as np

DEFAULT_REL_ERROR = 0.0
DEFAULT_ABS_ERROR = 0.0
TRIANGLE = False


def forward(act, x: np.ndarray) -> np.ndarray:
    return np.minimum(np.maximum(x, act.lo), act.hi)


def derivative(act, p: np.ndarray) -> np.ndarray:
    return ((p > act.lo) & (p < act.hi)).astype(np.float64)


def describe(act) -> str:
    lo = np.unique(act.lo)
    hi = np.unique(act.hi)
    lo_s = f"{lo[0]:g}" if lo.size == 1 else "per-neuron"
    hi_s = f"{hi[0]:g}" if hi.size == 1 else "per-neuron"
    return f"Clip({lo_s}, {hi_s})"


def output_error(act, l: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.zeros(np.shape(l))


def kinks_inside(act, l: np.ndarray, u: np.ndarray) -> np.ndarray:
    return (((l < act.lo) & (act.lo < u)).astype(int) + ((l < act.hi) & (act.hi < u)).astype(int))


def stable_line(act, l, u) -> tuple[np.ndarray, np.ndarray]:
    """For neurons with no kink inside ``(l, u)``: ``f(x) = slope * x + offset`` on ``[l, u]``."""
    linear = (l >= act.lo) & (u <= act.hi)
    slope = linear.astype(float)
    offset = np.where(linear, 0.0, np.where(u <= act.lo, act.lo, act.hi))
    offset = np.where(np.isfinite(offset), offset, 0.0)
    return slope, offset


def relaxation(act, l, u, adaptive: bool = True):
    return _clip_relax(l, u, act.lo, act.hi, adaptive)


def big_m_rows(act, V, R, l, u, xv, yv, index) -> None:
    clip_rows(V, R, l, u, act.lo[index], act.hi[index], xv, yv)


def triangle_alpha(act) -> float:
    raise NotImplementedError("the compact triangle LP does not cover Clip")


def _clip_relax(l, u, lo, hi, adaptive: bool):
    with np.errstate(invalid="ignore", over="ignore"):  # masked-out lanes may compute 0 * inf
        return _clip_relax_lanes(l, u, lo, hi, adaptive)


def _clip_relax_lanes(l, u, lo, hi, adaptive: bool):
    lo = np.broadcast_to(lo, l.shape)
    hi = np.broadcast_to(hi, l.shape)
    f_l = np.minimum(np.maximum(l, lo), hi)
    f_u = np.minimum(np.maximum(u, lo), hi)
    # default: the exact line for neurons with no kink strictly inside (l, u)
    a = np.where((l >= lo) & (u <= hi), 1.0, 0.0)
    c = np.where(a == 1.0, 0.0, np.where(u <= lo, lo, hi))
    c = np.where(np.isfinite(c), c, 0.0)
    a_lo, c_lo, a_up, c_up = a.copy(), c.copy(), a.copy(), c.copy()

    k_lo = (l < lo) & (lo < u)
    k_hi = (l < hi) & (hi < u)
    only_lo = k_lo & ~k_hi
    only_hi = k_hi & ~k_lo
    both = k_lo & k_hi
    width = np.where(u > l, u - l, 1.0)

    # convex piece: chord above, adaptive flat-or-identity below
    s = (f_u - f_l) / width
    a_up = np.where(only_lo, s, a_up)
    c_up = np.where(only_lo, f_l - s * l, c_up)
    use_x = (u - lo > lo - l) if adaptive else np.zeros(l.shape, bool)
    a_lo = np.where(only_lo, np.where(use_x, 1.0, 0.0), a_lo)
    c_lo = np.where(only_lo, np.where(use_x, 0.0, np.where(np.isfinite(lo), lo, 0.0)), c_lo)

    # concave piece: chord below, adaptive flat-or-identity above
    a_lo = np.where(only_hi, s, a_lo)
    c_lo = np.where(only_hi, f_l - s * l, c_lo)
    use_x = (hi - l > u - hi) if adaptive else np.zeros(l.shape, bool)
    a_up = np.where(only_hi, np.where(use_x, 1.0, 0.0), a_up)
    c_up = np.where(only_hi, np.where(use_x, 0.0, np.where(np.isfinite(hi), hi, 0.0)), c_up)

    # S-shape: flat line or the tangent-at-kink line, whichever is closer on average
    with np.errstate(divide="ignore", invalid="ignore"):
        s_up = np.where(both, (hi - lo) / np.where(both, hi - l, 1.0), 0.0)
        s_lo = np.where(both, (hi - lo) / np.where(both, u - lo, 1.0), 0.0)
    flat_up = (u - hi) > (hi - l)  # much of [l, u] is saturated at hi: the flat line is better
    flat_lo = (lo - l) > (u - lo)
    a_up = np.where(both, np.where(flat_up, 0.0, s_up), a_up)
    c_up = np.where(both, np.where(flat_up, np.where(both, hi, 0.0), np.where(both, lo - s_up * l, 0.0)), c_up)
    a_lo = np.where(both, np.where(flat_lo, 0.0, s_lo), a_lo)
    c_lo = np.where(both, np.where(flat_lo, np.where(both, lo, 0.0), np.where(both, lo - s_lo * lo, 0.0)), c_lo)
    return a_lo, c_lo, a_up, c_up


def clip_rows(V, R, l, u, lo, hi, xv, yv) -> None:
    """Rows (1)-(4) of the module docstring for neurons with at least one kink inside (l, u)."""
    has_lo = (l < lo) & (lo < u)
    has_hi = (l < hi) & (hi < u)
    # indicator of each kink: a binary where the kink is inside, else a constant 0/1
    a_lo = np.full(l.size, -1, dtype=np.int64)
    a_hi = np.full(l.size, -1, dtype=np.int64)
    if has_lo.any():
        a_lo[has_lo] = V.new(np.zeros(has_lo.sum()), np.ones(has_lo.sum()), integer=True)
    if has_hi.any():
        a_hi[has_hi] = V.new(np.zeros(has_hi.sum()), np.ones(has_hi.sum()), integer=True)
    fixed_lo = (l >= lo).astype(float)  # value of a_lo where it is a constant
    fixed_hi = (l >= hi).astype(float)

    # (1) y - x - (l - lo) a_lo <= -(l - lo)  and  (2), where the lo kink is inside (l, u);
    #     y - x <= 0 where it is not (then l >= lo: an unstable neuron never has u <= lo)
    i = np.flatnonzero(has_lo)
    if i.size:
        M = l[i] - lo[i]
        R.add_block(np.stack([yv[i], xv[i], a_lo[i]], 1), np.stack([np.ones(i.size), -np.ones(i.size), -M], 1), -M, False)
        U = np.minimum(u[i], hi[i])
        # (2) y - (U - lo) a_lo <= lo
        R.add_block(np.stack([yv[i], a_lo[i]], 1), np.stack([np.ones(i.size), -(U - lo[i])], 1), lo[i], False)
    i = np.flatnonzero(~has_lo & (fixed_lo == 1.0))
    if i.size:
        R.add_block(np.stack([yv[i], xv[i]], 1), np.stack([np.ones(i.size), -np.ones(i.size)], 1), np.zeros(i.size), False)

    i = np.flatnonzero(has_hi)
    if i.size:
        M = u[i] - hi[i]
        # (3) x - y - (u - hi) a_hi <= 0
        R.add_block(np.stack([xv[i], yv[i], a_hi[i]], 1), np.stack([np.ones(i.size), -np.ones(i.size), -M], 1), np.zeros(i.size), False)
        L = np.maximum(l[i], lo[i])
        # (4) -y + (hi - L) a_hi <= -hi + (hi - L)   i.e. y >= hi - (hi - L)(1 - a_hi)
        R.add_block(np.stack([yv[i], a_hi[i]], 1), np.stack([-np.ones(i.size), hi[i] - L], 1), -hi[i] + (hi[i] - L), False)
    i = np.flatnonzero(~has_hi & (fixed_hi == 0.0))
    if i.size:  # y >= x
        R.add_block(np.stack([xv[i], yv[i]], 1), np.stack([np.ones(i.size), -np.ones(i.size)], 1), np.zeros(i.size), False)

    i = np.flatnonzero(has_lo & has_hi)
    if i.size:  # a_hi <= a_lo
        R.add_block(np.stack([a_hi[i], a_lo[i]], 1), np.stack([np.ones(i.size), -np.ones(i.size)], 1), np.zeros(i.size), False)
