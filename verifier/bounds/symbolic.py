"""Symbolic back-substitution bounds (DeepPoly / CROWN style): linear relaxations of the
activations substituted backwards to the inputs; the rounding ``d_j`` of each layer enters as
``|Lambda_j| e_j``."""

from __future__ import annotations

import numpy as np

from ..activations import backward_cols, kinks_inside, relaxation
from ..budget import Deadline
from ..layer_bounds import LayerBounds, check_box, layer_error, next_input, pad, rounding_errors
from ..network import Network
from .interval import _checked, _interval_step


class _Relaxations:
    """The per-layer relaxation lines and float rounding bounds, computed once per set of bounds.

    ``lines[k]`` relaxes the real activation of layer ``k``; ``errors[k]`` bounds layer ``k``'s
    pre-activation rounding (the previous activation's own rounding included, see
    ``Layer.rounding_error``).
    """

    def __init__(self, network: Network, lower: list[np.ndarray], upper: list[np.ndarray],
                 errors: tuple[np.ndarray, ...] | list[np.ndarray] = ()) -> None:
        self.lines = []
        self.errors = list(errors)
        for k, layer in enumerate(network.layers):
            if layer.activation is None or k >= len(lower):
                self.lines.append(None)
            else:
                self.lines.append(relaxation(layer.activation, lower[k], upper[k]))


def backsubstitute(network: Network, k: int, C: np.ndarray, d: np.ndarray, in_lower: np.ndarray,
                   in_upper: np.ndarray, relax: _Relaxations, C_in: np.ndarray | None = None,
                   return_coef: bool = False, C_cols: np.ndarray | None = None):
    """Sound lower / upper bounds of ``C @ x_k + d (+ C_in @ input)`` over the input box.

    ``x_k`` is the pre-activation of layer ``k``; layers ``< k`` are replaced by their linear
    relaxations (``relax``): bounding from above, a positive coefficient takes the upper line and a
    negative one the lower line. Lower bounds are computed as minus the upper bounds of ``-C``,
    stacked with ``C``, so one pass serves both. On a DAG the coefficients of every tensor are
    collected from all the layers that read it before its own layer is substituted (layers are
    visited in reverse order, and a layer only reads earlier tensors). ``return_coef`` also
    returns the input coefficients of the lower bound's linear function. ``C_cols`` (sorted): ``C``
    gives only these columns of the coefficient matrix over ``x_k`` (the others are zero).
    """
    n = C.shape[0]
    L, cols = np.vstack([C, -C]).astype(np.float64), C_cols
    if cols is None:
        L, cols = _compress(L)
    c = np.concatenate([d, -d]).astype(np.float64)
    mag = np.abs(c)
    pending: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}  # tensor -> its coefficients (compressed)
    for j in range(k, -1, -1):
        layer = network.layers[j]
        if j < k:
            post = pending.pop(j + 1, None)
            if post is None:
                continue  # layer j does not reach the target
            L, cols, cc, mm = backward_cols(layer.activation, relax.lines[j], *post)
            c = c + cc
            mag = mag + mm
        bias, err = (layer.bias, relax.errors[j]) if cols is None else (layer.bias[cols], relax.errors[j][cols])
        absL = np.abs(L)
        c = c + L @ bias + absL @ err  # the rounding d_j, |d_j| <= e_j, at its worst
        mag = mag + absL @ (np.abs(bias) + err)
        W = layer.weight if cols is None else layer.weight[cols]
        for t, block in network.split(j, L @ W):
            pending[t] = _add(pending.get(t), _compress(block))
    L = _expand(pending.pop(0, (np.zeros((2 * n, 0)), np.zeros(0, dtype=np.int64))), network.n_inputs)
    if C_in is not None:
        L = L + np.vstack([C_in, -C_in])
    Lp = np.maximum(L, 0.0)
    up_all = c + Lp @ in_upper + (L - Lp) @ in_lower
    mag = mag + np.abs(L) @ np.maximum(np.abs(in_lower), np.abs(in_upper))
    lo, up = -up_all[n:], up_all[:n]
    lo, up = pad(lo, up, np.maximum(mag[:n], mag[n:]))
    if return_coef:
        return lo, up, -L[n:]
    return lo, up


# Coefficient matrices are kept *compressed*: ``(M, cols)`` stands for the matrix that has M's
# columns at ``cols`` and zeros elsewhere (``cols`` None: M is the whole matrix). Back-substituting
# a few neurons through a wide layer (the candidates of max windows, a block of unstable conv
# neurons) then costs what their receptive fields cost, not the layer's width.

#: layers narrower than this are never compressed (the bookkeeping would cost more than it saves)
COMPRESS_MIN_WIDTH = 1024


def _compress(M: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if M.shape[1] < COMPRESS_MIN_WIDTH:
        return M, None
    nz = np.flatnonzero(np.any(M != 0.0, axis=0))
    if nz.size > M.shape[1] // 2:
        return M, None
    return M[:, nz], nz


def _add(a, b):
    """Sum of two compressed coefficient matrices (``a`` may be None)."""
    if a is None:
        return b
    (Ma, ca), (Mb, cb) = a, b
    if ca is None and cb is None:
        return Ma + Mb, None
    if ca is None or cb is None:
        full, (Ms, cs) = (Ma, b) if ca is None else (Mb, a)
        out = full.copy()
        out[:, cs] += Ms
        return out, None
    cols = np.union1d(ca, cb)
    out = np.zeros((Ma.shape[0], cols.size))
    out[:, np.searchsorted(cols, ca)] += Ma
    out[:, np.searchsorted(cols, cb)] += Mb
    return out, cols


def _expand(coef, n: int) -> np.ndarray:
    M, cols = coef
    if cols is None:
        return M
    out = np.zeros((M.shape[0], n))
    out[:, cols] = M
    return out


#: neurons back-substituted together: bounds the size of the dense coefficient matrices (twice this
#: many rows by a layer's width) and how long the bounds run between two deadline checks
BLOCK_ROWS = 512


def symbolic_bounds(network: Network, lower: np.ndarray, upper: np.ndarray,
                    start: LayerBounds | None = None, deadline: Deadline | None = None) -> LayerBounds:
    """Back-substitution bounds, intersected with interval (or ``start``) bounds layer by layer.
    ``deadline``: checked before each block of ``BLOCK_ROWS`` neurons (``budget.Expired`` once it has passed)."""
    lo_in, hi_in = check_box(lower, upper, network.n_inputs)
    los: list[np.ndarray] = []
    his: list[np.ndarray] = []
    relax = _Relaxations(network, [], [])
    relax.lines = []  # filled layer by layer below, as the bounds become known
    tl, tu, te = [lo_in], [hi_in], [np.zeros(lo_in.size)]  # per tensor: bounds and own rounding
    influence = np.zeros(lo_in.size)
    for k, layer in enumerate(network.layers):
        if deadline is not None:
            deadline.check("bounds")
        zl, zu = network.gather(k, tl), network.gather(k, tu)
        e_k = layer_error(network, k, zl, zu, network.gather(k, te))
        relax.errors.append(e_k)
        l_k, u_k = _interval_step(layer, zl, zu)
        l_k, u_k = l_k - e_k, u_k + e_k
        if k > 0 and layer.activation is not None:
            # only neurons that interval arithmetic leaves unstable can gain anything
            idx = np.flatnonzero(kinks_inside(layer.activation, l_k, u_k))
        else:
            idx = np.arange(layer.n_out) if k > 0 else np.zeros(0, dtype=np.int64)
        l_k, u_k = l_k.copy(), u_k.copy()
        blocks = [idx] if idx.size <= BLOCK_ROWS else np.array_split(idx, -(-idx.size // BLOCK_ROWS))
        for block in blocks if idx.size else ():
            if deadline is not None:
                deadline.check("bounds")
            sl, su, coef = backsubstitute(network, k, np.eye(block.size), np.zeros(block.size), lo_in, hi_in, relax,
                                          return_coef=True, C_cols=block)
            l_k[block] = np.maximum(l_k[block], sl)
            u_k[block] = np.minimum(u_k[block], su)
            if layer.activation is not None:
                # relaxation gap of each still-unstable neuron (triangle height), times how
                # strongly each input moves it
                lu, uu = l_k[block], u_k[block]
                gap = np.where((lu < 0) & (uu > 0), -lu * uu / np.maximum(uu - lu, 1e-12), 0.0)
                influence = influence + gap @ np.abs(coef)
        if start is not None:
            l_k, u_k = np.maximum(l_k, start.lower[k]), np.minimum(u_k, start.upper[k])
        los.append(l_k)
        his.append(u_k)
        if layer.activation is not None:
            relax.lines.append(relaxation(layer.activation, l_k, u_k))
            for lst, v in zip((tl, tu, te), next_input(network, k, l_k, u_k)):
                lst.append(v)
        else:
            relax.lines.append(None)
    return _checked(LayerBounds(tuple(los), tuple(his), "symbolic", influence, tuple(relax.errors)))


def linear_bounds(network: Network, bounds: LayerBounds, lower: np.ndarray, upper: np.ndarray,
                  C_out: np.ndarray, d: np.ndarray | None = None, C_in: np.ndarray | None = None,
                  return_coef: bool = False):
    """Bounds of ``C_out @ y + C_in @ x + d`` (rows) over the box, using ``bounds`` for the relaxations.

    The result is intersected with what the output bounds alone give (interval over ``y``). With
    ``return_coef`` the input coefficients of the symbolic lower bound are returned too (they say
    which input moves the bound most: used to pick split dimensions and attack points).
    """
    lo_in, hi_in = check_box(lower, upper, network.n_inputs)
    C_out = np.atleast_2d(np.asarray(C_out, dtype=np.float64))
    d = np.zeros(C_out.shape[0]) if d is None else np.asarray(d, dtype=np.float64)
    relax = _Relaxations(network, list(bounds.lower), list(bounds.upper),
                         rounding_errors(network, bounds, lo_in, hi_in))
    k = len(network.layers) - 1
    lo, up, coef = backsubstitute(network, k, C_out, d, lo_in, hi_in, relax, C_in, return_coef=True)
    # interval fallback on the output bounds
    yl, yu = bounds.output_lower, bounds.output_upper
    Cp, Cn = np.maximum(C_out, 0.0), np.minimum(C_out, 0.0)
    il = Cp @ yl + Cn @ yu + d
    iu = Cp @ yu + Cn @ yl + d
    if C_in is not None:
        Ip, In = np.maximum(C_in, 0.0), np.minimum(C_in, 0.0)
        il = il + Ip @ lo_in + In @ hi_in
        iu = iu + Ip @ hi_in + In @ lo_in
    il, iu = pad(il, iu, np.abs(C_out) @ np.maximum(np.abs(yl), np.abs(yu)))
    if return_coef:
        return np.maximum(lo, il), np.minimum(up, iu), coef
    return np.maximum(lo, il), np.minimum(up, iu)

