"""``budget.Deadline`` (core, used throughout search/): one monotonic clock, fair shares, children."""

from __future__ import annotations

from verifier.budget import Deadline, clock


def test_unlimited():
    d = Deadline.after(None)
    assert d.unlimited and d.remaining() is None and not d.expired()
    assert d.share(3) is None and d.child(0.5).unlimited


def test_remaining_share_child():
    d = Deadline.after(10.0)
    assert 9.0 < d.remaining() <= 10.0 and not d.expired() and d.limit == 10.0
    assert 3.0 < d.share(3) <= 10.0 / 3
    assert 9.0 < d.share(0) <= 10.0  # n < 1 counts as one
    c = d.child(0.25)
    assert 2.0 < c.remaining() <= 2.5 and c.at <= d.at


def test_expired_is_clamped():
    d = Deadline(clock() - 1.0)
    assert d.expired() and d.remaining() == 0.0 and d.share(4) == 0.0 and d.child(0.5).expired()


def test_coerce():
    d = Deadline.after(1.0)
    assert Deadline.coerce(d) is d
    assert Deadline.coerce(None).unlimited
    t = clock() + 5.0
    assert Deadline.coerce(t).at == t
