"""Optimised lower slopes on the open boxes of input splitting (``search.input_split``).

A box that its symbolic bounds leave open, for a disjunct whose best row misses by little, tries a
few steps of alpha-CROWN (``bounds.crown``); the boxes of a batch that want it are optimised
together (``crown.boxes``: each with its own bounds and float32 rounding bounds; the steps are
elementwise, so each box gets what it would alone). The slopes that prove a row are kept: a proof
certificate records them (``search.box_tree``).
"""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np

from ..bounds import LayerBounds, crown
from ..network import Network
from ..spec import Constraints


class SlopeSettings(Protocol):
    """What is read of ``input_split.BabSettings``."""

    alpha_iters: int
    alpha_gap: float
    alpha_lr: float


class OpenBox(Protocol):
    """What is read of a box's triage (``input_split._Triage``): the open disjuncts, how far each misses."""

    alive: list[int]
    near: dict[int, float]


class SlopeStats(Protocol):
    alpha_s: float


def alpha_on(network: Network, settings: SlopeSettings) -> bool:
    """Boxes try optimised slopes: asked for, and every activation ReLU / LeakyReLU (Clip layers'
    fixed lines gain less from them; such networks keep the LP; ``crown.boxes`` batches only these)."""
    return settings.alpha_iters > 0 and crown.splits_every_layer(network)


def wants_alpha(network: Network, tri: OpenBox, n_unstable: int, settings: SlopeSettings) -> list[int]:
    """The open disjuncts of a box that try optimised slopes: those whose best row misses by at
    most ``alpha_gap`` of its range (the others rarely close), on a box with unstable neurons."""
    if n_unstable <= 0 or not alpha_on(network, settings):
        return []
    return [i for i in tri.alive if tri.near.get(i, np.inf) <= settings.alpha_gap]


def alpha_proofs(network: Network, disjuncts: list[Constraints], bs: list[LayerBounds], LO: np.ndarray,
                  HI: np.ndarray, tris: list[OpenBox], n_unstable: np.ndarray, settings: SlopeSettings,
                  stats: SlopeStats) -> dict[int, dict[int, tuple[int, dict[int, np.ndarray]] | None]]:
    """Some row of a disjunct proved positive on a box by back-substitution with optimised lower
    slopes, for every (box, disjunct) that wants it (``wants_alpha``), the boxes of one disjunct
    optimised together (``crown.boxes``: each with its own bounds and rounding bounds;
    the steps are elementwise, so each box gets what it would alone, or more steps). Box -> disjunct
    -> (row, slopes) or None."""
    want = {j: wants_alpha(network, tri, int(n_unstable[j]), settings) for j, tri in enumerate(tris)}
    out: dict[int, dict] = {j: {} for j, w in want.items() if w}
    if not out:
        return out
    t = time.perf_counter()
    for i, cons in enumerate(disjuncts):
        idx = [j for j, w in want.items() if i in w]
        if not idx:
            continue
        prob, batch = crown.boxes(network, [bs[j] for j in idx], LO[idx], HI[idx])
        opt = crown.optimise(prob, batch, cons.ay, -cons.rhs, cons.ax, prob.init_alpha(batch, cons.n_rows), None,
                             iters=settings.alpha_iters, lr=settings.alpha_lr, target=0.0, use_beta=False)
        for b, j in enumerate(idx):
            low = opt.lower[b]
            r = int(np.argmax(low))
            out[j][i] = (r, {k: a[b, r].copy() for k, a in opt.alpha.items()}) if low[r] > 0 else None
    stats.alpha_s += time.perf_counter() - t
    return out
