"""Coordinate systems and the ROI grid: the one place where RAS, LPS, IJK and millimetres meet.

Conventions
- LPS: the ITK / DICOM patient system (x grows to the patient's Left, y to Posterior, z to Superior),
  what SimpleITK reports. cases.csv coordinates are LPS millimetres.
- RAS: what 3D Slicer shows and stores (R = -L, A = -P, S = S).
- The ROI grid: 1 mm voxels on the patient axes (identity direction in LPS), array axes (z, y, x)
  = (S, P, L) increasing, centred on the nodule. With an even number of voxels per axis the centre
  falls between the two middle voxels.
"""

from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np

#: Diagonal that flips LPS <-> RAS (its own inverse).
_LPS_RAS_FLIP = np.array([-1.0, -1.0, 1.0])


def ras_to_lps(point_ras: Sequence[float]) -> np.ndarray:
    """A point (or an (N, 3) array of points) from Slicer's RAS to ITK's LPS millimetres."""
    return np.asarray(point_ras, dtype=float) * _LPS_RAS_FLIP


def lps_to_ras(point_lps: Sequence[float]) -> np.ndarray:
    """A point (or an (N, 3) array of points) from ITK's LPS to Slicer's RAS millimetres."""
    return np.asarray(point_lps, dtype=float) * _LPS_RAS_FLIP


def as_lps_point(point: Sequence[float], what: str = "nodule centre") -> np.ndarray:
    """Validate a physical point: three finite numbers. Raises ValueError naming `what`."""
    try:
        arr = np.asarray(point, dtype=float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be three numbers (x, y, z in mm), got {point!r}") from exc
    if arr.shape != (3,):
        raise ValueError(f"{what} must be three numbers (x, y, z in mm), got {arr.size} values")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} must be finite, got {tuple(arr.tolist())}")
    return arr


@dataclass(frozen=True)
class RoiGrid:
    """A patient-aligned voxel grid in LPS millimetres (identity direction).

    `size_zyx` is the array shape; `origin_lps` is the physical position of voxel (0, 0, 0).
    """

    origin_lps: Tuple[float, float, float]
    spacing_mm: float
    size_zyx: Tuple[int, int, int]

    @classmethod
    def centred(cls, center_lps: Sequence[float], size_zyx: Sequence[int], spacing_mm: float) -> "RoiGrid":
        """The grid of `size_zyx` voxels whose physical centre is `center_lps`."""
        center = as_lps_point(center_lps)
        size_xyz = np.asarray(size_zyx[::-1], dtype=float)
        origin = center - (size_xyz - 1.0) / 2.0 * spacing_mm
        return cls(tuple(origin.tolist()), float(spacing_mm), tuple(int(s) for s in size_zyx))

    @property
    def size_xyz(self) -> Tuple[int, int, int]:
        """The size in ITK order (x, y, z), as SimpleITK wants it."""
        return tuple(reversed(self.size_zyx))

    @property
    def direction(self) -> Tuple[float, ...]:
        """Row-major 3x3 direction cosines: the identity (patient axes)."""
        return (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    @property
    def center_lps(self) -> np.ndarray:
        """Physical centre of the grid."""
        return self.index_zyx_to_lps((np.asarray(self.size_zyx, dtype=float) - 1.0) / 2.0)

    def index_zyx_to_lps(self, index_zyx: Sequence[float]) -> np.ndarray:
        """Continuous array index (z, y, x), or an (N, 3) array of them, to LPS millimetres."""
        index_xyz = np.asarray(index_zyx, dtype=float)[..., ::-1]
        return np.asarray(self.origin_lps) + index_xyz * self.spacing_mm

    def lps_to_index_zyx(self, point_lps: Sequence[float]) -> np.ndarray:
        """LPS millimetres, or an (N, 3) array of points, to continuous array index (z, y, x)."""
        index_xyz = (np.asarray(point_lps, dtype=float) - np.asarray(self.origin_lps)) / self.spacing_mm
        return index_xyz[..., ::-1]
