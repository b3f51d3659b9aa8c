"""Paths the tests use: the repository and the shared VNN-COMP 2021 benchmarks (``../shared``)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO.parent / "shared" / "benchmarks" / "vnncomp2021"
SKIP_NO_SHARED = pytest.mark.skipif(not BENCH.is_dir(), reason=f"shared benchmarks not found at {BENCH}")
