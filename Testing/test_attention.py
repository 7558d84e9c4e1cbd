"""Attention maps: ROI-shaped, in [0, 1], deterministic, free of side effects, placed where the ROI lies."""

import csv
import re

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from conftest import Phantom, rotation
from CSFNetLib.attention import (
    LEVELS,
    attention_maps,
    color_table,
    heat_image,
    label_image,
    log_odds,
    occlusion_cells,
    peak_index,
)
from CSFNetLib.cli import main
from CSFNetLib.clinical import ClinicalVocabulary
from CSFNetLib.inference import Predictor
from CSFNetLib.model import build_model
from CSFNetLib.model.blocks import SpatialAttention
from CSFNetLib.options import ATTENTION_METHODS, DEFAULT_ATTENTION_METHOD
from CSFNetLib.preprocessing import Preprocessing, extract_roi


@pytest.fixture(scope="module")
def demo():
    return Predictor(device="cpu")


def inputs(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 1, 16, 64, 64, generator=g), torch.rand(batch, 1, 16, 64, 64, generator=g),
            torch.randint(0, ClinicalVocabulary.default().size, (batch, 6), generator=g))


@pytest.mark.parametrize("method", ATTENTION_METHODS)
def test_maps_have_the_roi_shape_and_range_and_leave_the_prediction_unchanged(demo, method):
    t0, t1, _ = inputs()
    clinical = torch.zeros(2, 6, dtype=torch.int64)
    with torch.inference_mode():
        expected = torch.softmax(demo.model(t0, t1, clinical), dim=1)[:, 1]
    p, maps = attention_maps(demo.model, t0, t1, clinical, method)
    assert maps.shape == (2, 2, 16, 64, 64)
    assert float(maps.min()) == pytest.approx(0.0) and float(maps.max()) == pytest.approx(1.0)
    assert torch.allclose(p, expected, atol=1e-6)
    p_again, maps_again = attention_maps(demo.model, t0, t1, clinical, method)
    assert torch.equal(maps, maps_again) and torch.equal(p, p_again)  # deterministic
    assert all(not m._forward_hooks for m in demo.model.modules())  # nothing left behind
    assert all(p.grad is None for p in demo.model.parameters())


@pytest.mark.parametrize("method", ["cbam", "input-x-gradient", "occlusion"])
def test_a_t1_only_model_has_no_baseline_map(method):
    model = build_model("small", variant="t1-only").eval()
    _, maps = attention_maps(model, *inputs(1), method=method)
    assert float(maps[:, 0].abs().max()) == 0.0 and float(maps[:, 1].max()) == pytest.approx(1.0)


@pytest.mark.parametrize("variant", ["csf-net", "t1-only", "concat"])
def test_the_forward_pass_is_spatial_features_then_classify(variant):
    model = build_model("small", variant=variant).eval()
    t0, t1, clinical = inputs()
    with torch.inference_mode():
        assert torch.equal(model(t0, t1, clinical), model.classify(model.spatial_features(t0, t1), clinical))


def test_occlusion_cells_tile_the_roi_with_one_centred_on_its_centre():
    cells = occlusion_cells((16, 64, 64))
    covered = np.zeros((16, 64, 64), int)
    for cell in cells:
        covered[cell] += 1
    assert (covered == 1).all()  # every voxel in exactly one cell
    assert (slice(4, 12), slice(28, 36), slice(28, 36)) in cells  # an 8 mm cube around the centre (7.5, 31.5, 31.5)


def test_occlusion_peaks_where_hiding_a_cube_lowers_the_log_odds_most(demo):
    t0, t1, _ = inputs(1, seed=3)
    clinical = torch.zeros(1, 6, dtype=torch.int64)
    _, maps = attention_maps(demo.model, t0, t1, clinical, "occlusion")

    def drop_hiding(index_zyx) -> float:  # the cell of `index_zyx` in T1 filled with T1's median, as occlusion does
        cells = occlusion_cells(t1.shape[2:])
        cell = next(c for c in cells if all(s.start <= i < s.stop for s, i in zip(c, index_zyx)))
        hidden = t1.clone()
        hidden[(0, 0, *cell)] = t1.median()
        with torch.inference_mode():
            return float(log_odds(demo.model(t0, t1, clinical)) - log_odds(demo.model(t0, hidden, clinical)))

    least = np.unravel_index(int(np.argmin(maps[0, 1].numpy())), maps.shape[2:])
    assert drop_hiding(peak_index(maps[0, 1].numpy())) > max(drop_hiding(least), 0.0)


def test_cbam_maps_follow_the_networks_spatial_attention(demo):
    t0, t1, clinical = inputs(1)
    seen = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out)) for m in demo.model.modules()
             if isinstance(m, SpatialAttention)]
    with torch.inference_mode():
        demo.model(t0, t1, torch.zeros_like(clinical))
    for hook in hooks:
        hook.remove()
    _, maps = attention_maps(demo.model, t0, t1, torch.zeros_like(clinical), "cbam")
    stem = seen[0][1, 0]  # the stem map of T1, already at full resolution
    stem = (stem - stem.min()) / (stem.max() - stem.min())
    assert np.corrcoef(stem.flatten().numpy(), maps[0, 1].flatten().numpy())[0, 1] > 0.3


def test_heat_and_label_images_sit_where_the_roi_was_taken_in_an_oblique_scan():
    phantom = Phantom(size_xyz=(90, 80, 30), spacing=(0.7, 0.8, 2.5), origin=(-20.0, 40.0, -300.0),
                      direction=rotation(15.0, 8.0, -10.0))
    centre = phantom.centre_lps + np.array([2.3, -1.7, 3.1])
    image = phantom.paint_sphere(centre, 5.0, 300.0).image()
    roi = extract_roi(image, centre)
    attention = roi / roi.max()
    heat = heat_image(attention, centre, Preprocessing())
    labels = label_image(attention, centre, Preprocessing())
    middle = [(n - 1) / 2.0 for n in heat.GetSize()]
    assert np.allclose(heat.TransformContinuousIndexToPhysicalPoint(middle), centre, atol=0.5)
    assert heat.GetSize() == (64, 64, 16) and heat.GetSpacing() == (1.0, 1.0, 1.0)
    assert labels.GetOrigin() == heat.GetOrigin() and labels.GetDirection() == heat.GetDirection()
    # resampled back onto the scan, the hottest region lands on the sphere
    back = sitk.GetArrayFromImage(sitk.Resample(heat, image, sitk.Transform(), sitk.sitkLinear, 0.0))
    scan = sitk.GetArrayFromImage(image)
    assert back[scan > 200].mean() > 3 * back[(scan < 0) & (back > 0)].mean()


def test_label_map_of_a_sparse_map_never_labels_its_zeros():
    attention = np.zeros((16, 64, 64), dtype=np.float32)
    hot = np.random.default_rng(1).random(attention.shape) < 0.07
    attention[hot] = np.random.default_rng(2).random(hot.sum()) + 0.1
    labels = sitk.GetArrayFromImage(label_image(attention, (0.0, 0.0, 0.0), Preprocessing()))
    assert not labels[~hot].any()
    assert np.mean(labels >= 2) == pytest.approx(0.07, abs=0.002)  # all hot voxels, fewer than the top 10 %
    assert np.mean(labels == 3) == pytest.approx(0.05, abs=0.002)


def test_label_map_marks_the_top_5_10_and_25_percent():
    attention = np.random.default_rng(0).random((16, 64, 64)).astype(np.float32)
    labels = sitk.GetArrayFromImage(label_image(attention, (0.0, 0.0, 0.0), Preprocessing()))
    shares = {label: float(np.mean(labels >= label)) for label, _, _, _ in LEVELS}
    assert shares == pytest.approx({1: 0.25, 2: 0.10, 3: 0.05}, abs=0.002)
    assert all(line.split()[0].isdigit() and len(line.split()) == 6 for line in color_table().splitlines()[1:])


def test_predict_writes_attention_files_named_by_patient_nodule_and_time_point(synthetic_cohort, tmp_path):
    out, folder = tmp_path / "results.csv", tmp_path / "attention"
    assert main(["predict", "--cases", str(synthetic_cohort / "cases.csv"), "--clinical",
                 str(synthetic_cohort / "clinical.csv"), "--out", str(out), "--device", "cpu",
                 "--attention-dir", str(folder)]) == 0
    rows = list(csv.DictReader(open(synthetic_cohort / "cases.csv", newline="")))
    for row in rows:
        stem = folder / f"{row['pid']}_nodule{row['nodule']}_{row['timepoint']}_layercam"
        heat = sitk.ReadImage(f"{stem}-heat.nrrd")
        labels = sitk.ReadImage(f"{stem}-labels.nrrd")
        middle = [(n - 1) / 2.0 for n in heat.GetSize()]
        point = [float(row[c]) for c in "xyz"]
        assert np.allclose(heat.TransformContinuousIndexToPhysicalPoint(middle), point, atol=0.5)
        assert set(np.unique(sitk.GetArrayFromImage(labels))) <= {0, 1, 2, 3}
    assert (folder / "attention-labels.ctbl").read_text().startswith("#")
    before = {f.name: f.stat().st_mtime_ns for f in folder.iterdir()}
    again = ["predict", "--cases", str(synthetic_cohort / "cases.csv"), "--out", str(tmp_path / "again.csv"),
             "--device", "cpu", "--attention-dir", str(folder)]
    assert main(again) == 2  # another run's maps are not replaced unless asked
    assert {f.name: f.stat().st_mtime_ns for f in folder.iterdir()} == before
    assert not (tmp_path / "again.csv").exists()


def test_ids_become_file_names_that_work_everywhere_and_stay_apart():
    from CSFNetLib.prediction import file_safe

    assert file_safe("LIDC-0001_a.b") == "LIDC-0001_a.b"
    names = [file_safe(pid) for pid in ("site/12", "site:12", "site_12", "P 7", "..")]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", name) for name in names)
    assert len(set(names)) == len(names) and names[2] == "site_12"


def test_the_command_defaults_to_the_librarys_method():
    from CSFNetLib.cli import build_parser

    args = build_parser().parse_args(["predict", "--cases", "c.csv", "--out", "r.csv"])
    assert args.attention_method == DEFAULT_ATTENTION_METHOD
