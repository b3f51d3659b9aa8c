"""The activation kinds, one module per kind, and the registry that dispatches on ``Activation.kind``.

Each kind module (``relu``, ``leaky``, ``clip``) provides, for an activation object ``act`` (any
object with ``kind``, ``alpha``, ``lo``, ``hi``, ``rel_error``, ``abs_error``: no import of the IR is needed):

- ``forward(act, x)``, ``derivative(act, p)`` (for falsification), ``describe(act)``;
- ``output_error(act, l, u)``: bound on the activation's own float rounding on ``[l, u]``;
- ``kinks_inside(act, l, u)``: breakpoints strictly inside ``(l, u)`` (0 = stable, linear);
- ``stable_line(act, l, u)``: ``(slope, offset)`` of the linear piece of a stable neuron;
- ``relaxation(act, l, u, adaptive)``: one lower and one upper line per neuron,
  ``a_lo*x + c_lo <= f(x) <= a_up*x + c_up`` on ``[l, u]`` (exact lines for stable neurons);
- ``big_m_rows(act, V, R, l, u, xv, yv, index)``: the exact big-M rows of the unstable neurons
  ``index`` (``V`` allocates variables, ``R`` collects row blocks: ``milp.model``'s builders);
- ``TRIANGLE`` / ``triangle_alpha(act)``: whether the compact triangle LP covers the kind and the
  slope of its negative side;
- ``DEFAULT_REL_ERROR`` / ``DEFAULT_ABS_ERROR``: the relative and absolute rounding of the output when the loader gives none.

Elementwise kinds map pre-activation ``i`` to output ``i``. A kind with ``ELEMENTWISE = False``
(``maxpool``: max over windows) has ``n_outputs`` outputs of its own and provides, instead of the
elementwise defaults below, ``carry`` (a per-candidate error to the outputs), ``backprop`` (the
vector-Jacobian product for falsification), ``backward_cols`` (its relaxation substituted into a
linear function, for back-substitution), ``milp_rows`` (its MILP rows) and ``triangle_rows``
(its step in the compact triangle LP, if ``TRIANGLE``).

To add a kind: write its module with these functions and add it to ``REGISTRY``.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from . import clip, leaky, maxpool, relu

REGISTRY: dict[str, ModuleType] = {"relu": relu, "leaky": leaky, "clip": clip, "max": maxpool}
KINDS = tuple(REGISTRY)
#: per kind: its own back-substitution step, if it has one (looked up once: this is a hot path)
_BACKWARD_COLS = {k: getattr(m, "backward_cols", None) for k, m in REGISTRY.items()}


def kind(act) -> ModuleType:
    """The module implementing ``act.kind``."""
    return REGISTRY[act.kind]


def forward(act, x: np.ndarray) -> np.ndarray:
    return REGISTRY[act.kind].forward(act, x)


def derivative(act, p: np.ndarray) -> np.ndarray:
    return REGISTRY[act.kind].derivative(act, p)


def is_elementwise(act) -> bool:
    return bool(getattr(REGISTRY[act.kind], "ELEMENTWISE", True))


def n_outputs(act, n_pre: int) -> int:
    """Number of outputs of ``act`` applied to ``n_pre`` pre-activations."""
    mod = REGISTRY[act.kind]
    return int(mod.n_outputs(act, n_pre)) if hasattr(mod, "n_outputs") else int(n_pre)


def carry(act, v: np.ndarray) -> np.ndarray:
    """A non-negative per-pre-activation quantity (a float error: every kind is 1-Lipschitz in the
    sup norm) carried to the outputs: itself for elementwise kinds."""
    mod = REGISTRY[act.kind]
    return mod.carry(act, v) if hasattr(mod, "carry") else v


def backprop(act, p: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Vector-Jacobian product: gradient over the outputs ``delta`` to the pre-activations at ``p``."""
    mod = REGISTRY[act.kind]
    if hasattr(mod, "backprop"):
        return mod.backprop(act, p, delta)
    return delta * mod.derivative(act, p)


def backward_cols(act, lines, L: np.ndarray, cols: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Upper bound of ``L @ y`` by the relaxation ``lines``, for coefficients ``L`` over the outputs
    ``cols`` only (None: all outputs): ``(L_pre, cols_pre, const, magnitude)``, ``L @ y <= L_pre @
    x[cols_pre] + const``; ``magnitude`` sums the absolute constant terms (for the outward padding)."""
    own = _BACKWARD_COLS[act.kind]
    if own is not None:
        return own(act, lines, L, cols)
    if cols is not None:
        lines = tuple(np.asarray(v)[cols] for v in lines)
    L_pre, const, mag = _elementwise_backward(lines, L)
    return L_pre, cols, const, mag



def _elementwise_backward(lines, L: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a_lo, c_lo, a_up, c_up = lines
    Lp = np.maximum(L, 0.0)
    Ln = L - Lp
    const = Lp @ c_up
    mag = Lp @ np.abs(c_up)
    if c_lo.any():  # ReLU's lower lines have no offset: skip the products
        const = const + Ln @ c_lo
        mag = mag - Ln @ np.abs(c_lo)
    return Lp * a_up + Ln * a_lo, const, mag


def output_error(act, l: np.ndarray, u: np.ndarray) -> np.ndarray:
    return REGISTRY[act.kind].output_error(act, l, u)


def kinks_inside(act, l: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Number of breakpoints strictly inside ``(l, u)`` per neuron (0 = stable, linear)."""
    return REGISTRY[act.kind].kinks_inside(act, l, u)


def stable_line(act, l: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return REGISTRY[act.kind].stable_line(act, l, u)


def relaxation(act, l: np.ndarray, u: np.ndarray, adaptive: bool = True
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(a_lo, c_lo, a_up, c_up)`` per neuron for ``act`` over ``[l, u]`` (``l <= u``)."""
    return REGISTRY[act.kind].relaxation(act, l, u, adaptive)


def big_m_rows(act, V, R, l, u, xv, yv, index) -> None:
    REGISTRY[act.kind].big_m_rows(act, V, R, l, u, xv, yv, index)


def milp_rows(act, V, R, l, u, x_of) -> tuple[np.ndarray, np.ndarray]:
    """MILP rows of a kind that is not elementwise, over its pre-activation bounds ``[l, u]``:
    ``x_of(idx)`` gives variables ``x = p`` of the pre-activations ``idx`` (call it once per
    index); returns (variable index or -1, constant) per output."""
    return REGISTRY[act.kind].milp_rows(act, V, R, l, u, x_of)


def triangle_rows(act, P, p, R, l, u, col, vmag):
    """The compact triangle LP's step through a kind that is not elementwise (see
    ``maxpool.triangle_rows`` for the arguments and the result)."""
    return REGISTRY[act.kind].triangle_rows(act, P, p, R, l, u, col, vmag)


def in_triangle_lp(act) -> bool:
    return bool(REGISTRY[act.kind].TRIANGLE)


def triangle_alpha(act) -> float:
    return REGISTRY[act.kind].triangle_alpha(act)


def default_rel_error(kind_name: str) -> float:
    return REGISTRY[kind_name].DEFAULT_REL_ERROR


def default_abs_error(kind_name: str) -> float:
    return REGISTRY[kind_name].DEFAULT_ABS_ERROR
