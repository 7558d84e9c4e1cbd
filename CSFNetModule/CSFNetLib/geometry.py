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
from typing import Iterable, Optional, Sequence, Tuple, Union, cast

import numpy as np
import SimpleITK as sitk

#: Diagonal that flips LPS <-> RAS (its own inverse).
_LPS_RAS_FLIP = np.array([-1.0, -1.0, 1.0])

#: A point as three numbers, or an (..., 3) array of points: anything `np.asarray` makes floats of.
PointsLike = Union[Sequence[float], np.ndarray]


def float3(values: Iterable[float]) -> Tuple[float, float, float]:
    """`values` as a tuple, typed as the three per-axis numbers the caller knows it holds (not checked)."""
    return cast(Tuple[float, float, float], tuple(values))


def int3(values: Iterable[int]) -> Tuple[int, int, int]:
    """`values` as a tuple, typed as the three per-axis sizes the caller knows it holds (not checked)."""
    return cast(Tuple[int, int, int], tuple(values))


def ras_to_lps(point_ras: PointsLike) -> np.ndarray:
    """A point (or an (N, 3) array of points) from Slicer's RAS to ITK's LPS millimetres."""
    return np.asarray(point_ras, dtype=float) * _LPS_RAS_FLIP


def lps_to_ras(point_lps: PointsLike) -> np.ndarray:
    """A point (or an (N, 3) array of points) from ITK's LPS to Slicer's RAS millimetres."""
    return np.asarray(point_lps, dtype=float) * _LPS_RAS_FLIP


def as_lps_point(point: PointsLike, what: str = "nodule centre") -> np.ndarray:
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
class VoxelGrid:
    """A voxel grid in LPS millimetres: ITK's geometry (origin, spacing, direction) plus a size.

    `size_zyx` is the numpy array shape; `direction` holds the row-major 3x3 direction cosines whose
    columns are the i, j, k axes (x, y, z array order reversed). ROI grids use the identity.
    """

    origin_lps: Tuple[float, float, float]
    spacing_xyz: Tuple[float, float, float]
    size_zyx: Tuple[int, int, int]
    direction: Tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    @classmethod
    def centred(
        cls,
        center_lps: PointsLike,
        size_zyx: Sequence[int],
        spacing_xyz: Sequence[float],
        direction: Optional[np.ndarray] = None,
    ) -> "VoxelGrid":
        """The grid of `size_zyx` voxels whose physical centre is `center_lps`."""
        center = as_lps_point(center_lps)
        matrix = np.eye(3) if direction is None else np.asarray(direction, dtype=float).reshape(3, 3)
        half_extent = (np.asarray(size_zyx[::-1], dtype=float) - 1.0) / 2.0 * np.asarray(spacing_xyz, dtype=float)
        origin = center - matrix @ half_extent
        return cls(
            tuple(origin.tolist()),
            float3(float(s) for s in spacing_xyz),
            int3(int(s) for s in size_zyx),
            tuple(matrix.reshape(-1).tolist()),
        )

    @classmethod
    def of_image(cls, image: sitk.Image) -> "VoxelGrid":
        """The grid a SimpleITK image lies on."""
        return cls(image.GetOrigin(), image.GetSpacing(), tuple(reversed(image.GetSize())), image.GetDirection())

    @property
    def size_xyz(self) -> Tuple[int, int, int]:
        """The size in ITK order (x, y, z), as SimpleITK wants it."""
        return int3(reversed(self.size_zyx))

    @property
    def matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    @property
    def center_lps(self) -> np.ndarray:
        """Physical centre of the grid."""
        return self.index_zyx_to_lps((np.asarray(self.size_zyx, dtype=float) - 1.0) / 2.0)

    def index_zyx_to_lps(self, index_zyx: PointsLike) -> np.ndarray:
        """Continuous array index (z, y, x), or an (..., 3) array of them, to LPS millimetres."""
        scaled = np.asarray(index_zyx, dtype=float)[..., ::-1] * np.asarray(self.spacing_xyz)
        return np.asarray(self.origin_lps) + scaled @ self.matrix.T

    def lps_to_index_zyx(self, point_lps: PointsLike) -> np.ndarray:
        """LPS millimetres, or an (..., 3) array of points, to continuous array index (z, y, x).

        The exact inverse of `index_zyx_to_lps`, sheared grids (e.g. a tilted gantry) included.
        """
        offset = np.asarray(point_lps, dtype=float) - np.asarray(self.origin_lps)
        index_xyz = offset @ np.linalg.inv(self.matrix * np.asarray(self.spacing_xyz)).T
        return index_xyz[..., ::-1]

    @property
    def corners_lps(self) -> np.ndarray:
        """The eight outermost voxel centres, (8, 3) in LPS mm."""
        last = np.asarray(self.size_zyx) - 1
        index = np.array([[k, j, i] for k in (0, last[0]) for j in (0, last[1]) for i in (0, last[2])], dtype=float)
        return self.index_zyx_to_lps(index)

    def covering(self, points_lps: np.ndarray, margin: int = 1) -> Tuple[Tuple[slice, ...], "VoxelGrid"]:
        """The part of this grid around `points_lps` (plus `margin` voxels, within the grid): its array
        slices (z, y, x) and its own grid, for cutting a region out of a large scan."""
        index = self.lps_to_index_zyx(np.asarray(points_lps, dtype=float).reshape(-1, 3))
        size = np.asarray(self.size_zyx)
        low = np.clip(np.floor(index.min(axis=0)).astype(int) - margin, 0, size - 1)
        high = np.clip(np.ceil(index.max(axis=0)).astype(int) + margin + 1, low + 1, size)
        part = VoxelGrid(tuple(self.index_zyx_to_lps(low).tolist()), self.spacing_xyz,
                         int3(int(n) for n in high - low), self.direction)
        return tuple(slice(int(a), int(b)) for a, b in zip(low, high)), part

    def image(self, array_zyx: np.ndarray) -> sitk.Image:
        """A SimpleITK image of `array_zyx` placed on this grid."""
        if tuple(array_zyx.shape) != self.size_zyx:
            raise ValueError(f"array shape {array_zyx.shape} does not match the grid {self.size_zyx}")
        image = sitk.GetImageFromArray(array_zyx)
        image.SetOrigin(self.origin_lps)
        image.SetSpacing(self.spacing_xyz)
        direction = np.asarray(self.direction, dtype=float)
        direction[np.abs(direction) < 1e-12] = 0.0  # float dust (and subnormals, which ITK inverts to NaN)
        image.SetDirection(direction.tolist())
        return image


def rotation_matrix(degrees_xyz: PointsLike) -> np.ndarray:
    """Rotation about x, then y, then z (angles in degrees), as a 3x3 matrix."""
    ax, ay, az = np.radians(np.asarray(degrees_xyz, dtype=float))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class RigidTransform:
    """p = R q + t: from one physical frame (q) to another (p), e.g. a patient's body to a scanner."""

    rotation: Tuple[float, ...]  # row-major 3x3
    translation: Tuple[float, float, float]

    @classmethod
    def from_degrees(cls, degrees_xyz: PointsLike, translation: PointsLike) -> "RigidTransform":
        return cls(tuple(rotation_matrix(degrees_xyz).reshape(-1).tolist()), float3(float(t) for t in translation))

    @property
    def matrix(self) -> np.ndarray:
        return np.asarray(self.rotation, dtype=float).reshape(3, 3)

    def apply(self, points: PointsLike) -> np.ndarray:
        """Map a point, or an (N, 3) array of points, forward."""
        return np.asarray(points, dtype=float) @ self.matrix.T + np.asarray(self.translation)

    def apply_inverse(self, points: PointsLike) -> np.ndarray:
        """Map a point, or an (N, 3) array of points, back: q = R^T (p - t)."""
        return (np.asarray(points, dtype=float) - np.asarray(self.translation)) @ self.matrix

    def inverse_for_resampling(self) -> sitk.Transform:
        """The SimpleITK transform Resample wants: output (p) points back to input (q) points."""
        inverse = sitk.AffineTransform(3)
        inverse.SetMatrix(self.matrix.T.reshape(-1).tolist())
        inverse.SetTranslation((-self.matrix.T @ np.asarray(self.translation)).tolist())
        return inverse


def _lps_ras_4x4() -> np.ndarray:
    return np.diag([*_LPS_RAS_FLIP, 1.0])


def grid_of_ijk_to_ras(ijk_to_ras: np.ndarray, size_zyx: Sequence[int]) -> VoxelGrid:
    """The grid of a Slicer volume of shape `size_zyx` (its array's shape) and IJK-to-RAS matrix."""
    ijk_to_lps = _lps_ras_4x4() @ np.asarray(ijk_to_ras, dtype=float)
    spacing = np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
    if np.any(spacing <= 0):
        raise ValueError(f"the volume's IJK-to-RAS matrix has a zero axis: {np.asarray(ijk_to_ras).tolist()}")
    return VoxelGrid(tuple(ijk_to_lps[:3, 3].tolist()), tuple(spacing.tolist()), int3(int(n) for n in size_zyx),
                     tuple((ijk_to_lps[:3, :3] / spacing).reshape(-1).tolist()))


def ijk_to_ras_of(grid: VoxelGrid) -> np.ndarray:
    """The 4x4 IJK-to-RAS matrix that places a Slicer volume on `grid`."""
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = grid.matrix * np.asarray(grid.spacing_xyz)
    ijk_to_lps[:3, 3] = grid.origin_lps
    return _lps_ras_4x4() @ ijk_to_lps
