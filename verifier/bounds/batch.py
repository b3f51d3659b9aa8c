"""Symbolic back-substitution bounds of many input boxes at once (input splitting).

The same bounds as ``symbolic.symbolic_bounds`` / ``symbolic.linear_bounds`` (DeepPoly / CROWN
lines, the float rounding ``e_k`` of every layer entering as ``|Lambda_k| e_k``, the same outward
padding), computed for a batch of ``B`` boxes in one set of numpy calls instead of one box at a
time: on a small network the per-box cost of the one-box code is Python overhead, not arithmetic.
As there, a hidden neuron is back-substituted only where interval arithmetic leaves it unstable
(the rows of all boxes are stacked into one coefficient matrix), and every bound is intersected
with the interval one.

Only chains of dense layers with ReLU (or no) activations are supported (``supports``); the
search falls back to the one-box code for anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..activations import relaxation
from ..budget import Deadline
from ..errors import EncodingError
from ..layer_bounds import LayerBounds, pad
from ..network import Network


def supports(network: Network) -> bool:
    """True if ``batch_bounds`` handles this network (a chain of dense ReLU / affine layers)."""
    if not network.is_chain:
        return False
    for layer in network.layers:
        if not isinstance(layer.weight, np.ndarray) or not isinstance(layer.err_weight, np.ndarray):
            return False
        if layer.activation is not None and layer.activation.kind != "relu":
            return False
    return network.layers[-1].activation is None


@dataclass
class BoxBatch:
    """Bounds of ``B`` boxes: per layer ``(B, n_k)`` pre-activation bounds, rounding bounds ``e_k``
    and ReLU relaxation lines (None for a layer without activation), and per box the influence of
    each input on the relaxation gaps (as ``LayerBounds.influence``)."""

    lower: list[np.ndarray]
    upper: list[np.ndarray]
    errors: list[np.ndarray]
    lines: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None]
    influence: np.ndarray

    def box(self, i: int) -> LayerBounds:
        """Box ``i``'s bounds as the one-box code's ``LayerBounds``."""
        return LayerBounds(tuple(a[i] for a in self.lower), tuple(a[i] for a in self.upper), "symbolic",
                           self.influence[i], tuple(e[i] for e in self.errors))

    def n_unstable(self, network: Network) -> np.ndarray:
        """Per box, the neurons with the ReLU breakpoint strictly inside their bounds."""
        n = np.zeros(self.influence.shape[0], dtype=np.int64)
        for k, layer in enumerate(network.layers):
            if layer.activation is not None:
                n += np.count_nonzero((self.lower[k] < 0) & (self.upper[k] > 0), axis=1)
        return n


def _backsubstitute(network: Network, k: int, L: np.ndarray, rb: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                    lines, errors, C_in: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper bounds of the rows ``L @ x_k (+ C_in @ input)`` (``L``: (R, n_k), row ``r`` belonging to
    box ``rb[r]``) over their boxes, layers ``< k`` replaced by their relaxation lines: ``(upper (R,),
    magnitude of the summed terms (R,), input coefficients (R, n_in))``. The rows of all boxes are
    stacked, so each step is one matrix product whatever the boxes."""
    c = np.zeros(L.shape[0])
    mag = np.zeros(L.shape[0])
    for j in range(k, -1, -1):
        layer = network.layers[j]
        if j < k:
            a_lo, _c_lo, a_up, c_up = lines[j]  # ReLU: the lower lines have no offset
            Lp = np.maximum(L, 0.0)
            cu = c_up[rb]
            c = c + np.einsum("rn,rn->r", Lp, cu)
            mag = mag + np.einsum("rn,rn->r", Lp, np.abs(cu))
            L = Lp * a_up[rb] + (L - Lp) * a_lo[rb]
        absL = np.abs(L)
        e = errors[j][rb]
        c = c + L @ layer.bias + np.einsum("rn,rn->r", absL, e)
        mag = mag + np.einsum("rn,rn->r", absL, np.abs(layer.bias) + e)
        L = L @ layer.weight
    if C_in is not None:
        L = L + C_in
    Lp = np.maximum(L, 0.0)
    up = c + np.einsum("rn,rn->r", Lp, hi[rb]) + np.einsum("rn,rn->r", L - Lp, lo[rb])
    mag = mag + np.einsum("rn,rn->r", np.abs(L), np.maximum(np.abs(lo), np.abs(hi))[rb])
    return up, mag, L


def batch_bounds(network: Network, lower: np.ndarray, upper: np.ndarray,
                 deadline: Deadline | None = None,
                 start: tuple[list[np.ndarray], list[np.ndarray]] | None = None) -> BoxBatch:
    """``symbolic_bounds`` of every box ``(lower[i], upper[i])`` (arrays (B, n_inputs)).
    ``deadline``: checked before each layer (``budget.Expired``). ``start``: per layer (B, n_k)
    lower and upper bounds already known to hold on each box (its parent box's bounds; +-inf:
    none); the interval bounds are intersected with them before the unstable neurons are chosen, so
    a neuron the parent proved stable is not back-substituted again."""
    lo = np.asarray(lower, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    if lo.ndim != 2 or lo.shape != hi.shape or lo.shape[1] != network.n_inputs or np.any(lo > hi) \
            or not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise EncodingError(f"batch_bounds needs finite boxes (B, {network.n_inputs}) with lower <= upper")
    B = lo.shape[0]
    zl, zu = lo, hi
    los, his, errs, lines = [], [], [], []
    influence = np.zeros(lo.shape)
    for k, layer in enumerate(network.layers):
        if deadline is not None:
            deadline.check("bounds")
        e_k = np.broadcast_to(layer.rounding_error(np.maximum(np.abs(zl), np.abs(zu))), (B, layer.n_out))
        errs.append(e_k)
        Wp, Wn = layer.pos_weight, layer.neg_weight
        m = np.maximum(np.abs(zl), np.abs(zu)) @ layer.abs_weight.T + np.abs(layer.bias)
        l_k, u_k = pad(zl @ Wp.T + zu @ Wn.T + layer.bias, zu @ Wp.T + zl @ Wn.T + layer.bias, m)
        l_k, u_k = l_k - e_k, u_k + e_k
        if start is not None:
            l_k, u_k = np.maximum(l_k, start[0][k]), np.minimum(u_k, start[1][k])
        if k > 0:
            # hidden layers: the neurons interval arithmetic leaves unstable in some box (the others
            # gain nothing); the output layer: every neuron
            if layer.activation is not None:
                bi, ni = np.nonzero((l_k < 0) & (u_k > 0))
            else:
                bi, ni = np.repeat(np.arange(B), layer.n_out), np.tile(np.arange(layer.n_out), B)
            n = bi.size
            if n:
                sel = np.zeros((n, layer.n_out))
                sel[np.arange(n), ni] = 1.0
                up_all, mag, Lin = _backsubstitute(network, k, np.concatenate([sel, -sel]), np.concatenate([bi, bi]),
                                                   lo, hi, lines, errs)
                sl, su = pad(-up_all[n:], up_all[:n], np.maximum(mag[:n], mag[n:]))
                lu, uu = np.maximum(l_k[bi, ni], sl), np.minimum(u_k[bi, ni], su)
                l_k[bi, ni], u_k[bi, ni] = lu, uu
                if layer.activation is not None:
                    gap = np.where((lu < 0) & (uu > 0), -lu * uu / np.maximum(uu - lu, 1e-12), 0.0)
                    np.add.at(influence, bi, gap[:, None] * np.abs(Lin[n:]))
        if not (np.all(np.isfinite(l_k)) and np.all(np.isfinite(u_k))):
            raise EncodingError(f"bounds of layer {k} are not finite (weights too large?)")
        los.append(l_k)
        his.append(u_k)
        if layer.activation is not None:
            lines.append(relaxation(layer.activation, l_k, u_k))
            zl, zu = np.maximum(l_k, 0.0), np.maximum(u_k, 0.0)  # ReLU: no rounding of its own
        else:
            lines.append(None)
    return BoxBatch(los, his, errs, lines, influence)


def batch_linear_bounds(network: Network, bb: BoxBatch, lower: np.ndarray, upper: np.ndarray,
                        C_out: np.ndarray, C_in: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``linear_bounds(..., return_coef=True)`` of the rows ``C_out @ y + C_in @ x`` on every box of
    ``bb``: (lower (B, m), upper (B, m), input coefficients of the lower bounds (B, m, n_in))."""
    lo = np.asarray(lower, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    C = np.atleast_2d(np.asarray(C_out, dtype=np.float64))
    B, m = lo.shape[0], C.shape[0]
    k = len(network.layers) - 1
    rb = np.repeat(np.arange(B), 2 * m)
    L = np.tile(np.concatenate([C, -C]), (B, 1))
    Ci = None if C_in is None else np.tile(np.concatenate([C_in, -C_in]).astype(np.float64), (B, 1))
    up_all, mag, Lin = _backsubstitute(network, k, L, rb, lo, hi, bb.lines, bb.errors, Ci)
    up_all, mag, Lin = up_all.reshape(B, 2 * m), mag.reshape(B, 2 * m), Lin.reshape(B, 2 * m, -1)
    low, up = pad(-up_all[:, m:], up_all[:, :m], np.maximum(mag[:, :m], mag[:, m:]))
    yl, yu = bb.lower[-1], bb.upper[-1]
    Cp, Cn = np.maximum(C, 0.0), np.minimum(C, 0.0)
    il, iu = yl @ Cp.T + yu @ Cn.T, yu @ Cp.T + yl @ Cn.T
    if C_in is not None:
        Ip, In = np.maximum(C_in, 0.0), np.minimum(C_in, 0.0)
        il, iu = il + lo @ Ip.T + hi @ In.T, iu + hi @ Ip.T + lo @ In.T
    il, iu = pad(il, iu, np.maximum(np.abs(yl), np.abs(yu)) @ np.abs(C).T)
    return np.maximum(low, il), np.minimum(up, iu), -Lin[:, m:]
