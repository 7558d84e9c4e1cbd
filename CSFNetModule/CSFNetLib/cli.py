"""The `csfnet` command. Subcommands: synth, info (more arrive with training, evaluation and prediction)."""

import argparse
import json
import os
import sys
from typing import List, Optional

from .version import __version__


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
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except (OSError, ValueError) as exc:
        print(f"csfnet {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
