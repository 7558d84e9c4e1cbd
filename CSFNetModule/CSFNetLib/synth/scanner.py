"""The CT scanner: where the patient lies, which grid is acquired, and the image it produces.

A scan is the patient's body-frame volume seen through a rigid pose (the patient lies a little
differently at each visit) and resampled onto the scan's own grid: in-plane spacing 0.6-0.9 mm,
slice thickness 1-2.5 mm, mostly axial, sometimes tilted (gantry tilt) or stored bottom-up. Then
a little blur (the scanner's point spread) and Gaussian noise of 20-40 HU SD.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from ..geometry import RigidTransform, VoxelGrid, rotation_matrix

SIZES = {"small": (100, 160, 160), "full": (None, 512, 512)}  # voxels (z, y, x); full: z follows the lungs
SLICE_THICKNESSES = (1.0, 1.25, 1.5, 2.0, 2.5)
HU_RANGE = (-1024, 3071)


@dataclass(frozen=True)
class Acquisition:
    """One scan's settings: where the patient lies (pose), the grid, blur and noise, and how deeply the
    patient breathed in (the lungs' height relative to the baseline scan, `Anatomy.breathed`)."""

    pose: RigidTransform  # (breathed) body frame -> scanner LPS
    grid: VoxelGrid  # scanner LPS
    blur_mm: float
    noise_sd: float
    breath: float = 1.0


@dataclass(frozen=True)
class FollowUpMotion:
    """How differently a patient lies at a follow-up than at the baseline: turned about a random axis by up
    to `rotation_deg`, moved in a random direction by up to `shift_mm`, the lungs' height scaled by a factor
    drawn from `breath` (a deeper or shallower breath)."""

    rotation_deg: float
    shift_mm: float
    breath: Tuple[float, float] = (1.0, 1.0)


#: `csfnet synth --motion`: "usual" is every cohort's default (a few degrees and mm from the previous scan,
#: the same breath); "large" is what a registration must survive (the matching benchmark).
MOTIONS: Dict[str, Optional[FollowUpMotion]] = {"usual": None, "large": FollowUpMotion(6.0, 25.0, (0.95, 1.05))}


def sample_follow_up(rng: np.random.Generator, baseline: RigidTransform, motion: FollowUpMotion
                     ) -> Tuple[RigidTransform, float]:
    """A follow-up's pose and breath under `motion`, relative to the baseline pose."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.radians(rng.uniform(0.0, motion.rotation_deg))
    cross = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    turn = np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * cross @ cross  # Rodrigues
    direction = rng.normal(size=3)
    shift = direction / np.linalg.norm(direction) * rng.uniform(0.0, motion.shift_mm)
    rotation = turn @ baseline.matrix
    translation = np.asarray(baseline.translation) + shift
    pose = RigidTransform(tuple(rotation.reshape(-1).tolist()), tuple(translation.tolist()))
    return pose, float(rng.uniform(*motion.breath))


def sample_pose(rng: np.random.Generator, previous: Optional[RigidTransform] = None) -> RigidTransform:
    """The patient's position on the table; a follow-up moves by a few mm and degrees from the last."""
    if previous is None:
        return RigidTransform.from_degrees(rng.uniform(-1.0, 1.0, 3), (rng.uniform(-10, 10), rng.uniform(-10, 10),
                                                                         rng.uniform(-250.0, -100.0)))
    delta = rotation_matrix(rng.uniform(-3.0, 3.0, 3))
    shift = rng.uniform(-6.0, 6.0, 3) + np.array([0.0, 0.0, rng.uniform(-30.0, 30.0)])
    rotation = delta @ previous.matrix
    translation = np.asarray(previous.translation) + shift
    return RigidTransform(tuple(rotation.reshape(-1).tolist()), tuple(translation.tolist()))


def sample_acquisition(
    rng: np.random.Generator, size: str, pose: RigidTransform, center_body: np.ndarray, z_extent_mm: float,
    slice_mm: Sequence[float] = SLICE_THICKNESSES, breath: float = 1.0,
) -> Acquisition:
    """A scan grid centred (within a few mm) on `center_body` (breathed) as the patient lies in `pose`, its
    slice thickness drawn from `slice_mm`."""
    in_plane = round(float(rng.uniform(0.6, 0.9)), 3)
    thickness = float(rng.choice(np.asarray(slice_mm, dtype=float)))
    nz, ny, nx = SIZES[size]
    if nz is None:
        nz = int(np.ceil(z_extent_mm / thickness))
    kind = rng.choice(["axial", "tilted", "bottom-up"], p=[0.7, 0.2, 0.1])
    if kind == "tilted":
        direction = rotation_matrix((rng.choice([-1, 1]) * rng.uniform(5.0, 15.0), 0.0, 0.0))
    elif kind == "bottom-up":
        direction = np.diag([1.0, 1.0, -1.0])
    else:
        direction = np.eye(3)
    center = pose.apply(center_body) + rng.normal(0.0, 4.0, 3)
    grid = VoxelGrid.centred(center, (nz, ny, nx), (in_plane, in_plane, thickness), direction)
    return Acquisition(pose, grid, blur_mm=float(rng.uniform(0.4, 0.8)), noise_sd=float(rng.uniform(20.0, 40.0)),
                       breath=breath)


def scan_corners_body(acquisition: Acquisition) -> np.ndarray:
    """The scan's eight corner voxels in the (breathed) body frame, (8, 3)."""
    return acquisition.pose.apply_inverse(acquisition.grid.corners_lps)


def in_view(acquisition: Acquisition, points_body: np.ndarray, margin_mm: float) -> np.ndarray:
    """Which body-frame points the scan sees at least `margin_mm` inside its edges."""
    grid = acquisition.grid
    index = grid.lps_to_index_zyx(acquisition.pose.apply(points_body))
    margin = margin_mm / np.asarray(grid.spacing_xyz[::-1])
    return np.all((index >= margin) & (index <= np.asarray(grid.size_zyx) - 1 - margin), axis=-1)


def acquire(body: sitk.Image, acquisition: Acquisition, rng: np.random.Generator) -> sitk.Image:
    """The scan as the scanner writes it: resampled through the pose, blurred, noisy, int16 HU."""
    grid = acquisition.grid
    reference = grid.image(np.zeros(grid.size_zyx, dtype=np.float32))
    seen = sitk.Resample(body, reference, acquisition.pose.inverse_for_resampling(), sitk.sitkLinear, -1000.0,
                         sitk.sitkFloat32)
    seen = sitk.SmoothingRecursiveGaussian(seen, acquisition.blur_mm)
    values = sitk.GetArrayFromImage(seen)
    values += rng.normal(0.0, acquisition.noise_sd, values.shape).astype(np.float32)
    image = grid.image(np.clip(np.round(values), *HU_RANGE).astype(np.int16))
    return image
