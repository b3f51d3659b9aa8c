"""Monkeypatching helpers shared by test modules."""

from __future__ import annotations

import sys

import verifier.solve as solve_mod


def patch_solve(monkeypatch, fake) -> None:
    """Replace ``verifier.solve.solve`` wherever a verifier module imported it."""
    real = solve_mod.solve
    patched = 0
    for name, mod in list(sys.modules.items()):
        if name.startswith("verifier") and getattr(mod, "solve", None) is real:
            monkeypatch.setattr(mod, "solve", fake)
            patched += 1
    assert patched, "no module uses verifier.solve.solve any more: update this test"
