"""The CSF-net network, built from small blocks and a configuration given as data.

The configurations (`model.config`) import without torch; the network's names load on first use.
"""

from ..lazy import lazy_exports

_EXPORTS = {
    "CONFIGS": "config",
    "ModelConfig": "config",
    "get_config": "config",
    "CSFNet": "csfnet",
    "build_model": "csfnet",
    "count_parameters": "csfnet",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
