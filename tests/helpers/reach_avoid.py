"""Reach-avoid instances: a small 5-input, 3 x 64 ReLU network and unsafe regions that are a
conjunction of five rows, ``y0 >= t`` and ``|y1| <= r`` and ``|y2| <= r``, small but non-empty.

``r`` is a low quantile of ``max(|y1|, |y2|)`` over a dense sample of the box, and ``t`` lies just
below the largest ``y0`` that a local constrained optimiser finds with ``|y1|, |y2| <= r / 2``.
That point (the *witness*) lies inside the region by construction, so the region is non-empty;
a fresh uniform sample almost never lands inside (``inside_fraction``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from tests.helpers.networks import RELU, random_network
from verifier.network import Network
from verifier.spec import Constraints

N_INPUTS, WIDTH, DEPTH = 5, 64, 3


@dataclass(frozen=True)
class ReachAvoid:
    """One instance: the network, the box, the thresholds and a witness inside the region."""

    network: Network
    lower: np.ndarray
    upper: np.ndarray
    t: float
    r: float
    witness: np.ndarray

    @property
    def rows(self) -> list[str]:
        """The unsafe conjunction in the spec syntax (``make_spec``)."""
        t, r = self.t, self.r
        return [f"y0 >= {t!r}", f"y1 <= {r!r}", f"y1 >= {-r!r}", f"y2 <= {r!r}", f"y2 >= {-r!r}"]

    @property
    def constraints(self) -> Constraints:
        """The same conjunction as ``Constraints`` (``ay @ y <= rhs``)."""
        ay = np.array([[-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64)
        rhs = np.array([-self.t, self.r, self.r, self.r, self.r])
        return Constraints(np.zeros((5, N_INPUTS)), ay, rhs, np.zeros(5, dtype=bool))


def reach_avoid_network(seed: int) -> Network:
    """A random float32 5 -> 64 -> 64 -> 64 -> 3 ReLU network."""
    return random_network(seed, RELU, widths=(N_INPUTS,) + (WIDTH,) * DEPTH + (3,))


@functools.lru_cache(maxsize=32)
def reach_avoid(seed: int, n_dense: int = 100_000, r_quantile: float = 0.01, depth: float = 1e-3,
                n_starts: int = 32) -> ReachAvoid:
    """The instance of ``seed``: network, box ``[-1, 1]^5``, ``r`` the ``r_quantile`` of
    ``max(|y1|, |y2|)`` over ``n_dense`` samples, ``t`` ``depth`` (relative to the spread of
    ``y0``) below the best ``y0`` that a local constrained optimiser (SLSQP, from the best sampled
    points) reaches with ``|y1|, |y2| <= r / 2``: the region is a thin sliver around that point."""
    net = reach_avoid_network(seed)
    lower, upper = -np.ones(N_INPUTS), np.ones(N_INPUTS)
    X = np.random.default_rng(10_000 + seed).uniform(lower, upper, (n_dense, N_INPUTS))
    Y = net.forward(X)
    spread = np.maximum(np.abs(Y[:, 1]), np.abs(Y[:, 2]))
    r = float(np.quantile(spread, r_quantile))
    near = np.argsort(spread)[:max(n_starts, int(np.sum(spread <= r / 2)))]
    starts = X[near[np.argsort(-Y[near, 0])[:n_starts]]]
    witness = max((_climb(net, x0, r / 2, lower, upper) for x0 in starts), key=lambda x: _y(net, x)[0])
    y = _y(net, witness)
    assert max(abs(y[1]), abs(y[2])) <= r, "the optimiser left the region"
    t = float(y[0] - depth * np.std(Y[:, 0]))
    return ReachAvoid(net, lower, upper, t, r, witness)


def _y(net: Network, x: np.ndarray) -> np.ndarray:
    """The outputs at the single point ``x`` (the test's own chain of dense ReLU layers)."""
    z = np.asarray(x, dtype=np.float64)
    for layer in net.layers:
        z = layer.weight @ z + layer.bias
        z = z if layer.activation is None else np.maximum(z, 0.0)
    return z


def _jacobian(net: Network, x: np.ndarray) -> np.ndarray:
    """The outputs' Jacobian over the input at ``x`` (the test's own chain of dense ReLU layers)."""
    J, z = np.eye(net.n_inputs), np.asarray(x, dtype=np.float64)
    for layer in net.layers:
        z = layer.weight @ z + layer.bias
        J = layer.weight @ J
        if layer.activation is not None:
            J = J * (z > 0)[:, None]
            z = np.maximum(z, 0.0)
    return J


def _climb(net: Network, x0: np.ndarray, r: float, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """A local maximiser of ``y0`` with ``|y1|, |y2| <= r`` near ``x0`` (SLSQP; the start when it
    does better)."""
    from scipy.optimize import minimize

    sign = np.array([[1.0], [-1.0]])
    cons = {"type": "ineq", "fun": lambda x: r - np.concatenate([_y(net, x)[1:], -_y(net, x)[1:]]),
            "jac": lambda x: -np.vstack([sign[0] * _jacobian(net, x)[1:], sign[1] * _jacobian(net, x)[1:]])}
    res = minimize(lambda x: -_y(net, x)[0], x0, jac=lambda x: -_jacobian(net, x)[0], method="SLSQP",
                   bounds=list(zip(lower, upper)), constraints=[cons], options={"maxiter": 200, "ftol": 1e-10})
    x = np.clip(res.x, lower, upper)
    ok = np.max(np.abs(_y(net, x)[1:])) <= r
    return x if ok and _y(net, x)[0] > _y(net, x0)[0] else x0


def inside_fraction(inst: ReachAvoid, n: int = 200_000, seed: int = 1) -> float:
    """The fraction of fresh uniform samples of the box inside the unsafe region."""
    X = np.random.default_rng(seed).uniform(inst.lower, inst.upper, (n, N_INPUTS))
    m = inst.constraints.worst_margin(X, inst.network.forward(X))
    return float(np.mean(m <= 0))
