"""Evaluating CSF-net beside its ablations and the clinical models, in the paper's table form.

Network rows use p_malignant >= 0.5. The Brock and Mayo rows are computed from the cohort's nodule
facts at baseline (T0: the models' intended use) and threshold at 10 % (the British Thoracic Society's
cut-off for further work-up); their AUC does not depend on the threshold. Intervals are 95 %
percentile bootstrap over patients (a patient's nodules are resampled together).
"""

import csv
import json
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from .baselines import brock_probability, mayo_probability
from .clinical import normalize_code
from .dataset import RoiSet
from .inference import Predictor
from .metrics import METRICS, bootstrap_intervals, classification_metrics, roc_curve
from .paper import format_table
from .records import Cohort, NoduleCase
from .samples import iter_samples

CLINICAL_THRESHOLD = 0.10
ROC_COLOURS = [(214, 39, 40), (31, 119, 180), (44, 160, 44), (148, 103, 189), (255, 127, 14), (127, 127, 127)]


CLINICAL_MODELS = ("Brock (PanCan)", "Mayo")
_FLAG = {"1": True, "yes": True, "y": True, "true": True, "0": False, "no": False, "n": False, "false": False}
_FEMALE = {"2": True, "f": True, "female": True, "1": False, "m": False, "male": False}  # NLST codes 2 / 1
_NODULE_TYPES = {"solid": "solid", "part-solid": "part-solid", "partsolid": "part-solid", "partly-solid": "part-solid",
                 "non-solid": "non-solid", "nonsolid": "non-solid", "ground-glass": "non-solid", "ggn": "non-solid",
                 "ggo": "non-solid"}


def _number(facts: Dict[str, str], column: str, default: float) -> float:
    code = normalize_code(facts.get(column))
    if code is None:
        return default
    try:
        return float(code)
    except ValueError:
        raise ValueError(f"{column} = {facts[column]!r} is not a number") from None


def _choice(facts: Dict[str, str], column: str, table: Dict[str, Any], default: Any, expected: str) -> Any:
    """`facts[column]` looked up in `table` whatever its case, spaces or '_' ('Part Solid', 'TRUE');
    `default` when missing; a ValueError naming the column and value otherwise."""
    code = normalize_code(facts.get(column))
    if code is None:
        return default
    key = code.lower().replace(" ", "-").replace("_", "-")
    if key not in table:
        raise ValueError(f"{column} = {facts[column]!r} is not {expected}")
    return table[key]


def _flag(facts: Dict[str, str], column: str) -> bool:
    return _choice(facts, column, _FLAG, False, "0/1, yes/no or true/false")


def clinical_model_scores(case: NoduleCase, clinical: Dict[str, str]) -> Dict[str, float]:
    """Brock and Mayo probabilities from a nodule's T0 facts; a ValueError names a fact that is
    missing (diameter_mm) or not understood, rather than a default that would change the risk.

    Missing patient facts take neutral values: age 62 (Brock's centre), male, no family history,
    no emphysema, no prior cancer, ever smoker (as everyone in a screening cohort).
    """
    facts = case.t0.extra
    diameter = _number(facts, "diameter_mm", float("nan"))
    if not diameter > 0:
        raise ValueError("no diameter_mm above 0 at T0")
    age = _number(clinical, "age", 62.0)
    upper, spiculated = _flag(facts, "upper_lobe"), _flag(facts, "spiculation")
    brock = brock_probability(
        age=age, female=_choice(clinical, "gender", _FEMALE, False, "1 / 2 (NLST), M / F or male / female"),
        family_history=_flag(clinical, "family_history"), emphysema=_flag(clinical, "emphysema"),
        diameter_mm=diameter, upper_lobe=upper, spiculation=spiculated,
        nodule_type=_choice(facts, "nodule_type", _NODULE_TYPES, "solid", "solid, part-solid or non-solid"),
        nodule_count=int(_number(facts, "nodule_count", 1.0)))
    mayo = mayo_probability(age=age, ever_smoker=True, extrathoracic_cancer=_flag(clinical, "prior_cancer"),
                            diameter_mm=diameter, spiculation=spiculated, upper_lobe=upper)
    return dict(zip(CLINICAL_MODELS, (brock, mayo)))


def evaluate(
    cohort: Cohort,
    checkpoints: Dict[str, Optional[Path]],
    out_dir: Optional[Path] = None,
    device: str = "auto",
    resamples: int = 1000,
    progress: Optional[Callable[[str], None]] = None,
) -> Dict:
    """Score every labelled nodule with each network and clinical model; metrics with intervals.

    `checkpoints` maps a row name to a checkpoint (None = the shipped default model).
    """
    clash = sorted(set(checkpoints) & set(CLINICAL_MODELS))
    if clash:
        raise ValueError(f"{clash} name the clinical models' rows; give the network another name")
    say = progress or (lambda message: None)
    scores: Dict[str, Dict[Tuple[str, str], float]] = {}
    problems = []
    roi_sets: Dict[str, RoiSet] = {}
    for name, checkpoint in checkpoints.items():
        predictor = Predictor(checkpoint, device)
        key = json.dumps([predictor.preprocessing.to_dict(), predictor.vocabulary.to_dict()], sort_keys=True)
        if key not in roi_sets:
            say(f"reading ROIs for {name}")
            roi_sets[key], found = RoiSet.collect(iter_samples(cohort, predictor.preprocessing, predictor.vocabulary))
            problems += [str(p) for p in found]
        rois = roi_sets[key]
        say(f"scoring {len(rois)} nodules with {name}")
        scores[name] = dict(zip(zip(rois.pids, rois.nodules), predictor.predict(rois).tolist()))
    cases = {(c.pid, c.nodule): c for c in cohort.cases if c.label is not None}
    keys = [k for k in cases if all(k in s for s in scores.values())]
    unscored = []  # why a nodule has no clinical-model score
    for key in keys:
        try:
            computed = clinical_model_scores(cases[key], cohort.clinical.get(key[0], {}))
        except ValueError as error:
            computed = dict.fromkeys(CLINICAL_MODELS, float("nan"))
            unscored.append(f"patient {key[0]} nodule {key[1]}: {error}")
        for name, value in computed.items():
            scores.setdefault(name, {})[key] = value
    labels = np.array([cases[k].label for k in keys])
    groups = [k[0] for k in keys]
    rows = {}
    for name, by_case in scores.items():
        values = np.array([by_case[k] for k in keys])
        if not np.isfinite(values).all():
            missing = int((~np.isfinite(values)).sum())
            rows[name] = {"not_computed": f"{missing} of {len(keys)} nodules cannot be scored, e.g. {unscored[0]}"
                          if name in CLINICAL_MODELS else f"the network gave no probability for {missing} nodules"}
            continue
        threshold = 0.5 if name in checkpoints else CLINICAL_THRESHOLD
        rows[name] = {
            "threshold": threshold,
            **classification_metrics(labels, values, threshold),
            "ci95": bootstrap_intervals(labels, values, threshold, resamples, groups=groups),
        }
    report = {"nodules": len(keys), "patients": len(set(groups)), "malignant": int(labels.sum()),
              "rows": rows, "skipped_cases": sorted(set(problems))}
    if out_dir is not None:
        _write_outputs(Path(out_dir), report, scores, keys, labels)
    return report


def table_with_intervals(report: Dict) -> str:
    """The paper's table; each cell 'value [low, high]'."""
    cells = {}
    for name, row in report["rows"].items():
        if "not_computed" in row:
            cells[name] = {m: "n/a" for m in METRICS}
        else:
            cells[name] = {m: f"{row[m]:.4f} [{row['ci95'][m][0]:.2f}, {row['ci95'][m][1]:.2f}]" for m in METRICS}
    return format_table(cells)


def _write_outputs(out_dir: Path, report: Dict, scores, keys, labels) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(scores)
    (out_dir / "metrics.json").write_text(json.dumps(
        {**report, "roc_colours": {n: ROC_COLOURS[i % len(ROC_COLOURS)] for i, n in enumerate(names)}}, indent=2),
        encoding="utf-8")
    with open(out_dir / "predictions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["pid", "nodule", "label", *names])
        for key, label in zip(keys, labels):
            writer.writerow([key[0], key[1], int(label), *(f"{scores[n][key]:.6f}" for n in names)])
    curves = {n: roc_curve(labels, [scores[n][k] for k in keys]) for n in names
              if "not_computed" not in report["rows"][n]}
    write_roc_png(out_dir / "roc.png", curves)


def write_roc_png(path: Path, curves: Dict[str, Tuple[np.ndarray, np.ndarray]], size: int = 480) -> None:
    """ROC curves on a white square (false-positive rate right, true-positive rate up), one colour each
    in the order of ROC_COLOURS (listed in metrics.json), the chance diagonal in grey."""
    canvas = np.full((size, size, 3), 255, dtype=np.uint8)
    margin = 20
    span = size - 2 * margin

    def draw(fpr, tpr, colour, width=2):
        along = np.r_[0.0, np.cumsum(np.hypot(np.diff(fpr), np.diff(tpr)))]  # sample evenly along the path
        steps = np.linspace(0.0, along[-1], int(4 * span * max(along[-1], 1.0)))
        xs, ys = np.interp(steps, along, fpr), np.interp(steps, along, tpr)
        cols = (margin + xs * span).astype(int)
        rows = (size - margin - ys * span).astype(int)
        for d in range(-(width // 2), width - width // 2):
            canvas[np.clip(rows + d, 0, size - 1), np.clip(cols, 0, size - 1)] = colour
            canvas[np.clip(rows, 0, size - 1), np.clip(cols + d, 0, size - 1)] = colour

    draw(np.array([0.0, 1.0]), np.array([0.0, 1.0]), (190, 190, 190), 1)
    draw(np.array([0, 1, 1, 0, 0.0]), np.array([0, 0, 1, 1, 0.0]), (0, 0, 0), 1)  # frame
    for i, (fpr, tpr) in enumerate(curves.values()):
        colour = ROC_COLOURS[i % len(ROC_COLOURS)]
        draw(fpr, tpr, colour)  # one point per tie group: a group of both classes is a diagonal, as the AUC counts it
    sitk.WriteImage(sitk.GetImageFromArray(canvas, isVector=True), str(path))
