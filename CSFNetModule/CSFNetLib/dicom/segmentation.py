"""A DICOM Segmentation of a scan's nodules on the scan's own slices: one segment per nodule."""

from typing import Sequence, Tuple

import numpy as np

from ..measure.segmentation import NoduleSegmentation
from ..version import __version__
from .source import SourceSeries

MANUFACTURER = "SlicerCSFNet"
#: Segment display colours (RGB), one per nodule in turn: what Slicer and OHIF draw them in.
COLORS = ((230, 60, 60), (60, 140, 230), (240, 190, 40), (80, 190, 90), (170, 90, 210), (240, 130, 40))


def nodule_frames(series: SourceSeries, masks: Sequence[NoduleSegmentation]) -> np.ndarray:
    """(slices, rows, columns) uint8 on the source series' slices: n where the n-th nodule's whole mask is
    (the nearest analysis voxel to each pixel centre; a later nodule wins where two overlap), else 0."""
    first = series.first
    frames = np.zeros((len(series.datasets), int(first.Rows), int(first.Columns)), np.uint8)
    for number, nodule in enumerate(masks, start=1):
        corners = _corners_lps(nodule)
        for k in range(len(series.datasets)):
            position, row, column, (column_mm, row_mm) = series.plane(k)
            normal = np.cross(row, column)
            heights = (corners - position) @ normal
            if heights.min() > nodule.voxel_mm or heights.max() < -nodule.voxel_mm:
                continue  # the plane misses the nodule's box
            across = np.clip([((corners - position) @ row).min() / column_mm - 1,
                              ((corners - position) @ row).max() / column_mm + 2], 0, frames.shape[2]).astype(int)
            down = np.clip([((corners - position) @ column).min() / row_mm - 1,
                            ((corners - position) @ column).max() / row_mm + 2], 0, frames.shape[1]).astype(int)
            j, i = np.mgrid[down[0]:down[1], across[0]:across[1]]
            points = position + np.outer(i.ravel() * column_mm, row) + np.outer(j.ravel() * row_mm, column)
            index = np.round(nodule.grid.lps_to_index_zyx(points)).astype(int)
            inside = np.all((index >= 0) & (index < np.asarray(nodule.whole.shape)), axis=1)
            hit = np.zeros(len(points), bool)
            hit[inside] = nodule.whole[tuple(index[inside].T)]
            window = frames[k, down[0]:down[1], across[0]:across[1]]
            window[hit.reshape(window.shape)] = number
    return frames


def write_segmentation(series: SourceSeries, masks: Sequence[NoduleSegmentation], labels: Sequence[str],
                       tracking_uids: Sequence[str], path, series_number: int = 901):
    """The nodules as a DICOM SEG on `series` (segment n: nodule `labels[n-1]`, its tracking UID the same
    at every scan of the patient), saved at `path`; the dataset."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    algorithm = hd.AlgorithmIdentificationSequence(name="CSF-net nodule segmentation", version=__version__,
                                                   family=codes.cid7162.EdgeDetection)
    segments = [hd.seg.SegmentDescription(
        segment_number=number, segment_label=f"nodule {label}",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Nodule, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
        algorithm_identification=algorithm, tracking_uid=uid, tracking_id=f"nodule {label}",
        anatomic_regions=[codes.SCT.Lung], display_color=hd.color.CIELabColor.from_rgb(*_color(number)))
        for number, (label, uid) in enumerate(zip(labels, tracking_uids), start=1)]
    seg = hd.seg.Segmentation(
        source_images=series.datasets, pixel_array=nodule_frames(series, masks),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=segments,
        series_instance_uid=generate_uid(), series_number=series_number, sop_instance_uid=generate_uid(),
        instance_number=1, manufacturer=MANUFACTURER, manufacturer_model_name="CSF-net", software_versions=__version__,
        device_serial_number="0", series_description="CSF-net nodules", content_label="NODULES",
        content_description="Lung nodules segmented by CSF-net from a point on each")
    seg.save_as(path)
    return seg


def _corners_lps(nodule: NoduleSegmentation) -> np.ndarray:
    """The 8 corners (LPS) of the box holding the nodule's mask, half a voxel out."""
    voxels = np.argwhere(nodule.whole)
    low, high = voxels.min(axis=0) - 0.5, voxels.max(axis=0) + 0.5
    corners = np.array([[z, y, x] for z in (low[0], high[0]) for y in (low[1], high[1]) for x in (low[2], high[2])])
    return nodule.grid.index_zyx_to_lps(corners)


def _color(number: int) -> Tuple[int, int, int]:
    return COLORS[(number - 1) % len(COLORS)]
