"""``LayerBounds`` (per-neuron pre-activation bounds, what every encoder consumes) and what all
bound methods share: outward padding, input-box checks, the float rounding ``e_k`` of each
layer from sound bounds (``rounding_errors``) and the MILP margin ``tau``.

A core module: the bound methods (``verifier.bounds``) and the encoders (``verifier.milp``) both
use it without depending on each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import kinks_inside
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
    """``e_k`` for layer ``k`` whose (real) inputs (its sources, gathered) lie in ``[zl, zu]`` and whose
    float inputs are within ``z_err`` of them (the source activations' own rounding)."""
    mag = np.maximum(np.abs(zl), np.abs(zu)) + z_err
    return network.layers[k].rounding_error(mag, z_err)


def next_input(network: Network, k: int, l_k: np.ndarray, u_k: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bounds of layer ``k``'s output (tensor ``k + 1``) from its pre-activation bounds, which
    contain every float value: ``(zl, zu, z_err)``, ``z_err`` being the activation's own rounding."""
    act = network.layers[k].activation
    return act.apply(l_k), act.apply(u_k), act.output_error(l_k, u_k)


def rounding_errors(network: Network, bounds: LayerBounds, lower: np.ndarray, upper: np.ndarray
                    ) -> tuple[np.ndarray, ...]:
    """``e_k`` of every layer, from ``bounds`` (their own, if they carry them)."""
    if bounds.errors is not None:
        return bounds.errors
    lo, hi = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    tl, tu, te = [lo], [hi], [np.zeros(network.n_inputs)]  # per tensor: bounds and float deviation
    errs = []
    for k, layer in enumerate(network.layers):
        errs.append(layer_error(network, k, network.gather(k, tl), network.gather(k, tu), network.gather(k, te)))
        if layer.activation is not None:
            zl, zu, ze = next_input(network, k, bounds.lower[k], bounds.upper[k])
            tl.append(zl)
            tu.append(zu)
            te.append(ze)
    return tuple(errs)


def margin_tau(bounds: LayerBounds, margin_abs: float, margin_rel: float) -> float:
    """The enlargement of the unsafe region for MILP proofs: solver tolerances act on big-M rows,
    so the margin grows with the largest neuron bound."""
    big = max(float(np.max(np.maximum(np.abs(lo), np.abs(hi)))) for lo, hi in zip(bounds.lower, bounds.upper))
    return margin_abs + margin_rel * big


