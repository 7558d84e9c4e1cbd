"""From a CT scan in HU and a nodule point to the network's input: a 16 x 64 x 64 ROI in [0, 1].

The intensity transform follows the DSB2017 preprocessing the paper used: HU clipped to
[-1200, 600] and mapped linearly to [0, 1]; optionally the value 170/255 outside a dilated lung mask.
Which of these a model was trained with is a `Preprocessing` saved in its checkpoint.
"""

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import SimpleITK as sitk

from .geometry import PointsLike, VoxelGrid, as_lps_point
from .options import ROI_SIZE_ZYX


@dataclass(frozen=True)
class Preprocessing:
    """Everything that turns a scan and a point into a network input; travels with the weights."""

    roi_size_zyx: Tuple[int, int, int] = ROI_SIZE_ZYX
    spacing_mm: float = 1.0
    hu_min: float = -1200.0
    hu_max: float = 600.0
    fill_hu: float = -1000.0  # where the ROI leaves the scan: air
    lung_mask: bool = False
    outside_lung_value: float = 170.0 / 255.0
    lung_threshold_hu: float = -400.0
    lung_dilation_mm: float = 10.0

    def __post_init__(self) -> None:
        if len(self.roi_size_zyx) != 3 or any(int(s) < 1 for s in self.roi_size_zyx):
            raise ValueError(f"ROI size must be three positive voxel counts (z, y, x), got {self.roi_size_zyx}")
        if not self.spacing_mm > 0:
            raise ValueError(f"ROI spacing must be positive, got {self.spacing_mm} mm")
        if not self.hu_max > self.hu_min:
            raise ValueError(f"HU window must have hu_max > hu_min, got [{self.hu_min}, {self.hu_max}]")

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["roi_size_zyx"] = list(self.roi_size_zyx)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Preprocessing":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown preprocessing settings {unknown}; was this made by a newer version?")
        if "roi_size_zyx" in known:
            known["roi_size_zyx"] = tuple(int(s) for s in known["roi_size_zyx"])
        return cls(**known)


#: What a model trained without saying otherwise was trained with (the paper's DSB2017 settings).
DEFAULT_PREPROCESSING = Preprocessing()


def hu_to_unit(hu: np.ndarray, hu_min: float = DEFAULT_PREPROCESSING.hu_min,
               hu_max: float = DEFAULT_PREPROCESSING.hu_max) -> np.ndarray:
    """DSB2017 window: HU clipped to [hu_min, hu_max], mapped linearly to [0, 1] (float32)."""
    unit = (np.asarray(hu, dtype=np.float32) - np.float32(hu_min)) / np.float32(hu_max - hu_min)
    return np.clip(unit, 0.0, 1.0)


def apply_lung_mask(roi_unit: np.ndarray, mask: np.ndarray,
                    outside_value: float = DEFAULT_PREPROCESSING.outside_lung_value) -> np.ndarray:
    """Write `outside_value` wherever `mask` is zero (DSB2017 writes 170 of 255 outside the lungs)."""
    roi_unit = np.asarray(roi_unit, dtype=np.float32)
    if np.shape(mask) != roi_unit.shape:
        raise ValueError(f"lung mask shape {np.shape(mask)} does not match ROI shape {roi_unit.shape}")
    return np.where(np.asarray(mask) != 0, roi_unit, np.float32(outside_value)).astype(np.float32)


def lung_mask(image: sitk.Image, threshold_hu: float = DEFAULT_PREPROCESSING.lung_threshold_hu,
              dilation_mm: float = DEFAULT_PREPROCESSING.lung_dilation_mm) -> sitk.Image:
    """A dilated mask of the lungs: air-like regions inside the body, grown by `dilation_mm`.

    Air below `threshold_hu` that touches the in-plane border of the scan is outside the body and
    dropped; of what remains the two largest regions are kept (left and right lung, or one region
    when they touch), and components smaller than 1 % of the largest are ignored. Holes (vessels,
    nodules inside the lung) are filled and a closing takes in nodules at the lung's edge, so that a
    nodule is never masked out. A scan with no lung-like region is refused.
    """
    check_ct_image(image)
    components = sitk.ConnectedComponent(image < threshold_hu)
    labels = sitk.GetArrayViewFromImage(components)  # (k, j, i)
    slice_axis = _axis_closest_to_superior(image)  # array axis that runs head-foot
    in_plane = [a for a in range(3) if a != slice_axis]
    border = set()
    for axis in in_plane:
        border.update(np.unique(np.take(labels, [0, labels.shape[axis] - 1], axis=axis)).tolist())
    counts = np.bincount(labels.reshape(-1))
    candidates = [lab for lab in np.argsort(counts)[::-1] if lab != 0 and lab not in border]
    if not candidates:
        raise ValueError(
            f"no lung found in the scan (no region below {threshold_hu} HU inside the body); "
            "is it a chest CT in HU, and does the field of view hold the whole chest cross-section?"
        )
    keep = [lab for lab in candidates[:2] if counts[lab] >= 0.01 * counts[candidates[0]]]
    mask = sitk.GetImageFromArray(np.isin(labels, keep).astype(np.uint8))
    mask.CopyInformation(image)
    radius = [max(1, int(round(dilation_mm / s))) for s in image.GetSpacing()]
    mask = sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(mask, radius, sitk.sitkBall))
    return sitk.BinaryDilate(mask, radius, sitk.sitkBall)


def _axis_closest_to_superior(image: sitk.Image) -> int:
    """The numpy array axis (0 = k, 1 = j, 2 = i) whose direction is closest to LPS z."""
    itk_axis = int(np.argmax(np.abs(VoxelGrid.of_image(image).matrix[2, :])))  # column = image axis i, j, k
    return 2 - itk_axis


def check_ct_image(image: Any, what: str = "image") -> None:
    """Refuse anything that is not a single-component 3-D SimpleITK image, with a reason."""
    if not isinstance(image, sitk.Image):
        raise TypeError(f"{what} must be a SimpleITK.Image, got {type(image).__name__}")
    if image.GetDimension() != 3:
        raise ValueError(f"{what} must be 3-D, got a {image.GetDimension()}-D image of size {image.GetSize()}")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"{what} must have one value per voxel, got {image.GetNumberOfComponentsPerPixel()}")
    if image.GetPixelID() in (sitk.sitkComplexFloat32, sitk.sitkComplexFloat64):
        raise ValueError(f"{what} must hold real HU values, got {image.GetPixelIDTypeAsString()}")


def check_looks_like_hu(array: np.ndarray, what: str = "image") -> None:
    """Refuse intensities that are clearly not CT in HU: a chest CT always holds air or lung below -500.

    Looks at an evenly strided sample of at most about 64 voxels per axis, so it costs nothing on a full scan.
    """
    sample = np.asarray(array)[tuple(slice(None, None, max(1, n // 64)) for n in np.shape(array))]
    low = float(np.percentile(sample, 1)) if sample.size else float("nan")
    if not low <= -500.0:
        raise ValueError(f"{what} does not look like CT in HU: 99 % of its voxels are above {low:.0f} "
                         "(a chest CT holds air and lung below -500 HU)")
    if float(np.min(array)) == float(np.max(array)):
        raise ValueError(f"{what} is blank: every voxel is {float(np.min(array)):.0f} HU, not a CT scan")


def roi_grid(center_lps: PointsLike, preprocessing: Preprocessing = DEFAULT_PREPROCESSING) -> VoxelGrid:
    """The ROI's grid in physical space, as `extract_roi` samples it."""
    return VoxelGrid.centred(center_lps, preprocessing.roi_size_zyx, (preprocessing.spacing_mm,) * 3)


def resample_to_grid(image: sitk.Image, grid: VoxelGrid, interpolator: int, default_value: float,
                     transform: Optional[sitk.Transform] = None) -> np.ndarray:
    """Sample `image` on `grid` only (never the whole scan), the grid's points mapped by `transform` when
    given; returns a float32 (z, y, x) array."""
    resampled = sitk.Resample(
        image,
        grid.size_xyz,
        transform or sitk.Transform(),
        interpolator,
        grid.origin_lps,
        grid.spacing_xyz,
        grid.direction,
        float(default_value),
        sitk.sitkFloat32,
    )
    return sitk.GetArrayFromImage(resampled)


def sample_in_scan(image: sitk.Image, grid: VoxelGrid, transform: Optional[sitk.Transform] = None
                   ) -> Tuple[np.ndarray, np.ndarray]:
    """The scan's HU on `grid` (linear; air beyond the scan) and which grid voxels lie inside the scan."""
    hu = resample_to_grid(image, grid, sitk.sitkLinear, float("nan"), transform)  # nan: beyond the scan
    inside = ~np.isnan(hu)
    hu[~inside] = -1000.0
    return hu, inside


def extract_roi(
    image: sitk.Image,
    center_lps: PointsLike,
    preprocessing: Preprocessing = DEFAULT_PREPROCESSING,
    mask: Optional[sitk.Image] = None,
) -> np.ndarray:
    """The network input for one nodule at one time point: float32 (16, 64, 64) in [0, 1].

    `image` is a CT in HU with any geometry; `center_lps` the nodule centre in LPS mm. The ROI is
    sampled with linear interpolation on the patient-aligned 1 mm grid centred on the point; voxels
    outside the scan are air. When the preprocessing uses the lung mask, pass `mask` (from
    `lung_mask`, computed once per scan) or it is computed here.
    """
    check_ct_image(image)
    center = as_lps_point(center_lps)
    check_inside_scan(image, center)
    grid = roi_grid(center, preprocessing)
    hu = resample_to_grid(image, grid, sitk.sitkLinear, preprocessing.fill_hu)
    roi = hu_to_unit(hu, preprocessing.hu_min, preprocessing.hu_max)
    if preprocessing.lung_mask:
        if mask is None:
            mask = lung_mask(image, preprocessing.lung_threshold_hu, preprocessing.lung_dilation_mm)
        roi = apply_lung_mask(roi, resample_to_grid(mask, grid, sitk.sitkNearestNeighbor, 0.0),
                              preprocessing.outside_lung_value)
    return roi


def check_inside_scan(scan: Union[sitk.Image, VoxelGrid], center_lps: PointsLike) -> None:
    """A nodule centre must lie within the scan (up to half a voxel beyond its outer voxel centres).

    Given the image, a point outside it whose RAS reading (x and y negated) or voxel-index reading falls in
    the lungs (in the scan, when no lungs can be found in it) is named as such: the two commonest mistakes
    with nodule points. A mistaken point that still falls inside the scan cannot be told from a right one
    and goes through as given.
    """
    center_lps = as_lps_point(center_lps)
    grid = scan if isinstance(scan, VoxelGrid) else VoxelGrid.of_image(scan)
    if not _inside(grid, center_lps):
        index = grid.lps_to_index_zyx(center_lps)[::-1]
        hint = _coordinate_hint(scan, center_lps) if isinstance(scan, sitk.Image) else ""
        raise ValueError(
            f"nodule centre {tuple(np.round(center_lps, 2).tolist())} (LPS mm) lies outside the scan "
            f"(voxel index {tuple(np.round(index, 1).tolist())} of size {grid.size_xyz}){hint}"
        )


def _inside(grid: VoxelGrid, point_lps: np.ndarray) -> bool:
    index = grid.lps_to_index_zyx(point_lps)[::-1]
    return bool(np.all(index >= -0.5) and np.all(index <= np.asarray(grid.size_xyz, dtype=float) - 0.5))


def _coordinate_hint(image: sitk.Image, center_lps: np.ndarray) -> str:
    """What the point would be if it had been given in RAS, or as voxel indices, where that lies in the lungs."""
    grid = VoxelGrid.of_image(image)
    readings = (("; it looks like RAS coordinates (as 3D Slicer shows them): negate x and y for LPS",
                 center_lps * np.array([-1.0, -1.0, 1.0])),
                ("; it looks like voxel indices (i, j, k): give the point in millimetres (LPS)",
                 grid.index_zyx_to_lps(center_lps[::-1])))
    fitting = [(text, point) for text, point in readings if _inside(grid, point)]
    if not fitting:
        return ""
    try:
        lungs: Optional[sitk.Image] = lung_mask(image)
    except ValueError:  # no lungs found (a scan cut inside the chest): being in the scan must do
        lungs = None
    for text, point in fitting:
        where = ", ".join(f"{v:.1f}" for v in point)
        if lungs is None:
            return f"{text} ({where} falls in the scan)"
        index = tuple(int(round(i)) for i in lungs.TransformPhysicalPointToContinuousIndex(tuple(point)))
        if all(0 <= i < n for i, n in zip(index, lungs.GetSize())) and lungs[index]:
            return f"{text} ({where} falls in the lungs)"
    return ""
