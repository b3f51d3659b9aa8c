"""Old import path of ``verifier.search.input_split`` (branch and bound over input boxes): this name is the same module object, so
attribute access and monkeypatching reach the real module."""

import sys

from .search import input_split as _module

sys.modules[__name__] = _module
