"""Cheap falsification: sampling and projected-gradient search for inputs that violate a property.

Everything here runs on the internal float64 network and only proposes candidates; the caller
replays every candidate in onnxruntime (``oracle.confirm``) before reporting it.

The search minimises the *violation margin* of one unsafe conjunction,
``g(x) = max_r (ax_r . x + ay_r . f(x) - rhs_r)``: ``g(x) <= 0`` means every row holds, i.e. the
output is unsafe (``-inf`` for a conjunction without rows: every input in the box is unsafe).
Gradients come from the network's own backward pass over its DAG (``input_gradient``: ReLU /
LeakyReLU / Clip derivatives at the current activation pattern, a max window's gradient to its
arg-max), with dense or sparse weights alike.
"""

from __future__ import annotations

import numpy as np

from .. import activations
from ..budget import Deadline
from ..network import Network
from ..spec import Constraints


def margins(network: Network, cons: Constraints, X: np.ndarray) -> np.ndarray:
    """``g`` for a batch of inputs ``X`` (b, n): the largest row violation per point."""
    return cons.worst_margin(X, network.forward(X))


def replay_order(network: Network, cons: Constraints, cands: np.ndarray, max_checks: int = 3) -> list[int]:
    """Which candidates to replay in onnxruntime, in order: first those where a float evaluation
    may reach the unsafe region (float margin ``<= 0``, most promising first), then the best real
    margins even if they miss (``cands`` come sorted by real margin, as ``search`` returns them)."""
    fm = float_margins(network, cons, cands)
    order = np.argsort(fm, kind="stable")
    picks = [int(i) for i in order if fm[i] <= 0][:max_checks] or [int(order[0])]
    return list(dict.fromkeys(picks + list(range(min(max_checks, len(cands))))))


def float_margins(network: Network, cons: Constraints, X: np.ndarray,
                  forward: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The most optimistic ``g`` that a float evaluation may reach at each point: each row's margin
    less how far float rounding may move it (``Network.float_deviation``). A point with a
    float margin ``<= 0`` may violate the property in onnxruntime: worth replaying.
    ``forward``: ``network.float_deviation(X)`` when the caller has it (several disjuncts, same points)."""
    X = np.atleast_2d(X)
    Y, dev = network.float_deviation(X) if forward is None else forward
    m = cons.margin(X, Y)
    if m.shape[-1] == 0:
        return np.full(m.shape[:-1], -np.inf)
    return (m - dev @ np.abs(cons.ay).T).max(axis=-1)


def _forward_all(network: Network, X: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every tensor (0 = input, ``k + 1`` = output of layer ``k``) and every pre-activation for a
    batch ``X``, walking the DAG (each layer reads its sources, ``network.gather``)."""
    tensors, pres = [X], []
    for k, layer in enumerate(network.layers):
        p = network.gather(k, tensors) @ layer.weight.T + layer.bias
        pres.append(p)
        tensors.append(p if layer.activation is None else layer.activation.apply(p))
    return tensors, pres


def input_gradient(network: Network, pres: list[np.ndarray], grad_out: np.ndarray) -> np.ndarray:
    """Vector-Jacobian product of the network at the pre-activations ``pres``: the gradient over the
    input of ``grad_out . f(x)`` (rows: one per point). Layers are visited in reverse order; each
    layer's gradient over its input is split among its source tensors (``network.split``) and
    summed per tensor, so a tensor read by several layers gets all their contributions before its
    own layer is reached. Activations use ``activations.backprop`` (a max sends its gradient to the
    arg-max candidate: a subgradient)."""
    n = len(network.layers)
    grads: dict[int, np.ndarray] = {n: np.asarray(grad_out, dtype=np.float64)}
    for k in range(n - 1, -1, -1):
        delta = grads.pop(k + 1, None)
        if delta is None:
            continue  # layer k does not reach the output
        layer = network.layers[k]
        if layer.activation is not None:
            delta = activations.backprop(layer.activation, pres[k], delta)
        for t, block in network.split(k, np.asarray(delta @ layer.weight)):
            grads[t] = block if t not in grads else grads[t] + block
    return grads.get(0, np.zeros((np.shape(grad_out)[0], network.n_inputs)))


def _margin_and_grad(network: Network, cons: Constraints, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``g`` at each point of the batch ``X`` and its (sub)gradient over the input."""
    tensors, pres = _forward_all(network, X)
    y = tensors[-1]
    if cons.n_rows == 0:  # no rows: every input satisfies the conjunction, nothing to descend
        return cons.worst_margin(X, y), np.zeros_like(X)
    rows = cons.margin(X, y)
    r = rows.argmax(axis=1)
    g = rows[np.arange(X.shape[0]), r]
    return g, input_gradient(network, pres, cons.ay[r]) + cons.ax[r]


def pgd(network: Network, cons: Constraints, lower: np.ndarray, upper: np.ndarray, starts: np.ndarray,
        steps: int = 40, step_frac: float = 0.1, deadline: Deadline | float | None = None
        ) -> tuple[np.ndarray, np.ndarray]:
    """Projected signed-gradient descent on ``g`` from each row of ``starts``.

    Returns the best point seen for every start and its margin. The step shrinks geometrically
    from ``step_frac`` of the box width, so the search ends with fine moves near its best point.
    """
    deadline = Deadline.coerce(deadline)
    X = np.clip(np.array(starts, dtype=np.float64), lower, upper)
    width = upper - lower
    best_x = X.copy()
    best_g = np.full(X.shape[0], np.inf)
    decay = (0.01) ** (1.0 / max(1, steps))
    eta = step_frac
    for _ in range(steps):
        if deadline.expired():
            break
        g, grad = _margin_and_grad(network, cons, X)
        better = g < best_g
        best_g[better] = g[better]
        best_x[better] = X[better]
        X = np.clip(X - eta * width * np.sign(grad), lower, upper)
        eta *= decay
    g = margins(network, cons, X)
    better = g < best_g
    best_g[better] = g[better]
    best_x[better] = X[better]
    return best_x, best_g


def sample_points(lower: np.ndarray, upper: np.ndarray, n_random: int, rng: np.random.Generator,
                  max_corners: int = 256) -> np.ndarray:
    """The box centre, corners (all of them for few inputs, random ones otherwise) and uniform samples."""
    n = lower.size
    pts = [(lower + upper) / 2.0]
    if 2 ** n <= max_corners:
        bits = (np.arange(2 ** n)[:, None] >> np.arange(n)) & 1
    else:
        bits = rng.integers(0, 2, size=(max_corners, n))
    pts.append(np.where(bits == 1, upper, lower))
    pts.append(lower + (upper - lower) * rng.random((n_random, n)))
    return np.vstack([np.atleast_2d(p) for p in pts])


def search(network: Network, cons: Constraints, lower: np.ndarray, upper: np.ndarray,
           rng: np.random.Generator, n_random: int = 512, restarts: int = 8, steps: int = 100,
           extra_starts: np.ndarray | None = None, step_frac: float = 0.2,
           deadline: Deadline | float | None = None) -> np.ndarray:
    """Candidate inputs ordered from most to least violating (those with ``g <= 0`` first).

    Sampling covers the centre, corners and random points; PGD then starts from the best samples,
    from random points, and from ``extra_starts`` (e.g. a solver's near-counterexample).
    """
    deadline = Deadline.coerce(deadline)
    pts = sample_points(lower, upper, n_random, rng)
    pts, g = sampled_margins(network, cons, pts, deadline)
    order = np.argsort(g)
    starts = [pts[order[:restarts]], lower + (upper - lower) * rng.random((restarts, lower.size))]
    if extra_starts is not None:
        starts.append(np.atleast_2d(extra_starts))
    best_x, best_g = pgd(network, cons, lower, upper, np.vstack(starts), steps=steps, step_frac=step_frac,
                         deadline=deadline)
    allx = np.vstack([pts[order[:restarts]], best_x])
    allg = np.concatenate([g[order[:restarts]], best_g])
    return allx[np.argsort(allg)]


#: points evaluated per forward pass while sampling (the deadline is checked between batches)
SAMPLE_BATCH = 64


def sampled_margins(network: Network, cons: Constraints, pts: np.ndarray, deadline: Deadline
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``(points, g)`` for the points evaluated before ``deadline``, in batches of ``SAMPLE_BATCH``
    (the first batch always: it holds the box centre). On a large network one forward pass of
    hundreds of points takes seconds: the sampling must stop when the time is up."""
    out = []
    for start in range(0, len(pts), SAMPLE_BATCH):
        if start and deadline.expired():
            break
        out.append(margins(network, cons, pts[start:start + SAMPLE_BATCH]))
    g = np.concatenate(out)
    return pts[:g.size], g
