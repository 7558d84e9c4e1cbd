"""The results table in the scene: its columns, the attention maps it references, reading it back.

Torch-free, so that the panel can list a loaded scene's results before torch is installed.
"""

from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple, Union

import vtk

if TYPE_CHECKING:
    from ..inference import Predictor

ROLE = "csfnet.attention"  # the table's references to its attention maps
MEASURE_ROLE = "csfnet.measurements"  # and to its segmentations and growth plot
ATTENTION_METHOD_ATTRIBUTE = "csfnet.attentionMethod"  # how the attention maps were made (options.ATTENTION_METHODS)
#: Each nodule's measurements (measurements.csv's names; volumes at both scans, the rest at the follow-up).
MEASURED_COLUMNS = ("volume_t0_mm3", "volume_t1_mm3", "diameter_mm", "type", "vdt_days", "growth_class", "lung_rads",
                    "lung_rads_reason", "measure_error")
COLUMNS = ("nodule", "p_malignant", "prediction", "threshold", "model", "model_version", "device", "seconds",
           "model_note", *MEASURED_COLUMNS)
NUMBER_COLUMNS = ("p_malignant", "threshold", "seconds", "volume_t0_mm3", "volume_t1_mm3", "diameter_mm", "vdt_days")


def table_rows(table) -> List[Dict[str, Union[str, float]]]:
    """The results table as one dict per nodule (numbers as floats)."""
    rows = []
    for row in range(table.GetNumberOfRows()):
        values: Dict[str, Union[str, float]] = {}
        for name in COLUMNS:
            column = table.GetTable().GetColumnByName(name)
            if column is None:  # a table from before the column existed
                values[name] = float("nan") if name in NUMBER_COLUMNS else ""
            else:
                values[name] = float(column.GetValue(row)) if name in NUMBER_COLUMNS else column.GetValue(row)
        rows.append(values)
    return rows


def table_nodules(table) -> List[str]:
    """The nodules of a results table, in its order; none when the table is not a CSF-net results table."""
    column = table.GetTable().GetColumnByName("nodule") if table is not None else None
    if not isinstance(column, vtk.vtkStringArray) or table.GetTable().GetColumnByName("p_malignant") is None:
        return []
    return [column.GetValue(row) for row in range(table.GetNumberOfRows())]


def growth_chart(table):
    """The plot of the nodules' volumes over time a run made with its measurements (None when it measured none)."""
    for i in range(table.GetNumberOfNodeReferences(MEASURE_ROLE)):
        node = table.GetNthNodeReference(MEASURE_ROLE, i)
        if node is not None and node.IsA("vtkMRMLPlotChartNode"):
            return node
    return None


def nodule_attention(table, nodule: str, timepoint: str = "T1") -> Tuple[object, object]:
    """(heat volume, label map) of one nodule at "T0" or "T1" among the table's attention nodes."""
    wanted = {attention_name(nodule, timepoint, "heat"): 0, attention_name(nodule, timepoint, "labels"): 1}
    found = [None, None]
    for i in range(table.GetNumberOfNodeReferences(ROLE)):
        node = table.GetNthNodeReference(ROLE, i)
        if node is not None and node.GetName() in wanted:
            found[wanted[node.GetName()]] = node
    if None in found:
        raise ValueError(f"table '{table.GetName()}' has no attention maps for nodule '{nodule}' at {timepoint}")
    return found[0], found[1]


def attention_name(nodule: str, timepoint: str, kind: str) -> str:
    """The node name of a nodule's attention `kind` ("heat" or "labels") at "T0" or "T1"."""
    return f"{nodule} {timepoint} attention {kind}"


def fill_table(table, rows: Sequence[Tuple[str, float]], predictor: "Predictor", seconds: float,
               measured: Optional[Sequence[Sequence[Dict[str, object]]]] = None) -> None:
    """The results table: one row per (nodule, p_malignant), with each nodule's measurements.csv rows (T0, T1)."""
    values: Dict[str, Sequence[object]] = {
        "nodule": [label for label, _ in rows],
        "p_malignant": [p for _, p in rows],
        "prediction": ["malignant" if p >= predictor.threshold else "benign" for _, p in rows],
        "threshold": [predictor.threshold] * len(rows),
        "model": [predictor.name] * len(rows),
        "model_version": [predictor.version] * len(rows),
        "device": [predictor.device_text] * len(rows),
        "seconds": [seconds] * len(rows),
        "model_note": [predictor.note] * len(rows),  # the demo weights say they are trained on phantoms
        **_measured_values(measured or [[{}, {}]] * len(rows)),
    }
    table.RemoveAllColumns()
    for name in COLUMNS:
        add_column(table, name, values[name], number=name in NUMBER_COLUMNS)
    table.Modified()


def add_column(table, name: str, values: Sequence[object], number: bool = True) -> None:
    """A column of numbers (or of text) appended to a vtkMRMLTableNode."""
    column = vtk.vtkDoubleArray() if number else vtk.vtkStringArray()
    column.SetName(name)
    for value in values:
        column.InsertNextValue(value)
    table.AddColumn(column)


def _measured_values(measured: Sequence[Sequence[Dict[str, object]]]) -> Dict[str, List[object]]:
    """The MEASURED_COLUMNS of each nodule from its measurements.csv rows; nan and "" where not measured."""
    def number(row: Dict[str, object], name: str) -> float:
        value = row.get(name, "")
        return float(value) if value not in ("", None) else float("nan")  # type: ignore[arg-type]

    baseline, followup = [rows[0] for rows in measured], [rows[-1] for rows in measured]
    return {
        "volume_t0_mm3": [number(row, "volume_mm3") for row in baseline],
        "volume_t1_mm3": [number(row, "volume_mm3") for row in followup],
        "diameter_mm": [number(row, "diameter_mm") for row in followup],
        "type": [str(row.get("type", "")) for row in followup],
        "vdt_days": [number(row, "vdt_days") for row in followup],
        "growth_class": [str(row.get("growth_class", "")) for row in followup],
        "lung_rads": [str(row.get("lung_rads", "")) for row in followup],
        "lung_rads_reason": [str(row.get("lung_rads_reason", "")) for row in followup],
        "measure_error": ["; ".join(str(row["error"]) for row in rows if row.get("error")) for rows in measured],
    }
