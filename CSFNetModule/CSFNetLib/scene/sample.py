"""The module's sample pair (`CSFNetLib.sample_data`) as scene nodes: two CT volumes and their nodule points."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Union

import SimpleITK as sitk

from ..sample_data import sample_pair
from .nodes import NODE_NAMES, add_fiducials, add_volume_node


@dataclass(frozen=True)
class SampleNodes:
    """The sample pair as scene nodes, ready for `predict_scene`, and the patient's clinical data."""

    baseline_volume: Any
    followup_volume: Any
    baseline_fiducials: Any
    followup_fiducials: Any
    clinical: Dict[str, str]


def load_sample_pair(scene, folder: Union[str, Path]) -> SampleNodes:
    """Add the sample pair to `scene`: two CT volumes and one fiducial list per scan (nodule "1")."""
    pair = sample_pair(folder)
    volumes = [add_volume_node(scene, sitk.ReadImage(str(path)), name)
               for path, name in zip((pair.baseline, pair.followup), NODE_NAMES[:2])]
    points = [add_fiducials(scene, name, [centre], ["1"])
              for centre, name in zip((pair.nodule_t0_lps, pair.nodule_t1_lps), NODE_NAMES[2:])]
    return SampleNodes(volumes[0], volumes[1], points[0], points[1], pair.clinical)
