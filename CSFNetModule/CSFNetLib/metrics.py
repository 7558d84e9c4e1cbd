"""Binary classification metrics in the paper's terms, with percentile-bootstrap 95 % intervals; a paired
bootstrap of two scores' AUC difference; the ROC curve and calibration bins the evaluation figure draws.

A score ranks nodules: any real number, -inf and inf included (a nodule that has resolved ranks below every
other); NaN is no score.
"""

from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike

METRICS = ("accuracy", "precision", "f1", "auc", "recall")


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve: the chance a random positive outscores a random negative (ties half).

    NaN when a class is absent or a score is NaN (a diverged network has no ranking).
    """
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    positive, negative = scores[labels == 1], scores[labels == 0]
    if len(positive) == 0 or len(negative) == 0 or np.any(np.isnan(scores)):
        return float("nan")
    order = np.argsort(np.concatenate([positive, negative]), kind="mergesort")
    ranks = np.empty(len(order))
    values = np.concatenate([positive, negative])[order]
    # average ranks over ties
    starts = np.r_[0, _changes(values) + 1]
    ends = np.r_[starts[1:], len(values)]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    rank_sum = ranks[: len(positive)].sum()
    return float((rank_sum - len(positive) * (len(positive) + 1) / 2.0) / (len(positive) * len(negative)))


def roc_curve(labels: ArrayLike, scores: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every threshold, from (0, 0) to (1, 1)."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    order = np.argsort(-scores, kind="mergesort")
    labels, scores = labels[order], scores[order]
    last_of_each_score = np.r_[_changes(scores), len(scores) - 1]
    true_positives = np.cumsum(labels)[last_of_each_score]
    false_positives = (last_of_each_score + 1) - true_positives
    tpr = np.r_[0.0, true_positives / max(labels.sum(), 1)]
    fpr = np.r_[0.0, false_positives / max(len(labels) - labels.sum(), 1)]
    return fpr, tpr


def _changes(sorted_values: np.ndarray) -> np.ndarray:
    """Where a sorted array's next value differs (an infinity equals itself, where np.diff would give NaN)."""
    return np.flatnonzero(sorted_values[1:] != sorted_values[:-1])


@dataclass(frozen=True)
class CalibrationBins:
    """Probabilities grouped into bins: per bin the nodule count, the observed fraction of positives
    and the mean predicted probability (both NaN for an empty bin). `edges` has one more entry than bins."""

    edges: np.ndarray
    counts: np.ndarray
    observed: np.ndarray
    predicted: np.ndarray


def calibration_bins(
    labels: ArrayLike, probabilities: ArrayLike, bins: int = 10, quantile: bool = False
) -> CalibrationBins:
    """Reliability-diagram bins: `bins` equal-width bins over [0, 1], or with `quantile` bins holding
    about equal numbers of nodules (edges at the probabilities' quantiles; tied edges merge).

    A bin holds lower edge <= p < upper edge; the last bin also holds its upper edge.
    """
    y, p = np.asarray(labels, dtype=float), np.asarray(probabilities, dtype=float)
    if len(p) == 0 or not np.all((p >= 0) & (p <= 1)):
        raise ValueError("calibration needs probabilities, all in [0, 1]")
    if quantile:
        edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, bins + 1)))
        if len(edges) == 1:  # all probabilities equal: one bin
            edges = np.repeat(edges, 2)
    else:
        edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.digitize(p, edges[1:-1])
    counts = np.bincount(which, minlength=len(edges) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = np.bincount(which, y, minlength=len(edges) - 1) / counts
        predicted = np.bincount(which, p, minlength=len(edges) - 1) / counts
    return CalibrationBins(edges, counts, observed, predicted)


def classification_metrics(labels: ArrayLike, scores: ArrayLike, threshold: float = 0.5,
                           positive: Optional[ArrayLike] = None) -> Dict[str, float]:
    """Accuracy, precision, F1, AUC and recall; predictions are `positive` (a rule that is not a threshold on
    the score, one bool per nodule) or else scores >= threshold (all NaN when a score is NaN: a missing score
    is no prediction)."""
    labels = np.asarray(labels).astype(int)
    if np.any(np.isnan(np.asarray(scores, dtype=float))):
        return {m: float("nan") for m in METRICS}
    called = np.asarray(scores, dtype=float) >= threshold if positive is None else np.asarray(positive, dtype=bool)
    predicted = called.astype(int)
    tp = int(np.sum((predicted == 1) & (labels == 1)))
    fp = int(np.sum((predicted == 1) & (labels == 0)))
    fn = int(np.sum((predicted == 0) & (labels == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "accuracy": float(np.mean(predicted == labels)) if len(labels) else float("nan"),
        "precision": precision,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "auc": roc_auc(labels, scores),
        "recall": recall,
    }


def bootstrap_intervals(
    labels: ArrayLike,
    scores: ArrayLike,
    threshold: float = 0.5,
    resamples: int = 1000,
    seed: int = 0,
    groups: Optional[ArrayLike] = None,
    positive: Optional[ArrayLike] = None,
) -> Dict[str, Tuple[float, float]]:
    """95 % percentile intervals of each metric over bootstrap resamples (predictions as
    `classification_metrics` makes them).

    With `groups` (patient ids) whole patients are resampled, so a patient's nodules stay together.
    """
    labels, scores = np.asarray(labels).astype(int), np.asarray(scores, dtype=float)
    calls = None if positive is None else np.asarray(positive, dtype=bool)
    samples: Dict[str, List[float]] = {m: [] for m in METRICS}
    for picked in _resampled(len(labels), resamples, seed, groups):
        values = classification_metrics(labels[picked], scores[picked], threshold,
                                         None if calls is None else calls[picked])
        for m in METRICS:
            samples[m].append(values[m])
    return {m: _interval(v) for m, v in samples.items()}


def paired_auc_difference(
    labels: ArrayLike,
    scores: ArrayLike,
    other: ArrayLike,
    resamples: int = 1000,
    seed: int = 0,
    groups: Optional[ArrayLike] = None,
) -> Tuple[float, Tuple[float, float]]:
    """AUC of `scores` minus AUC of `other` on the same nodules, and its 95 % percentile interval over paired
    bootstrap resamples (both scores on each resample; with `groups`, whole patients are resampled)."""
    labels = np.asarray(labels).astype(int)
    scores, other = np.asarray(scores, dtype=float), np.asarray(other, dtype=float)
    differences = [roc_auc(labels[picked], scores[picked]) - roc_auc(labels[picked], other[picked])
                   for picked in _resampled(len(labels), resamples, seed, groups)]
    return roc_auc(labels, scores) - roc_auc(labels, other), _interval(differences)


def _resampled(count: int, resamples: int, seed: int, groups: Optional[ArrayLike]) -> Iterator[np.ndarray]:
    """The indices of each bootstrap resample of `count` items, or of their `groups` drawn whole."""
    rng = np.random.default_rng(seed)
    if groups is None:
        members = [np.array([i]) for i in range(count)]
    else:
        groups = np.asarray(groups)
        members = [np.flatnonzero(groups == g) for g in dict.fromkeys(groups.tolist())]
    for _ in range(resamples):
        yield np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])


def _interval(values: List[float]) -> Tuple[float, float]:
    """The 2.5th and 97.5th percentiles, resamples without a value (a class missing) left out."""
    return float(np.nanpercentile(values, 2.5)), float(np.nanpercentile(values, 97.5))
