import numpy as np
import pytest

from CSFNetLib.metrics import bootstrap_intervals, classification_metrics, roc_auc, roc_curve


def test_metrics_match_hand_computed_values():
    labels = [1, 1, 1, 0, 0, 0, 0, 1]
    scores = [0.9, 0.6, 0.4, 0.7, 0.2, 0.1, 0.55, 0.8]
    m = classification_metrics(labels, scores, threshold=0.5)
    # predicted: 1 1 0 1 0 0 1 1 -> tp 3, fp 2, fn 1, tn 2
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    # positives 0.9 0.6 0.4 0.8 vs negatives 0.7 0.2 0.1 0.55: pairs won 4+3+2+4 = 13 of 16
    assert m["auc"] == pytest.approx(13 / 16)


def test_auc_counts_ties_as_half_and_is_nan_without_both_classes():
    assert roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert roc_auc([1, 1, 0], [0.5, 0.7, 0.5]) == pytest.approx(0.75)
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_roc_curve_runs_from_origin_to_one_and_its_area_is_the_auc():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = labels * 0.5 + rng.random(200)
    fpr, tpr = roc_curve(labels, scores)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy 2 renamed it
    assert trapezoid(tpr, fpr) == pytest.approx(roc_auc(labels, scores))


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_data():
    rng = np.random.default_rng(1)
    small_labels = rng.integers(0, 2, 40)
    large_labels = rng.integers(0, 2, 400)
    small = bootstrap_intervals(small_labels, small_labels * 0.3 + rng.random(40), resamples=300)
    large = bootstrap_intervals(large_labels, large_labels * 0.3 + rng.random(400), resamples=300)
    large_scores = large_labels * 0.3 + np.random.default_rng(9).random(400)
    large = bootstrap_intervals(large_labels, large_scores, resamples=300)
    assert large["auc"][1] - large["auc"][0] < small["auc"][1] - small["auc"][0]
    assert large["auc"][0] < roc_auc(large_labels, large_scores) < large["auc"][1]


def test_bootstrap_can_resample_whole_patients():
    # patient a: two correct nodules; patient b: one correct, one wrong. Resampling whole patients,
    # accuracy can only be 1, 3/4 or 1/2; resampling nodules it can also be 1/4 or 0.
    labels, scores = [1, 1, 1, 0], [0.9, 0.8, 0.9, 0.7]
    by_patient = bootstrap_intervals(labels, scores, resamples=400, groups=["a", "a", "b", "b"])
    by_nodule = bootstrap_intervals(labels, scores, resamples=400)
    assert by_patient["accuracy"][0] >= 0.5
    assert by_nodule["accuracy"][0] < 0.5


@pytest.mark.parametrize("missing", [0, 2])  # a missing score among the positives or the negatives
def test_a_missing_score_gives_no_metric_rather_than_a_confident_one(missing):
    scores = [0.9, 0.8, 0.1, 0.2]
    scores[missing] = float("nan")
    assert np.isnan(roc_auc([1, 1, 0, 0], scores))
    assert all(np.isnan(v) for v in classification_metrics([1, 1, 0, 0], scores).values())


def test_the_roc_curve_has_one_point_per_tie_group():
    labels, scores = [1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5]  # one tie group of both classes: AUC 0.5
    assert roc_auc(labels, scores) == 0.5
    fpr, tpr = roc_curve(labels, scores)  # straight from (0, 0) to (1, 1): the diagonal the AUC counts
    assert fpr.tolist() == [0.0, 1.0] and tpr.tolist() == [0.0, 1.0]


def test_calibration_bins_count_every_nodule_once_and_average_within_a_bin():
    from CSFNetLib.metrics import calibration_bins

    labels = [0, 0, 1, 0, 1, 1, 1]
    probabilities = [0.05, 0.1, 0.15, 0.55, 0.65, 0.95, 1.0]  # 0.1 opens bin 1; 1.0 closes the last bin
    bins = calibration_bins(labels, probabilities, bins=10)
    assert bins.edges.tolist() == pytest.approx(np.linspace(0, 1, 11).tolist())
    assert bins.counts.tolist() == [1, 2, 0, 0, 0, 1, 1, 0, 0, 2]
    assert bins.observed[1] == 0.5 and bins.predicted[1] == pytest.approx(0.125)
    assert bins.observed[9] == 1.0 and bins.predicted[9] == pytest.approx(0.975)
    assert np.isnan(bins.observed[2]) and np.isnan(bins.predicted[2])  # an empty bin has no fraction


def test_quantile_calibration_bins_hold_about_equal_counts():
    from CSFNetLib.metrics import calibration_bins

    rng = np.random.default_rng(0)
    probabilities = rng.random(50) ** 3  # crowded near 0, as a clinical model's risks are
    labels = rng.random(50) < probabilities
    bins = calibration_bins(labels, probabilities, bins=5, quantile=True)
    assert bins.counts.sum() == 50 and bins.counts.tolist() == [10] * 5
    assert np.nansum(bins.observed * bins.counts) == labels.sum()
    assert calibration_bins([1, 0], [0.3, 0.3], bins=5, quantile=True).counts.tolist() == [2]  # all tied


def test_calibration_needs_probabilities():
    from CSFNetLib.metrics import calibration_bins

    with pytest.raises(ValueError, match="probabilities"):
        calibration_bins([1, 0], [0.5, 1.5])
