"""A patient's whole history in the scene: CSF-net on each consecutive pair of scans, the volumes over all.

`predict_history` takes the scans in time order (T0, T1, T2, ...) with a fiducial list per scan, the same
nodule labelled alike in every list ("Find the nodules in the other scan" places them so). Each
follow-up is assessed against the scan before it, as `predict_scene` does, into its own results table
named after the pair ("CSF-net results T1-T2"); a table and chart of each nodule's volume at every scan
show the history. Every pair is computed before anything is written, so a failed run leaves the scene as
it was; a rerun refills the same tables.
"""

import dataclasses
from typing import Dict, List, Mapping, Optional, Sequence

from ..inference import PredictorCache
from ..measure.cohort import ScanMeasurement
from ..progress import Progress
from .logic import TABLE_NAME, SceneResult, compute_scene, write_scene
from .measurements import add_growth_plot
from .nodes import add_output_node
from .results_table import MEASURE_ROLE

SCANS_ATTRIBUTE = "csfnet.scans"  # on each pair's table: the pair, e.g. "T1-T2"


def history_table_name(scans: str) -> str:
    return f"{TABLE_NAME} {scans}"


def predict_history(scene, volumes: Sequence, fiducials: Sequence, *, days: Optional[Sequence[float]] = None,
                    clinical: Optional[Mapping[str, object]] = None, checkpoint: Optional[str] = None,
                    device: str = "auto", attention: bool = True, measure: bool = True,
                    progress: Optional[Progress] = None, predictors: Optional[PredictorCache] = None) -> List:
    """One results table per follow-up (against the scan before it) and the volume history; the tables.

    `volumes` and `fiducials` are the scans and their nodule lists in time order; `days` (optional) the
    days of each scan since the first, for the VDT and the history's time axis. The other options are
    `predict_scene`'s; points pair by label.
    """
    if len(volumes) < 2 or len(volumes) != len(fiducials):
        raise ValueError(f"a history needs two scans or more, each with its nodule list; got {len(volumes)} "
                         f"volume(s) and {len(fiducials)} list(s)")
    if days is not None and (len(days) != len(volumes) or any(b <= a for a, b in zip(days, days[1:]))):
        raise ValueError(f"days must give each scan's day, increasing from scan to scan; got {list(days)}")
    cache = predictors or PredictorCache()
    results = [compute_scene(volumes[k], volumes[k + 1], fiducials[k], fiducials[k + 1], clinical=clinical,
                             checkpoint=checkpoint, device=device, attention=attention, pair_by="label",
                             same_position=False, measure=measure,
                             interval_days=None if days is None else days[k + 1] - days[k], progress=progress,
                             predictors=cache) for k in range(len(volumes) - 1)]
    tables = []
    for k, result in enumerate(results):
        scans = f"T{k}-T{k + 1}"
        name = history_table_name(scans)
        table = scene.GetFirstNodeByName(name) or add_output_node(scene, "vtkMRMLTableNode", name)
        write_scene(scene, result, baseline_volume=volumes[k], followup_volume=volumes[k + 1], table=table)
        table.SetAttribute(SCANS_ATTRIBUTE, scans)
        tables.append(table)
    if measure:
        for node in _history_plot(scene, results, days):
            tables[-1].AddNodeReferenceID(MEASURE_ROLE, node.GetID())  # a rerun removes it with the last table's
    return tables


def _history_plot(scene, results: Sequence[SceneResult], days: Optional[Sequence[float]]):
    """Each nodule's volume at every scan (its pairs joined by label; nan where a scan lacks it)."""
    labels = list(dict.fromkeys(pair.label for result in results for pair in result.nodules))
    scans = len(results) + 1
    at: Dict[str, List[Optional[ScanMeasurement]]] = {label: [None] * scans for label in labels}
    for k, result in enumerate(results):
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
