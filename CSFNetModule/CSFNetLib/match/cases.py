"""`csfnet match`: the empty x, y, z of a cases.csv filled from the same nodule's point in another scan.

A row with x, y and z empty asks for its nodule to be found in that row's scan, starting from the
nodule's given point in the patient's scan nearest in time (T0, T1, T2, ...). The answer is the same
file with those coordinates filled and three columns more: `match` (`found`, `not present`, `given` for
rows that had a point, or the reason it could not be decided), `match_mm` (how far the found centre lies
from where the lungs' registration alone put it) and `match_note` (why a nodule is not present, or what
to check). Each pair of scans is registered once per patient. A bad row, scan or patient is reported in
its rows and the run carries on.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import SimpleITK as sitk

from ..cohort_csv import CASES_REQUIRED, parse_number, read_csv_rows, scan_number
from ..images import read_image
from ..output_paths import check_output_file
from ..records import PathLike
from ..table_files import write_table
from .nodule import FOUND, NOT_PRESENT, NoduleMatch, match_nodule
from .registration import LungRegistration, NoLungError, register_lungs

GIVEN = "given"
MATCH_COLUMNS = ("match", "match_mm", "match_note")
AXES = ("x", "y", "z")


@dataclass(frozen=True)
class MatchCounts:
    found: int
    not_present: int
    undecided: int
    given: int


@dataclass
class _Row:
    """One cases.csv row: its cells (written back as read) and its place in the file and in time."""

    line: int
    cells: Dict[str, str]
    order: int  # the k of its timepoint Tk

    @property
    def point(self) -> Optional[Tuple[float, float, float]]:
        values = [self.cells.get(axis, "") for axis in AXES]
        if not all(values):
            return None
        x, y, z = (float(v) for v in values)
        return x, y, z

    def answer(self, status: str, match_mm: str = "", note: str = "") -> None:
        self.cells.update(match=status, match_mm=match_mm, match_note=note)


def match_cases(cases_csv: PathLike, out: PathLike, *, overwrite: bool = False,
                progress: Optional[Callable[[int, int], None]] = None) -> MatchCounts:
    """Find every nodule whose point is missing in a scan (empty x, y, z) and write the filled file to `out`."""
    cases_csv, out = Path(cases_csv).resolve(), Path(out)
    check_output_file(out, "the matched cases", overwrite=overwrite)
    header, raw = read_csv_rows(cases_csv, CASES_REQUIRED)
    if not raw:
        raise ValueError(f"{cases_csv}: no cases after the header")
    rows = [_Row(line, dict(zip(header, (v.strip() for v in values))), 0) for line, values in raw]
    patients: Dict[str, Dict[str, List[_Row]]] = {}
    for row, (_, values) in zip(rows, raw):
        problem = _check_row(row) if len(values) == len(header) else (
            f"line {row.line}: {len(values)} values but the header has {len(header)} columns")
        if problem:
            row.answer(problem)
            continue
        patients.setdefault(row.cells["pid"], {}).setdefault(row.cells.get("nodule") or "1", []).append(row)
    for done, nodules in enumerate(patients.values(), start=1):
        _match_patient(cases_csv.parent, nodules)
        if progress is not None:
            progress(done, len(patients))
    columns = list(header) + [name for name in MATCH_COLUMNS if name not in header]
    write_table(out, columns, [dict(row.cells) for row in rows])
    statuses = [row.cells.get("match", "") for row in rows]
    return MatchCounts(statuses.count(FOUND), statuses.count(NOT_PRESENT),
                       sum(1 for s in statuses if s not in (FOUND, NOT_PRESENT, GIVEN)), statuses.count(GIVEN))


def _check_row(row: _Row) -> str:
    """Why the row cannot take part ('' when it can); sets its time order."""
    cells = row.cells
    if not cells.get("pid"):
        return f"line {row.line}: empty pid"
    order = scan_number(cells.get("timepoint", ""))
    if order is None:
        return f"line {row.line}: timepoint {cells.get('timepoint', '')!r} is not T0, T1, T2, ..."
    row.order = order
    if not cells.get("image"):
        return f"line {row.line}: empty image"
    given = [axis for axis in AXES if cells.get(axis, "")]
    if given and len(given) < 3:
        return f"line {row.line}: x, y, z must be all given or all empty (given: {', '.join(given)})"
    for axis in given:
        try:
            parse_number(cells[axis], f"coordinate {axis}")
        except ValueError as exc:
            return f"line {row.line}: {exc}"
    return ""


def _match_patient(folder: Path, nodules: Dict[str, List[_Row]]) -> None:
    """Answer every row of one patient's nodules, reading each scan and registering each pair once."""
    scans: Dict[Path, object] = {}
    registrations: Dict[Tuple[Path, Path], object] = {}

    def scan(path: Path) -> sitk.Image:
        if path not in scans:
            try:
                scans[path] = read_image(path)
            except (ValueError, OSError, RuntimeError) as exc:
                scans[path] = exc
        found = scans[path]
        if isinstance(found, Exception):
            raise found
        assert isinstance(found, sitk.Image)
        return found

    def registration(source: Path, target: Path) -> LungRegistration:
        for key, reverse in (((source, target), False), ((target, source), True)):
            if key in registrations:
                known = registrations[key]
                if isinstance(known, Exception):
                    raise known
                assert isinstance(known, LungRegistration)
                return known.reversed() if reverse else known
        try:
            registrations[(source, target)] = register_lungs(scan(source), scan(target),
                                                             (str(source), str(target)))
        except NoLungError as exc:
            registrations[(source, target)] = exc
        return registration(source, target)

    for rows in nodules.values():
        timepoints = [row.order for row in rows]
        for row in rows:
            if timepoints.count(row.order) > 1:
                row.answer(f"line {row.line}: T{row.order} appears more than once for this nodule")
        rows = [row for row in rows if timepoints.count(row.order) == 1]
        given = [row for row in rows if row.point is not None]
        for row in given:
            row.answer(GIVEN)
        for row in rows:
            if row.point is not None:
                continue
            if not given:
                row.answer("no point given for this nodule in any scan")
                continue
            source = min(given, key=lambda other: (abs(other.order - row.order), other.order))
            assert source.point is not None  # a given row
            source_path, target_path = (_image_path(folder, r.cells["image"]) for r in (source, row))
            if source_path == target_path:
                row.answer(f"the same image as T{source.order}, where the point is given")
                continue
            try:
                match = match_nodule(scan(source_path), source.point, scan(target_path),
                                     registration(source_path, target_path))
            except (ValueError, OSError, RuntimeError) as exc:
                row.answer(str(exc))
                continue
            _answer(row, match, source.order)


def _answer(row: _Row, match: NoduleMatch, source_order: int) -> None:
    """The row's coordinates and match columns from `match` (found from its scan T`source_order`)."""
    moved = match.moved_mm
    if match.found and match.centre_lps is not None:
        row.cells.update({axis: f"{value:.2f}" for axis, value in zip(AXES, match.centre_lps)})
    note = match.note or f"from T{source_order}"
    row.answer(match.status, "" if moved is None else f"{moved:.1f}", note)


def _image_path(folder: Path, image: str) -> Path:
    path = Path(image)
    return path if path.is_absolute() else folder / path
