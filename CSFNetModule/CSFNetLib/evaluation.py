"""Evaluating CSF-net beside its ablations, the clinical models and measured growth, in the paper's table form.

Network rows use p_malignant >= 0.5. The Brock and Mayo rows are computed from the cohort's nodule
facts at baseline (T0: the models' intended use) and threshold at 10 % (the British Thoracic Society's
cut-off for further work-up); their AUC does not depend on the threshold. The growth rows (volume,
mean diameter, Lung-RADS category; `baselines.GROWTH_ROWS`) rank each nodule by its growth between the
two scans, measured by `CSFNetLib.measure`, and call it malignant by the guidelines' rules. Intervals are
95 % percentile bootstrap over patients (a patient's nodules are resampled together); the first network
is compared with the best growth row by a paired bootstrap of their AUC difference.

The steps: `score_networks`, `measure_nodules`, `score_clinical_models`, `score_growth`, `metric_rows`,
`paired_comparison`; `evaluate` runs them and `write_report` writes metrics.json, predictions.csv and the
figure (plots.py, matplotlib, imported only there).
"""

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .baselines import (
    CLINICAL_MODELS,
    GROWTH_ROWS,
    LUNG_RADS,
    clinical_model_scores,
    growth_scores,
    missing_measurable_facts,
)
from .dataset import RoiSet
from .inference import Predictor
from .measure.cohort import ScanSize, patient_sizes
from .measure.growth import LUNG_RADS_ORDER
from .measure.size import NoduleSize
from .metrics import METRICS, bootstrap_intervals, classification_metrics, paired_auc_difference
from .paper import format_table
from .parallel import ordered_map
from .records import Cohort, NoduleCase, cases_by_patient
from .samples import iter_samples

log = logging.getLogger(__name__)

NETWORK_THRESHOLD = 0.5
CLINICAL_THRESHOLD = 0.10

NoduleKey = Tuple[str, str]  # (pid, nodule)
Row = Dict[str, Any]  # threshold or rule, the METRICS, ci95 {metric: (low, high)}; or only not_computed (the reason)
NoduleScans = Dict[str, ScanSize]  # a nodule measured at each of its scans, by timepoint


@dataclass
class EvaluationReport:
    """What `evaluate` found: the counts, one row of metrics per network, clinical model and growth row (in
    metrics.json's form), the paired comparison, the nodules counted as resolved, the case problems met, and
    the scores behind the rows."""

    nodules: int
    patients: int
    malignant: int
    rows: Dict[str, Row]
    skipped_cases: List[str]
    keys: List[NoduleKey] = field(default_factory=list, repr=False)  # the evaluated nodules, in order
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)  # 1 malignant, per key
    scores: Dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # row name -> score per key
    comparison: Dict[str, Any] = field(default_factory=dict)  # `paired_comparison`'s; empty when none
    resolved: List[str] = field(default_factory=list)  # nodules with only lung at their follow-up point

    def to_dict(self) -> Dict[str, Any]:
        """metrics.json's content."""
        return {"nodules": self.nodules, "patients": self.patients, "malignant": self.malignant,
                "rows": self.rows, "comparison": self.comparison, "resolved": self.resolved,
                "skipped_cases": self.skipped_cases}

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
    """Score every labelled nodule with each network, clinical model and growth row; metrics with intervals,
    and the first network against the best growth row.

    `checkpoints` maps a row name to a checkpoint (None = the shipped default model). Only labelled
    nodules that every network could score are evaluated; `readers` processes read and measure the scans.
    With `out_dir`, `write_report` writes there (`title` heads the figure).
    """
    clash = sorted(set(checkpoints) & (set(CLINICAL_MODELS) | set(GROWTH_ROWS)))
    if clash:
        raise ValueError(f"{clash} name the clinical models' or growth rows; give the network another name")
    classes = {c.label for c in cohort.cases if c.label is not None}
    if classes != {0, 1}:
        found = (f"every labelled nodule is {'malignant' if classes == {1} else 'benign'}" if classes
                 else "no nodule has a label (0 or 1)")
        raise ValueError(f"{cohort.cases_csv}: {found}; evaluation needs both benign (0) and malignant (1) nodules")
    by_network, problems = score_networks(cohort, checkpoints, device=device, progress=progress, readers=readers)
    labelled = {(c.pid, c.nodule): c for c in cohort.cases if c.label is not None}
    keys = [k for k in labelled if all(k in s for s in by_network.values())]
    cases = [labelled[k] for k in keys]
    scores = {name: np.array([by_case[k] for k in keys]) for name, by_case in by_network.items()}
    if progress is not None:
        progress(f"measuring {len(cases)} nodules in their scans")
    measured = measure_nodules(cases, readers=readers)
    clinical_scores, unscored_clinical = score_clinical_models(cohort, cases, measured)
    growth = score_growth(cases, measured)
    scores.update(clinical_scores)
    scores.update(growth.scores)
    labels = np.array([case.label for case in cases])
    groups = [pid for pid, _ in keys]
    unscored = {**dict.fromkeys(CLINICAL_MODELS, unscored_clinical), **growth.unscored}
    rows = metric_rows(labels, scores, groups=groups, networks=checkpoints, unscored=unscored,
                       positive=growth.calls, resamples=resamples)
    comparison = paired_comparison(labels, scores, rows, groups=groups, network=next(iter(checkpoints)),
                                   resamples=resamples)
    report = EvaluationReport(len(keys), len(set(groups)), int(labels.sum()), rows, sorted(set(problems)),
                              keys, labels, scores, comparison, growth.resolved)
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


def measure_nodules(cases: Sequence[NoduleCase], *, readers: int = 1) -> List[NoduleScans]:
    """Each case's nodule measured at every scan (`CSFNetLib.measure`), once per nodule, each scan read once;
    `readers` processes share the patients."""
    patients = cases_by_patient(cases)
    measured = ordered_map(patient_sizes, patients.values(), readers)
    by_nodule = {(pid, nodule): scans for pid, sizes in zip(patients, measured) for nodule, scans in sizes.items()}
    return [by_nodule[(case.pid, case.nodule)] for case in cases]


def score_clinical_models(cohort: Cohort, cases: Sequence[NoduleCase],
                          measured: Sequence[NoduleScans]) -> Tuple[Dict[str, np.ndarray], List[str]]:
    """Brock and Mayo probabilities per case (NaN where a fact cannot be read), and why, per unscored case.

    The nodule's size in its T0 scan (`measured`, from `measure_nodules`) stands in for a `diameter_mm` or
    `nodule_type` that its T0 row does not give.
    """
    scores = {name: np.full(len(cases), np.nan) for name in CLINICAL_MODELS}
    unscored = []
    for i, (case, scans) in enumerate(zip(cases, measured)):
        size = scans[case.t0.timepoint].size
        if not isinstance(size, NoduleSize) and missing_measurable_facts(case.t0.extra):
            log.warning("patient %s nodule %s: not measured for the clinical models: %s", case.pid, case.nodule, size)
        try:
            computed = clinical_model_scores(case, cohort.clinical.get(case.pid, {}),
                                             size if isinstance(size, NoduleSize) else None)
        except ValueError as error:
            unscored.append(f"patient {case.pid} nodule {case.nodule}: {error}")
            continue
        for name, value in computed.items():
            scores[name][i] = value
    return scores, unscored


class GrowthScores(NamedTuple):
    """`score_growth`'s answer, by growth row: the score per case (NaN where unscored), the malignant calls,
    and why, per unscored case; and the nodules counted as resolved."""

    scores: Dict[str, np.ndarray]
    calls: Dict[str, np.ndarray]
    unscored: Dict[str, List[str]]
    resolved: List[str]


def score_growth(cases: Sequence[NoduleCase], measured: Sequence[NoduleScans]) -> GrowthScores:
    """The growth rows for each case, from its nodule measured at the case's two scans (`baselines.growth_scores`).

    A nodule measured at T0 with only lung at its T1 point counts as resolved; one that cannot be measured at
    either scan is not scored, nor is its volume growth without the days between the scans.
    """
    count = len(cases)
    growth = GrowthScores({row: np.full(count, np.nan) for row in GROWTH_ROWS},
                          {row: np.zeros(count, bool) for row in GROWTH_ROWS}, {row: [] for row in GROWTH_ROWS}, [])
    for i, (case, scans) in enumerate(zip(cases, measured)):
        who = f"patient {case.pid} nodule {case.nodule}"
        before, after = scans[case.t0.timepoint], scans[case.t1.timepoint]
        days = after.days - before.days if after.days is not None and before.days is not None else None
        try:
            if not isinstance(before.size, NoduleSize):
                raise ValueError(before.size)
            if isinstance(after.size, NoduleSize):
                computed = growth_scores(before.size, after.size, days)
            elif after.only_lung:
                computed = growth_scores(before.size, None, days)
                growth.resolved.append(f"{who} (only lung at its {case.t1.timepoint} point)")
            else:
                raise ValueError(after.size)
        except ValueError as error:
            for row in GROWTH_ROWS:
                growth.unscored[row].append(f"{who}: {error}")
            continue
        for row in GROWTH_ROWS:
            if row in computed:
                growth.scores[row][i], growth.calls[row][i] = computed[row]
            else:
                growth.unscored[row].append(f"{who}: no days between its scans (cases.csv's days column)")
    return growth


def metric_rows(
    labels: np.ndarray,
    scores: Dict[str, np.ndarray],
    *,
    groups: Sequence[str],
    networks: Collection[str],
    unscored: Optional[Mapping[str, Sequence[str]]] = None,
    positive: Optional[Dict[str, np.ndarray]] = None,
    resamples: int = 1000,
) -> Dict[str, Row]:
    """One row per score column: metrics at the row's threshold (0.5 for `networks`, 10 % for the clinical
    models) or by its `positive` calls (the growth rows, with their `rule`), with intervals over bootstrap
    resamples of `groups`; `not_computed` when a score is missing (why: `unscored`, by row)."""
    rows: Dict[str, Row] = {}
    for name, values in scores.items():
        missing = int(np.isnan(values).sum())
        reasons = (unscored or {}).get(name)
        calls = (positive or {}).get(name)
        if missing and reasons:
            rows[name] = {"not_computed": f"{missing} of {len(values)} nodules cannot be scored, e.g. {reasons[0]}"}
        elif missing:
            rows[name] = {"not_computed": f"the network gave no probability for {missing} nodules"}
        else:
            threshold = NETWORK_THRESHOLD if name in networks else CLINICAL_THRESHOLD
            rule = {"threshold": threshold} if calls is None else {"rule": GROWTH_ROWS[name]}
            rows[name] = {**rule, **classification_metrics(labels, values, threshold, calls),
                          "ci95": bootstrap_intervals(labels, values, threshold, resamples, groups=groups,
                                                      positive=calls)}
    return rows


def paired_comparison(labels: np.ndarray, scores: Dict[str, np.ndarray], rows: Dict[str, Row], *,
                      groups: Sequence[str], network: str, resamples: int = 1000) -> Dict[str, Any]:
    """`network` against the growth row of highest AUC: their AUC difference (network minus growth row) with
    its 95 % paired bootstrap interval over `groups`; empty when either has no metrics."""
    growth = [name for name in GROWTH_ROWS if "auc" in rows.get(name, {})]
    if "auc" not in rows.get(network, {}) or not growth:
        return {}
    best = max(growth, key=lambda name: rows[name]["auc"])
    difference, interval = paired_auc_difference(labels, scores[network], scores[best], resamples, groups=groups)
    return {"network": network, "against": best, "auc_difference": difference, "ci95": list(interval),
            "resamples": resamples}


def table_with_intervals(report: EvaluationReport) -> str:
    """The paper's table; each cell 'value [low, high]'."""
    cells = {}
    for name, row in report.rows.items():
        if "not_computed" in row:
            cells[name] = {m: "n/a" for m in METRICS}
        else:
            cells[name] = {m: f"{row[m]:.4f} [{row['ci95'][m][0]:.2f}, {row['ci95'][m][1]:.2f}]" for m in METRICS}
    return format_table(cells)


def table_notes(report: EvaluationReport) -> str:
    """What to print under the table: how the growth rows rank and call nodules, the nodules counted as
    resolved, the rows not computed and why, and `comparison_verdict`."""
    lines = ["Growth rows, from the nodules measured in both scans:"]
    lines += [f"- {name}: {rule}." for name, rule in GROWTH_ROWS.items()]
    if report.resolved:
        lines.append(f"Counted as resolved, ranked lowest by the growth rows (check the follow-up point): "
                     f"{'; '.join(report.resolved)}.")
    lines += [f"{name}: not computed: {row['not_computed']}" for name, row in report.rows.items()
              if "not_computed" in row]
    return "\n".join(lines + ["", comparison_verdict(report)])


def comparison_verdict(report: EvaluationReport) -> str:
    """The paired comparison in plain words: which of the network and the best growth row ranks the nodules
    better on this cohort, or that their difference is within the noise."""
    comparison = report.comparison
    if not comparison:
        return "No paired comparison: the network's row or every growth row is not computed."
    network, other = comparison["network"], comparison["against"]
    low, high = comparison["ci95"]
    numbers = (f"AUC {report.rows[network]['auc']:.3f} against {report.rows[other]['auc']:.3f}; {network} minus "
               f"{other} {comparison['auc_difference']:+.3f}, 95 % interval [{low:+.3f}, {high:+.3f}] over "
               f"{comparison['resamples']} paired bootstrap resamples of the patients")
    if low > 0:
        return f"{network} ranks the nodules better than {other}, the best growth row, on this cohort ({numbers})."
    if high < 0:
        return f"{other}, the best growth row, ranks the nodules better than {network} on this cohort ({numbers})."
    return (f"{network} and {other}, the best growth row, differ within the noise on this cohort ({numbers}: "
            f"the interval holds 0).")


def write_report(report: EvaluationReport, out_dir: Path, *, title: Optional[str] = None) -> None:
    """metrics.json (`report.to_dict()`), predictions.csv (one score column per row, 6 decimals: probabilities,
    the growth rows' scores, the Lung-RADS category) and roc.png (ROC and calibration of the computed rows;
    plots.py)."""
    from .plots import write_evaluation_figure  # matplotlib: only when a figure is written

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    names = list(report.scores)
    with open(out_dir / "predictions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["pid", "nodule", "label", *names])
        for i, (key, label) in enumerate(zip(report.keys, report.labels)):
            writer.writerow([key[0], key[1], int(label), *(_cell(n, report.scores[n][i]) for n in names)])
    write_evaluation_figure(report, out_dir / "roc.png", title=title)


def _cell(name: str, score: float) -> str:
    """A score as predictions.csv writes it: the Lung-RADS row's as its category."""
    if name == LUNG_RADS and not np.isnan(score):
        return LUNG_RADS_ORDER[int(score)]
    return f"{score:.6f}"
