import numpy as np
import pytest
import SimpleITK as sitk

from conftest import rotation
from CSFNetLib.geometry import RigidTransform, VoxelGrid, as_lps_point, lps_to_ras, ras_to_lps


def test_ras_lps_flip_signs_of_x_and_y_only():
    assert np.allclose(ras_to_lps([10.0, -20.0, 30.0]), [-10.0, 20.0, 30.0])
    points = np.array([[1.0, 2.0, 3.0], [-4.0, 5.0, -6.0]])
    assert np.allclose(lps_to_ras(ras_to_lps(points)), points)


def test_centred_grid_has_its_centre_between_the_middle_voxels():
    grid = VoxelGrid.centred([10.0, -5.0, 100.0], (16, 64, 64), (1.0, 1.0, 1.0))
    assert np.allclose(grid.center_lps, [10.0, -5.0, 100.0])
    assert np.allclose(grid.origin_lps, [10.0 - 31.5, -5.0 - 31.5, 100.0 - 7.5])
    assert grid.size_xyz == (64, 64, 16)


def test_grid_index_and_physical_points_round_trip():
    grid = VoxelGrid.centred([1.0, 2.0, 3.0], (16, 64, 64), (1.0, 1.0, 1.0))
    index = np.array([[0.0, 0.0, 0.0], [7.5, 31.5, 31.5], [15.0, 2.0, 63.0]])
    assert np.allclose(grid.lps_to_index_zyx(grid.index_zyx_to_lps(index)), index)
    # array axis x (last) runs to the patient's left: +1 voxel = +1 mm in L
    step = grid.index_zyx_to_lps([0, 0, 1]) - grid.index_zyx_to_lps([0, 0, 0])
    assert np.allclose(step, [1.0, 0.0, 0.0])


@pytest.mark.parametrize("bad", [[1.0, 2.0], [np.nan, 0.0, 0.0], [0.0, np.inf, 1.0], "abc"])
def test_bad_points_are_refused_with_a_reason(bad):
    with pytest.raises(ValueError, match="nodule centre"):
        as_lps_point(bad)


def test_oblique_grid_agrees_with_simpleitk():
    direction = rotation(25.0, -10.0, 7.0)
    grid = VoxelGrid.centred([5.0, -3.0, 40.0], (12, 30, 20), (0.7, 0.9, 2.5), direction)
    image = grid.image(np.zeros(grid.size_zyx, dtype=np.float32))
    assert VoxelGrid.of_image(image) == grid
    index_zyx = np.array([[0.0, 0.0, 0.0], [11.0, 3.5, 19.0], [5.5, 14.5, 9.5]])
    expected = [image.TransformContinuousIndexToPhysicalPoint(i[::-1].tolist()) for i in index_zyx]
    assert np.allclose(grid.index_zyx_to_lps(index_zyx), expected)
    assert np.allclose(grid.lps_to_index_zyx(expected), index_zyx)
    assert np.allclose(grid.center_lps, [5.0, -3.0, 40.0])


def test_rigid_transform_and_its_resampling_inverse():
    move = RigidTransform.from_degrees((2.0, -3.0, 4.0), (1.5, -2.0, 3.0))
    points = np.array([[0.0, 0.0, 0.0], [10.0, -20.0, 30.0]])
    moved = move.apply(points)
    assert np.allclose(np.linalg.norm(moved[1] - moved[0]), np.linalg.norm(points[1] - points[0]))
    assert np.allclose(move.apply_inverse(moved), points)
    back = move.inverse_for_resampling()
    assert np.allclose([back.TransformPoint(p.tolist()) for p in moved], points)
    assert isinstance(back, sitk.Transform)


def test_a_sheared_grid_maps_points_back_as_itk_does():
    """A tilted-gantry scan's direction is not orthonormal: the inverse must still be exact."""
    shear = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 1.0]])
    grid = VoxelGrid((5.0, -3.0, 40.0), (0.7, 0.9, 2.5), (12, 30, 20), tuple(shear.reshape(-1)))
    image = sitk.Image(list(grid.size_xyz), sitk.sitkInt16)
    image.SetOrigin(grid.origin_lps)
    image.SetSpacing(grid.spacing_xyz)
    image.SetDirection(grid.direction)
    point = [12.0, 4.0, 55.0]
    assert np.allclose(grid.lps_to_index_zyx(point), image.TransformPhysicalPointToContinuousIndex(point)[::-1])
