"""The `csfnet` command: synth, train, evaluate, predict, match, measure, info."""

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

from .console import counting_bar, messages_on_stderr, progress_bar, worded
from .errors import UsageError
from .options import ATTENTION_METHODS, CONFIG_NAMES, DEFAULT_ATTENTION_METHOD, DEVICES, PRECISIONS, VARIANTS
from .parallel import default_workers
from .version import __version__

if TYPE_CHECKING:
    from tqdm import tqdm

    from .training import TrainingStatus

log = logging.getLogger("CSFNetLib.cli")

DISTRIBUTED_HELP = ("one of several processes started by torchrun, e.g. "
                    "torchrun --nproc-per-node 2 -m CSFNetLib.cli COMMAND ... --distributed")
DICOM_OUT_HELP = ("also write, per patient and scan read from DICOM, a DICOM SEG of the nodules and a TID 1500 SR "
                  "of their measurements (and probability) into DIR/<pid>/<timepoint>/ (needs csfnet[dicom])")


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
    from .synth import write_cohort
    from .synth.scanner import SLICE_THICKNESSES

    summary = write_cohort(Path(args.out), args.cases, args.seed, args.size, args.workers,
                           counting_bar("synth", "patients"), args.slice_mm or SLICE_THICKNESSES, args.motion,
                           args.scans)
    print(json.dumps(summary, indent=2))
    return 0


class _EpochBars:
    """Training progress: a bar per epoch (in a terminal) and a line per finished epoch (anywhere)."""

    def __init__(self) -> None:
        self.bar: Optional[tqdm] = None

    def __call__(self, status: "TrainingStatus") -> None:
        epoch = f"epoch {status.epoch + 1}/{status.epochs}"
        bar = self.bar or progress_bar(status.steps, epoch, "batches")
        bar.update(status.step - bar.n)
        bar.set_postfix_str(f"loss {status.loss:.4f}", refresh=False)
        self.bar = bar
        if status.done:
            bar.close()
            self.bar = None
            figures = [f"loss {status.loss:.4f}"]
            if status.val_auc is not None:
                figures.append(f"val AUC {status.val_auc:.3f}")
            if status.best_auc >= 0:
                figures.append(f"best val AUC {status.best_auc:.3f}")
            log.info("%s: %s", epoch, ", ".join(figures))


def _processes(args: argparse.Namespace):
    """(ranks, device): this process's place under torchrun with --distributed, else the single process."""
    from .distributed import SINGLE, join

    return join(args.device) if args.distributed else (SINGLE, args.device)


def _at_least_one(text: str) -> int:
    """A count option: a whole number of 1 or more (argparse names the option in its error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _optional_path(value: Optional[str]) -> Optional[Path]:
    return Path(value) if value else None


def _train(args: argparse.Namespace) -> int:
    from .training import TrainSettings, train

    settings = TrainSettings(config=args.config, variant=args.variant, epochs=args.epochs, batch_size=args.batch_size,
                             seed=args.seed, patience=args.patience)
    ranks, device = _processes(args)
    summary = train(Path(args.cases), _optional_path(args.clinical), Path(args.out), settings,
                    folds=args.folds, device=device, roi_cache=_optional_path(args.roi_cache),
                    report=_EpochBars(), readers=args.readers, ranks=ranks)
    if ranks.main:
        print(json.dumps(summary, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .cohort_csv import read_cohort
    from .evaluation import evaluate, table_notes, table_with_intervals

    checkpoints = {"CSF-net": _optional_path(args.checkpoint)}
    if not args.checkpoint and args.compare is None:  # the shipped demo model: with its shipped ablations
        from .shipped_weights import model_entries, model_path

        for entry in model_entries():
            if entry.get("variant", "csf-net") != "csf-net":
                checkpoints[VARIANTS[entry["variant"]]] = model_path(entry["name"])
    for spec in args.compare or []:
        name, _, path = spec.partition("=")
        checkpoints[name] = Path(path)
    cohort = read_cohort(Path(args.cases), _optional_path(args.clinical))
    report = evaluate(cohort, checkpoints, out_dir=_optional_path(args.out), device=args.device,
                      resamples=args.resamples, progress=log.info, readers=args.readers)
    print(f"{report.nodules} nodules of {report.patients} patients ({report.malignant} malignant); "
          "95 % bootstrap intervals over patients\n")
    print(table_with_intervals(report))
    print(f"\n{table_notes(report)}")
    for problem in report.skipped_cases:
        print(f"skipped: {problem}", file=sys.stderr)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from .prediction import AttentionOutput, predict_cohort

    if args.resume and args.overwrite:
        raise ValueError("--resume and --overwrite contradict each other: --resume keeps an interrupted run's rows, "
                         "--overwrite starts again")
    inputs = [Path(p).resolve() for p in (args.cases, args.clinical) if p]
    if Path(args.out).resolve() in inputs:
        raise ValueError(f"--out {args.out} is one of the input files: choose another name for the results")
    ranks, device = _processes(args)
    if args.dicom_out:
        from .dicom.export import check_dicom_out

        check_dicom_out(args.dicom_out)
    if args.report_dir:
        _check_report_dir(args.report_dir)
    attention = AttentionOutput(Path(args.attention_dir), args.attention_method) if args.attention_dir else None
    counts = predict_cohort(
        Path(args.cases), Path(args.out), clinical_csv=_optional_path(args.clinical),
        checkpoint=_optional_path(args.checkpoint), device=device, batch_size=args.batch_size,
        precision=args.precision, nlst_cmst_rois=_optional_path(args.nlst_cmst), attention=attention,
        measure=not args.no_measure, measurements=_optional_path(args.measurements), overwrite=args.overwrite,
        resume=args.resume, readers=args.readers, ranks=ranks)
    if ranks.main:
        log.info("%d nodules predicted, %d failed -> %s", counts.predicted, counts.failed, args.out)
    failed = counts.failed
    if args.dicom_out and ranks.main:
        failed += _export_dicom(args, Path(args.out))
    if args.report_dir and ranks.main:
        _write_reports(Path(args.cases), _optional_path(args.clinical), Path(args.out),
                       _optional_path(args.checkpoint), Path(args.report_dir), _optional_path(args.attention_dir))
    return 1 if failed else 0  # and 2 when the run could not proceed (see main)


def _report(args: argparse.Namespace) -> int:
    _check_report_dir(args.out)
    _write_reports(Path(args.cases), _optional_path(args.clinical), Path(args.results),
                   _optional_path(args.checkpoint), Path(args.out), _optional_path(args.attention_dir))
    return 0


def _check_report_dir(out: str) -> None:
    from .output_paths import check_output_folder

    check_output_folder(out, "reports")


def _write_reports(cases: Path, clinical: Optional[Path], results: Path, checkpoint: Optional[Path], out: Path,
                   attention: Optional[Path]) -> None:
    from .case_report import patient_reports
    from .checkpoint import model_card
    from .cohort_csv import read_cohort
    from .results_file import read_probabilities

    written = patient_reports(read_cohort(cases, clinical), out, probabilities=read_probabilities(results),
                              model=model_card(checkpoint), attention_dir=attention, progress=log.info)
    log.info("%d patient reports -> %s", len(written), out)


def _export_dicom(args: argparse.Namespace, results: Optional[Path]) -> int:
    """The run's SEG + SR files into --dicom-out; how many scans could not be written (each logged)."""
    from .dicom.export import export_run

    export = export_run(Path(args.cases), Path(args.dicom_out), results_csv=results,
                        checkpoint=_optional_path(getattr(args, "checkpoint", None)), progress=log.info)
    for problem in export.problems:
        log.warning("DICOM output: %s", problem)
    log.info("%d DICOM files -> %s", len(export.written), args.dicom_out)
    return len(export.problems)


def _match(args: argparse.Namespace) -> int:
    from .match.cases import match_cases

    counts = match_cases(Path(args.cases), Path(args.out), overwrite=args.overwrite,
                         progress=counting_bar("match", "patients"))
    log.info("%d found, %d not present, %d undecided (their match column says why), %d given -> %s",
             counts.found, counts.not_present, counts.undecided, counts.given, args.out)
    return 1 if counts.undecided else 0


def _measure(args: argparse.Namespace) -> int:
    from .measure.cohort import measure_cohort

    if args.dicom_out:
        from .dicom.export import check_dicom_out

        check_dicom_out(args.dicom_out)
    counts = measure_cohort(Path(args.cases), Path(args.out), masks_dir=_optional_path(args.masks_dir),
                            overwrite=args.overwrite, progress=log.info)
    log.info("%d nodule scans measured, %d could not be -> %s", counts.measured, counts.failed, args.out)
    failed = counts.failed + (_export_dicom(args, None) if args.dicom_out else 0)
    return 1 if failed else 0


READERS_HELP = ("processes reading scans while the network runs (default: the machine's cores, at most 4; "
                "1: read in this process)")


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
    synth.add_argument("--workers", type=_at_least_one, default=min(2, os.cpu_count() or 1), help="processes to use")
    synth.add_argument("--slice-mm", type=float, nargs="+", metavar="MM",
                       help="the slice thicknesses (mm) each scan's is drawn from (default: 1 1.25 1.5 2 2.5); "
                            "e.g. 0.625 0.8 1 for thin-slice screening scans")
    synth.add_argument("--motion", choices=["usual", "large"], default="usual",
                       help="how the patient lies at the follow-up: usual (a few mm and degrees from the baseline, "
                            "the same breath) or large (turned up to 6 degrees, moved up to 25 mm, lungs 0.95-1.05 "
                            "times as tall); the truth is written to motion.csv")
    synth.add_argument("--scans", type=int, default=2, help="scans per patient, one screening interval apart "
                                                            "(T0, T1, T2, ...; 2 to 5)")
    synth.set_defaults(run=_synth)

    train = commands.add_parser("train", help="train CSF-net (or an ablation) on a cohort")
    train.add_argument("--cases", required=True, help="cases.csv")
    train.add_argument("--clinical", help="clinical.csv")
    train.add_argument("--out", required=True, help="run folder: checkpoint, history, splits (rerun to resume)")
    train.add_argument("--config", choices=CONFIG_NAMES, default="small",
                       help="small: narrow, for CPUs and the demo; full: the paper's widths")
    train.add_argument("--variant", choices=list(VARIANTS), default="csf-net",
                       help="; ".join(f"{name}: {label}" for name, label in VARIANTS.items()))
    train.add_argument("--folds", type=int, default=1,
                       help="1: train / validation / test split; K: K-fold CV")
    train.add_argument("--epochs", type=_at_least_one, default=60)
    train.add_argument("--batch-size", type=_at_least_one, default=16)
    train.add_argument("--patience", type=int, default=15, help="early stopping: epochs without a better val AUC")
    train.add_argument("--device", choices=DEVICES, default="auto")
    train.add_argument("--readers", type=_at_least_one, default=default_workers(), help=READERS_HELP)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--roi-cache", help="an .npz keeping the cohort's ROIs for later runs")
    train.add_argument("--distributed", action="store_true", help=DISTRIBUTED_HELP)
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="metrics with 95 %% intervals beside the clinical models and "
                                                       "measured growth")
    evaluate.add_argument("--cases", required=True)
    evaluate.add_argument("--clinical")
    evaluate.add_argument("--checkpoint", help="default: the shipped demo model")
    evaluate.add_argument("--compare", nargs="*", metavar="NAME=CHECKPOINT",
                          help="more networks for the table (default with the shipped model: its ablations)")
    evaluate.add_argument("--out", help="report folder: metrics.json, predictions.csv, roc.png")
    evaluate.add_argument("--device", choices=DEVICES, default="auto")
    evaluate.add_argument("--readers", type=_at_least_one, default=default_workers(), help=READERS_HELP)
    evaluate.add_argument("--resamples", type=_at_least_one, default=1000, help="bootstrap resamples")
    evaluate.set_defaults(run=_evaluate)

    predict = commands.add_parser("predict", help="p_malignant for every nodule -> results.csv")
    predict.add_argument("--cases", required=True, help="cases.csv, or the NLST-cmst CSV with --nlst-cmst")
    predict.add_argument("--clinical")
    predict.add_argument("--checkpoint", help="default: the shipped demo model")
    predict.add_argument("--out", required=True, help="results.csv to write")
    predict.add_argument("--device", choices=DEVICES, default="auto")
    predict.add_argument("--readers", type=_at_least_one, default=default_workers(), help=READERS_HELP)
    predict.add_argument("--batch-size", type=_at_least_one, default=16)
    predict.add_argument("--precision", choices=PRECISIONS, default="fp32",
                         help="fp16: autocast the network on a CUDA GPU (p_malignant within 0.01 of fp32)")
    predict.add_argument("--nlst-cmst", metavar="ROI_DIR", help="read the authors' pre-cut {pid}_T0/T1.npy ROIs")
    predict.add_argument("--overwrite", action="store_true", help="replace an existing results file")
    predict.add_argument("--resume", action="store_true",
                         help="continue an interrupted run (its rows are kept; the cases it holds are not redone)")
    predict.add_argument("--attention-dir", help="write each nodule's T0 / T1 attention (heat and label NRRDs) here")
    predict.add_argument("--attention-method", choices=ATTENTION_METHODS, default=DEFAULT_ATTENTION_METHOD,
                         help=f"how the maps are made (default {DEFAULT_ATTENTION_METHOD}; occlusion is about 250 "
                              "times slower; docs/attention.md compares them)")
    predict.add_argument("--measurements", help="also write every nodule's measurements at both scans here "
                                                "(measurements.csv, as csfnet measure writes it)")
    predict.add_argument("--no-measure", action="store_true",
                         help="skip measuring the nodules (about 0.2 s per nodule per scan): results.csv then "
                              "leaves diameter_mm, type, vdt_days, growth_class and lung_rads empty")
    predict.add_argument("--dicom-out", metavar="DIR", help=DICOM_OUT_HELP)
    predict.add_argument("--report-dir", metavar="DIR", help="also write a one-page report per patient (PDF, PNG)")
    predict.add_argument("--distributed", action="store_true", help=DISTRIBUTED_HELP)
    predict.set_defaults(run=_predict)

    match = commands.add_parser("match", help="find each nodule in the scans where its point is missing (empty x, y, "
                                              "z) from its point in another scan of the patient")
    match.add_argument("--cases", required=True, help="cases.csv; rows with empty x, y, z are found")
    match.add_argument("--out", required=True, help="the matched cases.csv to write (with match, match_mm, "
                                                    "match_note)")
    match.add_argument("--overwrite", action="store_true", help="replace an existing file")
    match.set_defaults(run=_match)

    report = commands.add_parser("report", help="a one-page report per patient (PDF and PNG) from a finished run: "
                                                "the nodules at every scan, their growth, probability and Lung-RADS")
    report.add_argument("--cases", required=True, help="the run's cases.csv")
    report.add_argument("--results", required=True, help="the run's results.csv")
    report.add_argument("--clinical", help="clinical.csv (for the Brock model)")
    report.add_argument("--checkpoint", help="the model that wrote the results (default: the shipped demo model)")
    report.add_argument("--attention-dir", help="the run's --attention-dir: its maps drawn over the nodules")
    report.add_argument("--out", required=True, help="folder for <pid>.pdf and <pid>.png")
    report.set_defaults(run=_report)

    measure = commands.add_parser("measure", help="each nodule's volume, diameters, type, growth and Lung-RADS "
                                                  "category at every scan -> measurements.csv")
    measure.add_argument("--cases", required=True, help="cases.csv (a point on each nodule in each scan)")
    measure.add_argument("--out", required=True, help="measurements.csv to write")
    measure.add_argument("--masks-dir", help="write each nodule's mask here: a label map (1 ground glass, 2 solid) "
                                             "on the scan's grid, {pid}_{nodule}_{T0|T1}.nrrd")
    measure.add_argument("--overwrite", action="store_true", help="replace an existing measurements file")
    measure.add_argument("--dicom-out", metavar="DIR", help=DICOM_OUT_HELP)
    measure.set_defaults(run=_measure)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        with messages_on_stderr(f"csfnet {args.command}"):
            return args.run(args)
    except (UsageError, OSError, ValueError) as exc:  # asked for what cannot be done, or an unusable input
        print(f"csfnet {args.command}: error: {worded(exc)}", file=sys.stderr)
        return 2
    finally:
        if getattr(args, "distributed", False):
            from .distributed import leave

            leave()


if __name__ == "__main__":
    sys.exit(main())
