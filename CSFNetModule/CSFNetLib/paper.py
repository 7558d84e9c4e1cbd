"""The paper's results table (NLST-cmst, 443 cases, test split) and the table form it is printed in."""

from typing import Dict, Mapping, Sequence

from .metrics import METRICS

HEADERS = ("Methods", "Acc", "Prec", "F1 score", "AUC", "Rec")

#: Reported in "CSF-net: Cross-Modal Spatiotemporal Fusion Network for Pulmonary Nodule Malignancy
#: Predicting" (arXiv 2501.16400), Table 1.
REPORTED: Dict[str, Dict[str, float]] = {
    "SCANs": dict(accuracy=0.7865, precision=0.7667, f1=0.7077, auc=0.7725, recall=0.6571),
    "NAS-Lung": dict(accuracy=0.8539, precision=0.8235, f1=0.8116, auc=0.8910, recall=0.8000),
    "T-LSTM": dict(accuracy=0.7645, precision=0.7012, f1=0.6527, auc=0.7778, recall=0.6000),
    "DeepCAD": dict(accuracy=0.8590, precision=0.7879, f1=0.8254, auc=0.8990, recall=0.8667),
    "MFCN": dict(accuracy=0.7949, precision=0.7059, f1=0.7500, auc=0.8903, recall=0.8000),
    "RadFusion": dict(accuracy=0.7753, precision=0.8026, f1=0.6667, auc=0.7693, recall=0.6000),
    "CSF-Net": dict(accuracy=0.8974, precision=0.8235, f1=0.8750, auc=0.9389, recall=0.9333),
}


def format_table(rows: Mapping[str, Mapping[str, object]], metrics: Sequence[str] = METRICS) -> str:
    """A markdown table in the paper's column order; cells are numbers (4 decimals) or text."""

    def cell(value: object) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for method, values in rows.items():
        lines.append("| " + " | ".join([method, *(cell(values.get(m, "")) for m in metrics)]) + " |")
    return "\n".join(lines)
