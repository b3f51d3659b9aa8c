"""Sound pre-activation bounds for every neuron of a ``Network`` over an input box.

Methods, from cheapest to tightest: ``interval`` (interval arithmetic) and ``symbolic``
(back-substitution of linear relaxations, DeepPoly / CROWN style). Every bound is padded outward
(``pad``) so that float64 rounding in these computations cannot make it unsound.

``LayerBounds`` is what the encoder consumes: any method (or a user) can supply it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import EncodingError
from .network import Network
from .relax import kinks_inside, relaxation

#: relative and absolute outward padding applied to every computed bound
PAD_REL = 1e-9
PAD_ABS = 1e-9


@dataclass(frozen=True)
class LayerBounds:
    """Pre-activation bounds ``lower[k] <= x_k <= upper[k]`` for every layer ``k`` (last = output)."""

    lower: tuple[np.ndarray, ...]
    upper: tuple[np.ndarray, ...]
    method: str
    #: per input: how much the relaxation gaps of unstable neurons depend on it (symbolic only;
    #: used to choose split dimensions)
    influence: np.ndarray | None = None

    @property
    def output_lower(self) -> np.ndarray:
        return self.lower[-1]

    @property
    def output_upper(self) -> np.ndarray:
        return self.upper[-1]

    def n_unstable(self, network: Network) -> int:
        """Neurons with an activation breakpoint strictly inside their bounds (those need binaries)."""
        return int(sum(np.count_nonzero(kinks_inside(layer.activation, self.lower[k], self.upper[k]))
                       for k, layer in enumerate(network.layers) if layer.activation is not None))



def pad(lower: np.ndarray, upper: np.ndarray, magnitude: np.ndarray | float = 0.0
        ) -> tuple[np.ndarray, np.ndarray]:
    """Widen ``[lower, upper]`` by ``PAD_ABS + PAD_REL * max(|bound|, magnitude)``.

    ``magnitude`` is the size of the terms summed to get the bound (cancellation makes the
    rounding error scale with it, not with the result).
    """
    m = np.maximum(np.maximum(np.abs(lower), np.abs(upper)), magnitude)
    d = PAD_ABS + PAD_REL * m
    return lower - d, upper + d


def check_box(lower: np.ndarray, upper: np.ndarray, n_inputs: int) -> tuple[np.ndarray, np.ndarray]:
    lower = np.asarray(lower, dtype=np.float64).ravel()
    upper = np.asarray(upper, dtype=np.float64).ravel()
    if lower.shape != (n_inputs,) or upper.shape != (n_inputs,):
        raise EncodingError(f"input box has {lower.size}/{upper.size} bounds, the network has {n_inputs} inputs")
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
        bad = int(np.flatnonzero(~(np.isfinite(lower) & np.isfinite(upper)))[0])
        raise EncodingError(f"input {bad} is unbounded or NaN; every input needs finite bounds")
    if np.any(lower > upper):
        bad = int(np.flatnonzero(lower > upper)[0])
        raise EncodingError(f"input {bad} has lower bound {lower[bad]} > upper bound {upper[bad]}")
    return lower, upper


#: proofs must hold with this margin relative to the size of the outputs: onnxruntime evaluates
#: in float32 (unit roundoff 6e-8), so a property that holds in real arithmetic by less than a few
#: float32 steps may still be violated by the float32 network. 1e-5 is about 170 float32 steps:
#: far above the rounding seen in practice, but an engineering margin, not a formal bound (worst-
#: case float32 error bounds through |W| explode with depth and would prove nothing).
FLOAT32_REL = 1e-5


def float32_error(network: Network, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Per output, the float32 evaluation margin a proof must keep on this box (see FLOAT32_REL).

    It scales with the output values (taken at the box centre, doubled, plus one), not with the
    output bounds, which can be far looser than the values the network actually takes.
    """
    y = network.forward(0.5 * (np.asarray(lower) + np.asarray(upper)))
    return FLOAT32_REL * (1.0 + 2.0 * np.abs(y))


def margin_tau(bounds: LayerBounds, margin_abs: float, margin_rel: float) -> float:
    """The enlargement of the unsafe region for MILP proofs: solver tolerances act on big-M rows,
    so the margin grows with the largest neuron bound."""
    big = max(float(np.max(np.maximum(np.abs(lo), np.abs(hi)))) for lo, hi in zip(bounds.lower, bounds.upper))
    return margin_abs + margin_rel * big


def row_margins(ay: np.ndarray, out_err: np.ndarray, rhs: np.ndarray | None = None) -> np.ndarray:
    """The float32 proof margin of each row ``ay @ y <= rhs``."""
    m = np.abs(ay) @ out_err + PAD_ABS
    return m if rhs is None else m + FLOAT32_REL * np.abs(rhs)


def interval_bounds(network: Network, lower: np.ndarray, upper: np.ndarray) -> LayerBounds:
    """Interval arithmetic: split ``W`` into positive and negative parts, layer by layer."""
    lo, hi = check_box(lower, upper, network.n_inputs)
    los, his = [], []
    for layer in network.layers:
        W, b = layer.weight, layer.bias
        Wp, Wn = np.maximum(W, 0.0), np.minimum(W, 0.0)
        nl = Wp @ lo + Wn @ hi + b
        nu = Wp @ hi + Wn @ lo + b
        mag = np.abs(W) @ np.maximum(np.abs(lo), np.abs(hi)) + np.abs(b)
        nl, nu = pad(nl, nu, mag)
        los.append(nl)
        his.append(nu)
        if layer.activation is not None:
            lo, hi = layer.activation.apply(nl), layer.activation.apply(nu)
    return _checked(LayerBounds(tuple(los), tuple(his), "interval"))


def _checked(b: LayerBounds) -> LayerBounds:
    for k, (lo, hi) in enumerate(zip(b.lower, b.upper)):
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise EncodingError(f"bounds of layer {k} are not finite (weights too large?)")
    return b


class _Relaxations:
    """The per-layer relaxation lines, computed once per set of bounds."""

    def __init__(self, network: Network, lower: list[np.ndarray], upper: list[np.ndarray]) -> None:
        self.lines = []
        for k, layer in enumerate(network.layers):
            if layer.activation is None or k >= len(lower):
                self.lines.append(None)
            else:
                self.lines.append(relaxation(layer.activation, lower[k], upper[k]))


def backsubstitute(network: Network, k: int, C: np.ndarray, d: np.ndarray, in_lower: np.ndarray,
                   in_upper: np.ndarray, relax: _Relaxations, C_in: np.ndarray | None = None,
                   return_coef: bool = False):
    """Sound lower / upper bounds of ``C @ x_k + d (+ C_in @ input)`` over the input box.

    ``x_k`` is the pre-activation of layer ``k``; layers ``< k`` are replaced by their linear
    relaxations (``relax``): bounding from above, a positive coefficient takes the upper line and a
    negative one the lower line. Lower bounds are computed as minus the upper bounds of ``-C``,
    stacked with ``C``, so one pass serves both. ``return_coef`` also returns the input
    coefficients of the lower bound's linear function.
    """
    n = C.shape[0]
    L = np.vstack([C, -C]).astype(np.float64)
    c = np.concatenate([d, -d]).astype(np.float64)
    mag = np.abs(c)
    for j in range(k, -1, -1):
        layer = network.layers[j]
        c = c + L @ layer.bias
        mag = mag + np.abs(L) @ np.abs(layer.bias)
        L = L @ layer.weight
        if j == 0:
            break
        a_lo, c_lo, a_up, c_up = relax.lines[j - 1]
        Lp = np.maximum(L, 0.0)
        Ln = L - Lp
        c = c + Lp @ c_up + Ln @ c_lo
        mag = mag + Lp @ np.abs(c_up) - Ln @ np.abs(c_lo)
        L = Lp * a_up + Ln * a_lo
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


def symbolic_bounds(network: Network, lower: np.ndarray, upper: np.ndarray,
                    start: LayerBounds | None = None) -> LayerBounds:
    """Back-substitution bounds, intersected with interval (or ``start``) bounds layer by layer."""
    lo_in, hi_in = check_box(lower, upper, network.n_inputs)
    los: list[np.ndarray] = []
    his: list[np.ndarray] = []
    relax = _Relaxations(network, [], [])
    relax.lines = []  # filled layer by layer below, as the bounds become known
    zl, zu = lo_in, hi_in  # bounds of the current layer's input (post-activation of the previous)
    influence = np.zeros(lo_in.size)
    for k, layer in enumerate(network.layers):
        W, b = layer.weight, layer.bias
        Wp, Wn = np.maximum(W, 0.0), np.minimum(W, 0.0)
        mag = np.abs(W) @ np.maximum(np.abs(zl), np.abs(zu)) + np.abs(b)
        l_k, u_k = pad(Wp @ zl + Wn @ zu + b, Wp @ zu + Wn @ zl + b, mag)
        if k > 0 and layer.activation is not None:
            # only neurons that interval arithmetic leaves unstable can gain anything
            idx = np.flatnonzero(kinks_inside(layer.activation, l_k, u_k))
        else:
            idx = np.arange(layer.n_out) if k > 0 else np.zeros(0, dtype=np.int64)
        if idx.size:
            C = np.zeros((idx.size, layer.n_out))
            C[np.arange(idx.size), idx] = 1.0
            sl, su, coef = backsubstitute(network, k, C, np.zeros(idx.size), lo_in, hi_in, relax, return_coef=True)
            l_k, u_k = l_k.copy(), u_k.copy()
            l_k[idx] = np.maximum(l_k[idx], sl)
            u_k[idx] = np.minimum(u_k[idx], su)
            if layer.activation is not None:
                # relaxation gap of each still-unstable neuron (triangle height), times how
                # strongly each input moves it
                lu, uu = l_k[idx], u_k[idx]
                gap = np.where((lu < 0) & (uu > 0), -lu * uu / np.maximum(uu - lu, 1e-12), 0.0)
                influence = influence + gap @ np.abs(coef)
        if start is not None:
            l_k, u_k = np.maximum(l_k, start.lower[k]), np.minimum(u_k, start.upper[k])
        los.append(l_k)
        his.append(u_k)
        if layer.activation is not None:
            relax.lines.append(relaxation(layer.activation, l_k, u_k))
            zl, zu = layer.activation.apply(l_k), layer.activation.apply(u_k)
        else:
            relax.lines.append(None)
    return _checked(LayerBounds(tuple(los), tuple(his), "symbolic", influence))


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
    relax = _Relaxations(network, list(bounds.lower), list(bounds.upper))
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
