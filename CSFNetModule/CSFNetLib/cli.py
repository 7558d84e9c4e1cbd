"""The `csfnet` command. Subcommands: info (more arrive with training, evaluation and prediction)."""

import argparse
import json
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
