"""A new user's first mistakes with the files people really have: each gets a clear message, and the run goes on
where it can."""

import csv
import re

import numpy as np
import pytest
import SimpleITK as sitk

from CSFNetLib.cli import main
from CSFNetLib.cohort_csv import read_cohort
from CSFNetLib.preprocessing import check_inside_scan


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


def _moved_scan(cohort, tmp_path, shift=(250.0, 250.0, 0.0)):
    """A scan of the cohort and a nodule point in it, both moved `shift` mm (a scan not centred on the origin,
    so that a point read in the wrong system falls outside it)."""
    row = _rows(cohort / "cases.csv")[0]
    image = sitk.ReadImage(str(cohort / row["image"]))
    image.SetOrigin(tuple(o + s for o, s in zip(image.GetOrigin(), shift)))
    point = np.array([float(row[axis]) for axis in "xyz"]) + shift
    return image, point


def test_a_point_given_in_ras_or_as_voxel_indices_is_named_as_such(synthetic_cohort, tmp_path):
    image, point = _moved_scan(synthetic_cohort, tmp_path)
    check_inside_scan(image, point)  # the right point goes through
    ras = point * [-1, -1, 1]
    with pytest.raises(ValueError, match=r"lies outside the scan .*; it looks like RAS coordinates \(as 3D Slicer "
                                         r"shows them\): negate x and y for LPS \(.* falls in the (lungs|scan)\)"):
        check_inside_scan(image, ras)
    voxel = np.array(image.TransformPhysicalPointToContinuousIndex(tuple(point)))
    with pytest.raises(ValueError, match=r"it looks like voxel indices \(i, j, k\): give the point in millimetres"):
        check_inside_scan(image, voxel)
    with pytest.raises(ValueError, match=r"lies outside the scan \(voxel index \([^)]*\) of size \([^)]*\)\)$"):
        check_inside_scan(image, point + [0, 0, 900])  # outside, and no other reading falls in the lungs


def _write_cases(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_the_same_image_for_both_scans_is_refused_and_the_same_nodule_twice_is_warned_of(synthetic_cohort, tmp_path):
    cases, _, pid = _one_patient(synthetic_cohort, tmp_path)
    rows = _rows(cases)
    same_image = [dict(row, image=rows[0]["image"]) if row["nodule"] == rows[0]["nodule"] else row for row in rows]
    cohort = read_cohort(_write_cases(tmp_path / "same-image.csv", same_image))
    assert [p.reason for p in cohort.problems] == [
        f"T0 (line 2) and T1 (line 3) name the same image {rows[0]['image']}: each scan of the history must be its "
        "own file"]
    twice = rows + [dict(row, nodule="9") for row in rows if row["nodule"] == rows[0]["nodule"]]
    with pytest.warns(UserWarning, match=f"patient {pid}: nodules {rows[0]['nodule']} \\(line 2\\) and 9 \\(line "
                                         r"\d+\) are at the same point of .*: the same nodule twice\?"):
        cohort = read_cohort(_write_cases(tmp_path / "twice.csv", twice))
    assert len(cohort.cases) == len({row["nodule"] for row in twice})  # still predicted: only a warning
