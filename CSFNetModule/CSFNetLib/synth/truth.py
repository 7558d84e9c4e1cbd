"""The generator's ground truth for a nodule in one scan: its masks and size in scanner LPS.

Measurements made on a synthetic scan (segmentation, volume, diameters, type) are judged against
the shape the generator drew, not against another algorithm: the same occupancy `Nodule.paint` blends
into the body-frame volume, evaluated on any grid in the scan's physical space by mapping the grid's
points back into the body frame through the scan's pose. The truth is the continuous shape, before
the scan resampled, blurred and added noise to it.
"""

import dataclasses
from typing import Tuple

import numpy as np

from ..geometry import VoxelGrid
from ..measure.size import NoduleSize, axial_axes, nodule_size
from .nodules import Nodule
from .patient import SyntheticPatient
from .raster import block_points

#: The generator's kinds as Lung-RADS / Fleischner name them (`measure.size.TYPES`).
TYPE_OF_KIND = {"solid": "solid", "part-solid": "part-solid", "non-solid": "ground-glass"}
_SLAB_POINTS = 2_000_000  # grid points evaluated at once, to bound memory on large grids


def true_masks(
    patient: SyntheticPatient, nodule: Nodule, timepoint: str, grid: VoxelGrid
) -> Tuple[np.ndarray, np.ndarray]:
    """Occupancy (float32 0..1, z y x on `grid`, LPS mm of that scan) of the whole nodule and of its solid part.

    As `Nodule.paint` draws it: the whole nodule is the outer shape with its spicules; the solid part is
    that same shape when the solid fraction is 1, a core of radius * fraction without spicules when it lies
    between 0 and 1, and nothing for ground glass. Both are zero where the nodule has resolved.
    """
    whole = np.zeros(grid.size_zyx, dtype=np.float32)
    solid = np.zeros(grid.size_zyx, dtype=np.float32)
    radius = nodule.diameter(timepoint) / 2.0
    if radius <= 0 or nodule.center_body is None:
        return whole, solid
    pose = patient.acquisitions[timepoint].pose
    center = patient.nodule_center_body(nodule, timepoint)
    reach = nodule.reach_mm(timepoint)
    box = np.array([[x, y, z] for x in (-reach, reach) for y in (-reach, reach) for z in (-reach, reach)])
    block, _ = grid.covering(pose.apply(center + box), margin=1)  # any grid direction: the box's corners
    voxel_mm = float(min(grid.spacing_xyz))  # `paint` smooths edges over the grid's finest spacing
    fraction = nodule.solid_fraction(timepoint)
    z_block, y_block, x_block = block
    plane = (y_block.stop - y_block.start) * (x_block.stop - x_block.start)
    step = max(1, _SLAB_POINTS // plane)
    for z in range(z_block.start, z_block.stop, step):
        slab = (slice(z, min(z + step, z_block.stop)), y_block, x_block)
        points = pose.apply_inverse(block_points(grid, slab))  # scanner LPS -> (breathed) body frame
        outer = nodule._occupancy(points, center, radius, voxel_mm, with_spicules=True)
        whole[slab] = outer
        if fraction >= 1.0:
            solid[slab] = outer
        elif fraction > 0.0:
            solid[slab] = nodule._occupancy(points, center, radius * fraction, voxel_mm, with_spicules=False)
    return whole, solid


def truth_grid(patient: SyntheticPatient, nodule: Nodule, timepoint: str, voxel_mm: float) -> VoxelGrid:
    """An isotropic identity-direction grid centred on the nodule in that scan, large enough to hold it."""
    half = int(np.ceil(nodule.reach_mm(timepoint) / voxel_mm))
    center = patient.nodule_center_lps(nodule, timepoint)
    return VoxelGrid.centred(center, (2 * half + 1,) * 3, (voxel_mm,) * 3)


def true_size(patient: SyntheticPatient, nodule: Nodule, timepoint: str, voxel_mm: float = 0.25) -> NoduleSize:
    """The size of the nodule the generator drew at `timepoint`, masks at occupancy >= 0.5 on a fine grid.

    Volumes and axes come from the same `nodule_size` a measurement uses, so the two differ only by
    segmentation; the type, the solid volume and the solid diameter come from the generator (its
    `kind_at`), not from the volume rule, which would call a small core "ground glass".
    """
    grid = truth_grid(patient, nodule, timepoint, voxel_mm)
    whole, solid = (occupancy >= 0.5 for occupancy in true_masks(patient, nodule, timepoint, grid))
    size = nodule_size(whole, solid, voxel_mm)
    kind = TYPE_OF_KIND[nodule.kind_at(timepoint)]
    if kind == "solid":
        solid_volume, solid_diameter = size.volume_mm3, size.diameter_mm
        return dataclasses.replace(size, type=kind, solid_volume_mm3=solid_volume, solid_diameter_mm=solid_diameter)
    if kind == "ground-glass":
        return dataclasses.replace(size, type=kind, solid_volume_mm3=0.0, solid_diameter_mm=0.0)
    core = whole & solid
    return dataclasses.replace(size, type=kind, solid_volume_mm3=float(core.sum()) * voxel_mm ** 3,
                               solid_diameter_mm=float(np.mean(axial_axes(core, voxel_mm))))
