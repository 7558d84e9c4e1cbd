"""The six NLST clinical fields and their encoding as rows of one embedding table.

Every field is a category. The table has two shared special rows, then one block of rows per field:
row 0 = missing (no value given), row 1 = unknown (a value the vocabulary never saw), then each
field's known codes in order. The vocabulary is data: it is fitted on training data and saved in the
checkpoint, so a model always encodes clinical data the way it was trained.
"""

import math
import warnings
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

FIELDS = ("race", "cigsmok", "gender", "age", "scr_res0", "scr_iso0")
MISSING_INDEX = 0
UNKNOWN_INDEX = 1
N_SPECIAL_ROWS = 2

#: What a form (the Slicer panel) shows for each field: its title, and (label, NLST code) choices.
#: Labels follow the NLST participant data dictionary; `NOT_GIVEN` means missing.
NOT_GIVEN = "Not given"
FIELD_TITLES: Dict[str, str] = {
    "race": "Race",
    "cigsmok": "Smoking status at baseline",
    "gender": "Sex",
    "age": "Age at randomisation",
    "scr_res0": "Baseline (T0) screen result",
    "scr_iso0": "Baseline (T0) isolation flag (NLST scr_iso0 code)",
}
_SCREEN_RESULTS = (
    ("Negative, no significant abnormalities", "1"),
    ("Negative, minor abnormalities not suspicious for lung cancer", "2"),
    ("Negative, significant abnormalities not suspicious for lung cancer", "3"),
    ("Positive: nodule >= 4 mm or other abnormality suspicious for lung cancer", "4"),
    ("Inadequate image", "10"),
)
CHOICES: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "race": (("White", "1"), ("Black or African-American", "2"), ("Asian", "3"),
             ("American Indian or Alaskan Native", "4"), ("Native Hawaiian or other Pacific Islander", "5"),
             ("More than one race", "6"), ("Refused to answer", "7"), ("Unknown / declined to answer", "99")),
    "cigsmok": (("Former smoker", "0"), ("Current smoker", "1")),
    "gender": (("Male", "1"), ("Female", "2")),
    "age": tuple((f"{age} years", str(age)) for age in range(55, 75)),
    "scr_res0": _SCREEN_RESULTS,
    "scr_iso0": (("Code 0", "0"), ("Code 1", "1")),  # a 0 / 1 flag, as in the data the demo model saw
}

#: The codes of models that were not fitted on data (an untrained network): exactly what the form offers.
DEFAULT_CODES: Dict[str, List[str]] = {field: [code for _, code in CHOICES[field]] for field in FIELDS}


def choice_labels(field: str) -> List[str]:
    """The labels a form offers for `field`, `NOT_GIVEN` first."""
    return [NOT_GIVEN] + [label for label, _ in CHOICES[field]]


def record_from_choices(labels: Mapping[str, str]) -> Dict[str, Optional[str]]:
    """A clinical record (field -> NLST code, None when not given) from the labels picked in a form."""
    record: Dict[str, Optional[str]] = {}
    for field, label in labels.items():
        if field not in CHOICES:
            raise ValueError(f"unknown clinical field {field!r}; the fields are {list(FIELDS)}")
        codes = dict(CHOICES[field])
        if label not in codes and label != NOT_GIVEN:
            raise ValueError(f"{FIELD_TITLES[field]}: {label!r} is not one of the choices {choice_labels(field)}")
        record[field] = codes.get(label)
    return record


def choices_from_record(record: Mapping[str, Any]) -> Dict[str, str]:
    """The labels a form shows for a clinical record: the inverse of `record_from_choices`.

    A field that is missing, or holds a code with no NLST label, shows `NOT_GIVEN`.
    """
    labels = {}
    for field in FIELDS:
        by_code: Dict[Optional[str], str] = {code: label for label, code in CHOICES[field]}  # None: missing
        labels[field] = by_code.get(normalize_code(record.get(field)), NOT_GIVEN)
    return labels


def normalize_code(value: Any) -> Optional[str]:
    """One field value as its canonical code string, or None when missing.

    1, 1.0, "1" and " 1.0 " all give "1"; None, NaN and empty strings are missing.
    """
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return None
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    text = str(value).strip()
    if text == "" or text.lower() in ("nan", "na", "none", "null"):
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return normalize_code(number)


class ClinicalVocabulary:
    """Category code -> embedding row, per field."""

    def __init__(self, codes: Mapping[str, Sequence[Any]]):
        missing = [f for f in FIELDS if f not in codes]
        if missing:
            raise ValueError(f"clinical vocabulary lacks fields {missing}; it needs {list(FIELDS)}")
        self.codes: Dict[str, List[str]] = {}
        self._rows: Dict[str, Dict[str, int]] = {}
        next_row = N_SPECIAL_ROWS
        for field in FIELDS:
            field_codes = []
            for value in codes[field]:
                code = normalize_code(value)
                if code is not None and code not in field_codes:
                    field_codes.append(code)
            self.codes[field] = field_codes
            self._rows[field] = {code: next_row + i for i, code in enumerate(field_codes)}
            next_row += len(field_codes)
        self.size = next_row

    @classmethod
    def default(cls) -> "ClinicalVocabulary":
        return cls(DEFAULT_CODES)

    @classmethod
    def fit(cls, records: Iterable[Mapping[str, Any]]) -> "ClinicalVocabulary":
        """The codes seen in `records` (e.g. the training patients' clinical rows), sorted."""
        seen: Dict[str, set] = {f: set() for f in FIELDS}
        for record in records:
            for field in FIELDS:
                code = normalize_code(record.get(field))
                if code is not None:
                    seen[field].add(code)
        return cls({f: sorted(seen[f], key=_code_sort_key) for f in FIELDS})

    def encode(self, record: Optional[Mapping[str, Any]]) -> List[int]:
        """Embedding rows for one patient's fields; missing keys / values and unseen codes allowed."""
        record = record or {}
        rows = []
        for field in FIELDS:
            code = normalize_code(record.get(field))
            if code is None:
                rows.append(MISSING_INDEX)
            else:
                rows.append(self._rows[field].get(code, UNKNOWN_INDEX))
        return rows

    def encode_patient(self, pid: str, record: Optional[Mapping[str, Any]]) -> List[int]:
        """`encode`, warning of each given value that is none of the field's codes (it counts as unknown)."""
        given = record or {}
        for field in FIELDS:
            code = normalize_code(given.get(field))
            if code is not None and code not in self._rows[field]:
                codes = self.codes[field]
                known = ", ".join(codes) if len(codes) <= 8 else f"{codes[0]}, {codes[1]}, ..., {codes[-1]}"
                warnings.warn(f"patient {pid}: clinical {field} = {str(given[field]).strip()!r} is none of the "
                              f"model's codes ({known}); it counts as unknown", stacklevel=2)
        return self.encode(record)

    def to_dict(self) -> Dict[str, List[str]]:
        return {f: list(self.codes[f]) for f in FIELDS}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClinicalVocabulary) and self.codes == other.codes

    def __repr__(self) -> str:
        return f"ClinicalVocabulary({self.size} rows)"


def _code_sort_key(code: str):
    """Numbers in numeric order, before any text codes."""
    try:
        return (0, float(code), code)
    except ValueError:
        return (1, 0.0, code)
