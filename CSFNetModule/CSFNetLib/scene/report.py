"""The one-page report (`case_report`) of the patient in a scene: its scans, nodule lists and results tables.

Each nodule of the results tables is measured at every scan where its list has a placed point (as the
tables' measurements are), with CSF-net's probability for each pair of scans from the tables, and the
model card from the tables' model columns.
"""

from pathlib import Path
from typing import Dict, List, Optional, Sequence

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


def save_scene_report(volumes: Sequence, fiducials: Sequence, tables: Sequence, pdf: PathLike, *,
                      patient: str = "scene", days: Optional[Sequence[float]] = None) -> Path:
    """The report of the nodules of `tables` (one per pair of consecutive scans, in order) over `volumes`
    (T0, T1, ...) and their `fiducials`, at `pdf` with a PNG beside it; the PDF's path."""
    if not tables:
        raise ValueError("no results table: run CSF-net (Apply) before saving its report")
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
    model = ModelCard(str(first["model"]), str(first["model_version"]), str(first["model_note"]))
    pdf = Path(pdf)
    write_report(patient, nodules, model, pdf, pdf.with_suffix(".png"))
    return pdf


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
