"""A one-page report per patient (PDF, with a PNG preview) that a person reads: each nodule at every scan
with its outline, its volume over time with the doubling time, the table of measurements, CSF-net's
probability, Lung-RADS and Brock, and the model card with its intended use.

`patient_reports` makes them for a cohort (a finished run's cases.csv and results.csv); `write_report`
draws one from `ReportNodule`s, which the Slicer scene builds too.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from .checkpoint import ModelCard
from .geometry import VoxelGrid
from .measure.segmentation import NoduleMeasurement
from .preprocessing import sample_in_scan
from .records import Cohort, PathLike

CROP_MM = 40.0  # the side of each nodule picture
MAX_NODULES = 3  # on one page; the table lists every nodule
INTENDED_USE = ("Research use only: a second look at a nodule's growth between CT scans. Not a medical device; "
                "not for diagnosis.")


@dataclass(frozen=True)
class ReportScan:
    """A nodule at one scan: the scan, its measurement (None: not measured, with `problem`), its table row."""

    timepoint: str
    days: Optional[float]
    image: Optional[sitk.Image]
    measurement: Optional[NoduleMeasurement]
    row: Mapping[str, object] = field(default_factory=dict)  # the measurements.csv row
    problem: str = ""
    attention: Optional[sitk.Image] = None  # CSF-net's attention heat map at this scan, when one was written


@dataclass(frozen=True)
class ReportNodule:
    label: str
    scans: Sequence[ReportScan]
    probabilities: Mapping[str, float]  # CSF-net's, by pair of scans ("T0-T1")
    brock: Optional[float] = None


def write_report(pid: str, nodules: Sequence[ReportNodule], model: Optional[ModelCard], pdf: PathLike,
                 png: Optional[PathLike] = None) -> None:
    """One A4 page: pictures and volume curves of up to MAX_NODULES nodules (the likeliest malignant first),
    the table of every nodule, the model card."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    shown = sorted(nodules, key=lambda n: -max(n.probabilities.values(), default=0.0))[:MAX_NODULES]
    scans = max((len(n.scans) for n in nodules), default=1)
    figure = plt.figure(figsize=(8.27, 11.69))
    rows = MAX_NODULES  # the same places on every page, whatever the number of nodules
    grid = figure.add_gridspec(rows + 2, scans + 1, height_ratios=[0.3] + [1.0] * rows + [1.2],
                               left=0.06, right=0.97, top=0.95, bottom=0.03, hspace=0.5, wspace=0.25)
    figure.suptitle(f"CSF-net nodule report: patient {pid}", fontsize=14, fontweight="bold", x=0.06, ha="left")
    _model_card(figure.add_subplot(grid[0, :]), model)
    for r, nodule in enumerate(shown, start=1):
        for k, scan in enumerate(nodule.scans):
            _picture(figure.add_subplot(grid[r, k]), nodule.label, scan)
        _volumes(figure.add_subplot(grid[r, scans]), nodule)
    _table(figure.add_subplot(grid[rows + 1, :]), nodules, len(nodules) > len(shown))
    Path(pdf).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(pdf)
    if png is not None:
        figure.savefig(png, dpi=80)
    plt.close(figure)


def patient_reports(cohort: Cohort, out: PathLike, *, probabilities: Mapping[Tuple[str, str, str], float],
                    model: Optional[ModelCard], attention_dir: Optional[PathLike] = None,
                    progress: Optional[Callable[[str], None]] = None) -> List[Path]:
    """`out/<pid>.pdf` and `.png` for every patient of `cohort`, each nodule measured as measurements.csv
    measures it, with the run's attention maps over the pictures when `attention_dir` holds them; the PDFs
    written."""
    from .baselines import CLINICAL_MODELS, clinical_model_scores
    from .measure.cohort import measured_patients

    written = []
    for patient in measured_patients(cohort, progress):
        nodules = []
        for case in patient.cases:
            scans = []
            for row, scan in zip(case.rows, patient.scans[case.nodule]):
                measured = scan.result if isinstance(scan.result, NoduleMeasurement) else None
                try:
                    image = patient.read(row.image)
                except (ValueError, OSError, RuntimeError):
                    image = None
                scans.append(ReportScan(row.timepoint, row.days, image, measured,
                                        patient.rows[case.nodule].get(row.timepoint, {}),
                                        "" if measured else str(scan.result),
                                        _attention(attention_dir, case, row.timepoint)))
            first = scans[0].measurement
            try:
                brock: Optional[float] = clinical_model_scores(case, cohort.clinical.get(case.pid, {}),
                                                               first.size if first else None)[CLINICAL_MODELS[0]]
            except ValueError:
                brock = None
            pairs = [f"{a.timepoint}-{b.timepoint}" for a, b in zip(case.rows, case.rows[1:])]
            nodules.append(ReportNodule(case.nodule, scans, {pair: probabilities[(case.pid, case.nodule, pair)]
                                                             for pair in pairs
                                                             if (case.pid, case.nodule, pair) in probabilities},
                                        brock))
        pdf = Path(out) / f"{patient.pid}.pdf"
        write_report(patient.pid, nodules, model, pdf, pdf.with_suffix(".png"))
        written.append(pdf)
    return written


def _attention(folder: Optional[PathLike], case, timepoint: str) -> Optional[sitk.Image]:
    """The heat map `csfnet predict --attention-dir` wrote for the nodule at `timepoint` (of the pair ending
    there; the baseline's of the first pair), if any."""
    from .prediction import attention_stem

    if folder is None:
        return None
    names = [row.timepoint for row in case.rows]
    k = names.index(timepoint)
    pair = f"{names[k - 1]}-{timepoint}" if k else f"{timepoint}-{names[1]}"
    found = sorted(Path(folder).glob(attention_stem(Path(folder), case.pid, case.nodule, pair, timepoint, "*").name
                                     + "-heat.nrrd"))
    return sitk.ReadImage(str(found[0])) if found else None


def _model_card(axes, model: Optional[ModelCard]) -> None:
    axes.axis("off")
    if model is None:
        lines = ["Model: none (measurements only)."]
    else:
        lines = [f"Model: {model.name} {model.version}", f"Trained on: {model.note or 'not stated by the checkpoint'}"]
    lines.append(f"Intended use: {INTENDED_USE}")
    if model is not None and "synthetic" in model.note.lower():
        lines.append("These weights were trained on synthetic phantoms: the probability is a demonstration, "
                     "not a clinical result.")
    text = axes.text(0.0, 1.0, "\n".join(lines), va="top", fontsize=8, wrap=True)
    if model is not None and "synthetic" in model.note.lower():
        text.set_color("#b00000")


def _picture(axes, label: str, scan: ReportScan) -> None:
    """An axial crop through the nodule's centre with the outline of its mask."""
    axes.set_xticks([])
    axes.set_yticks([])
    when = f"{scan.timepoint}" + (f", day {scan.days:g}" if scan.days is not None else "")
    if scan.measurement is None or scan.image is None:
        axes.text(0.5, 0.5, f"not measured:\n{scan.problem[:80]}", ha="center", va="center", fontsize=6,
                  wrap=True)
        axes.set_title(f"nodule {label}, {when}", fontsize=8)
        return
    segmentation = scan.measurement.segmentation
    n = int(round(CROP_MM / segmentation.voxel_mm))
    crop = VoxelGrid.centred(segmentation.centre_lps, (1, n, n), (segmentation.voxel_mm,) * 3)
    hu, _ = sample_in_scan(scan.image, crop)
    axes.imshow(hu[0], cmap="gray", vmin=-1000, vmax=200)
    index = np.round(segmentation.grid.lps_to_index_zyx(crop.index_zyx_to_lps(
        np.indices((1, n, n)).reshape(3, -1).T))).astype(int)
    inside = np.all((index >= 0) & (index < np.asarray(segmentation.whole.shape)), axis=1)
    mask = np.zeros(len(index), bool)
    mask[inside] = segmentation.whole[tuple(index[inside].T)]
    if scan.attention is not None:  # the heat map where the model looked, over the scan
        heat, seen = sample_in_scan(scan.attention, crop)
        heat = np.where(seen & (heat > 0), heat, np.nan)[0]
        axes.imshow(heat, cmap="inferno", alpha=0.45, vmin=0.0, vmax=1.0)
    if mask.any():
        axes.contour(mask.reshape(n, n), levels=[0.5], colors="#ffcc00", linewidths=0.8)
    size = scan.measurement.size
    axes.set_title(f"nodule {label}, {when}\n{size.diameter_mm:.1f} mm, {size.volume_mm3:.0f} mm³, {size.type}",
                   fontsize=7)


def _volumes(axes, nodule: ReportNodule) -> None:
    """Volume against days (or scan number) with each interval's doubling time."""
    points = [(scan.days if scan.days is not None else k, scan.measurement.size.volume_mm3)
              for k, scan in enumerate(nodule.scans) if scan.measurement is not None]
    if points:
        axes.plot([x for x, _ in points], [y for _, y in points], "o-", color="#1f77b4")
    for k, scan in enumerate(nodule.scans):
        vdt = scan.row.get("vdt_days", "")
        if k and vdt not in ("", None) and scan.measurement is not None:
            when = scan.days if scan.days is not None else k
            axes.annotate(f"VDT {vdt} d", (when, scan.measurement.size.volume_mm3), fontsize=6,
                          textcoords="offset points", xytext=(-30, 6))
    axes.set_xlabel("days" if all(s.days is not None for s in nodule.scans) else "scan", fontsize=7)
    axes.set_ylabel("volume (mm³)", fontsize=7)
    axes.tick_params(labelsize=6)
    axes.set_title(f"nodule {nodule.label}: volume", fontsize=8)


def _table(axes, nodules: Sequence[ReportNodule], more: bool) -> None:
    axes.axis("off")
    header = ["nodule", "scan", "volume mm³", "diameter mm", "type", "VDT d", "Lung-RADS", "CSF-net p", "Brock"]
    cells = []
    for nodule in nodules:
        for k, scan in enumerate(nodule.scans):
            pair = f"{nodule.scans[k - 1].timepoint}-{scan.timepoint}" if k else ""
            p = nodule.probabilities.get(pair)
            row = scan.row
            cells.append([nodule.label, scan.timepoint, _cell(row.get("volume_mm3")), _cell(row.get("diameter_mm")),
                          _cell(row.get("type")), _cell(row.get("vdt_days")), _cell(row.get("lung_rads")),
                          "" if p is None else f"{p:.2f}",
                          "" if k or nodule.brock is None else f"{nodule.brock:.2f}"])
    table = axes.table(cellText=cells or [[""] * len(header)], colLabels=header, loc="upper center",
                       cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.scale(1.0, 1.1)
    notes = ["VDT: volume doubling time against the scan before. CSF-net p: probability of malignancy for the pair "
             "ending at that scan. Brock: the Brock (PanCan) model at the first scan."]
    if more:
        notes.append(f"Pictures show the {MAX_NODULES} nodules with the highest CSF-net probability.")
    axes.text(0.0, 0.0, " ".join(notes), fontsize=6.5, va="bottom", wrap=True)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value)
