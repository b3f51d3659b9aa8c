"""Sound pre-activation bounds for every neuron of a ``Network`` over an input box.

Methods, from cheapest to tightest: ``interval`` (interval arithmetic) and ``symbolic``
(back-substitution of linear relaxations, DeepPoly / CROWN style). Every bound is padded outward
(``pad``) so that float64 rounding in these computations cannot make it unsound.

The bounds are bounds of the network *as onnxruntime evaluates it*: every pre-activation is
``x_k = W_k z_{k-1} + b_k + d_k`` with the float rounding ``|d_k| <= e_k`` of ``floatmodel``
(``e_k`` from the magnitudes of the previous layer's sound bounds, ``rounding_errors``). Interval
bounds widen each pre-activation by ``e_k``; in back-substitution the term ``Lambda_k d_k`` of each
layer enters the bound as ``|Lambda_k| e_k``.

``LayerBounds`` is what the encoder consumes: any method (or a user) can supply it.
"""

from ..layer_bounds import (
    PAD_ABS,
    PAD_REL,
    LayerBounds,
    check_box,
    layer_error,
    margin_tau,
    next_input,
    pad,
    rounding_errors,
)
from .interval import _checked, _interval_step, interval_bounds
from .symbolic import _Relaxations, backsubstitute, linear_bounds, symbolic_bounds

__all__ = [
    "PAD_ABS",
    "PAD_REL",
    "LayerBounds",
    "_Relaxations",
    "_checked",
    "_interval_step",
    "backsubstitute",
    "box_bounds",
    "check_box",
    "interval_bounds",
    "layer_error",
    "linear_bounds",
    "margin_tau",
    "next_input",
    "pad",
    "rounding_errors",
    "symbolic_bounds",
]


def box_bounds(network, lower, upper, method: str, deadline=None):
    """``(interval bounds, bounds used for encoding)`` of one input box: the interval ones twice for
    ``method="interval"``, else interval and symbolic (``budget.Expired`` past ``deadline``)."""
    from ..budget import Deadline

    deadline = Deadline.coerce(deadline)
    ib = interval_bounds(network, lower, upper)
    if method == "interval":
        return ib, ib
    deadline.check("bounds")
    return ib, symbolic_bounds(network, lower, upper, deadline=deadline)
