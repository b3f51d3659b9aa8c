"""The internal network representation: a chain of affine layers and piecewise-linear activations.

A ``Network`` is immutable. Layer ``k`` maps its input vector ``z`` to the pre-activation
``x = W z + b`` and then applies its activation elementwise (or nothing, for the output layer).
All numbers are float64 copies of the stored weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from . import activations as _acts
from .floatmodel import LARGEST, dot_error

ACTIVATION_KINDS = _acts.KINDS


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
    #: relative rounding error of the activation's output where it is not exact: LeakyReLU's
    #: ``alpha * x`` rounds once (the unit roundoff of the type it is computed in; float32 unless
    #: the loader says otherwise). ReLU and Clip are exact in floating point.
    rel_error: float | None = None
    #: absolute rounding error of that product (underflow: half the smallest subnormal, counted whole)
    abs_error: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ACTIVATION_KINDS:
            raise ValueError(f"unknown activation kind {self.kind!r}")
        if self.kind == "leaky" and not 0.0 <= self.alpha < 1.0:
            raise ValueError(f"LeakyReLU alpha={self.alpha!r}: 0 <= alpha < 1 is supported (the relaxations assume "
                             "a convex activation)")
        if self.kind == "clip":
            lo, hi = np.asarray(self.lo, dtype=np.float64), np.asarray(self.hi, dtype=np.float64)
            if self.lo is None or self.hi is None or np.any(np.isnan(lo)) or np.any(np.isnan(hi)) or np.any(lo > hi):
                raise ValueError("Clip needs lo <= hi per neuron (no NaN); got lo > hi or a missing bound")
        if self.rel_error is None:
            object.__setattr__(self, "rel_error", _acts.default_rel_error(self.kind))
        if self.abs_error is None:
            object.__setattr__(self, "abs_error", _acts.default_abs_error(self.kind))

    def output_error(self, l: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Bound on ``|fl(f(x)) - f(x)|`` for ``x`` in ``[l, u]`` (zero for exact activations)."""
        return _acts.output_error(self, l, u)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Apply the activation to pre-activations ``x`` (last axis = neurons)."""
        return _acts.forward(self, x)

    def describe(self) -> str:
        return _acts.kind(self).describe(self)


@dataclass(frozen=True)
class Layer:
    """``x = weight @ z + bias`` followed by ``activation`` (None for a purely affine layer).

    ``weight`` and ``bias`` are the real-arithmetic composition of the ONNX operators between two
    activations. ``err_weight`` / ``err_bias`` bound the floating-point error of evaluating those
    operators as onnxruntime does: for a layer input ``z`` given exactly (as floats) with
    ``|z| <= m`` elementwise, every float evaluation ``x_hat`` satisfies
    ``|x_hat - (weight @ z + bias)| <= err_weight @ m + err_bias`` (see ``floatmodel``). A layer
    built in memory without them is taken to be one float32 ``Gemm`` (dot products over its row's
    non-zero weights plus the bias). ``guards``: ``(G, g, limit)`` triples, ``G @ m + g <= limit``
    must hold on the box (float16 intermediates that must not overflow).
    """

    weight: np.ndarray  # shape (n_out, n_in)
    bias: np.ndarray  # shape (n_out,)
    activation: Activation | None = None
    err_weight: np.ndarray | None = field(default=None, repr=False, compare=False)
    err_bias: np.ndarray | None = field(default=None, repr=False, compare=False)
    guards: tuple = field(default=(), repr=False, compare=False)
    #: ``(v, c)``: every intermediate value of the layer, in units of the largest finite value of its
    #: float type, is at most ``v @ m + c`` (overflow to infinity is not modelled: refused above 1)
    overflow: tuple | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.err_weight is None or self.err_bias is None:
            ew, eb = dot_error(np.asarray(self.weight, dtype=np.float64), np.asarray(self.bias, dtype=np.float64))
            object.__setattr__(self, "err_weight", ew)
            object.__setattr__(self, "err_bias", eb)
        if self.overflow is None:  # one float32 Gemm: every partial sum is within sum |w||z| + |b| (and rounding)
            w, b = np.abs(np.asarray(self.weight, dtype=np.float64)), np.abs(np.asarray(self.bias, dtype=np.float64))
            limit = LARGEST["float32"] / 1.001
            object.__setattr__(self, "overflow", (w.max(axis=0, initial=0.0) / limit, float(b.max(initial=0.0)) / limit))

    @cached_property
    def abs_weight(self) -> np.ndarray:
        return np.abs(self.weight)

    def rounding_error(self, magnitude: np.ndarray, input_error: np.ndarray | None = None) -> np.ndarray:
        """Per output, the bound on the float evaluation error for float inputs ``|z_hat| <= magnitude``.

        ``input_error`` bounds how far the float input ``z_hat`` is from the value ``z`` the bounds
        and relaxations describe (the previous activation's own rounding, ``|z_hat - z| <= input_error``;
        ``magnitude`` must already include it); its effect through the layer, ``|W| @ input_error``, is added.
        """
        e = magnitude @ self.err_weight.T + self.err_bias  # magnitude: (n_in,) or a batch (b, n_in)
        if input_error is not None and np.any(input_error > 0):
            e = e + input_error @ self.abs_weight.T
        for G, g, limit in self.guards:
            worst = magnitude @ G.T + g
            if np.any(worst > limit):
                from .errors import EncodingError

                raise EncodingError(f"a float16 intermediate of this layer may reach {float(worst.max()):.6g}, "
                                    f"beyond the largest finite float16 value {limit:g}: onnxruntime could "
                                    "compute inf here, which the verifier does not model")
        v, c = self.overflow
        worst = magnitude @ v + c
        if np.any(worst > 1.0):
            from .errors import EncodingError

            raise EncodingError(f"a float intermediate of this layer may reach {float(np.max(worst)):.3g} times the "
                                "largest finite value of its type: onnxruntime could compute inf there, which the "
                                "verifier does not model")
        return e

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
    #: loader facts (opset, input_dtype, ...; ``onnx_bytes``: the ONNX model replayed by onnxruntime)
    meta: dict = field(default_factory=dict, compare=False, repr=False)

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

    def float_deviation(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Real-arithmetic outputs at float input(s) ``x`` ((n,) or (b, n)) and a bound on how far the
        outputs that onnxruntime computes may be from them (the error model of ``floatmodel``)."""
        z = np.asarray(x, dtype=np.float64)
        dz = np.zeros(z.shape)  # |z_hat - z|
        for layer in self.layers:
            p = z @ layer.weight.T + layer.bias
            e = layer.rounding_error(np.abs(z) + dz, dz)
            if layer.activation is None:
                z, dz = p, e
            else:  # every activation is 1-Lipschitz; LeakyReLU adds its own rounding
                dz = e + layer.activation.output_error(p - e, p + e)
                z = layer.activation.apply(p)
        return z, dz

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
