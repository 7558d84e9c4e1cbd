import importlib.util
import json
from pathlib import Path

import pytest

from CSFNetLib.paper import REPORTED, format_table

ROOT = Path(__file__).resolve().parents[1]


def test_table_has_the_papers_columns_and_four_decimals():
    table = format_table({"CSF-Net": REPORTED["CSF-Net"], "ours": {"accuracy": 0.5, "auc": "n/a"}}).splitlines()
    assert table[0] == "| Methods | Acc | Prec | F1 score | AUC | Rec |"
    assert table[2] == "| CSF-Net | 0.8974 | 0.8235 | 0.8750 | 0.9389 | 0.9333 |"
    assert table[3] == "| ours | 0.5000 |  |  | n/a |  |"


@pytest.fixture
def main_module(tmp_path, monkeypatch):
    monkeypatch.setenv("CSFNET_CACHE", str(tmp_path))
    spec = importlib.util.spec_from_file_location("csfnet_main", ROOT / "main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "TEST_PATIENTS", 3)
    return module


def test_main_evaluates_the_shipped_weights_on_a_cached_test_cohort(main_module, tmp_path, capsys):
    assert main_module.main() == 0
    out = capsys.readouterr().out
    assert "not for clinical use" in out
    for row in ("CSF-net", "T1 image only", "T0+T1, no clinical", "Concat fusion", "Brock (PanCan)", "Mayo",
                "Volume growth (VDT)", "Diameter growth", "Lung-RADS"):
        assert f"| {row} |" in out
    cohort = tmp_path / f"synthetic-test-seed{main_module.TEST_SEED}-n3"
    assert (cohort / "cases.csv").exists()
    report = json.loads((tmp_path / "main-report" / "metrics.json").read_text())
    assert list(report) == ["nodules", "patients", "malignant", "rows", "comparison", "resolved", "skipped_cases"]
    assert set(report["rows"]) >= {"CSF-net", "Brock (PanCan)", "Volume growth (VDT)"}
    table_end = out.index("| Lung-RADS |")
    verdict = out.index("the best growth row", table_end)  # the paired comparison, in words, under the table
    assert verdict < out.index("For reference, as reported in the paper")
    assert f"{report['nodules']} nodules of {report['patients']} patients ({report['malignant']} malignant)" in out
    assert (tmp_path / "main-report" / "roc.png").stat().st_size > 0
    stamp = (cohort / "cases.csv").stat().st_mtime
    assert main_module.main() == 0  # second run reuses the cohort
    assert (cohort / "cases.csv").stat().st_mtime == stamp
