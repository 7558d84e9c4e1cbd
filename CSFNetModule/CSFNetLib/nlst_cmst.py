"""The CSF-net authors' NLST-cmst format: a CSV of subjects and pre-cut `{pid}_T0.npy` / `{pid}_T1.npy` ROIs."""

from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from .clinical import ClinicalVocabulary
from .cohort_csv import parse_label, read_clinical, read_csv_rows
from .options import ROI_SIZE_ZYX
from .records import TIMEPOINTS, CaseProblem, PathLike, Sample

NLST_CMST_REQUIRED = ("Subject ID", "study_yr")
NLST_CMST_TIMEPOINTS = ("T0", "T1", "T2")


def iter_nlst_cmst(
    cases_csv: PathLike,
    roi_dir: PathLike,
    clinical_csv: Optional[PathLike] = None,
    vocabulary: Optional[ClinicalVocabulary] = None,
) -> Iterator[Union[Sample, CaseProblem]]:
    """The authors' pre-cut format: `{pid}_T0.npy` / `{pid}_T1.npy` ROIs (16 x 64 x 64, DSB2017 0..255).

    The CSV (`Subject ID, study_yr, x, y, z1, z2, label`) gives the patients, in file order, and their
    labels; study_yr is T0, T1 or T2 (0, 1, 2 also accepted). The ROIs are cut already, so the
    coordinates are not used, nor are T2 rows beyond their label. One nodule per patient, named "1".
    The CSVs are checked now (file-level errors raise here); the ROIs are scaled to float32 [0, 1]
    and loaded one patient at a time as the result is iterated, after the CSV's problems.
    """
    cases_csv = Path(cases_csv).resolve()
    clinical = read_clinical(clinical_csv) if clinical_csv is not None else {}
    header, rows = read_csv_rows(cases_csv, NLST_CMST_REQUIRED)
    if not rows:
        raise ValueError(f"{cases_csv}: no cases after the header")
    problems: List[CaseProblem] = []
    subjects: Dict[str, List[Tuple[int, str, Optional[int]]]] = {}
    for line, values in rows:
        result = _parse_nlst_row(cases_csv, header, line, values)
        if isinstance(result, CaseProblem):
            problems.append(result)
        else:
            subjects.setdefault(result[0], []).append((line, result[1], result[2]))
    for problem in problems:  # a subject with a bad row is skipped: its row was reported
        subjects.pop(problem.pid, None)
    for pid, entries in list(subjects.items()):
        subject_problem = _nlst_subject_problem(cases_csv, pid, entries)
        if subject_problem is not None:
            problems.append(subject_problem)
            del subjects[pid]
    return _nlst_samples(problems, subjects, Path(roi_dir), clinical, vocabulary or ClinicalVocabulary.default())


def _nlst_samples(
    problems: List[CaseProblem],
    subjects: Dict[str, List[Tuple[int, str, Optional[int]]]],
    roi_dir: Path,
    clinical: Dict[str, Dict[str, str]],
    vocabulary: ClinicalVocabulary,
) -> Iterator[Union[Sample, CaseProblem]]:
    """The CSV's problems, then one sample (or problem) per subject, loading its two ROIs only then."""
    yield from problems
    for pid, entries in subjects.items():
        rois = []
        for timepoint in TIMEPOINTS:
            npy = roi_dir / f"{pid}_{timepoint}.npy"
            try:
                rois.append(_load_precut_roi(npy))
            except (OSError, EOFError, ValueError) as exc:
                yield CaseProblem(pid, "1", str(exc), str(npy))
                break
        else:
            label = next((lab for _, _, lab in entries if lab is not None), None)
            yield Sample(pid, "1", rois[0], rois[1], vocabulary.encode_patient(pid, clinical.get(pid)), label)


def _parse_nlst_row(
    csv_path: Path, header: List[str], line: int, values: List[str]
) -> Union[Tuple[str, str, Optional[int]], CaseProblem]:
    """(pid, study year, label) of one NLST-cmst row, or the problem with it."""
    cells = dict(zip(header, (v.strip() for v in values)))
    pid = cells.get("Subject ID", "")

    def problem(reason: str) -> CaseProblem:
        return CaseProblem(pid, "1" if pid else "", reason, str(csv_path), line)

    if len(values) != len(header):
        return problem(f"{len(values)} values but the header has {len(header)} columns")
    if not pid:
        return problem("empty Subject ID")
    year = cells["study_yr"].upper()
    year = f"T{year}" if year.isdigit() else year
    if year not in NLST_CMST_TIMEPOINTS:
        return problem(f"study_yr {cells['study_yr']!r} is not one of {', '.join(NLST_CMST_TIMEPOINTS)}")
    try:
        label = parse_label(cells.get("label", ""))
    except ValueError as exc:
        return problem(str(exc))
    return pid, year, label


def _nlst_subject_problem(
    csv_path: Path, pid: str, entries: List[Tuple[int, str, Optional[int]]]
) -> Optional[CaseProblem]:
    """A repeated study year or disagreeing labels among one subject's rows."""
    first: Dict[str, int] = {}
    labels: Dict[int, int] = {}
    for line, year, label in entries:
        if year in first:
            return CaseProblem(pid, "1", f"duplicate {year} row (also on line {first[year]})", str(csv_path), line)
        first[year] = line
        if label is not None:
            labels.setdefault(label, line)
    if len(labels) > 1:
        where = ", ".join(f"{lab} on line {line}" for lab, line in labels.items())
        return CaseProblem(pid, "1", f"labels disagree: {where}", str(csv_path), entries[0][0])
    return None


def _load_precut_roi(npy: Path) -> np.ndarray:
    """A pre-cut 16 x 64 x 64 ROI with values 0..255, as float32 in [0, 1]."""
    if not npy.is_file():
        raise FileNotFoundError("ROI file missing")
    array = np.load(str(npy), allow_pickle=False)
    expected = ROI_SIZE_ZYX
    if array.shape != expected:
        raise ValueError(f"ROI shape {array.shape}, expected {expected}")
    roi = array.astype(np.float32)
    if not np.all(np.isfinite(roi)) or roi.min() < 0.0 or roi.max() > 255.0:
        raise ValueError("ROI values must be finite and within 0..255 (DSB2017 preprocessing)")
    if roi.max() <= 1.0:  # divided by 255 again it would be black: the network would see no nodule
        raise ValueError("ROI values all lie within 0..1 (already scaled, or empty); expected DSB2017's 0..255")
    return roi / np.float32(255.0)

