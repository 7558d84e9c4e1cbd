"""One synthetic patient end to end: who they are, their chest, their nodules, their scans (two, or more)."""

from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from ..geometry import VoxelGrid, float3, int3
from .anatomy import Anatomy
from .nodules import Nodule, place_nodules
from .population import PatientSpec, sample_patient
from .scanner import (
    SLICE_THICKNESSES,
    Acquisition,
    FollowUpMotion,
    acquire,
    in_view,
    sample_acquisition,
    sample_follow_up,
    sample_pose,
    scan_corners_body,
)

TIMEPOINTS = ("T0", "T1")


def scan_names(scans: int) -> Tuple[str, ...]:
    """T0, T1, ... for a patient's `scans` scans."""
    return tuple(f"T{k}" for k in range(scans))
BODY_GRID_MM = {"small": 0.7, "full": 1.0}  # in-plane resolution the anatomy is drawn at before each scan samples it


@dataclass
class SyntheticPatient:
    spec: PatientSpec
    anatomy: Anatomy
    nodules: List[Nodule]
    acquisitions: Dict[str, Acquisition]
    images: Dict[str, sitk.Image]

    def nodule_center_body(self, nodule: Nodule, timepoint: str) -> np.ndarray:
        """Where the nodule is in the body frame as the patient breathed at that scan."""
        assert nodule.center_body is not None  # the patient's nodules are placed (`place_nodules`)
        return self.anatomy.breathed(np.asarray(nodule.center_body), self.acquisitions[timepoint].breath)

    def nodule_center_lps(self, nodule: Nodule, timepoint: str) -> np.ndarray:
        """Where the nodule is in that scan's physical (scanner LPS) space."""
        return self.acquisitions[timepoint].pose.apply(self.nodule_center_body(nodule, timepoint))

    def landmark_lps(self, name: str, timepoint: str) -> np.ndarray:
        acquisition = self.acquisitions[timepoint]
        return acquisition.pose.apply(self.anatomy.breathed(self.anatomy.landmarks()[name], acquisition.breath))


def synthesize_patient(seed: int, index: int, size: str = "small", slice_mm: Sequence[float] = SLICE_THICKNESSES,
                       motion: Optional[FollowUpMotion] = None, scans: int = 2,
                       resolved: bool = False) -> SyntheticPatient:
    """Patient `index` of the cohort with this seed: the same result whatever else is generated. Its `scans`
    scans (T0, T1, ..., one screening interval apart) have slice thicknesses drawn from `slice_mm`; each
    follow-up's pose and breath come from `motion` (None: the usual few mm and degrees from the previous
    scan, the same breath). `resolved`: every nodule gone by the first follow-up (nodules absent there, for
    the matching benchmark)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    spec = sample_patient(rng, pid=f"SYN{index + 1:05d}")
    if resolved:
        spec = replace(spec, nodules=[replace(n, diameter_t1=0.0, solid_fraction_t1=0.0, course="resolves")
                                      for n in spec.nodules])
    anatomy = Anatomy.sample(rng, emphysema=spec.emphysema)

    if size == "small":  # a crop around where the nodules will be
        center = anatomy.random_lung_point(rng, upper=spec.nodules[0].wanted_upper_lobe, margin_mm=12.0)
    else:  # the whole chest
        center = np.array([0.0, anatomy.body_center_y, (anatomy.lung_top_z + anatomy.lung_base_z) / 2.0])
    z_extent = anatomy.lung_top_z - anatomy.lung_base_z + 50.0
    baseline = pose = sample_pose(rng)
    breath = 1.0
    timepoints = scan_names(scans)
    acquisitions = {}
    for timepoint in timepoints:
        acquisitions[timepoint] = sample_acquisition(rng, size, pose, anatomy.breathed(center, breath), z_extent,
                                                     slice_mm, breath)
        if motion is None:
            pose = sample_pose(rng, previous=pose)
        else:
            pose, breath = sample_follow_up(rng, baseline, motion)

    # the body grid holds every scan's voxels both as breathed and as at baseline (what `breathe` resamples)
    corners = np.concatenate([np.concatenate([seen, anatomy.breathed(seen, 1.0 / a.breath)])
                              for a in acquisitions.values() for seen in [scan_corners_body(a)]])
    low, high = corners.min(axis=0) - 3.0, corners.max(axis=0) + 3.0
    in_plane = BODY_GRID_MM[size]
    thinnest = min(a.grid.spacing_xyz[2] for a in acquisitions.values())
    spacing = np.array([in_plane, in_plane, float(np.clip(thinnest / 2.0, in_plane, 1.25))])  # half a slice in z
    grid_size = int3(int(n) for n in np.ceil((high - low) / spacing)[::-1] + 1)
    body_grid = VoxelGrid(tuple(low.tolist()), tuple(spacing.tolist()), grid_size)
    hu, lung = anatomy.render(body_grid)
    depth = sitk.GetArrayFromImage(
        sitk.SignedMaurerDistanceMap(body_grid.image(lung.astype(np.uint8)), insideIsPositive=True,
                                     squaredDistance=False, useImageSpacing=True)
    )
    depth[~lung] = 0.0

    def seen_by_all(points: np.ndarray) -> np.ndarray:
        return np.logical_and.reduce([in_view(a, anatomy.breathed(points, a.breath), margin_mm=20.0)
                                      for a in acquisitions.values()])

    nodules = place_nodules(spec.nodules, rng, body_grid, depth, anatomy.upper_lobe, anatomy.vessels, seen_by_all,
                            timepoints)
    patient = SyntheticPatient(spec, anatomy, nodules, acquisitions, {})
    for timepoint in timepoints:
        volume = anatomy.breathe(hu, body_grid, acquisitions[timepoint].breath)
        for nodule in nodules:  # a nodule moves with the breath but keeps its shape
            replace(nodule, center_body=float3(float(c) for c in patient.nodule_center_body(nodule, timepoint))).paint(
                volume, body_grid, timepoint)
        patient.images[timepoint] = acquire(body_grid.image(volume), acquisitions[timepoint], rng)
    return patient
