import numpy as np
import pytest

from CSFNetLib.clinical import FIELDS, MISSING_INDEX, UNKNOWN_INDEX, ClinicalVocabulary, normalize_code


@pytest.mark.parametrize("value,code", [(1, "1"), (1.0, "1"), ("1", "1"), (" 1.0 ", "1"), ("F", "F"), (True, "1"),
                                        (np.bool_(True), "1"), (np.int64(2), "2"), (np.float32(3.0), "3")])
def test_codes_are_normalised(value, code):
    assert normalize_code(value) == code


@pytest.mark.parametrize("value", [None, "", "  ", float("nan"), np.nan, "NA"])
def test_empty_values_are_missing(value):
    assert normalize_code(value) is None


def test_encoding_uses_one_block_of_rows_per_field_after_two_special_rows():
    vocab = ClinicalVocabulary({f: ["1", "2"] for f in FIELDS})
    assert vocab.size == 2 + 2 * len(FIELDS)
    rows = vocab.encode({f: 2 for f in FIELDS})
    assert rows == [2 + 2 * i + 1 for i in range(len(FIELDS))]
    assert len(set(rows)) == len(FIELDS)


def test_missing_and_unseen_values_get_their_own_rows():
    vocab = ClinicalVocabulary.default()
    rows = vocab.encode({"race": 1, "age": 99, "gender": ""})
    assert rows[FIELDS.index("race")] not in (MISSING_INDEX, UNKNOWN_INDEX)
    assert rows[FIELDS.index("age")] == UNKNOWN_INDEX
    assert rows[FIELDS.index("gender")] == MISSING_INDEX
    assert rows[FIELDS.index("cigsmok")] == MISSING_INDEX  # key absent
    assert vocab.encode(None) == [MISSING_INDEX] * len(FIELDS)


def test_fit_collects_the_codes_seen_and_round_trips_through_its_dict():
    records = [{"race": "2", "age": 70, "gender": 1}, {"race": 1, "age": "58", "gender": None}]
    vocab = ClinicalVocabulary.fit(records)
    assert vocab.codes["race"] == ["1", "2"]
    assert vocab.codes["age"] == ["58", "70"]
    assert vocab.codes["cigsmok"] == []
    assert ClinicalVocabulary(vocab.to_dict()) == vocab


def test_vocabulary_without_all_fields_is_refused():
    with pytest.raises(ValueError, match="lacks fields"):
        ClinicalVocabulary({"race": ["1"]})


def test_form_choices_map_to_nlst_codes_the_model_knows():
    from CSFNetLib.clinical import CHOICES, FIELD_TITLES, NOT_GIVEN, choice_labels, record_from_choices

    assert set(CHOICES) == set(FIELDS) == set(FIELD_TITLES)
    for field in FIELDS:
        labels = choice_labels(field)
        assert labels[0] == NOT_GIVEN and len(set(labels)) == len(labels)
        assert all(normalize_code(code) == code for _, code in CHOICES[field])
    picked = {"gender": "Female", "age": "62 years", "cigsmok": "Current smoker", "race": NOT_GIVEN}
    record = record_from_choices(picked)
    assert record == {"gender": "2", "age": "62", "cigsmok": "1", "race": None}
    rows = ClinicalVocabulary.default().encode(record)
    assert rows[FIELDS.index("race")] == 0 and min(rows[i] for i in (1, 2, 3)) >= 2  # missing vs known codes
    with pytest.raises(ValueError, match="Sex: 'female' is not one of the choices"):
        record_from_choices({"gender": "female"})


def test_a_record_shows_as_the_labels_that_give_it_back():
    from CSFNetLib.clinical import NOT_GIVEN, choices_from_record, record_from_choices

    labels = choices_from_record({"gender": 2, "age": "62.0", "race": "", "cigsmok": "7"})
    assert labels["gender"] == "Female" and labels["age"] == "62 years"
    assert labels["race"] == labels["cigsmok"] == labels["scr_res0"] == NOT_GIVEN  # missing, or no NLST label
    assert record_from_choices(labels) == {"gender": "2", "age": "62", "race": None, "cigsmok": None,
                                           "scr_res0": None, "scr_iso0": None}


def test_every_code_a_shipped_model_knows_is_offered_by_the_form_and_comes_back_unchanged():
    """The Slicer panel and `csfnet predict` must feed a model the same rows for the same patient."""
    from CSFNetLib.checkpoint import load_checkpoint
    from CSFNetLib.clinical import NOT_GIVEN, choices_from_record, record_from_choices
    from CSFNetLib.shipped_weights import model_path, read_manifest

    for entry in read_manifest()["models"]:
        vocabulary = load_checkpoint(model_path(entry["name"])).vocabulary
        for field in FIELDS:
            for code in vocabulary.to_dict()[field]:
                shown = choices_from_record({field: code})
                assert shown[field] != NOT_GIVEN, (entry["name"], field, code)
                record = record_from_choices(shown)
                assert vocabulary.encode(record) == vocabulary.encode({field: code}), (entry["name"], field, code)
