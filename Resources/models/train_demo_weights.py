"""Reproduce the shipped demo weights (and, optionally, measure them on a fresh cohort).

    python Resources/models/train_demo_weights.py [--patients 300] [--epochs 120] [--jobs 4] [--device auto]
                                                  [--work /tmp/csfnet-demo] [--quality-patients 200]

1. `csfnet synth`: a synthetic training cohort (seed TRAIN_SEED).
2. `csfnet train` with the reference recipe, `small` configuration, for CSF-net and its three
   ablations (T1 only, no clinical branch, concatenation instead of CMAF), `--jobs` at a time,
   sharing one ROI cache.
3. Each run's best checkpoint (chosen on its validation split) is stored here with float16
   weights and its name, version and the note that it was trained on synthetic phantoms; the
   manifest gets its SHA-256, recipe, cohort seed and the run's own test-split metrics.
4. With `--quality-patients N`: a fresh cohort (seed QUALITY_SEED, never seen in training) is
   generated and `csfnet evaluate` compares all four networks with Brock and Mayo (quality.json).

The weights are trained on synthetic phantoms: for demonstration and testing, not for clinical use.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "CSFNetModule"))

import torch  # noqa: E402

from CSFNetLib.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from CSFNetLib.options import VARIANTS  # noqa: E402
from CSFNetLib.shipped_weights import MANIFEST, sha256_of  # noqa: E402
from CSFNetLib.version import __version__  # noqa: E402

TRAIN_SEED = 1001
QUALITY_SEED = 3003
NOTE = "Trained on synthetic phantoms (csfnet synth): for demonstration and testing only, not for clinical use."
WEIGHTS = {"csf-net": "csfnet-small-demo", "t1-only": "csfnet-small-demo-t1-only",
            "no-clinical": "csfnet-small-demo-no-clinical", "concat": "csfnet-small-demo-concat"}


def csfnet(*args: str) -> list:
    return [sys.executable, "-m", "CSFNetLib.cli", *args]


def run(command: list, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "CSFNetModule"), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(command, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patience", type=int, default=25)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--work", type=Path, default=Path("/tmp/csfnet-demo"))
    parser.add_argument("--quality-patients", type=int, default=0)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    cohort = args.work / f"train-seed{TRAIN_SEED}-n{args.patients}"
    if not (cohort / "cases.csv").exists():
        subprocess.run(csfnet("synth", "--out", str(cohort), "--cases", str(args.patients), "--seed",
                              str(TRAIN_SEED), "--workers", str(args.workers)), check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "CSFNetModule")})
    quality = None
    if args.quality_patients:  # generated while the networks train
        quality_dir = args.work / f"quality-seed{QUALITY_SEED}-n{args.quality_patients}"
        quality = (quality_dir, run(csfnet("synth", "--out", str(quality_dir), "--cases", str(args.quality_patients),
                                           "--seed", str(QUALITY_SEED), "--workers", str(max(1, args.workers // 2))),
                                    args.work / "quality-synth.log"))
    cache = args.work / f"rois-seed{TRAIN_SEED}-n{args.patients}.npz"
    common = ["--cases", str(cohort / "cases.csv"), "--clinical", str(cohort / "clinical.csv"), "--config", "small",
              "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--patience", str(args.patience),
              "--device", args.device,
              "--seed", "0", "--roi-cache", str(cache)]
    pending = list(WEIGHTS)
    first = pending.pop(0)  # the first run fills the ROI cache the others read
    runs = {first: run(csfnet("train", "--out", str(args.work / first), "--variant", first, *common),
                       args.work / f"{first}.log")}
    while not cache.exists() and runs[first].poll() is None:
        time.sleep(2)
    for variant in pending:
        while sum(p.poll() is None for p in runs.values()) >= args.jobs:
            time.sleep(2)
        runs[variant] = run(csfnet("train", "--out", str(args.work / variant), "--variant", variant, *common),
                            args.work / f"{variant}.log")
    failed = [v for v, p in runs.items() if p.wait() != 0]
    if failed:
        print(f"training failed for {failed}; see {args.work}/*.log", file=sys.stderr)
        return 1
    train_seconds = round(time.perf_counter() - started, 1)

    entries = []
    for variant, name in WEIGHTS.items():
        ckpt = load_checkpoint(args.work / variant / "model.pt")
        metadata = {**ckpt.metadata, "name": name, "version": __version__, "note": NOTE}
        path = save_checkpoint(HERE / f"{name}.pt", ckpt.build_model(), ckpt.preprocessing, ckpt.vocabulary,
                               metadata=metadata, storage_dtype=torch.float16)
        training = ckpt.metadata["training"]
        entries.append({"name": name, "file": path.name, "version": __version__, "sha256": sha256_of(path),
                        "config": "small", "variant": variant, "note": NOTE,
                        "recipe": f"Resources/models/train_demo_weights.py --patients {args.patients} "
                                  f"--epochs {args.epochs} --batch-size {args.batch_size} --patience {args.patience} "
                                  f"--jobs {args.jobs} --device {args.device}",
                        "training_cohort": {"generator": "csfnet synth", "seed": TRAIN_SEED,
                                            "patients": args.patients, "size": "small"},
                        "validation_auc": training["validation_auc"], "best_epoch": training["best_epoch"],
                        "test_split_metrics": training["test_metrics"], "device": training["device"]})
    manifest = {"default": WEIGHTS["csf-net"], "note": NOTE, "train_seconds_total": train_seconds,
                "models": entries}
    (HERE / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(manifest, indent=2))

    if quality is not None:
        quality_dir, synth = quality
        if synth.wait() != 0:
            print("quality cohort generation failed", file=sys.stderr)
            return 1
        compare = [f"{VARIANTS[v]}={HERE / (WEIGHTS[v] + '.pt')}" for v in WEIGHTS if v != "csf-net"]
        report = args.work / "quality-report"
        main_model = HERE / f"{WEIGHTS['csf-net']}.pt"
        subprocess.run(csfnet("evaluate", "--cases", str(quality_dir / "cases.csv"), "--clinical",
                              str(quality_dir / "clinical.csv"), "--checkpoint", str(main_model),
                              "--compare", *compare, "--out", str(report), "--device", args.device), check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "CSFNetModule")})
        (HERE / "quality.json").write_text((report / "metrics.json").read_text(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
