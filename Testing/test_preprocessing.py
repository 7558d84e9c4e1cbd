import numpy as np
import pytest
import SimpleITK as sitk

from conftest import Phantom, bright_centroid, rotation
from CSFNetLib.preprocessing import (
    Preprocessing,
    apply_lung_mask,
    extract_roi,
    hu_to_unit,
    lung_mask,
)

ROI_CENTRE = np.array([7.5, 31.5, 31.5])  # (z, y, x): between the middle voxels
AIR = (-1000.0 + 1200.0) / 1800.0


def test_intensity_transform_is_the_dsb2017_window():
    hu = np.array([-2000.0, -1200.0, -1000.0, -300.0, 0.0, 600.0, 3000.0])
    expected = [0.0, 0.0, 200 / 1800, 0.5, 1200 / 1800, 1.0, 1.0]
    out = hu_to_unit(hu)
    assert out.dtype == np.float32
    assert np.allclose(out, expected, atol=1e-6)


def test_lung_mask_step_writes_170_outside_the_mask_only():
    roi = np.full((2, 2, 2), 0.25, dtype=np.float32)
    mask = np.zeros((2, 2, 2), dtype=np.uint8)
    mask[0] = 1
    out = apply_lung_mask(roi, mask)
    assert np.allclose(out[0], 0.25)
    assert np.allclose(out[1], 170 / 255)
    with pytest.raises(ValueError, match="does not match"):
        apply_lung_mask(roi, mask[0])


def test_roi_has_the_network_shape_dtype_and_range(oblique_phantom):
    roi = extract_roi(oblique_phantom.image(), oblique_phantom.centre_lps)
    assert roi.shape == (16, 64, 64)
    assert roi.dtype == np.float32
    assert 0.0 <= roi.min() and roi.max() <= 1.0


def test_sphere_on_an_oblique_anisotropic_scan_lands_at_the_roi_centre(oblique_phantom):
    centre = oblique_phantom.centre_lps + np.array([3.3, -2.1, 4.7])
    image = oblique_phantom.paint_sphere(centre, radius_mm=5.0, hu=400.0).image()
    roi = extract_roi(image, centre)
    assert np.allclose(bright_centroid(roi, hu_to_unit(0.0)), ROI_CENTRE, atol=0.35)


def test_a_marker_10mm_to_the_patients_left_is_10_voxels_further_along_x(oblique_phantom):
    centre = oblique_phantom.centre_lps
    marker = centre + np.array([10.0, 0.0, 0.0])  # +x in LPS = patient's left
    image = oblique_phantom.paint_sphere(marker, radius_mm=3.0, hu=500.0).image()
    roi = extract_roi(image, centre)
    assert np.allclose(bright_centroid(roi, hu_to_unit(0.0)), ROI_CENTRE + [0.0, 0.0, 10.0], atol=0.35)


def test_posterior_and_superior_run_along_y_and_z(oblique_phantom):
    phantom = oblique_phantom
    centre = phantom.centre_lps
    image = (
        phantom.paint_sphere(centre + [0.0, 12.0, 0.0], 2.5, 500.0)  # posterior
        .paint_sphere(centre + [0.0, 0.0, 6.0], 2.5, 500.0)  # superior
        .image()
    )
    roi = extract_roi(image, centre)
    bright = roi > hu_to_unit(0.0)
    assert bright[7:9, 43:45, 31:33].any()  # y index 31.5 + 12
    assert bright[13:15, 31:33, 31:33].any()  # z index 7.5 + 6
    assert not bright[:, 31:33, 31:33][[0, 1, 2]].any()  # nothing inferior


def test_roi_near_the_scan_edge_is_filled_with_air():
    phantom = Phantom(size_xyz=(60, 60, 30), background_hu=40.0)
    centre = phantom.points[15, 30, 5]  # 5 voxels (mm) from the right edge in x
    roi = extract_roi(phantom.image(), centre)
    inside = hu_to_unit(40.0)
    rows = slice(3, 60)  # y stays inside the scan there (the ROI is 64 mm, the scan 60 mm)
    assert np.allclose(roi[:, rows, 40:], inside)  # the scan covers x >= centre - 5 mm
    assert np.allclose(roi[:, rows, :25], AIR)  # beyond the edge: air


def test_sphere_near_the_scan_edge_still_lands_at_the_roi_centre(oblique_phantom):
    corner = oblique_phantom.points[2, 3, 4]  # a few voxels inside the scan's corner
    image = oblique_phantom.paint_sphere(corner, radius_mm=2.0, hu=400.0).image()
    roi = extract_roi(image, corner)
    assert np.allclose(bright_centroid(roi, hu_to_unit(0.0)), ROI_CENTRE, atol=0.5)
    assert np.isclose(roi, AIR).mean() > 0.3  # much of the ROI lies outside the scan


def test_lung_mask_covers_the_lungs_and_dilates_into_the_wall():
    phantom = Phantom(size_xyz=(80, 60, 20), background_hu=-1000.0)
    phantom.paint_box([5, 5, -100], [74, 54, 100], 40.0)  # body
    phantom.paint_box([12, 12, -100], [35, 47, 100], -850.0)  # right lung
    phantom.paint_box([44, 12, -100], [67, 47, 100], -850.0)  # left lung
    mask = sitk.GetArrayFromImage(lung_mask(phantom.image(), dilation_mm=3.0))
    assert mask[10, 30, 20] and mask[10, 30, 55]  # inside each lung
    assert mask[10, 30, 37]  # wall within 3 mm of the right lung
    assert not mask[10, 30, 40]  # mediastinum beyond the dilation
    assert not mask[10, 2, 2]  # outside air


def test_lung_mask_keeps_a_large_nodule_inside_the_lung():
    phantom = Phantom(size_xyz=(80, 60, 40), background_hu=-1000.0)
    phantom.paint_box([5, 5, -100], [74, 54, 100], 40.0)
    phantom.paint_box([12, 12, -100], [35, 47, 100], -850.0)
    phantom.paint_box([44, 12, -100], [67, 47, 100], -850.0)
    phantom.paint_sphere([24.0, 30.0, 20.0], 9.0, 40.0)  # an 18 mm solid nodule in the right lung
    mask = sitk.GetArrayFromImage(lung_mask(phantom.image(), dilation_mm=2.0))
    assert mask[20, 30, 24]


def test_scan_without_lungs_is_refused_by_the_lung_mask():
    soft_tissue = Phantom(size_xyz=(30, 30, 10), background_hu=40.0).image()
    with pytest.raises(ValueError, match="no lung found"):
        lung_mask(soft_tissue)


@pytest.mark.parametrize(
    "settings,message",
    [(dict(spacing_mm=0.0), "spacing"), (dict(roi_size_zyx=(16, 0, 64)), "ROI size"),
     (dict(hu_min=600.0, hu_max=-1200.0), "HU window")],
)
def test_invalid_preprocessing_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        Preprocessing(**settings)


def test_masked_preprocessing_puts_170_outside_the_lung():
    phantom = Phantom(size_xyz=(80, 60, 20), background_hu=-1000.0)
    phantom.paint_box([5, 5, -100], [74, 54, 100], 40.0)
    phantom.paint_box([12, 12, -100], [35, 47, 100], -850.0)
    phantom.paint_box([44, 12, -100], [67, 47, 100], -850.0)
    centre = phantom.points[10, 30, 23]
    roi = extract_roi(phantom.image(), centre, Preprocessing(lung_mask=True, lung_dilation_mm=2.0))
    assert np.isclose(roi[8, 32, 32], hu_to_unit(-850.0))  # in the lung: unchanged
    assert np.isclose(roi[8, 32, 48], 170 / 255)  # mediastinum (x = 39.5 mm): masked


@pytest.mark.parametrize(
    "image,point,message",
    [
        ("not an image", [0, 0, 0], "SimpleITK.Image"),
        (sitk.Image(10, 10, sitk.sitkInt16), [0, 0, 0], "3-D"),
        (sitk.Image([10, 10, 10], sitk.sitkVectorFloat32, 3), [0, 0, 0], "one value per voxel"),
        (sitk.Image([10, 10, 10], sitk.sitkComplexFloat32), [0, 0, 0], "real HU values"),
        (sitk.Image(10, 10, 10, sitk.sitkInt16), [np.nan, 0, 0], "finite"),
        (sitk.Image(10, 10, 10, sitk.sitkInt16), [50.0, 0, 0], "outside the scan"),
    ],
)
def test_bad_input_is_refused_with_a_reason(image, point, message):
    with pytest.raises((TypeError, ValueError), match=message):
        extract_roi(image, point)


def test_rotation_helper_is_orthonormal():
    r = rotation(20, -8, 12)
    assert np.allclose(r @ r.T, np.eye(3))
