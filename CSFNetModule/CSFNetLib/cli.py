"""The `csfnet` command: synth, train, evaluate, predict, info."""

import argparse
import json
import os
import sys
from typing import List, Optional

from .options import ATTENTION_METHODS, CONFIG_NAMES, DEFAULT_ATTENTION_METHOD, DEVICES, PRECISIONS, VARIANTS
from .version import __version__

DISTRIBUTED_HELP = ("one of several processes started by torchrun, e.g. "
                    "torchrun --nproc-per-node 2 -m CSFNetLib.cli COMMAND ... --distributed")


def _info(args: argparse.Namespace) -> int:
    """Print the named configurations and, when given, what a checkpoint holds (read safely)."""
    from .checkpoint import load_checkpoint, runtime_versions
    from .model import CONFIGS, build_model, count_parameters

    report = {
        "versions": runtime_versions(),
        "configurations": {name: {"parameters_without_embedding": count_parameters(build_model(name))}
                           for name in CONFIGS},
    }
    if args.checkpoint:
        ckpt = load_checkpoint(args.checkpoint)
        report["checkpoint"] = {
            "path": str(ckpt.path),
            "model_config": ckpt.model_config.to_dict(),
            "preprocessing": ckpt.preprocessing.to_dict(),
            "vocabulary": ckpt.vocabulary.to_dict(),
            "versions": ckpt.versions,
            "metadata": ckpt.metadata,
        }
    print(json.dumps(report, indent=2))
    return 0


def _synth(args: argparse.Namespace) -> int:
    """Write a synthetic longitudinal cohort (phantoms, not patient data)."""
    from pathlib import Path

    from .synth import write_cohort
    from .synth.cohort_writer import print_progress

    summary = write_cohort(Path(args.out), args.cases, args.seed, args.size, args.workers, print_progress)
    print(json.dumps(summary, indent=2))
    return 0


class ProgressBar:
    """One line on stderr that redraws itself: what is being done, how far, and the latest figures."""

    def __init__(self, width: int = 30):
        self.width = width

    def training(self, status: dict) -> None:
        filled = int(self.width * status["step"] / status["steps"])
        bar = "#" * filled + "." * (self.width - filled)
        best = f" best val AUC {status['best_auc']:.3f}" if status.get("best_auc", -1) >= 0 else ""
        val = f" val AUC {status['val_auc']:.3f}" if "val_auc" in status else ""
        end = "\n" if status.get("done") else ""
        print(f"\repoch {status['epoch'] + 1}/{status['epochs']} [{bar}] loss {status['loss']:.4f}{val}{best}",
              end=end, file=sys.stderr, flush=True)

    @staticmethod
    def message(text: str) -> None:
        print(text, file=sys.stderr, flush=True)


def _processes(args: argparse.Namespace):
    """(ranks, device): this process's place under torchrun with --distributed, else the single process."""
    from .distributed import SINGLE, join

    return join(args.device) if args.distributed else (SINGLE, args.device)


def _train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .training import TrainSettings, train

    settings = TrainSettings(config=args.config, variant=args.variant, epochs=args.epochs, batch_size=args.batch_size,
                             seed=args.seed, patience=args.patience)
    ranks, device = _processes(args)
    summary = train(Path(args.cases), Path(args.clinical) if args.clinical else None, Path(args.out), settings,
                    folds=args.folds, device=device, roi_cache=Path(args.roi_cache) if args.roi_cache else None,
                    report=ProgressBar().training, ranks=ranks)
    if ranks.main:
        print(json.dumps(summary, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .cohort_csv import read_cohort
    from .evaluation import evaluate, table_with_intervals

    checkpoints = {"CSF-net": Path(args.checkpoint) if args.checkpoint else None}
    if not args.checkpoint and args.compare is None:  # the shipped demo model: with its shipped ablations
        from .shipped_weights import model_entries, model_path

        for entry in model_entries():
            if entry.get("variant", "csf-net") != "csf-net":
                checkpoints[VARIANTS[entry["variant"]]] = model_path(entry["name"])
    for spec in args.compare or []:
        name, _, path = spec.partition("=")
        checkpoints[name] = Path(path)
    cohort = read_cohort(Path(args.cases), Path(args.clinical) if args.clinical else None)
    report = evaluate(cohort, checkpoints, Path(args.out) if args.out else None, args.device, args.resamples,
                      ProgressBar.message)
    print(f"{report['nodules']} nodules of {report['patients']} patients ({report['malignant']} malignant); "
          "95 % bootstrap intervals over patients\n")
    print(table_with_intervals(report))
    for problem in report["skipped_cases"]:
        print(f"skipped: {problem}", file=sys.stderr)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .prediction import predict_cohort

    ranks, device = _processes(args)
    done, failed = predict_cohort(  # exit status: 0 all predicted, 1 some cases failed, 2 the run could not proceed
        Path(args.cases), Path(args.out), Path(args.clinical) if args.clinical else None,
        Path(args.checkpoint) if args.checkpoint else None, device, args.batch_size,
        Path(args.nlst_cmst) if args.nlst_cmst else None, args.overwrite,
        Path(args.attention_dir) if args.attention_dir else None, args.attention_method, ranks, args.resume,
        args.precision)
    if ranks.main:
        print(f"csfnet predict: {done} nodules predicted, {failed} failed -> {args.out}", file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="csfnet",
        description="CSF-net lung nodule malignancy prediction from a baseline and a follow-up CT plus clinical data.",
    )
    parser.add_argument("--version", action="version", version=f"csfnet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser("info", help="show versions, model configurations and a checkpoint's contents")
    info.add_argument("--checkpoint", help="a checkpoint file to describe (loaded with weights_only=True)")
    info.set_defaults(run=_info)

    synth = commands.add_parser(
        "synth", help="write a synthetic longitudinal chest-CT cohort (cases.csv, clinical.csv, NRRD scans)"
    )
    synth.add_argument("--out", required=True, help="new or empty folder to write the cohort into")
    synth.add_argument("--cases", type=int, required=True, help="number of patients (each has 1-3 nodules)")
    synth.add_argument("--seed", type=int, default=0, help="the same seed gives the same cohort")
    synth.add_argument("--size", choices=["small", "full"], default="small",
                       help="small: 160 x 160 x 100 chest crops (tests, demo); full: 512 x 512 whole-chest scans")
    synth.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes to use")
    synth.set_defaults(run=_synth)

    train = commands.add_parser("train", help="train CSF-net (or an ablation) on a cohort")
    train.add_argument("--cases", required=True, help="cases.csv")
    train.add_argument("--clinical", help="clinical.csv")
    train.add_argument("--out", required=True, help="run folder: checkpoint, history, splits (rerun to resume)")
    train.add_argument("--config", choices=CONFIG_NAMES, default="small",
                       help="small: narrow, for CPUs and the demo; full: the paper's widths")
    train.add_argument("--variant", choices=list(VARIANTS), default="csf-net",
                       help="; ".join(f"{name}: {label}" for name, label in VARIANTS.items()))
    train.add_argument("--folds", type=int, default=1, help="1: train / validation / test split; K: K-fold CV")
    train.add_argument("--epochs", type=int, default=60)
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--patience", type=int, default=15, help="early stopping: epochs without a better val AUC")
    train.add_argument("--device", choices=DEVICES, default="auto")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--roi-cache", help="an .npz keeping the cohort's ROIs for later runs")
    train.add_argument("--distributed", action="store_true", help=DISTRIBUTED_HELP)
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="metrics with 95 %% intervals beside the clinical models")
    evaluate.add_argument("--cases", required=True)
    evaluate.add_argument("--clinical")
    evaluate.add_argument("--checkpoint", help="default: the shipped demo model")
    evaluate.add_argument("--compare", nargs="*", metavar="NAME=CHECKPOINT",
                          help="more networks for the table (default with the shipped model: its ablations)")
    evaluate.add_argument("--out", help="report folder: metrics.json, predictions.csv, roc.png")
    evaluate.add_argument("--device", choices=DEVICES, default="auto")
    evaluate.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    evaluate.set_defaults(run=_evaluate)

    predict = commands.add_parser("predict", help="p_malignant for every nodule -> results.csv")
    predict.add_argument("--cases", required=True, help="cases.csv, or the NLST-cmst CSV with --nlst-cmst")
    predict.add_argument("--clinical")
    predict.add_argument("--checkpoint", help="default: the shipped demo model")
    predict.add_argument("--out", required=True, help="results.csv to write")
    predict.add_argument("--device", choices=DEVICES, default="auto")
    predict.add_argument("--batch-size", type=int, default=16)
    predict.add_argument("--precision", choices=PRECISIONS, default="fp32",
                         help="fp16: autocast the network on a CUDA GPU (p_malignant within 0.01 of fp32)")
    predict.add_argument("--nlst-cmst", metavar="ROI_DIR", help="read the authors' pre-cut {pid}_T0/T1.npy ROIs")
    predict.add_argument("--overwrite", action="store_true", help="replace an existing results file")
    predict.add_argument("--resume", action="store_true",
                         help="continue an interrupted run (its rows are kept; the cases it holds are not redone)")
    predict.add_argument("--attention-dir", help="write each nodule's T0 / T1 attention (heat and label NRRDs) here")
    predict.add_argument("--attention-method", choices=ATTENTION_METHODS, default=DEFAULT_ATTENTION_METHOD,
                         help="cbam: the network's own spatial attention; gradcam: Grad-CAM on the last stage")
    predict.add_argument("--distributed", action="store_true", help=DISTRIBUTED_HELP)
    predict.set_defaults(run=_predict)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:  # the run cannot proceed: exit status 2
        print(f"csfnet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if getattr(args, "distributed", False):
            from .distributed import leave

            leave()


if __name__ == "__main__":
    sys.exit(main())
