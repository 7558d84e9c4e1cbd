"""Finding a nodule of one scan in another scan of the same patient, or saying that it is not there.

1. The nodule is segmented in the scan it was pointed at: its centre and size (a point beside it is
   enough; a point on no nodule is refused).
2. The lungs' registration carries the centre into the other scan (`registered_lps`).
3. The nodule's neighbourhood (LOCAL_MM around it: vessels, fissures, the pleura), the nodule itself
   left out since it may have grown, shrunk or gone, is aligned between the scans by a translation: the
   registration's local error, from breathing that is not quite affine (`aligned_lps`).
4. The nodule is segmented in the other scan from there: its centroid is the match (`centre_lps`); no
   nodule there (only lung, a vessel, the wall, something found beside the place rather than on it,
   or something under half the nodule's size that does not cover the place) is "not present".
A registration whose lungs do not overlap, a neighbourhood that does not correlate after alignment, or an
alignment that moved too far leave it undecided, with the reason, rather than a confident wrong match.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np
import SimpleITK as sitk

from ..geometry import PointsLike, VoxelGrid
from ..measure.segmentation import NoduleSegmentation, NoNoduleError, segment_nodule
from ..preprocessing import sample_in_scan
from .registration import LungRegistration, best_grid_shift, fit_transform

FOUND, NOT_PRESENT = "found", "not present"
LOCAL_MM = 25.0  # half-size of the neighbourhood aligned around the nodule
LOCAL_VOXEL_MM = 1.0
NODULE_MARGIN_MM = 4.0  # the nodule and this much around it are left out of the local alignment,
GROWTH_ROOM_MM = 16.0  # and at least this radius: room for a nodule grown to 30 mm in the other scan
MIN_CORRELATION = 0.5  # a neighbourhood correlating less than this after alignment is not the same place
MAX_LOCAL_MM = 12.0  # a local alignment moving further than this has locked onto something else
SEARCH_STEP_MM = 3.0  # the local alignment tries every shift of this step within MAX_LOCAL_MM, then refines
NEAR_MM = 20.0  # a shift's mismatch counts 1 + (shift / NEAR_MM)^2 times: a far shift must fit clearly better
CHANGE_HU = 400.0  # the scans differing by this much over a region more than 2 * CHANGE_MM across have changed
CHANGE_MM = 3.0  # there (a neighbouring nodule grew or went): such a region is left out of the local alignment
EDGE_MM = 5.0  # a registered centre within this of the other scan's edge (or beyond it) is not looked for
ON_NODULE_MM = 1.0  # the aligned position must lie on what is found (within its radius and this): else it is
                    # a vessel or another nodule beside an empty place (the segmentation seeds up to 3 mm away)
SMALLER = 0.5  # what is found under this share of the nodule's diameter must hold the aligned position itself


@dataclass(frozen=True)
class NoduleMatch:
    """Where a nodule of the source scan is in the target scan (LPS mm of each scan)."""

    status: str  # FOUND, NOT_PRESENT, or why it could not be decided
    source_lps: Optional[np.ndarray]  # the nodule's centre in the source scan (None: no nodule at the point)
    registered_lps: Optional[np.ndarray] = None  # where the lungs' registration alone puts it in the target
    aligned_lps: Optional[np.ndarray] = None  # after aligning the nodule's neighbourhood
    centre_lps: Optional[np.ndarray] = None  # the nodule found in the target (FOUND only)
    note: str = ""  # why it is not present, or what to check about a found one
    correlation: float = float("nan")  # of the neighbourhoods after alignment

    @property
    def found(self) -> bool:
        return self.status == FOUND

    @property
    def moved_mm(self) -> Optional[float]:
        """How far the found centre lies from where the registration alone put it."""
        if self.centre_lps is None or self.registered_lps is None:
            return None
        return float(np.linalg.norm(self.centre_lps - self.registered_lps))


def match_nodule(source: sitk.Image, point_lps: PointsLike, target: sitk.Image,
                 registration: LungRegistration) -> NoduleMatch:
    """The nodule at `point_lps` of `source` found in `target`; `registration` maps source points to target."""
    try:
        nodule = segment_nodule(source, point_lps)
    except NoNoduleError as exc:
        return NoduleMatch(f"no nodule to follow at the given point: {exc}", None)
    start = nodule.centre_lps
    if not registration.aligned:
        return NoduleMatch(registration.problem(), start)
    registered = registration.to_moving(start)
    beyond = _beyond_edge_mm(target, registered)
    if beyond > -EDGE_MM:
        where = "outside" if beyond > 0 else "at the edge of"
        return NoduleMatch(f"it would lie {where} the other scan's field of view", start, registered)
    shift, correlation = _align_neighbourhood(source, target, registration, nodule)
    aligned = registration.to_moving(start + shift)
    undecided = dict(source_lps=start, registered_lps=registered, aligned_lps=aligned, correlation=correlation)
    if not correlation >= MIN_CORRELATION:
        return NoduleMatch(f"its neighbourhood does not match in the other scan (correlation {correlation:.2f} "
                           "after alignment): another patient, or a region changed too much", **undecided)
    if np.linalg.norm(shift) > MAX_LOCAL_MM:
        return NoduleMatch(f"the local alignment moved {np.linalg.norm(shift):.0f} mm from the registration: "
                           "place the point by hand", **undecided)
    try:
        found = segment_nodule(target, aligned)
    except NoNoduleError as exc:
        return NoduleMatch(NOT_PRESENT, note=str(exc), **undecided)
    distance = float(np.linalg.norm(found.centre_lps - aligned))
    small = _radius_mm(found) < SMALLER * _radius_mm(nodule)
    if distance > _radius_mm(found) + ON_NODULE_MM or (small and not _holds(found, aligned)):
        # beside where it should be, not on it: a vessel or another nodule; or a vessel's cross-section
        # beside the place of a nodule that has gone
        return NoduleMatch(NOT_PRESENT, note=f"only a {2 * _radius_mm(found):.0f} mm structure {distance:.1f} mm "
                           f"from where the {2 * _radius_mm(nodule):.0f} mm nodule should be", **undecided)
    return NoduleMatch(FOUND, centre_lps=found.centre_lps, **undecided)


def _holds(nodule: NoduleSegmentation, point_lps: np.ndarray) -> bool:
    """Whether `point_lps` lies inside the nodule's mask."""
    index = np.round(nodule.grid.lps_to_index_zyx(point_lps)).astype(int)
    inside = np.all((index >= 0) & (index < np.asarray(nodule.whole.shape)))
    return bool(inside and nodule.whole[tuple(index)])


def _radius_mm(nodule: NoduleSegmentation) -> float:
    """The radius of the sphere as large as the nodule's mask."""
    return float((3.0 * nodule.whole.sum() * nodule.voxel_mm ** 3 / (4.0 * np.pi)) ** (1.0 / 3.0))


def _beyond_edge_mm(image: sitk.Image, point_lps: np.ndarray) -> float:
    """How far `point_lps` lies beyond the scan's outermost voxel centres (negative: inside, by that much)."""
    grid = VoxelGrid.of_image(image)
    index = grid.lps_to_index_zyx(point_lps)
    spacing = np.asarray(grid.spacing_xyz[::-1])
    inside = np.minimum(index, np.asarray(grid.size_zyx) - 1 - index) * spacing
    return float(-inside.min())


def _align_neighbourhood(source: sitk.Image, target: sitk.Image, registration: LungRegistration,
                         nodule: NoduleSegmentation):
    """The translation (source mm) that best aligns the nodule's neighbourhood, the nodule left out, and the
    correlation of the two neighbourhoods after it (where both scans see)."""
    n = int(round(2 * LOCAL_MM / LOCAL_VOXEL_MM)) + 1
    grid = VoxelGrid.centred(nodule.centre_lps, (n, n, n), (LOCAL_VOXEL_MM,) * 3)
    source_hu, source_seen = sample_in_scan(source, grid)
    target_hu, target_seen = sample_in_scan(target, grid, registration.transform)
    seen = source_seen & target_seen
    fixed_hu = np.clip(source_hu, -1000.0, 100.0)
    changed = _changed(fixed_hu, np.clip(target_hu, -1000.0, 100.0), grid)
    # the target sampled wider by the search's reach, so that every shift tried compares the whole neighbourhood
    # (a shift that left part of it outside would be judged on what remains, and run on to a sliver)
    margin = int(round((MAX_LOCAL_MM + SEARCH_STEP_MM) / LOCAL_VOXEL_MM))
    wide_grid = VoxelGrid.centred(nodule.centre_lps, (n + 2 * margin,) * 3, (LOCAL_VOXEL_MM,) * 3)
    moving = wide_grid.image(np.clip(sample_in_scan(target, wide_grid, registration.transform)[0], -1000.0, 100.0))
    points = grid.index_zyx_to_lps(np.indices(grid.size_zyx).reshape(3, -1).T)
    away = np.linalg.norm(points - nodule.centre_lps, axis=1) > max(_radius_mm(nodule) + NODULE_MARGIN_MM,
                                                                     GROWTH_ROOM_MM)
    keep = away.reshape(grid.size_zyx) & seen & ~changed
    fixed, mask = grid.image(fixed_hu), grid.image(keep.astype(np.uint8))
    # every shift of SEARCH_STEP_MM within MAX_LOCAL_MM, then gradient descent on 2 mm voxels (the segmentation
    # centres the nodule)
    step = int(round(SEARCH_STEP_MM / LOCAL_VOXEL_MM))
    reach = [int(round(MAX_LOCAL_MM / SEARCH_STEP_MM))] * 3
    coarse = sitk.TranslationTransform(3, best_grid_shift(fixed, moving, keep, sitk.TranslationTransform(3), step,
                                                          reach, SEARCH_STEP_MM - LOCAL_VOXEL_MM, NEAR_MM).tolist())
    translation = sitk.TranslationTransform(fit_transform(fixed, moving, mask, coarse, shrink=(2,)))
    shift = np.asarray(translation.GetOffset())
    aligned = sitk.GetArrayFromImage(sitk.Resample(moving, fixed, translation, sitk.sitkLinear, -1000.0))
    a, b = fixed_hu[keep], aligned[keep]
    correlation = float(np.corrcoef(a, b)[0, 1]) if a.size > 1 and a.std() > 0 and b.std() > 0 else 0.0
    return shift, correlation


def _changed(fixed_hu: np.ndarray, moving_hu: np.ndarray, grid: VoxelGrid) -> np.ndarray:
    """Where the registered scans differ by more than CHANGE_HU over a region more than 2 * CHANGE_MM across
    (a neighbouring nodule that grew, appeared or resolved), and CHANGE_MM around it: left out of the local
    alignment, which it would otherwise pull aside. The thinner differences of a few millimetres' misalignment
    (vessel and wall edges) are what the alignment is for, and stay."""
    differs = grid.image((np.abs(fixed_hu - moving_hu) > CHANGE_HU).astype(np.uint8))
    radius = [int(round(CHANGE_MM / LOCAL_VOXEL_MM))] * 3
    blobs = sitk.BinaryDilate(sitk.BinaryMorphologicalOpening(differs, radius, sitk.sitkBall), radius, sitk.sitkBall)
    return sitk.GetArrayFromImage(blobs).astype(bool)
