"""Drawing shapes into a volume on an axis-aligned grid, with partial-volume edges.

Every shape is defined in physical millimetres; a voxel's occupancy is the fraction of it the shape
covers, approximated from the signed distance to the surface over one voxel width. Each shape is
only evaluated on the sub-block of voxels its bounding box touches.
"""

from dataclasses import dataclass
from typing import Iterable, Optional, Tuple

import numpy as np

from ..geometry import VoxelGrid


@dataclass(frozen=True)
class Tube:
    """A straight segment from `start` to `end` (body mm) whose radius changes linearly along it."""

    start: Tuple[float, float, float]
    end: Tuple[float, float, float]
    radius_start: float
    radius_end: float

    def widened(self, extra_mm: float) -> "Tube":
        return Tube(self.start, self.end, self.radius_start + extra_mm, self.radius_end + extra_mm)


def block_around(grid: VoxelGrid, low_lps: np.ndarray, high_lps: np.ndarray) -> Optional[Tuple[slice, ...]]:
    """The array slices (z, y, x) of an identity-direction grid that cover a physical box, or None."""
    low = np.floor(grid.lps_to_index_zyx(low_lps)).astype(int)
    high = np.ceil(grid.lps_to_index_zyx(high_lps)).astype(int) + 1
    low = np.maximum(np.minimum(low, high), 0)
    high = np.minimum(np.maximum(low, high), grid.size_zyx)
    if np.any(high <= low):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high))


def block_points(grid: VoxelGrid, block: Tuple[slice, ...]) -> np.ndarray:
    """Physical positions (z, y, x, 3) of the voxels of a block."""
    index = np.stack(np.meshgrid(*(np.arange(s.start, s.stop) for s in block), indexing="ij"), axis=-1)
    return grid.index_zyx_to_lps(index)


def tube_occupancy(points: np.ndarray, tube: Tube, voxel_mm: float) -> np.ndarray:
    """Fraction of each voxel inside the tube."""
    a, b = np.asarray(tube.start), np.asarray(tube.end)
    axis = b - a
    t = np.clip(((points - a) @ axis) / max(float(axis @ axis), 1e-12), 0.0, 1.0)
    distance = np.linalg.norm(points - (a + t[..., None] * axis), axis=-1)
    radius = tube.radius_start + t * (tube.radius_end - tube.radius_start)
    return np.clip((radius - distance) / voxel_mm + 0.5, 0.0, 1.0)


def paint_tubes(
    volume: np.ndarray,
    grid: VoxelGrid,
    tubes: Iterable[Tube],
    hu: float,
    where: Optional[np.ndarray] = None,
) -> None:
    """Blend `hu` into `volume` inside each tube (optionally only where the mask `where` is set)."""
    voxel_mm = float(min(grid.spacing_xyz))
    for tube in tubes:
        reach = max(tube.radius_start, tube.radius_end) + voxel_mm
        ends = np.array([tube.start, tube.end])
        block = block_around(grid, ends.min(axis=0) - reach, ends.max(axis=0) + reach)
        if block is None:
            continue
        occupancy = tube_occupancy(block_points(grid, block), tube, voxel_mm)
        if where is not None:
            occupancy = occupancy * where[block]
        volume[block] += occupancy * (hu - volume[block])
