"""Patient-level dataset splits, stratified by label and reproducible from a seed.

A patient's nodules always stay together (on one side of a split), or the test set would hold
nodules the model has seen the twin of in training. Within each label the patients are shuffled
with the seed and dealt out, so every part gets each class in proportion (to within one patient).
"""

import math
import random
from typing import Dict, List, Sequence, Tuple, cast

from .records import NoduleCase

PARTS = ("train", "validation", "test")


def patient_labels(cases: Sequence[NoduleCase]) -> Dict[str, int]:
    """Label per patient: 1 if any of its nodules is malignant, else 0. Every nodule needs a label."""
    unlabelled = [f"{c.pid}/{c.nodule}" for c in cases if c.label is None]
    if unlabelled:
        raise ValueError(f"splitting by label needs every nodule labelled; no label for (patient/nodule) "
                         f"{', '.join(unlabelled)}")
    labels: Dict[str, int] = {}
    for case in cases:
        labels[case.pid] = max(labels.get(case.pid, 0), int(cast(int, case.label)))  # all labelled: checked above
    return labels


def split_patients(
    patient_label: Dict[str, int], fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0
) -> Dict[str, List[str]]:
    """Patients into "train", "validation" and "test" parts of the given fractions, stratified by label.

    Each class is split by largest remainder, so a part holds floor or ceil of its share of every
    class. The result depends only on the patients, labels, fractions and seed (not on dict order).
    """
    fractions = [float(f) for f in fractions]
    if len(fractions) != len(PARTS):
        raise ValueError(f"fractions must be {len(PARTS)} numbers (train, validation, test), got {len(fractions)}")
    if any(not math.isfinite(f) or f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions} (sum {sum(fractions)})")
    parts: Dict[str, List[str]] = {name: [] for name in PARTS}
    for patients in _shuffled_classes(patient_label, seed):
        counts = _largest_remainder(len(patients), fractions)
        start = 0
        for name, count in zip(PARTS, counts):
            parts[name].extend(patients[start:start + count])
            start += count
    return {name: sorted(pids) for name, pids in parts.items()}


def kfold_patients(patient_label: Dict[str, int], k: int, seed: int = 0) -> List[Tuple[List[str], List[str]]]:
    """`k` (train, test) pairs; every patient is in exactly one test fold; folds stratified by label.

    Each class is dealt round-robin into the folds, continuing where the previous class stopped,
    so fold sizes differ by at most one overall and per class.
    """
    if not isinstance(k, int) or k < 2:
        raise ValueError(f"k-fold needs k >= 2 folds, got {k!r}")
    classes = _shuffled_classes(patient_label, seed)
    for patients in classes:
        if len(patients) < k:
            label = patient_label[patients[0]]
            raise ValueError(f"cannot make {k} stratified folds: label {label} has only {len(patients)} patient(s), "
                             "so some test folds would lack it; use fewer folds")
    folds: List[List[str]] = [[] for _ in range(k)]
    position = 0
    for patients in classes:
        for pid in patients:
            folds[position % k].append(pid)
            position += 1
    everyone = sorted(patient_label)
    return [(sorted(set(everyone) - set(fold)), sorted(fold)) for fold in folds]


def _shuffled_classes(patient_label: Dict[str, int], seed: int) -> List[List[str]]:
    """Patients grouped by label (labels in sorted order), each group shuffled reproducibly by `seed`."""
    if not patient_label:
        raise ValueError("no patients to split")
    by_label: Dict[int, List[str]] = {}
    for pid in sorted(patient_label):
        by_label.setdefault(patient_label[pid], []).append(pid)
    rng = random.Random(seed)
    classes = []
    for label in sorted(by_label):
        patients = by_label[label]
        rng.shuffle(patients)
        classes.append(patients)
    return classes


def _largest_remainder(n: int, fractions: Sequence[float]) -> List[int]:
    """Whole counts summing to `n`, each the floor or ceil of n * fraction."""
    total = sum(fractions)
    exact = [n * f / total for f in fractions]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts
