"""A generated scan written as a DICOM CT series, with the quirks of real scanners (needs pydicom).

What a DICOM reader must survive, on demand: the gantry tilted (the slices' planes turned about the
patient's left-right axis while the table moves straight, so each slice is shifted in its own plane), the
files in no particular order on disk, and other series (a localizer, another reconstruction) in the same
folder. The pixels are the scan's HU resampled onto each slice's plane (linear), stored as int16 with
rescale intercept -1024; every identifier is a real UID.
"""

import dataclasses
import datetime
from pathlib import Path
from typing import List, Optional

import numpy as np
import SimpleITK as sitk

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
INTERCEPT = -1024.0


@dataclasses.dataclass(frozen=True)
class DicomStudy:
    """The patient and study that every series of one scan date shares."""

    patient_id: str
    patient_name: str
    study_date: datetime.date
    study_uid: str
    frame_of_reference_uid: str
    birth_date: str = "19600101"
    sex: str = "O"

    @classmethod
    def new(cls, patient_id: str, study_date: datetime.date) -> "DicomStudy":
        from pydicom.uid import generate_uid

        return cls(patient_id, f"Phantom^{patient_id}", study_date, generate_uid(), generate_uid())


def write_dicom_series(image: sitk.Image, folder: Path, study: DicomStudy, *, series_number: int = 1,
                       description: str = "synthetic chest CT (phantom)", tilt_deg: float = 0.0,
                       shuffle: Optional[np.random.Generator] = None) -> List[Path]:
    """`image` (HU, axial, identity direction) as one CT series of files in `folder`; the files written.

    `tilt_deg` tilts the gantry: each slice's plane is turned by that angle about the left-right axis while
    its position steps straight along the table (z), as tilted scanners store them. `shuffle` writes the
    files under names in a random order (the slices' order is only in their positions).
    """
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    origin = np.asarray(image.GetOrigin(), dtype=float)
    size = image.GetSize()
    tilt = np.radians(tilt_deg)
    row, column = np.array([1.0, 0.0, 0.0]), np.array([0.0, np.cos(tilt), np.sin(tilt)])
    names = list(range(size[2]))
    if shuffle is not None:
        shuffle.shuffle(names)
    written = []
    for k in range(size[2]):
        position = origin + np.array([0.0, 0.0, k * spacing[2]])  # the table moves along z, whatever the tilt
        plane = _slice_plane(image, position, row, column, spacing[:2], size[:2])
        dataset = _ct_slice(plane, study, series_uid, series_number, description, k, position, row, column,
                            spacing, generate_uid())
        path = folder / f"IMG{names[k]:05d}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        written.append(path)
    return written


def write_localizer(image: sitk.Image, folder: Path, study: DicomStudy, series_number: int = 99) -> Path:
    """A one-slice localizer (a coronal projection of `image`) in `folder`: another series beside the CT."""
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    hu = sitk.GetArrayViewFromImage(image)  # (z, y, x)
    projection = hu.mean(axis=1)[::-1]  # rows from the head down, columns left to right
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    origin = np.asarray(image.GetOrigin(), dtype=float)
    top = origin + np.array([0.0, spacing[1] * image.GetSize()[1] / 2.0, spacing[2] * (image.GetSize()[2] - 1)])
    dataset = _ct_slice(projection, study, generate_uid(), series_number, "localizer", 0, top,
                        np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0]),
                        np.array([spacing[0], spacing[2], spacing[1]]), generate_uid())
    dataset.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    path = folder / "LOCALIZER.dcm"
    dataset.save_as(path, enforce_file_format=True)
    return path


def _slice_plane(image: sitk.Image, position: np.ndarray, row: np.ndarray, column: np.ndarray,
                 spacing_xy: np.ndarray, size_xy) -> np.ndarray:
    """The scan's HU on one slice plane (rows along `column`, columns along `row`), air outside the scan."""
    normal = np.cross(row, column)
    plane = sitk.Image(int(size_xy[0]), int(size_xy[1]), 1, sitk.sitkFloat32)
    plane.SetOrigin(position.tolist())
    plane.SetSpacing([float(spacing_xy[0]), float(spacing_xy[1]), 1.0])
    plane.SetDirection(np.column_stack([row, column, normal]).ravel().tolist())
    sampled = sitk.Resample(image, plane, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(sampled)[0]


def _ct_slice(pixels_hu: np.ndarray, study: DicomStudy, series_uid: str, series_number: int, description: str,
              index: int, position: np.ndarray, row: np.ndarray, column: np.ndarray, spacing: np.ndarray,
              sop_uid: str):
    """One CT Image Storage dataset: patient, study, series, frame of reference, plane and pixels."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(CT_IMAGE_STORAGE)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid(entropy_srcs=["csfnet"])
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE_STORAGE, sop_uid
    ds.PatientID, ds.PatientName = study.patient_id, study.patient_name
    ds.PatientBirthDate, ds.PatientSex = study.birth_date, study.sex
    ds.StudyInstanceUID, ds.StudyID = study.study_uid, "1"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study.study_date.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "090000"
    ds.AccessionNumber, ds.ReferringPhysicianName = "", ""
    ds.Modality, ds.Manufacturer = "CT", "CSF-net synthetic phantom"
    ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = series_uid, series_number, description
    ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = study.frame_of_reference_uid, ""
    ds.InstanceNumber = index + 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in np.concatenate([row, column])]
    ds.PixelSpacing = [f"{spacing[1]:.6f}", f"{spacing[0]:.6f}"]  # between rows, between columns
    ds.SliceThickness = f"{spacing[2]:.4f}"
    ds.KVP, ds.PatientPosition = "120", "FFS"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = int(pixels_hu.shape[0]), int(pixels_hu.shape[1])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = f"{INTERCEPT:g}", "1", "HU"
    stored = np.clip(np.round(pixels_hu - INTERCEPT), -32768, 32767).astype(np.int16)
    ds.PixelData = stored.tobytes()
    return ds
