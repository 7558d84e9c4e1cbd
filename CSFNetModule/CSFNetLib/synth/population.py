"""Who the synthetic patients are: NLST-like clinical fields, risk factors, nodules and their fate.

Malignancy is drawn from a risk that follows the known factors: the Brock model's linear predictor
(age, sex, family history, emphysema, size, type, upper lobe, nodule count, spiculation) plus
current smoking and lobulation, shifted so that about 40 % of nodules are malignant, with random
noise drawn for each nodule (not shared by a patient's nodules) so that no clinical model can be
perfect. What happens between the scans follows the label: malignant nodules grow (volume doubling
time 100-400 days, 250-500 for ground glass, 400-900 for the 15 % that are indolent) and ground
glass may gain a solid core; benign ones stay stable, shrink, resolve or (10 %) grow a little.
Growth therefore carries more signal than the clinical factors, as in screening, without
separating the classes perfectly.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

from ..baselines import brock_logit
from .nodules import Nodule, NoduleShape

RISK_SHIFT = 2.5  # puts the share of malignant nodules near 40 %
RISK_NOISE_SD = 0.8
MISSING_RATE = 0.03

# NLST participant-file codes and roughly NLST's proportions.
RACE_CODES = {1: 0.905, 2: 0.044, 3: 0.021, 4: 0.004, 5: 0.004, 6: 0.012, 7: 0.010}


@dataclass
class PatientSpec:
    """Everything about a synthetic patient except their anatomy and scans."""

    pid: str
    age: int
    female: bool
    current_smoker: bool
    family_history: bool
    emphysema: bool
    prior_cancer: bool  # extrathoracic cancer more than 5 years ago (Mayo model)
    interval_days: int
    clinical: Dict[str, Optional[int]]  # NLST codes as the participant file gives them; None = missing
    nodules: List[Nodule]


def sample_patient(rng: np.random.Generator, pid: str) -> PatientSpec:
    age = 55 + int(rng.beta(1.6, 2.6) * 20)
    female = rng.random() < 0.41
    current_smoker = rng.random() < 0.48
    emphysema = rng.random() < (0.40 if current_smoker else 0.25)
    family_history = rng.random() < 0.22
    prior_cancer = rng.random() < 0.04
    interval_days = int(rng.integers(365, 731))
    count = int(rng.choice([1, 2, 3], p=[0.75, 0.18, 0.07]))
    nodules = [
        _sample_nodule(rng, i + 1, count, age, female, family_history, emphysema, current_smoker, interval_days)
        for i in range(count)
    ]
    positive_screen = any(n.diameter_t0 >= 4.0 for n in nodules)
    clinical: Dict[str, Optional[int]] = {
        "race": int(rng.choice(list(RACE_CODES), p=np.array(list(RACE_CODES.values())) / sum(RACE_CODES.values()))),
        "cigsmok": int(current_smoker),
        "gender": 2 if female else 1,
        "age": age,
        "scr_res0": 4 if positive_screen and rng.random() < 0.9 else int(rng.choice([2, 3])),
        "scr_iso0": int(rng.random() < 0.2),
    }
    for field_name in clinical:
        if rng.random() < MISSING_RATE:
            clinical[field_name] = None
    return PatientSpec(pid, age, female, current_smoker, family_history, emphysema, prior_cancer, interval_days,
                       clinical, nodules)


def _sample_nodule(rng, nodule_id, count, age, female, family_history, emphysema, current_smoker, interval_days):
    kind = str(rng.choice(["solid", "part-solid", "non-solid"], p=[0.65, 0.15, 0.20]))
    margin = str(rng.choice(["smooth", "lobulated", "spiculated"], p=[0.5, 0.3, 0.2]))
    attachment = str(rng.choice(["free", "pleural", "vascular"], p=[0.65, 0.2, 0.15]))
    upper = rng.random() < 0.55
    diameter = float(np.clip(np.exp(rng.normal(np.log(8.0), 0.45)), 4.0, 30.0))
    logit = (
        brock_logit(age=age, female=female, family_history=family_history, emphysema=emphysema,
                    diameter_mm=diameter, nodule_type=kind, upper_lobe=upper, nodule_count=count,
                    spiculation=margin == "spiculated")
        + 0.3 * current_smoker + 0.4 * (margin == "lobulated") + RISK_SHIFT + rng.normal(0.0, RISK_NOISE_SD)
    )
    label = int(rng.random() < 1.0 / (1.0 + np.exp(-logit)))
    solid_t0 = {"solid": 1.0, "part-solid": rng.uniform(0.3, 0.6), "non-solid": 0.0}[kind]
    solid_t1 = solid_t0
    doubling: Optional[float] = None
    if label:
        course = "grows"
        if rng.random() < 0.15:  # indolent cancers
            low, high = 400.0, 900.0
        else:
            low, high = (250.0, 500.0) if kind == "non-solid" else (100.0, 400.0)
        doubling = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        ratio = 2.0 ** (interval_days / (3.0 * doubling))
        if kind != "solid" and rng.random() < 0.5:
            solid_t1 = min(1.0, max(solid_t0, 0.2) + rng.uniform(0.2, 0.4))
    else:
        course = str(rng.choice(["stable", "shrinks", "resolves", "grows"], p=[0.50, 0.27, 0.13, 0.10]))
        ratio = {"stable": rng.uniform(0.95, 1.06), "shrinks": rng.uniform(0.5, 0.85), "resolves": 0.0,
                 "grows": rng.uniform(1.05, 1.3)}[course]
    diameter = max(4.0, min(diameter, 30.0 / max(ratio, 1e-6)))
    return Nodule(
        nodule_id=nodule_id, kind=kind, margin=margin, attachment=attachment,
        diameter_t0=diameter, diameter_t1=diameter * ratio, solid_fraction_t0=solid_t0, solid_fraction_t1=solid_t1,
        solid_hu=float(rng.uniform(10.0, 60.0)), ground_glass_hu=float(rng.uniform(-650.0, -450.0)),
        label=label, course=course, volume_doubling_days=doubling,
        shape=NoduleShape.sample(rng, margin), wanted_upper_lobe=bool(upper),
    )
