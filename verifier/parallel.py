"""Old import path of ``verifier.search.parallel`` (parallel input splitting): this name is the same module object, so
attribute access and monkeypatching reach the real module."""

import sys

from .search import parallel as _module

sys.modules[__name__] = _module
