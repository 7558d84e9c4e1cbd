"""The DICOM series a scan was read from: its slices' headers in slice order, and their planes."""

from dataclasses import dataclass
from typing import List, Sequence

import numpy as np

from ..images import dicom_series_files
from ..records import PathLike


class NotDicomError(ValueError):
    """The scan was not read from DICOM: DICOM results need the source series' identifiers."""


@dataclass(frozen=True)
class SourceSeries:
    """A CT series' slice headers (pydicom datasets without pixels), in slice order."""

    datasets: list

    @property
    def first(self):
        return self.datasets[0]

    def plane(self, k: int):
        """Slice k's first pixel centre, row and column directions (LPS) and spacing (column, row) in mm."""
        ds = self.datasets[k]
        orientation = np.asarray([float(v) for v in ds.ImageOrientationPatient])
        row_mm, column_mm = (float(v) for v in ds.PixelSpacing)  # between rows, between columns
        return (np.asarray([float(v) for v in ds.ImagePositionPatient]), orientation[:3], orientation[3:],
                (column_mm, row_mm))


def read_source_series(path: PathLike) -> SourceSeries:
    """The headers of the series `read_image(path)` reads; NotDicomError for an image file."""
    files = dicom_series_files(path)
    if files is None:
        raise NotDicomError(f"{path}: DICOM results need DICOM input (a series folder), not an image file")
    return series_of_files(files)


def series_of_files(files: Sequence[str]) -> SourceSeries:
    """The headers of a series' `files` (e.g. from Slicer's DICOM database), ordered along the slices' normal."""
    import pydicom

    datasets: List = [pydicom.dcmread(name, stop_before_pixels=True) for name in files]
    normal = np.cross(*np.reshape([float(v) for v in datasets[0].ImageOrientationPatient], (2, 3)))
    datasets.sort(key=lambda ds: float(np.dot(normal, [float(v) for v in ds.ImagePositionPatient])))
    return SourceSeries(datasets)
