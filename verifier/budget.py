"""Time budgets on one monotonic clock (``time.perf_counter``).

A ``Deadline`` is a point on that clock (or none: unlimited). Everything that used to subtract
``time.perf_counter()`` from a float, divide what is left among the remaining jobs, or hand a
fraction of it to a sub-step asks the deadline instead: ``remaining()``, ``expired()``,
``share(n)`` (a fair share of what is left among ``n``) and ``child(fraction)`` (a deadline that
ends after ``fraction`` of what is left, never after its parent).

Wall-clock deadlines for other processes (``search/parallel.py``) are derived from ``remaining()``.

A phase that cannot return a partial answer (bounds in the middle of a network) calls
``deadline.check(phase)``, which raises ``Expired``; ``verify`` turns it into *unknown* (timeout
during that phase). Phases that can stop cleanly test ``expired()`` and return what they have.
"""

from __future__ import annotations

import time

clock = time.perf_counter  # the one clock (tests may replace it: every reader looks it up here)


class Expired(Exception):
    """The deadline passed during ``phase`` (raised by ``Deadline.check``)."""

    def __init__(self, phase: str) -> None:
        super().__init__(f"deadline passed during {phase}")
        self.phase = phase


class Deadline:
    """A deadline at ``at`` seconds on ``clock`` (None: never). ``limit`` is the budget it was made
    from, for messages ("timeout after 5 s")."""

    __slots__ = ("at", "limit")

    def __init__(self, at: float | None = None, limit: float | None = None) -> None:
        self.at = None if at is None else float(at)
        self.limit = limit

    @classmethod
    def after(cls, seconds: float | None) -> Deadline:
        """``seconds`` from now (None: no deadline)."""
        return cls(None if seconds is None else clock() + seconds, seconds)

    @classmethod
    def never(cls) -> Deadline:
        return cls(None)

    @classmethod
    def coerce(cls, deadline: Deadline | float | None) -> Deadline:
        """A ``Deadline`` as it is; a float as an absolute time on ``clock``; None as no deadline."""
        if isinstance(deadline, Deadline):
            return deadline
        return cls(deadline)

    @property
    def unlimited(self) -> bool:
        return self.at is None

    def remaining(self) -> float | None:
        """Seconds left (0 when past), or None without a deadline."""
        if self.at is None:
            return None
        return max(0.0, self.at - clock())

    def expired(self) -> bool:
        return self.at is not None and clock() >= self.at

    def check(self, phase: str) -> None:
        """Raise ``Expired(phase)`` if the deadline has passed."""
        if self.expired():
            raise Expired(phase)

    def share(self, n: int) -> float | None:
        """A fair share of what is left among ``n`` jobs still to run (this one included)."""
        rem = self.remaining()
        return None if rem is None else rem / max(1, n)

    def child(self, fraction: float = 1.0) -> Deadline:
        """A deadline after ``fraction`` of what is left (never later than this one)."""
        rem = self.remaining()
        if rem is None:
            return Deadline(None)
        return Deadline(clock() + fraction * rem, fraction * rem)

    def __repr__(self) -> str:
        rem = self.remaining()
        return "Deadline(never)" if rem is None else f"Deadline(in {rem:.3f} s)"
