"""Lagrange multipliers of the neurons' bounds in back-substitution (``bounds.crown``).

For a neuron with bounds ``l <= x <= u`` on a sub-problem (a split is such a bound: ``l = 0`` for
the active phase, ``u = 0`` for the inactive one), a multiplier ``beta`` adds to a lower bound of
the objective the term ``-beta (x - l)`` (``beta > 0``) or ``-beta (x - u)`` (``beta < 0``), which
is ``<= 0`` on the sub-problem: the bound stays sound for every ``beta``. Arrays are (B, m, n) per
layer: sub-problem, row, neuron; bounds (B, n).
"""

from __future__ import annotations

import numpy as np


def _finite(lower: np.ndarray, upper: np.ndarray):
    """The bounds as (B, 1, n) with infinite ends replaced by 0, and where they are finite."""
    lj, uj = lower[:, None, :], upper[:, None, :]
    fl, fu = np.isfinite(lj), np.isfinite(uj)
    return np.where(fl, lj, 0.0), np.where(fu, uj, 0.0), fl, fu


def bound_terms(lower: np.ndarray, upper: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Lagrange terms of one layer's bounds: ``(coefficient z on x, constant)`` of
    ``-z x + max(beta, 0) l + min(beta, 0) u`` (an infinite end takes no multiplier)."""
    lj, uj, fl, fu = _finite(lower, upper)
    zl = np.where(fl, np.maximum(beta, 0.0), 0.0)
    zu = np.where(fu, np.minimum(beta, 0.0), 0.0)
    return zl + zu, zl * lj + zu * uj


def bound_grad(lower: np.ndarray, upper: np.ndarray, beta: np.ndarray, G: np.ndarray) -> np.ndarray:
    """d bound / d beta for one layer (``G``: d bound / d coefficient on ``x``, the point the bound is
    attained at): ``l - G`` where ``beta > 0``, ``u - G`` where ``beta < 0``, and at 0 the side whose
    bound that point violates (its one-sided derivative that is an ascent direction)."""
    lj, uj, fl, fu = _finite(lower, upper)
    dl = np.where(fl, lj - G, 0.0)
    du = np.where(fu, uj - G, 0.0)
    return np.where(beta > 0, dl, np.where(beta < 0, du, np.maximum(dl, 0.0) + np.minimum(du, 0.0)))


def project_beta(splits: dict[int, np.ndarray], beta: dict[int, np.ndarray], multipliers: str) -> dict[int, np.ndarray]:
    """``multipliers="splits"``: the multipliers of split neurons only, of the split's sign
    (beta-CROWN: the form a proof certificate records); ``"bounds"``: all, unchanged."""
    if multipliers == "bounds":
        return beta
    if multipliers != "splits":
        raise ValueError(f"multipliers must be 'bounds' or 'splits', not {multipliers!r}")
    out = {}
    for j, b in beta.items():
        s = splits[j][:, None, :]
        out[j] = np.where(s > 0, np.maximum(b, 0.0), np.where(s < 0, np.minimum(b, 0.0), 0.0))
    return out

