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
