"""Peak memory sampling of worker process groups (benchmark tables report it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from verifier.app.memory import PeakSampler, group_rss

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc (Linux)")


def test_group_rss_counts_a_child_that_holds_memory():
    """A child in its own group that allocates ~200 MiB is seen with at least that much."""
    code = "import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); print('ok', flush=True); time.sleep(30)"
    p = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ok"
        sampler = PeakSampler(p.pid, interval=0.05)
        rss = group_rss(p.pid)
        peak = sampler.stop()
        assert rss is not None and rss >= 200 * 2 ** 20
        assert peak is not None and peak >= 200
    finally:
        p.kill()
        p.wait()


def test_group_rss_of_an_empty_group_is_zero():
    assert group_rss(2 ** 22 + os.getpid()) == 0
