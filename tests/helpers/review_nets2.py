"""Networks of the second adversarial review of the DAG work (``tests/soundness/test_review_dag2.py``).

``mixed_dag_net``: a random DAG whose layers read random sets of earlier tensors (the input by
several paths, tensors read by several layers with different column supports), with ReLU,
LeakyReLU, Clip (one- and two-sided: lower lines with offsets) and max windows (overlapping,
duplicated, ``-1`` padded), weights with zero rows and zero source blocks (empty supports), and,
optionally, CSR weights (``sparse``). All numbers are float32, so ``NetworkOracle`` replays it.
"""

from __future__ import annotations

import numpy as np

from verifier.network import Activation, Layer, Network


def _f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def _activation(rng: np.random.Generator, kind: str, n_out: int) -> tuple[Activation, int]:
    """An activation of ``kind`` over ``n_out`` pre-activations and its number of outputs."""
    if kind == "max":
        n_win, k = int(rng.integers(1, 6)), int(rng.integers(1, 4))
        groups = rng.integers(0, n_out, size=(n_win, k))
        groups[:, 1:][rng.random((n_win, k - 1)) < 0.3] = -1
        if n_win > 1 and rng.random() < 0.5:
            groups[1] = groups[0]  # two windows with the same candidates (the same i*)
        return Activation("max", groups=groups), n_win
    if kind == "leaky":
        return Activation("leaky", alpha=float(rng.choice([0.01, 0.2, 0.5]))), n_out
    if kind == "clip":
        lo = rng.choice([-np.inf, -1.0, 0.0, 0.3], n_out)
        width = rng.choice([0.5, 1.0, np.inf], n_out)
        hi = np.where(np.isfinite(lo), lo + width, width)
        return Activation("clip", lo=_f32(lo), hi=_f32(hi)), n_out
    return Activation("relu"), n_out


def _weight(rng: np.random.Generator, n_out: int, sizes: list[int], srcs: list[int]) -> np.ndarray:
    W = rng.standard_normal((n_out, sum(sizes[t] for t in srcs))) * rng.choice([0.3, 1.0, 3.0])
    W[rng.random(W.shape) < rng.choice([0.0, 0.5, 0.85])] = 0.0
    W[rng.random(n_out) < 0.25] = 0.0  # neurons whose coefficient rows are all zero
    off = 0
    for t in srcs:
        if rng.random() < 0.15:
            W[:, off:off + sizes[t]] = 0.0  # a source tensor read with an empty support
        off += sizes[t]
    return _f32(W)


def mixed_dag_net(seed: int, sparse: bool = True) -> tuple[Network, np.ndarray, np.ndarray]:
    """A random DAG of 2..5 layers and an input box (about a fifth of its inputs fixed)."""
    from scipy import sparse as sp

    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(1, 6))
    sizes, layers = [n_in], []
    n_layers = int(rng.integers(1, 5)) + 1
    for k in range(n_layers):
        last = k == n_layers - 1
        nt = len(sizes)
        srcs = sorted({nt - 1, *(int(t) for t in rng.choice(nt, size=int(rng.integers(0, nt))))})
        if rng.random() < 0.5:
            srcs = srcs[::-1]
        n_out = int(rng.integers(1, 4)) if last else int(rng.integers(1, 9))
        act, n_post = (None, n_out) if last else _activation(rng, str(rng.choice(["relu", "leaky", "clip", "max"])),
                                                             n_out)
        W = _weight(rng, n_out, sizes, srcs)
        layers.append(Layer(sp.csr_array(W) if sparse and rng.random() < 0.5 else W,
                            _f32(0.5 * rng.standard_normal(n_out)), act, sources=tuple(srcs)))
        sizes.append(n_post)
    net = Network(tuple(layers), (1, n_in), (1, sizes[-1]), meta={"input_dtype": "float32"})
    lo = _f32(rng.uniform(-1, 0.5, n_in))
    hi = _f32(lo + rng.uniform(0, 1, n_in))
    fixed = rng.random(n_in) < 0.2
    hi[fixed] = lo[fixed]
    return net, lo, hi
