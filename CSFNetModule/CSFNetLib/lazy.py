"""Packages whose names load on first use, so that importing them costs nothing (and needs no torch)."""

import importlib
import sys
from typing import Any, Callable, Dict, List, Tuple


def lazy_exports(package: str, exports: Dict[str, str]) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """A package's module-level `__getattr__` and `__dir__`: each exported name is imported from its
    submodule (`exports[name]`, relative to `package`) the first time it is asked for, then kept."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{exports[name]}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> List[str]:
        return sorted(exports)

    return __getattr__, __dir__
