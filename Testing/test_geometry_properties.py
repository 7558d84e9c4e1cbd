"""Property tests of the geometry: any spacing, origin and direction (rotations and flips)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from CSFNetLib.geometry import VoxelGrid, grid_of_ijk_to_ras, ijk_to_ras_of, rotation_matrix
from CSFNetLib.preprocessing import Preprocessing, extract_roi, roi_grid

spacings = st.tuples(*[st.floats(0.5, 2.0)] * 3)
origins = st.tuples(*[st.floats(-300.0, 300.0)] * 3)
angles = st.tuples(*[st.floats(-180.0, 180.0)] * 3)
flips = st.tuples(*[st.sampled_from([1.0, -1.0])] * 3)
fractions = st.tuples(*[st.floats(0.3, 0.7)] * 3)
SIZE_ZYX = (36, 56, 56)


def scan_grid(spacing, origin, degrees, flip) -> VoxelGrid:
    direction = rotation_matrix(degrees) @ np.diag(flip)  # flips make left-handed (det -1) directions too
    return VoxelGrid(tuple(origin), tuple(spacing), SIZE_ZYX, tuple(direction.reshape(-1).tolist()))


def point_inside(grid: VoxelGrid, fraction) -> np.ndarray:
    index_zyx = np.asarray(fraction)[::-1] * (np.asarray(grid.size_zyx) - 1)
    return grid.index_zyx_to_lps(index_zyx)


@settings(max_examples=40, deadline=None)
@given(spacings, origins, angles, flips, fractions)
def test_a_point_mapped_into_the_scan_and_the_roi_and_back_lands_where_it_started(spacing, origin, degrees, flip,
                                                                                   fraction):
    grid = scan_grid(spacing, origin, degrees, flip)
    point = point_inside(grid, fraction)
    assert np.allclose(grid.index_zyx_to_lps(grid.lps_to_index_zyx(point)), point, atol=1e-6)
    roi = roi_grid(point)
    centre_index = (np.asarray(roi.size_zyx) - 1) / 2.0
    assert np.allclose(roi.lps_to_index_zyx(point), centre_index, atol=1e-6)
    assert np.allclose(roi.index_zyx_to_lps(centre_index), point, atol=1e-6)
    # and through Slicer's IJK-to-RAS matrix (the scene boundary) and back
    image = grid_of_ijk_to_ras(ijk_to_ras_of(grid), grid.size_zyx).image(np.zeros(grid.size_zyx, np.int16))
    assert np.allclose(image.TransformPhysicalPointToContinuousIndex(point.tolist())[::-1],
                       grid.lps_to_index_zyx(point), atol=1e-6)


def test_directions_with_float_dust_still_map_points_through_simpleitk():
    """Found by hypothesis: ITK turns subnormal direction cosines into NaN; they are snapped to zero."""
    grid = scan_grid((1.75, 1.0, 1.0), (0.0, 0.0, 0.0), (0.0, 0.0, 2.4e-297), (1.0, 1.0, 1.0))
    point = point_inside(grid, (0.5, 0.5, 0.5))
    image = grid_of_ijk_to_ras(ijk_to_ras_of(grid), grid.size_zyx).image(np.zeros(grid.size_zyx, np.int16))
    assert np.allclose(image.TransformPhysicalPointToContinuousIndex(point.tolist())[::-1],
                       grid.lps_to_index_zyx(point), atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(spacings, origins, angles, flips, fractions)
def test_the_roi_of_a_sphere_is_centred_on_it(spacing, origin, degrees, flip, fraction):
    grid = scan_grid(spacing, origin, degrees, flip)
    centre = point_inside(grid, fraction)
    kk, jj, ii = np.meshgrid(*[np.arange(n) for n in grid.size_zyx], indexing="ij")
    voxels = grid.index_zyx_to_lps(np.stack([kk, jj, ii], -1).reshape(-1, 3))
    inside = np.linalg.norm(voxels - centre, axis=1) <= 6.0
    image = grid.image(np.where(inside, 400.0, -1000.0).reshape(grid.size_zyx).astype(np.float32))
    roi = extract_roi(image, centre, Preprocessing())  # 1 mm, patient-aligned, [0, 1]
    weights = roi - roi.min()
    index = np.indices(roi.shape).reshape(3, -1)
    centroid = (index * weights.reshape(-1)).sum(axis=1) / weights.sum()
    assert np.allclose(centroid, (np.asarray(roi.shape) - 1) / 2.0, atol=0.5)  # within half a millimetre
