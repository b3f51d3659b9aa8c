"""The internal network representation: a chain of affine layers and piecewise-linear activations.

A ``Network`` is immutable. Layer ``k`` maps its input vector ``z`` to the pre-activation
``x = W z + b`` and then applies its activation elementwise (or nothing, for the output layer).
All numbers are float64 copies of the stored weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ACTIVATION_KINDS = ("relu", "leaky", "clip")


@dataclass(frozen=True)
class Activation:
    """An elementwise piecewise-linear activation.

    - ``relu``:  y = max(x, 0)
    - ``leaky``: y = x if x >= 0 else alpha * x, with 0 < alpha < 1 (the loader rejects other
      values: the relaxations and interval bounds assume a monotone, convex activation)
    - ``clip``:  y = min(max(x, lo), hi) with per-neuron ``lo`` / ``hi`` (may be -inf / +inf).
      ``Max(x, c)`` and ``Min(x, c)`` load as one-sided clips.
    """

    kind: str
    alpha: float = 0.0
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.kind not in ACTIVATION_KINDS:
            raise ValueError(f"unknown activation kind {self.kind!r}")

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Apply the activation to pre-activations ``x`` (last axis = neurons)."""
        if self.kind == "relu":
            return np.maximum(x, 0.0)
        if self.kind == "leaky":
            return np.where(x >= 0.0, x, self.alpha * x)
        return np.minimum(np.maximum(x, self.lo), self.hi)

    def describe(self) -> str:
        if self.kind == "relu":
            return "ReLU"
        if self.kind == "leaky":
            return f"LeakyReLU(alpha={self.alpha:g})"
        lo = np.unique(self.lo)
        hi = np.unique(self.hi)
        lo_s = f"{lo[0]:g}" if lo.size == 1 else "per-neuron"
        hi_s = f"{hi[0]:g}" if hi.size == 1 else "per-neuron"
        return f"Clip({lo_s}, {hi_s})"


@dataclass(frozen=True)
class Layer:
    """``x = weight @ z + bias`` followed by ``activation`` (None for a purely affine layer)."""

    weight: np.ndarray  # shape (n_out, n_in)
    bias: np.ndarray  # shape (n_out,)
    activation: Activation | None = None

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[0])


@dataclass(frozen=True)
class Network:
    """A feed-forward piecewise-linear network; the last layer has no activation."""

    layers: tuple[Layer, ...]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    source: str | None = None
    input_name: str = "input"
    output_name: str = "output"
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def n_inputs(self) -> int:
        return self.layers[0].n_in

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].n_out

    @property
    def hidden_layers(self) -> tuple[Layer, ...]:
        """The layers that carry an activation (their outputs are the network's neurons)."""
        return tuple(layer for layer in self.layers if layer.activation is not None)

    @property
    def n_neurons(self) -> int:
        return sum(layer.n_out for layer in self.hidden_layers)

    @property
    def n_parameters(self) -> int:
        return sum(layer.weight.size + layer.bias.size for layer in self.layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Outputs for input vector(s) ``x`` of shape (n_inputs,) or (batch, n_inputs), in float64."""
        z = np.asarray(x, dtype=np.float64)
        for layer in self.layers:
            z = z @ layer.weight.T + layer.bias
            if layer.activation is not None:
                z = layer.activation.apply(z)
        return z

    def pre_activations(self, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's pre-activation for input(s) ``x`` (the last entry is the output)."""
        z = np.asarray(x, dtype=np.float64)
        out = []
        for layer in self.layers:
            z = z @ layer.weight.T + layer.bias
            out.append(z)
            if layer.activation is not None:
                z = layer.activation.apply(z)
        return out
