"""Evaluating CSF-net beside its ablations and the clinical models, in the paper's table form.

Network rows use p_malignant >= 0.5. The Brock and Mayo rows are computed from the cohort's nodule
facts at baseline (T0: the models' intended use) and threshold at 10 % (the British Thoracic Society's
cut-off for further work-up); their AUC does not depend on the threshold. Intervals are 95 %
percentile bootstrap over patients (a patient's nodules are resampled together).

The steps: `score_networks`, `score_clinical_models`, `metric_rows`; `evaluate` runs them and
`write_report` writes metrics.json, predictions.csv and the figure (plots.py, matplotlib, imported
only there).
"""

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from .baselines import CLINICAL_MODELS, clinical_model_scores, missing_measurable_facts
from .dataset import RoiSet
from .images import read_image
from .inference import Predictor
from .measure.segmentation import measure_nodule
from .measure.size import NoduleSize
from .metrics import METRICS, bootstrap_intervals, classification_metrics
from .paper import format_table
from .records import Cohort, NoduleCase
from .samples import iter_samples

log = logging.getLogger(__name__)

NETWORK_THRESHOLD = 0.5
CLINICAL_THRESHOLD = 0.10

NoduleKey = Tuple[str, str]  # (pid, nodule)
Row = Dict[str, Any]  # threshold, the METRICS, ci95 {metric: (low, high)}; or only not_computed (the reason)


@dataclass
class EvaluationReport:
    """What `evaluate` found: the counts, one row of metrics per network and clinical model (in
    metrics.json's form), the case problems met, and the scores behind the rows."""

    nodules: int
    patients: int
    malignant: int
    rows: Dict[str, Row]
    skipped_cases: List[str]
    keys: List[NoduleKey] = field(default_factory=list, repr=False)  # the evaluated nodules, in order
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)  # 1 malignant, per key
    scores: Dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # row name -> probability per key

    def to_dict(self) -> Dict[str, Any]:
        """metrics.json's content."""
        return {"nodules": self.nodules, "patients": self.patients, "malignant": self.malignant,
                "rows": self.rows, "skipped_cases": self.skipped_cases}

    def computed(self) -> List[str]:
        """The names of the rows that have metrics."""
        return [name for name, row in self.rows.items() if "not_computed" not in row]


def evaluate(
    cohort: Cohort,
    checkpoints: Dict[str, Optional[Path]],
    *,
    out_dir: Optional[Path] = None,
    device: str = "auto",
    resamples: int = 1000,
    progress: Optional[Callable[[str], None]] = None,
    title: Optional[str] = None,
    readers: int = 1,
) -> EvaluationReport:
    """Score every labelled nodule with each network and clinical model; metrics with intervals.

    `checkpoints` maps a row name to a checkpoint (None = the shipped default model). Only labelled
    nodules that every network could score are evaluated; `readers` processes read the scans. With
    `out_dir`, `write_report` writes there (`title` heads the figure).
    """
    clash = sorted(set(checkpoints) & set(CLINICAL_MODELS))
    if clash:
        raise ValueError(f"{clash} name the clinical models' rows; give the network another name")
    classes = {c.label for c in cohort.cases if c.label is not None}
    if classes != {0, 1}:
        found = (f"every labelled nodule is {'malignant' if classes == {1} else 'benign'}" if classes
                 else "no nodule has a label (0 or 1)")
        raise ValueError(f"{cohort.cases_csv}: {found}; evaluation needs both benign (0) and malignant (1) nodules")
    by_network, problems = score_networks(cohort, checkpoints, device=device, progress=progress, readers=readers)
    labelled = {(c.pid, c.nodule): c for c in cohort.cases if c.label is not None}
    keys = [k for k in labelled if all(k in s for s in by_network.values())]
    scores = {name: np.array([by_case[k] for k in keys]) for name, by_case in by_network.items()}
    clinical_scores, unscored = score_clinical_models(cohort, [labelled[k] for k in keys])
    scores.update(clinical_scores)
    labels = np.array([labelled[k].label for k in keys])
    groups = [pid for pid, _ in keys]
    rows = metric_rows(labels, scores, groups=groups, networks=checkpoints, unscored=unscored, resamples=resamples)
    report = EvaluationReport(len(keys), len(set(groups)), int(labels.sum()), rows, sorted(set(problems)),
                              keys, labels, scores)
    if out_dir is not None:
        write_report(report, Path(out_dir), title=title)
    return report


def score_networks(
    cohort: Cohort,
    checkpoints: Dict[str, Optional[Path]],
    *,
    device: str = "auto",
    progress: Optional[Callable[[str], None]] = None,
    readers: int = 1,
) -> Tuple[Dict[str, Dict[NoduleKey, float]], List[str]]:
    """Each network's p_malignant per nodule whose ROIs could be read, and the case problems met.

    Networks with the same preprocessing and clinical vocabulary share one reading of the ROIs.
    """
    say = progress or (lambda message: None)
    scores: Dict[str, Dict[NoduleKey, float]] = {}
    problems: List[str] = []
    roi_sets: Dict[str, RoiSet] = {}
    for name, checkpoint in checkpoints.items():
        predictor = Predictor(checkpoint, device=device)
        key = json.dumps([predictor.preprocessing.to_dict(), predictor.vocabulary.to_dict()], sort_keys=True)
        if key not in roi_sets:
            say(f"reading ROIs for {name}")
            samples = iter_samples(cohort, predictor.preprocessing, predictor.vocabulary, readers=readers)
            roi_sets[key], found = RoiSet.collect(samples)
            problems += [str(p) for p in found]
        rois = roi_sets[key]
        say(f"scoring {len(rois)} nodules with {name}")
        scores[name] = dict(zip(zip(rois.pids, rois.nodules), predictor.predict(rois).tolist()))
    return scores, problems


def score_clinical_models(cohort: Cohort, cases: Sequence[NoduleCase]) -> Tuple[Dict[str, np.ndarray], List[str]]:
    """Brock and Mayo probabilities per case (NaN where a fact cannot be read), and why, per unscored case.

    A nodule whose T0 row gives no `diameter_mm` or `nodule_type` is measured in its T0 scan for them.
    """
    scores = {name: np.full(len(cases), np.nan) for name in CLINICAL_MODELS}
    unscored = []
    scans: Dict[Path, sitk.Image] = {}  # the patient at hand's T0 scan, read once for all its nodules
    for i, case in enumerate(cases):
        try:
            measured = _measured_if_needed(case, scans)
            computed = clinical_model_scores(case, cohort.clinical.get(case.pid, {}), measured)
        except ValueError as error:
            unscored.append(f"patient {case.pid} nodule {case.nodule}: {error}")
            continue
        for name, value in computed.items():
            scores[name][i] = value
    return scores, unscored


def _measured_if_needed(case: NoduleCase, scans: Dict[Path, sitk.Image]) -> Optional[NoduleSize]:
    """The nodule's size in its T0 scan when cases.csv lacks a fact the clinical models read; None otherwise
    (or when it cannot be measured: the models then say which fact is missing). `scans` keeps the last
    scan read, for the same patient's next nodules (cases.csv lists a patient's rows together, as a rule)."""
    if not missing_measurable_facts(case.t0.extra):
        return None
    try:
        if case.t0.image not in scans:
            scans.clear()
            scans[case.t0.image] = read_image(case.t0.image)
        return measure_nodule(scans[case.t0.image], case.t0.center_lps).size
    except (ValueError, OSError, RuntimeError) as error:
        log.warning("patient %s nodule %s: not measured for the clinical models: %s", case.pid, case.nodule, error)
        return None


def metric_rows(
    labels: np.ndarray,
    scores: Dict[str, np.ndarray],
    *,
    groups: Sequence[str],
    networks: Collection[str],
    unscored: Sequence[str] = (),
    resamples: int = 1000,
) -> Dict[str, Row]:
    """One row per score column: metrics at the row's threshold (0.5 for `networks`, 10 % for the clinical
    models) with intervals over bootstrap resamples of `groups`; `not_computed` when a score is missing."""
    rows: Dict[str, Row] = {}
    for name, values in scores.items():
        missing = int((~np.isfinite(values)).sum())
        if missing and name in CLINICAL_MODELS:
            rows[name] = {"not_computed": f"{missing} of {len(values)} nodules cannot be scored, e.g. {unscored[0]}"}
        elif missing:
            rows[name] = {"not_computed": f"the network gave no probability for {missing} nodules"}
        else:
            threshold = NETWORK_THRESHOLD if name in networks else CLINICAL_THRESHOLD
            rows[name] = {"threshold": threshold, **classification_metrics(labels, values, threshold),
                          "ci95": bootstrap_intervals(labels, values, threshold, resamples, groups=groups)}
    return rows


def table_with_intervals(report: EvaluationReport) -> str:
    """The paper's table; each cell 'value [low, high]'."""
    cells = {}
    for name, row in report.rows.items():
        if "not_computed" in row:
            cells[name] = {m: "n/a" for m in METRICS}
        else:
            cells[name] = {m: f"{row[m]:.4f} [{row['ci95'][m][0]:.2f}, {row['ci95'][m][1]:.2f}]" for m in METRICS}
    return format_table(cells)


def write_report(report: EvaluationReport, out_dir: Path, *, title: Optional[str] = None) -> None:
    """metrics.json (`report.to_dict()`), predictions.csv (one probability column per row, 6 decimals)
    and roc.png (ROC and calibration of the computed rows; plots.py)."""
    from .plots import write_evaluation_figure  # matplotlib: only when a figure is written

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    names = list(report.scores)
    with open(out_dir / "predictions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["pid", "nodule", "label", *names])
        for i, (key, label) in enumerate(zip(report.keys, report.labels)):
            writer.writerow([key[0], key[1], int(label), *(f"{report.scores[n][i]:.6f}" for n in names)])
    write_evaluation_figure(report, out_dir / "roc.png", title=title)
