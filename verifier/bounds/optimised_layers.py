"""Intermediate-layer bounds with optimised lower slopes (alpha-CROWN for the hidden layers).

``optimised_bounds`` tightens, layer by layer from the input, the pre-activation bounds of every
still-unstable neuron of each activation layer: the lower and the upper bound of each neuron are
rows of one batch (``crown.bound`` over that layer's pre-activation), each row with its own lower
slopes for the unstable neurons of the layers below, improved by projected gradient ascent
(``crown.optimise``). Each layer uses the bounds just tightened below it, so the chords and the
slope ranges of later layers start narrower.

Soundness: ``crown.bound`` is a sound bound for every slope in range, rounding ``e_j`` and outward
padding included, and the rows bound the pre-activation as onnxruntime computes it, like the
bounds they start from. The rounding bounds ``e_j`` stay those of the starting bounds (valid over
any subset of their region). Every new bound is intersected with the old one: never looser.
"""

from __future__ import annotations

import numpy as np

from ..budget import Deadline
from ..layer_bounds import LayerBounds
from ..network import Network
from . import crown


def optimised_bounds(network: Network, bounds: LayerBounds, lower: np.ndarray, upper: np.ndarray,
                     iters: int = 20, lr: float = 0.25, deadline: Deadline | None = None) -> LayerBounds:
    """``bounds`` with the unstable neurons of every activation layer after the first re-bounded with
    optimised slopes (``iters`` Adam steps of rate ``lr`` per layer). Stops early, keeping what it
    has (sound), once ``deadline`` passes; needs a network ``crown`` supports."""
    deadline = deadline or Deadline.never()
    prob = crown.Problem(network, bounds, lower, upper)
    batch = prob.root()
    los, his = [np.asarray(v, float).copy() for v in bounds.lower], [np.asarray(v, float).copy() for v in bounds.upper]
    for k in prob.split_layers:
        if k == prob.act_layers[0] or deadline.expired():
            continue  # the first activation layer has no relaxation below it to optimise
        l, u = batch.lower[k][0], batch.upper[k][0]
        idx = np.flatnonzero((l < 0) & (u > 0))
        if idx.size:
            lo_new, hi_new = _layer_rows(prob, batch, k, idx, iters, lr)
            l[idx] = np.maximum(l[idx], lo_new)
            u[idx] = np.maximum(np.minimum(u[idx], hi_new), l[idx])  # rounding can cross them on a degenerate neuron
            los[k], his[k] = l.copy(), u.copy()
    return LayerBounds(tuple(los), tuple(his), f"{bounds.method}+alpha", bounds.influence, prob.errors)


def _layer_rows(prob: crown.Problem, batch: crown.Batch, k: int, idx: np.ndarray, iters: int, lr: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Optimised lower and upper bounds of the pre-activations ``idx`` of layer ``k``."""
    r = idx.size
    C = np.zeros((2 * r, batch.lower[k].shape[1]))
    C[np.arange(r), idx] = 1.0
    C[r + np.arange(r), idx] = -1.0
    alpha = prob.init_alpha(batch, 2 * r, below=k)
    opt = crown.optimise(prob, batch, C, np.zeros(2 * r), None, alpha, {}, iters=iters, lr=lr, use_beta=False, k=k)
    return opt.lower[0, :r], -opt.lower[0, r:]
