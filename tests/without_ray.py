"""A pytest plugin that makes ``ray`` unimportable: ``pytest -p tests.without_ray``.

The block's hot path and the analyzer must import and run with Ray absent (only
``computeinfra.cluster`` and ``computeinfra.runtime`` may import it); running their unit tests
under this plugin proves it.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType


class _NoRay(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname == "ray" or fullname.startswith("ray."):
            raise ImportError(f"ray is not importable here (tests/without_ray.py): {fullname}")
        return None


for name in [n for n in sys.modules if n == "ray" or n.startswith("ray.")]:
    del sys.modules[name]
sys.meta_path.insert(0, _NoRay())
