"""Growth between two scans of a nodule, and the Lung-RADS v2022 category its measurements decide.

Sources: BTS 2015 guideline (Callister et al., Thorax 2015;70:ii1-ii54) for volume doubling time and its
classes; ACR Lung-RADS v2022 for the categories (size cut-offs as in v1.1, NCBI NBK568579). Only what
the measurements decide is categorised: a category that needs the reader (perifissural nodules, airway
or cystic lesions, 4X features, stepped management of stable 3 / 4A nodules without their prior category)
is left empty with the reason.
"""

import math
from dataclasses import dataclass
from typing import Optional

from .size import NoduleSize

#: BTS: a volume change below this share is within measurement error.
STABLE_VOLUME_CHANGE = 0.25
#: BTS: VDT below this many days is growth; up to VDT_INDETERMINATE indeterminate; beyond, typical of benign.
VDT_GROWTH, VDT_INDETERMINATE = 400.0, 600.0
#: Lung-RADS v2022: growth is a mean-diameter increase of more than this within 12 months.
LUNG_RADS_GROWTH_MM = 1.5
GROWTH_CLASSES = ("stable", "VDT < 400 d", "VDT 400-600 d", "VDT > 600 d", "shrinking")
#: The categories in order of suspicion ("1": no nodule there any more).
LUNG_RADS_ORDER = ("1", "2", "3", "4A", "4B")
#: v2022 stepped management: a nodule stable at follow-up steps down from 3 to 2 and from 4A to 3.
_STEPPED = {"3": "2", "4A": "3"}


def volume_doubling_days(volume0: float, volume1: float, days: float) -> float:
    """VDT = days x ln 2 / ln(V1 / V0): negative when the nodule shrinks, infinite when it does not change."""
    if volume0 <= 0 or volume1 <= 0 or days <= 0:
        raise ValueError(f"VDT needs positive volumes and interval, got {volume0}, {volume1} mm3 over {days} days")
    ratio = math.log(volume1 / volume0)
    return math.inf if ratio == 0 else days * math.log(2.0) / ratio


def growth_class(volume0: float, volume1: float, days: float) -> str:
    """The BTS class of a volume change (GROWTH_CLASSES)."""
    change = volume1 / volume0 - 1.0
    if abs(change) < STABLE_VOLUME_CHANGE:
        return "stable"
    if change < 0:
        return "shrinking"
    vdt = volume_doubling_days(volume0, volume1, days)
    return "VDT < 400 d" if vdt < VDT_GROWTH else "VDT 400-600 d" if vdt <= VDT_INDETERMINATE else "VDT > 600 d"


@dataclass(frozen=True)
class LungRads:
    """A Lung-RADS v2022 category ("2", "3", "4A", "4B"), or "" with the reason it is left to the reader."""

    category: str
    reason: str = ""


def lung_rads(size: NoduleSize, previous: Optional[NoduleSize] = None, days: Optional[float] = None,
              prior: Optional[str] = None) -> LungRads:
    """The category of one nodule at one scan: a baseline (no `previous`) or a follow-up of `previous`, `days`
    later (None: not checked against Lung-RADS' 12 months). With `prior`, the category `previous` had, a
    stable solid or part-solid nodule of 6 mm or more takes stepped management instead of the reader."""
    if previous is None:
        return _baseline(size)
    growing = size.diameter_mm - previous.diameter_mm > LUNG_RADS_GROWTH_MM
    if size.type == "part-solid":
        growing = size.solid_diameter_mm - previous.solid_diameter_mm > LUNG_RADS_GROWTH_MM
    if growing and days is not None and days > 365:
        return LungRads("", f"grew over {days:.0f} days: Lung-RADS growth is within 12 months (slow growth: reader)")
    if size.type == "ground-glass":
        return LungRads("2")  # below 30 mm, or 30 mm and more and unchanged or slowly growing
    if size.type == "solid":
        if growing:
            return LungRads("4A" if size.diameter_mm < 8 else "4B")
    elif growing:  # part-solid: its solid component grew
        return LungRads("4A" if size.solid_diameter_mm < 4 else "4B")
    if size.diameter_mm < 6:
        return LungRads("2")
    if prior is not None:
        return _stepped(size, prior)
    return LungRads("", "not growing, 6 mm or more: stepped management of a stable 3 / 4A nodule needs its "
                        "prior category")


def _stepped(size: NoduleSize, prior: str) -> LungRads:
    """A stable nodule's category: its size category when that is above `prior` (v2022: a nodule that reaches a
    higher size category is reclassified by size), else `prior` stepped down (4B is not stepped down)."""
    by_size = _baseline(size).category
    if LUNG_RADS_ORDER.index(by_size) > LUNG_RADS_ORDER.index(prior):
        return LungRads(by_size)
    return LungRads(_STEPPED.get(prior, prior))


def _baseline(size: NoduleSize) -> LungRads:
    d = size.diameter_mm
    if size.type == "ground-glass":
        return LungRads("2" if d < 30 else "3")
    if size.type == "part-solid":
        if d < 6:
            return LungRads("2")
        solid = size.solid_diameter_mm
        return LungRads("3" if solid < 6 else "4A" if solid < 8 else "4B")
    return LungRads("2" if d < 6 else "3" if d < 8 else "4A" if d < 15 else "4B")
