"""The evaluation figure (plots.py) and the report writer; matplotlib stays out of the prediction core."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from CSFNetLib.evaluation import EvaluationReport, metric_rows, write_report
from CSFNetLib.metrics import roc_auc

ROOT = Path(__file__).resolve().parents[1]


def report_of(labels, scores, resamples=50) -> EvaluationReport:
    """A report built by evaluation's own steps from given scores (one nodule per patient)."""
    labels = np.asarray(labels)
    scores = {name: np.asarray(values, dtype=float) for name, values in scores.items()}
    keys = [(f"P{i}", "1") for i in range(len(labels))]
    rows = metric_rows(labels, scores, groups=[pid for pid, _ in keys], networks={"CSF-net", "broken"},
                       resamples=resamples)
    return EvaluationReport(len(keys), len(keys), int(labels.sum()), rows, [], keys, labels, scores)


@pytest.fixture(scope="module")
def report():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 60)
    network = np.clip(0.25 + 0.5 * labels + rng.normal(0, 0.2, 60), 0, 1)
    brock = np.clip(0.3 * rng.random(60) + 0.1 * labels, 0, 1)
    broken = network.copy()
    broken[3] = np.nan  # a network that gave no probability for a nodule: no curve, no legend entry
    return report_of(labels, {"CSF-net": network, "broken": broken, "Brock (PanCan)": brock})


def test_prediction_and_evaluation_import_without_matplotlib():
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'CSFNetModule')!r}); sys.modules['matplotlib'] = None\n"
            "import CSFNetLib.inference, CSFNetLib.prediction, CSFNetLib.evaluation\n"
            "try:\n    import CSFNetLib.plots\nexcept ImportError:\n    pass\n"
            "else:\n    sys.exit('matplotlib was not blocked')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_legend_gives_each_computed_row_its_auc_and_interval(report):
    from matplotlib.text import Text

    from CSFNetLib.plots import evaluation_figure

    figure = evaluation_figure(report, title="hand-made scores")
    roc_legend = figure.axes[2].get_legend()
    texts = [t.get_text() for t in roc_legend.get_texts()]
    assert "not_computed" in report.rows["broken"] and not any(t.startswith("broken") for t in texts)
    for name in ("CSF-net", "Brock (PanCan)"):
        low, high = report.rows[name]["ci95"]["auc"]
        expected = f"{name}  AUC {roc_auc(report.labels, report.scores[name]):.3f} [{low:.2f}, {high:.2f}]"
        assert expected in texts
    title = "hand-made scores\n60 nodules of 60 patients ("
    assert any(t.get_text().startswith(title) for t in figure.findobj(Text))


def test_growth_rows_are_roc_curves_but_not_calibration_curves():
    from CSFNetLib.baselines import GROWTH_ROWS, LUNG_RADS
    from CSFNetLib.plots import evaluation_figure

    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1], 20)
    growth = {row: 2.0 * labels + rng.normal(0, 1, 40) for row in GROWTH_ROWS}  # not probabilities
    growth[LUNG_RADS] = np.round(np.clip(growth[LUNG_RADS] + 1, 0, 4))
    scores = {"CSF-net": np.clip(0.3 + 0.4 * labels + rng.normal(0, 0.2, 40), 0, 1), **growth}
    keys = [(f"P{i}", "1") for i in range(40)]
    rows = metric_rows(labels, scores, groups=[pid for pid, _ in keys], networks={"CSF-net"},
                       positive={row: values > 1 for row, values in growth.items()}, resamples=10)
    figure = evaluation_figure(EvaluationReport(40, 40, 20, rows, [], keys, labels, scores))
    roc, calibration = ([t.get_text() for t in axes.get_legend().get_texts()] for axes in figure.axes[2:])
    for row in GROWTH_ROWS:
        assert any(t.startswith(f"{row}  AUC {rows[row]['auc']:.3f}") for t in roc) and row not in calibration
    assert "CSF-net" in calibration
    styles = {line.get_label().split("  ")[0]: line.get_linestyle() for line in figure.axes[0].get_lines()}
    assert {styles[row] for row in GROWTH_ROWS} == {"-."} and styles["CSF-net"] == "-"


def test_the_png_has_the_figures_size(report, tmp_path):
    from CSFNetLib.plots import evaluation_figure, write_evaluation_figure

    path = write_evaluation_figure(report, tmp_path / "roc.png")
    figure = evaluation_figure(report)
    width, height = (figure.get_size_inches() * figure.dpi).round()
    picture = sitk.ReadImage(str(path))
    assert picture.GetSize() == (int(width), int(height))
    assert picture.GetNumberOfComponentsPerPixel() == 3  # RGB: the figure is opaque


def test_the_roc_panel_draws_tied_scores_as_the_diagonal_the_auc_counts():
    from matplotlib.colors import to_rgb

    from CSFNetLib.plots import evaluation_figure

    labels, scores = [1, 0, 1, 0, 1, 0], [0.5] * 6  # one tie group of both classes: AUC 0.5
    tied = report_of(labels, {"CSF-net": scores}, resamples=10)
    assert tied.rows["CSF-net"]["auc"] == 0.5
    figure = evaluation_figure(tied)
    figure.canvas.draw()
    roc_axes = figure.axes[0]
    x, y = roc_axes.transData.transform((0.5, 0.5))  # display pixels, origin at the bottom left
    pixels = np.asarray(figure.canvas.buffer_rgba())
    colour = pixels[pixels.shape[0] - int(round(y)), int(round(x)), :3] / 255
    curve = [line for line in roc_axes.get_lines() if line.get_label().startswith("CSF-net")][0]
    assert np.allclose(colour, to_rgb(curve.get_color()), atol=0.05)  # the middle of the diagonal, not a corner


def test_write_report_writes_metrics_predictions_and_the_figure(report, tmp_path):
    write_report(report, tmp_path / "out", title="hand-made scores")
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics == json.loads(json.dumps(report.to_dict()))
    assert list(metrics) == ["nodules", "patients", "malignant", "rows", "comparison", "resolved", "skipped_cases"]
    with open(tmp_path / "out" / "predictions.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["pid"], r["nodule"], int(r["label"])) for r in rows] == [
        (*key, int(label)) for key, label in zip(report.keys, report.labels)]
    assert float(rows[5]["CSF-net"]) == pytest.approx(report.scores["CSF-net"][5], abs=1e-6)
    assert rows[3]["broken"] == "nan"
    assert (tmp_path / "out" / "roc.png").stat().st_size > 0
