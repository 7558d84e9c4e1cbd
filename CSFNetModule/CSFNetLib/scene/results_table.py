"""The results table in the scene: its columns, the attention maps it references, reading it back.

Torch-free, so that the panel can list a loaded scene's results before torch is installed.
"""

from typing import TYPE_CHECKING, Dict, List, Sequence, Tuple, Union

import vtk

if TYPE_CHECKING:
    from ..inference import Predictor

ROLE = "csfnet.attention"
COLUMNS = ("nodule", "p_malignant", "prediction", "threshold", "model", "model_version", "device", "seconds",
           "model_note")
NUMBER_COLUMNS = ("p_malignant", "threshold", "seconds")


def table_rows(table) -> List[Dict[str, Union[str, float]]]:
    """The results table as one dict per nodule (numbers as floats)."""
    rows = []
    for row in range(table.GetNumberOfRows()):
        values: Dict[str, Union[str, float]] = {}
        for name in COLUMNS:
            column = table.GetTable().GetColumnByName(name)
            values[name] = float(column.GetValue(row)) if name in NUMBER_COLUMNS else column.GetValue(row)
        rows.append(values)
    return rows


def table_nodules(table) -> List[str]:
    """The nodules of a results table, in its order; none when the table is not a CSF-net results table."""
    column = table.GetTable().GetColumnByName("nodule") if table is not None else None
    if not isinstance(column, vtk.vtkStringArray) or table.GetTable().GetColumnByName("p_malignant") is None:
        return []
    return [column.GetValue(row) for row in range(table.GetNumberOfRows())]


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


def fill_table(table, rows: Sequence[Tuple[str, float]], predictor: "Predictor", seconds: float) -> None:
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
    }
    table.RemoveAllColumns()
    for name in COLUMNS:
        column = vtk.vtkDoubleArray() if name in NUMBER_COLUMNS else vtk.vtkStringArray()
        column.SetName(name)
        for value in values[name]:
            column.InsertNextValue(value)
        table.AddColumn(column)
    table.Modified()
