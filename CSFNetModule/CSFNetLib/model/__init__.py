"""The CSF-net network, built from small blocks and a configuration given as data.

The configurations (`model.config`) import without torch; the network's names load on first use.
"""

import importlib
from typing import Any

_EXPORTS = {
    "CONFIGS": "config",
    "ModelConfig": "config",
    "get_config": "config",
    "CSFNet": "csfnet",
    "build_model": "csfnet",
    "count_parameters": "csfnet",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'CSFNetLib.model' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
