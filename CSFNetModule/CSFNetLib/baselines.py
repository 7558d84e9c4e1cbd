"""Clinical risk models that radiologists already use, computed beside the network.

Brock / PanCan full model with spiculation (McWilliams et al., NEJM 2013) and the Mayo Clinic model
(Swensen et al., Arch Intern Med 1997). Both return the probability of malignancy.
"""

import math

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
