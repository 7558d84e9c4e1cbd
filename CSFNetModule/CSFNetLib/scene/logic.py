"""3D Slicer scene logic, Qt-free on real MRML: volumes + fiducials -> CSF-net -> table + attention nodes.

The Slicer module's Logic and batch scripts call `predict_scene`. Everything is checked and computed
before the first output node is created, so a failed run leaves the scene as it was; inputs are
never modified. Transforms under which volumes or fiducials lie are applied (what the user sees).
"""

import time
from dataclasses import dataclass
from typing import Collection, List, Mapping, Optional, Sequence, Tuple, cast

import numpy as np
import slicer
import torch

from ..attention import LEVELS, heat_image, label_image
from ..dataset import RoiSet
from ..geometry import ras_to_lps
from ..inference import Predictor, PredictorCache
from ..measure.cohort import ScanMeasurement, nodule_rows
from ..options import DEFAULT_ATTENTION_METHOD, OUTPUT_ATTRIBUTE, AttentionMethod, PairBy
from ..pairing import PAIRING_RULES, NodulePair, pair_nodules
from ..preprocessing import check_inside_scan, extract_roi, lung_mask, roi_grid
from ..progress import Progress, no_progress
from ..records import Sample
from .measurements import add_growth_plot, add_segmentations, measure_nodules
from .nodes import CTVolume, add_output_node, add_volume_node, control_points, ct_volume, hierarchy_ancestor
from .results_table import ATTENTION_METHOD_ATTRIBUTE, MEASURE_ROLE, ROLE, attention_name, fill_table

TABLE_NAME = "CSF-net results"
COLOR_NAME = "CSF-net attention levels"
FOLDER_NAME = "CSF-net attention"


@dataclass
class SceneResult:
    """What a run computed from the scene's inputs, before anything is written to the scene."""

    nodules: List[NodulePair]
    pairing: str  # the rule the points were paired by (a key of PAIRING_RULES)
    probabilities: np.ndarray  # (N,)
    maps: Optional[np.ndarray]  # (N, 2, D, H, W) attention at T0 and T1, or None
    rois: RoiSet
    predictor: Predictor
    seconds: float  # per nodule
    measured: Optional[List[List[ScanMeasurement]]] = None  # each nodule at each scan, when measured
    attention_method: AttentionMethod = DEFAULT_ATTENTION_METHOD  # how `maps` were made


def predict_scene(
    scene,
    baseline_volume,
    followup_volume,
    baseline_fiducials,
    followup_fiducials=None,
    *,
    clinical: Optional[Mapping[str, object]] = None,
    checkpoint: Optional[str] = None,
    device: str = "auto",
    attention: bool = True,
    attention_method: AttentionMethod = DEFAULT_ATTENTION_METHOD,
    pair_by: PairBy = "auto",
    same_position: bool = False,
    measure: bool = True,
    interval_days: Optional[float] = None,
    table=None,
    progress: Optional[Progress] = None,
    predictors: Optional[PredictorCache] = None,
):
    """Run CSF-net on every nodule; returns the results table node (reused and refilled on a rerun).

    Points pair as `pair_nodules` says (by index, or by label when both lists carry the same
    labels); with `same_position=True` and no baseline list, each follow-up point is used at the
    same physical position in both scans. The rule used is in the table's `csfnet.pairing`
    attribute. Outputs go under the input volumes' studies in the subject hierarchy when they have one.
    `progress` hears each step; raising `Cancelled` from it stops the run with the scene untouched.
    `predictors` keeps models loaded between runs (a fresh cache loads the checkpoint). With `measure`,
    each nodule is also segmented and measured in both scans: the table gets its volumes, diameter,
    type, growth (VDT and class need `interval_days`, the days between the scans) and Lung-RADS
    category, and the scene a segmentation per scan and a plot of the volumes.
    """
    result = compute_scene(baseline_volume, followup_volume, baseline_fiducials, followup_fiducials,
                           clinical=clinical, checkpoint=checkpoint, device=device, attention=attention,
                           attention_method=attention_method, pair_by=pair_by, same_position=same_position,
                           measure=measure,
                           interval_days=interval_days, progress=progress, predictors=predictors or PredictorCache())
    return write_scene(scene, result, baseline_volume=baseline_volume, followup_volume=followup_volume, table=table)


def compute_scene(
    baseline_volume,
    followup_volume,
    baseline_fiducials,
    followup_fiducials,
    *,
    clinical: Optional[Mapping[str, object]],
    checkpoint: Optional[str],
    device: str,
    attention: bool,
    pair_by: PairBy,
    attention_method: AttentionMethod = DEFAULT_ATTENTION_METHOD,
    same_position: bool,
    measure: bool,
    interval_days: Optional[float],
    progress: Optional[Progress],
    predictors: PredictorCache,
    labels: Optional[Collection[str]] = None,
) -> SceneResult:
    """The first half of `predict_scene`: reads the inputs and runs the model; touches nothing.

    With `labels`, only the points so labelled are read (a history's pair: the nodules placed in both
    scans). A GPU that runs out of memory is left for the CPU.
    """
    report = progress or no_progress
    started = time.perf_counter()
    report("Reading the scans", 0.0)
    volumes = (ct_volume(baseline_volume, "baseline"), ct_volume(followup_volume, "follow-up"))
    nodules, rule = _nodules(baseline_fiducials, followup_fiducials, pair_by, same_position, labels)
    report("Loading the model", 0.1)
    predictor = predictors.get(checkpoint, device)
    rois = RoiSet.collect(_samples(volumes, nodules, predictor, clinical, report))[0]
    report(f"Running CSF-net on {len(nodules)} nodule(s) ({predictor.device})", 0.5)
    try:
        probabilities, maps = _run(predictor, rois, attention, attention_method)
    except torch.cuda.OutOfMemoryError:
        if predictor.device.type != "cuda":
            raise
        torch.cuda.empty_cache()
        predictor = predictors.get(checkpoint, "cpu")
        report("The GPU ran out of memory: running on the CPU instead", 0.5)
        probabilities, maps = _run(predictor, rois, attention, attention_method)
    measured = measure_nodules(volumes, nodules, interval_days, report) if measure else None
    report("Writing the results", 0.9)  # the last point at which a run can be cancelled
    seconds = (time.perf_counter() - started) / len(nodules)
    return SceneResult(nodules, rule, probabilities, maps, rois, predictor, seconds, measured, attention_method)


def write_scene(scene, result: SceneResult, *, baseline_volume, followup_volume, table=None):
    """The second half of `predict_scene`: the results table and attention nodes, placed in the hierarchy."""
    if table is None:
        table = scene.GetFirstNodeByName(TABLE_NAME) or add_output_node(scene, "vtkMRMLTableNode", TABLE_NAME)
    _remove_outputs(scene, table)
    rows = ([nodule_rows("scene", pair.label, scans) for pair, scans in zip(result.nodules, result.measured)]
            if result.measured is not None else None)
    fill_table(table, [(pair.label, float(p)) for pair, p in zip(result.nodules, result.probabilities)],
               result.predictor, result.seconds, rows)
    table.SetAttribute("csfnet.pairing", PAIRING_RULES[result.pairing])
    hierarchy = _Hierarchy(scene)
    hierarchy.place(table, followup_volume)
    if result.maps is not None:
        table.SetAttribute(ATTENTION_METHOD_ATTRIBUTE, result.attention_method)
        colors = _attention_colors(scene)
        for i in range(len(result.nodules)):
            for t, volume in enumerate((baseline_volume, followup_volume)):
                for node in _attention_nodes(scene, result, i, t, colors):
                    table.AddNodeReferenceID(ROLE, node.GetID())
                    hierarchy.place(node, volume, FOLDER_NAME)
    if result.measured is not None:
        segmentations = add_segmentations(scene, (baseline_volume, followup_volume), result.nodules, result.measured)
        for node, volume in zip(segmentations, (baseline_volume, followup_volume)):
            table.AddNodeReferenceID(MEASURE_ROLE, node.GetID())
            hierarchy.place(node, volume)
        for node in add_growth_plot(scene, [pair.label for pair in result.nodules], result.measured):
            table.AddNodeReferenceID(MEASURE_ROLE, node.GetID())
            if node.IsA("vtkMRMLTableNode") or node.IsA("vtkMRMLPlotChartNode"):
                hierarchy.place(node, followup_volume)
    return table


def _attention_nodes(scene, result: SceneResult, i: int, t: int, colors):
    """The heat volume and the label map of nodule `i` at time point `t` (0: T0, 1: T1), as new output nodes."""
    assert result.maps is not None  # called only for a run that made attention maps
    label, timepoint = result.nodules[i].label, ("T0", "T1")[t]
    center = result.rois.centers[i, t]
    preprocessing = result.predictor.preprocessing
    heat = add_volume_node(scene, heat_image(result.maps[i, t], center, preprocessing),
                           attention_name(label, timepoint, "heat"))
    labels = add_volume_node(scene, label_image(result.maps[i, t], center, preprocessing),
                             attention_name(label, timepoint, "labels"), "vtkMRMLLabelMapVolumeNode")
    display = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeDisplayNode")
    display.SetAndObserveColorNodeID(colors.GetID())
    labels.SetAndObserveDisplayNodeID(display.GetID())
    for node in (heat, labels):
        node.SetAttribute(OUTPUT_ATTRIBUTE, "1")
    return heat, labels


def _nodules(baseline_fiducials, followup_fiducials, pair_by: str, same_position: bool,
             labels: Optional[Collection[str]]):
    if followup_fiducials is None:
        raise ValueError("follow-up fiducials are required")
    if baseline_fiducials is None:
        if not same_position:
            raise ValueError("no baseline fiducials: pass them, or same_position=True to use the follow-up points "
                             "at the same physical position in the baseline scan")
        followup = control_points(followup_fiducials, "follow-up", labels)
        return [NodulePair(label, position, position) for label, position in followup], "same position"
    return pair_nodules(control_points(baseline_fiducials, "baseline", labels),
                        control_points(followup_fiducials, "follow-up", labels), pair_by)


def _run(predictor: Predictor, roi_set: RoiSet, attention: bool, method: AttentionMethod):
    if attention:
        return predictor.predict_with_attention(roi_set, method)
    return predictor.predict(roi_set), None


def _samples(volumes: Sequence[CTVolume], nodules, predictor: Predictor, clinical, report: Progress) -> List[Sample]:
    """One network input per nodule, cut from the part of each scan around it.

    A model trained with the lung mask needs whole scans (the mask is computed once per scan).
    """
    p = predictor.preprocessing
    whole = [volume.image() for volume in volumes] if p.lung_mask else [None, None]
    masks = [lung_mask(image, p.lung_threshold_hu, p.lung_dilation_mm) if image is not None else None  # = p.lung_mask
             for image in whole]
    encoded = predictor.vocabulary.encode(clinical)
    samples = []
    for i, (label, *positions) in enumerate(nodules):
        report(f"Nodule {label}: cutting its regions of interest", 0.15 + 0.35 * i / len(nodules))
        centers = cast(Tuple[Tuple[float, float, float], Tuple[float, float, float]],  # baseline, follow-up (x, y, z)
                       tuple(tuple(ras_to_lps(position).tolist()) for position in positions))
        rois = []
        for volume, image, mask, center, role in zip(volumes, whole, masks, centers, ("baseline", "follow-up")):
            try:
                check_inside_scan(volume.grid, center)
                scan = image if image is not None else volume.image_around(roi_grid(center, p).corners_lps)
                rois.append(extract_roi(scan, center, p, mask))
            except ValueError as exc:
                raise ValueError(f"nodule '{label}' in the {role} volume: {exc}") from exc
        samples.append(Sample("scene", label, rois[0], rois[1], list(encoded), None, centers))
    return samples


def remove_table(scene, table) -> None:
    """A results table and every output of its run."""
    _remove_outputs(scene, table)
    _remove_nodes(scene, [table])


def _remove_outputs(scene, table) -> None:
    """The previous run's attention volumes, segmentations and plot, with their display, storage and subject
    hierarchy items."""
    old = [table.GetNthNodeReference(role, i) for role in (ROLE, MEASURE_ROLE)
           for i in range(table.GetNumberOfNodeReferences(role))]
    table.RemoveNodeReferenceIDs(ROLE)
    table.RemoveNodeReferenceIDs(MEASURE_ROLE)
    _remove_nodes(scene, old)


def _remove_nodes(scene, nodes) -> None:
    """`nodes` with their display, storage and subject hierarchy items."""
    tree = scene.GetFirstNodeByClass("vtkMRMLSubjectHierarchyNode")
    for node in nodes:
        if node is None:
            continue
        helpers = ([node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())]
                   if node.IsA("vtkMRMLDisplayableNode") else [])
        helpers.append(node.GetStorageNode() if node.IsA("vtkMRMLStorableNode") else None)
        for helper in helpers:
            if helper is not None:
                scene.RemoveNode(helper)
        item = tree.GetItemByDataNode(node) if tree is not None else 0
        if item:
            tree.RemoveItem(item, False, False)  # the item only: its node goes next, with the item's cache kept right
        scene.RemoveNode(node)


def _attention_colors(scene):
    colors = scene.GetFirstNodeByName(COLOR_NAME)
    if colors is None:
        colors = add_output_node(scene, "vtkMRMLColorTableNode", COLOR_NAME)
        colors.SetTypeToUser()
        colors.SetNumberOfColors(len(LEVELS) + 1)
        colors.SetColor(0, "background", 0.0, 0.0, 0.0, 0.0)
        for label, _, name, (r, g, b, a) in LEVELS:
            colors.SetColor(label, name, r / 255.0, g / 255.0, b / 255.0, a / 255.0)
    return colors


class _Hierarchy:
    """Places outputs in the subject hierarchy under the study of the volume they belong to.

    Only where the scene has a hierarchy and the volume sits in a study (as after DICOM import);
    otherwise outputs stay where Slicer put them.
    """

    def __init__(self, scene):
        self.tree = scene.GetFirstNodeByClass("vtkMRMLSubjectHierarchyNode")

    def place(self, node, volume, folder: Optional[str] = None) -> None:
        study = self._study_of(volume)
        if not study:
            return
        parent = study
        if folder:
            parent = self.tree.GetItemChildWithName(study, folder) or self.tree.CreateFolderItem(study, folder)
        item = self.tree.GetItemByDataNode(node)
        if item:
            self.tree.SetItemParent(item, parent)
        else:
            self.tree.CreateItem(parent, node)

    def _study_of(self, volume) -> int:
        if self.tree is None:
            return 0
        return hierarchy_ancestor(self.tree, self.tree.GetItemByDataNode(volume),
                                  slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMLevelStudy())
