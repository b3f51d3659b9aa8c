"""LeakyReLU(alpha), ``y = x if x >= 0 else alpha * x`` with ``0 < alpha < 1``.

``alpha * x`` rounds once in floating point (``Activation.rel_error``, the unit roundoff of the
type it is computed in).

Relaxation over ``[l, u]``: ``f(x) = max(x, alpha*x)`` is convex, so the chord through
(l, alpha*l), (u, u) is an upper line; lower = ``x`` if ``u > -l`` else ``alpha*x``.

Big-M rows, ``l < 0 < u``, binary ``a`` = "x >= 0"::

    y >= x,  y >= alpha x,  y <= x - (1 - alpha) l (1 - a),  y <= alpha x + (1 - alpha) u a

Exact: a = 1 gives y <= x, so y = x, and then y >= alpha x forces x >= 0; a = 0 gives
y <= alpha x, so y = alpha x, and then y >= x forces x <= 0. The slack rows are implied by
l <= x <= u.

Triangle LP: ``y >= p``, ``y >= alpha p``, ``y <= alpha l + s (p - l)`` with the chord slope
``s = (u - alpha l) / (u - l)``, ``alpha l <= y <= u`` (each loosened by the float radius).
"""

from __future__ import annotations

import numpy as np

#: ``alpha * x`` rounds once (float32 unless the loader says otherwise)
DEFAULT_REL_ERROR = 2.0 ** -24
DEFAULT_ABS_ERROR = 2.0 ** -149  # float32 underflow of alpha * x
TRIANGLE = True


def forward(act, x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0.0, x, act.alpha * x)


def derivative(act, p: np.ndarray) -> np.ndarray:
    return np.where(p > 0, 1.0, act.alpha)


def describe(act) -> str:
    return f"LeakyReLU(alpha={act.alpha:g})"


def output_error(act, l: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Bound on ``|fl(alpha x) - alpha x|`` for ``x`` in ``[l, u]``: relative ``rel_error`` plus the
    underflow ``abs_error`` (``alpha x`` may be subnormal) wherever ``x`` can be negative."""
    l = np.asarray(l, dtype=np.float64)
    if not (act.rel_error or act.abs_error):
        return np.zeros(l.shape)
    return np.where(l < 0, act.rel_error * act.alpha * np.maximum(-l, 0.0) + act.abs_error, 0.0)


def kinks_inside(act, l: np.ndarray, u: np.ndarray) -> np.ndarray:
    return ((l < 0) & (u > 0)).astype(int)


def stable_line(act, l, u) -> tuple[np.ndarray, np.ndarray]:
    return np.where(l >= 0, 1.0, act.alpha), np.zeros(l.size)


def relaxation(act, l, u, adaptive: bool = True):
    alpha = act.alpha
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


def big_m_rows(act, V, R, l, u, xv, yv, index) -> None:
    """The four rows of the module docstring for the unstable neurons (one binary each)."""
    alpha = act.alpha
    n = l.size
    a = V.new(np.zeros(n), np.ones(n), integer=True)
    one = np.ones(n)
    # y >= x  ->  x - y <= 0 ;  y >= alpha x  ->  alpha x - y <= 0
    R.add_block(np.stack([xv, yv], 1), np.stack([one, -one], 1), np.zeros(n), False)
    R.add_block(np.stack([xv, yv], 1), np.stack([alpha * one, -one], 1), np.zeros(n), False)
    # y <= x - (1-alpha) l (1-a)  ->  y - x - (1-alpha) l a <= -(1-alpha) l
    M = (1.0 - alpha) * l
    R.add_block(np.stack([yv, xv, a], 1), np.stack([one, -one, -M], 1), -M, False)
    # y <= alpha x + (1-alpha) u a  ->  y - alpha x - (1-alpha) u a <= 0
    R.add_block(np.stack([yv, xv, a], 1), np.stack([one, -alpha * one, -(1.0 - alpha) * u], 1), np.zeros(n), False)


def triangle_alpha(act) -> float:
    return act.alpha
