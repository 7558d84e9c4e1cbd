"""The synthetic cohort: files as users bring them, deterministic, and realistic where it matters."""

import csv

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import SYNTH_PATIENTS, SYNTH_SEED
from CSFNetLib.baselines import brock_probability
from CSFNetLib.cli import main
from CSFNetLib.clinical import DEFAULT_CODES, FIELDS
from CSFNetLib.cohort_csv import read_cohort
from CSFNetLib.images import read_image
from CSFNetLib.metrics import roc_auc
from CSFNetLib.preprocessing import extract_roi, hu_to_unit
from CSFNetLib.samples import iter_samples
from CSFNetLib.synth import synthesize_patient
from CSFNetLib.synth.anatomy import Anatomy
from CSFNetLib.synth.population import sample_patient
from CSFNetLib.synth.scanner import sample_acquisition, sample_pose

SEED, PATIENTS = SYNTH_SEED, SYNTH_PATIENTS


@pytest.fixture(scope="module")
def cohort_dir(synthetic_cohort):
    return synthetic_cohort


@pytest.fixture(scope="module")
def patient0():
    return synthesize_patient(SEED, 0, "small")


@pytest.fixture(scope="module")
def whole_chest():
    """One `full` patient: 512 x 512 whole-chest scans, where every tissue is in view."""
    return synthesize_patient(SEED, 0, "full")


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def hu_near(image: sitk.Image, point_lps, radius_mm: float) -> np.ndarray:
    """HU values of the voxels within `radius_mm` of a physical point."""
    array = sitk.GetArrayViewFromImage(image)
    centre = np.asarray(image.TransformPhysicalPointToContinuousIndex([float(c) for c in point_lps]))[::-1]
    reach = np.ceil(radius_mm / np.asarray(image.GetSpacing())[::-1]).astype(int)
    low, high = np.floor(centre).astype(int) - reach, np.ceil(centre).astype(int) + reach + 1
    index = np.stack(np.meshgrid(*(np.arange(a, b) for a, b in zip(low, high)), indexing="ij"), -1).reshape(-1, 3)
    index = index[np.all((index >= 0) & (index < array.shape), axis=1)]
    points = np.array([image.TransformIndexToPhysicalPoint([int(i) for i in k[::-1]]) for k in index])
    near = np.linalg.norm(points - np.asarray(point_lps), axis=1) <= radius_mm
    return array[tuple(index[near].T)].astype(float)


# ---------------------------------------------------------------------------------------------- files
def test_cohort_files_follow_the_formats_page(cohort_dir):
    cases = read_csv(cohort_dir / "cases.csv")
    clinical = read_csv(cohort_dir / "clinical.csv")
    assert {"pid", "nodule", "timepoint", "image", "x", "y", "z", "label", "days"} <= set(cases[0])
    assert {"diameter_mm", "nodule_type", "spiculation", "upper_lobe", "nodule_count"} <= set(cases[0])
    assert {"pid", *FIELDS, "family_history", "emphysema", "prior_cancer"} <= set(clinical[0])
    assert len(clinical) == PATIENTS
    for row in cases:
        image = sitk.ReadImage(str(cohort_dir / row["image"]))
        assert image.GetPixelID() == sitk.sitkInt16 and row["image"].endswith(".nrrd")
        assert row["timepoint"] in ("T0", "T1") and row["label"] in ("0", "1")
        assert (row["days"] == "0") == (row["timepoint"] == "T0")
        assert row["nodule_type"] in ("solid", "part-solid", "non-solid")
    cohort = read_cohort(cohort_dir / "cases.csv", cohort_dir / "clinical.csv")
    assert cohort.problems == []
    samples = list(iter_samples(cohort))
    assert len(samples) == len(cases) // 2 and all(s.t0.shape == (16, 64, 64) for s in samples)


def test_generation_is_deterministic_for_a_seed(cohort_dir, patient0):
    pid = patient0.spec.pid
    for timepoint in ("T0", "T1"):
        written = sitk.GetArrayFromImage(read_image(cohort_dir / "images" / f"{pid}_{timepoint}.nrrd"))
        assert np.array_equal(written, sitk.GetArrayFromImage(patient0.images[timepoint]))
    other = synthesize_patient(SEED + 1, 0, "small")
    assert other.spec.nodules[0].diameter_t0 != patient0.spec.nodules[0].diameter_t0


def test_existing_files_are_never_overwritten(cohort_dir, capsys):
    before = (cohort_dir / "cases.csv").read_bytes()
    assert main(["synth", "--out", str(cohort_dir), "--cases", "1"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (cohort_dir / "cases.csv").read_bytes() == before


def test_thin_slice_cohorts_are_written_on_request(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "thin"), "--cases", "1", "--seed", str(SEED), "--workers", "1",
                 "--slice-mm", "0.625", "0.8"]) == 0
    rows = read_csv(tmp_path / "thin" / "cases.csv")
    thicknesses = {read_image(tmp_path / "thin" / row["image"]).GetSpacing()[2] for row in rows}
    assert thicknesses <= {0.625, 0.8}
    default = synthesize_patient(SEED, 0, "small")
    assert all(default.images[t].GetSpacing()[2] >= 1.0 for t in default.images)
    assert main(["synth", "--out", str(tmp_path / "bad"), "--cases", "1", "--slice-mm", "0"]) == 2
    assert "--slice-mm must be positive" in capsys.readouterr().err and not (tmp_path / "bad").exists()


# ------------------------------------------------------------------------------------------ geometry
def test_scan_geometry_varies_as_in_screening():
    rng = np.random.default_rng(0)
    pose = sample_pose(rng)
    acquisitions = []
    for _ in range(200):
        acquisitions.append(sample_acquisition(rng, "small", pose, np.zeros(3), 300.0))
        pose = sample_pose(rng, previous=pose)
    in_plane = np.array([a.grid.spacing_xyz[0] for a in acquisitions])
    thickness = np.array([a.grid.spacing_xyz[2] for a in acquisitions])
    oblique = np.mean([not np.allclose(a.grid.direction, np.eye(3).reshape(-1)) for a in acquisitions])
    assert in_plane.min() >= 0.6 and in_plane.max() <= 0.9 and in_plane.std() > 0.05
    assert thickness.min() >= 1.0 and thickness.max() <= 2.5 and len(set(thickness)) >= 4
    assert 0.15 < oblique < 0.45
    assert all(a.grid.size_zyx == (100, 160, 160) for a in acquisitions)


def test_follow_up_is_positioned_differently(patient0):
    t0, t1 = patient0.acquisitions["T0"], patient0.acquisitions["T1"]
    shift = np.linalg.norm(np.asarray(t1.pose.translation) - np.asarray(t0.pose.translation))
    angle = np.degrees(np.arccos(np.clip((np.trace(t1.pose.matrix @ t0.pose.matrix.T) - 1) / 2, -1, 1)))
    assert shift > 0.5 and 0.1 < angle < 6.0
    nodule = patient0.nodules[0]
    moved = np.linalg.norm(patient0.nodule_center_lps(nodule, "T1") - patient0.nodule_center_lps(nodule, "T0"))
    assert moved > 0.5  # the same nodule has other scanner coordinates at follow-up


# ------------------------------------------------------------------------------------------- anatomy
def tissue_hu(patient, timepoint="T0", step=5):
    """HU of every `step`-th voxel of a scan, grouped by the phantom's own tissue masks."""
    image = patient.images[timepoint]
    array = sitk.GetArrayViewFromImage(image)
    voxels = np.argwhere(np.ones(array.shape, dtype=bool)[::step, ::step, ::step]) * step
    acquisition = patient.acquisitions[timepoint]
    body = acquisition.pose.apply_inverse(acquisition.grid.index_zyx_to_lps(voxels))
    return {name: array[tuple(voxels[mask].T)].astype(float)
            for name, mask in patient.anatomy.tissue_masks(body).items()}


def test_whole_chest_scans_are_512_square_and_cover_the_lungs(whole_chest):
    image = whole_chest.images["T0"]
    nz = image.GetSize()[2]
    assert image.GetSize()[:2] == (512, 512)
    assert nz * image.GetSpacing()[2] > whole_chest.anatomy.lung_top_z - whole_chest.anatomy.lung_base_z


def test_tissues_have_their_hu(whole_chest):
    values = tissue_hu(whole_chest)
    expected = {"outside air": (-1024, -980), "subcutaneous fat": (-130, -70), "lung": (-900, -780),
                "vertebral marrow": (200, 330)}
    for name, (low, high) in expected.items():
        assert len(values[name]) > 50, name
        assert low <= np.median(values[name]) <= high, name
    trachea = hu_near(whole_chest.images["T0"], whole_chest.landmark_lps("trachea", "T0"), 3.0)
    assert np.median(trachea) < -900  # airways hold air
    ribs = [t for t in whole_chest.anatomy.ribs]
    rib_centre = whole_chest.acquisitions["T0"].pose.apply((np.asarray(ribs[40].start) + ribs[40].end) / 2)
    assert np.median(hu_near(whole_chest.images["T0"], rib_centre, 1.5)) > 200  # bone, several hundred HU


def test_nodules_touch_the_pleura_or_a_vessel_when_they_say_so():
    checked = set()
    for index in range(6):
        patient = synthesize_patient(SEED + 10, index, "small")
        for nodule in patient.nodules:
            centre, radius = np.asarray(nodule.center_body), nodule.diameter_t0 / 2
            if nodule.attachment == "pleural":  # part of a slightly larger sphere lies outside the lung
                assert not patient.anatomy.inside_lung_points(centre + 1.3 * radius * _sphere_directions()).all()
            elif nodule.attachment == "vascular":
                vessels = patient.anatomy.vessels
                gaps = [np.linalg.norm(_closest_on(t, centre) - centre) - t.radius_start for t in vessels]
                assert min(gaps) < radius + 1.5
            else:  # free: 2 mm around it is still lung
                assert patient.anatomy.inside_lung_points(centre + (radius + 2.0) * _sphere_directions()).all()
            checked.add(nodule.attachment)
    assert {"free", "pleural"} <= checked


def _sphere_directions(n: int = 200) -> np.ndarray:
    v = np.random.default_rng(0).normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _closest_on(tube, point):
    a, b = np.asarray(tube.start), np.asarray(tube.end)
    t = np.clip((point - a) @ (b - a) / max((b - a) @ (b - a), 1e-9), 0, 1)
    return a + t * (b - a)


def test_lung_parenchyma_is_around_minus_850_with_texture(patient0):
    image = patient0.images["T0"]
    array = sitk.GetArrayViewFromImage(image)
    index = np.argwhere(np.ones(array.shape, dtype=bool)[::4, ::4, ::4]) * 4  # every 4th voxel
    points = np.array([image.TransformIndexToPhysicalPoint([int(i) for i in k[::-1]]) for k in index])
    inside = patient0.anatomy.inside_lung_points(patient0.acquisitions["T0"].pose.apply_inverse(points))
    values = array[tuple(index[inside].T)].astype(float)
    assert inside.mean() > 0.2  # the crop is mostly lung
    assert -900 < np.median(values) < -790
    assert values.std() > 30  # texture, vessels and noise, not a flat fill


def test_vessels_branch_and_thin_outward():
    anatomy = Anatomy.sample(np.random.default_rng(1), emphysema=False)
    radius = np.array([t.radius_start for t in anatomy.vessels])
    hilum_distance = np.array([np.linalg.norm(np.asarray(t.start) - [np.sign(t.start[0]) * 42.0, 2.0, -18.0])
                               for t in anatomy.vessels])
    assert len(anatomy.vessels) > 200
    assert np.corrcoef(radius, hilum_distance)[0, 1] < -0.5
    assert radius.max() >= 4.0 and radius.min() < 1.0


def test_noise_is_20_to_40_hu(patient0):
    image = patient0.images["T1"]
    marrow = hu_near(image, patient0.landmark_lps("vertebral_body", "T1"), 5.0)
    assert 15.0 < marrow.std() < 45.0
    assert marrow.std() == pytest.approx(patient0.acquisitions["T1"].noise_sd, rel=0.3)


# ------------------------------------------------------------------------------------------- nodules
def nodule_voxels(image, row, level_hu=-300.0):
    roi = extract_roi(image, (float(row["x"]), float(row["y"]), float(row["z"])))
    return roi, int((roi[4:12, 16:48, 16:48] > hu_to_unit(level_hu)).sum())


def test_nodules_sit_at_their_coordinates_and_change_as_their_course_says(cohort_dir):
    rows = read_csv(cohort_dir / "cases.csv")
    pairs = {}
    for row in rows:
        pairs.setdefault((row["pid"], row["nodule"]), {})[row["timepoint"]] = row
    courses = set()
    for pair in pairs.values():
        t0, t1 = pair["T0"], pair["T1"]
        if t0["nodule_type"] != "solid" or t0["attachment"] != "free":
            continue
        roi0, count0 = nodule_voxels(read_image(cohort_dir / t0["image"]), t0)
        roi1, count1 = nodule_voxels(read_image(cohort_dir / t1["image"]), t1)
        assert roi0[7:9, 31:33, 31:33].mean() > hu_to_unit(-300.0)  # the solid nodule is at the ROI centre
        course = t0["course"]
        courses.add(course)
        if course == "grows":
            assert count1 > 1.3 * count0
        elif course == "stable":
            assert 0.6 * count0 < count1 < 1.5 * count0
        elif course == "resolves":
            assert count1 < 0.2 * count0
    assert courses, "the test cohort should hold at least one free solid nodule"


def test_population_risk_follows_known_factors_and_growth_carries_more():
    rng = np.random.default_rng(11)
    patients = [sample_patient(rng, f"P{i}") for i in range(1500)]
    nodules = [(p, n) for p in patients for n in p.nodules]
    label = np.array([n.label for _, n in nodules])
    brock = np.array([brock_probability(age=p.age, female=p.female, family_history=p.family_history,
                                        emphysema=p.emphysema, diameter_mm=n.diameter_t0, nodule_type=n.kind,
                                        upper_lobe=n.wanted_upper_lobe, nodule_count=len(p.nodules),
                                        spiculation=n.margin == "spiculated") for p, n in nodules])
    growth = np.array([n.diameter_t1 / n.diameter_t0 for _, n in nodules])
    assert 0.3 < label.mean() < 0.55
    assert 0.65 < roc_auc(label, brock) < 0.9  # real but partial signal
    assert roc_auc(label, growth) > roc_auc(label, brock) + 0.05
    assert np.median(growth[label == 1]) > 1.2 and 0.85 < np.median(growth[label == 0]) < 1.1
    doubling = np.array([n.volume_doubling_days for _, n in nodules if n.label])
    assert np.mean((doubling >= 100) & (doubling <= 400)) > 0.6
    resolved = [n for _, n in nodules if n.course == "resolves"]
    assert resolved and all(n.label == 0 and n.diameter_t1 == 0 for n in resolved)
    gained_solid = [n for _, n in nodules if n.label and n.solid_fraction_t1 > n.solid_fraction_t0]
    assert gained_solid and all(n.kind != "solid" for n in gained_solid)
    kinds = {n.kind for _, n in nodules}
    margins = {n.margin for _, n in nodules}
    assert kinds == {"solid", "part-solid", "non-solid"} and margins == {"smooth", "lobulated", "spiculated"}
    diameters = np.array([n.diameter_t0 for _, n in nodules] + [n.diameter_t1 for _, n in nodules if n.diameter_t1])
    assert diameters.min() >= 2.0 and diameters.max() <= 30.0 + 1e-9  # T0 4-30 mm; shrinking ones go below 4


def test_clinical_fields_use_nlst_codes_with_some_missing():
    rng = np.random.default_rng(12)
    patients = [sample_patient(rng, f"P{i}") for i in range(600)]
    missing = 0
    for patient in patients:
        for field, value in patient.clinical.items():
            if value is None:
                missing += 1
            else:
                assert str(value) in DEFAULT_CODES[field], (field, value)
    assert 0.01 < missing / (6 * len(patients)) < 0.06
    assert all(55 <= p.age <= 74 for p in patients)

