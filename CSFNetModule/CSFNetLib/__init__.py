"""CSFNetLib: the Qt-free core of SlicerCSFNet (CSF-net lung nodule malignancy prediction).

The data path: a scan and a nodule point -> `extract_roi` -> `build_model(...)(t0, t1, clinical)`.
Names are imported on first use, so that `import CSFNetLib` (and Slicer's module panel) works
before torch is installed.
"""

from .lazy import lazy_exports
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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
