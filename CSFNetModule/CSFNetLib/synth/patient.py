"""One synthetic patient end to end: who they are, their chest, their nodules, their two scans."""

from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np
import SimpleITK as sitk

from ..geometry import VoxelGrid, int3
from .anatomy import Anatomy
from .nodules import Nodule, place_nodules
from .population import PatientSpec, sample_patient
from .scanner import SLICE_THICKNESSES, Acquisition, acquire, body_box, in_view, sample_acquisition, sample_pose

TIMEPOINTS = ("T0", "T1")
BODY_GRID_MM = {"small": 0.7, "full": 1.0}  # in-plane resolution the anatomy is drawn at before each scan samples it


@dataclass
class SyntheticPatient:
    spec: PatientSpec
    anatomy: Anatomy
    nodules: List[Nodule]
    acquisitions: Dict[str, Acquisition]
    images: Dict[str, sitk.Image]

    def nodule_center_lps(self, nodule: Nodule, timepoint: str) -> np.ndarray:
        """Where the nodule is in that scan's physical (scanner LPS) space."""
        assert nodule.center_body is not None  # the patient's nodules are placed (`place_nodules`)
        return self.acquisitions[timepoint].pose.apply(nodule.center_body)

    def landmark_lps(self, name: str, timepoint: str) -> np.ndarray:
        return self.acquisitions[timepoint].pose.apply(self.anatomy.landmarks()[name])


def synthesize_patient(seed: int, index: int, size: str = "small",
                       slice_mm: Sequence[float] = SLICE_THICKNESSES) -> SyntheticPatient:
    """Patient `index` of the cohort with this seed: the same result whatever else is generated. Its scans'
    slice thicknesses are drawn from `slice_mm`."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    spec = sample_patient(rng, pid=f"SYN{index + 1:05d}")
    anatomy = Anatomy.sample(rng, emphysema=spec.emphysema)

    if size == "small":  # a crop around where the nodules will be
        center = anatomy.random_lung_point(rng, upper=spec.nodules[0].wanted_upper_lobe, margin_mm=12.0)
    else:  # the whole chest
        center = np.array([0.0, anatomy.body_center_y, (anatomy.lung_top_z + anatomy.lung_base_z) / 2.0])
    z_extent = anatomy.lung_top_z - anatomy.lung_base_z + 50.0
    pose = sample_pose(rng)
    acquisitions = {}
    for timepoint in TIMEPOINTS:
        acquisitions[timepoint] = sample_acquisition(rng, size, pose, center, z_extent, slice_mm)
        pose = sample_pose(rng, previous=pose)

    low, high = body_box(acquisitions.values())
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

    def seen_by_both(points: np.ndarray) -> np.ndarray:
        return np.logical_and.reduce([in_view(a, points, margin_mm=20.0) for a in acquisitions.values()])

    nodules = place_nodules(spec.nodules, rng, body_grid, depth, anatomy.upper_lobe, anatomy.vessels, seen_by_both)
    images = {}
    for timepoint in TIMEPOINTS:
        volume = hu.copy()
        for nodule in nodules:
            nodule.paint(volume, body_grid, timepoint)
        images[timepoint] = acquire(body_grid.image(volume), acquisitions[timepoint], rng)
    return SyntheticPatient(spec, anatomy, nodules, acquisitions, images)
