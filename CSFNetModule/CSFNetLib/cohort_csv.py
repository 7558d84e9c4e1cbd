"""Reading a cohort's CSV files: cases.csv (a nodule's scan and point at each time point) and clinical.csv.

The formats are defined in docs/data-formats.md. The reader never stops at one bad case: a problem
with a row or a nodule becomes a `CaseProblem` (file, line, patient, nodule, reason) and the other
cases are still read, so a batch run reports every skipped case and why. What makes the whole file
unusable (missing, empty, not UTF-8, required columns absent) raises instead.
"""

import csv
import io
import math
import re
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union, cast

from .records import CaseProblem, Cohort, NoduleCase, PathLike, TimepointRow

CASES_REQUIRED = ("pid", "timepoint", "image", "x", "y", "z")
CASES_KNOWN = CASES_REQUIRED + ("nodule", "label", "days")


def read_cohort(cases_csv: PathLike, clinical_csv: Optional[PathLike] = None) -> Cohort:
    """Read cases.csv (and clinical.csv when given; without it every patient's clinical data is missing)."""
    cases_csv = Path(cases_csv).resolve()  # one spelling in every message, whatever the working folder
    header, rows = read_csv_rows(cases_csv, CASES_REQUIRED)
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
    return Cohort(cases=cases, clinical=clinical, problems=problems, cases_csv=cases_csv)


def _check_clinical_rows(clinical_csv: Path, pids: List[str], clinical: Dict[str, Dict[str, str]]) -> None:
    """A clinical.csv matching none of the patients is refused (the ids differ, e.g. leading zeros lost in
    a spreadsheet); one missing some patients is a warning, since their clinical data count as missing."""
    patients = list(dict.fromkeys(pids))
    absent = [pid for pid in patients if pid not in clinical]
    if not absent:
        return
    example = ", ".join(repr(pid) for pid in absent[:3])
    folded = {pid.strip().lower(): pid for pid in clinical}
    near = [(pid, folded[pid.strip().lower()]) for pid in absent if pid.strip().lower() in folded]
    hint = (f"; {near[0][0]!r} has a row written {near[0][1]!r}: ids are compared exactly, letter case included"
            if near else "")
    if len(absent) == len(patients):
        raise ValueError(f"{clinical_csv}: none of the {len(patients)} patients of the cases file has a row here "
                         f"(e.g. {example}); ids are compared as text: look for lost leading zeros or other ids{hint}")
    warnings.warn(f"{clinical_csv}: {len(absent)} of {len(patients)} patients have no row (e.g. {example}); "
                  f"their clinical data count as missing{hint}", stacklevel=3)


def read_clinical(clinical_csv: PathLike) -> Dict[str, Dict[str, str]]:
    """clinical.csv as pid -> {column: value} (all columns kept); an empty or repeated pid or a short row raises."""
    clinical_csv = Path(clinical_csv)
    header, rows = read_csv_rows(clinical_csv, ("pid",))
    if {"timepoint", "image"} <= set(header):
        raise ValueError(f"{clinical_csv}: a cases file (timepoint, image, x, y, z columns), not clinical data: "
                         "give it as the cases and the clinical.csv as the clinical data")
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


def read_csv_rows(path: Path, required: Sequence[str]) -> Tuple[List[str], List[Tuple[int, List[str]]]]:
    """Header (names stripped) and non-blank rows with their line numbers; file-level problems raise."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    raw = path.read_bytes()
    if raw.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):  # zip (.xlsx, .ods) or OLE (.xls)
        raise ValueError(f"{path}: a spreadsheet workbook (Excel or LibreOffice), not CSV: save it as CSV UTF-8")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        reason = f"not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
        raise ValueError(f"{path}:{line}: {reason}") from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_separator(text))
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


def _separator(text: str) -> str:
    """The header line's separator: a comma, else the semicolon of European spreadsheets, else a tab."""
    header = text.split("\n", 1)[0]
    return next((separator for separator in ",;\t" if separator in header), ",")


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
    if scan_number(timepoint) is None:
        return problem(f"timepoint {cells['timepoint']!r} is not T0, T1, T2, ...")
    if not cells["image"]:
        return problem(f"{timepoint}: empty image")
    if not any(cells[axis] for axis in ("x", "y", "z")):
        found = cells.get("match", "")
        return problem(f"{timepoint}: no point (x, y, z empty)" + (f"; csfnet match said: {found}" if found else
                       "; csfnet match finds it from the nodule's point in another scan"))
    try:
        centre = cast(Tuple[float, float, float],  # one number per axis
                      tuple(parse_number(cells[axis], f"coordinate {axis}") for axis in ("x", "y", "z")))
        label = parse_label(cells.get("label", ""))
        days = parse_number(cells["days"], "days") if cells.get("days") else None
    except ValueError as exc:
        return problem(f"{timepoint}: {exc}")
    image = Path(cells["image"])
    if not image.is_absolute():
        image = csv_path.resolve().parent / image
        if not image.exists() and Path(cells["image"]).exists():
            return problem(f"{timepoint}: {image}: no such file; image paths in a cases file are relative to its "
                           f"folder, and {cells['image']} is a file relative to the current folder: give its path "
                           f"from {csv_path.resolve().parent}, or an absolute one")
    extra = {name: value for name, value in cells.items() if name and name not in CASES_KNOWN}
    return TimepointRow(line, pid, nodule, timepoint, image, centre, label, days, extra)


MAX_NUMBER = 1e6  # no coordinate (mm) or day count in a patient's history comes near this


def parse_number(text: str, what: str) -> float:
    """A finite float from a CSV cell; ValueError naming `what` and the text otherwise."""
    try:
        value = float(text)
    except ValueError:
        if re.fullmatch(r"[+-]?\d+,\d+", text.strip()):  # a European spreadsheet's decimal comma
            raise ValueError(f"{what} = {text!r}: use a decimal point ({text.replace(',', '.')})") from None
        raise ValueError(f"{what} = {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} = {text!r} is not finite")
    if abs(value) > MAX_NUMBER:
        raise ValueError(f"{what} = {text!r} is too large for a position in a scan (mm) or a number of days")
    return value


def parse_label(text: str) -> Optional[int]:
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
        if len(by_time) < 2:
            (only,) = by_time.values()
            report(f"{'T1' if only[0].timepoint == 'T0' else 'T0'} row missing", only[0])
            continue
        history = tuple(sorted((rows[0] for rows in by_time.values()), key=lambda r: scan_number(r.timepoint) or 0))
        labels = {row.label for row in history if row.label is not None}
        if len(labels) > 1:
            said = ", ".join(f"{row.label} on line {row.row} ({row.timepoint})" for row in history
                             if row.label is not None)
            report(f"labels disagree: {said}", history[-1])
            continue
        backwards = next(((a, b) for a, b in zip(history, history[1:])
                          if a.days is not None and b.days is not None and b.days <= a.days), None)
        if backwards:
            a, b = backwards
            report(f"days do not increase: {b.timepoint} (line {b.row}) at {b.days:g} days, {a.timepoint} (line "
                   f"{a.row}) at {a.days:g}: the scans must be in time order", b)
            continue
        for a, b in zip(history, history[1:]):
            if a.image.resolve() == b.image.resolve():
                warnings.warn(f"{csv_path}: patient {a.pid} nodule {a.nodule}: {a.timepoint} (line {a.row}) and "
                              f"{b.timepoint} (line {b.row}) name the same image {b.image.name}: no change between "
                              "the scans can be seen", stacklevel=3)
        label = labels.pop() if labels else None
        cases += [NoduleCase(key[0], key[1], before, after, label, history if len(history) > 2 else ())
                  for before, after in zip(history, history[1:])]
    _warn_of_repeated_points(cases)
    return cases


def _warn_of_repeated_points(cases: List[NoduleCase], within_mm: float = 2.0) -> None:
    """Two nodules of a patient at the same point of the same scan are most likely one nodule entered twice."""
    seen: Dict[Tuple[str, Path], List[TimepointRow]] = {}
    warned = set()
    for row in {id(r): r for case in cases for r in (case.t0, case.t1)}.values():
        for other in seen.setdefault((row.pid, row.image.resolve()), []):
            pair = (row.pid, other.nodule, row.nodule)
            if other.nodule != row.nodule and pair not in warned and math.dist(other.center_lps,
                                                                                row.center_lps) <= within_mm:
                warned.add(pair)
                warnings.warn(f"patient {row.pid}: nodules {other.nodule} (line {other.row}) and {row.nodule} (line "
                              f"{row.row}) are at the same point of {row.image.name}: the same nodule twice?",
                              stacklevel=3)
        seen[(row.pid, row.image.resolve())].append(row)


def scan_number(timepoint: str) -> Optional[int]:
    """k of a timepoint written Tk (T0 the baseline, T1, T2, ... the follow-ups); None for anything else."""
    match = re.fullmatch(r"T(\d+)", timepoint.strip().upper())
    return int(match.group(1)) if match else None
