"""`python main.py`: the paper's command. Evaluates the shipped demo weights and prints the paper's table.

The demo CSF-net and its three ablations (Resources/models, trained on synthetic phantoms: for
demonstration and testing, not for clinical use) are evaluated with the Brock and Mayo clinical
models and the nodules' measured growth (volume, diameter, Lung-RADS category) on a synthetic test
cohort, and CSF-net is compared with the best growth row. The cohort is generated on first use into
`cache/` and reused; its seed is neither the training cohort's nor the quality-check cohort's.
`CSFNET_CACHE` moves the cache.
"""

import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "CSFNetModule"))

from CSFNetLib.cohort_csv import read_cohort  # noqa: E402
from CSFNetLib.console import counting_bar  # noqa: E402
from CSFNetLib.evaluation import evaluate, table_notes, table_with_intervals  # noqa: E402
from CSFNetLib.options import VARIANTS  # noqa: E402
from CSFNetLib.paper import REPORTED, format_table  # noqa: E402
from CSFNetLib.parallel import default_workers  # noqa: E402
from CSFNetLib.shipped_weights import model_path, read_manifest  # noqa: E402
from CSFNetLib.synth import write_cohort  # noqa: E402

TEST_SEED = 2024  # training used 1001, the quality check 3003
TEST_PATIENTS = 40
CACHE = Path(os.environ.get("CSFNET_CACHE", ROOT / "cache"))  # where the test cohort and the report go
ROWS = {label: "csfnet-small-demo" + ("" if variant == "csf-net" else f"-{variant}")
        for variant, label in VARIANTS.items()}


def test_cohort() -> Path:
    """The cached synthetic test cohort, generated (atomically) when missing."""
    cohort = CACHE / f"synthetic-test-seed{TEST_SEED}-n{TEST_PATIENTS}"
    if not (cohort / "cases.csv").exists():
        print(f"generating the synthetic test cohort ({TEST_PATIENTS} patients, seed {TEST_SEED}) into {cohort}",
              file=sys.stderr)
        partial = cohort.with_name(cohort.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        write_cohort(partial, TEST_PATIENTS, TEST_SEED, "small", workers=min(2, os.cpu_count() or 1),
                     progress=counting_bar("synth", "patients"))
        partial.rename(cohort)
    return cohort


def main() -> int:
    started = time.perf_counter()
    manifest = read_manifest()
    print(f"SlicerCSFNet demo evaluation. {manifest['note']}\n", flush=True)
    cohort_dir = test_cohort()
    cohort = read_cohort(cohort_dir / "cases.csv", cohort_dir / "clinical.csv")
    checkpoints = {row: model_path(name) for row, name in ROWS.items()}
    report = evaluate(cohort, checkpoints, out_dir=CACHE / "main-report", device="auto",
                      progress=lambda message: print(message, file=sys.stderr, flush=True),
                      readers=default_workers(),
                      title=f"Synthetic test cohort (seed {TEST_SEED}): demo weights trained on synthetic phantoms, "
                            "not for clinical use")
    print(f"\nSynthetic test cohort: {report.nodules} nodules of {report.patients} patients "
          f"({report.malignant} malignant); 95 % bootstrap intervals over patients in brackets.\n")
    print(table_with_intervals(report))
    print(f"\n{table_notes(report)}")
    print("\nFor reference, as reported in the paper (NLST-cmst, 443 real cases, test split):\n")
    print(format_table({k: v for k, v in REPORTED.items() if k == "CSF-Net"}))
    print(f"\nReport (metrics.json, predictions.csv, roc.png): {CACHE / 'main-report'}; "
          f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
