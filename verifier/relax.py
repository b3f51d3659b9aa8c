"""Old import path: the linear relaxations now live with each activation kind in ``verifier.activations``."""

from .activations import kinks_inside, relaxation

__all__ = ["kinks_inside", "relaxation"]
