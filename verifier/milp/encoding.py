"""Big-M MILP encoding of a network over an input box, from any sound per-neuron bounds.

The MILP is kept solver-neutral (``MILP``: variable bounds, integrality, sparse rows). The network
is a DAG (``network``): the encoder keeps, per tensor (0 = input, ``k + 1`` = output of layer
``k``), a variable index (or -1) and a constant per entry, and gathers layer ``k``'s input from
its sources. Variables: the inputs, then per hidden layer a post-activation variable ``y`` for
every non-constant neuron, a pre-activation variable ``x`` for every unstable neuron, and
binaries. For neuron bounds ``l <= x <= u`` (``p = W z + b`` is the pre-activation expression
over the variables of the layer's input):

* stable neurons (no breakpoint strictly inside ``(l, u)``): ``y = p`` / ``y = alpha * p`` /
  ``y = const`` (clipped) -- exact because the activation is linear on ``[l, u]``.
* unstable neurons: the activation's own big-M rows, with their exactness argument, in
  ``verifier/activations/<kind>.py`` (ReLU as Clip(0, +inf) with one binary; Clip with one binary
  per kink strictly inside ``(l, u)``; LeakyReLU with one binary ``a`` = "x >= 0").
* activations that are not elementwise (``max`` over windows) write their own rows
  (``activations.milp_rows``): the encoder hands them ``x = p`` variables for the pre-activations
  they ask for.

The rows come from the weights' sparse structure: only the non-zero entries of ``W`` over
non-constant inputs appear (a convolution row has its kernel's entries, never the whole image);
constant inputs (fixed inputs, constant neurons) are folded into the right-hand side.

The M constants are the neuron's own (padded, sound) bounds: never a default.

Floating point: every non-constant hidden pre-activation with a non-zero rounding bound ``e``
(``layer_bounds.rounding_errors``) gets a continuous rounding variable ``d`` with ``|d| <= e``, so
that ``x = p + d`` ranges over every value onnxruntime may compute from the same float inputs;
the bounds ``l, u`` already contain all of them. The output layer's rounding is handled by
widening each property row by ``|ay| @ e_out`` (``output_rows``), which over-approximates it row by row.
"""

from __future__ import annotations

import numpy as np

from .. import activations
from ..activations import kinks_inside, stable_line
from ..layer_bounds import LayerBounds, rounding_errors
from ..linalg import is_sparse
from ..network import Network
from .model import MILP, _RowBuilder, _Vars, check_layer_bounds, with_margin

__all__ = ["MILP", "check_layer_bounds", "encode", "output_rows", "with_margin"]


class _Affine:
    """``p = W z + b`` of one layer over the MILP's variables: ``zvar`` (variable index or -1 per
    entry of the layer input ``z``), ``zconst`` (the value of the constant entries) and ``e`` (the
    layer's float rounding bound per pre-activation)."""

    def __init__(self, layer, zvar: np.ndarray, zconst: np.ndarray, e: np.ndarray) -> None:
        self.weight, self.bias = layer.weight, layer.bias
        self.zvar, self.zconst, self.e = zvar, zconst, np.asarray(e, dtype=np.float64)

    def rows(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The pre-activations ``idx`` as triplets ``(row, variable, coefficient)`` (row local to
        ``idx``; only non-zero weights on variables) and the bias with the constants folded in."""
        W = self.weight
        if is_sparse(W):
            sub = W[idx].tocoo()
            r, c, v = sub.row.astype(np.int64), sub.col.astype(np.int64), sub.data
        else:
            sub = W[idx]
            r, c = np.nonzero(sub)
            v = sub[r, c]
        var = self.zvar[c] >= 0
        const = np.bincount(r[~var], weights=v[~var] * self.zconst[c[~var]], minlength=idx.size)
        return r[var], self.zvar[c[var]], v[var], self.bias[idx] + const


def _linear_rows(V: _Vars, R: _RowBuilder, aff: _Affine, idx: np.ndarray, head: np.ndarray,
                 slope: np.ndarray, offset: np.ndarray) -> None:
    """Equalities ``head - slope * (p + d) = offset`` for the pre-activations ``idx``: ``head`` is
    their ``y`` (``x`` with slope 1, offset 0), ``d`` the rounding variable (none where ``e = 0``)."""
    n = idx.size
    r, c, v, beff = aff.rows(idx)
    rr, cc, vv = [np.arange(n), r], [head, c], [np.ones(n), -slope[r] * v]
    e = aff.e[idx]
    has_d = np.flatnonzero(e > 0)
    if has_d.size:
        rr.append(has_d)
        cc.append(V.new(-e[has_d], e[has_d]))
        vv.append(-slope[has_d])
    R.add_coo(n, np.concatenate(rr), np.concatenate(cc), np.concatenate(vv), slope * beff + offset, True)


def _flat_rows(R: _RowBuilder, aff: _Affine, idx: np.ndarray, l: np.ndarray, u: np.ndarray) -> None:
    """``l - e <= p <= u + e`` for the pre-activations ``idx`` (some float evaluation ``p + d``,
    ``|d| <= e``, lies in ``[l, u]``): a flat neuron's bounds as constraints."""
    r, c, v, beff = aff.rows(idx)
    e = aff.e[idx]
    n = idx.size
    R.add_coo(n, r, c, v, u + e - beff, False)  # p <= u + e
    R.add_coo(n, r, c, -v, -(l - e - beff), False)  # -p <= -(l - e)


def _elementwise(V: _Vars, R: _RowBuilder, act, l: np.ndarray, u: np.ndarray, aff: _Affine,
                 enforce: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of an elementwise activation layer; returns (variable or -1, constant) per output.
    ``enforce`` (a margin): the bounds of stable neurons, widened by it, become constraints (rows
    for flat neurons, variable bounds for linear ones)."""
    n = l.size
    unstable = kinks_inside(act, l, u) > 0
    yl, yu = act.apply(l), act.apply(u)
    var = np.full(n, -1, dtype=np.int64)
    const = np.zeros(n)
    # stable neurons: y = slope * p + offset on [l, u]
    slope, offset = stable_line(act, l, u)
    flat = ~unstable & (slope == 0.0)
    const[flat] = offset[flat]
    if enforce is not None and flat.any():
        idx = np.flatnonzero(flat)
        _flat_rows(R, aff, idx, l[idx] - enforce, u[idx] + enforce)
    lin = np.flatnonzero(~unstable & (slope != 0.0))
    if lin.size:
        if enforce is not None:  # y = slope (p + d) + offset, slope > 0: the widened bounds of p + d
            yl = np.where(np.isin(np.arange(n), lin), slope * (l - enforce) + offset, yl)
            yu = np.where(np.isin(np.arange(n), lin), slope * (u + enforce) + offset, yu)
        var[lin] = V.new(yl[lin], yu[lin])
        _linear_rows(V, R, aff, lin, var[lin], slope[lin], offset[lin])
    un = np.flatnonzero(unstable)
    if un.size:
        xv = V.new(l[un], u[un])
        var[un] = V.new(yl[un], yu[un])
        _linear_rows(V, R, aff, un, xv, np.ones(un.size), np.zeros(un.size))  # x = p + d
        activations.big_m_rows(act, V, R, l[un], u[un], xv, var[un], un)
    return var, const


def encode(network: Network, bounds: LayerBounds, lower: np.ndarray, upper: np.ndarray,
           enforce_bounds: float | None = None) -> MILP:
    """Encode ``network`` over the box ``[lower, upper]`` with the given pre-activation bounds.

    ``enforce_bounds`` (a margin ``m >= 0``): every stable neuron's bounds, widened by ``m``, are
    constraints of the MILP, not only a fact the encoding relies on. Needed when the bounds *define* the region (a branch-and-bound leaf
    whose splits set ``l = 0`` or ``u = 0``): a stable neuron's linear piece alone would not
    exclude the inputs where it takes the other phase. Linear stable neurons get the widened bounds
    on their variables, flat ones (ReLU at zero, saturated Clip) two rows; the margin keeps solver
    tolerances from cutting a thin region away (the MILP stays a relaxation of the sub-problem)."""
    check_layer_bounds(network, bounds)
    lower = np.asarray(lower, dtype=np.float64).ravel()
    upper = np.asarray(upper, dtype=np.float64).ravel()
    errors = rounding_errors(network, bounds, lower, upper)
    V = _Vars()
    R = _RowBuilder()
    in_vars = V.new(lower, upper)
    # per tensor, per entry: variable index or -1 for a constant. Fixed inputs (lower == upper)
    # are constants, folded into the biases, so that no row mentions a fixed variable.
    fixed = lower == upper
    tvar = [np.where(fixed, -1, in_vars)]
    tconst = [np.where(fixed, lower, 0.0)]
    for k, layer in enumerate(network.layers[:-1]):
        act, l, u = layer.activation, bounds.lower[k], bounds.upper[k]
        aff = _Affine(layer, network.gather(k, tvar), network.gather(k, tconst), errors[k])
        if activations.is_elementwise(act):
            var, const = _elementwise(V, R, act, l, u, aff, enforce_bounds)
        else:
            var, const = activations.milp_rows(act, V, R, l, u, _pre_variables(V, R, aff, l, u))
        tvar.append(var)
        tconst.append(const)

    last = len(network.layers) - 1
    indptr, indices, data, rhs, is_eq = R.finish()
    return MILP(np.concatenate(V.lb), np.concatenate(V.ub), np.concatenate(V.is_int), indptr, indices, data,
                rhs, is_eq, in_vars, (network.gather(last, tvar), network.gather(last, tconst)),
                output_error=np.asarray(errors[-1], dtype=np.float64))


def _pre_variables(V: _Vars, R: _RowBuilder, aff: _Affine, l: np.ndarray, u: np.ndarray):
    """For a kind that writes its own rows: a function giving pre-activation variables
    ``x = p + d`` (boxed by ``[l, u]``) for the pre-activations it asks for (once each)."""

    def x_of(idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        xv = V.new(l[idx], u[idx])
        _linear_rows(V, R, aff, idx, xv, np.ones(idx.size), np.zeros(idx.size))
        return xv

    return x_of


def output_rows(network: Network, milp: MILP, ax: np.ndarray, ay: np.ndarray, rhs: np.ndarray,
                widen: bool = True) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Rows ``ax @ input + ay @ y <= rhs`` with ``y = W_last z + b_last`` substituted (``z``: the
    output layer's sources, which may include the input itself).

    With ``widen`` (the default), each row's right-hand side grows by ``|ay| @ e_out``, the output
    layer's float rounding: the rows then hold wherever some float evaluation satisfies them.
    """
    ax = np.atleast_2d(np.asarray(ax, dtype=np.float64))
    ay = np.atleast_2d(np.asarray(ay, dtype=np.float64))
    if widen and milp.output_error is not None:
        rhs = np.asarray(rhs, dtype=np.float64) + np.abs(ay) @ milp.output_error
    last = network.layers[-1]
    zvar, zconst = milp.last_hidden
    A = np.asarray(ay @ last.weight)  # (rows, inputs of the output layer): dense, one row per property row
    var = zvar >= 0
    fixed = milp.lb[milp.input_vars] == milp.ub[milp.input_vars]
    in_free = milp.input_vars[~fixed]
    const = A[:, ~var] @ zconst[~var] + ay @ last.bias + ax[:, fixed] @ milp.lb[milp.input_vars[fixed]]
    rows = []
    for r in range(ay.shape[0]):
        idx = np.concatenate([zvar[var], in_free])
        val = np.concatenate([A[r, var], ax[r, ~fixed]])
        keep = val != 0.0
        # merge duplicates: a variable read twice (an input read by the output layer and by ax,
        # or one pre-activation that is the output of two max windows)
        uniq, inv = np.unique(idx[keep], return_inverse=True)
        merged = np.zeros(uniq.size)
        np.add.at(merged, inv, val[keep])
        rows.append((uniq, merged, float(rhs[r]) - float(const[r])))
    return rows
