"""A cohort's results as DICOM: per patient and scan read from DICOM, a SEG of its nodules and a TID 1500 SR.

Each nodule is measured at every scan by the same code as measurements.csv (so the reported values are
that file's), its mask written onto the scan's own slices; at each follow-up scan the SR also carries the
VDT against the scan before and, from results.csv, CSF-net's probability for that pair of scans. A
nodule keeps one tracking UID over all the patient's scans (derived from the patient and the nodule).
Files: `out/<pid>/<timepoint>/seg.dcm` and `sr.dcm`. A scan not read from DICOM, or one that fails, is
reported and the export carries on with the others.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from ..checkpoint import ModelCard
from ..measure.cohort import ScanMeasurement, measured_patients
from ..measure.segmentation import NoduleMeasurement
from ..output_paths import check_output_folder
from ..records import Cohort, NoduleCase, PathLike
from ..results_file import read_probabilities
from .segmentation import write_segmentation
from .source import SourceSeries, read_source_series
from .structured_report import NoduleFinding, write_structured_report

ResultKey = Tuple[str, str, str]  # pid, nodule, the pair of scans ("T0-T1")


@dataclass
class DicomExport:
    """What an export wrote, and each scan it could not write with the reason."""

    written: List[Path] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)


def export_dicom(cohort: Cohort, out: PathLike, *, probabilities: Optional[Mapping[ResultKey, float]] = None,
                 model: Optional[ModelCard] = None, progress: Optional[Callable[[str], None]] = None) -> DicomExport:
    """SEG + SR for every patient and scan of `cohort` into `out`; `probabilities` by (pid, nodule, scans)."""
    out = Path(out)
    export = DicomExport()
    for patient in measured_patients(cohort, progress):
        for k, timepoint in enumerate(patient.timepoints):
            at_scan = [(case, scan) for case in patient.cases
                       for row, scan in zip(case.rows, patient.scans[case.nodule]) if row.timepoint == timepoint]
            try:
                export.written += _write_scan(patient.pid, timepoint, k > 0, at_scan, patient.rows,
                                              probabilities or {}, model, out / patient.pid / timepoint)
            except (ValueError, OSError, RuntimeError, ImportError) as exc:
                export.problems.append(f"patient {patient.pid} scan {timepoint}: {exc}")
    return export


def check_dicom_out(out: PathLike) -> None:
    """Refuse, before any work, a DICOM output that cannot be written: the dicom extra missing, or `out` a file."""
    try:
        import highdicom  # noqa: F401
    except ImportError:
        raise ValueError("DICOM output needs the dicom extra (highdicom, Python 3.10 or later): "
                         "pip install 'csfnet[dicom]'") from None
    check_output_folder(out, "DICOM output")


def export_run(cases_csv: PathLike, out: PathLike, *, results_csv: Optional[PathLike] = None,
               checkpoint: Optional[PathLike] = None, progress: Optional[Callable[[str], None]] = None) -> DicomExport:
    """`export_dicom` for a finished run's files: cases.csv, and results.csv for the probabilities (written by
    the model in `checkpoint`, default the shipped one, whose name, version and note the SRs carry)."""
    from ..checkpoint import model_card
    from ..cohort_csv import read_cohort

    probabilities = read_probabilities(results_csv) if results_csv is not None else {}
    model = model_card(checkpoint) if results_csv is not None else None
    return export_dicom(read_cohort(cases_csv), out, probabilities=probabilities, model=model, progress=progress)


def tracking_uid(patient_id: str, pid: str, nodule: str) -> str:
    """The same UID for the same nodule at every scan of the patient."""
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["CSF-net nodule", patient_id, pid, nodule])


@dataclass(frozen=True)
class ScanNodule:
    """One nodule at one scan, for the DICOM files: its measurement, measurements.csv row, and probability."""

    label: str
    measurement: NoduleMeasurement
    row: Mapping[str, object]
    p_malignant: Optional[float] = None  # for the pair of scans ending here


def write_scan_dicom(series: SourceSeries, pid: str, nodules: List[ScanNodule], folder: Path, *, follow_up: bool,
                     model: Optional[ModelCard]) -> List[Path]:
    """`folder`/seg.dcm and sr.dcm of one scan's measured nodules; the files."""
    if not nodules:
        raise ValueError("no nodule measured at this scan")
    uids = [tracking_uid(str(series.first.PatientID), pid, nodule.label) for nodule in nodules]
    folder.mkdir(parents=True, exist_ok=True)
    seg = write_segmentation(series, [n.measurement.segmentation for n in nodules], [n.label for n in nodules], uids,
                             folder / "seg.dcm")
    findings = [NoduleFinding(
        label=n.label, tracking_uid=uid, segment_number=number, volume_mm3=_number(n.row["volume_mm3"]),
        diameter_mm=_number(n.row["diameter_mm"]), solid_diameter_mm=_number(n.row["solid_diameter_mm"]),
        nodule_type=str(n.row["type"]), lung_rads=str(n.row["lung_rads"]), vdt_days=_number(n.row["vdt_days"]),
        p_malignant=n.p_malignant) for number, (n, uid) in enumerate(zip(nodules, uids), start=1)]
    write_structured_report(series, seg, findings, folder / "sr.dcm", follow_up=follow_up, model=model)
    return [folder / "seg.dcm", folder / "sr.dcm"]


def _write_scan(pid: str, timepoint: str, follow_up: bool, at_scan: List[Tuple[NoduleCase, ScanMeasurement]],
                rows: Mapping[str, Mapping[str, Dict[str, object]]], probabilities: Mapping[ResultKey, float],
                model: Optional[ModelCard], folder: Path) -> List[Path]:
    image = at_scan[0][0].rows[[row.timepoint for row in at_scan[0][0].rows].index(timepoint)].image
    series = read_source_series(image)
    nodules = []
    for case, scan in at_scan:
        if isinstance(scan.result, NoduleMeasurement):
            previous = _previous_timepoint(case, timepoint)
            nodules.append(ScanNodule(case.nodule, scan.result, rows[case.nodule][timepoint],
                                      probabilities.get((pid, case.nodule, f"{previous}-{timepoint}"))
                                      if previous else None))
    if not nodules:
        raise ValueError("no nodule could be measured: " + "; ".join(str(scan.result) for _, scan in at_scan))
    return write_scan_dicom(series, pid, nodules, folder, follow_up=follow_up, model=model)


def _previous_timepoint(case: NoduleCase, timepoint: str) -> Optional[str]:
    names = [row.timepoint for row in case.rows]
    index = names.index(timepoint)
    return names[index - 1] if index > 0 else None


def _number(value: object) -> Optional[float]:
    """A measurements.csv cell as a number; None when empty or not finite (an 'inf' VDT: no growth)."""
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if abs(number) != float("inf") and number == number else None
