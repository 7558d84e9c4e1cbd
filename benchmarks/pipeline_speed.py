"""`csfnet predict` end to end against reading the scans, and every step's time (not a test).

    python benchmarks/pipeline_speed.py --cohort DIR [--readers N] [--repeats 3] [--step-patients 4]
                                        [--json out.json] [--parts end-to-end split steps]

DIR holds a cohort as `csfnet synth` writes it (cases.csv, clinical.csv, images/); the figures in
docs/performance.md come from `csfnet synth --out DIR --cases 30 --size full --seed 7` (whole-chest
512 x 512 phantom scans). Reported:
1. reading: every scan of cases.csv read once, one after another, in this process (after a first
   pass that fills the page cache, so that every run below reads from memory alike);
2. `csfnet predict` end to end in a fresh process (start-up and model load included), with one
   reader and with `--readers`, without and with measuring, as a fraction of that reading time
   (the reading and every run `--repeats` times in turn; the medians, and their ranges);
3. the split of a one-process run: start-up (import and model load), read, ROI, network, write;
4. the steps around the prediction, per nodule and per patient, on the first `--step-patients`
   patients: segmentation and measurement, attention maps (each method but occlusion, whose 20 s or
   so per nodule docs/attention.md gives), registration for matching
   (`csfnet match`, the follow-up points left out), DICOM SEG + SR writing (the scans written as
   DICOM series first; the export measures the nodules again, as `csfnet predict --dicom-out` does);
   and which step is the slowest.
"""

import argparse
import csv
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "CSFNetModule"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from performance import cpu_name  # noqa: E402

from CSFNetLib.cohort_csv import read_cohort  # noqa: E402
from CSFNetLib.dataset import RoiSet  # noqa: E402
from CSFNetLib.images import read_image  # noqa: E402
from CSFNetLib.measure.cohort import measure_case  # noqa: E402
from CSFNetLib.options import ATTENTION_METHODS  # noqa: E402
from CSFNetLib.parallel import default_workers  # noqa: E402
from CSFNetLib.preprocessing import extract_roi  # noqa: E402
from CSFNetLib.records import Sample, cases_by_patient  # noqa: E402

PARTS = ("end-to-end", "split", "steps")
CLI = ("import sys; sys.path.insert(0, sys.argv[1]); from CSFNetLib.cli import main; "
       "sys.exit(main(sys.argv[2:]))")


def seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def scan_paths(cohort) -> list:
    return list(dict.fromkeys(row.image for case in cohort.cases for row in case.rows))


def reading_seconds(paths) -> float:
    """Each scan read and let go, as a run that keeps one patient's scans at a time does."""
    def read_all():
        for path in paths:
            read_image(path)

    return seconds(read_all)


def predict_seconds(folder: Path, out: Path, *options: str) -> float:
    command = [sys.executable, "-c", CLI, str(ROOT / "CSFNetModule"), "predict", "--cases", str(folder / "cases.csv"),
               "--clinical", str(folder / "clinical.csv"), "--out", str(out), "--device", "cpu", "--overwrite",
               *options]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def samples_of(cases, scans, preprocessing) -> list:
    """The cases' ROIs cut from their scans (read already), as network inputs with missing clinical values."""
    return [Sample(case.pid, case.nodule, *(extract_roi(scans[row.image], row.center_lps, preprocessing)
                                            for row in (case.t0, case.t1)), [0] * 6, case.label) for case in cases]


def split_seconds(cohort) -> dict:
    """One process, one step after another: where the time of a prediction run goes."""
    startup = seconds(lambda: subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
         "from CSFNetLib.inference import Predictor; Predictor(device='cpu')", str(ROOT / "CSFNetModule")],
        check=True))
    from CSFNetLib.inference import Predictor
    from CSFNetLib.results_file import ResultsWriter

    predictor = Predictor(device="cpu")
    split = {"start-up (import, model load)": startup, "read": 0.0, "ROI": 0.0}
    samples = []
    for cases in cases_by_patient(cohort.cases).values():
        start = time.perf_counter()
        scans = {path: read_image(path) for path in dict.fromkeys(row.image for case in cases for row in case.rows)}
        split["read"] += time.perf_counter() - start
        start = time.perf_counter()
        samples += samples_of(cases, scans, predictor.preprocessing)
        split["ROI"] += time.perf_counter() - start
    rois, _ = RoiSet.collect(samples)
    split["network"] = seconds(lambda: predictor.predict(rois))
    probabilities = predictor.predict(rois)
    with tempfile.TemporaryDirectory() as folder:
        def write():
            with ResultsWriter(Path(folder) / "results.csv", predictor) as results:
                for pid, nodule, p in zip(rois.pids, rois.nodules, probabilities):
                    results.prediction(pid, nodule, float(p), None)
        split["write"] = seconds(write)
    return {step: round(value, 2) for step, value in split.items()}


def step_seconds(cohort, folder: Path, patients: int) -> dict:
    """Per nodule and per patient: measuring, attention maps, matching, DICOM writing, on the first patients."""
    from CSFNetLib.inference import Predictor
    from CSFNetLib.match.cases import match_cases

    chosen = list(cases_by_patient(cohort.cases).items())[:patients]
    pids = [pid for pid, _ in chosen]
    cases = [case for _, their_cases in chosen for case in their_cases]
    nodules = len(cases)
    scans = {path: read_image(path) for path in dict.fromkeys(row.image for case in cases for row in case.rows)}
    steps = {"segmentation and measurement": seconds(lambda: [measure_case(case, lambda row: scans[row.image])
                                                              for case in cases])}
    predictor = Predictor(device="cpu")
    rois, _ = RoiSet.collect(samples_of(cases, scans, predictor.preprocessing))
    steps["network (p_malignant)"] = seconds(lambda: predictor.predict(rois))
    for method in (m for m in ATTENTION_METHODS if m != "occlusion"):  # occlusion: about 20 s a nodule
        steps[f"attention maps: {method}"] = seconds(lambda m=method: predictor.predict_with_attention(rois, m))
    steps["registration and matching (csfnet match)"] = seconds(
        lambda: match_cases(_without_follow_up_points(cohort.cases_csv, pids, folder), folder / "matched.csv"))
    steps["DICOM SEG + SR (measuring again)"] = _dicom_seconds(cases, scans, folder)
    per = {name: {"s_per_nodule": round(value / nodules, 2), "s_per_patient": round(value / len(pids), 2)}
           for name, value in steps.items()}
    return {"patients": len(pids), "nodules": nodules, "steps": per,
            "slowest": max(steps, key=lambda name: steps[name])}


def _without_follow_up_points(cases_csv: Path, pids, folder: Path) -> Path:
    """The patients' rows with every later scan's point left out, for `csfnet match` to find."""
    with open(cases_csv, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["pid"] in pids]
    for row in rows:
        row["image"] = str((cases_csv.parent / row["image"]).resolve())
        if row["timepoint"] != "T0":
            row.update(x="", y="", z="")
    out = folder / "to-match.csv"
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


def _dicom_seconds(cases, scans, folder: Path) -> float:
    """The patients' scans as DICOM series (not timed), then their SEG + SR export (timed)."""
    from CSFNetLib.cohort_csv import read_cohort
    from CSFNetLib.dicom.export import export_dicom
    from CSFNetLib.synth.dicom_series import DicomStudy, write_dicom_series

    rows = []
    for case in cases:
        for k, row in enumerate(case.rows):
            series = folder / "dicom" / case.pid / row.timepoint
            if not series.exists():
                date = datetime.date(2020, 1, 1) + datetime.timedelta(days=int(row.days or 0))
                write_dicom_series(scans[row.image], series, DicomStudy.new(case.pid, date))
            x, y, z = row.center_lps
            rows.append({"pid": case.pid, "nodule": case.nodule, "timepoint": row.timepoint, "image": str(series),
                         "x": x, "y": y, "z": z, "days": row.days if row.days is not None else 365 * k})
    cases_csv = folder / "dicom-cases.csv"
    with open(cases_csv, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cohort = read_cohort(cases_csv)
    return seconds(lambda: export_dicom(cohort, folder / "dicom-out"))


def markdown(report: dict) -> str:
    read = report["reading_s"]
    lines = [f"Machine: {report['machine']}; cohort: {report['patients']} patients, {report['scans']} scans "
             f"({report['scan_mb']:.0f} MB each on average), {report['nodules']} nodules", "",
             f"Reading every scan once, one after another, in one process: {read:.1f} s "
             f"({_range(report['reading_runs_s'])})", "",
             f"Each run {len(report['reading_runs_s'])} times, in turn with the reading: the median (the range); "
             "each run's fraction is of the reading timed just before it", "",
             "| run | wall s | of the reading time |", "|---|---|---|"]
    for name, value in report["predict_s"].items():
        walls = report["predict_runs_s"][name]
        fractions = [wall / reading for wall, reading in zip(walls, report["reading_runs_s"])]
        lines.append(f"| {name} | {value:.1f} ({_range(walls)}) | {np.median(fractions):.2f}x "
                     f"({min(fractions):.2f}-{max(fractions):.2f}) |")
    if report["split_s"]:
        lines += ["", "Split of a one-process run (no measuring): "
                  + ", ".join(f"{step} {value} s" for step, value in report["split_s"].items())]
    steps = report["steps"]
    if not steps:
        return "\n".join(lines)
    lines += ["", f"Steps on {steps['patients']} patients ({steps['nodules']} nodules); "
              f"slowest: {steps['slowest']}", "",
              "| step | s per nodule | s per patient |", "|---|---|---|"]
    for name, value in steps["steps"].items():
        lines.append(f"| {name} | {value['s_per_nodule']} | {value['s_per_patient']} |")
    return "\n".join(lines)


def _range(values) -> str:
    return f"{min(values):.1f}-{max(values):.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, required=True, help="a folder written by `csfnet synth`")
    parser.add_argument("--readers", type=int, default=default_workers())
    parser.add_argument("--step-patients", type=int, default=4)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to measure")
    parser.add_argument("--repeats", type=int, default=3,
                        help="time the reading and each run this many times, in turn (this machine is shared: "
                             "the median of several is steadier than one)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cohort = read_cohort(args.cohort / "cases.csv", args.cohort / "clinical.csv")
    paths = scan_paths(cohort)
    report = {"machine": f"{cpu_name()}, {os.cpu_count()} cores",
              "patients": len({c.pid for c in cohort.cases}),
              "scans": len(paths), "scan_mb": float(np.mean([p.stat().st_size for p in paths])) / 1e6,
              "nodules": len(cohort.cases), "reading_s": 0.0, "reading_runs_s": [], "predict_s": {},
              "predict_runs_s": {}, "split_s": {}, "steps": {}}
    reading_seconds(paths)  # fills the page cache, so that every run reads from memory alike
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        runs = (("predict --no-measure --readers 1", ("--no-measure", "--readers", "1")),
                (f"predict --no-measure --readers {args.readers}", ("--no-measure", "--readers", str(args.readers))),
                ("predict --readers 1 (measuring)", ("--readers", "1")),
                (f"predict --readers {args.readers} (measuring)", ("--readers", str(args.readers))))
        for _ in range(args.repeats):
            report["reading_runs_s"].append(reading_seconds(paths))
            print(f"reading: {report['reading_runs_s'][-1]:.1f} s", file=sys.stderr, flush=True)
            for name, options in runs if "end-to-end" in args.parts else ():
                wall = predict_seconds(args.cohort, folder / "results.csv", *options)
                report["predict_runs_s"].setdefault(name, []).append(wall)
                print(f"{name}: {wall:.1f} s", file=sys.stderr, flush=True)
        report["reading_s"] = float(np.median(report["reading_runs_s"]))
        report["predict_s"] = {name: float(np.median(walls)) for name, walls in report["predict_runs_s"].items()}
        if "split" in args.parts:
            report["split_s"] = split_seconds(cohort)
        if "steps" in args.parts:
            report["steps"] = step_seconds(cohort, folder, args.step_patients)
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
