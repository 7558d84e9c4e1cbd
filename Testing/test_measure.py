"""Nodule measurement: segmentation from a point, size and type, growth, Lung-RADS, `csfnet measure`."""

import csv
import math

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Phantom, rotation
from CSFNetLib.cli import main as csfnet
from CSFNetLib.measure import segmentation
from CSFNetLib.measure.growth import growth_class, lung_rads, volume_doubling_days
from CSFNetLib.measure.segmentation import FIRST_REACH_MM, REACH_MM, SOLID_HU, VOXEL_MM, NoNoduleError, measure_nodule
from CSFNetLib.measure.size import NoduleSize

LUNG_HU = -850.0


def scan(phantom: Phantom, blur_mm: float = 0.6, noise_hu: float = 25.0, seed: int = 0) -> sitk.Image:
    """The phantom as a scanner sees it: blurred (partial volume at every edge) and noisy, int16 HU."""
    image = sitk.SmoothingRecursiveGaussian(phantom.image(sitk.sitkFloat32), blur_mm)
    values = sitk.GetArrayFromImage(image) + np.random.default_rng(seed).normal(0, noise_hu, phantom.hu.shape)
    result = sitk.GetImageFromArray(np.round(values).astype(np.int16))
    result.CopyInformation(image)
    return result


def chest(spacing=(0.7, 0.7, 2.0), direction=None) -> Phantom:
    """Lung on an anisotropic, optionally oblique grid of about 70 mm."""
    size = tuple(int(round(70 / s)) for s in spacing)
    return Phantom(size_xyz=size, spacing=spacing, origin=(-20.0, 10.0, -150.0), direction=direction,
                   background_hu=LUNG_HU)


def sphere_mm3(diameter: float) -> float:
    return math.pi / 6 * diameter ** 3


@pytest.mark.parametrize("diameter, spacing, tilt", [(6.0, (0.7, 0.7, 1.0), 0.0), (10.0, (0.8, 0.8, 2.5), 12.0),
                                                      (20.0, (0.6, 0.6, 1.25), 0.0)])
def test_a_solid_nodule_is_measured_in_any_geometry(diameter, spacing, tilt):
    phantom = chest(spacing, rotation(0.0, 0.0, tilt))
    centre = phantom.centre_lps
    phantom.paint_sphere(centre, diameter / 2, 40.0)
    measured = measure_nodule(scan(phantom), centre + np.array([1.0, -0.8, 0.5]))  # a click near the centre
    size = measured.size
    assert size.type == "solid" and size.solid_volume_mm3 == size.volume_mm3
    assert size.volume_mm3 == pytest.approx(sphere_mm3(diameter), rel=0.15 if diameter < 8 else 0.1)
    assert abs(size.diameter_mm - diameter) <= 1.0 and abs(size.long_axis_mm - size.short_axis_mm) <= 1.0
    assert np.linalg.norm(measured.segmentation.centre_lps - centre) < 0.5
    assert measured.segmentation.flags == ()


@pytest.mark.parametrize("diameter, attached", [(6.0, False), (11.0, True), (26.0, False)])
def test_a_nodule_measures_alike_in_the_cube_it_fits_and_in_the_largest(diameter, attached):
    """Nodules are analysed in the smallest cube their findings fit (for speed); the largest cube, the one
    every nodule once had, must give the same measurement."""
    phantom = chest((0.7, 0.7, 1.25))
    centre = phantom.centre_lps
    phantom.paint_sphere(centre, diameter / 2, 30.0)
    if attached:  # a vessel running off the nodule: blocked rays, a neighbours' median
        phantom.paint_box(centre + [0.0, -1.0, -1.0], centre + [30.0, 1.0, 1.0], 40.0)
    image, point = scan(phantom), centre + np.array([0.6, -0.4, 0.3])
    quick = segmentation.segment_nodule(image, point)
    point = np.asarray(point)
    full = segmentation._segment_in_cube(image, point, segmentation._lung_level(image, point), REACH_MM,
                                         must_fit=False)
    first_cube = int(round(2 * FIRST_REACH_MM / VOXEL_MM)) + 1
    assert (quick.grid.size_xyz[0] == first_cube) == (diameter < 8)  # larger ones need a larger cube
    assert quick.volume_mm3 == pytest.approx(full.volume_mm3, rel=0.02)
    assert np.linalg.norm(quick.centre_lps - full.centre_lps) < 0.1
    assert quick.flags == full.flags


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 1799), st.floats(0.02, 0.45), st.integers(0, 2 ** 31))
def test_a_blocked_ray_takes_the_median_of_its_48_nearest_free_rays(axis, blocked_share, seed):
    """The neighbours looked up in a table of each ray's nearest rays are the ones a search of every free
    ray finds, even when a large cap of rays is blocked (a wall)."""
    rng = np.random.default_rng(seed)
    directions = segmentation._directions()
    edges = rng.uniform(3.0, 4.0, len(directions))
    cap = directions @ directions[axis] > 1.0 - 2.0 * blocked_share  # the rays within a cap of that share
    edges[cap] = rng.uniform(10.0, 20.0, cap.sum())
    result, free = segmentation._unblocked(edges)
    assert np.array_equal(free, ~cap)
    for ray in np.flatnonzero(cap)[:: max(1, cap.sum() // 40)]:
        closeness = directions[free] @ directions[ray]
        expected = np.median(edges[free][np.argsort(-closeness)[:48]])
        assert result[ray] == pytest.approx(expected)
    assert np.array_equal(result[free], edges[free])


def test_ray_samples_are_itk_s_linear_interpolation():
    rng = np.random.default_rng(3)
    volume = rng.normal(0.0, 100.0, (9, 11, 13)).astype(np.float32)
    points = rng.uniform(0.0, [8.0, 10.0, 12.0], (200, 3))
    image = sitk.GetImageFromArray(volume)
    expected = [image.EvaluateAtContinuousIndex(tuple(p[::-1]), sitk.sitkLinear) for p in points]
    assert segmentation._sample(volume, points) == pytest.approx(expected, abs=1e-3)


def test_part_solid_and_ground_glass_nodules_are_typed_with_their_solid_part():
    phantom = chest()
    part_solid, ground_glass = phantom.centre_lps + [-14.0, 0, 0], phantom.centre_lps + [14.0, 0, 0]
    phantom.paint_sphere(part_solid, 8.0, -550.0).paint_sphere(part_solid, 3.5, 30.0)
    phantom.paint_sphere(ground_glass, 7.0, -600.0)
    image = scan(phantom)

    mixed = measure_nodule(image, part_solid).size
    assert mixed.type == "part-solid" and abs(mixed.diameter_mm - 16.0) <= 1.0
    assert abs(mixed.solid_diameter_mm - 7.0) <= 1.0
    assert mixed.solid_volume_mm3 == pytest.approx(sphere_mm3(7.0), rel=0.25)
    hazy = measure_nodule(image, ground_glass).size
    assert hazy.type == "ground-glass" and hazy.solid_volume_mm3 == 0 and abs(hazy.diameter_mm - 14.0) <= 1.0


@pytest.mark.parametrize("diameter, core, thickness", [(9.0, 3.5, 1.0), (9.0, 3.5, 2.0), (8.0, 3.0, 2.0),
                                                       (7.0, 2.5, 1.0)])
def test_a_small_part_solid_nodule_with_a_thin_rim_is_part_solid(diameter, core, thickness):
    """Ground glass around a 2.5-3.5 mm solid core: the rim is too thin for a plateau, and blurred, the
    smaller cores peak under solid attenuation."""
    phantom = chest((0.7, 0.7, thickness))
    centre = phantom.centre_lps
    phantom.paint_sphere(centre, diameter / 2, -600.0).paint_sphere(centre, core / 2, 30.0)
    size = measure_nodule(scan(phantom), centre + np.array([0.6, 0.0, -0.5])).size
    assert size.type == "part-solid" and abs(size.diameter_mm - diameter) <= 1.0
    assert size.volume_mm3 == pytest.approx(sphere_mm3(diameter), rel=0.15)
    assert core - 1.5 < size.solid_diameter_mm < core + 1.5


def test_a_nodule_is_separated_from_the_chest_wall_and_from_a_vessel():
    phantom = chest((0.7, 0.7, 1.25))
    centre = phantom.centre_lps
    wall = centre + np.array([0.0, 0.0, 0.0])
    phantom.paint_box(centre + [-40, -40, -40], centre + [-4.0, 40, 40], 40.0)  # chest wall, x below -4 mm
    phantom.paint_sphere(wall, 5.0, 40.0)  # juxtapleural: 1 mm of it inside the wall
    vessel_nodule = centre + np.array([14.0, 0.0, 0.0])
    phantom.paint_sphere(vessel_nodule, 4.0, 40.0)
    for t in np.linspace(-30, 30, 241):  # a 2.5 mm-radius vessel along y touching the nodule
        phantom.paint_sphere(vessel_nodule + [0.0, t, 6.0], 2.5, 40.0)
    image = scan(phantom)

    pleural = measure_nodule(image, wall + [2.0, 0, 0])
    assert pleural.size.volume_mm3 == pytest.approx(sphere_mm3(10.0), rel=0.2)
    assert any("attached" in flag for flag in pleural.segmentation.flags)
    vascular = measure_nodule(image, vessel_nodule)
    assert vascular.size.volume_mm3 == pytest.approx(sphere_mm3(8.0), rel=0.25)
    assert abs(vascular.size.diameter_mm - 8.0) <= 1.5


@pytest.mark.parametrize("where, hu, message", [("lung", None, "only lung"), ("outside", None, "outside the scan"),
                                                ("bone", 800.0, "bone")])
def test_a_point_on_no_nodule_is_refused_with_the_reason(where, hu, message):
    phantom = chest()
    centre = phantom.centre_lps
    if hu is not None:
        phantom.paint_sphere(centre, 6.0, hu)
    point = centre + ([500.0, 0, 0] if where == "outside" else [0, 0, 0])
    with pytest.raises(NoNoduleError, match=message):
        measure_nodule(scan(phantom), point)


def test_a_nodule_larger_than_the_rays_reach_is_refused_with_the_reason():
    """A 50 mm ground-glass nodule around a solid core: its edge lies beyond every ray (it crashed before)."""
    phantom = chest((0.8, 0.8, 1.25))
    centre = phantom.centre_lps
    phantom.paint_sphere(centre, 25.0, -600.0).paint_sphere(centre, 5.0, 30.0)
    with pytest.raises(NoNoduleError, match="larger than this measures: its edge lies beyond 23 mm"):
        measure_nodule(scan(phantom), centre)


def test_a_point_on_a_vessel_is_refused_but_a_nodule_on_a_vessel_is_measured():
    phantom = chest((0.7, 0.7, 1.25))
    centre = phantom.centre_lps
    on_nodule = centre + np.array([15.0, 0.0, 0.0])
    for t in np.linspace(-30, 30, 241):
        phantom.paint_sphere(centre + [0.0, t, 0.3 * t], 2.0, 40.0)  # an oblique 4 mm vessel
        phantom.paint_sphere(on_nodule + [0.0, t, 0.0], 1.5, 40.0)  # a 3 mm vessel through an 8 mm nodule
    phantom.paint_sphere(on_nodule, 4.0, 40.0)
    image = scan(phantom)
    with pytest.raises(NoNoduleError, match="a vessel"):
        measure_nodule(image, centre)
    assert measure_nodule(image, on_nodule).size.volume_mm3 == pytest.approx(sphere_mm3(8.0), rel=0.2)


def test_a_nodule_cut_by_the_scan_s_edge_is_flagged():
    phantom = chest((0.7, 0.7, 1.0))
    edge = phantom.points[2, 50, 50]  # two slices from the first
    phantom.paint_sphere(edge, 6.0, 40.0)
    measured = measure_nodule(scan(phantom), edge)
    assert any("cut by the scan's edge" in flag for flag in measured.segmentation.flags)
    assert measured.size.volume_mm3 < sphere_mm3(12.0)


def test_solid_component_cut_off_is_the_stated_one():
    assert SOLID_HU == -300.0  # the cut-off docs/cli.md (measure) and the method's docstring state


def size(diameter, kind="solid", solid=0.0, volume=None):
    volume = sphere_mm3(diameter) if volume is None else volume
    return NoduleSize(volume, volume if kind == "solid" else sphere_mm3(solid), diameter, diameter, solid or diameter,
                      kind)


def test_volume_doubling_time_and_bts_growth_classes():
    assert volume_doubling_days(100.0, 200.0, 300.0) == pytest.approx(300.0)
    assert volume_doubling_days(100.0, 50.0, 300.0) == pytest.approx(-300.0)
    assert math.isinf(volume_doubling_days(100.0, 100.0, 300.0))
    assert volume_doubling_days(sphere_mm3(10.0), sphere_mm3(12.6), 365) == pytest.approx(365, rel=0.01)  # 26 % d
    assert growth_class(100.0, 120.0, 90) == "stable"  # < 25 %: within measurement error
    assert growth_class(100.0, 200.0, 300) == "VDT < 400 d"
    assert growth_class(100.0, 200.0, 500) == "VDT 400-600 d"
    assert growth_class(100.0, 200.0, 700) == "VDT > 600 d"
    assert growth_class(100.0, 60.0, 300) == "shrinking"
    with pytest.raises(ValueError):
        volume_doubling_days(0.0, 10.0, 100)


@pytest.mark.parametrize("nodule, category", [
    (size(5.9), "2"), (size(6.0), "3"), (size(7.9), "3"), (size(8.0), "4A"), (size(14.9), "4A"), (size(15.0), "4B"),
    (size(5.0, "part-solid", 2.0), "2"), (size(10.0, "part-solid", 5.0), "3"), (size(10.0, "part-solid", 6.5), "4A"),
    (size(12.0, "part-solid", 8.0), "4B"), (size(20.0, "ground-glass"), "2"), (size(31.0, "ground-glass"), "3")])
def test_lung_rads_baseline_categories_follow_the_v2022_table(nodule, category):
    assert lung_rads(nodule).category == category


def test_lung_rads_at_follow_up_reads_growth_and_leaves_the_rest_to_the_reader():
    assert lung_rads(size(7.0), size(5.0), 180).category == "4A"  # grew by more than 1.5 mm, under 8 mm
    assert lung_rads(size(9.0), size(7.0), 180).category == "4B"
    assert lung_rads(size(5.5), size(5.0), 180).category == "2"
    stable = lung_rads(size(9.0), size(9.0), 365)
    assert stable.category == "" and "prior category" in stable.reason
    slow = lung_rads(size(9.0), size(7.0), 700)
    assert slow.category == "" and "12 months" in slow.reason
    assert lung_rads(size(12.0, "part-solid", 5.0), size(12.0, "part-solid", 3.0), 180).category == "4B"


def test_csfnet_measure_writes_a_row_per_nodule_per_scan_masks_on_the_nodules_and_carries_on(synthetic_cohort,
                                                                                            tmp_path):
    cases = tmp_path / "cases.csv"
    rows = list(csv.DictReader(open(synthetic_cohort / "cases.csv", encoding="utf-8")))
    for row in rows:
        row["image"] = str((synthetic_cohort / row["image"]).resolve())
    rows[0]["x"] = str(float(rows[0]["x"]) + 400.0)  # a point outside its scan
    with open(cases, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out, masks = tmp_path / "measurements.csv", tmp_path / "masks"
    assert csfnet(["measure", "--cases", str(cases), "--out", str(out), "--masks-dir", str(masks)]) == 1
    measured = list(csv.DictReader(open(out, encoding="utf-8")))
    assert len(measured) == len(rows)
    failed = [row for row in measured if row["error"]]
    assert len(failed) == 1 and "outside the scan" in failed[0]["error"]
    assert failed[0]["pid"] == rows[0]["pid"] and failed[0]["timepoint"] == rows[0]["timepoint"]
    good = [row for row in measured if not row["error"]]
    assert all(float(row["volume_mm3"]) > 0 and row["type"] in ("solid", "part-solid", "ground-glass") for row in good)
    follow_ups = [row for row in good if row["timepoint"] == "T1" and row["growth_class"]]
    assert follow_ups and all(row["vdt_days"] and row["growth_mm"] for row in follow_ups)
    for row in good[:3]:
        label_map = sitk.ReadImage(str(masks / f"{row['pid']}_{row['nodule']}_{row['timepoint']}.nrrd"))
        stats = sitk.LabelShapeStatisticsImageFilter()
        stats.Execute(label_map > 0)
        centre = np.array([float(row[axis]) for axis in "xyz"])
        assert np.linalg.norm(np.array(stats.GetCentroid(1)) - centre) < 1.5  # the mask sits on the nodule
    assert csfnet(["measure", "--cases", str(cases), "--out", str(out)]) == 2  # never overwritten unasked


def test_growth_and_lung_rads_at_each_scan_are_against_the_last_measured_scan_over_four_scans():
    from types import SimpleNamespace

    from CSFNetLib.measure.cohort import ScanMeasurement, nodule_rows
    from CSFNetLib.measure.segmentation import NoduleMeasurement

    def measured(diameter):
        segmentation = SimpleNamespace(centre_lps=np.zeros(3), flags=())
        return NoduleMeasurement(segmentation, size(diameter))  # type: ignore[arg-type]

    scans = [ScanMeasurement("T0", 0.0, measured(5.0)), ScanMeasurement("T1", 180.0, measured(7.0)),
             ScanMeasurement("T2", 360.0, "no nodule at (0.0, 0.0, 0.0) mm LPS: only lung within 3 mm"),
             ScanMeasurement("T3", 540.0, measured(9.0))]
    rows = nodule_rows("P1", "1", scans)
    assert [row["timepoint"] for row in rows] == ["T0", "T1", "T2", "T3"]
    assert rows[0]["lung_rads"] == "2" and rows[0]["vdt_days"] == ""  # baseline: size only
    assert rows[1]["lung_rads"] == "4A" and rows[1]["growth_mm"] == 2.0  # grew 2 mm in 180 days, under 8 mm
    assert rows[1]["vdt_days"] == round(volume_doubling_days(sphere_mm3(5.0), sphere_mm3(7.0), 180.0))
    assert "only lung" in rows[2]["error"] and rows[2]["volume_mm3"] == ""
    # against the last scan where it was measured (T1, 360 days before), not the failed one
    assert rows[3]["lung_rads"] == "4B" and rows[3]["growth_mm"] == 2.0
    assert rows[3]["vdt_days"] == round(volume_doubling_days(sphere_mm3(7.0), sphere_mm3(9.0), 360.0))


@pytest.mark.parametrize("extra, message", [
    (["--no-measure"], "--measurements asks for the nodules' measurements, but measuring is switched off"),
    (["--resume"], "--measurements is written by a whole run: rerun with --overwrite instead of --resume"),
    (["--nlst-cmst", "rois"], "--measurements needs scans to measure; pre-cut --nlst-cmst ROIs have none"),
    ([], "measurements.csv exists; pass --overwrite to replace it"),
    ("folder", "a folder, not a file name for measurements"),
])
def test_predict_refuses_a_measurements_file_it_cannot_write_before_any_work(synthetic_cohort, tmp_path, capsys,
                                                                              extra, message):
    target = tmp_path / ("measurements" if extra == "folder" else "measurements.csv")
    target.mkdir() if extra == "folder" else target.write_text("kept\n", encoding="utf-8")
    out = tmp_path / "results.csv"
    args = ["predict", "--cases", str(synthetic_cohort / "cases.csv"), "--out", str(out), "--device", "cpu",
            "--measurements", str(target), *([] if extra == "folder" else extra)]
    assert csfnet(args) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and (target.is_dir() or target.read_text(encoding="utf-8") == "kept\n")
