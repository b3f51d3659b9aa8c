"""Inputs fixed by the box (lower == upper) are constants, not variables: a robustness property
that perturbs 2 of 400 inputs is a 2-input problem.

``FixedInputs.of_box`` finds them; ``network`` folds them into the biases of every layer that reads
the network input (tensor 0), giving a ``Network`` over the free inputs only; ``case`` gives the
box and constraint rows over the free inputs; ``oracle`` wraps the replay oracle so that it is fed
the full input, and ``expand`` gives the full input of a counterexample back.

Float rounding stays counted. onnxruntime does not know that an input is fixed: it still
multiplies the float value ``c_i`` by the float weight ``w_i`` and sums that product with the
others, so the rounding of a row of ``k`` terms is that of ``k`` terms, fixed ones included. A
layer's error model is linear in the input magnitudes (``|x_hat - x| <= E m + e``), so the
reduced layer keeps the columns of ``E`` of the free inputs and moves the fixed ones, at their
exact magnitudes ``|c|``, into the constant: ``e' = e + E_C |c|``, with the same number of terms
per row (the reduced layer is *not* re-modelled as a shorter ``Gemm``). The float16 guards and the
overflow guard are reduced the same way. The folded bias ``b + W_C c`` is computed in float64;
its rounding (``gamma_{n+1}`` of float64 on ``|b| + |W_C| |c|``) is added to ``e'`` too, so the
reduced layer's real arithmetic contains the original's exactly.

Only values exactly representable in the replay oracle's input type are folded: a fixed input at
a value that type cannot hold is left free (as before: no counterexample can be fed there).
Constraint rows with input terms move the fixed inputs' part into the right-hand side, rounded
upward (``rhs' >= rhs - a_C c`` exactly): the reduced unsafe region contains the original one, so
a proof over it is a proof of the original. Counterexamples are never judged on the reduced rows:
a ``ReducedCase`` checks a replayed point on the full input against the full case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..floatmodel import gamma
from ..linalg import absolute, columns
from ..network import Layer, Network
from ..spec import Case, Constraints


@dataclass(frozen=True, eq=False)
class FixedInputs:
    """Which of the ``n_inputs`` are fixed, and at which values (``free`` / ``fixed``: sorted indices)."""

    n_inputs: int
    free: np.ndarray
    fixed: np.ndarray
    values: np.ndarray

    @classmethod
    def of_box(cls, lower: np.ndarray, upper: np.ndarray, dtype=np.float32) -> FixedInputs | None:
        """The inputs with ``lower == upper`` at a ``dtype`` value, or None if there are none. At
        least one input stays free (a network needs an input)."""
        lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
        with np.errstate(over="ignore"):
            representable = lower.astype(dtype).astype(np.float64) == lower
        mask = (lower == upper) & representable
        if mask.all():
            mask[0] = False
        if not mask.any():
            return None
        return cls(lower.size, np.flatnonzero(~mask), np.flatnonzero(mask), lower[mask].copy())

    @property
    def n_free(self) -> int:
        return int(self.free.size)

    def expand(self, x: np.ndarray) -> np.ndarray:
        """The full input(s) for free input(s) ``x`` ((n_free,) or (b, n_free))."""
        x = np.asarray(x, dtype=np.float64)
        out = np.empty(x.shape[:-1] + (self.n_inputs,))
        out[..., self.free] = x
        out[..., self.fixed] = self.values
        return out

    # ---------------------------------------------------------------------------- the network
    def network(self, network: Network) -> Network:
        """``network`` over the free inputs: every layer reading tensor 0 gets the fixed inputs'
        terms in its bias (and their rounding in its error constant). No model source or bytes:
        the reduced network is never replayed itself (``oracle`` replays the full one)."""
        if network.n_inputs != self.n_inputs:
            raise ValueError(f"the network has {network.n_inputs} inputs, the box {self.n_inputs}")
        layers = tuple(self._layer(network, k) if 0 in network.sources(k) else layer
                       for k, layer in enumerate(network.layers))
        meta = {k: v for k, v in network.meta.items() if k != "onnx_bytes"}
        meta["fixed_inputs"] = int(self.fixed.size)
        return Network(layers, (self.n_free,), network.output_shape, None, network.input_name,
                       network.output_name, meta)

    def _column_masks(self, network: Network, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Over layer ``k``'s input columns: (kept, fixed) masks and the fixed columns' values."""
        keep, fixed, vals = [], [], []
        for t in network.sources(k):
            n = network.tensor_size(t)
            is_fixed = np.zeros(n, dtype=bool)
            if t == 0:
                is_fixed[self.fixed] = True
                vals.append(self.values)
            keep.append(~is_fixed)
            fixed.append(is_fixed)
        return np.concatenate(keep), np.concatenate(fixed), np.concatenate(vals)

    def _layer(self, network: Network, k: int) -> Layer:
        layer = network.layers[k]
        keep, fixed, c = self._column_masks(network, k)
        W_C = columns(layer.weight, fixed)
        bias = layer.bias + np.asarray(W_C @ c)
        # float64 rounding of that sum (n_C + 1 terms), so the reduced real arithmetic is exact
        terms = np.abs(layer.bias) + np.asarray(absolute(W_C) @ np.abs(c))
        fold = gamma(int(c.size) + 1, "float64") * terms
        err_bias = layer.err_bias + np.asarray(columns(layer.err_weight, fixed) @ np.abs(c)) + fold
        guards = tuple((columns(G, keep), g + np.asarray(columns(G, fixed) @ np.abs(c)), limit)
                       for G, g, limit in layer.guards)
        vec, const = layer.overflow
        vec = np.asarray(vec, dtype=np.float64)
        overflow = (vec[keep], float(const) + float(vec[fixed] @ np.abs(c)))
        return Layer(columns(layer.weight, keep), bias, layer.activation, columns(layer.err_weight, keep), err_bias,
                     guards, overflow, layer.sources)

    # ------------------------------------------------------------------------ spec and replay
    def constraints(self, cons: Constraints) -> Constraints:
        """The rows over the free inputs: ``a_F x_F + ay y <= rhs'`` with ``rhs' >= rhs - a_C c``."""
        a_C = cons.ax[:, self.fixed]
        shift = a_C @ self.values
        used = np.count_nonzero(a_C, axis=1)
        err = np.where(used > 0, gamma(used + 1, "float64") * (np.abs(cons.rhs) + np.abs(a_C) @ np.abs(self.values)),
                       0.0)
        rhs = np.where(used > 0, np.nextafter(cons.rhs - shift + 2.0 * err, np.inf), cons.rhs)
        return Constraints(cons.ax[:, self.free], cons.ay, rhs, cons.strict)

    def case(self, case: Case) -> ReducedCase:
        return ReducedCase(case.lower[self.free], case.upper[self.free],
                           tuple(self.constraints(c) for c in case.unsafe), case, self)

    def oracle(self, oracle) -> ExpandingOracle:
        return ExpandingOracle(oracle, self)


@dataclass(frozen=True, eq=False)
class ReducedCase(Case):
    """A case over the free inputs (bounds, relaxations, search) whose replayed points are judged
    on the full input against the ``full`` case, with no tolerance (``Case.violated_at``)."""

    full: Case | None = None
    inputs: FixedInputs | None = None

    def violated_at(self, x, y) -> bool:
        return self.contains(x) and self.full.violated_at(self.inputs.expand(x), y)


class ExpandingOracle:
    """A replay oracle fed free inputs: it runs ``inner`` (onnxruntime or the float32 forward
    pass of the full network) on the full input."""

    def __init__(self, inner, inputs: FixedInputs) -> None:
        self.inner = inner
        self.inputs = inputs
        self.name = inner.name
        self.dtype = inner.dtype

    @property
    def calls(self) -> int:
        return self.inner.calls

    @property
    def model_bytes(self) -> bytes | None:
        return getattr(self.inner, "model_bytes", None)

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.inner.run(self.inputs.expand(np.asarray(x, dtype=np.float64).ravel()))
