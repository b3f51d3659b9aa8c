"""The TOML property format into a ``Spec``."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import numpy as np

from ..errors import SpecError
from ..spec import Spec
from .constraints import (
    _Atom,
    _box_problem,
    _line_col,
    _LocalError,
    _parse_constraint,
    _spec_from_blocks,
)

# ---------------------------------------------------------------------------------------------
# TOML
# ---------------------------------------------------------------------------------------------

_TOP_KEYS = ("description", "input", "unsafe")
_INPUT_KEYS = ("lower", "upper", "boxes")
_BOX_KEYS = ("lower", "upper")
_UNSAFE_KEYS = ("all",)
_TOML_LOCATION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)\s*$")


class _TomlParser:
    """Checks the parsed TOML document and locates faults in the raw text."""

    def __init__(self, text: str, source: str | None) -> None:
        self.text = text
        self.source = source

    # -- locations ------------------------------------------------------------------------

    def header_pos(self, name: str, nth: int = 0) -> int | None:
        """Offset of the ``nth`` ``[name]`` / ``[[name]]`` header, or None if there is none."""
        pattern = re.compile(rf"^[ \t]*\[\[?[ \t]*{re.escape(name)}[ \t]*\]\]?", re.MULTILINE)
        for k, m in enumerate(pattern.finditer(self.text)):
            if k == nth:
                return m.start()
        return None

    def line_of(self, pos: int | None) -> int | None:
        return None if pos is None else _line_col(self.text, pos)[0]

    def key_line(self, key: str, start: int | None = None) -> int | None:
        """Line of the first ``key =`` (or ``[key`` header) at or after offset ``start``."""
        pattern = re.compile(rf"(?:^[ \t]*\[*[ \t]*|[{{,][ \t]*)(?:\w+\.)*{re.escape(key)}\b",
                             re.MULTILINE)
        m = pattern.search(self.text, start or 0) or pattern.search(self.text)
        return None if m is None else _line_col(self.text, m.end())[0]

    def error(self, message: str, line: int | None = None, column: int | None = None) -> SpecError:
        return SpecError(message, self.source, line, column)

    def key_error(self, message: str, key: str, start: int | None = None) -> SpecError:
        return self.error(message, self.key_line(key, start))

    # -- document -------------------------------------------------------------------------

    def run(self) -> Spec:
        try:
            data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            raise self.toml_error(str(exc)) from None
        self.check_keys(data, _TOP_KEYS, "the top level", None)
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.key_error("description must be a string", "description")
        boxes = self.boxes(data.get("input"))
        blocks, labels = self.unsafe(data.get("unsafe"), boxes[0][0].shape[0])
        return _spec_from_blocks(boxes, blocks, labels, description, self.source,
                                 lambda msg: self.error(msg, self.key_line("unsafe")))

    def toml_error(self, message: str) -> SpecError:
        m = _TOML_LOCATION.search(message)
        if m is None:
            return self.error(f"invalid TOML: {message}")
        text = message[:m.start()]
        if m.group(1) is None:  # end of document
            lines = self.text.split("\n")
            return self.error(f"invalid TOML: {text} (at the end of the file)", len(lines),
                              len(lines[-1]) + 1)
        return self.error(f"invalid TOML: {text}", int(m.group(1)), int(m.group(2)))

    def check_keys(self, table: dict[str, Any], allowed: tuple[str, ...], where: str,
                   start: int | None) -> None:
        for key in table:
            if key not in allowed:
                raise self.key_error(f"unknown key {key!r} in {where}; allowed keys: "
                                     f"{', '.join(allowed)}", key, start)

    def boxes(self, table: Any) -> list[tuple[np.ndarray, np.ndarray]]:
        if table is None:
            raise self.error("missing [input] table: give lower and upper bounds of the inputs")
        start = self.header_pos("input")
        if not isinstance(table, dict):
            raise self.key_error("input must be a table ([input]) with lower and upper", "input")
        self.check_keys(table, _INPUT_KEYS, "[input]", start)
        if "boxes" in table:
            if "lower" in table or "upper" in table:
                raise self.key_error("[input] has both lower/upper and boxes: use one of them",
                                     "boxes", start)
            raw = table["boxes"]
            if not isinstance(raw, list) or not raw or not all(isinstance(b, dict) for b in raw):
                raise self.key_error("input.boxes must be one or more [[input.boxes]] tables, "
                                     "each with lower and upper", "boxes", start)
            boxes = []
            for k, box in enumerate(raw):
                box_start = self.header_pos("input.boxes", k)
                where = f"[[input.boxes]] number {k + 1}"
                self.check_keys(box, _BOX_KEYS, where, box_start)
                boxes.append(self.box(box, where, box_start))
                if boxes[-1][0].shape != boxes[0][0].shape:
                    raise self.key_error(f"{where} has {boxes[-1][0].size} inputs but the first "
                                         f"box has {boxes[0][0].size}", "lower", box_start)
            return boxes
        return [self.box(table, "[input]", start)]

    def box(self, table: dict[str, Any], where: str,
            start: int | None) -> tuple[np.ndarray, np.ndarray]:
        arrays = []
        for key in ("lower", "upper"):
            if key not in table:
                raise self.error(f"{where} has no {key}: expected {key} = [numbers, ...]",
                                 self.line_of(start))
            arrays.append(self.numbers(table[key], f"{where} {key}", key, start))
        lower, upper = arrays
        problem = _box_problem(lower, upper)
        if problem is not None:
            key, message = problem
            raise self.key_error(f"{where}: {message}", key, start)
        return lower, upper

    def numbers(self, value: Any, what: str, key: str, start: int | None) -> np.ndarray:
        if not isinstance(value, list):
            raise self.key_error(f"{what} must be a list of numbers, got "
                                 f"{type(value).__name__}", key, start)
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise self.key_error(f"{what}[{i}] must be a number, got {v!r}", key, start)
        try:
            return np.array([float(v) for v in value], dtype=np.float64)
        except OverflowError:
            raise self.key_error(f"{what} has an integer too large for float64", key,
                                 start) from None

    def unsafe(self, raw: Any, n_inputs: int) -> tuple[list[list[_Atom]], list[str]]:
        if raw is None:
            raise self.error("no [[unsafe]] block: the spec must say which outputs are unsafe, "
                             'e.g. [[unsafe]] all = ["y0 >= y1"]')
        if not isinstance(raw, list) or not raw or not all(isinstance(b, dict) for b in raw):
            raise self.key_error("unsafe must be an array of tables: write [[unsafe]] blocks, "
                                 "each with all = [constraints]", "unsafe")
        blocks: list[list[_Atom]] = []
        labels: list[str] = []
        for k, block in enumerate(raw):
            start = self.header_pos("unsafe", k)
            label = f"[[unsafe]] block {k + 1}"
            self.check_keys(block, _UNSAFE_KEYS, label, start)
            strings = block.get("all")
            if strings is None:
                raise self.error(f"{label} has no 'all' list of constraints",
                                 self.line_of(start))
            if not isinstance(strings, list) or not strings:
                raise self.key_error(f"{label}: 'all' must be a non-empty list of constraint "
                                     "strings", "all", start)
            atoms: list[_Atom] = []
            for s in strings:
                if not isinstance(s, str):
                    raise self.key_error(f"{label}: 'all' must hold strings, got {s!r}", "all",
                                         start)
                try:
                    atoms.extend(_parse_constraint(s, n_inputs))
                except _LocalError as exc:
                    line, column = self.string_location(s, start, exc.offset)
                    raise self.error(f"in {label}, constraint {s!r}: {exc.message} (at character "
                                     f"{exc.offset + 1} of the constraint)", line, column) from None
            blocks.append(atoms)
            labels.append(label)
        return blocks, labels

    def string_location(self, s: str, start: int | None,
                        offset: int) -> tuple[int | None, int | None]:
        """File line and column of character ``offset`` of string ``s``.

        The string is searched as a quoted literal from ``start`` (its block's header), then
        from the top, then unquoted; without a match only the block's line is known.
        """
        for begin in dict.fromkeys((start or 0, 0)):
            found = [p + 1 for q in "\"'" if (p := self.text.find(q + s + q, begin)) >= 0]
            if found:
                return _line_col(self.text, min(found) + offset)
        p = self.text.find(s, start or 0) if s else -1
        if p < 0 and s:
            p = self.text.find(s)
        if p < 0:
            return self.line_of(start), None
        return _line_col(self.text, p + offset)


def parse_toml(text: str, source: str | None = None) -> Spec:
    """Parse the TOML property format into a Spec::

        description = "..."                      # optional
        [input]                                  # or several [[input.boxes]] with lower/upper
        lower = [0.0, -1.0]
        upper = [1.0,  1.0]
        [[unsafe]]                               # the unsafe region is the OR of the blocks
        all = ["y0 <= y1", "y0 - 2*y2 >= 0.5"]   # each block is the AND of its constraints

    Constraints are linear in ``y<j>`` (outputs) and ``x<i>`` (inputs) with numbers, ``+``,
    ``-``, ``*`` and ``/`` by constants, parentheses, and ``<=``, ``>=``, ``<``, ``>``, ``==``
    (two inequalities), chainable as in ``0 <= y0 <= 1``. Every box is paired with every
    block, one :class:`Case` per box. ``n_outputs`` is left undeclared (None); see
    :meth:`Spec.bind`. Unknown keys are errors.
    """
    if not isinstance(text, str):
        raise SpecError(f"TOML text must be a str, got {type(text).__name__}", source)
    return _TomlParser(text, source).run()


