"""Big-M MILP encoding of a network over an input box, from any sound per-neuron bounds.

The MILP is kept solver-neutral (``MILP``: variable bounds, integrality, sparse rows) and is built
from matrices, one block of rows per layer. Variables: the inputs, then per hidden layer a
post-activation variable ``y`` for every non-constant neuron, a pre-activation variable ``x`` for
every unstable neuron, and binaries. For neuron bounds ``l <= x <= u`` (``p = W z + b`` is the
pre-activation expression over the previous layer's variables):

* stable neurons (no breakpoint strictly inside ``(l, u)``): ``y = p`` / ``y = alpha * p`` /
  ``y = const`` (clipped) -- exact because the activation is linear on ``[l, u]``.
* unstable neurons: the activation's own big-M rows, with their exactness argument, in
  ``verifier/activations/<kind>.py`` (ReLU as Clip(0, +inf) with one binary; Clip with one binary
  per kink strictly inside ``(l, u)``; LeakyReLU with one binary ``a`` = "x >= 0").

The M constants are the neuron's own (padded, sound) bounds: never a default.

Floating point: every non-constant hidden neuron gets a continuous rounding variable ``d`` with
``|d| <= e`` (``layer_bounds.rounding_errors``), so that ``x = p + d`` ranges over every value onnxruntime
may compute from the same float inputs; the bounds ``l, u`` already contain all of them. The
output layer's rounding is handled by widening each property row by ``|ay| @ e_out``
(``output_rows``), which over-approximates it row by row.
"""

from __future__ import annotations

import numpy as np

from .. import activations
from ..activations import kinks_inside, stable_line
from ..layer_bounds import LayerBounds, rounding_errors
from ..network import Network
from .model import MILP, _RowBuilder, _Vars, check_layer_bounds, with_margin

__all__ = ["MILP", "check_layer_bounds", "encode", "output_rows", "with_margin"]


def encode(network: Network, bounds: LayerBounds, lower: np.ndarray, upper: np.ndarray) -> MILP:
    """Encode ``network`` over the box ``[lower, upper]`` with the given pre-activation bounds."""
    check_layer_bounds(network, bounds)
    errors = rounding_errors(network, bounds, lower, upper)
    V = _Vars()
    R = _RowBuilder()
    in_vars = V.new(lower, upper)
    # per neuron of the current layer input: variable index or -1 for a constant. Fixed inputs
    # (lower == upper) are folded into the biases, so that no row mentions a fixed variable.
    fixed = np.asarray(lower) == np.asarray(upper)
    zvar = np.where(fixed, -1, in_vars)
    zconst = np.where(fixed, lower, 0.0)
    for k, layer in enumerate(network.layers[:-1]):
        act = layer.activation
        l, u = bounds.lower[k], bounds.upper[k]
        Wv, beff, cols = _affine_over(layer.weight, layer.bias, zvar, zconst)
        n = layer.n_out
        kinks = kinks_inside(act, l, u)
        unstable = kinks > 0
        yl, yu = act.apply(l), act.apply(u)
        new_var = np.full(n, -1, dtype=np.int64)
        new_const = np.zeros(n)

        # stable neurons: y = slope * p + offset on [l, u]
        st = ~unstable
        slope, offset = stable_line(act, l, u)
        const_mask = st & (slope == 0.0)
        new_const[const_mask] = offset[const_mask]
        e = errors[k]
        lin = np.flatnonzero(st & (slope != 0.0))
        if lin.size:
            yv = V.new(yl[lin], yu[lin])
            new_var[lin] = yv
            # y - slope * (Wv z + d) = slope * beff + offset
            coef = np.hstack([np.ones((lin.size, 1)), -slope[lin, None] * Wv[lin]])
            cc = np.hstack([yv[:, None], np.broadcast_to(cols, (lin.size, cols.size))])
            coef, cc = _with_rounding(V, coef, cc, e[lin], slope[lin])
            R.add_block(cc, coef, slope[lin] * beff[lin] + offset[lin], True)

        un = np.flatnonzero(unstable)
        if un.size:
            xv = V.new(l[un], u[un])
            yv = V.new(yl[un], yu[un])
            new_var[un] = yv
            coef = np.hstack([np.ones((un.size, 1)), -Wv[un]])
            cc = np.hstack([xv[:, None], np.broadcast_to(cols, (un.size, cols.size))])
            coef, cc = _with_rounding(V, coef, cc, e[un], np.ones(un.size))
            R.add_block(cc, coef, beff[un], True)  # x = p + d
            activations.big_m_rows(act, V, R, l[un], u[un], xv, yv, un)
        zvar, zconst = new_var, new_const

    indptr, indices, data, rhs, is_eq = R.finish()
    return MILP(np.concatenate(V.lb), np.concatenate(V.ub), np.concatenate(V.is_int), indptr, indices, data,
                rhs, is_eq, in_vars, (zvar, zconst), output_error=np.asarray(errors[-1], dtype=np.float64))


def _with_rounding(V: _Vars, coef: np.ndarray, cols: np.ndarray, e: np.ndarray, slope: np.ndarray):
    """Append a rounding variable ``d`` (``|d| <= e``) with coefficient ``-slope`` to each row (none if
    every ``e`` is zero, as for a network in exact arithmetic)."""
    if not np.any(e > 0):
        return coef, cols
    dv = V.new(-e, e)
    return np.hstack([coef, -slope[:, None]]), np.hstack([cols, dv[:, None]])


def _affine_over(W: np.ndarray, b: np.ndarray, zvar: np.ndarray, zconst: np.ndarray):
    """Split ``W z + b`` into the variable part and a bias that absorbs the constant neurons."""
    is_var = zvar >= 0
    beff = b + W[:, ~is_var] @ zconst[~is_var]
    return W[:, is_var], beff, zvar[is_var]


def output_rows(network: Network, milp: MILP, ax: np.ndarray, ay: np.ndarray, rhs: np.ndarray,
                widen: bool = True) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Rows ``ax @ input + ay @ y <= rhs`` with ``y = W_last z + b_last`` substituted.

    With ``widen`` (the default), each row's right-hand side grows by ``|ay| @ e_out``, the output
    layer's float rounding: the rows then hold wherever some float evaluation satisfies them.
    """
    if widen and milp.output_error is not None:
        rhs = np.asarray(rhs, dtype=np.float64) + np.abs(ay) @ milp.output_error
    last = network.layers[-1]
    zvar, zconst = milp.last_hidden
    Wv, beff, cols = _affine_over(last.weight, last.bias, zvar, zconst)
    fixed = milp.lb[milp.input_vars] == milp.ub[milp.input_vars]
    in_free = milp.input_vars[~fixed]
    rows = []
    for r in range(ay.shape[0]):
        coef_z = ay[r] @ Wv
        const = float(ay[r] @ beff) + float(ax[r, fixed] @ milp.lb[milp.input_vars[fixed]])
        idx = np.concatenate([cols, in_free])
        val = np.concatenate([coef_z, ax[r, ~fixed]])
        keep = val != 0.0
        idx, val = idx[keep], val[keep]
        # merge duplicates (an input variable can also be a hidden variable only if no hidden layer)
        uniq, inv = np.unique(idx, return_inverse=True)
        merged = np.zeros(uniq.size)
        np.add.at(merged, inv, val)
        rows.append((uniq, merged, float(rhs[r]) - const))
    return rows
