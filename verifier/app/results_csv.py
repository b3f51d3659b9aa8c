"""The resumable results CSV of ``verifier batch --out``."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence

from ..errors import VerifierError
from ..results import HOLDS, UNKNOWN, VIOLATED
from .tasks import Outcome, Task

RESULT_COLUMNS = ("onnx", "vnnlib", "result", "time_s", "reason", "expected", "match")
_STATUSES = (HOLDS, VIOLATED, UNKNOWN)


class ResultsFile:
    """The ``--out`` CSV: header, then one flushed row per finished instance.

    With ``resume`` an existing file is kept: its rows are returned by :meth:`previous` (a last line
    cut short by a kill is dropped) and new rows are appended after them.
    """

    def __init__(self, path: str | os.PathLike, resume: bool = False) -> None:
        self.path = os.fspath(path)
        self.rows: list[dict] = []
        try:
            if resume and os.path.exists(self.path):
                self.rows = self._recover()
                self.file = open(self.path, "a", encoding="utf-8", newline="")  # noqa: SIM115 - open for the run
            else:
                self.file = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
                self._write(RESULT_COLUMNS)
        except OSError as exc:
            raise VerifierError(f"{self.path}: cannot write the results file: {exc.strerror}") from None

    def _recover(self) -> list[dict]:
        with open(self.path, "rb") as f:
            data = f.read()
        if data and not data.endswith(b"\n"):  # a row cut short by a kill: drop it, keep the rest
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as f:
                f.truncate(cut)
            data = data[:cut]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise VerifierError(f"{self.path}: not a results file (not UTF-8 text)") from None
        lines = text.splitlines()
        if not lines:
            with open(self.path, "w", encoding="utf-8", newline="") as f:
                f.write(",".join(RESULT_COLUMNS) + "\n")
            return []
        header = next(csv.reader([lines[0]]))
        if tuple(header) != RESULT_COLUMNS:
            raise VerifierError(f"{self.path}:1: not a results file of 'verifier batch' (header "
                                f"{','.join(header)!r}, expected {','.join(RESULT_COLUMNS)!r}); "
                                "refusing to append to it: drop --resume to overwrite it")
        rows = []
        for n, fields in enumerate(csv.reader(lines[1:]), start=2):
            if not fields:
                continue
            if len(fields) != len(RESULT_COLUMNS) or fields[2] not in _STATUSES:
                raise VerifierError(f"{self.path}:{n}: malformed results row ({len(fields)} columns, result "
                                    f"{fields[2] if len(fields) > 2 else '?'!r}); fix or delete this line")
            row = dict(zip(RESULT_COLUMNS, fields))
            try:
                row["time_s"] = float(row["time_s"] or 0.0)
            except ValueError:
                raise VerifierError(f"{self.path}:{n}: bad time_s {row['time_s']!r}") from None
            rows.append(row)
        return rows

    def _write(self, fields: Sequence[object]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(fields)
        self.file.write(buf.getvalue())  # one write per row: a kill can cut at most the last line
        self.file.flush()
        os.fsync(self.file.fileno())

    def write(self, out: Outcome) -> None:
        reason = " ".join((out.reason or "").split())  # one row = one line, whatever the reason text
        t = out.task
        self._write((t.onnx, t.vnnlib, out.status, f"{out.time_s:.3f}", reason, t.expected or "", out.match))

    def close(self) -> None:
        self.file.close()


def split_resumed(tasks: Sequence[Task], rows: Sequence[dict]) -> tuple[list[Outcome], list[Task]]:
    """(outcomes already in ``rows``, tasks still to run); a task listed twice needs two rows."""
    left: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        left.setdefault((r["onnx"], r["vnnlib"]), []).append(r)
    done, todo = [], []
    for t in tasks:
        prev = left.get((t.onnx, t.vnnlib))
        if prev:
            r = prev.pop(0)
            done.append(Outcome(t, r["result"], r["reason"] or None, r["time_s"], None,
                                r["reason"].startswith("timeout"), from_resume=True))
        else:
            todo.append(t)
    return done, todo
