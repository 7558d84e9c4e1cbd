"""Writing a synthetic cohort in the files a real user brings (docs/data-formats.md).

    DIR/images/{pid}_T0.nrrd, {pid}_T1.nrrd   CT in HU, int16, compressed NRRD (and T2, ... with more scans)
    DIR/cases.csv      pid, nodule, timepoint, image, x, y, z (LPS mm), label, days, then the nodule
                       facts the clinical models need: diameter_mm, nodule_type, spiculation,
                       upper_lobe, nodule_count (and margin, attachment, course for analysis)
    DIR/clinical.csv   pid and the six NLST fields (empty = missing), then family_history,
                       emphysema, prior_cancer (extrathoracic cancer > 5 years ago, for Mayo)
    DIR/motion.csv     how each patient lay at each scan against the baseline (the truth a registration
                       is judged by): pid, timepoint, rotation_deg, shift_mm (of the carina), breath
    DIR/cohort.json    how it was made: seed, size, motion, counts, version
"""

import csv
import json
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from ..clinical import FIELDS
from ..errors import UnusableOptions
from ..parallel import ordered_map
from ..version import __version__
from .patient import SyntheticPatient, synthesize_patient
from .scanner import MOTIONS, SLICE_THICKNESSES

CASES_COLUMNS = ("pid", "nodule", "timepoint", "image", "x", "y", "z", "label", "days", "diameter_mm",
                 "nodule_type", "spiculation", "upper_lobe", "nodule_count", "margin", "attachment", "course")
CLINICAL_COLUMNS = ("pid", *FIELDS, "family_history", "emphysema", "prior_cancer")
MOTION_COLUMNS = ("pid", "timepoint", "rotation_deg", "shift_mm", "breath")
MAX_SCANS = 5  # screening rounds a synthetic patient may have
PatientRows = Tuple[List[Dict], Dict, List[Dict]]  # cases.csv, clinical.csv and motion.csv rows


def _patient_rows(seed: int, index: int, size: str, out: Path, slice_mm: Sequence[float], motion: str,
                  scans: int) -> PatientRows:
    """Generate patient `index`, write its scans, return its rows of the cohort's CSV files."""
    patient = synthesize_patient(seed, index, size, slice_mm, MOTIONS[motion], scans)
    spec = patient.spec
    for timepoint in patient.images:
        sitk.WriteImage(patient.images[timepoint], str(out / "images" / f"{spec.pid}_{timepoint}.nrrd"),
                        useCompression=True)
    rows = []
    for nodule in patient.nodules:
        for k, timepoint in enumerate(patient.images):
            x, y, z = patient.nodule_center_lps(nodule, timepoint)
            rows.append({
                "pid": spec.pid, "nodule": nodule.nodule_id, "timepoint": timepoint,
                "image": f"images/{spec.pid}_{timepoint}.nrrd", "x": f"{x:.2f}", "y": f"{y:.2f}", "z": f"{z:.2f}",
                "label": nodule.label, "days": k * spec.interval_days,
                "diameter_mm": f"{nodule.diameter(timepoint):.1f}", "nodule_type": nodule.kind_at(timepoint),
                "spiculation": int(nodule.margin == "spiculated"), "upper_lobe": int(bool(nodule.upper_lobe)),
                "nodule_count": len(patient.nodules), "margin": nodule.margin, "attachment": nodule.attachment,
                "course": nodule.course,
            })
    clinical = {"pid": spec.pid, **{f: "" if spec.clinical[f] is None else spec.clinical[f] for f in FIELDS},
                "family_history": int(spec.family_history), "emphysema": int(spec.emphysema),
                "prior_cancer": int(spec.prior_cancer)}
    return rows, clinical, _motion_rows(patient)


def _motion_rows(patient: SyntheticPatient) -> List[Dict]:
    """Each scan's pose against the baseline's: the rotation between them, how far the carina moved, the breath."""
    baseline = patient.acquisitions["T0"].pose
    rows = []
    for timepoint, acquisition in patient.acquisitions.items():
        turn = acquisition.pose.matrix @ baseline.matrix.T
        angle = np.degrees(np.arccos(np.clip((np.trace(turn) - 1.0) / 2.0, -1.0, 1.0)))
        shift = np.linalg.norm(np.subtract(acquisition.pose.translation, baseline.translation))  # the body origin's
        rows.append({"pid": patient.spec.pid, "timepoint": timepoint, "rotation_deg": f"{angle:.2f}",
                     "shift_mm": f"{shift:.2f}", "breath": f"{acquisition.breath:.4f}"})
    return rows


def _work(job):
    return _patient_rows(*job)


def write_cohort(
    out: Path,
    cases: int,
    seed: int,
    size: str = "small",
    workers: int = 1,
    progress: Optional[Callable[[int, int], None]] = None,
    slice_mm: Sequence[float] = SLICE_THICKNESSES,
    motion: str = "usual",
    scans: int = 2,
) -> Dict:
    """Generate `cases` patients of `scans` scans each into `out` (which must not exist or be empty), their
    scans' slice thicknesses drawn from `slice_mm`, their follow-up poses from `MOTIONS[motion]`; returns the
    summary."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose a new folder (nothing is overwritten)")
    if cases < 1:
        raise UnusableOptions("{cases} must be at least 1, got {count}", count=cases)
    if not slice_mm or min(slice_mm) <= 0:
        raise UnusableOptions("{slice_mm} must be positive thicknesses in mm, got {values}",
                              values=" ".join(f"{t:g}" for t in slice_mm) or "none")
    if not 2 <= scans <= MAX_SCANS:
        raise UnusableOptions("{scans} must be 2 to {most}, got {count}", most=MAX_SCANS, count=scans)
    if motion not in MOTIONS:
        raise UnusableOptions("{motion} must be one of {choices}, got {value}", choices=", ".join(MOTIONS),
                              value=motion)
    (out / "images").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    jobs = [(seed, index, size, out, tuple(slice_mm), motion, scans) for index in range(cases)]
    results = []
    for done, result in enumerate(ordered_map(_work, jobs, workers), start=1):
        results.append(result)
        if progress:
            progress(done, cases)
    case_rows = [row for rows, _, _ in results for row in rows]
    _write_csv(out / "cases.csv", CASES_COLUMNS, case_rows)
    _write_csv(out / "clinical.csv", CLINICAL_COLUMNS, [clinical for _, clinical, _ in results])
    _write_csv(out / "motion.csv", MOTION_COLUMNS, [row for _, _, rows in results for row in rows])
    nodules = [row for row in case_rows if row["timepoint"] == "T0"]
    summary = {
        "generator": f"csfnet {__version__} synth",
        "note": "synthetic phantoms, not patient data",
        "seed": seed, "size": size, "slice_mm": list(slice_mm), "motion": motion, "scans": scans, "patients": cases,
        "nodules": len(nodules),
        "malignant": sum(int(row["label"]) for row in nodules),
        "seconds": round(time.perf_counter() - started, 1), "workers": workers,
    }
    (out / "cohort.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _write_csv(path: Path, columns, rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)

