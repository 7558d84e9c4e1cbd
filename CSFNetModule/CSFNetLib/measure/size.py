"""A nodule's size from its masks: volumes, axial long and short axes, the Lung-RADS mean diameter, its type.

Masks live on an analysis grid of isotropic voxels aligned with the patient's axes (LPS, identity
direction), so that "axial" is the patient's axial plane whatever the scan's orientation, and every
millimetre is the same in each direction.
"""

from dataclasses import dataclass
from typing import Tuple

import numpy as np

#: Types as Lung-RADS and Fleischner name them.
TYPES = ("solid", "part-solid", "ground-glass")
#: A nodule is solid when its solid component holds at least this share of its volume; ground glass when
#: the solid component is smaller than SOLID_MIN_MM3 (a sphere of about 2 mm): partial volume and noise
#: make a few voxels of any ground-glass nodule reach solid attenuation.
SOLID_SHARE = 0.5
SOLID_MIN_MM3 = 4.0
_ANGLES = np.deg2rad(np.arange(0.0, 180.0, 2.0))  # directions a slice's extent is measured along


@dataclass(frozen=True)
class NoduleSize:
    """What guidelines act on, for one nodule in one scan (mm, mm3)."""

    volume_mm3: float
    solid_volume_mm3: float
    long_axis_mm: float  # the longest axial diameter (over every axial slice)
    short_axis_mm: float  # the longest diameter perpendicular to it, in the same slice
    solid_diameter_mm: float  # the solid component's mean diameter (0 when there is none)
    type: str  # one of TYPES

    @property
    def diameter_mm(self) -> float:
        """The Lung-RADS v2022 / Fleischner mean diameter: (long + short axis) / 2."""
        return (self.long_axis_mm + self.short_axis_mm) / 2.0


def axial_axes(mask_zyx: np.ndarray, voxel_mm: float) -> Tuple[float, float]:
    """(long axis, short axis) in mm: the axial slice with the longest diameter, and the largest extent
    perpendicular to it in that slice; extents measured between voxel edges (a one-voxel mask is one voxel wide)."""
    best = (0.0, 0.0)
    directions = np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], axis=1)
    for z in np.flatnonzero(mask_zyx.any(axis=(1, 2))):
        points = np.argwhere(mask_zyx[z]).astype(float) * voxel_mm  # (y, x) mm
        projections = points @ directions.T
        extents = projections.max(axis=0) - projections.min(axis=0) + voxel_mm
        longest = int(np.argmax(extents))
        if extents[longest] > best[0]:
            perpendicular = (longest + len(_ANGLES) // 2) % len(_ANGLES)
            best = (float(extents[longest]), float(extents[perpendicular]))
    return best


def nodule_size(whole_zyx: np.ndarray, solid_zyx: np.ndarray, voxel_mm: float) -> NoduleSize:
    """Size and type of a nodule from boolean masks of the whole nodule and of its solid component."""
    voxel_mm3 = voxel_mm ** 3
    volume = float(whole_zyx.sum()) * voxel_mm3
    solid = whole_zyx & solid_zyx
    solid_volume = float(solid.sum()) * voxel_mm3
    long_axis, short_axis = axial_axes(whole_zyx, voxel_mm)
    if solid_volume < SOLID_MIN_MM3:
        return NoduleSize(volume, 0.0, long_axis, short_axis, 0.0, "ground-glass")
    if solid_volume >= SOLID_SHARE * volume:  # solid throughout: its solid component is the nodule
        return NoduleSize(volume, volume, long_axis, short_axis, (long_axis + short_axis) / 2.0, "solid")
    solid_diameter = float(np.mean(axial_axes(solid, voxel_mm)))
    return NoduleSize(volume, solid_volume, long_axis, short_axis, solid_diameter, "part-solid")
