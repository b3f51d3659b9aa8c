"""Old import path of ``verifier.search.falsify`` (falsification): this name is the same module object, so
attribute access and monkeypatching reach the real module."""

import sys

from .search import falsify as _module

sys.modules[__name__] = _module
