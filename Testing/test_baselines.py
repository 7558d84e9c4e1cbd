import numpy as np
import pytest

from CSFNetLib.baselines import brock_probability, mayo_probability


def brock(**changes):
    factors = dict(age=62, female=True, family_history=False, emphysema=False, diameter_mm=10.0,
                   nodule_type="solid", upper_lobe=True, nodule_count=1, spiculation=True)
    factors.update(changes)
    return brock_probability(**factors)


def test_brock_check_values():
    assert brock() == pytest.approx(0.2010, abs=5e-5)
    assert brock(age=65, female=False, diameter_mm=5.0, upper_lobe=False, spiculation=False) == pytest.approx(
        0.00385, abs=5e-6)


def test_brock_risk_rises_with_size_spiculation_and_part_solid_type():
    assert brock(diameter_mm=20.0) > brock() > brock(diameter_mm=5.0)
    assert brock(spiculation=False) < brock()
    assert brock(nodule_type="part-solid") > brock() > brock(nodule_type="non-solid")


def test_mayo_check_value():
    p = mayo_probability(age=62, ever_smoker=True, extrathoracic_cancer=False, diameter_mm=10.0,
                         spiculation=True, upper_lobe=True)
    assert p == pytest.approx(0.3745, abs=5e-5)


@pytest.mark.parametrize(
    "change,message", [({"nodule_type": "cystic"}, "nodule type"), ({"diameter_mm": 0.0}, "positive")]
)
def test_brock_refuses_bad_factors(change, message):
    with pytest.raises(ValueError, match=message):
        brock(**change)


def nodule(facts):
    from pathlib import Path

    from CSFNetLib.records import NoduleCase, TimepointRow

    rows = [TimepointRow(2 + i, "P1", "1", tp, Path("a.nrrd"), (0.0, 0.0, 0.0), 1, 0.0, dict(facts))
            for i, tp in enumerate(("T0", "T1"))]
    return NoduleCase("P1", "1", rows[0], rows[1], 1)


def test_clinical_models_read_facts_however_they_are_spelt():
    from CSFNetLib.baselines import clinical_model_scores

    as_codes = clinical_model_scores(
        nodule({"diameter_mm": "12", "nodule_type": "part-solid", "spiculation": "1", "upper_lobe": "1"}),
        {"age": "66", "gender": "2", "family_history": "1", "emphysema": "1", "prior_cancer": "0"})
    as_words = clinical_model_scores(
        nodule({"diameter_mm": "12.0", "nodule_type": "Part Solid", "spiculation": "yes", "upper_lobe": "TRUE"}),
        {"age": "66", "gender": "F", "family_history": "Y", "emphysema": "True", "prior_cancer": "no"})
    assert as_words == as_codes
    unspiculated = clinical_model_scores(nodule({"diameter_mm": "12", "nodule_type": "part-solid"}), {})
    assert unspiculated["Brock (PanCan)"] < as_codes["Brock (PanCan)"]  # the facts above were read as yes
    not_given = clinical_model_scores(nodule({"diameter_mm": "12", "nodule_type": "NA", "spiculation": ""}), {})
    assert not_given == clinical_model_scores(nodule({"diameter_mm": "12"}), {})  # missing: the neutral value


@pytest.mark.parametrize("facts,clinical,message", [
    ({"diameter_mm": "12", "spiculation": "maybe"}, {}, "spiculation = 'maybe' is not 0/1, yes/no or true/false"),
    ({"diameter_mm": "12", "nodule_type": "cystic"}, {}, "nodule_type = 'cystic' is not solid, part-solid"),
    ({"diameter_mm": "12"}, {"gender": "3"}, "gender = '3' is not 1 / 2"),
    ({"diameter_mm": "twelve"}, {}, "diameter_mm = 'twelve' is not a number"),
    ({}, {}, "no diameter_mm"),
])
def test_a_fact_the_clinical_models_cannot_read_is_named_not_defaulted(facts, clinical, message):
    from CSFNetLib.baselines import clinical_model_scores

    with pytest.raises(ValueError, match=message):
        clinical_model_scores(nodule(facts), clinical)


def test_evaluate_names_the_nodule_a_clinical_model_cannot_score(synthetic_cohort, tmp_path):
    import csv

    from CSFNetLib.cohort_csv import read_cohort
    from CSFNetLib.evaluation import evaluate

    with open(synthetic_cohort / "cases.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["image"] = str(synthetic_cohort / row["image"])
    rows[0]["spiculation"] = "maybe"
    with open(tmp_path / "cases.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cohort = read_cohort(tmp_path / "cases.csv", synthetic_cohort / "clinical.csv")
    with pytest.raises(ValueError, match=r"\['Mayo'\] name the clinical models' or growth rows"):
        evaluate(cohort, {"Mayo": None}, device="cpu")
    with pytest.raises(ValueError, match=r"\['Lung-RADS'\] name the clinical models' or growth rows"):
        evaluate(cohort, {"CSF-net": None, "Lung-RADS": None}, device="cpu")
    report = evaluate(cohort, {"CSF-net": None}, device="cpu", resamples=10)
    reason = f"patient {rows[0]['pid']} nodule {rows[0]['nodule']}: spiculation = 'maybe' is not 0/1"
    assert reason in report.rows["Mayo"]["not_computed"]
    assert "auc" in report.rows["CSF-net"]


def test_a_measured_size_stands_in_only_for_what_cases_csv_does_not_give():
    from CSFNetLib.baselines import clinical_model_scores
    from CSFNetLib.measure.size import NoduleSize

    measured = NoduleSize(500.0, 0.0, 13.0, 11.0, 0.0, "ground-glass")  # mean diameter 12 mm
    given = clinical_model_scores(nodule({"diameter_mm": "12", "nodule_type": "non-solid"}), {})
    assert clinical_model_scores(nodule({}), {}, measured) == given
    assert clinical_model_scores(nodule({"nodule_type": ""}), {}, measured) == given
    assert clinical_model_scores(nodule({"diameter_mm": "NA", "nodule_type": " nan "}), {}, measured) == given
    kept = clinical_model_scores(nodule({"diameter_mm": "25", "nodule_type": "solid"}), {}, measured)
    assert kept == clinical_model_scores(nodule({"diameter_mm": "25", "nodule_type": "solid"}), {})


def test_evaluate_measures_the_nodules_whose_diameter_cases_csv_leaves_out(synthetic_cohort, tmp_path):
    import csv

    from CSFNetLib.cohort_csv import read_cohort
    from CSFNetLib.evaluation import measure_nodules, score_clinical_models

    with open(synthetic_cohort / "cases.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["image"] = str(synthetic_cohort / row["image"])
        row["diameter_mm"] = row["nodule_type"] = ""
    with open(tmp_path / "cases.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    given = read_cohort(synthetic_cohort / "cases.csv", synthetic_cohort / "clinical.csv")
    measured = read_cohort(tmp_path / "cases.csv", synthetic_cohort / "clinical.csv")
    sizes = measure_nodules(given.cases)  # the same scans and points in both cases.csv files
    with_facts, _ = score_clinical_models(given, given.cases, sizes)
    from_scans, unscored = score_clinical_models(measured, measured.cases, sizes)
    assert not unscored and not np.isnan(from_scans["Brock (PanCan)"]).any()
    assert np.corrcoef(with_facts["Brock (PanCan)"], from_scans["Brock (PanCan)"])[0, 1] > 0.9
