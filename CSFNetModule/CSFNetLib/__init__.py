"""CSFNetLib: the Qt-free core of SlicerCSFNet (CSF-net lung nodule malignancy prediction).

The data path: a scan and a nodule point -> `extract_roi` -> `build_model(...)(t0, t1, clinical)`.
Names are imported on first use, so that `import CSFNetLib` (and Slicer's module panel) works
before torch is installed.
"""

import importlib
from typing import Any

from .version import __version__

_EXPORTS = {
    "FIELDS": "clinical",
    "ClinicalVocabulary": "clinical",
    "CONFIGS": "model",
    "CSFNet": "model",
    "ModelConfig": "model",
    "build_model": "model",
    "count_parameters": "model",
    "Preprocessing": "preprocessing",
    "extract_roi": "preprocessing",
    "hu_to_unit": "preprocessing",
    "lung_mask": "preprocessing",
    "apply_lung_mask": "preprocessing",
    "roi_grid": "preprocessing",
    "VoxelGrid": "geometry",
    "lps_to_ras": "geometry",
    "ras_to_lps": "geometry",
    "Checkpoint": "checkpoint",
    "CheckpointError": "checkpoint",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'CSFNetLib' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
