"""The batch command: scene files or a cases.csv cohort -> results.csv (+ scenes with results).

Driven by `Scripts/csfnet_batch.py`, under 3D Slicer (`Slicer --no-main-window --python-script`) or
plain Python with slicer-core. Each case runs through `predict_scene` exactly as in the module; a
case that fails gets an error row and the run carries on. Exit status: 0 all done, 1 some cases
failed, 2 nothing could run (bad arguments, an existing results file, a checkpoint that does not load),
3 no usable torch. An interrupted run continues with --resume: the cases already in its results are
kept and not redone.

Imports no torch: torch is checked (and, inside Slicer with --install-torch, installed) before the
work (`batch_run`) is imported.
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from ..console import messages_on_stderr
from ..options import ATTENTION_METHODS, DEFAULT_ATTENTION_METHOD, DEVICES, MINIMUM_TORCH, PAIR_BY
from ..torch_setup import TorchInstaller
from .nodes import NODE_NAMES

log = logging.getLogger(__name__)

PROGRAM = "csfnet_batch"
EXAMPLES = """examples:
  scene files (nodes named as below unless the defaults fit):
    csfnet_batch.py --scenes a.mrb b.mrb --baseline CT-2019 --followup CT-2020 \\
        --baseline-points T0 --followup-points T1 --out results.csv --save-dir with-results/
  a cohort (one scene per patient saved with --save-dir):
    csfnet_batch.py --cases cases.csv --clinical clinical.csv --out results.csv --save-dir scenes/
"""


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.splitlines()[0], epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--scenes", nargs="+", type=Path, metavar="SCENE", help=".mrb or .mrml files, one case each")
    source.add_argument("--cases", type=Path, help="a cases.csv cohort")
    parser.add_argument("--clinical", type=Path, help="clinical.csv by pid (a scene's pid: its file name, no suffix)")
    for flag, default in zip(("--baseline", "--followup", "--baseline-points", "--followup-points"), NODE_NAMES):
        parser.add_argument(flag, default=default, help=f"node name in the scenes (default: '{default}')")
    parser.add_argument("--pair-by", choices=PAIR_BY, default="auto",
                        help="n-th point with n-th point, or equal point labels (default auto: by label when "
                             "both lists have the same labels, else by index)")
    parser.add_argument("--same-position", action="store_true",
                        help="no baseline list: use each follow-up point at the same position in the baseline")
    parser.add_argument("--out", type=Path, required=True, help="results.csv to write")
    parser.add_argument("--save-dir", type=Path, help="save each case's scene with its results here (.mrb)")
    parser.add_argument("--checkpoint", type=Path, help="model checkpoint (default: the shipped demo model)")
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument("--no-attention", action="store_true", help="skip the attention maps")
    parser.add_argument("--attention-method", choices=ATTENTION_METHODS, default=DEFAULT_ATTENTION_METHOD,
                        help=f"how the attention maps are made (default {DEFAULT_ATTENTION_METHOD}; docs/attention.md)")
    parser.add_argument("--no-measure", action="store_true",
                        help="skip measuring the nodules (segmentations, volumes, growth, Lung-RADS)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing results and scene files")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run: cases already in its results are kept, not redone")
    parser.add_argument("--install-torch", action="store_true",
                        help="inside Slicer, when torch is missing: install it through the PyTorch extension "
                             "first (a download of up to a few GB)")
    args = parser.parse_args(list(argv))
    if args.same_position:
        args.baseline_points = None
    return args


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    if argv[:1] == ["--"]:  # Slicer passes the separator through
        argv = argv[1:]
    args = parse_args(argv)
    with messages_on_stderr(PROGRAM):
        if not _torch_ready(args.install_torch):
            return 3
        from .batch_run import run_batch

        return run_batch(args)


def _torch_ready(install: bool) -> bool:
    """Whether torch is usable, installing it first inside Slicer when `install` says so; says what to do if not."""
    installer = TorchInstaller()
    status = installer.status()
    in_slicer = hasattr(sys.modules.get("slicer"), "app")
    if status.missing and install and in_slicer:
        log.info("installing torch through the PyTorch extension")
        status = installer.install()
    if status.usable:
        return True
    if not in_slicer:
        remedy = f"install it with: pip install 'torch>={MINIMUM_TORCH}'"
    elif status.missing:
        remedy = ("run again with --install-torch, or install it in Slicer's PyTorch Utils module "
                  "(Extensions Manager: 'PyTorch')")
    else:
        remedy = "update or reinstall it in Slicer's PyTorch Utils module"
    log.error("%s: %s", status.problem, remedy)
    return False

