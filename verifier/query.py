"""Old import path of ``verifier.search.query`` (the bound-query API): this name is the same module object, so
attribute access and monkeypatching reach the real module."""

import sys

from .search import query as _module

sys.modules[__name__] = _module
