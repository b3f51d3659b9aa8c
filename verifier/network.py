"""The internal network representation: a DAG of affine layers and piecewise-linear activations.

A ``Network`` is immutable. Tensors are numbered: tensor 0 is the network input, tensor ``k + 1``
the output of layer ``k``. Layer ``k`` reads the tensors ``sources(k)`` (any earlier ones; by
default the previous, which makes a chain), concatenated in that order into its input vector
``z``, computes the pre-activation ``x = W z + b`` and applies its activation (elementwise, or a
max over windows; nothing for the output layer, the last). A residual block ``relu(W2 h + s)``
is one layer reading ``(h, s)`` with ``W = [W2 | I]``. All numbers are float64 copies of the
stored weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from . import activations as _acts
from .floatmodel import LARGEST, dot_error
from .linalg import absolute, as_weight, col_max, neg, pos

ACTIVATION_KINDS = _acts.KINDS


@dataclass(frozen=True)
class Activation:
    """An elementwise piecewise-linear activation.

    - ``relu``:  y = max(x, 0)
    - ``leaky``: y = x if x >= 0 else alpha * x, with 0 < alpha < 1 (the loader rejects other
      values: the relaxations and interval bounds assume a monotone, convex activation)
    - ``clip``:  y = min(max(x, lo), hi) with per-neuron ``lo`` / ``hi`` (may be -inf / +inf).
      ``Max(x, c)`` and ``Min(x, c)`` load as one-sided clips.
    - ``max``:   y_j = max_{i in groups[j]} x_i (MaxPool): ``groups`` is an int array
      ``(n_outputs, k)`` of pre-activation indices, ``-1`` padding shorter windows.
    """

    kind: str
    alpha: float = 0.0
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    groups: np.ndarray | None = field(default=None, compare=False)
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
        if self.kind == "max":
            g = np.asarray(self.groups if self.groups is not None else np.zeros((0, 0)))
            if g.ndim != 2 or g.shape[0] == 0 or g.shape[1] == 0 or g.dtype.kind not in "iu" or np.any(g[:, 0] < 0):
                raise ValueError("a max activation needs groups: a non-empty (n_outputs, k) int array whose rows "
                                 "start with a valid index (-1 pads shorter windows)")
            object.__setattr__(self, "groups", g.astype(np.int64))
        if self.rel_error is None:
            object.__setattr__(self, "rel_error", _acts.default_rel_error(self.kind))
        if self.abs_error is None:
            object.__setattr__(self, "abs_error", _acts.default_abs_error(self.kind))

    def output_error(self, l: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Bound on ``|fl(f(x)) - f(x)|`` for ``x`` in ``[l, u]`` (zero for exact activations)."""
        return _acts.output_error(self, l, u)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Apply the activation to pre-activations ``x`` (last axis = neurons). Every kind is
        monotone, so applied to lower / upper bounds it gives bounds of the outputs."""
        return _acts.forward(self, x)

    def carry(self, v: np.ndarray) -> np.ndarray:
        """A non-negative per-pre-activation error carried to the outputs (every kind is 1-Lipschitz)."""
        return _acts.carry(self, v)

    @property
    def elementwise(self) -> bool:
        return _acts.is_elementwise(self)

    def describe(self) -> str:
        return _acts.kind(self).describe(self)


@dataclass(frozen=True)
class Layer:
    """``x = weight @ z + bias`` followed by ``activation`` (None for a purely affine layer).

    ``weight`` is a dense array or, when large and sparse (convolutions), a ``scipy.sparse`` CSR
    array (``linalg``); ``weight`` and ``bias`` are the real-arithmetic composition of the ONNX operators between two
    activations. ``err_weight`` / ``err_bias`` bound the floating-point error of evaluating those
    operators as onnxruntime does: for a layer input ``z`` given exactly (as floats) with
    ``|z| <= m`` elementwise, every float evaluation ``x_hat`` satisfies
    ``|x_hat - (weight @ z + bias)| <= err_weight @ m + err_bias`` (see ``floatmodel``). A layer
    built in memory without them is taken to be one float32 ``Gemm`` (dot products over its row's
    non-zero weights plus the bias). ``guards``: ``(G, g, limit)`` triples, ``G @ m + g <= limit``
    must hold on the box (float16 intermediates that must not overflow). ``sources``: the tensors
    the layer reads (0 = network input, ``j + 1`` = output of layer ``j``), concatenated in this
    order; None = the previous layer's output (a chain).
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
    sources: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.sources is not None:
            object.__setattr__(self, "sources", tuple(int(s) for s in self.sources))
        object.__setattr__(self, "weight", as_weight(self.weight))
        object.__setattr__(self, "bias", np.asarray(self.bias, dtype=np.float64))
        if self.err_weight is None or self.err_bias is None:
            ew, eb = dot_error(self.weight, self.bias)
            object.__setattr__(self, "err_weight", ew)
            object.__setattr__(self, "err_bias", eb)
        if self.overflow is None:  # one float32 Gemm: every partial sum is within sum |w||z| + |b| (and rounding)
            w, b = absolute(self.weight), np.abs(self.bias)
            limit = LARGEST["float32"] / 1.001
            object.__setattr__(self, "overflow", (col_max(w) / limit, float(b.max(initial=0.0)) / limit))
        object.__setattr__(self, "err_weight", as_weight(self.err_weight))

    @cached_property
    def abs_weight(self) -> np.ndarray:
        return absolute(self.weight)

    @cached_property
    def pos_weight(self):
        return pos(self.weight)

    @cached_property
    def neg_weight(self):
        return neg(self.weight)

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
        """Number of pre-activations (rows of ``weight``)."""
        return int(self.weight.shape[0])

    @property
    def n_post(self) -> int:
        """Number of outputs after the activation (``n_out`` except for max windows)."""
        return self.n_out if self.activation is None else _acts.n_outputs(self.activation, self.n_out)


@dataclass(frozen=True)
class Network:
    """A feed-forward piecewise-linear network (a DAG, see the module docstring); the last layer
    has no activation and its output is the network's output."""

    layers: tuple[Layer, ...]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    source: str | None = None
    input_name: str = "input"
    output_name: str = "output"
    #: loader facts (opset, input_dtype, ...; ``onnx_bytes``: the ONNX model replayed by onnxruntime)
    meta: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        sizes = [self.layers[0].n_in if self.layers else int(np.prod(self.input_shape))]
        srcs = []
        for k, layer in enumerate(self.layers):
            s = (k,) if layer.sources is None else layer.sources
            if not s or any(t < 0 or t > k for t in s):
                raise ValueError(f"layer {k} reads tensors {list(s)}: only tensors 0..{k} exist before it "
                                 "(0 = input, j + 1 = output of layer j)")
            if sum(sizes[t] for t in s) != layer.n_in:
                raise ValueError(f"layer {k} has {layer.n_in} inputs, its sources {list(s)} give "
                                 f"{sum(sizes[t] for t in s)}")
            if layer.activation is None and k != len(self.layers) - 1:
                raise ValueError(f"layer {k} has no activation: only the last (output) layer may be purely affine")
            srcs.append(tuple(s))
            sizes.append(layer.n_post)
        object.__setattr__(self, "_sources", tuple(srcs))
        object.__setattr__(self, "_sizes", tuple(sizes))

    # ------------------------------------------------------------------------------ the graph
    def sources(self, k: int) -> tuple[int, ...]:
        """The tensors layer ``k`` reads, in the order of its weight columns."""
        return self._sources[k]

    def tensor_size(self, t: int) -> int:
        return self._sizes[t]

    @property
    def is_chain(self) -> bool:
        return all(s == (k,) for k, s in enumerate(self._sources))

    def gather(self, k: int, tensors) -> np.ndarray:
        """Layer ``k``'s input: its source tensors (``tensors[t]``, last axis = features) concatenated."""
        s = self._sources[k]
        if len(s) == 1:
            return tensors[s[0]]
        return np.concatenate([np.asarray(tensors[t]) for t in s], axis=-1)

    def split(self, k: int, M: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """The columns of ``M`` (last axis over layer ``k``'s input) per source tensor: ``[(t, block)]``."""
        s = self._sources[k]
        if len(s) == 1:
            return [(s[0], M)]
        out, start = [], 0
        for t in s:
            n = self._sizes[t]
            out.append((t, M[..., start:start + n]))
            start += n
        return out

    def consumers(self, t: int) -> tuple[int, ...]:
        """The layers that read tensor ``t``."""
        return tuple(k for k, s in enumerate(self._sources) if t in s)

    # ---------------------------------------------------------------------------------- sizes
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

    # ------------------------------------------------------------------------------ evaluation
    def _run(self, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Every tensor and every pre-activation for input(s) ``x``, in float64."""
        tensors = [np.asarray(x, dtype=np.float64)]
        pres = []
        for k, layer in enumerate(self.layers):
            p = self.gather(k, tensors) @ layer.weight.T + layer.bias
            pres.append(p)
            tensors.append(p if layer.activation is None else layer.activation.apply(p))
        return tensors, pres

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Outputs for input vector(s) ``x`` of shape (n_inputs,) or (batch, n_inputs), in float64."""
        return self._run(x)[0][-1]

    def float_deviation(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Real-arithmetic outputs at float input(s) ``x`` ((n,) or (b, n)) and a bound on how far the
        outputs that onnxruntime computes may be from them (the error model of ``floatmodel``)."""
        z0 = np.asarray(x, dtype=np.float64)
        tensors, devs = [z0], [np.zeros(z0.shape)]  # per tensor: real value and |z_hat - z|
        for k, layer in enumerate(self.layers):
            z, dz = self.gather(k, tensors), self.gather(k, devs)
            p = z @ layer.weight.T + layer.bias
            e = layer.rounding_error(np.abs(z) + dz, dz)
            if layer.activation is None:
                tensors.append(p)
                devs.append(e)
            else:  # every activation is 1-Lipschitz; LeakyReLU adds its own rounding
                act = layer.activation
                devs.append(act.carry(e) + act.output_error(p - e, p + e))
                tensors.append(act.apply(p))
        return tensors[-1], devs[-1]

    def pre_activations(self, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's pre-activation for input(s) ``x`` (the last entry is the output)."""
        return self._run(x)[1]
