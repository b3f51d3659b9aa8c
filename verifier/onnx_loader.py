"""Old import path of ``verifier.io.onnx`` (the ONNX reader): this name is the same module object, so
attribute access and monkeypatching reach the real module."""

import sys

from .io import onnx as _module

sys.modules[__name__] = _module
