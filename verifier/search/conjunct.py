"""Falsification of a conjunction of several rows: penalty descent with Adam steps.

Minimising the worst row margin ``g(x) = max_r m_r(x)`` with signed-gradient steps follows one
row at a time: on a conjunction whose rows pull apart (``y0 >= t`` and ``|y1| <= r`` and
``|y2| <= r``) it zig-zags between them and stalls outside a small unsafe region. Here every
start descends on the *summed* violation

    ``h(x) = sum_r max(0, m_r(x) / s_r + tol_r)^2``

(``s_r``: the spread of row ``r`` over the samples, so that rows of different scales weigh alike;
``tol_r``: a target depth inside the row, which covers the float rounding of the row at the start
points, so that strict rows and onnxruntime's evaluation are satisfied too). The gradient of
``h`` pulls on every violated row at once, in proportion to its violation; Adam's per-coordinate
step (in box-normalised coordinates, with a decaying rate) replaces the sign step. ``h = 0``
exactly when every row holds with its depth: the descent of that start is done.

Starts: the samples with the smallest ``h``, random points, the caller's points, and the box
vertices that the symbolic bounds point at (``bound_vertices``). The best point of every start
is kept by the worst margin ``g`` (what the replay judges); the caller replays the candidates in
onnxruntime. While no start reaches the region, one more round (``ROUNDS``) warm-restarts the
best points and fresh random ones with a schedule twice as long. Every loop checks the
``Deadline``.

Single-row disjuncts keep ``falsify.search`` (for one row the sum is the max: nothing to gain).
"""

from __future__ import annotations

import numpy as np

from ..bounds import LayerBounds, linear_bounds
from ..budget import Deadline
from ..network import Network
from ..spec import Constraints
from . import falsify

#: Adam's moment decay rates and the learning rate's range (fractions of the box width)
BETA1, BETA2 = 0.9, 0.999
LR_START, LR_END = 0.1, 1e-3
#: descents while none reaches the region (``search``): each twice as long as the one before
ROUNDS = 2
#: the largest network (neurons) on which the starts include the bounds' vertices
VERTEX_NEURONS = 5000
#: the target depth inside each row, relative to the row's scale, on top of its float rounding
DEPTH_REL = 1e-6


def row_scales(cons: Constraints, rows: np.ndarray) -> np.ndarray:
    """A scale per row: the spread of its margins ``rows`` (b, k) over the samples (never 0)."""
    spread = rows.std(axis=0) if rows.shape[0] > 1 else np.abs(rows).max(axis=0)
    floor = 1e-9 * (1.0 + np.abs(cons.rhs))
    return np.maximum(spread, floor)


def row_tolerances(network: Network, cons: Constraints, X: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The target depth of each row in scaled units: its largest float rounding over the points
    ``X`` (``Network.float_deviation``), doubled, plus ``DEPTH_REL``."""
    _, dev = network.float_deviation(np.atleast_2d(X))
    rounding = (dev @ np.abs(cons.ay).T).max(axis=0)
    return 2.0 * rounding / scale + DEPTH_REL


def penalty_and_grad(network: Network, cons: Constraints, X: np.ndarray, scale: np.ndarray, tol: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(h, grad h, g)`` at each point of the batch ``X``."""
    tensors, pres = falsify._forward_all(network, X)
    rows = cons.margin(X, tensors[-1])
    viol = np.maximum(rows / scale + tol, 0.0)
    weights = 2.0 * viol / scale  # d h / d m_r
    grad = falsify.input_gradient(network, pres, weights @ cons.ay) + weights @ cons.ax
    return (viol ** 2).sum(axis=1), grad, rows.max(axis=1)


def penalties(cons: Constraints, X: np.ndarray, Y: np.ndarray, scale: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """``h`` for points ``X`` with outputs ``Y``."""
    return (np.maximum(cons.margin(X, Y) / scale + tol, 0.0) ** 2).sum(axis=1)


def adam_descent(network: Network, cons: Constraints, lower: np.ndarray, upper: np.ndarray, starts: np.ndarray,
                 scale: np.ndarray, tol: np.ndarray, steps: int = 100, deadline: Deadline | float | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Projected Adam on ``h`` from each row of ``starts``: the best point of each start by ``g``
    and its ``g``. The loop ends as soon as some start reaches ``h = 0`` (all its rows hold with
    their depth), after ``steps``, or at ``deadline``."""
    deadline = Deadline.coerce(deadline)
    width = np.where(upper > lower, upper - lower, 0.0)
    X = np.clip(np.array(starts, dtype=np.float64), lower, upper)
    best_x, best_g = X.copy(), np.full(X.shape[0], np.inf)
    m1, m2 = np.zeros_like(X), np.zeros_like(X)
    decay = (LR_END / LR_START) ** (1.0 / max(1, steps - 1))
    lr = LR_START
    for it in range(1, steps + 1):
        if deadline.expired():
            break
        h, grad, g = penalty_and_grad(network, cons, X, scale, tol)
        better = g < best_g
        best_g[better], best_x[better] = g[better], X[better]
        if np.any(h == 0):
            break  # a start holds every row with its depth: a candidate for the replay
        grad = grad * width  # in box-normalised coordinates
        m1 = BETA1 * m1 + (1 - BETA1) * grad
        m2 = BETA2 * m2 + (1 - BETA2) * grad ** 2
        step = (m1 / (1 - BETA1 ** it)) / (np.sqrt(m2 / (1 - BETA2 ** it)) + 1e-12)
        X = np.clip(X - lr * width * step, lower, upper)
        lr *= decay
    g = falsify.margins(network, cons, X)
    better = g < best_g
    best_g[better], best_x[better] = g[better], X[better]
    return best_x, best_g


def bound_vertices(network: Network, bounds: LayerBounds | None, lower: np.ndarray, upper: np.ndarray,
                   cons: Constraints) -> np.ndarray:
    """The box vertices minimising the symbolic lower bound of each row and of their sum (the
    bounds' guess at where each row, and all of them together, can hold); none without bounds or
    on a network of more than ``VERTEX_NEURONS`` neurons (one back-substitution of the rows: as
    much as the screening's ``refuted_by_bounds``, not worth it there)."""
    if bounds is None or cons.n_rows == 0 or sum(layer.n_out for layer in network.layers) > VERTEX_NEURONS:
        return np.zeros((0, lower.size))
    _, _, coef = linear_bounds(network, bounds, lower, upper, cons.ay, None, cons.ax, return_coef=True)
    coef = np.vstack([coef, coef.sum(axis=0, keepdims=True)])
    return np.where(coef >= 0, lower, upper)


def search(network: Network, cons: Constraints, lower: np.ndarray, upper: np.ndarray, rng: np.random.Generator,
           n_random: int = 512, restarts: int = 8, steps: int = 100, extra_starts: np.ndarray | None = None,
           bounds: LayerBounds | None = None, rounds: int = ROUNDS, deadline: Deadline | float | None = None
           ) -> np.ndarray:
    """Candidate inputs for a conjunction of several rows, ordered by ``g`` (those with ``g <= 0``
    first): sampling, then ``adam_descent`` from ``2 * restarts`` samples (the best by ``h``),
    ``restarts`` random points, ``extra_starts`` and ``bound_vertices``; while no start reaches
    ``g < 0``, up to ``rounds - 1`` more descents, each twice as long as the one before, from
    the best points so far and fresh random ones (``_next_batch``)."""
    deadline = Deadline.coerce(deadline)
    pts = falsify.sample_points(lower, upper, n_random, rng)
    pts, Y = _sampled_outputs(network, pts, deadline)
    rows = cons.margin(pts, Y)
    scale = row_scales(cons, rows)
    starts = [_random(lower, upper, restarts, rng), bound_vertices(network, bounds, lower, upper, cons)]
    if extra_starts is not None:
        starts.append(np.atleast_2d(extra_starts))
    tol = row_tolerances(network, cons, np.vstack([pts[:1]] + starts), scale)
    top = np.argsort(penalties(cons, pts, Y, scale, tol))[:2 * restarts]
    xs, gs = [pts[top]], [rows.max(axis=1)[top]]
    batch = np.vstack([pts[top]] + starts)
    for i in range(max(1, rounds)):
        best_x, best_g = adam_descent(network, cons, lower, upper, batch, scale, tol, steps=steps * 2 ** i,
                                      deadline=deadline)
        xs.append(best_x)
        gs.append(best_g)
        if best_g.min() < 0 or deadline.expired():
            break
        batch = _next_batch(best_x, best_g, restarts, rng, lower, upper)
    allx, allg = np.vstack(xs), np.concatenate(gs)
    return allx[np.argsort(allg, kind="stable")]


def _next_batch(best_x: np.ndarray, best_g: np.ndarray, restarts: int, rng: np.random.Generator,
                lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The starts of the next round: the ``restarts`` best points so far (a warm restart with a
    fresh, slower-decaying rate) and ``2 * restarts`` fresh random points."""
    return np.vstack([best_x[np.argsort(best_g)[:restarts]], _random(lower, upper, 2 * restarts, rng)])


def _random(lower: np.ndarray, upper: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return lower + (upper - lower) * rng.random((n, lower.size))


def _sampled_outputs(network: Network, pts: np.ndarray, deadline: Deadline) -> tuple[np.ndarray, np.ndarray]:
    """The outputs of the points evaluated before ``deadline``, in batches (the first always)."""
    out = []
    for start in range(0, len(pts), falsify.SAMPLE_BATCH):
        if start and deadline.expired():
            break
        out.append(network.forward(pts[start:start + falsify.SAMPLE_BATCH]))
    Y = np.vstack(out)
    return pts[:Y.shape[0]], Y
