"""Reading a spec file, the format chosen by its extension."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from ..errors import SpecError
from ..spec import Spec
from .toml_spec import parse_toml
from .vnnlib import parse_vnnlib

SUPPORTED_EXTENSIONS = (".vnnlib", ".toml")


def load_spec(path: str | PathLike[str]) -> Spec:
    """Read a spec file, choosing the format by extension (``.vnnlib`` or ``.toml``)."""
    try:
        p = Path(path)
    except TypeError:
        raise SpecError(f"spec path must be a string or path, got {type(path).__name__}") from None
    source = str(path)
    ext = p.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise SpecError(f"unsupported spec file extension {p.suffix or '(none)'!r}: expected "
                        ".vnnlib (VNN-LIB) or .toml", source)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SpecError("no such file", source) from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"not a UTF-8 text file ({exc.reason} at byte {exc.start})",
                        source) from None
    except OSError as exc:
        raise SpecError(f"cannot read the file: {exc.strerror or exc}", source) from None
    return parse_vnnlib(text, source) if ext == ".vnnlib" else parse_toml(text, source)

