"""``torch``, imported on first use: the coders' modules hold both their tensor code and
their sections' integer code, and reading a file's integers (nnc/codes.py) must not pay
for importing torch (2-3 s) or need it installed."""
from __future__ import annotations

import importlib


class LazyModule:
    def __init__(self, name: str):
        self._name = name
        self._module = None

    def __getattr__(self, attr: str):
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)


torch = LazyModule("torch")
