"""Shared test helpers: small CT volumes with chosen geometry, painted in physical space."""

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

# The suite runs against the source tree, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CSFNetModule"))


def rotation(z_deg: float = 0.0, y_deg: float = 0.0, x_deg: float = 0.0) -> np.ndarray:
    """A 3x3 rotation (applied about x, then y, then z)."""
    cz, sz = np.cos(np.radians(z_deg)), np.sin(np.radians(z_deg))
    cy, sy = np.cos(np.radians(y_deg)), np.sin(np.radians(y_deg))
    cx, sx = np.cos(np.radians(x_deg)), np.sin(np.radians(x_deg))
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    return rz @ ry @ rx


def voxel_centres_lps(size_xyz, spacing, origin, direction) -> np.ndarray:
    """Physical position of every voxel, shaped (z, y, x, 3): origin + D @ (spacing * index).

    Written out here, independently of the library, so the tests check its geometry against the
    definition rather than against itself.
    """
    k, j, i = np.meshgrid(*(np.arange(n) for n in size_xyz[::-1]), indexing="ij")
    index_xyz = np.stack([i, j, k], axis=-1).astype(float)
    return np.asarray(origin) + (index_xyz * np.asarray(spacing)) @ np.asarray(direction).reshape(3, 3).T


class Phantom:
    """A CT volume in HU with given geometry; spheres are painted at physical (LPS) points."""

    def __init__(self, size_xyz=(60, 60, 30), spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                 direction=None, background_hu=-800.0):
        self.size_xyz, self.spacing, self.origin = tuple(size_xyz), tuple(spacing), tuple(origin)
        self.direction = np.eye(3) if direction is None else np.asarray(direction, dtype=float)
        self.points = voxel_centres_lps(self.size_xyz, self.spacing, self.origin, self.direction)
        self.hu = np.full(self.points.shape[:3], background_hu, dtype=np.float32)

    def paint_sphere(self, center_lps, radius_mm: float, hu: float) -> "Phantom":
        inside = np.linalg.norm(self.points - np.asarray(center_lps), axis=-1) <= radius_mm
        self.hu[inside] = hu
        return self

    def paint_box(self, lo_lps, hi_lps, hu: float) -> "Phantom":
        inside = np.all((self.points >= np.asarray(lo_lps)) & (self.points <= np.asarray(hi_lps)), axis=-1)
        self.hu[inside] = hu
        return self

    @property
    def centre_lps(self) -> np.ndarray:
        return self.points[tuple(n // 2 for n in self.hu.shape)]

    def image(self, pixel_type=sitk.sitkInt16) -> sitk.Image:
        img = sitk.GetImageFromArray(np.round(self.hu).astype(np.int16) if pixel_type == sitk.sitkInt16 else self.hu)
        img.SetSpacing(self.spacing)
        img.SetOrigin(self.origin)
        img.SetDirection(self.direction.reshape(-1).tolist())
        return img


def bright_centroid(roi: np.ndarray, level: float) -> np.ndarray:
    """Intensity-weighted centroid (z, y, x) of the voxels above `level`."""
    weights = np.where(roi > level, roi - level, 0.0)
    grid = np.indices(roi.shape).reshape(3, -1)
    return (grid * weights.reshape(-1)).sum(axis=1) / weights.sum()


SYNTH_SEED, SYNTH_PATIENTS = 3, 6


@pytest.fixture(scope="session")
def synthetic_cohort(tmp_path_factory):
    """A small synthetic cohort on disk (cases.csv, clinical.csv, images/), shared by the test modules."""
    from CSFNetLib.synth import write_cohort

    out = tmp_path_factory.mktemp("synth") / "cohort"
    write_cohort(out, SYNTH_PATIENTS, SYNTH_SEED, "small", workers=2)
    return out


@pytest.fixture
def oblique_phantom() -> Phantom:
    """An anisotropic, rotated scan: in-plane 0.7 x 0.8 mm, 2 mm slices, rotated about all axes."""
    return Phantom(
        size_xyz=(110, 100, 40),
        spacing=(0.7, 0.8, 2.0),
        origin=(-30.0, 12.0, -250.0),
        direction=rotation(z_deg=20.0, y_deg=-8.0, x_deg=12.0),
    )
