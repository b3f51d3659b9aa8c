"""The LP refutation of one conjunction on one input box (input splitting's LP leaves, and the LP
check of whole disjuncts before a MILP): the triangle relaxation where it pays, else the MILP
encoding relaxed, both with rows widened by the float rounding bounds; HiGHS's dual bound decides."""

from __future__ import annotations

import numpy as np

from ..bounds import linear_bounds
from ..milp import triangle
from ..milp.encoding import encode, output_rows, with_margin
from ..milp.solvers.highs import LinearProgram
from ..network import Network
from ..spec import Constraints


def lp_refutes(network: Network, b, lo: np.ndarray, hi: np.ndarray, cons: Constraints,
               time_limit: float | None = None, row_bounds: tuple[np.ndarray, np.ndarray] | None = None) -> bool:
    """True if the LP relaxation proves the conjunction empty on the box (rigorous dual bound > 0)
    for every float evaluation of the network (both LPs widen their rows by the rounding bounds).
    ``row_bounds``: the rows' sound (lower, upper) bounds on the box, when the caller has them."""
    if cons.rhs.size == 0:
        return False
    rhs = cons.rhs
    low, up = row_bounds if row_bounds is not None else linear_bounds(network, b, lo, hi, cons.ay, None, cons.ax)
    t_lo = float(np.max(low - rhs))
    t_hi = float(np.max(up - rhs))
    if triangle.worthwhile(network):
        prob, t_var = triangle.triangle_lp(network, b, lo, hi, cons.ay, cons.ax, rhs, t_lo, max(t_hi, t_lo))
    else:
        milp = encode(network, b, lo, hi)
        rows = output_rows(network, milp, cons.ax, cons.ay, rhs)
        prob, t_var = with_margin(milp, rows, t_lo, max(t_hi, t_lo))
    val, _ = LinearProgram(prob, integer=False).minimize(np.array([t_var]), np.array([1.0]), time_limit)
    return val is not None and val > 0.0
