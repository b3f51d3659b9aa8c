"""Exception types of the package: every user-facing fault is a ``VerifierError``.

The CLI turns any ``VerifierError`` into one line on stderr and exit code 2.
"""

from __future__ import annotations


class VerifierError(Exception):
    """Base class of every error this package raises on bad input or usage."""


class ModelError(VerifierError):
    """The network file cannot be read, or uses something that is not supported."""


class SpecError(VerifierError):
    """The property file is malformed or does not match the network.

    ``path``, ``line`` and ``column`` (1-based, when known) locate the fault; ``str()``
    renders them as ``path:line:column: message`` so that editors can jump to it.
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None,
                 column: int | None = None) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.column = column
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.path or "<spec>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"


class EncodingError(VerifierError):
    """The MILP cannot be built soundly (e.g. unbounded or non-finite neuron bounds)."""


class SolverError(VerifierError):
    """The requested solver is unavailable (e.g. ``highs`` when ``highspy`` cannot be imported: a broken install)."""
