"""Old import path of ``verifier.search.tighten`` (LP / MILP bound tightening): this name is the same module object, so
attribute access and monkeypatching reach the real module."""

import sys

from .search import tighten as _module

sys.modules[__name__] = _module
