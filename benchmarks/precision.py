"""How far 16-bit autocast moves p_malignant from fp32, for a model (not a test).

    python benchmarks/precision.py [--device cpu|cuda] [--checkpoint model.pt] [--patients 10] [--seed 29]
                                   [--json out.json]

For fp16 and bf16: the largest and mean |p(16-bit) - p(fp32)| and the predictions turned over, on
the nodules of a synthetic cohort; the documented tolerance is 0.01. On a CPU the 16-bit 3-D
convolutions run through torch's reference kernel (seconds per nodule) but round as a GPU's do:
products accumulated in fp32, each output rounded to 16 bits.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "CSFNetModule"))

from CSFNetLib.cohort_csv import read_cohort  # noqa: E402
from CSFNetLib.dataset import RoiSet  # noqa: E402
from CSFNetLib.inference import Predictor, predict_rois  # noqa: E402
from CSFNetLib.samples import iter_samples  # noqa: E402
from CSFNetLib.synth import write_cohort  # noqa: E402

TOLERANCE = 0.01


def drift(device: str, patients: int, seed: int, checkpoint: Optional[Path] = None) -> dict:
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # a strict fp32 reference
    predictor = Predictor(checkpoint, device=device)
    with tempfile.TemporaryDirectory() as folder:
        cohort_dir = Path(folder) / "cohort"
        write_cohort(cohort_dir, patients, seed, "small", workers=1)
        cohort = read_cohort(cohort_dir / "cases.csv", cohort_dir / "clinical.csv")
        rois = RoiSet.collect(iter_samples(cohort, predictor.preprocessing, predictor.vocabulary))[0]
    exact = predictor.predict(rois)
    report = {"model": predictor.name, "device": str(predictor.device), "patients": patients, "seed": seed,
              "nodules": len(rois), "precisions": {}}
    for precision in ("fp16", "bf16"):  # bf16 too: measured, though predictions refuse it
        found = predict_rois(predictor.fast_model, rois, predictor.device, predictor.forward_batch, precision)
        gap = np.abs(found - exact)
        report["precisions"][precision] = {
            "max_abs_dp": round(float(gap.max()), 4), "mean_abs_dp": round(float(gap.mean()), 4),
            "turned_over": int(((found >= predictor.threshold) != (exact >= predictor.threshold)).sum()),
            "within_tolerance": bool(gap.max() <= TOLERANCE)}
    return report


def markdown(report: dict) -> str:
    lines = [f"{report['model']} on {report['nodules']} nodules of {report['patients']} synthetic patients "
             f"(seed {report['seed']}), device {report['device']}; |p(16-bit) - p(fp32)|:", "",
             "| autocast | max | mean | predictions turned over | within 0.01 |", "|---|---|---|---|---|"]
    for precision, r in report["precisions"].items():
        lines.append(f"| {precision} | {r['max_abs_dp']} | {r['mean_abs_dp']} | {r['turned_over']} of "
                     f"{report['nodules']} | {'yes' if r['within_tolerance'] else 'no'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--checkpoint", type=Path, help="default: the shipped demo model")
    parser.add_argument("--patients", type=int, default=10)
    parser.add_argument("--seed", type=int, default=29)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = drift(args.device, args.patients, args.seed, args.checkpoint)
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
