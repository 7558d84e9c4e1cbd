"""The work of a batch run (see `batch`): every case through `predict_scene`, one results file.

Imports torch (through the predictor): `batch` imports this only once torch is known to be usable.
"""

import argparse
import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..cohort_csv import read_clinical, read_cohort
from ..console import worded
from ..errors import UsageError
from ..images import read_image
from ..inference import PredictorCache
from ..preprocessing import check_inside_scan
from ..records import Cohort, NoduleCase
from ..results_file import TWO_SCANS, ResultsWriter, fingerprint
from .files import load_scene, save_scene, scene_for_scripts
from .logic import predict_scene
from .nodes import NODE_NAMES, add_fiducials, add_volume_node
from .results_table import table_rows

log = logging.getLogger(__name__)


def run_batch(args: argparse.Namespace) -> int:
    """Run the batch `args` describe (`batch.parse_args`); the exit status."""
    predictors = PredictorCache()
    try:
        predictor = predictors.get(args.checkpoint, args.device)
        cohort = read_cohort(args.cases, args.clinical) if args.cases else None
        clinical = cohort.clinical if cohort else read_clinical(args.clinical) if args.clinical else {}
        inputs = fingerprint(args.cases) if cohort else "; ".join(str(path.resolve()) for path in args.scenes)
        writer = ResultsWriter(args.out, predictor, overwrite=args.overwrite, resume=args.resume,
                               run={"inputs": inputs, "clinical": fingerprint(args.clinical)},
                               scans_column=cohort is not None and any(case.history for case in cohort.cases))
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
        self.done_patients = {pid for pid, _, _ in results.done}  # an interrupted run's, when resuming

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
            if not all((pid, case.nodule, case.scans) in self.results.done for case in cases):
                self._cohort_case(cohort, pid, t0_path, t1_path, cases, save_as)

    def _cohort_case(self, cohort: Cohort, pid: str, t0_path: Path, t1_path: Path, cases: List[NoduleCase],
                     save_as: str) -> None:
        self.scene.Clear(False)
        try:
            images = read_image(t0_path), read_image(t1_path)
        except (OSError, ValueError, RuntimeError) as exc:
            for case in cases:
                self._failed(pid, case.nodule, f"{cohort.cases_csv}:{case.t0.row}: {exc}", case.scans)
            return
        inside = []
        for case in cases:
            try:
                for image, row in zip(images, (case.t0, case.t1)):
                    check_inside_scan(image, row.center_lps)
                inside.append(case)
            except ValueError as exc:
                self._failed(pid, case.nodule, f"{cohort.cases_csv}:{row.row}: {row.image}: {exc}", case.scans)
        if not inside:
            return
        volumes = [add_volume_node(self.scene, image, name) for image, name in zip(images, NODE_NAMES[:2])]
        points = [add_fiducials(self.scene, name, [row.center_lps for row in rows], [c.nodule for c in inside])
                  for name, rows in zip(NODE_NAMES[2:], ([c.t0 for c in inside], [c.t1 for c in inside]))]
        t0_days, t1_days = inside[0].t0.days, inside[0].t1.days
        interval = t1_days - t0_days if t0_days is not None and t1_days is not None else None
        try:
            self._predict(pid, volumes[0], volumes[1], points[0], points[1], save_as=save_as, interval_days=interval,
                          scans={case.nodule: case.scans for case in inside})
        except (OSError, ValueError, RuntimeError) as exc:
            for case in inside:
                self._failed(pid, case.nodule, f"{cohort.cases_csv}: {worded(exc)}", case.scans)

    def _predict(self, pid: str, baseline, followup, baseline_points, followup_points, save_as: str,
                 interval_days: Optional[float] = None, scans: Optional[Dict[str, str]] = None) -> None:
        """`scans`: each nodule's pair of scans (T0-T1 when not given)."""
        table = predict_scene(self.scene, baseline, followup, baseline_points, followup_points,
                              clinical=self.clinical.get(pid),
                              checkpoint=self.args.checkpoint, device=self.args.device,
                              attention=not self.args.no_attention,
                              attention_method=self.args.attention_method, pair_by=self.args.pair_by,
                              same_position=self.args.same_position, measure=not self.args.no_measure,
                              interval_days=interval_days, predictors=self.predictors)
        rows = table_rows(table)
        if self.args.save_dir is not None:
            save_scene(self.scene, self.args.save_dir / f"{save_as}.mrb", self.args.overwrite or self.args.resume)
        for row in rows:
            nodule = str(row["nodule"])
            pair = (scans or {}).get(nodule, TWO_SCANS)
            if (pid, nodule, pair) not in self.results.done:
                self.results.prediction(pid, nodule, float(row["p_malignant"]), row, pair)
        log.info("%s: %d nodules", pid, len(rows))

    def _node(self, name: str):
        nodes = self.scene.GetNodesByName(name)
        if nodes.GetNumberOfItems() != 1:
            raise ValueError(f"{'no' if nodes.GetNumberOfItems() == 0 else 'more than one'} node named '{name}' "
                             "in the scene")
        return nodes.GetItemAsObject(0)

    def _failed(self, pid: str, nodule: Optional[str], reason: str, scans: str = TWO_SCANS) -> None:
        log.warning("skipped %s", reason)
        if (pid, nodule or "", scans) not in self.results.done:
            self.results.problem(pid, nodule, reason, scans)
