"""The generator's ground truth (`synth.truth`): volumes match the drawn shapes, types the generator's kinds,
masks sit where the nodule is in each scan and over the voxels the scan shows as nodule."""

import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk

from CSFNetLib.synth import synthesize_patient
from CSFNetLib.synth.truth import true_masks, true_size, truth_grid

# Seed 7, patient 24: a smooth solid nodule (13.6 mm at T0) and a lobulated ground-glass one that gains
# a solid core (fraction 0.41) by T1.
SEED, INDEX = 7, 24


@pytest.fixture(scope="module")
def patient():
    return synthesize_patient(SEED, INDEX, "small")


def nodule_of(patient, kind):
    return next(n for n in patient.nodules if n.kind == kind)


def shape_volume(nodule, radius: float) -> float:
    """The volume inside the bumpy surface: (1/3) * integral of r(u)^3 over the unit sphere (Fibonacci lattice)."""
    n = 40_000
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    phi = np.pi * (1.0 + 5.0 ** 0.5) * k
    rho = np.sqrt(1.0 - z * z)
    directions = np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=1)
    return float(np.mean(nodule.shape.radius_along(directions, radius) ** 3) * 4.0 * np.pi / 3.0)


def test_solid_volume_matches_the_drawn_shape(patient):
    nodule = nodule_of(patient, "solid")
    assert nodule.margin == "smooth"
    for timepoint in ("T0", "T1"):
        radius = nodule.diameter(timepoint) / 2.0
        size = true_size(patient, nodule, timepoint)
        assert size.type == "solid" and size.solid_volume_mm3 == size.volume_mm3
        assert size.volume_mm3 == pytest.approx(shape_volume(nodule, radius), rel=0.03)
        assert size.volume_mm3 == pytest.approx(4.0 / 3.0 * np.pi * radius ** 3, rel=0.10)  # small relief
        assert size.diameter_mm == pytest.approx(nodule.diameter(timepoint), rel=0.08)


def test_ground_glass_then_part_solid(patient):
    nodule = nodule_of(patient, "non-solid")
    t0 = true_size(patient, nodule, "T0")
    assert t0.type == "ground-glass" and t0.solid_volume_mm3 == 0.0 and t0.solid_diameter_mm == 0.0
    assert t0.volume_mm3 == pytest.approx(shape_volume(nodule, nodule.diameter("T0") / 2.0), rel=0.03)

    fraction = nodule.solid_fraction("T1")
    assert 0.0 < fraction < 1.0 and nodule.kind_at("T1") == "part-solid"
    t1 = true_size(patient, nodule, "T1")
    radius = nodule.diameter("T1") / 2.0
    assert t1.type == "part-solid"
    assert t1.volume_mm3 == pytest.approx(shape_volume(nodule, radius), rel=0.03)
    assert t1.solid_volume_mm3 == pytest.approx(shape_volume(nodule, radius * fraction), rel=0.06)
    assert t1.solid_volume_mm3 / t1.volume_mm3 == pytest.approx(fraction ** 3, rel=0.15)
    assert t1.solid_diameter_mm / t1.diameter_mm == pytest.approx(fraction, rel=0.10)  # the core is the shape scaled


def test_masks_centred_on_the_nodule_in_each_scan(patient):
    nodule = nodule_of(patient, "solid")
    voxel_mm = 0.25
    for timepoint in ("T0", "T1"):
        grid = truth_grid(patient, nodule, timepoint, voxel_mm)
        whole, solid = true_masks(patient, nodule, timepoint, grid)
        assert np.array_equal(whole, solid)
        centroid = grid.index_zyx_to_lps(np.argwhere(whole >= 0.5).mean(axis=0))
        offset = centroid - patient.nodule_center_lps(nodule, timepoint)
        assert np.all(np.abs(offset) < voxel_mm / 2.0), offset


def test_masks_on_the_scan_grid_cover_the_nodule_voxels(patient):
    """On the scan's own grid (its spacing and direction), the voxels inside the truth read the nodule's HU."""
    nodule = nodule_of(patient, "solid")
    image = patient.images["T0"]
    grid = patient.acquisitions["T0"].grid
    whole, _ = true_masks(patient, nodule, "T0", grid)
    hu = sitk.GetArrayViewFromImage(image)
    inside = hu[whole >= 1.0]
    assert inside.size > 100
    assert abs(float(np.median(inside)) - nodule.solid_hu) < 40.0
    assert float(np.median(hu[(whole > 0.0) & (whole < 0.5)])) < nodule.solid_hu - 100.0  # the edge is darker


def test_resolved_nodule_has_no_mask(patient):
    nodule = dataclasses.replace(nodule_of(patient, "solid"), diameter_t1=0.0)
    grid = truth_grid(patient, nodule, "T0", 0.5)
    whole, solid = true_masks(patient, nodule, "T1", grid)
    assert not whole.any() and not solid.any()
