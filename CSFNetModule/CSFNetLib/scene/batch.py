"""Batch runs of the scene logic: scene files or a cases.csv cohort -> results.csv (+ scenes with results).

Driven by `Scripts/csfnet_batch.py`, under 3D Slicer (`Slicer --no-main-window --python-script`) or
plain Python with slicer-core. Each case runs through `predict_scene` exactly as in the module; a
case that fails gets an error row and the run carries on. Exit status: 0 all done, 1 some cases
failed, 2 nothing could run (bad arguments, an existing results file, a checkpoint that does not load).
An interrupted run continues with --resume: the cases already in its results are kept and not redone.
"""

import argparse
import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..cohort_csv import read_clinical, read_cohort
from ..console import messages_on_stderr, worded
from ..errors import UsageError
from ..images import read_image
from ..inference import PredictorCache
from ..options import DEVICES, PAIR_BY
from ..preprocessing import check_inside_scan
from ..records import Cohort, NoduleCase
from ..results_file import ResultsWriter, fingerprint
from .files import load_scene, save_scene, scene_for_scripts
from .logic import predict_scene, table_rows
from .nodes import NODE_NAMES, add_fiducials, add_volume_node

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
    parser.add_argument("--overwrite", action="store_true", help="replace existing results and scene files")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run: cases already in its results are kept, not redone")
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
        return _batch(args)


def _batch(args: argparse.Namespace) -> int:
    predictors = PredictorCache()
    try:
        predictor = predictors.get(args.checkpoint, args.device)
        cohort = read_cohort(args.cases, args.clinical) if args.cases else None
        clinical = cohort.clinical if cohort else read_clinical(args.clinical) if args.clinical else {}
        inputs = fingerprint(args.cases) if cohort else "; ".join(str(path.resolve()) for path in args.scenes)
        writer = ResultsWriter(args.out, predictor, overwrite=args.overwrite, resume=args.resume,
                               run={"inputs": inputs, "clinical": fingerprint(args.clinical)})
    except (UsageError, OSError, ValueError) as exc:
        log.error("%s", worded(exc))
        return 2
    session = scene_for_scripts()
    try:
        with writer as results:
            run = _Run(session.scene, args, clinical, results, predictors)
            if cohort is not None:
                run.cohort(cohort)
            else:
                for path in args.scenes:
                    run.scene_file(path)
    finally:
        session.close()
    log.info("%d nodules predicted, %d failed -> %s", results.predicted, results.failed, args.out)
    return 1 if results.failed else 0


class _Run:
    """One batch: every case is run in the same (cleared) scene and written to `results`."""

    def __init__(self, scene, args: argparse.Namespace, clinical: Dict[str, Dict[str, str]], results: ResultsWriter,
                 predictors: PredictorCache):
        self.scene, self.args, self.clinical, self.results = scene, args, clinical, results
        self.predictors = predictors
        self.done_patients = {pid for pid, _ in results.done}  # an interrupted run's, when resuming

    def scene_file(self, path: Path) -> None:
        pid = path.stem
        if pid in self.done_patients:  # a scene's rows are written together
            return
        try:
            load_scene(self.scene, path)  # its errors name the file
        except (OSError, ValueError) as exc:
            self._failed(pid, None, worded(exc))
            return
        try:
            nodes = [self._node(name) if name else None for name in (
                self.args.baseline, self.args.followup, self.args.baseline_points, self.args.followup_points)]
            self._predict(pid, nodes[0], nodes[1], nodes[2], nodes[3], save_as=pid)
        except (OSError, ValueError, RuntimeError) as exc:
            self._failed(pid, None, f"{path}: {worded(exc)}")

    def cohort(self, cohort: Cohort) -> None:
        for problem in cohort.problems:
            if str(problem) not in self.results.errors:
                self._failed(problem.pid, problem.nodule, str(problem))
        groups: Dict[Tuple[str, Path, Path], List[NoduleCase]] = {}  # one scene per patient and pair of scans
        for case in cohort.cases:
            groups.setdefault((case.pid, case.t0.image, case.t1.image), []).append(case)
        per_patient: Dict[str, int] = {}
        for (pid, t0_path, t1_path), cases in groups.items():
            per_patient[pid] = per_patient.get(pid, 0) + 1
            save_as = pid if per_patient[pid] == 1 else f"{pid}-{per_patient[pid]}"
            if not all((pid, case.nodule) in self.results.done for case in cases):
                self._cohort_case(cohort, pid, t0_path, t1_path, cases, save_as)

    def _cohort_case(self, cohort: Cohort, pid: str, t0_path: Path, t1_path: Path, cases: List[NoduleCase],
                     save_as: str) -> None:
        self.scene.Clear(False)
        try:
            images = read_image(t0_path), read_image(t1_path)
        except (OSError, ValueError, RuntimeError) as exc:
            for case in cases:
                self._failed(pid, case.nodule, f"{cohort.cases_csv}:{case.t0.row}: {exc}")
            return
        inside = []
        for case in cases:
            try:
                for image, row in zip(images, (case.t0, case.t1)):
                    check_inside_scan(image, row.center_lps)
                inside.append(case)
            except ValueError as exc:
                self._failed(pid, case.nodule, f"{cohort.cases_csv}:{row.row}: {row.image}: {exc}")
        if not inside:
            return
        volumes = [add_volume_node(self.scene, image, name) for image, name in zip(images, NODE_NAMES[:2])]
        points = [add_fiducials(self.scene, name, [row.center_lps for row in rows], [c.nodule for c in inside])
                  for name, rows in zip(NODE_NAMES[2:], ([c.t0 for c in inside], [c.t1 for c in inside]))]
        try:
            self._predict(pid, volumes[0], volumes[1], points[0], points[1], save_as=save_as)
        except (OSError, ValueError, RuntimeError) as exc:
            for case in inside:
                self._failed(pid, case.nodule, f"{cohort.cases_csv}: {worded(exc)}")

    def _predict(self, pid: str, baseline, followup, baseline_points, followup_points, save_as: str) -> None:
        table = predict_scene(self.scene, baseline, followup, baseline_points, followup_points,
                              clinical=self.clinical.get(pid),
                              checkpoint=self.args.checkpoint, device=self.args.device,
                              attention=not self.args.no_attention, pair_by=self.args.pair_by,
                              same_position=self.args.same_position, predictors=self.predictors)
        rows = table_rows(table)
        if self.args.save_dir is not None:
            save_scene(self.scene, self.args.save_dir / f"{save_as}.mrb", self.args.overwrite or self.args.resume)
        for row in rows:
            if (pid, str(row["nodule"])) not in self.results.done:
                self.results.prediction(pid, str(row["nodule"]), float(row["p_malignant"]))
        log.info("%s: %d nodules", pid, len(rows))

    def _node(self, name: str):
        nodes = self.scene.GetNodesByName(name)
        if nodes.GetNumberOfItems() != 1:
            raise ValueError(f"{'no' if nodes.GetNumberOfItems() == 0 else 'more than one'} node named '{name}' "
                             "in the scene")
        return nodes.GetItemAsObject(0)

    def _failed(self, pid: str, nodule: Optional[str], reason: str) -> None:
        log.warning("skipped %s", reason)
        if (pid, nodule or "") not in self.results.done:
            self.results.problem(pid, nodule, reason)
