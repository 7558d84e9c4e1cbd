"""Reading CT scans: image files (NRRD, NIfTI, MetaImage) and DICOM series folders, checked to be CT in HU."""

from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np
import SimpleITK as sitk

from .geometry import VoxelGrid
from .preprocessing import check_ct_image, check_looks_like_hu
from .records import PathLike

IMAGE_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
MIN_SLICES = 3  # a series with fewer images is a localizer or a scout, not a scan


def read_image(path: PathLike) -> sitk.Image:
    """A 3-D CT from a file (.nrrd .nhdr .nii .nii.gz .mha .mhd), a folder holding one DICOM CT series
    (localizers aside), or one DICOM file of a series (that series, from the file's folder)."""
    path = Path(path)
    files = dicom_series_files(path)
    if files is not None:
        image = _read_dicom_series(path, files)
    else:
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as exc:
            raise ValueError(f"{path}: cannot read image: {_sitk_reason(exc)}") from exc
    check_ct_image(image, what=str(path))
    check_looks_like_hu(sitk.GetArrayViewFromImage(image), str(path))
    return image


class PatientScans:
    """The scans of the patient at hand, each read once (`read_image`): a scan that failed to read raises its
    error again for every nodule on it. `clear()` when the next patient comes."""

    def __init__(self) -> None:
        self._read: Dict[Path, Union[sitk.Image, Exception]] = {}

    def __call__(self, path: PathLike) -> sitk.Image:
        path = Path(path)
        if path not in self._read:
            try:
                self._read[path] = read_image(path)
            except (ValueError, OSError, RuntimeError) as exc:
                self._read[path] = exc
        scan = self._read[path]
        if isinstance(scan, Exception):
            raise scan
        return scan

    def clear(self) -> None:
        self._read.clear()


def dicom_series_files(path: PathLike) -> Optional[List[str]]:
    """The files, in slice order, of the DICOM series that `read_image(path)` reads; None for an image file.
    Refuses what read_image refuses to read (no such path, an unknown file type, a folder of several scans)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        folder, series = path, _only_series(path)
    elif path.name.lower().endswith(IMAGE_SUFFIXES):
        return None
    elif _is_dicom_file(path):
        folder, series = path.parent, _series_of(path)
    else:
        raise ValueError(f"{path}: unsupported image type; use one of {' '.join(IMAGE_SUFFIXES)}, "
                         "a folder holding one DICOM series, or a DICOM file of the series")
    return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series))


def _only_series(folder: Path) -> str:
    """The one volumetric series in `folder` (a single-image localizer or scout beside it is left aside)."""
    entries = sorted(entry for entry in folder.iterdir() if entry.is_file())
    images = [entry.name for entry in entries if entry.name.lower().endswith(IMAGE_SUFFIXES)]
    if len(images) == len(entries):  # nothing GDCM could read (it would also print a warning of its own)
        held = f" (it holds {', '.join(images[:3])}{', ...' if len(images) > 3 else ''}): give the file's path" \
            if images else ""
        raise ValueError(f"{folder}: a folder holding no DICOM files{held}")
    series = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    files = {uid: sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid) for uid in series}
    volumes = [uid for uid in series if len(files[uid]) >= MIN_SLICES]
    if len(volumes) != 1:
        listed = ": " + ", ".join(f"{uid} ({len(files[uid])} files{_description(files[uid][0])})"
                                  for uid in series) if series else ""
        choose = "; to choose one, give the path of one of its files" if len(volumes) > 1 else ""
        raise ValueError(f"{folder}: a DICOM folder must hold exactly one series of {MIN_SLICES} slices or more "
                         f"(localizers aside), found {len(volumes)}{listed}{choose}")
    return volumes[0]


def _series_of(file: Path) -> str:
    """The series that the DICOM `file` belongs to, among those of its folder."""
    for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(file.parent)):
        names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(file.parent), uid)
        if any(Path(name).resolve() == file.resolve() for name in names):
            return uid
    raise ValueError(f"{file}: not part of any DICOM series in its folder")


def _is_dicom_file(path: Path) -> bool:
    """A DICOM Part 10 file: 'DICM' after its 128-byte preamble."""
    with open(path, "rb") as handle:
        return handle.read(132)[128:] == b"DICM"


def _description(file: str) -> str:
    reader = sitk.ImageFileReader()
    reader.SetFileName(file)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return ""
    text = reader.GetMetaData("0008|103e").strip() if reader.HasMetaDataKey("0008|103e") else ""
    return f", '{text}'" if text else ""


def _read_dicom_series(path: Path, files: List[str]) -> sitk.Image:
    """One DICOM series (its `files`, in slice order), slices spaced by their patient positions; a tilted
    gantry's slices are put back on a regular grid."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()  # each slice's header, read once with its pixels
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise ValueError(f"{path}: cannot read the DICOM series: {_sitk_reason(exc)}") from exc
    positions = _slice_positions(reader)
    if positions is not None:  # else SimpleITK spaced the slices from their order
        _check_even_slices(path, image, positions)
        image = _regular(image, positions)
    for tag in PATIENT_TAGS:
        if reader.HasMetaDataKey(0, tag) and reader.GetMetaData(0, tag).strip():
            image.SetMetaData(tag, reader.GetMetaData(0, tag).strip())
    return image


#: The DICOM tags saying whose scan it is, kept on an image read from a series.
PATIENT_TAGS = {"0010|0020": "PatientID", "0010|0030": "PatientBirthDate", "0010|0040": "PatientSex"}


def different_patients(first: sitk.Image, second: sitk.Image) -> str:
    """How two scans' DICOM patient tags disagree ('' when none that both carry does)."""
    differ = [f"{name} {first.GetMetaData(tag)!r} and {second.GetMetaData(tag)!r}" for tag, name in PATIENT_TAGS.items()
              if first.HasMetaDataKey(tag) and second.HasMetaDataKey(tag)
              and first.GetMetaData(tag) != second.GetMetaData(tag)]
    return ", ".join(differ)


def _slice_positions(reader: sitk.ImageSeriesReader) -> Optional[np.ndarray]:
    """Each slice's ImagePositionPatient (LPS mm), in the reader's order; None when a slice has none."""
    positions = []
    for k in range(len(reader.GetFileNames())):
        if not reader.HasMetaDataKey(k, "0020|0032"):
            return None
        positions.append([float(v) for v in reader.GetMetaData(k, "0020|0032").split("\\")])
    return np.asarray(positions)


def _check_even_slices(folder: Path, image: sitk.Image, positions: np.ndarray) -> None:
    """Refuse a series whose slices are not evenly spaced (missing slices): its geometry would be wrong."""
    if len(positions) < 3:
        return
    normal = VoxelGrid.of_image(image).matrix[:, 2]
    steps = np.diff(np.sort(positions @ normal))
    typical = float(np.median(steps))
    # A missing slice doubles a step, a repeated one zeroes it; positions written to 0.1 mm move a step by
    # up to 0.1 mm, which a complete series of 0.625 mm slices must survive.
    if steps.min() <= 0 or np.abs(steps - typical).max() > 0.5 * typical + 0.1:
        raise ValueError(f"{folder}: uneven slice spacing ({steps.min():.2f} to {steps.max():.2f} mm between "
                         "slices): slices are missing or repeated")


def _regular(image: sitk.Image, positions: np.ndarray) -> sitk.Image:
    """`image` on the grid its slices' planes define: each slice where its position says. For a tilted gantry
    (the table steps along z while the planes are tilted, so the positions do not step along the planes'
    normal) each slice is shifted within its plane onto the regular grid (linear), as Slicer's DICOM import
    regularizes such series; for other series the image as read."""
    matrix = VoxelGrid.of_image(image).matrix
    row, column, normal = matrix[:, 0], matrix[:, 1], matrix[:, 2]
    if len(positions) < 2:
        return image
    step = float(np.median(np.diff(positions @ normal)))
    offsets = positions - positions[0] - np.outer(np.arange(len(positions)) * step, normal)
    shifts = np.column_stack([offsets @ row, offsets @ column])  # mm within each plane
    spacing = np.asarray(image.GetSpacing())
    regular = sitk.Image(image)
    regular.SetSpacing([float(spacing[0]), float(spacing[1]), abs(step)])
    regular.SetOrigin(positions[0].tolist())
    if np.abs(shifts).max() < 0.01 * min(spacing[0], spacing[1]):
        return regular
    air = float(np.min(sitk.GetArrayViewFromImage(image)))
    slices = []
    for k, (across, down) in enumerate(shifts):  # in plane coordinates: the regular grid's plane starts at 0
        plane = image[:, :, k]
        plane.SetDirection((1.0, 0.0, 0.0, 1.0))
        target = sitk.Image(plane.GetSize(), plane.GetPixelID())
        target.SetSpacing(plane.GetSpacing())
        plane.SetOrigin((float(across), float(down)))  # where the slice's first pixel really is
        moved = sitk.Resample(plane, target, sitk.Transform(), sitk.sitkLinear, air, plane.GetPixelID())
        slices.append(sitk.GetArrayFromImage(moved))
    result = sitk.GetImageFromArray(np.stack(slices))
    result.CopyInformation(regular)
    return result


def _sitk_reason(exc: RuntimeError) -> str:
    """The useful part of a SimpleITK exception (it starts with the C++ source location)."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    reason = text.split("ERROR:", 1)[1].strip() if "ERROR:" in text else text
    return reason if len(reason) <= 300 else reason[:297] + "..."

