"""Reading longitudinal cohorts: cases.csv + clinical.csv with CT files or DICOM series, and NLST-cmst.

The formats are defined in docs/data-formats.md. A reader of a whole cohort never stops at one bad
case: a problem with a row, a nodule or an image becomes a `CaseProblem` (file, line, patient, nodule,
reason) and the other cases are still read, so a batch run reports every skipped case and why. What
makes the whole file unusable (missing, empty, not UTF-8, required columns absent) raises instead.
"""

import csv
import io
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk

from .clinical import ClinicalVocabulary
from .preprocessing import Preprocessing, check_ct_image, check_looks_like_hu, extract_roi, lung_mask

PathLike = Union[str, Path]

CASES_REQUIRED = ("pid", "timepoint", "image", "x", "y", "z")
CASES_KNOWN = CASES_REQUIRED + ("nodule", "label", "days")
TIMEPOINTS = ("T0", "T1")
IMAGE_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
NLST_CMST_REQUIRED = ("Subject ID", "study_yr")
NLST_CMST_TIMEPOINTS = ("T0", "T1", "T2")
DEFAULT_PREPROCESSING = Preprocessing()


@dataclass(frozen=True)
class CaseProblem:
    """Why one case (a patient's nodule) was skipped; `row` is the line in `file` (header = line 1)."""

    pid: str
    nodule: str
    reason: str
    file: str = ""
    row: Optional[int] = None

    def __str__(self) -> str:
        where = self.file + (f":{self.row}" if self.row is not None else "")
        who = f"patient {self.pid}" if self.pid else ""
        if self.pid and self.nodule:
            who += f" nodule {self.nodule}"
        return ": ".join(part for part in (where, who, self.reason) if part)


@dataclass(frozen=True)
class TimepointRow:
    """One valid row of cases.csv: a nodule at one time point."""

    row: int
    pid: str
    nodule: str
    timepoint: str
    image: Path
    center_lps: Tuple[float, float, float]
    label: Optional[int] = None
    days: Optional[float] = None
    extra: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NoduleCase:
    """A nodule with its baseline (T0) and follow-up (T1) rows."""

    pid: str
    nodule: str
    t0: TimepointRow
    t1: TimepointRow
    label: Optional[int]


@dataclass
class Cohort:
    """The cases of a cases.csv, the clinical rows by patient, and the problems met while reading."""

    cases: List[NoduleCase]
    clinical: Dict[str, Dict[str, str]]
    problems: List[CaseProblem]
    cases_csv: Path

    @classmethod
    def from_csv(cls, cases_csv: PathLike, clinical_csv: Optional[PathLike] = None) -> "Cohort":
        """Read cases.csv (and clinical.csv when given; without it every patient's clinical data is missing)."""
        cases_csv = Path(cases_csv).resolve()  # one spelling in every message, whatever the working folder
        header, rows = _read_csv(cases_csv, CASES_REQUIRED)
        if not rows:
            raise ValueError(f"{cases_csv}: no cases after the header")
        problems: List[CaseProblem] = []
        parsed: List[TimepointRow] = []
        failed = set()  # (pid, nodule) with a bad row: already reported, so not reported again as incomplete
        for line, values in rows:
            result = _parse_case_row(cases_csv, header, line, values)
            if isinstance(result, CaseProblem):
                problems.append(result)
                failed.add((result.pid, result.nodule))
            else:
                parsed.append(result)
        cases = _pair_rows(cases_csv, parsed, failed, problems)
        problems.sort(key=lambda p: p.row or 0)
        clinical = read_clinical(clinical_csv) if clinical_csv is not None else {}
        if clinical_csv is not None:
            _check_clinical_rows(Path(clinical_csv), [case.pid for case in cases], clinical)
        return cls(cases=cases, clinical=clinical, problems=problems, cases_csv=cases_csv)


def _check_clinical_rows(clinical_csv: Path, pids: List[str], clinical: Dict[str, Dict[str, str]]) -> None:
    """A clinical.csv matching none of the patients is refused (the ids differ, e.g. leading zeros lost in
    a spreadsheet); one missing some patients is a warning, since their clinical data count as missing."""
    patients = list(dict.fromkeys(pids))
    absent = [pid for pid in patients if pid not in clinical]
    if not absent:
        return
    example = ", ".join(repr(pid) for pid in absent[:3])
    if len(absent) == len(patients):
        raise ValueError(f"{clinical_csv}: none of the {len(patients)} patients of the cases file has a row here "
                         f"(e.g. {example}); ids are compared as text: look for lost leading zeros or other ids")
    warnings.warn(f"{clinical_csv}: {len(absent)} of {len(patients)} patients have no row (e.g. {example}); "
                  "their clinical data count as missing", stacklevel=3)


def read_clinical(clinical_csv: PathLike) -> Dict[str, Dict[str, str]]:
    """clinical.csv as pid -> {column: value} (all columns kept); an empty or repeated pid or a short row raises."""
    clinical_csv = Path(clinical_csv)
    header, rows = _read_csv(clinical_csv, ("pid",))
    records: Dict[str, Dict[str, str]] = {}
    first_line: Dict[str, int] = {}
    for line, values in rows:
        if len(values) != len(header):
            raise ValueError(f"{clinical_csv}:{line}: {len(values)} values but the header has {len(header)} columns")
        record = {name: value.strip() for name, value in zip(header, values) if name}
        pid = record["pid"]
        if not pid:
            raise ValueError(f"{clinical_csv}:{line}: empty pid")
        if pid in records:
            raise ValueError(f"{clinical_csv}:{line}: patient {pid} appears twice (also on line {first_line[pid]})")
        records[pid] = record
        first_line[pid] = line
    return records


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
    normal = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)[:, 2]
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


@dataclass
class Sample:
    """One nodule ready for the network: the two ROIs (float32, 16 x 64 x 64, [0, 1]), clinical rows, label.

    `centers_lps` are the ROI centres (T0, T1) in each scan's LPS mm, or None for pre-cut ROIs.
    """

    pid: str
    nodule: str
    t0: np.ndarray
    t1: np.ndarray
    clinical: List[int]
    label: Optional[int]
    centers_lps: Optional[Tuple[Tuple[float, float, float], Tuple[float, float, float]]] = None


def iter_samples(
    cohort: Cohort,
    preprocessing: Preprocessing = DEFAULT_PREPROCESSING,
    vocabulary: Optional[ClinicalVocabulary] = None,
) -> Iterator[Union[Sample, CaseProblem]]:
    """Every case of `cohort` as a `Sample`, or a `CaseProblem` when it cannot be made.

    The problems found while reading the CSV come first. Then patient by patient: each scan of the
    patient is read once (and its lung mask computed once), shared by the nodules in it, and
    released before the next patient, so a cohort larger than memory streams.
    """
    vocabulary = vocabulary or ClinicalVocabulary.default()
    yield from cohort.problems
    by_patient: Dict[str, List[NoduleCase]] = {}
    for case in cohort.cases:
        by_patient.setdefault(case.pid, []).append(case)
    for pid, cases in by_patient.items():
        clinical = vocabulary.encode(cohort.clinical.get(pid))
        scans = _PatientScans(preprocessing)
        for case in cases:
            rois = []
            for row in (case.t0, case.t1):
                try:
                    rois.append(scans.roi(row))
                except (OSError, ValueError, RuntimeError) as exc:
                    yield CaseProblem(case.pid, case.nodule, f"{row.timepoint}: {exc}",
                                      str(cohort.cases_csv), row.row)
                    break
            else:
                yield Sample(case.pid, case.nodule, rois[0], rois[1], list(clinical), case.label,
                             (case.t0.center_lps, case.t1.center_lps))


class _PatientScans:
    """One patient's scans, each read (and lung-masked) at most once; a failed read is remembered too."""

    def __init__(self, preprocessing: Preprocessing):
        self.preprocessing = preprocessing
        self._scans: Dict[Path, Union[Tuple[sitk.Image, Optional[sitk.Image]], Exception]] = {}

    def roi(self, row: TimepointRow) -> np.ndarray:
        if row.image not in self._scans:
            self._scans[row.image] = self._load(row.image)
        scan = self._scans[row.image]
        if isinstance(scan, Exception):
            raise scan
        image, mask = scan
        try:
            return extract_roi(image, row.center_lps, self.preprocessing, mask)
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"{row.image}: {exc}") from exc

    def _load(self, path: Path) -> Union[Tuple[sitk.Image, Optional[sitk.Image]], Exception]:
        p = self.preprocessing
        try:
            image = read_image(path)
            mask = lung_mask(image, p.lung_threshold_hu, p.lung_dilation_mm) if p.lung_mask else None
        except (OSError, ValueError, RuntimeError) as exc:
            return exc
        return image, mask


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
    header, rows = _read_csv(cases_csv, NLST_CMST_REQUIRED)
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
        problem = _nlst_subject_problem(cases_csv, pid, entries)
        if problem is not None:
            problems.append(problem)
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
            yield Sample(pid, "1", rois[0], rois[1], vocabulary.encode(clinical.get(pid)), label)


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
        label = _parse_label(cells.get("label", ""))
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
    expected = DEFAULT_PREPROCESSING.roi_size_zyx
    if array.shape != expected:
        raise ValueError(f"ROI shape {array.shape}, expected {expected}")
    roi = array.astype(np.float32)
    if not np.all(np.isfinite(roi)) or roi.min() < 0.0 or roi.max() > 255.0:
        raise ValueError("ROI values must be finite and within 0..255 (DSB2017 preprocessing)")
    if roi.max() <= 1.0:  # divided by 255 again it would be black: the network would see no nodule
        raise ValueError("ROI values all lie within 0..1 (already scaled, or empty); expected DSB2017's 0..255")
    return roi / np.float32(255.0)


def _read_csv(path: Path, required: Sequence[str]) -> Tuple[List[str], List[Tuple[int, List[str]]]]:
    """Header (names stripped) and non-blank rows with their line numbers; file-level problems raise."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        reason = f"not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
        raise ValueError(f"{path}:{line}: {reason}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise ValueError(f"{path}: empty file, expected a header with {', '.join(required)}") from None
    missing = [name for name in required if name not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; the header has {', '.join(header)}")
    named = [name for name in header if name]
    repeated = sorted({name for name in named if named.count(name) > 1})
    if repeated:
        raise ValueError(f"{path}: column(s) {', '.join(repeated)} appear more than once in the header")
    rows = []
    try:
        for values in reader:
            if any(v.strip() for v in values):
                rows.append((reader.line_num, values))
    except csv.Error as exc:
        raise ValueError(f"{path}:{reader.line_num}: malformed CSV: {exc}") from exc
    return header, rows


def _parse_case_row(
    csv_path: Path, header: List[str], line: int, values: List[str]
) -> Union[TimepointRow, CaseProblem]:
    """One cases.csv row as a `TimepointRow`, or the problem with it."""
    cells = dict(zip(header, (v.strip() for v in values)))
    pid = cells.get("pid", "")  # a short row may lack it: reported below as a problem
    nodule = cells.get("nodule") or "1"

    def problem(reason: str) -> CaseProblem:
        return CaseProblem(pid, nodule if pid else "", reason, str(csv_path), line)

    if len(values) != len(header):
        return problem(f"{len(values)} values but the header has {len(header)} columns")
    if not pid:
        return problem("empty pid")
    timepoint = cells["timepoint"].upper()
    if timepoint not in TIMEPOINTS:
        return problem(f"timepoint {cells['timepoint']!r} is not T0 or T1")
    if not cells["image"]:
        return problem(f"{timepoint}: empty image")
    try:
        centre = tuple(_number(cells[axis], f"coordinate {axis}") for axis in ("x", "y", "z"))
        label = _parse_label(cells.get("label", ""))
        days = _number(cells["days"], "days") if cells.get("days") else None
    except ValueError as exc:
        return problem(f"{timepoint}: {exc}")
    image = Path(cells["image"])
    if not image.is_absolute():
        image = csv_path.resolve().parent / image
    extra = {name: value for name, value in cells.items() if name and name not in CASES_KNOWN}
    return TimepointRow(line, pid, nodule, timepoint, image, centre, label, days, extra)


def _number(text: str, what: str) -> float:
    """A finite float from a CSV cell; ValueError naming `what` and the text otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} = {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} = {text!r} is not finite")
    return value


def _parse_label(text: str) -> Optional[int]:
    """'' -> None; 0 / 1 (also written 0.0 / 1.0) -> int; anything else is an error."""
    if not text:
        return None
    try:
        value: Optional[float] = float(text)
    except ValueError:
        value = None
    if value not in (0.0, 1.0):
        raise ValueError(f"label {text!r} is not 0 (benign) or 1 (malignant)")
    return int(value)


def _pair_rows(
    csv_path: Path, rows: List[TimepointRow], failed: set, problems: List[CaseProblem]
) -> List[NoduleCase]:
    """Valid rows grouped into nodules (file order); incomplete, repeated or contradictory ones are problems."""
    groups: Dict[Tuple[str, str], Dict[str, List[TimepointRow]]] = {}
    for row in rows:
        groups.setdefault((row.pid, row.nodule), {}).setdefault(row.timepoint, []).append(row)

    def report(reason: str, row: TimepointRow) -> None:
        problems.append(CaseProblem(row.pid, row.nodule, reason, str(csv_path), row.row))

    cases = []
    for key, by_time in groups.items():
        repeats = [(same[0], extra) for same in by_time.values() for extra in same[1:]]
        for first, extra in repeats:
            report(f"duplicate {extra.timepoint} row (also on line {first.row})", extra)
        if repeats or key in failed:
            continue  # ambiguous, or its other row was already reported
        missing = [t for t in TIMEPOINTS if t not in by_time]
        if missing:
            report(f"{missing[0]} row missing", next(iter(by_time.values()))[0])
            continue
        t0, t1 = by_time["T0"][0], by_time["T1"][0]
        if t0.label is not None and t1.label is not None and t0.label != t1.label:
            report(f"labels disagree: {t0.label} on line {t0.row} (T0), {t1.label} on line {t1.row} (T1)", t1)
            continue
        label = t0.label if t0.label is not None else t1.label
        cases.append(NoduleCase(key[0], key[1], t0, t1, label))
    return cases
