"""How well nodule measurement (`CSFNetLib.measure.segmentation.measure_nodule`) recovers the truth, and how fast.

    python benchmarks/measure_accuracy.py --patients 40 --out docs/measure-accuracy.md [--csv rows.csv]
    python benchmarks/measure_accuracy.py --patients 3            # a quick look

Generates synthetic patients (`synthesize_patient(seed, i, "small")`), and for every nodule at every
scan where it exists measures it from its centre moved by a random offset (uniform in a ball of
--jitter-mm, as a reader's click would be), then compares with the generator's own shape
(`synth.truth.true_size`: the drawn shape before the scan's resampling, blur and noise). Reports
markdown tables by true type x size band of the true mean diameter, by attachment and by slice
thickness: the median and 90th percentile of |volume error| (%) and |mean-diameter error| (mm) over the
nodules found, the share whose type is right, the share not found (NoNoduleError) and other errors;
then the time per measurement (median, 90th percentile, slowest). --csv writes one row per measurement.
"""

import argparse
import csv
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CSFNetModule"))

from CSFNetLib.measure.size import TYPES  # noqa: E402
from CSFNetLib.synth import synthesize_patient  # noqa: E402
from CSFNetLib.synth.patient import TIMEPOINTS  # noqa: E402
from CSFNetLib.synth.scanner import SLICE_THICKNESSES  # noqa: E402
from CSFNetLib.synth.truth import true_size  # noqa: E402

BANDS = ((0.0, 6.0, "< 6 mm"), (6.0, 8.0, "6 to < 8 mm"), (8.0, 15.0, "8 to < 15 mm"), (15.0, np.inf, ">= 15 mm"))
ATTACHMENTS = ("free", "pleural", "vascular")


@dataclass
class Row:
    """One measurement of one nodule in one scan, against its truth."""

    pid: str
    nodule_id: int
    timepoint: str
    kind: str  # the generator's kind at that scan
    margin: str
    attachment: str
    thickness_mm: float
    cut_by_edge: bool  # the nodule's reach (bumps, spicules) leaves the scan
    true_volume_mm3: float
    true_solid_volume_mm3: float
    true_diameter_mm: float
    true_type: str
    status: str  # found / not found / error
    volume_mm3: float = float("nan")
    solid_volume_mm3: float = float("nan")
    diameter_mm: float = float("nan")
    type: str = ""
    flags: str = ""
    error: str = ""
    seconds: float = float("nan")

    @property
    def band(self) -> str:
        """The size band of the true mean diameter."""
        return next(name for low, high, name in BANDS if low <= self.true_diameter_mm < high)

    @property
    def volume_error_pct(self) -> float:
        return abs(self.volume_mm3 - self.true_volume_mm3) / self.true_volume_mm3 * 100.0

    @property
    def diameter_error_mm(self) -> float:
        return abs(self.diameter_mm - self.true_diameter_mm)


def progress(iterable: Iterable, **options) -> Iterable:
    """`iterable`, with a tqdm progress bar when tqdm is installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, **options)


def jitter(rng: np.random.Generator, radius_mm: float) -> np.ndarray:
    """A point uniform in a ball of `radius_mm` around the origin."""
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    return direction * radius_mm * rng.random() ** (1.0 / 3.0)


def cut_by_edge(patient, nodule, timepoint: str) -> bool:
    """Whether the box of the nodule's reach leaves the scan's grid."""
    reach = nodule.reach_mm(timepoint)
    box = np.array([[x, y, z] for x in (-reach, reach) for y in (-reach, reach) for z in (-reach, reach)])
    grid = patient.acquisitions[timepoint].grid
    index = grid.lps_to_index_zyx(patient.nodule_center_lps(nodule, timepoint) + box)
    return bool(np.any(index < -0.5) or np.any(index > np.asarray(grid.size_zyx) - 0.5))


def measure_patient(patient, measure_nodule, no_nodule, rng: np.random.Generator, jitter_mm: float) -> List[Row]:
    rows = []
    for nodule in patient.nodules:
        for timepoint in TIMEPOINTS:
            if nodule.diameter(timepoint) <= 0:
                continue
            # a fine truth, but at least 1/60 of the diameter: the largest spiculated nodules stay quick
            truth = true_size(patient, nodule, timepoint, voxel_mm=max(0.25, nodule.diameter(timepoint) / 60.0))
            image = patient.images[timepoint]
            row = Row(patient.spec.pid, nodule.nodule_id, timepoint, nodule.kind_at(timepoint), nodule.margin,
                      nodule.attachment, float(image.GetSpacing()[2]), cut_by_edge(patient, nodule, timepoint),
                      truth.volume_mm3, truth.solid_volume_mm3, truth.diameter_mm, truth.type, "found")
            point = patient.nodule_center_lps(nodule, timepoint) + jitter(rng, jitter_mm)
            start = time.perf_counter()
            try:
                measured = measure_nodule(image, point)
            except no_nodule as error:
                row.status, row.error = "not found", str(error)
            except Exception as error:  # a crash is a result too: count it, keep going
                row.status, row.error = "error", f"{type(error).__name__}: {error}"
            else:
                size = measured.size
                row.volume_mm3, row.solid_volume_mm3 = size.volume_mm3, size.solid_volume_mm3
                row.diameter_mm, row.type = size.diameter_mm, size.type
                row.flags = " ".join(getattr(measured.segmentation, "flags", ()))
            row.seconds = time.perf_counter() - start
            rows.append(row)
    return rows


def _stats(values: Sequence[float], digits: int) -> str:
    if len(values) == 0:
        return "- | -"
    return f"{np.median(values):.{digits}f} | {np.percentile(values, 90):.{digits}f}"


def summary_line(label: str, rows: Sequence[Row]) -> str:
    found = [r for r in rows if r.status == "found"]
    volume = _stats([r.volume_error_pct for r in found], 1)
    diameter = _stats([r.diameter_error_mm for r in found], 2)
    type_ok = f"{100.0 * np.mean([r.type == r.true_type for r in found]):.0f}" if found else "-"
    missed = 100.0 * sum(r.status == "not found" for r in rows) / len(rows)
    errors = sum(r.status == "error" for r in rows)
    return f"| {label} | {len(rows)} | {volume} | {diameter} | {type_ok} | {missed:.0f} | {errors} |"


def table(title: str, groups: Iterable[tuple]) -> List[str]:
    """A markdown table: one line per (label, rows) group that has rows."""
    lines = [f"### {title}", "",
             "| group | n | vol err % median | vol err % p90 | diam err mm median | diam err mm p90 | type ok % "
             "| not found % | errors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [summary_line(label, rows) for label, rows in groups if rows]
    return lines + [""]


def report(rows: List[Row], args: argparse.Namespace) -> str:
    def where(**wanted) -> Callable[[Row], bool]:
        return lambda r: all(getattr(r, k) == v for k, v in wanted.items())

    def pick(test: Callable[[Row], bool]) -> List[Row]:
        return [r for r in rows if test(r)]

    by_type = [(f"{kind}, {band}", pick(where(true_type=kind, band=band))) for kind in TYPES for _, _, band in BANDS]
    by_type += [(kind, pick(where(true_type=kind))) for kind in TYPES] + [("all", rows)]
    by_attachment = [(a, pick(where(attachment=a))) for a in ATTACHMENTS] + [("all", rows)]
    thicknesses = sorted({r.thickness_mm for r in rows})
    by_thickness = [(f"{t:g} mm", pick(where(thickness_mm=t))) for t in thicknesses] + [("all", rows)]
    cut = pick(where(cut_by_edge=True))
    slices = " --slice-mm " + " ".join(f"{t:g}" for t in args.slice_mm) if args.slice_mm else ""
    seconds = np.array([r.seconds for r in rows])
    lines = [
        "# Nodule measurement accuracy on synthetic scans", "",
        f"`python benchmarks/measure_accuracy.py --patients {args.patients} --seed {args.seed} "
        f"--jitter-mm {args.jitter_mm}{slices}`: {len(rows)} measurements of nodules in {args.patients} patients "
        f"(small scans), each from the true centre moved by up to {args.jitter_mm} mm. Errors are against the "
        "generator's drawn shape (masks at occupancy 0.5); medians and 90th percentiles are over the nodules "
        "found; the type is the generator's kind (non-solid = ground-glass). Size bands use the true mean diameter "
        f"(Lung-RADS: (long + short axial axis) / 2). {len(cut)} nodule scans reach past the scan's edge.", "",
    ]
    lines += table("By type and size", by_type)
    lines += table("By attachment", by_attachment)
    lines += table("By slice thickness", by_thickness)
    lines += ["### Time per nodule per scan", "", "| n | median s | p90 s | slowest s |", "|---:|---:|---:|---:|",
              f"| {len(seconds)} | {np.median(seconds):.2f} | {np.percentile(seconds, 90):.2f} | {seconds.max():.2f} |",
              ""]
    return "\n".join(lines)


def write_csv(rows: List[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--jitter-mm", type=float, default=1.5, help="click offset: uniform in a ball of this radius")
    parser.add_argument("--out", type=Path, help="also write the markdown report here")
    parser.add_argument("--csv", type=Path, help="write one row per measurement here")
    parser.add_argument("--slice-mm", type=float, nargs="+", metavar="MM",
                        help="slice thicknesses the scans' are drawn from (default: the generator's, 1-2.5 mm)")
    args = parser.parse_args(argv)

    try:
        from CSFNetLib.measure.segmentation import NoNoduleError, measure_nodule
    except ImportError as error:
        print(f"measure_accuracy: cannot import CSFNetLib.measure.segmentation ({error}): nothing to measure",
              file=sys.stderr)
        return 2

    rng = np.random.default_rng(np.random.SeedSequence([args.seed, 1]))  # the clicks; patients have their own
    rows: List[Row] = []
    for index in progress(range(args.patients), desc="patients", unit="patient"):
        patient = synthesize_patient(args.seed, index, "small", args.slice_mm or SLICE_THICKNESSES)
        rows += measure_patient(patient, measure_nodule, NoNoduleError, rng, args.jitter_mm)
    if not rows:
        print("measure_accuracy: no nodules to measure", file=sys.stderr)
        return 1
    text = report(rows, args)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    if args.csv:
        write_csv(rows, args.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
