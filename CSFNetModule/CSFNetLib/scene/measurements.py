"""The nodules' measurements in the scene: a segmentation per scan (a segment per nodule) and a growth plot.

The numbers themselves go into the results table (`results_table`); the nodes made here are
referenced from it, so a rerun removes and remakes them as it does the attention maps.
"""

from typing import List, Optional, Sequence, Union

import numpy as np

from ..geometry import ras_to_lps
from ..measure.cohort import ScanMeasurement
from ..measure.segmentation import REACH_MM, NoduleMeasurement, measure_nodule
from ..pairing import NodulePair
from ..progress import Progress
from ..records import TIMEPOINTS
from .nodes import CTVolume, add_output_node, add_segment
from .results_table import add_column

SEGMENTATION_NAMES = ("CSF-net nodules (baseline)", "CSF-net nodules (follow-up)")
PLOT_NAME = "CSF-net nodule volumes"
#: Segment and plot colours, one per nodule in turn (Slicer's "Generic anatomy" first colours, roughly).
COLORS = ((0.90, 0.35, 0.25), (0.25, 0.60, 0.90), (0.35, 0.80, 0.35), (0.95, 0.75, 0.20), (0.70, 0.40, 0.85),
          (0.30, 0.80, 0.80))


def measure_nodules(volumes: Sequence[CTVolume], nodules: Sequence[NodulePair], interval_days: Optional[float],
                    report: Progress) -> List[List[ScanMeasurement]]:
    """Each nodule measured in each scan, cut from the part of the scan around its point; failures as reasons."""
    days = (0.0, interval_days) if interval_days is not None else (None, None)
    measured = []
    for i, (label, *positions) in enumerate(nodules):
        report(f"Nodule {label}: measuring it in both scans", 0.5 + 0.15 * i / len(nodules))
        scans = []
        for t, (volume, position) in enumerate(zip(volumes, positions)):
            centre = ras_to_lps(position)
            corners = centre + REACH_MM * np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
            try:
                result: Union[NoduleMeasurement, str] = measure_nodule(volume.image_around(corners), centre)
            except ValueError as exc:
                result = str(exc)
            scans.append(ScanMeasurement(TIMEPOINTS[t], days[t], result))
        measured.append(scans)
    return measured


def add_segmentations(scene, volume_nodes, nodules: Sequence[NodulePair],
                      measured: Sequence[Sequence[ScanMeasurement]]):
    """One segmentation node per scan, its geometry the scan's, with a segment per nodule measured there."""
    made = []
    for t, volume in enumerate(volume_nodes):
        segmentation = add_output_node(scene, "vtkMRMLSegmentationNode", SEGMENTATION_NAMES[t])
        segmentation.CreateDefaultDisplayNodes()
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        for i, (pair, scans) in enumerate(zip(nodules, measured)):
            result = scans[t].result
            if isinstance(result, NoduleMeasurement):
                add_segment(segmentation, result.segmentation.whole, result.segmentation.grid,
                            pair.label, COLORS[i % len(COLORS)])
        made.append(segmentation)
    return made


def add_growth_plot(scene, labels: Sequence[str], measured: Sequence[Sequence[ScanMeasurement]]):
    """A table of each nodule's volume at each scan and a chart of it, one line per nodule (x: days, or scan)."""
    days = [scan.days for scan in measured[0]]
    by_days = None not in days
    x_name = "days" if by_days else "scan"
    columns = {x_name: [float(d) if by_days else float(t) for t, d in enumerate(days)]}  # type: ignore[arg-type]
    for label, scans in zip(labels, measured):
        columns[f"nodule {label}"] = [scan.result.size.volume_mm3 if isinstance(scan.result, NoduleMeasurement)
                                           else float("nan") for scan in scans]
    table = add_output_node(scene, "vtkMRMLTableNode", PLOT_NAME)
    for name, values in columns.items():
        add_column(table, name, values)
    chart = add_output_node(scene, "vtkMRMLPlotChartNode", PLOT_NAME)
    chart.SetTitle("Nodule volume")
    chart.SetXAxisTitle("days since the baseline scan" if by_days else "scan (0: baseline, 1, 2, ...: follow-ups)")
    chart.SetYAxisTitle("volume (mm3)")
    made = [table, chart]
    for i, name in enumerate(list(columns)[1:]):
        series = add_output_node(scene, "vtkMRMLPlotSeriesNode", name)
        series.SetAndObserveTableNodeID(table.GetID())
        series.SetXColumnName(x_name)
        series.SetYColumnName(name)
        series.SetPlotType(series.PlotTypeScatter)
        series.SetColor(*COLORS[i % len(COLORS)])
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
        made.append(series)
    return made
