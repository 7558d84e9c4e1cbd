"""What radiologists already use, computed beside the network: clinical risk models and measured growth.

Brock / PanCan full model with spiculation (McWilliams et al., NEJM 2013) and the Mayo Clinic model
(Swensen et al., Arch Intern Med 1997). Both return the probability of malignancy.
`clinical_model_scores` reads their factors from a nodule's cases.csv facts and its patient's
clinical.csv row (docs/data-formats.md, "Clinical-model facts"). `growth_scores` ranks a nodule by
its measured growth between two scans: volume (BTS 2015), mean diameter and Lung-RADS v2022 category.
"""

import math
from typing import Any, Dict, Optional, Tuple

from .clinical import normalize_code
from .measure.growth import (
    GROWTH_CLASSES,
    LUNG_RADS_GROWTH_MM,
    LUNG_RADS_ORDER,
    growth_class,
    lung_rads,
    volume_doubling_days,
)
from .measure.size import NoduleSize
from .records import NoduleCase

NODULE_TYPES = ("solid", "part-solid", "non-solid")
_BROCK_TYPE = {"solid": 0.0, "part-solid": 0.3769578, "non-solid": -0.1276173}


def brock_logit(
    age: float,
    female: bool,
    family_history: bool,
    emphysema: bool,
    diameter_mm: float,
    nodule_type: str,
    upper_lobe: bool,
    nodule_count: int,
    spiculation: bool,
) -> float:
    """The Brock full model's linear predictor."""
    if nodule_type not in _BROCK_TYPE:
        raise ValueError(f"nodule type must be one of {NODULE_TYPES}, got {nodule_type!r}")
    if not diameter_mm > 0:
        raise ValueError(f"nodule diameter must be positive, got {diameter_mm}")
    return (
        0.0286687 * (age - 62)
        + 0.6010727 * female
        + 0.296109 * family_history
        + 0.2953112 * emphysema
        - 5.385484 * ((diameter_mm / 10.0) ** -0.5 - 1.58113883)
        + _BROCK_TYPE[nodule_type]
        + 0.6581383 * upper_lobe
        - 0.0824156 * (nodule_count - 4)
        + 0.7729335 * spiculation
        - 6.78917
    )


def brock_probability(**factors) -> float:
    """Brock (PanCan) probability of malignancy; arguments as `brock_logit`."""
    return _sigmoid(brock_logit(**factors))


def mayo_probability(
    age: float, ever_smoker: bool, extrathoracic_cancer: bool, diameter_mm: float, spiculation: bool, upper_lobe: bool
) -> float:
    """Mayo Clinic probability of malignancy (extrathoracic cancer diagnosed more than 5 years before)."""
    logit = (
        -6.8272
        + 0.0391 * age
        + 0.7917 * ever_smoker
        + 1.3388 * extrathoracic_cancer
        + 0.1274 * diameter_mm
        + 1.0407 * spiculation
        + 0.7838 * upper_lobe
    )
    return _sigmoid(logit)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


CLINICAL_MODELS = ("Brock (PanCan)", "Mayo")
_FLAG = {"1": True, "yes": True, "y": True, "true": True, "0": False, "no": False, "n": False, "false": False}
_FEMALE = {"2": True, "f": True, "female": True, "1": False, "m": False, "male": False}  # NLST codes 2 / 1
_NODULE_TYPES = {"solid": "solid", "part-solid": "part-solid", "partsolid": "part-solid", "partly-solid": "part-solid",
                 "non-solid": "non-solid", "nonsolid": "non-solid", "ground-glass": "non-solid", "ggn": "non-solid",
                 "ggo": "non-solid"}


MEASURABLE_FACTS = ("diameter_mm", "nodule_type")  # what measuring the nodule in its T0 scan gives


def clinical_model_scores(case: NoduleCase, clinical: Dict[str, str],
                          measured: Optional[NoduleSize] = None) -> Dict[str, float]:
    """Brock and Mayo probabilities from a nodule's T0 facts; a ValueError names a fact that is
    missing (diameter_mm) or not understood, rather than a default that would change the risk.

    `measured` (the nodule measured in its T0 scan) stands in for `diameter_mm` and `nodule_type`
    where cases.csv does not give them. Missing patient facts take neutral values: age 62 (Brock's
    centre), male, no family history, no emphysema, no prior cancer, ever smoker (as everyone in a
    screening cohort).
    """
    facts = dict(case.t0.extra)
    if measured is not None:
        stand_ins = {"diameter_mm": f"{measured.diameter_mm:.1f}", "nodule_type": measured.type}
        facts.update({column: stand_ins[column] for column in missing_measurable_facts(facts)})
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


def missing_measurable_facts(facts: Dict[str, str]) -> Tuple[str, ...]:
    """The facts a measurement of the nodule can give (`MEASURABLE_FACTS`) that a cases.csv row leaves
    missing: empty, or NA as `normalize_code` reads it, as the models themselves do."""
    return tuple(column for column in MEASURABLE_FACTS if normalize_code(facts.get(column)) is None)


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


VOLUME_GROWTH, DIAMETER_GROWTH, LUNG_RADS = "Volume growth (VDT)", "Diameter growth", "Lung-RADS"
#: The growth rows: what each ranks nodules by, and when it calls one malignant.
GROWTH_ROWS = {
    VOLUME_GROWTH: "ranked by 365.25 / VDT (volume doublings a year); malignant at VDT < 400 days with a volume "
                   "change of 25 % or more (BTS 2015)",
    DIAMETER_GROWTH: "ranked by the change of mean diameter (mm); malignant above 1.5 mm (Lung-RADS v2022 growth)",
    LUNG_RADS: "ranked 1 < 2 < 3 < 4A < 4B at the follow-up; malignant at 4A or 4B",
}
DAYS_PER_YEAR = 365.25


def growth_scores(before: NoduleSize, after: Optional[NoduleSize],
                  days: Optional[float]) -> Dict[str, Tuple[float, bool]]:
    """Each growth row's (score, malignant call) for a nodule measured at two scans `days` apart (None: not
    known, no volume row); `after` None when it has resolved (only lung at its follow-up point), which ranks
    it below every nodule still there.

    Lung-RADS reads the follow-up as the next screening round: growth counts whatever the interval (the ACR
    asks for it within 12 months) and a stable nodule of 6 mm or more steps down from its baseline category.
    """
    if after is None:
        scores = {DIAMETER_GROWTH: (-before.diameter_mm, False), LUNG_RADS: (float(LUNG_RADS_ORDER.index("1")), False)}
        if days is not None:
            scores[VOLUME_GROWTH] = (-math.inf, False)
        return scores
    change_mm = after.diameter_mm - before.diameter_mm
    category = lung_rads(after, before, prior=lung_rads(before).category).category
    scores = {DIAMETER_GROWTH: (change_mm, change_mm > LUNG_RADS_GROWTH_MM),
              LUNG_RADS: (float(LUNG_RADS_ORDER.index(category)), category in ("4A", "4B"))}
    if days is not None:
        doublings = DAYS_PER_YEAR / volume_doubling_days(before.volume_mm3, after.volume_mm3, days)
        suspicious = growth_class(before.volume_mm3, after.volume_mm3, days) == GROWTH_CLASSES[1]  # VDT < 400 d
        scores[VOLUME_GROWTH] = (doublings, suspicious)
    return scores
