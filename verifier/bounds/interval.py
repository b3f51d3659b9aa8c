"""Interval arithmetic bounds: split ``W`` into positive and negative parts, layer by layer,
each pre-activation widened by its float rounding ``e_k``."""

from __future__ import annotations

import numpy as np

from ..errors import EncodingError
from ..layer_bounds import LayerBounds, check_box, layer_error, next_input, pad
from ..network import Network


def interval_bounds(network: Network, lower: np.ndarray, upper: np.ndarray) -> LayerBounds:
    """Interval arithmetic: split ``W`` into positive and negative parts, layer by layer."""
    lo, hi = check_box(lower, upper, network.n_inputs)
    tl, tu, te = [lo], [hi], [np.zeros(lo.size)]  # per tensor: bounds and the activation's own rounding
    los, his, errs = [], [], []
    for k, layer in enumerate(network.layers):
        zl, zu = network.gather(k, tl), network.gather(k, tu)
        nl, nu = _interval_step(layer, zl, zu)
        e = layer_error(network, k, zl, zu, network.gather(k, te))
        nl, nu = nl - e, nu + e
        los.append(nl)
        his.append(nu)
        errs.append(e)
        if layer.activation is not None:
            for lst, v in zip((tl, tu, te), next_input(network, k, nl, nu)):
                lst.append(v)
    return _checked(LayerBounds(tuple(los), tuple(his), "interval", errors=tuple(errs)))


def _interval_step(layer, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Padded interval bounds of ``W z + b`` for ``z`` in ``[lo, hi]`` (real arithmetic)."""
    Wp, Wn, b = layer.pos_weight, layer.neg_weight, layer.bias
    mag = layer.abs_weight @ np.maximum(np.abs(lo), np.abs(hi)) + np.abs(b)
    return pad(Wp @ lo + Wn @ hi + b, Wp @ hi + Wn @ lo + b, mag)


def _checked(b: LayerBounds) -> LayerBounds:
    for k, (lo, hi) in enumerate(zip(b.lower, b.upper)):
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise EncodingError(f"bounds of layer {k} are not finite (weights too large?)")
    return b


