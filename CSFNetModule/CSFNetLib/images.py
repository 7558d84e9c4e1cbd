"""Reading CT scans: image files (NRRD, NIfTI, MetaImage) and DICOM series folders, checked to be CT in HU."""

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .geometry import VoxelGrid
from .preprocessing import check_ct_image, check_looks_like_hu
from .records import PathLike

IMAGE_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")


def read_image(path: PathLike) -> sitk.Image:
    """A 3-D CT from a file (.nrrd .nhdr .nii .nii.gz .mha .mhd) or a folder holding one DICOM series."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        image = _read_dicom_series(path)
    else:
        if not path.name.lower().endswith(IMAGE_SUFFIXES):
            raise ValueError(f"{path}: unsupported image type; use one of {' '.join(IMAGE_SUFFIXES)} "
                             "or a folder holding one DICOM series")
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as exc:
            raise ValueError(f"{path}: cannot read image: {_sitk_reason(exc)}") from exc
    check_ct_image(image, what=str(path))
    check_looks_like_hu(sitk.GetArrayViewFromImage(image), str(path))
    return image


def _read_dicom_series(folder: Path) -> sitk.Image:
    """The single DICOM series in `folder`, slices ordered and spaced by their patient positions."""
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if len(series) != 1:
        listed = f": {', '.join(series)}" if series else ""
        raise ValueError(f"{folder}: a DICOM folder must hold exactly one series, found {len(series)}{listed}")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series[0])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()  # each slice's header, read once with its pixels
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise ValueError(f"{folder}: cannot read DICOM series {series[0]}: {_sitk_reason(exc)}") from exc
    _check_even_slices(folder, reader, image)
    return image


def _check_even_slices(folder: Path, reader: sitk.ImageSeriesReader, image: sitk.Image) -> None:
    """Refuse a series whose slices are not evenly spaced (missing slices): its geometry would be wrong."""
    slices = len(reader.GetFileNames())
    if slices < 3:
        return
    normal = VoxelGrid.of_image(image).matrix[:, 2]
    positions = []
    for k in range(slices):
        if not reader.HasMetaDataKey(k, "0020|0032"):
            return  # no positions to check: SimpleITK spaced the slices from their order
        positions.append(float(np.dot(normal, [float(v) for v in reader.GetMetaData(k, "0020|0032").split("\\")])))
    steps = np.diff(np.sort(positions))
    typical = float(np.median(steps))
    # A missing slice doubles a step, a repeated one zeroes it; positions written to 0.1 mm move a step by
    # up to 0.1 mm, which a complete series of 0.625 mm slices must survive.
    if steps.min() <= 0 or np.abs(steps - typical).max() > 0.5 * typical + 0.1:
        raise ValueError(f"{folder}: uneven slice spacing ({steps.min():.2f} to {steps.max():.2f} mm between "
                         "slices): slices are missing or repeated")


def _sitk_reason(exc: RuntimeError) -> str:
    """The useful part of a SimpleITK exception (it starts with the C++ source location)."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    reason = text.split("ERROR:", 1)[1].strip() if "ERROR:" in text else text
    return reason if len(reason) <= 300 else reason[:297] + "..."

