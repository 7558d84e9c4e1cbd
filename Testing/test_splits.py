from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from CSFNetLib.records import NoduleCase, TimepointRow
from CSFNetLib.splits import PARTS, kfold_patients, patient_labels, split_patients

FRACTIONS = [(0.6, 0.2, 0.2), (0.8, 0.1, 0.1), (0.5, 0.5, 0.0), (1 / 3, 1 / 3, 1 / 3), (0.7, 0.15, 0.15)]


def cohort_labels(n_negative: int, n_positive: int):
    labels = {f"N{i:03d}": 0 for i in range(n_negative)}
    labels.update({f"M{i:03d}": 1 for i in range(n_positive)})
    return labels


def case(pid: str, nodule: str, label):
    rows = [TimepointRow(2, pid, nodule, t, Path(f"{pid}_{t}.nrrd"), (0.0, 0.0, 0.0), label) for t in ("T0", "T1")]
    return NoduleCase(pid, nodule, rows[0], rows[1], label)


def test_a_patient_is_positive_if_any_nodule_is():
    cases = [case("P1", "1", 0), case("P1", "2", 1), case("P2", "1", 0), case("P2", "2", 0), case("P3", "1", 1)]
    assert patient_labels(cases) == {"P1": 1, "P2": 0, "P3": 1}


def test_unlabelled_nodules_cannot_be_split_by_label():
    with pytest.raises(ValueError, match="no label for .*P3/2"):
        patient_labels([case("P3", "1", 0), case("P3", "2", None)])


@settings(max_examples=60, deadline=None)
@given(n_negative=st.integers(0, 40), n_positive=st.integers(0, 40), fractions=st.sampled_from(FRACTIONS),
       seed=st.integers(0, 2**31))
def test_split_puts_every_patient_in_exactly_one_part_stratified_within_one(n_negative, n_positive, fractions, seed):
    labels = cohort_labels(n_negative, n_positive)
    if not labels:
        return
    parts = split_patients(labels, fractions, seed)
    assert set(parts) == set(PARTS)
    together = [pid for name in PARTS for pid in parts[name]]
    assert sorted(together) == sorted(labels)  # no patient twice, none missing
    for label, n in ((0, n_negative), (1, n_positive)):
        for name, fraction in zip(PARTS, fractions):
            count = sum(labels[pid] == label for pid in parts[name])
            assert abs(count - n * fraction) < 1.0 + 1e-9


def test_split_is_deterministic_by_seed_and_independent_of_dict_order():
    labels = cohort_labels(30, 12)
    first = split_patients(labels, seed=7)
    assert split_patients(dict(reversed(list(labels.items()))), seed=7) == first
    assert split_patients(labels, seed=8) != first
    assert [len(first[name]) for name in PARTS] == [25, 9, 8]  # 18/6/6 benign + 7/3/2 malignant (largest remainder)


@pytest.mark.parametrize("fractions, message", [
    ((0.5, 0.2, 0.2), "sum to 1"),
    ((0.7, 0.5, -0.2), "non-negative"),
    ((0.8, 0.2), "3 numbers"),
])
def test_split_refuses_bad_fractions(fractions, message):
    with pytest.raises(ValueError, match=message):
        split_patients(cohort_labels(5, 5), fractions)


def test_split_refuses_no_patients():
    with pytest.raises(ValueError, match="no patients"):
        split_patients({})


@settings(max_examples=60, deadline=None)
@given(k=st.integers(2, 6), extra_negative=st.integers(0, 30), extra_positive=st.integers(0, 30),
       seed=st.integers(0, 2**31))
def test_kfold_tests_every_patient_once_stratified(k, extra_negative, extra_positive, seed):
    n_negative, n_positive = k + extra_negative, k + extra_positive
    labels = cohort_labels(n_negative, n_positive)
    folds = kfold_patients(labels, k, seed)
    assert len(folds) == k
    tested = [pid for _, test in folds for pid in test]
    assert sorted(tested) == sorted(labels)  # each patient in exactly one test fold
    for train, test in folds:
        assert sorted(train + test) == sorted(labels) and not set(train) & set(test)
        for label, n in ((0, n_negative), (1, n_positive)):
            assert sum(labels[pid] == label for pid in test) in (n // k, -(-n // k))
    sizes = [len(test) for _, test in folds]
    assert max(sizes) - min(sizes) <= 1


def test_kfold_is_deterministic_by_seed():
    labels = cohort_labels(20, 8)
    assert kfold_patients(labels, 4, seed=1) == kfold_patients(labels, 4, seed=1)
    assert kfold_patients(labels, 4, seed=1) != kfold_patients(labels, 4, seed=2)


@pytest.mark.parametrize("k, message", [(1, "k >= 2"), (0, "k >= 2"), (4, "label 1 has only 3 patient")])
def test_kfold_refuses_impossible_fold_counts(k, message):
    with pytest.raises(ValueError, match=message):
        kfold_patients(cohort_labels(10, 3), k)
