"""A new user's first mistakes with the files people really have: each gets a clear message, and the run goes on
where it can."""

import csv
import re

import numpy as np
import pytest
import SimpleITK as sitk

from CSFNetLib.cli import main
from CSFNetLib.cohort_csv import read_cohort
from CSFNetLib.images import read_image
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


def test_the_same_image_for_both_scans_and_the_same_nodule_twice_are_warned_of(synthetic_cohort, tmp_path):
    cases, _, pid = _one_patient(synthetic_cohort, tmp_path)
    rows = _rows(cases)
    same_image = [dict(row, image=rows[0]["image"]) if row["nodule"] == rows[0]["nodule"] else row for row in rows]
    nodule = rows[0]["nodule"]
    with pytest.warns(UserWarning, match=f"patient {pid} nodule {nodule}: T0 \\(line 2\\) and T1 \\(line 3\\) "
                                         "name the same image .*: no change between the scans can be seen"):
        read_cohort(_write_cases(tmp_path / "same-image.csv", same_image))
    twice = rows + [dict(row, nodule="9") for row in rows if row["nodule"] == rows[0]["nodule"]]
    with pytest.warns(UserWarning, match=f"patient {pid}: nodules {rows[0]['nodule']} \\(line 2\\) and 9 \\(line "
                                         r"\d+\) are at the same point of .*: the same nodule twice\?"):
        cohort = read_cohort(_write_cases(tmp_path / "twice.csv", twice))
    assert len(cohort.cases) == len({row["nodule"] for row in twice})  # still predicted: only a warning


def test_a_blank_scan_is_refused_by_name(synthetic_cohort, tmp_path):
    cases, _, _ = _one_patient(synthetic_cohort, tmp_path)
    rows = _rows(cases)
    blank = sitk.Image(sitk.ReadImage(rows[0]["image"]).GetSize(), sitk.sitkInt16) - 1000
    sitk.WriteImage(blank, str(tmp_path / "blank.nrrd"))
    rows[0]["image"] = str(tmp_path / "blank.nrrd")
    out = tmp_path / "results.csv"
    assert main(["predict", "--cases", str(_write_cases(cases, rows)), "--out", str(out), "--no-measure"]) == 1
    errors = [row["error"] for row in _rows(out) if row["nodule"] == rows[0]["nodule"]]
    assert len(errors) == 1 and errors[0].endswith(f"T0: {tmp_path / 'blank.nrrd'} is blank: every voxel is -1000 HU, "
                                                   "not a CT scan")


@pytest.mark.parametrize("arguments, message", [
    (["predict", "--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
    (["evaluate", "--resamples", "0"], "argument --resamples: must be at least 1, got 0"),
    (["predict", "--resume", "--overwrite"], "--resume and --overwrite contradict each other"),
    (["predict", "--out", "{cases}", "--overwrite"], "is one of the input files: choose another name for the results"),
    (["predict", "--checkpoint", "{folder}"], ": a folder, not a checkpoint file (name the .pt file in it)"),
])
def test_options_a_new_user_gets_wrong_are_refused_before_any_work(tmp_path, capsys, arguments, message):
    cases = tmp_path / "cases.csv"
    cases.write_text("pid,nodule,timepoint,image,x,y,z\n")
    (tmp_path / "models").mkdir()
    arguments = [a.format(cases=cases, folder=tmp_path / "models") for a in arguments]
    if "--out" not in arguments and arguments[0] == "predict":
        arguments += ["--out", str(tmp_path / "results.csv")]
    try:
        code = main([arguments[0], "--cases", str(cases), *arguments[1:]])
    except SystemExit as exit:  # argparse refuses an option's value itself
        code = exit.code
    assert code == 2 and message in capsys.readouterr().err
    assert cases.read_text() == "pid,nodule,timepoint,image,x,y,z\n" and not (tmp_path / "results.csv").exists()


def test_evaluate_without_both_classes_is_refused_before_any_network_runs(synthetic_cohort, tmp_path, capsys):
    cases, _, _ = _one_patient(synthetic_cohort, tmp_path)
    rows = _rows(cases)
    for label, found in (("0", "every labelled nodule is benign"), ("", "no nodule has a label (0 or 1)")):
        _write_cases(cases, [dict(row, label=label) for row in rows])
        assert main(["evaluate", "--cases", str(cases)]) == 2
        assert f"{found}; evaluation needs both benign (0) and malignant (1) nodules" in capsys.readouterr().err


def test_files_mixed_up_are_named_for_what_they_are(synthetic_cohort, tmp_path):
    cases, clinical, pid = _one_patient(synthetic_cohort, tmp_path)
    with pytest.raises(ValueError, match="a cases file \\(timepoint, image, x, y, z columns\\), not clinical data"):
        read_cohort(cases, cases)
    workbook = tmp_path / "cases.xlsx"
    workbook.write_bytes(b"PK\x03\x04" + bytes(200))
    with pytest.raises(ValueError, match="cases.xlsx: a spreadsheet workbook \\(Excel or LibreOffice\\), not CSV"):
        read_cohort(workbook)
    lower = [dict(row, pid=row["pid"].lower()) for row in _rows(clinical)]
    with pytest.raises(ValueError, match=f"'{pid}' has a row written '{pid.lower()}': ids are compared exactly"):
        read_cohort(cases, _write_cases(tmp_path / "lower.csv", lower))


def test_image_paths_and_points_a_new_user_writes_wrong_are_named(synthetic_cohort, tmp_path, monkeypatch):
    cases, _, _ = _one_patient(synthetic_cohort, tmp_path)
    rows = _rows(cases)
    (tmp_path / "sub").mkdir()
    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / "T0.nrrd").write_bytes(b"")
    monkeypatch.chdir(tmp_path)  # a path relative to the current folder, not to the cases file's
    rows[0]["image"] = "scans/T0.nrrd"
    rows[1]["x"] = "1e308"
    cohort = read_cohort(_write_cases(tmp_path / "sub" / "cases.csv", rows))
    reasons = [p.reason for p in cohort.problems]
    assert any("image paths in a cases file are relative to its folder, and scans/T0.nrrd is a file relative to the "
               "current folder" in reason for reason in reasons)
    assert any("coordinate x = '1e308' is too large for a position in a scan (mm) or a number of days" in reason
               for reason in reasons)
    with pytest.raises(ValueError, match="scans: a folder holding no DICOM files \\(it holds T0.nrrd\\): give the "
                                         "file's path"):
        read_image(tmp_path / "scans")


def test_a_model_with_a_clinical_branch_run_without_clinical_data_says_so(synthetic_cohort, tmp_path, capsys):
    cases, _, _ = _one_patient(synthetic_cohort, tmp_path)
    assert main(["predict", "--cases", str(cases), "--out", str(tmp_path / "results.csv"), "--no-measure"]) == 0
    assert ("csfnet predict: warning: no clinical data given: every patient's clinical values count as missing"
            in capsys.readouterr().err)
