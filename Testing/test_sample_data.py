"""The module's sample data: generated once, cached, and a nodule that grows inside both scans."""

import numpy as np
import SimpleITK as sitk

from CSFNetLib.geometry import VoxelGrid
from CSFNetLib.preprocessing import check_inside_scan, resample_to_grid
from CSFNetLib.sample_data import sample_pair


def test_the_sample_pair_is_generated_once_then_reused(tmp_path):
    pair = sample_pair(tmp_path)
    stamps = [p.stat().st_mtime_ns for p in (pair.baseline, pair.followup)]
    again = sample_pair(tmp_path)
    assert again == pair and [p.stat().st_mtime_ns for p in (again.baseline, again.followup)] == stamps
    scans = [sitk.ReadImage(str(p)) for p in (pair.baseline, pair.followup)]
    for scan, centre in zip(scans, (pair.nodule_t0_lps, pair.nodule_t1_lps)):
        check_inside_scan(scan, centre)
    solid_mm3 = []
    for scan, centre in zip(scans, (pair.nodule_t0_lps, pair.nodule_t1_lps)):
        cube = resample_to_grid(scan, VoxelGrid.centred(centre, (40, 40, 40), (1.0, 1.0, 1.0)), sitk.sitkLinear, -1000)
        solid_mm3.append(np.count_nonzero(cube > -300))
    grown = np.pi / 6 * (30.0 ** 3 - 10.0 ** 3)  # a sphere from 10 to 30 mm across
    assert solid_mm3[1] - solid_mm3[0] > 0.5 * grown
    assert "phantom" in pair.description and set(pair.clinical) >= {"age", "gender"}
    pair.followup.unlink()  # a damaged cache is regenerated
    assert sample_pair(tmp_path).followup.is_file()
