"""Registering two CT scans of one patient on their lungs (rigid).

Between two visits a patient lies a few degrees and centimetres differently and breathes in to another
depth, which changes the lungs' height by a few per cent. Both scans are smoothed and resampled to
COARSE_MM cubes, their HU clipped to the lung window, and aligned where the lungs are (the lungs and
10 mm around them: the chest wall and mediastinum, not the table or the arms): the smaller field of view
within the larger, every shift of 9 mm around the lungs' centres of mass tried, then a rigid fit. What a
breath leaves (up to about 8 mm at the lung bases) is taken up around each nodule (`match.nodule`); an
affine stage was tried and left out: on cropped fields of view it drifted (scales of 0.5-1.2) where the
rigid fit did not. One registration serves every nodule of the pair, in both directions.
"""

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from ..geometry import PointsLike, VoxelGrid, as_lps_point, float3, int3

COARSE_MM = 3.0  # the registration's voxel: vessels blur away, lungs, walls and the largest vessels stay
AIR_HU = -400.0  # lung and air lie below this
OUTSIDE_AIR_HU = -950.0  # air outside the body, smoothed; lung tissue (smoothed) stays above it
MIN_LUNG_ML = 50.0  # less lung-like air than this is not a chest scan (or shows too little lung to align)
WINDOW_HU = (-1000.0, 100.0)  # lung to soft tissue: what the alignment compares
MARGIN_MM = 10.0  # around the lungs, the walls they are aligned by
SEARCH_MM = (27.0, 27.0, 54.0)  # shifts (x, y, z) tried around the lungs' centres of mass,
SEARCH_STEP_MM = 9.0  # in steps of this
MIN_OVERLAP = 0.8  # lungs overlapping less than this after registration (Dice) mean the pair did not align
MIN_LUNG_CORRELATION = 0.5  # the lungs' insides (vessels at 3 mm) correlating less than this: another patient's


class NoLungError(ValueError):
    """A scan with no lungs (or too little of them) to register on."""


@dataclass(frozen=True)
class LungRegistration:
    """Maps points of the `fixed` scan to the `moving` scan (LPS mm), and how well the lungs agree after it."""

    transform: sitk.Transform  # fixed -> moving points (SimpleITK's registration convention)
    lung_overlap: float  # Dice of the two lung masks after registration, where both scans see
    seconds: float
    lung_correlation: float = 1.0  # of the two scans' HU inside the lungs after it, on 3 mm voxels: the vessel
                                   # tree lines up in scans of one patient (0.70-0.90), not across patients

    def to_moving(self, point_lps: PointsLike) -> np.ndarray:
        return np.asarray(self.transform.TransformPoint(as_lps_point(point_lps).tolist()))

    def reversed(self) -> "LungRegistration":
        """The same registration mapping the moving scan's points to the fixed scan."""
        return LungRegistration(self.transform.GetInverse(), self.lung_overlap, self.seconds, self.lung_correlation)

    @property
    def aligned(self) -> bool:
        return self.lung_overlap >= MIN_OVERLAP and self.lung_correlation >= MIN_LUNG_CORRELATION

    def problem(self) -> str:
        """Why the pair cannot be trusted, or ''."""
        if self.lung_overlap < MIN_OVERLAP:
            return (f"the scans do not align (their lungs overlap {100 * self.lung_overlap:.0f} % after "
                    "registration): scans of other patients, or fields of view too different")
        if self.lung_correlation < MIN_LUNG_CORRELATION:
            return (f"the scans' lungs do not match inside (their vessels correlate {self.lung_correlation:.2f} "
                    "after registration): scans of other patients?")
        return ""


def register_lungs(fixed: sitk.Image, moving: sitk.Image, what: Tuple[str, str] = ("fixed scan", "moving scan")
                   ) -> LungRegistration:
    """The rigid map from `fixed` to `moving` found on their lungs. NoLungError names the scan (from `what`)
    that has too little lung."""
    started = time.perf_counter()
    fixed_hu, moving_hu = _coarse(fixed), _coarse(moving)
    lungs = _lungs(fixed_hu, what[0]), _lungs(moving_hu, what[1])
    if _field_ml(fixed_hu) > _field_ml(moving_hu):  # align the smaller field of view within the larger one
        transform, overlap, correlation = _register(moving_hu, fixed_hu, lungs[1], lungs[0])
        transform = transform.GetInverse()
    else:
        transform, overlap, correlation = _register(fixed_hu, moving_hu, *lungs)
    return LungRegistration(transform, overlap, time.perf_counter() - started, correlation)


def _register(fixed_hu: sitk.Image, moving_hu: sitk.Image, fixed_lung: sitk.Image, moving_lung: sitk.Image):
    """The rigid transform from fixed to moving points, and the lungs' overlap after it."""
    fixed, moving = (sitk.Clamp(hu, sitk.sitkFloat32, *WINDOW_HU) for hu in (fixed_hu, moving_hu))
    region = sitk.BinaryDilate(fixed_lung, [int(np.ceil(MARGIN_MM / COARSE_MM))] * 3, sitk.sitkBall)
    centred = sitk.CenteredTransformInitializer(fixed_lung, moving_lung, sitk.Euler3DTransform(),
                                                sitk.CenteredTransformInitializerFilter.MOMENTS)
    # fields of view that differ move the lungs' centres of mass: every shift around theirs is tried
    step = int(round(SEARCH_STEP_MM / COARSE_MM))
    reach = [int(round(r / SEARCH_STEP_MM)) for r in SEARCH_MM]
    offset = np.asarray(centred.GetTranslation()) + best_grid_shift(
        fixed, moving, sitk.GetArrayViewFromImage(region) > 0, sitk.TranslationTransform(3, centred.GetTranslation()),
        step, reach, smooth_mm=SEARCH_STEP_MM - COARSE_MM)
    best = sitk.Euler3DTransform(centred.GetCenter(), 0.0, 0.0, 0.0, offset.tolist())
    rigid = sitk.Euler3DTransform(fit_transform(fixed, moving, region, best, shrink=(2,)))
    if mismatch(fixed, moving, region, rigid) < mismatch(fixed, moving, region, best):
        best = rigid  # the descent can end worse than it started where the fields of view differ
    return best, _overlap(fixed_lung, moving_lung, best), _lung_correlation(fixed_hu, moving_hu, fixed_lung, best)


def _lung_correlation(fixed_hu: sitk.Image, moving_hu: sitk.Image, fixed_lung: sitk.Image,
                      transform: sitk.Transform) -> float:
    """The correlation of the two coarse scans' HU inside the fixed scan's lungs after `transform`, where the
    moving scan sees."""
    moved = sitk.GetArrayFromImage(sitk.Resample(moving_hu, fixed_hu, transform, sitk.sitkLinear, float("nan")))
    inside = (sitk.GetArrayViewFromImage(fixed_lung) > 0) & ~np.isnan(moved)
    a, b = sitk.GetArrayViewFromImage(fixed_hu)[inside], moved[inside]
    return float(np.corrcoef(a, b)[0, 1]) if a.size > 1 and a.std() > 0 and b.std() > 0 else 0.0


def _field_ml(image: sitk.Image) -> float:
    return float(np.prod(image.GetSize()) * np.prod(image.GetSpacing())) / 1000.0


def _coarse(image: sitk.Image) -> sitk.Image:
    """The scan averaged, smoothed and resampled to COARSE_MM cubes on its own axes (float32 HU)."""
    grid = VoxelGrid.of_image(image)
    extent = np.asarray(grid.size_xyz) * np.asarray(grid.spacing_xyz)
    size = [max(2, int(np.ceil(e / COARSE_MM))) for e in extent]
    bins = [max(1, int(COARSE_MM // s)) for s in grid.spacing_xyz]  # whole voxels averaged first: cheaper to smooth
    smooth = sitk.SmoothingRecursiveGaussian(sitk.BinShrink(sitk.Cast(image, sitk.sitkFloat32), bins), COARSE_MM / 2.0)
    origin = grid.index_zyx_to_lps((-0.5, -0.5, -0.5)) + grid.matrix @ np.full(3, COARSE_MM / 2.0)
    return sitk.Resample(smooth, size, sitk.Transform(), sitk.sitkLinear, origin.tolist(), [COARSE_MM] * 3,
                         image.GetDirection(), WINDOW_HU[0], sitk.sitkFloat32)


def _lungs(hu: sitk.Image, what: str) -> sitk.Image:
    """The lungs (and airways) of a coarse scan: what lies below AIR_HU, less the air around the body.

    The air around the body is air-dark (below OUTSIDE_AIR_HU, which lung tissue stays above) and reaches
    the scan's in-plane border; a scan cropped inside the chest has lungs reaching its border too, told
    apart by their level.
    """
    dark = sitk.GetArrayFromImage(sitk.ConnectedComponent(hu < OUTSIDE_AIR_HU))
    sides = np.unique(np.concatenate([dark[:, [0, -1], :].ravel(), dark[:, :, [0, -1]].ravel()]))
    outside = sitk.GetImageFromArray(np.isin(dark, sides[sides > 0]).astype(np.uint8))
    outside.CopyInformation(hu)
    outside = sitk.BinaryDilate(outside, [1, 1, 1])  # and its partial-volume rim at the skin
    lungs = sitk.And(sitk.Cast(hu < AIR_HU, sitk.sitkUInt8), sitk.Not(outside))
    millilitres = float(sitk.GetArrayViewFromImage(lungs).sum()) * COARSE_MM ** 3 / 1000.0
    if millilitres < MIN_LUNG_ML:
        raise NoLungError(f"{what}: no lungs to register on ({millilitres:.0f} ml of lung-like air below "
                          f"{AIR_HU:g} HU inside the body; at least {MIN_LUNG_ML:g} ml needed)")
    return lungs


def best_grid_shift(fixed: sitk.Image, moving: sitk.Image, region: np.ndarray, start: sitk.Transform, step: int,
                    reach: Sequence[int], smooth_mm: float, near_mm: Optional[float] = None) -> np.ndarray:
    """The shift (LPS mm, after `start`) among every `step` voxels of `fixed`'s grid within `reach` steps along
    each axis (x, y, z) with the least mean squared difference between `fixed` at every `step`-th voxel of
    `region` (z, y, x) and `moving` mapped through `start`, both smoothed by `smooth_mm`. With `near_mm` each
    mismatch is weighed by 1 + (shift / near_mm)^2: of shifts that fit about as well, the shortest.

    `moving` is resampled once onto `fixed`'s grid widened by the reach, so each shift is a lookup per point
    (no interpolation, no per-shift set-up); points that a shift takes off the moving scan do not count."""
    grid = VoxelGrid.of_image(fixed)
    margin = np.asarray(reach[::-1]) * step  # z, y, x
    size = np.asarray(grid.size_zyx) + 2 * margin
    wide = VoxelGrid(float3(grid.index_zyx_to_lps(-margin).tolist()), grid.spacing_xyz,
                     int3(int(n) for n in size), grid.direction)
    fixed_hu = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(fixed, smooth_mm))
    moved = sitk.Resample(sitk.SmoothingRecursiveGaussian(moving, smooth_mm), wide.image(np.zeros(size, np.float32)),
                          start, sitk.sitkLinear, float("nan"), sitk.sitkFloat32)
    moving_hu = sitk.GetArrayFromImage(moved).ravel()
    sampled = np.zeros(region.shape, bool)
    sampled[::step, ::step, ::step] = True
    points = np.argwhere(region & sampled)
    if not len(points):
        return np.zeros(3)
    values = fixed_hu[tuple(points.T)]
    strides = np.array([wide.size_zyx[1] * wide.size_zyx[2], wide.size_zyx[2], 1])
    base = (points + margin) @ strides
    shifts = np.array([(z, y, x) for z in range(-reach[2], reach[2] + 1) for y in range(-reach[1], reach[1] + 1)
                       for x in range(-reach[0], reach[0] + 1)]) * step
    errors = np.full(len(shifts), np.inf)
    for i, shift in enumerate(shifts):
        differences = values - moving_hu[base + shift @ strides]
        seen = ~np.isnan(differences)
        if seen.mean() >= 0.5:  # most of the region still on the moving scan
            errors[i] = float(np.mean(differences[seen] ** 2))
    millimetres = grid.matrix @ (shifts[:, ::-1] * np.asarray(grid.spacing_xyz)).T  # (3, shifts) LPS
    if near_mm is not None:
        errors = errors * (1.0 + (np.linalg.norm(millimetres, axis=0) / near_mm) ** 2)
    return millimetres[:, int(np.argmin(errors))]


def fit_transform(fixed: sitk.Image, moving: sitk.Image, region: sitk.Image, start: sitk.Transform,
                  shrink: Tuple[int, ...]) -> sitk.Transform:
    """`start` optimised by gradient descent to map `fixed` onto `moving` within `region` (mean squared HU
    difference), at each shrink factor in turn (smoothed over the shrunk voxel)."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMeanSquares()
    method.SetMetricFixedMask(region)
    method.SetInterpolator(sitk.sitkLinear)
    voxel_mm = float(min(fixed.GetSpacing()))
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=0.001, numberOfIterations=300,
                                                    relaxationFactor=0.5)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(shrink))
    method.SetSmoothingSigmasPerLevel([voxel_mm * (factor - 1) for factor in shrink])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(start, inPlace=False)
    with _quiet_itk():
        result = method.Execute(fixed, moving)
    return result.GetNthTransform(0) if isinstance(result, sitk.CompositeTransform) else result


def mismatch(fixed: sitk.Image, moving: sitk.Image, region: sitk.Image, transform: sitk.Transform) -> float:
    """The mean squared HU difference within `region` after `transform`."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMeanSquares()
    method.SetMetricFixedMask(region)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetInitialTransform(transform, inPlace=False)
    with _quiet_itk():
        return float(method.MetricEvaluate(fixed, moving))


@contextmanager
def _quiet_itk() -> Iterator[None]:
    """ITK's warnings off while it runs: a shift tried by the search that leaves the other scan warns on stderr
    ("No valid points were found"), which is expected there and says nothing to a user."""
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def _overlap(fixed_lung: sitk.Image, moving_lung: sitk.Image, transform: sitk.Transform) -> float:
    """Dice of the lungs after registration, counted where the moving scan sees the fixed scan's voxels."""
    mapped = sitk.GetArrayFromImage(sitk.Resample(moving_lung, fixed_lung, transform, sitk.sitkNearestNeighbor, 0))
    seen = sitk.GetArrayFromImage(sitk.Resample(moving_lung * 0 + 1, fixed_lung, transform,
                                                sitk.sitkNearestNeighbor, 0)) > 0
    fixed = sitk.GetArrayViewFromImage(fixed_lung) > 0
    a, b = fixed & seen, (mapped > 0) & seen
    total = int(a.sum() + b.sum())
    return 2.0 * float((a & b).sum()) / total if total else 0.0
