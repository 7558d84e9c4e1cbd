"""MRML nodes <-> the library's data: CT volume nodes as SimpleITK images (LPS), fiducials as points.

The boundary between the Slicer scene and everything else; needs no torch, so the module can
build scenes (sample data, batch cases) before torch is installed.
"""

from dataclasses import dataclass
from typing import Collection, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from vtk.util import numpy_support

from ..geometry import VoxelGrid, grid_of_ijk_to_ras, ijk_to_ras_of, lps_to_ras
from ..options import OUTPUT_ATTRIBUTE
from ..preprocessing import check_looks_like_hu

#: Names of a case's input nodes where this module makes them (cohort batch scenes, sample data).
NODE_NAMES = ("baseline CT", "follow-up CT", "baseline nodules", "follow-up nodules")


@dataclass(frozen=True)
class CTVolume:
    """A CT volume node's voxels (the node's own array: a view, not a copy) and their grid in LPS."""

    array: np.ndarray
    grid: VoxelGrid

    def image(self) -> sitk.Image:
        """The whole scan as a SimpleITK image (a copy)."""
        return self.grid.image(self.array)

    def image_around(self, points_lps: np.ndarray) -> sitk.Image:
        """The part of the scan that covers `points_lps` (e.g. a ROI's corners), as a SimpleITK image.

        Copies only that part: a 512 x 512 x 300 scan need not be copied whole for a 64 mm ROI.
        """
        slices, part = self.grid.covering(points_lps)
        return part.image(np.ascontiguousarray(self.array[slices]))


def is_ct_volume_node(node) -> bool:
    """A plain scalar volume that CSF-net did not make: what the panel's CT selectors list.

    By exact class, as those selectors match: label maps, vector, tensor and diffusion volumes are
    subclasses of vtkMRMLScalarVolumeNode but no CT.
    """
    return node is not None and node.GetClassName() == "vtkMRMLScalarVolumeNode" and not node.GetAttribute(
        OUTPUT_ATTRIBUTE)


def add_output_node(scene, class_name: str, name: str):
    """A new node marked as CSF-net's output: a rerun removes it, the CT selectors leave it out."""
    node = scene.AddNewNodeByClass(class_name, name)
    node.SetAttribute(OUTPUT_ATTRIBUTE, "1")
    return node


def _nodes_of(scene, class_name: str) -> List:
    """The scene's nodes that are a `class_name` (IsA), in scene order (GetNodesByClass would leak its list)."""
    return [scene.GetNthNodeByClass(i, class_name) for i in range(scene.GetNumberOfNodesByClass(class_name))]


def ct_volume_nodes(scene) -> List:
    """The scene's CT volume candidates (`is_ct_volume_node`), in scene order."""
    return [node for node in _nodes_of(scene, "vtkMRMLScalarVolumeNode") if is_ct_volume_node(node)]


def output_node_ids(scene, class_name: str) -> List[str]:
    """IDs of the nodes of exactly `class_name` that CSF-net made (e.g. attention heat volumes)."""
    return [node.GetID() for node in _nodes_of(scene, class_name)
            if node.GetClassName() == class_name and node.GetAttribute(OUTPUT_ATTRIBUTE)]


def ct_volume(node, role: str) -> CTVolume:
    """A CT volume node's voxels and LPS grid, with its parent transform applied; refused if not CT."""
    if node is None or node.GetClassName() != "vtkMRMLScalarVolumeNode":
        kind = "nothing" if node is None else f"{node.GetClassName()} '{node.GetName()}'"
        raise ValueError(f"{role} volume must be a CT scalar volume node, got {kind}")
    name = node.GetName()
    if node.GetImageData() is None:
        raise ValueError(f"{role} volume '{name}' has no image data")
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    matrix = slicer.util.arrayFromVTKMatrix(ijk_to_ras)
    transform = node.GetParentTransformNode()
    if transform is not None:
        if not transform.IsTransformToWorldLinear():
            raise ValueError(f"{role} volume '{name}' lies under a non-linear transform; harden it first")
        to_world = vtk.vtkMatrix4x4()
        transform.GetMatrixTransformToWorld(to_world)
        matrix = slicer.util.arrayFromVTKMatrix(to_world) @ matrix
    array = slicer.util.arrayFromVolume(node)
    if array.ndim != 3:
        raise ValueError(f"{role} volume '{name}' is not a 3-D scalar volume")
    check_looks_like_hu(array, f"{role} volume '{name}'")
    return CTVolume(array, grid_of_ijk_to_ras(matrix, array.shape))


def control_points(node, role: str, labels: Optional[Collection[str]] = None) -> List[Tuple[str, np.ndarray]]:
    """(label, RAS world position) of every control point (with `labels`, of those only), transforms applied;
    a point that is not placed (position undefined, or still following the mouse in place mode) is refused
    by name."""
    if node is None or not node.IsA("vtkMRMLMarkupsFiducialNode"):
        raise ValueError(f"{role} fiducials must be a markups fiducial node")
    points = []
    for i in range(node.GetNumberOfControlPoints()):
        if labels is not None and point_label(node, i) not in labels:
            continue
        if node.GetNthControlPointPositionStatus(i) == node.PositionMissing:
            why = node.GetNthControlPointDescription(i) or "marked missing"
            raise ValueError(f"nodule '{node.GetNthControlPointLabel(i)}' has no point in the {role} fiducials "
                             f"'{node.GetName()}' ({why}): place it by hand, or delete it from both lists")
        if node.GetNthControlPointPositionStatus(i) != node.PositionDefined:
            raise ValueError(f"{role} fiducials '{node.GetName()}' point {i + 1} ('{node.GetNthControlPointLabel(i)}')"
                             " is not placed: place it or delete it")
        position = [0.0, 0.0, 0.0]
        node.GetNthControlPointPositionWorld(i, position)
        if not np.all(np.isfinite(position)):
            raise ValueError(f"{role} fiducials '{node.GetName()}' point {i + 1} has no valid position")
        points.append((point_label(node, i), np.asarray(position)))
    if not points:
        raise ValueError(f"{role} fiducials '{node.GetName()}' hold no control points")
    return points


def point_label(fiducials, index: int) -> str:
    """A control point's label; its number when it has none."""
    return fiducials.GetNthControlPointLabel(index) or str(index + 1)


def placed_labels(fiducials) -> List[str]:
    """The labels of the points placed (position defined) in `fiducials`, in list order."""
    return [point_label(fiducials, i) for i in range(fiducials.GetNumberOfControlPoints())
            if fiducials.GetNthControlPointPositionStatus(i) == fiducials.PositionDefined]


def hierarchy_ancestor(tree, item: int, level: str) -> int:
    """`item` of the subject hierarchy `tree`, or the nearest item above it, at `level` (e.g. the DICOM
    study); 0 when there is none."""
    while item and item != tree.GetSceneItemID():
        if tree.GetItemLevel(item) == level:
            return item
        item = tree.GetItemParent(item)
    return 0


def add_volume_node(scene, image: sitk.Image, name: str, class_name: str = "vtkMRMLScalarVolumeNode"):
    """A new volume node holding a SimpleITK image (LPS) where it lies: the inverse of `ct_volume`."""
    node = scene.AddNewNodeByClass(class_name, name)
    slicer.util.updateVolumeFromArray(node, sitk.GetArrayFromImage(image))
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijk_to_ras_of(VoxelGrid.of_image(image))))
    return node


def add_segment(segmentation, mask_zyx: np.ndarray, grid: VoxelGrid, name: str, color) -> str:
    """A segment of the segmentation node from a boolean mask on `grid` (LPS) where it lies; the segment ID."""
    image = slicer.vtkOrientedImageData()
    image.SetDimensions(*mask_zyx.shape[::-1])
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(mask_zyx, dtype=np.uint8).ravel(), deep=True)
    image.GetPointData().SetScalars(scalars)
    image.SetImageToWorldMatrix(slicer.util.vtkMatrixFromArray(ijk_to_ras_of(grid)))
    return segmentation.AddSegmentFromBinaryLabelmapRepresentation(image, name, list(color))


def add_fiducials(scene, name: str, points_lps: Sequence[Sequence[float]], labels: Sequence[str]):
    """A new fiducial list with one labelled control point per LPS position (e.g. a cases.csv row)."""
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
    for point, label in zip(points_lps, labels):
        index = node.AddControlPoint(*lps_to_ras(point).tolist())
        node.SetNthControlPointLabel(index, str(label))
    return node
