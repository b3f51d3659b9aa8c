"""Sound pre-activation bounds for every neuron of a ``Network`` over an input box.

Methods, from cheapest to tightest: ``interval`` (interval arithmetic) and ``symbolic``
(back-substitution of linear relaxations, DeepPoly / CROWN style). Every bound is padded outward
(``pad``) so that float64 rounding in these computations cannot make it unsound.

The bounds are bounds of the network *as onnxruntime evaluates it*: every pre-activation is
``x_k = W_k z_{k-1} + b_k + d_k`` with the float rounding ``|d_k| <= e_k`` of ``floatmodel``
(``e_k`` from the magnitudes of the previous layer's sound bounds, ``rounding_errors``). Interval
bounds widen each pre-activation by ``e_k``; in back-substitution the term ``Lambda_k d_k`` of each
layer enters the bound as ``|Lambda_k| e_k``.

``LayerBounds`` is what the encoder consumes: any method (or a user) can supply it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import kinks_inside, relaxation
from .errors import EncodingError
from .network import Network

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
    #: per layer, the float rounding bound ``e_k`` the bounds were computed with (None: derive it
    #: from the bounds with ``rounding_errors``, which is sound for any sound bounds)
    errors: tuple[np.ndarray, ...] | None = None

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


def layer_error(network: Network, k: int, zl: np.ndarray, zu: np.ndarray, z_err: np.ndarray) -> np.ndarray:
    """``e_k`` for layer ``k`` whose (real) inputs lie in ``[zl, zu]`` and whose float inputs are within
    ``z_err`` of them (the previous activation's rounding)."""
    mag = np.maximum(np.abs(zl), np.abs(zu)) + z_err
    return network.layers[k].rounding_error(mag, z_err)


def next_input(network: Network, k: int, l_k: np.ndarray, u_k: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bounds of layer ``k+1``'s input from layer ``k``'s pre-activation bounds: ``(zl, zu, z_err)``."""
    act = network.layers[k].activation
    return act.apply(l_k), act.apply(u_k), act.output_error(l_k, u_k)


def rounding_errors(network: Network, bounds: LayerBounds, lower: np.ndarray, upper: np.ndarray
                    ) -> tuple[np.ndarray, ...]:
    """``e_k`` of every layer, from ``bounds`` (their own, if they carry them)."""
    if bounds.errors is not None:
        return bounds.errors
    zl, zu, z_err = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64), np.zeros(network.n_inputs)
    errs = []
    for k, layer in enumerate(network.layers):
        errs.append(layer_error(network, k, zl, zu, z_err))
        if layer.activation is not None:
            zl, zu, z_err = next_input(network, k, bounds.lower[k], bounds.upper[k])
    return tuple(errs)


def margin_tau(bounds: LayerBounds, margin_abs: float, margin_rel: float) -> float:
    """The enlargement of the unsafe region for MILP proofs: solver tolerances act on big-M rows,
    so the margin grows with the largest neuron bound."""
    big = max(float(np.max(np.maximum(np.abs(lo), np.abs(hi)))) for lo, hi in zip(bounds.lower, bounds.upper))
    return margin_abs + margin_rel * big


def interval_bounds(network: Network, lower: np.ndarray, upper: np.ndarray) -> LayerBounds:
    """Interval arithmetic: split ``W`` into positive and negative parts, layer by layer."""
    lo, hi = check_box(lower, upper, network.n_inputs)
    z_err = np.zeros(lo.size)
    los, his, errs = [], [], []
    for k, layer in enumerate(network.layers):
        nl, nu = _interval_step(layer.weight, layer.bias, lo, hi)
        e = layer_error(network, k, lo, hi, z_err)
        nl, nu = nl - e, nu + e
        los.append(nl)
        his.append(nu)
        errs.append(e)
        if layer.activation is not None:
            lo, hi, z_err = next_input(network, k, nl, nu)
    return _checked(LayerBounds(tuple(los), tuple(his), "interval", errors=tuple(errs)))


def _interval_step(W: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Padded interval bounds of ``W z + b`` for ``z`` in ``[lo, hi]`` (real arithmetic)."""
    Wp, Wn = np.maximum(W, 0.0), np.minimum(W, 0.0)
    mag = np.abs(W) @ np.maximum(np.abs(lo), np.abs(hi)) + np.abs(b)
    return pad(Wp @ lo + Wn @ hi + b, Wp @ hi + Wn @ lo + b, mag)


def _checked(b: LayerBounds) -> LayerBounds:
    for k, (lo, hi) in enumerate(zip(b.lower, b.upper)):
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise EncodingError(f"bounds of layer {k} are not finite (weights too large?)")
    return b


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
        absL = np.abs(L)
        c = c + L @ layer.bias + absL @ relax.errors[j]  # the rounding d_j, |d_j| <= e_j, at its worst
        mag = mag + absL @ (np.abs(layer.bias) + relax.errors[j])
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
    z_err = np.zeros(lo_in.size)
    influence = np.zeros(lo_in.size)
    for k, layer in enumerate(network.layers):
        e_k = layer_error(network, k, zl, zu, z_err)
        relax.errors.append(e_k)
        l_k, u_k = _interval_step(layer.weight, layer.bias, zl, zu)
        l_k, u_k = l_k - e_k, u_k + e_k
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
            zl, zu, z_err = next_input(network, k, l_k, u_k)
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
