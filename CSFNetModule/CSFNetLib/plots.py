"""The evaluation figure (roc.png): (a) ROC curves with each row's AUC and 95 % interval, (b) calibration of
the rows that give a probability (the networks and clinical models; the growth rows rank, they do not predict).

matplotlib is imported here only (an object-oriented `Figure` on an Agg canvas: no pyplot, no global
backend state), so inference, prediction and evaluation load without it.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .baselines import CLINICAL_MODELS, GROWTH_ROWS
from .metrics import CalibrationBins, calibration_bins, roc_curve

if TYPE_CHECKING:
    from .evaluation import EvaluationReport

# Networks in strong colours (CSF-net first, red), clinical models dashed, growth rows dash-dotted; tab10 hues.
COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
FIGURE_SIZE = (11.0, 7.6)  # inches
DPI = 150
CALIBRATION_BINS = 10  # equal-width bins over [0, 1] ...
FEW_NODULES = 200  # ... unless fewer nodules than this: FEW_BINS bins of about equal counts
FEW_BINS = 5


def evaluation_figure(report: "EvaluationReport", *, title: Optional[str] = None) -> Figure:
    """The two panels for the rows of `report` that have metrics, in the report's order."""
    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    (roc_axes, calibration_axes), legend_row = figure.subplots(2, 2, gridspec_kw={"height_ratios": (5.0, 1.3)})
    names = report.computed()
    styles = {name: _style(i, name) for i, name in enumerate(names)}
    draw_roc(roc_axes, report, names, styles)
    draw_calibration(calibration_axes, report, [name for name in names if name not in GROWTH_ROWS], styles)
    for axes, panel in zip(legend_row, (roc_axes, calibration_axes)):  # each legend in the row under its panel
        axes.set_axis_off()
        axes.legend(*panel.get_legend_handles_labels(), loc="upper center", ncol=1 if panel is roc_axes else 2,
                    fontsize=10, frameon=False)
    heading = title or "Evaluation"
    figure.suptitle(f"{heading}\n{report.nodules} nodules of {report.patients} patients "
                    f"({report.malignant} malignant)", fontsize=13)
    return figure


def write_evaluation_figure(report: "EvaluationReport", path: Path, *, title: Optional[str] = None) -> Path:
    """`evaluation_figure` as an RGB PNG (the figure is opaque) of FIGURE_SIZE x DPI pixels."""
    from PIL import Image  # Pillow: a dependency of matplotlib

    canvas = FigureCanvasAgg(evaluation_figure(report, title=title))
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    Image.fromarray(np.ascontiguousarray(rgba[..., :3])).save(path, format="png", dpi=(DPI, DPI))
    return Path(path)


def legend_label(name: str, row: Dict) -> str:
    """'CSF-net  AUC 0.912 [0.85, 0.97]'."""
    low, high = row["ci95"]["auc"]
    return f"{name}  AUC {row['auc']:.3f} [{low:.2f}, {high:.2f}]"


def draw_roc(axes, report: "EvaluationReport", names: List[str], styles: Dict[str, Dict]) -> None:
    """ROC curves through one point per tie group, joined by straight lines: a group of tied scores of
    both classes is a diagonal segment, as the AUC counts it."""
    axes.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1.2, label="chance", zorder=1)
    for name in names:
        fpr, tpr = roc_curve(report.labels, report.scores[name])
        axes.plot(fpr, tpr, label=legend_label(name, report.rows[name]), **styles[name])
    _square(axes, "False-positive rate (1 - specificity)", "True-positive rate (sensitivity)")
    axes.set_title("(a) ROC, AUC with 95 % bootstrap interval", loc="left", fontsize=12)


def draw_calibration(axes, report: "EvaluationReport", names: List[str], styles: Dict[str, Dict]) -> None:
    """Observed fraction malignant against mean predicted probability per bin, empty bins left out;
    with equal-width bins a shaded disc's area shows the bin's nodule count."""
    axes.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1.2, label="perfect calibration", zorder=1)
    quantile = len(report.labels) < FEW_NODULES
    count = FEW_BINS if quantile else CALIBRATION_BINS
    for name in names:
        x, y, sizes = _occupied(calibration_bins(report.labels, report.scores[name], count, quantile=quantile))
        style = dict(color=styles[name]["color"], zorder=styles[name]["zorder"])
        axes.plot(x, y, linestyle=styles[name]["linestyle"], linewidth=1.4, marker="o", markersize=5, label=name,
                  **style)
        if not quantile:
            axes.scatter(x, y, s=1500 * sizes / len(report.labels), alpha=0.2, linewidths=0, **style)
    _square(axes, "Mean predicted probability", "Observed fraction malignant")
    if quantile:
        how = f"{count} bins of about {len(report.labels) // count} nodules"
    else:
        how = f"{count} equal-width bins"
        axes.text(0.98, 0.03, "shaded area: nodules in the bin", transform=axes.transAxes, ha="right",
                  va="bottom", fontsize=9, color="0.35")
    axes.set_title(f"(b) Calibration, {how}", loc="left", fontsize=12)


def _occupied(bins: CalibrationBins) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    kept = bins.counts > 0
    return bins.predicted[kept], bins.observed[kept], bins.counts[kept].astype(float)


def _style(index: int, name: str) -> Dict:
    linestyle = "--" if name in CLINICAL_MODELS else "-." if name in GROWTH_ROWS else "-"
    return {"color": COLOURS[index % len(COLOURS)], "linestyle": linestyle,
            "linewidth": 2.2 if linestyle == "-" else 1.8, "zorder": 20 - index}  # the first row (CSF-net) on top


def _square(axes, xlabel: str, ylabel: str) -> None:
    axes.set_xlim(-0.01, 1.01)
    axes.set_ylim(-0.01, 1.01)
    axes.set_aspect("equal")
    axes.set_xlabel(xlabel, fontsize=11)
    axes.set_ylabel(ylabel, fontsize=11)
    axes.tick_params(labelsize=10)
    axes.grid(True, color="0.92", linewidth=0.8)
    axes.set_axisbelow(True)
