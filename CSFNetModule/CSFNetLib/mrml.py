"""3D Slicer scene logic, Qt-free on real MRML: volumes + fiducials -> CSF-net -> table + attention nodes.

The Slicer module's Logic and batch scripts call `predict_scene`. Everything is checked and computed
before the first output node is created, so a failed run leaves the scene as it was; inputs are
never modified. Transforms under which volumes or fiducials lie are applied (what the user sees).
"""

import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from .attention import DEFAULT_METHOD, LEVELS, heat_image, label_image
from .cohort import Sample
from .dataset import RoiSet
from .geometry import ijk_to_ras_of, image_from_ijk_to_ras, ras_to_lps
from .inference import Predictor
from .preprocessing import extract_roi, roi_grid

ROLE = "csfnet.attention"
TABLE_NAME = "CSF-net results"
COLOR_NAME = "CSF-net attention levels"
COLUMNS = ("nodule", "p_malignant", "prediction", "threshold", "model", "model_version", "device", "seconds")
_PREDICTORS: Dict[Tuple[str, str], Predictor] = {}


def _predictor(checkpoint: Optional[str], device: str) -> Predictor:
    """Models are loaded once per (checkpoint, device) and reused across runs."""
    key = (str(checkpoint or ""), device)
    if key not in _PREDICTORS:
        _PREDICTORS[key] = Predictor(checkpoint, device)
    return _PREDICTORS[key]


def volume_image(node, role: str):
    """A CT volume node as a SimpleITK image in LPS, with its parent transform applied."""
    if node is None or not node.IsA("vtkMRMLScalarVolumeNode") or node.IsA("vtkMRMLLabelMapVolumeNode"):
        kind = "nothing" if node is None else node.GetClassName()
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
    if float(np.percentile(array, 1)) > -500.0:
        raise ValueError(f"{role} volume '{name}' does not look like CT in HU (no air below -500)")
    return image_from_ijk_to_ras(array, matrix)


def control_points(node, role: str) -> List[Tuple[str, np.ndarray]]:
    """(label, RAS world position) of every control point, transforms applied."""
    if node is None or not node.IsA("vtkMRMLMarkupsFiducialNode"):
        raise ValueError(f"{role} fiducials must be a markups fiducial node")
    points = []
    for i in range(node.GetNumberOfControlPoints()):
        position = [0.0, 0.0, 0.0]
        node.GetNthControlPointPositionWorld(i, position)
        if not np.all(np.isfinite(position)):
            raise ValueError(f"{role} fiducials '{node.GetName()}' point {i + 1} has no valid position")
        points.append((node.GetNthControlPointLabel(i) or str(i + 1), np.asarray(position)))
    if not points:
        raise ValueError(f"{role} fiducials '{node.GetName()}' hold no control points")
    return points


def pair_nodules(baseline: List[Tuple[str, np.ndarray]], followup: List[Tuple[str, np.ndarray]], by: str):
    """[(label, baseline RAS, follow-up RAS)]: the n-th with the n-th (`by="index"`) or equal labels."""
    if by == "index":
        if len(baseline) != len(followup):
            raise ValueError(f"{len(baseline)} baseline and {len(followup)} follow-up points: the n-th point of "
                             "each list must be the same nodule (or pair them by label)")
        return [(f[0], b[1], f[1]) for b, f in zip(baseline, followup)]
    if by == "label":
        later = dict(followup)
        missing = [label for label, _ in baseline if label not in later]
        if missing or len(later) != len(baseline):
            raise ValueError(f"labels do not match between the lists: baseline only {missing}, "
                             f"follow-up only {sorted(set(later) - {label for label, _ in baseline})}")
        return [(label, position, later[label]) for label, position in baseline]
    raise ValueError(f"pair_by must be 'index' or 'label', got {by!r}")


def predict_scene(
    scene,
    baseline_volume,
    followup_volume,
    baseline_fiducials,
    followup_fiducials=None,
    clinical: Optional[Dict[str, object]] = None,
    checkpoint: Optional[str] = None,
    device: str = "auto",
    attention: bool = True,
    pair_by: str = "index",
    same_position: bool = False,
    table=None,
):
    """Run CSF-net on every nodule; returns the results table node (reused and refilled on a rerun).

    The n-th control point of `baseline_fiducials` is the same nodule as the n-th of
    `followup_fiducials` (`pair_by="label"`: equal labels). With `same_position=True` and no
    baseline list, each follow-up point is used at the same physical position in both scans.
    """
    started = time.perf_counter()
    images = (volume_image(baseline_volume, "baseline"), volume_image(followup_volume, "follow-up"))
    if followup_fiducials is None:
        raise ValueError("follow-up fiducials are required")
    if baseline_fiducials is None:
        if not same_position:
            raise ValueError("no baseline fiducials: pass them, or same_position=True to use the follow-up points "
                             "at the same physical position in the baseline scan")
        later = control_points(followup_fiducials, "follow-up")
        nodules = [(label, position, position) for label, position in later]
    else:
        nodules = pair_nodules(control_points(baseline_fiducials, "baseline"),
                               control_points(followup_fiducials, "follow-up"), pair_by)
    predictor = _predictor(checkpoint, device)
    samples = []
    for label, *positions in nodules:
        centers = tuple(tuple(ras_to_lps(p).tolist()) for p in positions)
        rois = []
        for image, center, role in zip(images, centers, ("baseline", "follow-up")):
            try:
                rois.append(extract_roi(image, center, predictor.preprocessing))
            except ValueError as exc:
                raise ValueError(f"nodule '{label}' in the {role} volume: {exc}") from exc
        samples.append(Sample("scene", label, rois[0], rois[1], predictor.vocabulary.encode(clinical), None, centers))
    roi_set, _ = RoiSet.collect(samples)
    if attention:
        probabilities, maps = predictor.predict_with_attention(roi_set, DEFAULT_METHOD)
    else:
        probabilities, maps = predictor.predict(roi_set), None
    seconds = (time.perf_counter() - started) / max(1, len(samples))
    # --- nothing above touched the scene; from here on outputs are written
    table = table or scene.GetFirstNodeByName(TABLE_NAME) or scene.AddNewNodeByClass("vtkMRMLTableNode", TABLE_NAME)
    _remove_attention_nodes(scene, table)
    _fill_table(table, [(label, float(p)) for (label, *_), p in zip(nodules, probabilities)], predictor, seconds)
    if maps is not None:
        colors = _attention_colors(scene)
        for i, (label, *_) in enumerate(nodules):
            for t, timepoint in enumerate(("T0", "T1")):
                _add_attention_nodes(scene, table, colors, f"{label} {timepoint}", maps[i, t],
                                     roi_set.centers[i, t], predictor)
    return table


def _fill_table(table, rows: Sequence[Tuple[str, float]], predictor: Predictor, seconds: float) -> None:
    values = {
        "nodule": [label for label, _ in rows],
        "p_malignant": [f"{p:.4f}" for _, p in rows],
        "prediction": ["malignant" if p >= predictor.threshold else "benign" for _, p in rows],
        "threshold": [str(predictor.threshold)] * len(rows),
        "model": [predictor.name] * len(rows),
        "model_version": [predictor.version] * len(rows),
        "device": [str(predictor.device)] * len(rows),
        "seconds": [f"{seconds:.2f}"] * len(rows),
    }
    table.RemoveAllColumns()
    for name in COLUMNS:
        column = vtk.vtkStringArray()
        column.SetName(name)
        for value in values[name]:
            column.InsertNextValue(value)
        table.AddColumn(column)
    table.SetAttribute("csfnet.note", "demo weights trained on synthetic phantoms unless a checkpoint was given")
    table.Modified()


def _remove_attention_nodes(scene, table) -> None:
    old = [table.GetNthNodeReference(ROLE, i) for i in range(table.GetNumberOfNodeReferences(ROLE))]
    table.RemoveNodeReferenceIDs(ROLE)
    for node in old:
        if node is None:
            continue
        helpers = [node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())]
        helpers.append(node.GetStorageNode())
        for helper in helpers:
            if helper is not None:
                scene.RemoveNode(helper)
        scene.RemoveNode(node)


def _attention_colors(scene):
    colors = scene.GetFirstNodeByName(COLOR_NAME)
    if colors is None:
        colors = scene.AddNewNodeByClass("vtkMRMLColorTableNode", COLOR_NAME)
        colors.SetTypeToUser()
        colors.SetNumberOfColors(len(LEVELS) + 1)
        colors.SetColor(0, "background", 0.0, 0.0, 0.0, 0.0)
        for label, _, name, (r, g, b, a) in LEVELS:
            colors.SetColor(label, name, r / 255.0, g / 255.0, b / 255.0, a / 255.0)
    return colors


def _add_attention_nodes(scene, table, colors, name: str, attention: np.ndarray, center_lps, predictor) -> None:
    grid = roi_grid(center_lps, predictor.preprocessing)
    matrix = slicer.util.vtkMatrixFromArray(ijk_to_ras_of(grid))
    heat = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"{name} attention heat")
    labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", f"{name} attention labels")
    for node, image in ((heat, heat_image(attention, center_lps, predictor.preprocessing)),
                        (labels, label_image(attention, center_lps, predictor.preprocessing))):
        slicer.util.updateVolumeFromArray(node, sitk.GetArrayFromImage(image))
        node.SetIJKToRASMatrix(matrix)
        table.AddNodeReferenceID(ROLE, node.GetID())
    labels.CreateDefaultDisplayNodes()
    display = labels.GetDisplayNode()
    if display is not None:
        display.SetAndObserveColorNodeID(colors.GetID())

