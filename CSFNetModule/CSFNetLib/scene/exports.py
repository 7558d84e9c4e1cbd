"""What leaves the scene for people and archives: the one-page report (`case_report`) and DICOM SEG + SR.

Each nodule of the results tables is measured at every scan where its list has a placed point (as the
tables' measurements are), with CSF-net's probability for each pair of scans from the tables, and the
model card from the tables' model columns.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from ..case_report import ReportNodule, ReportScan, write_report
from ..checkpoint import ModelCard
from ..geometry import ras_to_lps
from ..measure.cohort import ScanMeasurement, nodule_rows
from ..measure.segmentation import NoduleMeasurement, NoNoduleError, measure_nodule
from ..records import PathLike
from ..results_file import TWO_SCANS
from .history import SCANS_ATTRIBUTE
from .nodes import ct_volume, point_label
from .results_table import table_rows

INSTANCE_UIDS = "DICOM.instanceUIDs"  # set by Slicer's DICOM import on a volume: its slices' SOP instance UIDs


@dataclass(frozen=True)
class SceneNodules:
    """The nodules of a scene's results tables, each measured at every scan, with probabilities and model."""

    nodules: List[ReportNodule]
    model: ModelCard


def scene_nodules(volumes: Sequence, fiducials: Sequence, tables: Sequence, *, patient: str = "scene",
                  days: Optional[Sequence[float]] = None) -> SceneNodules:
    """Each nodule of `tables` (one per pair of consecutive scans, in order) measured over `volumes` (T0, T1,
    ...) at its point in each scan's `fiducials` (as measurements.csv measures), with CSF-net's probability
    for each pair of scans and the tables' model."""
    if not tables:
        raise ValueError("no results table: run CSF-net (Apply) first")
    rows = [row for table in tables for row in table_rows(table)]
    if not rows:
        raise ValueError("the results tables hold no nodule")
    images = [ct_volume(volume, f"T{k}").image() for k, volume in enumerate(volumes)]
    probabilities: Dict[str, Dict[str, float]] = {}
    for table in tables:
        pair = table.GetAttribute(SCANS_ATTRIBUTE) or TWO_SCANS
        for row in table_rows(table):
            probabilities.setdefault(str(row["nodule"]), {})[pair] = float(row["p_malignant"])
    nodules = []
    for label in probabilities:
        measured: List[ScanMeasurement] = []
        for k, (image, points) in enumerate(zip(images, fiducials)):
            when = None if days is None else float(days[k])
            position = _point(points, label)
            if position is None:
                measured.append(ScanMeasurement(f"T{k}", when, "no point in this scan"))
                continue
            try:
                measured.append(ScanMeasurement(f"T{k}", when, measure_nodule(image, ras_to_lps(position))))
            except NoNoduleError as exc:
                measured.append(ScanMeasurement(f"T{k}", when, str(exc)))
        table_of = {str(row["timepoint"]): row for row in nodule_rows(patient, label, measured)}
        scans = [ReportScan(scan.timepoint, scan.days, image,
                            scan.result if isinstance(scan.result, NoduleMeasurement) else None,
                            table_of.get(scan.timepoint, {}),
                            "" if isinstance(scan.result, NoduleMeasurement) else str(scan.result))
                 for scan, image in zip(measured, images)]
        nodules.append(ReportNodule(label, scans, probabilities[label]))
    first = rows[0]
    return SceneNodules(nodules, ModelCard(str(first["model"]), str(first["model_version"]), str(first["model_note"])))


def save_scene_report(volumes: Sequence, fiducials: Sequence, tables: Sequence, pdf: PathLike, *,
                      patient: str = "scene", days: Optional[Sequence[float]] = None) -> Path:
    """The one-page report of `scene_nodules` at `pdf`, with a PNG beside it; the PDF's path."""
    found = scene_nodules(volumes, fiducials, tables, patient=patient, days=days)
    pdf = Path(pdf)
    write_report(patient, found.nodules, found.model, pdf, pdf.with_suffix(".png"))
    return pdf


def export_scene_dicom(volumes: Sequence, fiducials: Sequence, tables: Sequence, out: PathLike, *,
                       files_of: Callable[[str], str], patient: str = "scene",
                       days: Optional[Sequence[float]] = None) -> List[Path]:
    """DICOM SEG + SR of `scene_nodules` for each scan into `out`/T0, T1, ...; the files. Every volume must come
    from DICOM: its files are found from the SOP instance UIDs Slicer's DICOM import records on it
    (`files_of`: Slicer's `dicomDatabase.fileForInstance`)."""
    from ..dicom.export import ScanNodule, write_scan_dicom
    from ..dicom.source import series_of_files

    series = []
    for k, volume in enumerate(volumes):
        uids = (volume.GetAttribute(INSTANCE_UIDS) or "").split()
        files = [files_of(uid) for uid in uids]
        if not uids or not all(files):
            raise ValueError(f"scan T{k} '{volume.GetName()}' was not loaded from DICOM (or its files are no longer "
                             "in the DICOM database): DICOM output needs DICOM input")
        series.append(series_of_files(files))
    found = scene_nodules(volumes, fiducials, tables, patient=patient, days=days)
    written: List[Path] = []
    for k, source in enumerate(series):
        at_scan = []
        for nodule in found.nodules:
            scan = nodule.scans[k]
            if scan.measurement is not None:
                pair = f"T{k - 1}-T{k}"
                at_scan.append(ScanNodule(nodule.label, scan.measurement, scan.row,
                                          nodule.probabilities.get(pair) if k else None))
        written += write_scan_dicom(source, patient, at_scan, Path(out) / f"T{k}", follow_up=k > 0,
                                    model=found.model)
    return written


def _point(fiducials, label: str):
    """The world (RAS) position of the placed point labelled `label`, or None."""
    if fiducials is None:
        return None
    for i in range(fiducials.GetNumberOfControlPoints()):
        if point_label(fiducials, i) == label and \
                fiducials.GetNthControlPointPositionStatus(i) == fiducials.PositionDefined:
            position = [0.0, 0.0, 0.0]
            fiducials.GetNthControlPointPositionWorld(i, position)
            return position
    return None
