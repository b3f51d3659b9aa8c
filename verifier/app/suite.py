"""Read the lists of instances that ``verifier batch`` and ``verifier check`` run.

* a VNN-COMP ``instances.csv``: ``onnx,vnnlib,timeout`` per line, no header, paths relative to the
  csv's folder (absolute paths allowed);
* an ``expected.csv``: header ``onnx,vnnlib,timeout_s,expected`` (expected = holds / violated /
  unknown; sat / unsat are accepted too), paths relative to its folder;
* a suite file (TOML, see :func:`load_suite`): named checks with a required verdict.

Every fault is a :class:`ListError` naming the file and the line, so that the CLI can exit with
code 2 and the user can jump to the place.
"""

from __future__ import annotations

import csv
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ..errors import VerifierError
from ..results import HOLDS, UNKNOWN, VIOLATED
from .tasks import OPTION_FIELDS, Outcome, Task, option_problem

#: a check's time limit (seconds) when neither the check nor the suite gives one
DEFAULT_SUITE_TIMEOUT = 300.0
CHECK_KEYS = ("name", "model", "spec", "timeout", "expect", "certificate", *OPTION_FIELDS)
SUITE_KEYS = ("name", "timeout", "certificate", *OPTION_FIELDS, "check")
_VERDICTS = {"holds": HOLDS, "unsat": HOLDS, "violated": VIOLATED, "sat": VIOLATED, "unknown": UNKNOWN,
             "": UNKNOWN, "timeout": UNKNOWN}


class ListError(VerifierError):
    """A malformed instance list, expected-results file or suite; ``problems`` are (line, message)."""

    def __init__(self, path: str | os.PathLike, problems: list[tuple[int | None, str]]) -> None:
        self.path = str(path)
        self.problems = problems
        lines = [f"{self.path}:{line}: {msg}" if line else f"{self.path}: {msg}" for line, msg in problems]
        super().__init__("\n".join(lines))


def _resolve(folder: Path, name: str) -> str:
    """``name`` relative to ``folder`` unless absolute, as an absolute normalised path (symlinks kept)."""
    p = Path(os.path.expanduser(name))
    return os.path.abspath(p if p.is_absolute() else folder / p)


def _not_found(what: str, name: str, full: str) -> str:
    return f"{what} file not found: {name}" + (f" (looked for {full})" if full != name else "")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ListError(path, [(None, "file not found")]) from None
    except IsADirectoryError:
        raise ListError(path, [(None, "is a directory, not a file")]) from None
    except UnicodeDecodeError as exc:
        raise ListError(path, [(None, f"not a UTF-8 text file ({exc.reason} at byte {exc.start})")]) from None
    except OSError as exc:
        raise ListError(path, [(None, f"cannot read: {exc.strerror}")]) from None


def _csv_rows(text: str) -> list[tuple[int, list[str]]]:
    """(line number, stripped fields) of the non-blank, non-comment rows."""
    out = []
    reader = csv.reader(text.splitlines())
    for fields in reader:
        line = reader.line_num
        fields = [f.strip() for f in fields]
        if not any(fields) or fields[0].startswith("#"):
            continue
        out.append((line, fields))
    return out


def parse_timeout(value: object) -> float | None:
    """A positive finite number of seconds, or None if ``value`` is not one."""
    if isinstance(value, bool):
        return None
    try:
        t = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return t if math.isfinite(t) and t > 0 else None


def _table_timeout(table: dict, default: float, where, problems: list) -> float:
    """The table's ``timeout`` key if valid (else ``default``); a bad value is recorded in ``problems``."""
    if "timeout" not in table:
        return default
    t = parse_timeout(table["timeout"])
    if t is None:
        problems.append((where, f"bad timeout {table['timeout']!r}: expected a positive number of seconds"))
        return default
    return t


def load_instances(path: str | os.PathLike, timeout: float | None = None, solver: str | None = "cbc",
                   benchmark: str | None = None, options: Mapping[str, object] | None = None) -> list[Task]:
    """Tasks of a VNN-COMP ``instances.csv``; ``timeout`` (if given) replaces the csv's timeouts.

    ``options`` (keys of :data:`~verifier.app.tasks.OPTION_FIELDS`, None values ignored) set the
    verify options of every task; ``solver`` is the same as ``options["solver"]``."""
    path = Path(path)
    text = _read_text(path)
    folder = path.parent
    bench = benchmark or folder.resolve().name
    tasks: list[Task] = []
    problems: list[tuple[int | None, str]] = []
    for k, (line, fields) in enumerate(_csv_rows(text)):
        if k == 0 and len(fields) == 3 and fields[2].lower() in ("timeout", "timeout_s"):
            continue  # tolerate a header line
        if len(fields) != 3:
            problems.append((line, f"expected 3 columns (onnx,vnnlib,timeout), got {len(fields)}"))
            continue
        onnx, vnnlib, tval = fields
        t = parse_timeout(tval)
        if t is None:
            problems.append((line, f"bad timeout {tval!r}: expected a positive number of seconds"))
        model, spec = _resolve(folder, onnx), _resolve(folder, vnnlib)
        for what, name, full in (("onnx", onnx, model), ("vnnlib", vnnlib, spec)):
            if not name:
                problems.append((line, f"empty {what} path"))
            elif not os.path.isfile(full):
                problems.append((line, _not_found(what, name, full)))
        if t is not None:
            tasks.append(Task(onnx, vnnlib, model, spec, timeout if timeout is not None else t, bench, None, None,
                              solver or "cbc", line).with_options(options))
    if problems:
        raise ListError(path, problems)
    if not tasks:
        raise ListError(path, [(None, "no instances (expected lines of onnx,vnnlib,timeout)")])
    return tasks


def _key(model: str, spec: str) -> tuple[str, str]:
    return os.path.realpath(model), os.path.realpath(spec)


def load_expected(path: str | os.PathLike) -> dict[tuple[str, str], str]:
    """Expected verdicts keyed by the real paths of (model, spec)."""
    path = Path(path)
    rows = _csv_rows(_read_text(path))
    if not rows:
        raise ListError(path, [(None, "empty: expected a header onnx,vnnlib,timeout_s,expected and rows")])
    hline, header = rows[0]
    cols = {name.lower(): i for i, name in enumerate(header)}
    missing = [c for c in ("onnx", "vnnlib", "expected") if c not in cols]
    if missing:
        raise ListError(path, [(hline, (f"header must name the columns onnx, vnnlib and expected "
                                       f"(missing: {', '.join(missing)}); got {','.join(header)}"))])
    out: dict[tuple[str, str], str] = {}
    problems: list[tuple[int | None, str]] = []
    for line, fields in rows[1:]:
        if len(fields) != len(header):
            problems.append((line, f"expected {len(header)} columns like the header, got {len(fields)}"))
            continue
        value = fields[cols["expected"]].lower()
        if value not in _VERDICTS:
            problems.append((line, f"bad expected value {fields[cols['expected']]!r}: use holds, violated or unknown"))
            continue
        out[_key(_resolve(path.parent, fields[cols["onnx"]]), _resolve(path.parent, fields[cols["vnnlib"]]))] = \
            _VERDICTS[value]
    if problems:
        raise ListError(path, problems)
    return out


def with_expected(tasks: list[Task], expected: dict[tuple[str, str], str]) -> list[Task]:
    """``tasks`` with the expected verdicts of ``expected`` (which wins over a suite's ``expect``)."""
    out = []
    for t in tasks:
        exp = expected.get(_key(t.model_path, t.spec_path), t.expected)
        out.append(Task(**{**t.__dict__, "expected": exp}))
    return out


# ---------------------------------------------------------------------------------------------
# Suites
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One ``[[check]]`` of a suite: a model, a spec, a required verdict and a time limit."""

    name: str
    model: str  # as written in the suite
    spec: str
    model_path: str
    spec_path: str
    timeout: float
    expect: str
    line: int | None
    options: tuple[tuple[str, object], ...] = ()  # verify options of this check (the suite's, then its own)
    certificate: bool = False  # the check requires a proof certificate (``verifier check`` writes and checks it)


@dataclass(frozen=True)
class Suite:
    name: str
    path: str
    checks: tuple[Check, ...]

    def tasks(self, solver: str | None = None, timeout: float | None = None,
              options: Mapping[str, object] | None = None, certificates: str | None = None) -> list[Task]:
        """One task per check. ``timeout``, ``solver`` and ``options`` (command-line values; None = not
        given) win over the check's own settings, which win over the suite's top-level ones.
        ``certificates``: the folder where the checks that require a certificate write it
        (``certificate_file``); None: no certificates (``verifier batch``)."""
        given = {**(options or {}), **({"solver": solver} if solver is not None else {})}
        return [Task(c.model, c.spec, c.model_path, c.spec_path, timeout if timeout is not None else c.timeout,
                     self.name, c.expect, c.name, "cbc", c.line,
                     certificate=certificate_file(certificates, k, c.name) if certificates and c.certificate
                     else None).with_options(dict(c.options)).with_options(given)
                for k, c in enumerate(self.checks)]

    @property
    def wants_certificates(self) -> bool:
        return any(c.certificate for c in self.checks)


def certificate_file(folder: str, index: int, name: str) -> str:
    """Where check number ``index`` (0-based) named ``name`` writes its certificate: ``NN-<name>.proof.json.gz``
    (the name reduced to letters, digits, ``.``, ``_`` and ``-``; the number keeps two checks apart)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:80] or "check"
    return os.path.join(folder, f"{index + 1:02d}-{slug}.proof.json.gz")


_HEADER = re.compile(r"^\s*\[")
_CHECK_HEADER = re.compile(r"^\s*\[\[\s*check\s*\]\]")


class _Lines:
    """Finds the line of a ``[[check]]`` block or of a key, for error messages (1-based)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.blocks = [i + 1 for i, ln in enumerate(self.lines) if _CHECK_HEADER.match(ln)]
        first_header = next((i for i, ln in enumerate(self.lines) if _HEADER.match(ln)), len(self.lines))
        self.top_end = first_header + 1

    def block(self, k: int) -> int | None:
        return self.blocks[k] if k < len(self.blocks) else None

    def key(self, k: int | None, key: str) -> int | None:
        """Line of ``key = ...`` in block ``k`` (None: the top level before any table)."""
        if k is None:
            start, end = 1, self.top_end
        else:
            start = self.block(k)
            if start is None:
                return None
            end = next((i + 1 for i in range(start, len(self.lines)) if _HEADER.match(self.lines[i])),
                       len(self.lines) + 1)
        pat = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for i in range(start, end):
            if pat.match(self.lines[i - 1]):
                return i
        return start if k is not None else None


def _toml_error_line(exc: tomllib.TOMLDecodeError) -> tuple[int | None, str]:
    """(line, message) of a TOML syntax error (the line is parsed from the message before Python 3.14)."""
    text = str(exc)
    lineno = getattr(exc, "lineno", None)
    m = re.search(r"\s*\(at line (\d+), column (\d+)\)", text)
    if m:
        text = text[:m.start()] + text[m.end():] + f" (column {m.group(2)})"
        lineno = lineno or int(m.group(1))
    return lineno, f"TOML syntax error: {text}"


def load_suite(path: str | os.PathLike) -> Suite:
    """Parse and check a suite file; every problem is reported with its line (``ListError``)."""
    path = Path(path)
    text = _read_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ListError(path, [_toml_error_line(exc)]) from None
    where = _Lines(text)
    problems: list[tuple[int | None, str]] = []
    for key in data:
        if key not in SUITE_KEYS:
            problems.append((where.key(None, key), (f"unknown key {key!r} (allowed at the top level: "
                                                   f"{', '.join(SUITE_KEYS)})")))
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        problems.append((where.key(None, "name"), "name must be a non-empty string"))
        name = path.stem
    default_timeout = _table_timeout(data, DEFAULT_SUITE_TIMEOUT, where.key(None, "timeout"), problems)
    suite_options = _table_options(data, lambda key: where.key(None, key), problems)
    suite_certificate = _table_certificate(data, False, where.key(None, "certificate"), problems)
    raw = data.get("check")
    if raw is None or (isinstance(raw, list) and not raw):
        problems.append((None, "no checks: add [[check]] tables with model = ..., spec = ..."))
        raw = []
    if not isinstance(raw, list) or not all(isinstance(c, dict) for c in raw):
        problems.append((where.key(None, "check"), "check must be an array of tables ([[check]])"))
        raw = []
    checks: list[Check] = []
    seen: dict[str, int | None] = {}
    for k, entry in enumerate(raw):
        check = _check(entry, k, path.parent, default_timeout, suite_options, suite_certificate, where, problems)
        if check is None:
            continue
        if check.name in seen:
            problems.append((check.line, (f"duplicate check name {check.name!r} (first at line {seen[check.name]}); "
                                         "give each check a distinct name")))
            continue
        seen[check.name] = check.line
        checks.append(check)
    if problems:
        raise ListError(path, sorted(problems, key=lambda p: p[0] or 0))
    return Suite(name.strip(), str(path), tuple(checks))


def _table_options(table: dict, line_of, problems: list) -> dict:
    """The verify options set in ``table`` (suite top level or one check); bad values go to ``problems``."""
    out = {}
    for key in OPTION_FIELDS:
        if key in table:
            problem = option_problem(key, table[key])
            if problem:
                problems.append((line_of(key), problem))
            else:
                out[key] = table[key]
    return out


def _table_certificate(table: dict, default: bool, where, problems: list) -> bool:
    """The table's ``certificate`` key (true / false) if valid, else ``default`` (a bad value goes to ``problems``)."""
    value = table.get("certificate", default)
    if not isinstance(value, bool):
        problems.append((where, f"bad certificate value {value!r}: use true or false"))
        return default
    return value


def _check(entry: dict, k: int, folder: Path, default_timeout: float, suite_options: dict, suite_certificate: bool,
           where: _Lines, problems: list[tuple[int | None, str]]) -> Check | None:
    """One validated check, or None (and ``problems`` extended) if it is malformed."""
    line = where.block(k)
    n0 = len(problems)
    for key in entry:
        if key not in CHECK_KEYS:
            problems.append((where.key(k, key), f"unknown key {key!r} in [[check]] (allowed: {', '.join(CHECK_KEYS)})"))
    paths = {}
    for key in ("model", "spec"):
        value = entry.get(key)
        if value is None:
            problems.append((line, f"[[check]] is missing the required key {key!r}"))
        elif not isinstance(value, str) or not value.strip():
            problems.append((where.key(k, key), f"{key} must be a non-empty string (a file path)"))
        else:
            full = _resolve(folder, value)
            if not os.path.isfile(full):
                problems.append((where.key(k, key), _not_found(key, value, full)))
            paths[key] = (value, full)
    timeout = _table_timeout(entry, default_timeout, where.key(k, "timeout"), problems)
    options = {**suite_options, **_table_options(entry, lambda key: where.key(k, key), problems)}
    certificate = _table_certificate(entry, suite_certificate, where.key(k, "certificate"), problems)
    expect = entry.get("expect", HOLDS)
    if expect not in (HOLDS, VIOLATED):
        problems.append((where.key(k, "expect"), f"bad expect value {expect!r}: use \"holds\" or \"violated\""))
    name = entry.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        problems.append((where.key(k, "name"), "name must be a non-empty string"))
    if len(problems) > n0 or len(paths) < 2:
        return None
    (model, model_path), (spec, spec_path) = paths["model"], paths["spec"]
    name = name.strip() if name else f"{Path(model).name} / {Path(spec).name}"
    return Check(name, model, spec, model_path, spec_path, timeout, expect, line, tuple(sorted(options.items())),
                 certificate)


def load_list(path: str | os.PathLike, timeout: float | None = None, solver: str | None = None,
              options: Mapping[str, object] | None = None) -> list[Task]:
    """Tasks of an ``instances.csv`` or (``.toml``) a suite file; ``timeout``, ``solver`` and
    ``options`` (None values ignored) override the list's own settings."""
    if str(path).lower().endswith(".toml"):
        return load_suite(path).tasks(solver, timeout, options)
    return load_instances(path, timeout, solver, options=options)


# ---------------------------------------------------------------------------------------------
# Judging the outcome of a check
# ---------------------------------------------------------------------------------------------

class CheckState(StrEnum):
    """How a check fared against its required verdict (not a verdict itself: see ``Verdict``)."""

    PASSED = "pass"
    FAILED = "fail"
    UNKNOWN_ALLOWED = "unknown-allowed"


PASSED, FAILED, UNKNOWN_ALLOWED = CheckState.PASSED, CheckState.FAILED, CheckState.UNKNOWN_ALLOWED


@dataclass(frozen=True)
class Judgement:
    """``state`` is pass / fail / unknown-allowed; ``wrong`` marks the opposite verdict (not unknown);
    ``rejected`` a certificate the checker rejected; ``kind`` a failure type for the report (else derived)."""

    outcome: Outcome
    state: CheckState
    wrong: bool
    message: str
    rejected: bool = False
    kind: str = ""


def judge(outcome: Outcome, allow_unknown: bool = False) -> Judgement:
    """Whether a check obtained its required verdict (``outcome.task.expected``)."""
    want = outcome.task.expected or HOLDS
    got = outcome.status
    if got == want:
        return Judgement(outcome, PASSED, False, f"{got} as required")
    if outcome.input_error:  # a broken model or spec never passes, not even with allow_unknown
        return Judgement(outcome, FAILED, False, f"bad input: {outcome.reason}")
    if got == UNKNOWN:
        msg = f"unknown ({outcome.reason or 'no reason given'}); required {want}"
        return Judgement(outcome, UNKNOWN_ALLOWED if allow_unknown else FAILED, False, msg)
    if got == VIOLATED:
        return Judgement(outcome, FAILED, True, f"violated, but the check requires {want}: counterexample found")
    return Judgement(outcome, FAILED, True, f"holds (proved), but the check requires {want}: "
                                            "no counterexample exists")
