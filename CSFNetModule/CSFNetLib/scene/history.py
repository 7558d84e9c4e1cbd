"""A patient's whole history in the scene: CSF-net on each consecutive pair of scans, the volumes over all.

`predict_history` takes the scans in time order (T0, T1, T2, ...) with a fiducial list per scan, the same
nodule labelled alike in every list (`match_history` places them so from one click). Each follow-up is
assessed against the scan before it, as `predict_scene` does, into its own results table named after the
pair ("CSF-net results T1-T2"), for the nodules placed in both scans of the pair: one that is not present
at a scan (a skipped point, or none) is left out of the pairs that include that scan and shown as absent in
the history. A table and chart of each nodule's volume at every scan show the history. Every pair is
computed before anything is written, so a failed run leaves the scene as it was; a rerun refills the same
tables. `patient_scans` finds the scans of a patient's studies (as loaded from DICOM) in date order.
"""

import dataclasses
import datetime
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import slicer
import vtk

from ..inference import PredictorCache
from ..measure.cohort import ScanMeasurement
from ..options import DEFAULT_ATTENTION_METHOD, AttentionMethod
from ..progress import Progress
from .logic import TABLE_NAME, SceneResult, compute_scene, remove_table, write_scene
from .matching import PlacedMatch, Registrations, match_points
from .measurements import add_growth_plot
from .nodes import add_output_node, hierarchy_ancestor, is_ct_volume_node, placed_labels
from .results_table import MEASURE_ROLE

SCANS_ATTRIBUTE = "csfnet.scans"  # on each pair's table: the pair, e.g. "T1-T2"
NODULES_ROLE = "csfnet.nodules"  # a later scan's reference to its nodule list (saved with the scene)


def scan_nodules(scene, volume, create: bool = True):
    """The nodule list of a history's later scan: the one `volume` refers to, else (with `create`) a new one
    named after it, else None."""
    fiducials = volume.GetNodeReference(NODULES_ROLE)
    if fiducials is None and create:
        fiducials = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", f"{volume.GetName()} nodules")
        volume.SetNodeReferenceID(NODULES_ROLE, fiducials.GetID())
    return fiducials


def patient_scans(scene, volume) -> List[Tuple[object, Optional[datetime.date]]]:
    """The CT volumes of the studies of `volume`'s patient in the subject hierarchy (as the DICOM module loads
    them), one per study (`volume` for its own, else the study's first), in study-date order, undated studies
    last: [(volume node, study date or None)]. Only `volume` when it lies under no patient."""
    tree = scene.GetSubjectHierarchyNode()
    constants = slicer.vtkMRMLSubjectHierarchyConstants
    patient = hierarchy_ancestor(tree, tree.GetItemByDataNode(volume), constants.GetDICOMLevelPatient())
    if not patient:
        return [(volume, None)]
    items = vtk.vtkIdList()
    tree.GetItemChildren(patient, items, True)
    by_study: Dict[int, object] = {}
    for i in range(items.GetNumberOfIds()):
        node = tree.GetItemDataNode(items.GetId(i))
        if is_ct_volume_node(node):
            study = hierarchy_ancestor(tree, items.GetId(i), constants.GetDICOMLevelStudy())
            if node is volume or study not in by_study:
                by_study[study] = node
    dated = [(node, study_date(scene, node)) for node in by_study.values()]
    return sorted(dated, key=lambda scan: (scan[1] is None, scan[1] or datetime.date.min))


def study_date(scene, volume) -> Optional[datetime.date]:
    """The DICOM study date of the study `volume` lies in (subject hierarchy); None when there is none."""
    tree = scene.GetSubjectHierarchyNode()
    constants = slicer.vtkMRMLSubjectHierarchyConstants
    study = hierarchy_ancestor(tree, tree.GetItemByDataNode(volume), constants.GetDICOMLevelStudy())
    text = tree.GetItemAttribute(study, constants.GetDICOMStudyDateAttributeName()) if study else ""
    try:
        return datetime.datetime.strptime(text.strip(), "%Y%m%d").date()  # DICOM DA
    except ValueError:
        return None


def days_since_first(dates: Sequence[Optional[datetime.date]]) -> Optional[List[float]]:
    """Each scan's days since the first, when every scan has a date; else None."""
    if any(date is None for date in dates):
        return None
    return [float((date - dates[0]).days) for date in dates]  # type: ignore[operator]


def typed_days(interval_days: Optional[float], later_days: str, later_scans: int) -> Optional[List[float]]:
    """Every scan's days since the baseline as typed in the panel: the first interval (None or 0: not given)
    and the later scans' days ("730, 1095"); None when neither is given. A partial or unreadable entry is
    refused, saying what is wrong."""
    texts = [text.strip() for text in later_days.split(",")] if later_days.strip() else []
    if not interval_days and not texts:
        return None
    if not interval_days or len(texts) != later_scans:
        raise ValueError(f"give the days between the first two scans and each later scan's days since the "
                         f"baseline ({later_scans} value(s), e.g. '730, 1095'), or neither; got "
                         f"{interval_days or 'no interval'} and '{later_days}'")
    try:
        later = [float(text) for text in texts]
    except ValueError:
        raise ValueError(f"the later scans' days must be numbers separated by commas, got '{later_days}'") from None
    return [0.0, float(interval_days), *later]


def match_history(volumes: Sequence, fiducials: Sequence,
                  registrations: Registrations) -> List[Tuple[int, PlacedMatch]]:
    """Each nodule pointed at in some scans placed in the others (`match_points`): forward, each scan from
    the one before it, then backward; [(the scan's index, what was placed there)]. A nodule not present at a
    scan is a skipped point there and is followed no further that way."""
    placed = []
    order = [(k, k + 1) for k in range(len(volumes) - 1)] + [(k, k - 1) for k in range(len(volumes) - 1, 0, -1)]
    for source, target in order:
        placed += [(target, match) for match in match_points(volumes[source], fiducials[source], volumes[target],
                                                             fiducials[target], registrations)]
    return placed


def history_table_name(scans: str) -> str:
    return f"{TABLE_NAME} {scans}"


def predict_history(scene, volumes: Sequence, fiducials: Sequence, *, days: Optional[Sequence[float]] = None,
                    clinical: Optional[Mapping[str, object]] = None, checkpoint: Optional[str] = None,
                    device: str = "auto", attention: bool = True,
                    attention_method: AttentionMethod = DEFAULT_ATTENTION_METHOD, measure: bool = True,
                    progress: Optional[Progress] = None, predictors: Optional[PredictorCache] = None) -> List:
    """One results table per follow-up (against the scan before it) and the volume history; the tables.

    `volumes` and `fiducials` are the scans and their nodule lists in time order; `days` (optional) the
    days of each scan since the first, for the VDT and the history's time axis. The other options are
    `predict_scene`'s; points pair by label, and a pair of scans sharing no placed nodule has no table.
    """
    if len(volumes) < 2 or len(volumes) != len(fiducials):
        raise ValueError(f"a history needs two scans or more, each with its nodule list; got {len(volumes)} "
                         f"volume(s) and {len(fiducials)} list(s)")
    if days is not None and (len(days) != len(volumes) or any(b <= a for a, b in zip(days, days[1:]))):
        raise ValueError(f"days must give each scan's day, increasing from scan to scan; got {list(days)}")
    cache = predictors or PredictorCache()
    placed = [placed_labels(nodules) for nodules in fiducials]
    results: Dict[int, SceneResult] = {}
    for k in range(len(volumes) - 1):
        shared = [label for label in placed[k] if label in placed[k + 1]]
        if not shared:
            if placed[k] and placed[k + 1]:
                raise ValueError(f"scans T{k} and T{k + 1} ('{volumes[k].GetName()}', '{volumes[k + 1].GetName()}') "
                                 "share no nodule label: give each nodule the same label in every list (finding "
                                 "the nodules in the other scans does)")
            continue  # every nodule absent from one of the two scans: nothing to assess
        results[k] = compute_scene(volumes[k], volumes[k + 1], fiducials[k], fiducials[k + 1], clinical=clinical,
                                   checkpoint=checkpoint, device=device, attention=attention,
                                   attention_method=attention_method, pair_by="label", same_position=False,
                                   measure=measure,
                                   interval_days=None if days is None else days[k + 1] - days[k],
                                   progress=progress, predictors=cache, labels=shared)
    if not results:
        raise ValueError("no nodule is placed in two consecutive scans: nothing to assess")
    tables = []
    for k in range(len(volumes) - 1):
        scans = f"T{k}-T{k + 1}"
        table = scene.GetFirstNodeByName(history_table_name(scans))
        if k not in results:
            if table is not None:  # a previous run's, no longer true
                remove_table(scene, table)
            continue
        table = table or add_output_node(scene, "vtkMRMLTableNode", history_table_name(scans))
        write_scene(scene, results[k], baseline_volume=volumes[k], followup_volume=volumes[k + 1], table=table)
        table.SetAttribute(SCANS_ATTRIBUTE, scans)
        tables.append(table)
    if measure:
        for node in _history_plot(scene, results, len(volumes), days):
            tables[-1].AddNodeReferenceID(MEASURE_ROLE, node.GetID())  # a rerun removes it with the last table's
    return tables


def _history_plot(scene, results: Mapping[int, SceneResult], scans: int, days: Optional[Sequence[float]]):
    """Each nodule's volume at every scan (its pairs joined by label; absent where a scan lacks it)."""
    labels = list(dict.fromkeys(pair.label for result in results.values() for pair in result.nodules))
    at: Dict[str, List[Optional[ScanMeasurement]]] = {label: [None] * scans for label in labels}
    for k, result in results.items():
        assert result.measured is not None  # checked by the caller
        for pair, measured in zip(result.nodules, result.measured):
            at[pair.label][k], at[pair.label][k + 1] = measured[0], measured[1]
    history = []
    for label in labels:
        history.append([dataclasses.replace(scan, timepoint=f"T{k}", days=None if days is None else days[k])
                        if scan is not None else ScanMeasurement(f"T{k}", None if days is None else days[k],
                                                                 "not in this scan")
                        for k, scan in enumerate(at[label])])
    return add_growth_plot(scene, labels, history)
