"""Soak: `csfnet predict` on a long cohort with bad cases mixed in; speed, memory over time, completeness.

    python benchmarks/soak.py [--cases 500] [--scans 10] [--json soak.json]

The cohort reuses `--scans` synthetic patients' scans under new patient ids (every case still reads
its scans from disk), with one bad case in every 50: a missing scan, a non-numeric coordinate, a
centre outside the scan, and a scan that is not CT. Memory (RSS) is sampled every 0.5 s while the
run goes; it must stay flat. Every good case must be in results.csv exactly once.
"""

import argparse
import csv
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CSFNetModule"))

from CSFNetLib.prediction import predict_cohort  # noqa: E402
from CSFNetLib.synth import write_cohort  # noqa: E402

BAD_KINDS = ("missing scan", "coordinate not a number", "outside the scan", "not CT")


def rss_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def soak_cohort(folder: Path, cases: int, scans: int) -> tuple:
    """cases.csv of `cases` nodules built from `scans` synthetic patients; returns (csv, good keys, bad keys)."""
    source = folder / "source"
    write_cohort(source, scans, 29, "small", workers=2)
    with open(source / "cases.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    nodules = [(r0, r1) for r0, r1 in zip(rows[::2], rows[1::2])]  # T0, T1 rows of each nodule, in order
    not_ct = folder / "not-ct.nrrd"
    sitk.WriteImage(sitk.Image([32, 32, 16], sitk.sitkUInt8) + 100, str(not_ct))
    out_rows, good, bad = [], set(), set()
    for i in range(cases):
        r0, r1 = (dict(r) for r in nodules[i % len(nodules)])
        pid = f"SOAK{i:05d}"
        for r in (r0, r1):
            r["pid"], r["nodule"], r["image"] = pid, "1", str(source / r["image"])
        kind = BAD_KINDS[(i // 50) % len(BAD_KINDS)] if i % 50 == 25 else None
        if kind == "missing scan":
            r1["image"] = str(folder / "missing.nrrd")
        elif kind == "coordinate not a number":
            r0["x"] = "n/a"
        elif kind == "outside the scan":
            r1["z"] = "5000"
        elif kind == "not CT":
            r0["image"] = str(not_ct)
        (bad if kind else good).add((pid, "1"))
        out_rows += [r0, r1]
    path = folder / "cases.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(out_rows[0]))
        writer.writeheader()
        writer.writerows(out_rows)
    return path, good, bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--scans", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cases_csv, good, bad = soak_cohort(Path(folder), args.cases, args.scans)
        samples, running = [], True

        def sample() -> None:
            start = time.perf_counter()
            while running:
                samples.append((round(time.perf_counter() - start, 1), round(rss_mib(), 1)))
                time.sleep(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        start = time.perf_counter()
        sampler.start()
        done, failed = predict_cohort(cases_csv, Path(folder) / "results.csv", device="cpu")
        seconds = time.perf_counter() - start
        running = False
        sampler.join()
        with open(Path(folder) / "results.csv", newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    found_good = [(r["pid"], r["nodule"]) for r in rows if not r["error"]]
    found_bad = [(r["pid"], r["nodule"]) for r in rows if r["error"]]
    rss = np.array([m for _, m in samples])
    half = rss[len(rss) // 2:]
    report = {
        "cases": args.cases, "bad_cases": len(bad), "seconds": round(seconds, 1),
        "cases_per_second": round(args.cases / seconds, 2),
        "good_results": len(found_good), "good_expected": len(good),
        "every_good_case_once": sorted(found_good) == sorted(good) and len(set(found_good)) == len(found_good),
        "every_bad_case_reported_once": sorted(found_bad) == sorted(bad),
        "rss_mib": {"first": float(rss[0]), "middle": float(rss[len(rss) // 2]), "last": float(rss[-1]),
                    "max": float(rss.max()),
                    "second_half_slope_mib_per_min": round(float(np.polyfit(np.arange(len(half)) * 0.5 / 60, half,
                                                                            1)[0]), 2) if len(half) > 2 else None},
        "rss_samples": samples,
    }
    print(json.dumps({k: v for k, v in report.items() if k != "rss_samples"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0 if report["every_good_case_once"] and report["every_bad_case_reported_once"] else 1


if __name__ == "__main__":
    sys.exit(main())
