"""A new user's first mistakes with the files people really have: each gets a clear message, and the run goes on
where it can."""

import csv
import re

from CSFNetLib.cli import main
from CSFNetLib.cohort_csv import read_cohort


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _one_patient(cohort, tmp_path, clinical_changes=None):
    """cases.csv and clinical.csv of the cohort's first patient, image paths absolute; clinical values changed."""
    cases = _rows(cohort / "cases.csv")
    pid = cases[0]["pid"]
    cases = [dict(row, image=str((cohort / row["image"]).resolve())) for row in cases if row["pid"] == pid]
    clinical = [dict(row, **(clinical_changes or {})) for row in _rows(cohort / "clinical.csv") if row["pid"] == pid]
    for name, rows in (("cases.csv", cases), ("clinical.csv", clinical)):
        with open(tmp_path / name, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return tmp_path / "cases.csv", tmp_path / "clinical.csv", pid


def test_a_european_spreadsheets_csv_is_read_and_its_decimal_commas_named(synthetic_cohort, tmp_path):
    cases, _, pid = _one_patient(synthetic_cohort, tmp_path)
    rows = _rows(cases)
    rows[0]["x"] = rows[0]["x"].replace(".", ",") if "." in rows[0]["x"] else rows[0]["x"] + ",5"
    text = ";".join(rows[0]) + "\r\n" + "".join(";".join(row.values()) + "\r\n" for row in rows)
    european = tmp_path / "european.csv"
    european.write_bytes("\ufeff".encode() + text.encode("utf-8"))  # with the BOM such spreadsheets write
    cohort = read_cohort(european)
    assert [p.reason for p in cohort.problems] == [
        f"T0: coordinate x = '{rows[0]['x']}': use a decimal point ({rows[0]['x'].replace(',', '.')})"]
    assert len(cohort.cases) == len({row["nodule"] for row in rows}) - 1  # the other nodules are read
    assert all(case.pid == pid for case in cohort.cases)


def test_an_unreadable_clinical_value_is_one_warning_line_and_the_run_goes_on(synthetic_cohort, tmp_path, capsys):
    cases, clinical, pid = _one_patient(synthetic_cohort, tmp_path, {"age": "sixty"})
    out = tmp_path / "results.csv"
    code = main(["predict", "--cases", str(cases), "--clinical", str(clinical), "--out", str(out), "--no-measure",
                 "--device", "cpu"])
    warning_lines = [line for line in capsys.readouterr().err.splitlines() if "sixty" in line]
    assert code == 0 and all(row["p_malignant"] for row in _rows(out))
    assert len(warning_lines) == 1 and re.fullmatch(
        f"csfnet predict: warning: patient {pid}: clinical age = 'sixty' is none of the model's codes "
        r"\(55, 56, \.\.\., 7\d\); it counts as unknown", warning_lines[0])
