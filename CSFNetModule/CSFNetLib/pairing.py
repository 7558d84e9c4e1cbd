"""Which baseline point is which follow-up point: pairing two lists of labelled nodule points."""

from typing import List, NamedTuple, Tuple

import numpy as np

from .options import PAIR_BY

LabelledPoint = Tuple[str, np.ndarray]  # a control point's label and RAS position


class NodulePair(NamedTuple):
    """One nodule: its label and its point in each scan (RAS mm)."""

    label: str
    baseline_ras: np.ndarray
    followup_ras: np.ndarray


PAIRING_RULES = {
    "index": "the n-th baseline point with the n-th follow-up point",
    "label": "baseline and follow-up points with equal labels",
    "same position": "each follow-up point at the same physical position in the baseline scan",
}


def pair_nodules(baseline: List[LabelledPoint], followup: List[LabelledPoint],
                 by: str = "auto") -> Tuple[List[NodulePair], str]:
    """(the nodules, the rule used): n-th point with n-th point, or equal labels.

    `by="auto"` pairs by label when both lists carry the same set of distinct labels (then the
    labels say which nodule is which, in whatever order), by index when they share no label (as
    Slicer's default labels, named after each list), and refuses lists that share only some labels:
    there the labels name nodules that pairing by index would mix up (one resolved, one new).
    """
    if by not in PAIR_BY:
        raise ValueError(f"pair_by must be 'auto', 'index' or 'label', got {by!r}")
    before, after = [label for label, _ in baseline], [label for label, _ in followup]
    repeated = sorted({label for names in (before, after) for label in names if names.count(label) > 1})
    mismatch = (f"baseline only {sorted(set(before) - set(after))}, follow-up only {sorted(set(after) - set(before))}"
                + (f", repeated {repeated}" if repeated else ""))
    same = not repeated and set(before) == set(after)
    if by == "auto":
        if not same and set(before) & set(after):
            raise ValueError(f"the lists share some labels but not all ({mismatch}): give each nodule the same "
                             "label in both lists, or pair by index on purpose")
        by = "label" if same else "index"
    if by == "label":
        if not same:
            raise ValueError(f"labels do not match between the lists: {mismatch}")
        later = dict(followup)
        return [NodulePair(label, position, later[label]) for label, position in baseline], by
    if len(baseline) != len(followup):
        raise ValueError(f"{len(baseline)} baseline and {len(followup)} follow-up points: the n-th point of "
                         "each list must be the same nodule (or give both lists the same labels)")
    return [NodulePair(f[0], b[1], f[1]) for b, f in zip(baseline, followup)], by
