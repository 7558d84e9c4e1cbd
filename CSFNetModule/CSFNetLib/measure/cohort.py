"""`csfnet measure`: every nodule of a cases.csv at every scan -> measurements.csv (+ mask label maps).

One row per nodule per scan (T0, T1, T2, ...): its refined centre, volumes, axes, mean and solid diameters,
type; at each follow-up, growth against the scan before (VDT, diameter change, BTS class) and the Lung-RADS
category.
A nodule that cannot be measured gets a row with its error and the run carries on. Masks are label
maps (1 ground glass, 2 solid) on the scan's own grid, cut to the nodule, so they sit on it in any viewer.
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
import SimpleITK as sitk

from ..cohort_csv import read_cohort
from ..geometry import VoxelGrid
from ..images import PatientScans
from ..output_paths import check_output_file
from ..preprocessing import resample_to_grid
from ..records import Cohort, NoduleCase, PathLike, TimepointRow, cases_by_patient
from ..table_files import write_table
from .growth import growth_class, lung_rads, volume_doubling_days
from .segmentation import NoduleMeasurement, OnlyLungError, measure_nodule
from .size import NoduleSize

COLUMNS = ("pid", "nodule", "timepoint", "days", "x", "y", "z", "volume_mm3", "solid_volume_mm3", "diameter_mm",
           "long_axis_mm", "short_axis_mm", "solid_diameter_mm", "type", "vdt_days", "growth_mm", "growth_class",
           "lung_rads", "lung_rads_reason", "flags", "error")


@dataclass(frozen=True)
class MeasureCounts:
    measured: int
    failed: int


def measure_cohort(cases_csv: PathLike, out: PathLike, *, masks_dir: Optional[PathLike] = None,
                   overwrite: bool = False, progress: Optional[Callable[[str], None]] = None) -> MeasureCounts:
    """Measure every nodule of `cases_csv` at every scan into `out` (written whole at the end)."""
    out, masks = Path(out), Path(masks_dir) if masks_dir is not None else None
    check_output_file(out, "measurements", overwrite=overwrite)
    if masks is not None and masks.exists() and not masks.is_dir():
        raise ValueError(f"{masks}: not a folder for masks")
    cohort = read_cohort(cases_csv)
    if masks is not None:
        masks.mkdir(parents=True, exist_ok=True)
    rows: List[Dict[str, object]] = [_failed_row(p.pid, p.nodule, "", str(p)) for p in cohort.problems]
    scans = PatientScans()
    nodules = list({(case.pid, case.nodule): case for case in cohort.cases}.values())  # each once, in file order
    for i, case in enumerate(nodules):
        if i > 0 and case.pid != nodules[i - 1].pid:  # kept until the next patient's case (file order)
            scans.clear()
        if progress is not None:
            progress(f"patient {case.pid} nodule {case.nodule}")
        rows += measure_case(case, lambda row: scans(row.image), masks)
    write_measurements(out, rows)
    measured = sum(1 for row in rows if not row["error"])
    return MeasureCounts(measured, len(rows) - measured)


def write_measurements(out: PathLike, rows: List[Dict[str, object]]) -> None:
    """measurements.csv, in place only when whole."""
    write_table(out, COLUMNS, rows)


def measure_case(case: NoduleCase, scan_of: Callable[[TimepointRow], sitk.Image],
                 masks: Optional[Path] = None) -> List[Dict[str, object]]:
    """The measurements.csv rows of one nodule at every scan: each scan from `scan_of`, masks written to `masks`."""
    scans = measure_scans(case, scan_of)
    for row, scan in zip(case.rows, scans):
        if masks is not None and isinstance(scan.result, NoduleMeasurement):
            name = f"{case.pid}_{case.nodule}_{row.timepoint}.nrrd"
            sitk.WriteImage(_label_map(scan.result, scan_of(row)), str(masks / name), useCompression=True)
    return nodule_rows(case.pid, case.nodule, scans)


@dataclass(frozen=True)
class MeasuredPatient:
    """A patient's nodules measured at every scan: what measurements.csv says of them, with the masks."""

    pid: str
    cases: List[NoduleCase]  # each nodule once, in file order
    scans: Dict[str, List["ScanMeasurement"]]  # by nodule, in time order
    rows: Dict[str, Dict[str, Dict[str, object]]]  # by nodule and timepoint: the measurements.csv row
    read: PatientScans  # the patient's scans, each read once

    @property
    def timepoints(self) -> List[str]:
        """The patient's scans in time order (T0, T1, ...)."""
        return sorted({row.timepoint for case in self.cases for row in case.rows}, key=lambda t: int(t[1:]))


def measured_patients(cohort: Cohort, progress: Optional[Callable[[str], None]] = None) -> Iterator[MeasuredPatient]:
    """Every patient of `cohort` in turn, each nodule measured at every scan (as `measure_cohort` does)."""
    read = PatientScans()
    for pid, cases in cases_by_patient(cohort.cases).items():
        read.clear()
        if progress is not None:
            progress(f"patient {pid}")
        nodules = each_nodule_once(cases)
        scans = {case.nodule: measure_scans(case, lambda row: read(row.image)) for case in nodules}
        rows = {nodule: {str(row["timepoint"]): row for row in nodule_rows(pid, nodule, scans[nodule])}
                for nodule in scans}
        yield MeasuredPatient(pid, nodules, scans, rows, read)


def each_nodule_once(cases: Sequence[NoduleCase]) -> List[NoduleCase]:
    """One patient's cases, each nodule's first only, in order: a nodule's assessments (T0-T1, T1-T2, ...)
    share its scans, and it is measured once at every scan."""
    first: Dict[str, NoduleCase] = {}
    for case in cases:
        first.setdefault(case.nodule, case)
    return list(first.values())


def measure_scans(case: NoduleCase, scan_of: Callable[[TimepointRow], sitk.Image]) -> List["ScanMeasurement"]:
    """One nodule measured at every scan (each from `scan_of`), or why it could not be, in time order."""
    scans = []
    for row in case.rows:
        only_lung = False
        try:
            measurement: Union[NoduleMeasurement, str] = measure_nodule(scan_of(row), row.center_lps)
        except (ValueError, OSError, RuntimeError) as exc:
            measurement, only_lung = f"{row.image}: {exc}", isinstance(exc, OnlyLungError)
        scans.append(ScanMeasurement(row.timepoint, row.days, measurement, only_lung))
    return scans


@dataclass(frozen=True)
class ScanMeasurement:
    """One nodule at one scan: when (days from the first scan, when known) and its measurement or why there is none;
    `only_lung` when nothing but lung lies at its point (after an earlier scan that measured it: it has resolved)."""

    timepoint: str
    days: Optional[float]
    result: Union[NoduleMeasurement, str]
    only_lung: bool = False


@dataclass(frozen=True)
class ScanSize:
    """A `ScanMeasurement` without the masks (small enough to pass between processes): the size or why none."""

    timepoint: str
    days: Optional[float]
    size: Union[NoduleSize, str]
    only_lung: bool = False


def patient_sizes(cases: Sequence[NoduleCase]) -> Dict[str, Dict[str, ScanSize]]:
    """One patient's nodules, each measured once at every scan (each scan read once): by nodule, by timepoint."""
    read = PatientScans()
    return {case.nodule: {scan.timepoint: ScanSize(scan.timepoint, scan.days, _size(scan.result), scan.only_lung)
                          for scan in measure_scans(case, lambda row: read(row.image))}
            for case in each_nodule_once(cases)}


def _size(result: Union[NoduleMeasurement, str]) -> Union[NoduleSize, str]:
    """A measurement's size, or why there is none."""
    return result.size if isinstance(result, NoduleMeasurement) else result


def nodule_rows(pid: str, nodule: str, scans: Sequence[ScanMeasurement]) -> List[Dict[str, object]]:
    """The measurements.csv rows of one nodule over its scans in time order; growth (VDT, diameter change, BTS
    class) and the Lung-RADS category at each scan are against the last earlier scan where it was measured."""
    rows: List[Dict[str, object]] = []
    previous: Optional[ScanMeasurement] = None
    for scan in scans:
        if not isinstance(scan.result, NoduleMeasurement):
            rows.append(_failed_row(pid, nodule, scan.timepoint, scan.result))
            continue
        row = _row(pid, nodule, scan.timepoint, scan.days, scan.result)
        size = scan.result.size
        if previous is None or not isinstance(previous.result, NoduleMeasurement):
            row.update(_category(lung_rads(size)))
        else:
            before = previous.result.size
            days = scan.days - previous.days if scan.days is not None and previous.days is not None else None
            row.update(_category(lung_rads(size, before, days)))
            row["growth_mm"] = round(size.diameter_mm - before.diameter_mm, 1)
            if days:
                vdt = volume_doubling_days(before.volume_mm3, size.volume_mm3, days)
                row["vdt_days"] = "inf" if math.isinf(vdt) else round(vdt)
                row["growth_class"] = growth_class(before.volume_mm3, size.volume_mm3, days)
        rows.append(row)
        previous = scan
    return rows


def _row(pid: str, nodule: str, timepoint: str, days: Optional[float],
         measurement: NoduleMeasurement) -> Dict[str, object]:
    size, centre = measurement.size, measurement.segmentation.centre_lps
    values: Dict[str, object] = dict.fromkeys(COLUMNS, "")
    values.update(pid=pid, nodule=nodule, timepoint=timepoint, days="" if days is None else days,
                  x=round(float(centre[0]), 2), y=round(float(centre[1]), 2), z=round(float(centre[2]), 2),
                  volume_mm3=round(size.volume_mm3, 1), solid_volume_mm3=round(size.solid_volume_mm3, 1),
                  diameter_mm=round(size.diameter_mm, 1), long_axis_mm=round(size.long_axis_mm, 1),
                  short_axis_mm=round(size.short_axis_mm, 1), solid_diameter_mm=round(size.solid_diameter_mm, 1),
                  type=size.type, flags="; ".join(measurement.segmentation.flags))
    return values


def _failed_row(pid: str, nodule: str, timepoint: str, error: str) -> Dict[str, object]:
    values: Dict[str, object] = dict.fromkeys(COLUMNS, "")
    values.update(pid=pid, nodule=nodule, timepoint=timepoint, error=error)
    return values


def _category(category) -> Dict[str, object]:
    return {"lung_rads": category.category, "lung_rads_reason": category.reason}


def _label_map(measurement: NoduleMeasurement, scan: sitk.Image) -> sitk.Image:
    """The nodule's mask (1 ground glass, 2 solid) on the scan's own grid, cut to the nodule's box."""
    segmentation = measurement.segmentation
    labels = segmentation.whole.astype(np.float32) + segmentation.solid.astype(np.float32)
    index = np.argwhere(segmentation.whole)
    low, high = index.min(axis=0), index.max(axis=0)
    box = np.array([[z, y, x] for z in (low[0], high[0]) for y in (low[1], high[1]) for x in (low[2], high[2])])
    _, part = VoxelGrid.of_image(scan).covering(segmentation.grid.index_zyx_to_lps(box), margin=2)
    resampled = resample_to_grid(segmentation.grid.image(labels), part, sitk.sitkLinear, 0.0)
    return part.image(np.round(resampled).astype(np.uint8))
