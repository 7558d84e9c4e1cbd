"""Measured growth beside the network: the growth rows (volume, diameter, Lung-RADS), their ranking and calls,
the paired comparison with the network and its verdict, on hand-made sizes, phantoms and a generated cohort."""

import csv
import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import Phantom
from CSFNetLib.baselines import DIAMETER_GROWTH, GROWTH_ROWS, LUNG_RADS, VOLUME_GROWTH, growth_scores
from CSFNetLib.cohort_csv import read_cohort
from CSFNetLib.evaluation import (
    EvaluationReport,
    comparison_verdict,
    evaluate,
    measure_nodules,
    metric_rows,
    paired_comparison,
    score_growth,
    table_notes,
)
from CSFNetLib.measure.growth import LUNG_RADS_ORDER, lung_rads, volume_doubling_days
from CSFNetLib.measure.size import NoduleSize
from CSFNetLib.metrics import classification_metrics, paired_auc_difference, roc_auc, roc_curve


def size(diameter: float, kind: str = "solid", solid: float = 0.0, volume: float = 0.0) -> NoduleSize:
    """A round nodule of `diameter` mm (its solid part `solid` mm across when part-solid)."""
    volume = volume or math.pi / 6 * diameter ** 3
    solid = diameter if kind == "solid" else solid
    return NoduleSize(volume, math.pi / 6 * solid ** 3, diameter, diameter, solid, kind)


def category(before: NoduleSize, after: NoduleSize, days: float = 365.0) -> str:
    return LUNG_RADS_ORDER[int(growth_scores(before, after, days)[LUNG_RADS][0])]


def test_lung_rads_ranks_2_3_4a_4b_and_calls_4a_and_above_malignant():
    follow_ups = {"2": (size(5.0), size(5.2)), "3": (size(10.0), size(10.3)), "4A": (size(5.0), size(7.0)),
                  "4B": (size(7.0), size(9.0))}
    scores = {name: growth_scores(before, after, 365.0)[LUNG_RADS] for name, (before, after) in follow_ups.items()}
    assert [LUNG_RADS_ORDER[int(score)] for score, _ in scores.values()] == list(follow_ups)
    ranks = [score for score, _ in scores.values()]
    assert ranks == sorted(ranks) and len(set(ranks)) == 4
    assert [call for _, call in scores.values()] == [False, False, True, True]


def test_lung_rads_at_follow_up_steps_a_stable_nodule_down_unless_it_reaches_a_higher_size_category():
    assert category(size(7.0), size(7.2)) == "2"  # a stable 3 steps down to 2
    assert category(size(10.0), size(10.3)) == "3"  # a stable 4A steps down to 3
    assert category(size(16.0), size(16.2)) == "4B"  # 4B is not stepped down
    assert category(size(7.6), size(8.4)) == "4A"  # not growth (0.8 mm), but now of 4A size: reclassified
    assert lung_rads(size(10.0), size(10.3)).category == ""  # without the prior category: left to the reader


def test_growth_over_more_than_12_months_counts_for_the_growth_rows():
    assert lung_rads(size(7.0), size(5.0), 500).category == ""  # measurements.csv: slow growth is the reader's
    assert category(size(5.0), size(7.0), 500) == "4A"  # the evaluation reads the scans as consecutive rounds
    assert growth_scores(size(5.0), size(7.0), 500)[DIAMETER_GROWTH] == (pytest.approx(2.0), True)


def test_diameter_growth_is_called_above_1_5_mm_only():
    assert growth_scores(size(6.0), size(7.5), 365)[DIAMETER_GROWTH] == (pytest.approx(1.5), False)
    assert growth_scores(size(6.0), size(7.6), 365)[DIAMETER_GROWTH] == (pytest.approx(1.6), True)


def test_volume_growth_ranks_by_doublings_a_year_and_calls_by_bts():
    doubled = growth_scores(size(6.0, volume=100.0), size(6.0, volume=200.0), 300)[VOLUME_GROWTH]
    assert doubled == (pytest.approx(365.25 / 300), True)  # VDT 300 days
    slow = growth_scores(size(6.0, volume=100.0), size(6.0, volume=200.0), 500)[VOLUME_GROWTH]
    assert slow == (pytest.approx(365.25 / 500), False)  # VDT 500 days
    # 20 % in 90 days: VDT under 400 days, but within BTS's 25 % measurement error
    small = growth_scores(size(6.0, volume=100.0), size(6.0, volume=120.0), 90)[VOLUME_GROWTH]
    assert small[0] > 365.25 / 400 and not small[1]
    assert small[0] == pytest.approx(365.25 / volume_doubling_days(100.0, 120.0, 90))
    unchanged = growth_scores(size(6.0), size(6.0), 365)[VOLUME_GROWTH]
    assert unchanged == (0.0, False)
    assert VOLUME_GROWTH not in growth_scores(size(6.0), size(7.0), None)  # no interval, no VDT


def test_a_resolved_nodule_ranks_below_every_nodule_still_there():
    gone = growth_scores(size(12.0), None, 365)
    shrunk = growth_scores(size(12.0), size(3.0), 365)
    assert gone[VOLUME_GROWTH] == (-math.inf, False) and gone[LUNG_RADS] == (0.0, False)  # Lung-RADS 1
    for row in GROWTH_ROWS:
        assert gone[row][0] < shrunk[row][0] or row == LUNG_RADS
    assert LUNG_RADS_ORDER[int(shrunk[LUNG_RADS][0])] == "2"


def test_auc_ranks_infinite_scores_and_counts_their_ties_as_half():
    assert roc_auc([1, 0, 0], [0.5, -math.inf, -math.inf]) == 1.0
    assert roc_auc([1, 0, 1, 0], [-math.inf, -math.inf, 1.0, 0.0]) == pytest.approx(0.625)
    fpr, tpr = roc_curve([1, 0], [-math.inf, -math.inf])  # one tie group: the diagonal
    assert fpr.tolist() == [0.0, 1.0] and tpr.tolist() == [0.0, 1.0]
    assert math.isnan(roc_auc([1, 0], [math.nan, 0.0]))  # NaN is no score


def test_calls_other_than_a_threshold_make_the_metrics():
    metrics = classification_metrics([1, 1, 0, 0], [3.0, 0.1, 2.0, 0.0], positive=[True, False, False, False])
    assert metrics["precision"] == 1.0 and metrics["recall"] == 0.5 and metrics["accuracy"] == 0.75
    assert metrics["auc"] == 0.75  # from the scores, not the calls


def test_paired_bootstrap_holds_0_for_the_same_scores_and_excludes_it_for_a_clearly_better_one():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 30)
    groups = [f"P{i // 2}" for i in range(60)]  # two nodules a patient
    noisy = labels + rng.normal(0, 1.5, 60)
    difference, (low, high) = paired_auc_difference(labels, noisy, noisy.copy(), 200, groups=groups)
    assert difference == 0.0 and low <= 0.0 <= high
    perfect = labels + rng.normal(0, 0.1, 60)
    difference, (low, high) = paired_auc_difference(labels, perfect, noisy, 200, groups=groups)
    assert difference == pytest.approx(roc_auc(labels, perfect) - roc_auc(labels, noisy))
    assert 0.0 < low <= difference <= high


def report_with(labels, scores, calls, resamples=200) -> EvaluationReport:
    """A report from given network and growth scores, by evaluation's own steps."""
    keys = [(f"P{i}", "1") for i in range(len(labels))]
    groups = [pid for pid, _ in keys]
    rows = metric_rows(labels, scores, groups=groups, networks={"CSF-net"}, positive=calls, resamples=resamples)
    comparison = paired_comparison(labels, scores, rows, groups=groups, network="CSF-net", resamples=resamples)
    return EvaluationReport(len(keys), len(keys), int(labels.sum()), rows, [], keys, labels, scores, comparison)


@pytest.mark.parametrize("network_noise,growth_noise,verdict", [
    (0.05, 0.05, "CSF-net and Volume growth (VDT), the best growth row, differ within the noise"),
    (0.05, 1.5, "CSF-net ranks the nodules better than Volume growth (VDT), the best growth row"),
    (1.5, 0.05, "Volume growth (VDT), the best growth row, ranks the nodules better than CSF-net"),
])
def test_the_verdict_says_which_ranks_better_or_that_the_difference_is_noise(network_noise, growth_noise, verdict):
    rng = np.random.default_rng(5)
    labels = np.repeat([0, 1], 40)
    network = np.clip(0.2 + 0.6 * labels + rng.normal(0, network_noise, 80), 0, 1)
    growth = {row: labels + rng.normal(0, growth_noise * (1 + k), 80) for k, row in enumerate(GROWTH_ROWS)}
    report = report_with(labels, {"CSF-net": network, **growth}, {row: v > 0.5 for row, v in growth.items()})
    assert report.comparison["against"] == max(GROWTH_ROWS, key=lambda row: report.rows[row]["auc"])
    assert report.comparison["against"] == VOLUME_GROWTH  # the least noisy growth row
    assert comparison_verdict(report).startswith(verdict)
    assert comparison_verdict(report) in table_notes(report)
    assert "rule" in report.rows[VOLUME_GROWTH] and report.rows["CSF-net"]["threshold"] == 0.5


def test_a_nodule_with_only_lung_at_its_follow_up_point_counts_as_resolved(tmp_path):
    def lung() -> Phantom:  # lung with the chest wall below it
        return Phantom(size_xyz=(64, 64, 64), background_hu=-850.0).paint_box((0, 0, 0), (63, 63, 4), 40.0)

    centre = (32.0, 32.0, 32.0)
    sitk.WriteImage(lung().paint_sphere(centre, 5.0, 40.0).image(), str(tmp_path / "nodule.nrrd"))
    sitk.WriteImage(lung().image(), str(tmp_path / "gone.nrrd"))  # the nodule has resolved: only lung
    sitk.WriteImage(lung().paint_box((10, 10, 10), (54, 54, 54), 40.0).image(), str(tmp_path / "wall.nrrd"))
    rows = [("P1", "T0", "nodule.nrrd"), ("P1", "T1", "gone.nrrd"), ("P2", "T0", "nodule.nrrd"),
            ("P2", "T1", "wall.nrrd")]
    with open(tmp_path / "cases.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["pid", "nodule", "timepoint", "image", "x", "y", "z", "label", "days"])
        writer.writerows([(pid, 1, tp, image, *centre, 0, 365 * int(tp[1])) for pid, tp, image in rows])
    cases = read_cohort(tmp_path / "cases.csv").cases
    growth = score_growth(cases, measure_nodules(cases))
    assert growth.resolved == ["patient P1 nodule 1 (only lung at its T1 point)"]
    assert growth.scores[VOLUME_GROWTH][0] == -math.inf and growth.scores[LUNG_RADS][0] == 0.0  # Lung-RADS 1
    assert growth.scores[DIAMETER_GROWTH][0] == pytest.approx(-10.0, abs=1.0)
    for row in GROWTH_ROWS:  # no lung around the point at T1: not a resolved nodule, no growth to measure
        assert np.isnan(growth.scores[row][1])
        assert growth.unscored[row][0].startswith("patient P2 nodule 1: ") and "wall.nrrd" in growth.unscored[row][0]


def test_evaluate_measures_each_scan_once_and_ranks_a_growing_cancer_above_stable_benign_nodules(
        synthetic_cohort, tmp_path, monkeypatch):
    import CSFNetLib.measure.cohort as measure_cohort

    measured = []
    real = measure_cohort.measure_nodule

    def counted(image, point):
        measured.append(tuple(point))
        return real(image, point)

    monkeypatch.setattr(measure_cohort, "measure_nodule", counted)
    cohort = read_cohort(synthetic_cohort / "cases.csv", synthetic_cohort / "clinical.csv")
    report = evaluate(cohort, {"CSF-net": None}, out_dir=tmp_path, device="cpu", resamples=20)
    assert len(measured) == len(set(measured)) == 2 * report.nodules  # each scan once: Brock and growth share it
    assert list(report.rows)[-3:] == list(GROWTH_ROWS)
    course = {(c.pid, c.nodule): c.t0.extra["course"] for c in cohort.cases}
    volume = dict(zip(report.keys, report.scores[VOLUME_GROWTH]))
    cancers = [k for k, label in zip(report.keys, report.labels) if label == 1 and course[k] == "grows"]
    stable = [k for k, label in zip(report.keys, report.labels) if label == 0 and course[k] == "stable"]
    assert cancers and stable
    assert min(volume[k] for k in cancers) > max(volume[k] for k in stable)
    for row in GROWTH_ROWS:
        assert report.rows[row]["ci95"]["auc"][0] <= report.rows[row]["auc"] <= report.rows[row]["ci95"]["auc"][1]
    assert report.comparison["network"] == "CSF-net" and report.comparison["against"] in GROWTH_ROWS
    metrics = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["comparison"] == json.loads(json.dumps(report.comparison))
    with open(tmp_path / "predictions.csv", newline="", encoding="utf-8") as handle:
        predictions = list(csv.DictReader(handle))
    assert {p[LUNG_RADS] for p in predictions} <= set(LUNG_RADS_ORDER)
    assert [LUNG_RADS_ORDER[int(v)] for v in report.scores[LUNG_RADS]] == [p[LUNG_RADS] for p in predictions]
