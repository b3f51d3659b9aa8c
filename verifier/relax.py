"""Linear relaxations of the activations over pre-activation bounds ``[l, u]``.

For every neuron we return one lower and one upper line, ``a_lo*x + c_lo <= f(x) <= a_up*x + c_up``
for all ``x`` in ``[l, u]``. Stable neurons get exact lines. Unstable ones:

- ReLU: upper = chord through (l, 0), (u, u); lower = ``lambda*x`` with ``lambda = 1`` if ``u > -l``
  else 0 (the adaptive choice of DeepPoly / CROWN: the line with the smaller area).
- LeakyReLU(alpha), 0 <= alpha < 1: ``f(x) = max(x, alpha*x)`` is convex, so the chord through
  (l, alpha*l), (u, u) is an upper line; lower = ``x`` if ``u > -l`` else ``alpha*x``.
- Clip(lo, hi) = ``min(max(x, lo), hi)``:
  * only ``lo`` inside ``(l, u)`` (convex piece, a shifted ReLU): chord through (l, lo), (u, f(u));
    lower is ``lo`` or ``x`` (adaptive);
  * only ``hi`` inside (concave piece): lower = chord through (l, f(l)), (u, hi); upper is ``hi``
    or ``x`` (adaptive);
  * both inside (S-shape): upper = ``hi`` or the line through (l, lo) and (hi, hi), which lies above
    ``f`` because its slope is at most 1 and it meets ``f`` at ``hi``; lower = ``lo`` or the line
    through (lo, lo) and (u, hi), by the mirrored argument. The flat line is chosen when it is
    closer on average over ``[l, u]``.
"""

from __future__ import annotations

import numpy as np

from .network import Activation


def relaxation(act: Activation, l: np.ndarray, u: np.ndarray, adaptive: bool = True
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(a_lo, c_lo, a_up, c_up)`` per neuron for ``act`` over ``[l, u]`` (``l <= u``)."""
    if act.kind == "relu":
        return _relu_relax(l, u, adaptive)
    if act.kind == "leaky":
        return _leaky_relax(act.alpha, l, u, adaptive)
    return _clip_relax(l, u, act.lo, act.hi, adaptive)


def _relu_relax(l, u, adaptive: bool):
    """The common case, kept short because branch and bound calls it for every sub-problem."""
    a_up = (l >= 0).astype(np.float64)
    a_lo = a_up.copy()
    c_lo = np.zeros(l.shape)
    c_up = np.zeros(l.shape)
    unst = (l < 0) & (u > 0)
    if unst.any():
        lu, uu = l[unst], u[unst]
        s = uu / (uu - lu)
        a_up[unst] = s
        c_up[unst] = -s * lu
        a_lo[unst] = (uu > -lu) if adaptive else 0.0
    return a_lo, c_lo, a_up, c_up


def _leaky_relax(alpha: float, l, u, adaptive: bool):
    n = l.shape
    a_lo = np.ones(n)
    c_lo = np.zeros(n)
    a_up = np.ones(n)
    c_up = np.zeros(n)
    neg = u <= 0
    a_lo[neg] = alpha
    a_up[neg] = alpha
    unst = (l < 0) & (u > 0)
    lu, uu = l[unst], u[unst]
    slope = (uu - alpha * lu) / (uu - lu)
    a_up[unst] = slope
    c_up[unst] = alpha * lu - slope * lu
    a_lo[unst] = np.where(uu > -lu, 1.0, alpha) if adaptive else alpha
    return a_lo, c_lo, a_up, c_up


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


def kinks_inside(act: Activation, l: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Number of breakpoints strictly inside ``(l, u)`` per neuron (0 = stable, linear)."""
    if act.kind in ("relu", "leaky"):
        return ((l < 0) & (u > 0)).astype(int)
    return (((l < act.lo) & (act.lo < u)).astype(int) + ((l < act.hi) & (act.hi < u)).astype(int))
