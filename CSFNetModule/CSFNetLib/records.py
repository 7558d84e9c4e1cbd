"""The records the library passes around: a cohort's cases, one nodule ready for the network, a skipped case.

Readers (cases.csv, NLST-cmst, the Slicer scene) make them; the dataset, splits, inference and
scene logic use them without depending on any reader.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple, Union

import numpy as np

PathLike = Union[str, Path]
PointLPS = Tuple[float, float, float]
TIMEPOINTS = ("T0", "T1")  # a two-scan nodule's; more scans go on T2, T3, ...


@dataclass(frozen=True)
class CaseProblem:
    """Why one case (a patient's nodule) was skipped; `row` is the line in `file` (header = line 1)."""

    pid: str
    nodule: str
    reason: str
    file: str = ""
    row: Optional[int] = None
    scans: str = ""  # the pair of scans (e.g. T1-T2) when the problem is with one assessment of the nodule

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
    """One assessment of a nodule: an earlier scan's row (`t0`, the baseline) and the next scan's (`t1`).

    A nodule seen in more than two scans (T0, T1, T2, ...) is assessed at each follow-up against the scan
    before it; `history` holds all its rows in time order (just `t0` and `t1` for a two-scan nodule).
    """

    pid: str
    nodule: str
    t0: TimepointRow
    t1: TimepointRow
    label: Optional[int]
    history: Tuple[TimepointRow, ...] = ()

    @property
    def scans(self) -> str:
        """The pair assessed, as results.csv names it: "T1-T2"."""
        return f"{self.t0.timepoint}-{self.t1.timepoint}"

    @property
    def rows(self) -> Tuple[TimepointRow, ...]:
        """Every scan of the nodule, in time order."""
        return self.history or (self.t0, self.t1)


def cases_by_patient(cases: Iterable[NoduleCase]) -> Dict[str, List[NoduleCase]]:
    """The cases grouped by patient: patients in the order of their first case, each one's cases in order."""
    patients: Dict[str, List[NoduleCase]] = {}
    for case in cases:
        patients.setdefault(case.pid, []).append(case)
    return patients


@dataclass
class Cohort:
    """The cases of a cases.csv, the clinical rows by patient, and the problems met while reading
    (made by `CSFNetLib.cohort_csv.read_cohort`)."""

    cases: List[NoduleCase]
    clinical: Dict[str, Dict[str, str]]
    problems: List[CaseProblem]
    cases_csv: Path


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
    measurements: Optional[List[Dict[str, object]]] = None  # the nodule's measurements.csv rows, every scan
    scans: str = "T0-T1"  # the pair of scans assessed (`NoduleCase.scans`)
