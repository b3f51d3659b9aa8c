"""ReLU, ``y = max(x, 0)``: exact in floating point.

Relaxation over ``[l, u]``, ``l < 0 < u``: upper = chord through (l, 0), (u, u); lower =
``lambda*x`` with ``lambda = 1`` if ``u > -l`` else 0 (the adaptive choice of DeepPoly / CROWN: the
line with the smaller area).

Big-M rows: ReLU is Clip(0, +inf), so it uses ``clip.big_m_rows`` with ``lo = 0``, ``hi = inf``:
rows (3)/(4) there reduce to ``y >= x`` and rows (1)/(2) to the classic ``y <= x - l(1 - a)``,
``y <= u a``.

Triangle LP (``l < 0 < u``, pre-activation expression ``p`` with float radius ``R``):
``y >= p - R``, ``y <= u (p + R - l) / (u - l)``, ``0 <= y <= u``: the convex hull of ReLU on
``[l, u]`` loosened by the radius.
"""

from __future__ import annotations

import numpy as np

from . import clip

#: ReLU is exact in floating point
DEFAULT_REL_ERROR = 0.0
DEFAULT_ABS_ERROR = 0.0
#: the compact triangle LP covers this kind
TRIANGLE = True


def forward(act, x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def derivative(act, p: np.ndarray) -> np.ndarray:
    return (p > 0).astype(np.float64)


def describe(act) -> str:
    return "ReLU"


def output_error(act, l: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.zeros(np.shape(l))


def kinks_inside(act, l: np.ndarray, u: np.ndarray) -> np.ndarray:
    return ((l < 0) & (u > 0)).astype(int)


def stable_line(act, l, u) -> tuple[np.ndarray, np.ndarray]:
    slope = (l >= 0).astype(float)
    return slope, np.zeros(l.size)


def relaxation(act, l, u, adaptive: bool = True):
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


def big_m_rows(act, V, R, l, u, xv, yv, index) -> None:
    """Rows for the unstable neurons ``index`` (``l``, ``u``, ``xv``, ``yv`` already restricted)."""
    clip.clip_rows(V, R, l, u, np.zeros(l.size), np.full(l.size, np.inf), xv, yv)


def triangle_alpha(act) -> float:
    """Slope of the negative side (the triangle LP's rows are those of LeakyReLU with alpha = 0)."""
    return 0.0
