"""A nodule followed over more than two scans (T0, T1, T2): read, predicted per follow-up, measured, matched.

A real three-scan synthetic cohort (`csfnet synth --scans 3`), the shipped demo weights, real scans.
"""

import csv

import numpy as np
import pytest

from conftest import SYNTH_SEED
from CSFNetLib.cli import main as csfnet
from CSFNetLib.cohort_csv import read_cohort
from CSFNetLib.results_file import COLUMNS
from CSFNetLib.synth import write_cohort


@pytest.fixture(scope="module")
def three_scans(tmp_path_factory):
    out = tmp_path_factory.mktemp("history") / "cohort"
    write_cohort(out, 2, SYNTH_SEED, scans=3, workers=2)
    return out


def rows_of(path):
    return list(csv.DictReader(open(path, encoding="utf-8")))


def write_rows(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_each_follow_up_is_assessed_against_the_scan_before_it(three_scans):
    cohort = read_cohort(three_scans / "cases.csv")
    nodules = {(row["pid"], row["nodule"]) for row in rows_of(three_scans / "cases.csv")}
    assert not cohort.problems and len(cohort.cases) == 2 * len(nodules)
    for case in cohort.cases:
        assert case.scans in ("T0-T1", "T1-T2") and [row.timepoint for row in case.rows] == ["T0", "T1", "T2"]
        assert case.t1.days > case.t0.days
        assert (case.t0.timepoint, case.t1.timepoint) == tuple(case.scans.split("-"))


def test_scans_out_of_time_order_or_disagreeing_are_problems(three_scans, tmp_path):
    rows = rows_of(three_scans / "cases.csv")
    first = (rows[0]["pid"], rows[0]["nodule"])
    for row in rows:
        if (row["pid"], row["nodule"]) == first and row["timepoint"] == "T2":
            row["days"] = "10"  # before T1
    cohort = read_cohort(write_rows(tmp_path / "cases.csv", rows))
    (problem,) = cohort.problems
    assert "days do not increase: T2" in str(problem) and "T1 (line" in str(problem)
    assert all((case.pid, case.nodule) != first for case in cohort.cases)


def test_predict_writes_a_row_per_follow_up_naming_the_pair_and_measures_every_scan(three_scans, tmp_path):
    out, measurements, maps = tmp_path / "results.csv", tmp_path / "measurements.csv", tmp_path / "maps"
    assert csfnet(["predict", "--cases", str(three_scans / "cases.csv"), "--out", str(out), "--device", "cpu",
                   "--measurements", str(measurements), "--attention-dir", str(maps)]) == 0
    results = rows_of(out)
    assert list(results[0]) == list(COLUMNS[:2]) + ["scans"] + list(COLUMNS[2:])
    nodules = sorted({(r["pid"], r["nodule"]) for r in results})
    assert sorted((r["pid"], r["nodule"], r["scans"]) for r in results) == sorted(
        (pid, nodule, scans) for pid, nodule in nodules for scans in ("T0-T1", "T1-T2"))
    measured = rows_of(measurements)
    assert sorted((m["pid"], m["nodule"], m["timepoint"]) for m in measured) == sorted(
        (pid, nodule, t) for pid, nodule in nodules for t in ("T0", "T1", "T2"))  # each scan once
    for result in results:  # the results row carries its follow-up scan's measurements
        follow_up = next(m for m in measured if (m["pid"], m["nodule"], m["timepoint"]) ==
                         (result["pid"], result["nodule"], result["scans"][-2:]))
        assert result["diameter_mm"] == follow_up["diameter_mm"] and result["lung_rads"] == follow_up["lung_rads"]
    later = [m for m in measured if m["timepoint"] == "T2" and not m["error"]]
    assert later and all(m["vdt_days"] for m in later)  # growth against T1
    pid, nodule = nodules[0]
    names = {path.name for path in maps.glob("*-heat.nrrd")}
    assert {f"{pid}_nodule{nodule}_T0_layercam-heat.nrrd", f"{pid}_nodule{nodule}_T1-T2_T2_layercam-heat.nrrd"} <= names


def test_two_scan_results_keep_their_columns(synthetic_cohort, tmp_path):
    out = tmp_path / "results.csv"
    rows = [row for row in rows_of(synthetic_cohort / "cases.csv")][:2]
    for row in rows:
        row["image"] = str((synthetic_cohort / row["image"]).resolve())
    assert csfnet(["predict", "--cases", str(write_rows(tmp_path / "cases.csv", rows)), "--out", str(out),
                   "--device", "cpu", "--no-measure"]) == 0
    assert list(rows_of(out)[0]) == list(COLUMNS)


def test_a_missing_point_at_a_later_scan_is_found_from_the_nearest_scan(three_scans, tmp_path):
    rows = rows_of(three_scans / "cases.csv")
    truth = {}
    for row in rows:
        row["image"] = str((three_scans / row["image"]).resolve())
        if row["timepoint"] != "T0":
            truth[(row["pid"], row["nodule"], row["timepoint"])] = np.array([float(row[a]) for a in "xyz"])
            row["x"] = row["y"] = row["z"] = ""
    out = tmp_path / "matched.csv"
    csfnet(["match", "--cases", str(write_rows(tmp_path / "cases.csv", rows)), "--out", str(out)])
    for row in rows_of(out):
        if row["timepoint"] != "T0" and row["match"] == "found":
            found = np.array([float(row[a]) for a in "xyz"])
            assert np.linalg.norm(found - truth[(row["pid"], row["nodule"], row["timepoint"])]) < 3.0
            assert row["match_note"] == "from T0"
    assert sum(row["match"] == "found" for row in rows_of(out)) >= len(truth) - 1


def test_synth_refuses_too_few_scans(tmp_path, capsys):
    assert csfnet(["synth", "--out", str(tmp_path / "one"), "--cases", "1", "--scans", "1"]) == 2
    assert "--scans must be 2 to 5, got 1" in capsys.readouterr().err and not (tmp_path / "one").exists()


def test_in_the_scene_each_follow_up_gets_its_table_and_the_volumes_are_shown_over_every_scan(tmp_path):
    slicer = pytest.importorskip("slicer")
    from CSFNetLib.scene.files import StandaloneScene
    from CSFNetLib.scene.history import SCANS_ATTRIBUTE, predict_history
    from CSFNetLib.scene.nodes import add_fiducials, add_volume_node
    from CSFNetLib.scene.results_table import MEASURE_ROLE, table_rows
    from CSFNetLib.synth import synthesize_patient

    patient = synthesize_patient(SYNTH_SEED, 1, "small", scans=3)
    standalone = StandaloneScene()
    slicer.mrmlScene = scene = standalone.scene
    try:
        timepoints = list(patient.images)
        volumes = [add_volume_node(scene, patient.images[t], f"scan {t}") for t in timepoints]
        labels = [f"n{nodule.nodule_id}" for nodule in patient.nodules]
        lists = [add_fiducials(scene, f"nodules {t}", [patient.nodule_center_lps(n, t) for n in patient.nodules],
                               labels) for t in timepoints]
        days = [k * float(patient.spec.interval_days) for k in range(3)]
        with pytest.raises(ValueError, match="days must give each scan's day"):
            predict_history(scene, volumes, lists, days=[0.0, 400.0, 300.0], device="cpu")
        tables = predict_history(scene, volumes, lists, days=days, device="cpu", attention=False)
        assert [table.GetAttribute(SCANS_ATTRIBUTE) for table in tables] == ["T0-T1", "T1-T2"]
        for table in tables:
            rows = table_rows(table)
            assert [row["nodule"] for row in rows] == labels and all(0 <= row["p_malignant"] <= 1 for row in rows)
        later = table_rows(tables[1])[0]  # T1 -> T2: against the scan before, not the baseline
        assert later["volume_t0_mm3"] == pytest.approx(table_rows(tables[0])[0]["volume_t1_mm3"])
        outputs = [tables[1].GetNthNodeReference(MEASURE_ROLE, i)
                   for i in range(tables[1].GetNumberOfNodeReferences(MEASURE_ROLE))]
        history = [node for node in outputs if node.IsA("vtkMRMLTableNode") and
                   node.GetNumberOfRows() == 3]
        assert history, "a table of the volumes at the three scans"
        values = history[0]
        assert [values.GetCellText(k, 0) for k in range(3)] == [f"{d:g}" for d in days]
        count = scene.GetNumberOfNodes()
        predict_history(scene, volumes, lists, days=days, device="cpu", attention=False)  # a rerun refills
        assert scene.GetNumberOfNodes() == count

        from CSFNetLib.scene.exports import save_scene_report  # the panel's "Save report..."
        pdf = save_scene_report(volumes, lists, tables, tmp_path / "report.pdf", days=days)
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.with_suffix(".png").stat().st_size > 10_000
        assert scene.GetNumberOfNodes() == count  # nothing added to the scene

        lists[2].SetNthControlPointPositionMissing(0)  # the nodule not present at T2: T1-T2 has nothing to assess
        (table,) = predict_history(scene, volumes, lists, days=days, device="cpu", attention=False)
        assert table.GetAttribute(SCANS_ATTRIBUTE) == "T0-T1" and tables[1].GetScene() is None  # removed
        plotted = [table.GetNthNodeReference(MEASURE_ROLE, i) for i in range(table.GetNumberOfNodeReferences(
            MEASURE_ROLE))]
        (values,) = [node for node in plotted if node.IsA("vtkMRMLTableNode") and node.GetNumberOfRows() == 3]
        assert values.GetCellText(1, 1) != "nan" and values.GetCellText(2, 1) == "nan"  # absent at T2
        lists[1].SetNthControlPointLabel(0, "renamed")
        with pytest.raises(ValueError, match="scans T0 and T1 .* share no nodule label"):
            predict_history(scene, volumes, lists, days=days, device="cpu", attention=False)
    finally:
        standalone.close()


def test_a_patient_s_studies_give_the_scans_in_date_order_and_one_click_places_the_nodule_in_each():
    slicer = pytest.importorskip("slicer")
    from CSFNetLib.geometry import ras_to_lps
    from CSFNetLib.scene.files import StandaloneScene
    from CSFNetLib.scene.history import days_since_first, match_history, patient_scans, scan_nodules
    from CSFNetLib.scene.matching import Registrations
    from CSFNetLib.scene.nodes import add_fiducials, add_volume_node
    from CSFNetLib.synth import synthesize_patient

    patient = synthesize_patient(SYNTH_SEED, 1, "small", scans=3)
    standalone = StandaloneScene()
    slicer.mrmlScene = scene = standalone.scene
    try:
        tree = scene.GetSubjectHierarchyNode()
        subject = tree.CreateSubjectItem(tree.GetSceneItemID(), "patient")
        dates = {"T0": "20210101", "T1": "20220101", "T2": "20230101"}
        volumes = {}
        for timepoint in ("T2", "T0", "T1"):  # loaded out of order
            study = tree.CreateStudyItem(subject, f"study {timepoint}")
            tree.SetItemAttribute(study, slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMStudyDateAttributeName(),
                                  dates[timepoint])
            volumes[timepoint] = add_volume_node(scene, patient.images[timepoint], f"CT {timepoint}")
            tree.CreateItem(study, volumes[timepoint])
            if timepoint == "T1":  # a second series of that study (another kernel): the clicked one is taken
                tree.CreateItem(study, add_volume_node(scene, patient.images["T1"], "CT T1 soft"))
        other = tree.CreateStudyItem(tree.CreateSubjectItem(tree.GetSceneItemID(), "someone else"), "theirs")
        tree.CreateItem(other, add_volume_node(scene, patient.images["T0"], "their CT"))

        scans = patient_scans(scene, volumes["T1"])
        assert [node.GetName() for node, _ in scans] == ["CT T0", "CT T1", "CT T2"]
        assert days_since_first([date for _, date in scans]) == [0.0, 365.0, 730.0]
        loose = add_volume_node(scene, patient.images["T0"], "loose")
        assert patient_scans(scene, loose) == [(loose, None)]

        nodule = patient.nodules[0]
        clicked = add_fiducials(scene, "T0 nodules", [patient.nodule_center_lps(nodule, "T0")], ["n1"])
        lists = [clicked, scan_nodules(scene, volumes["T1"]), scan_nodules(scene, volumes["T2"])]
        assert scan_nodules(scene, volumes["T2"]) is lists[2] and lists[2].GetName() == "CT T2 nodules"
        placed = match_history([node for node, _ in scans], lists, Registrations())
        assert [(k, p.label, p.match.found) for k, p in placed] == [(1, "n1", True), (2, "n1", True)]
        for k, timepoint in ((1, "T1"), (2, "T2")):
            position = [0.0, 0.0, 0.0]
            lists[k].GetNthControlPointPositionWorld(0, position)
            error = np.linalg.norm(ras_to_lps(position) - patient.nodule_center_lps(nodule, timepoint))
            assert error < nodule.diameter(timepoint) / 2.0
        assert match_history([node for node, _ in scans], lists, Registrations()) == []  # nothing placed twice
    finally:
        standalone.close()


def test_the_later_scans_days_are_read_or_refused_saying_what_is_wrong():
    pytest.importorskip("slicer")
    from CSFNetLib.scene.history import typed_days

    assert typed_days(0.0, "", 2) is None  # nothing typed: the DICOM dates, or unknown
    assert typed_days(380.0, " 730, 1095 ", 2) == [0.0, 380.0, 730.0, 1095.0]
    assert typed_days(380.0, "", 0) == [0.0, 380.0]
    with pytest.raises(ValueError, match=r"each later scan's days since the baseline \(2 value\(s\)"):
        typed_days(380.0, "730", 2)
    with pytest.raises(ValueError, match="or neither; got no interval"):
        typed_days(0.0, "730, 1095", 2)
    with pytest.raises(ValueError, match="must be numbers separated by commas, got '730; 1095'"):
        typed_days(380.0, "730; 1095", 1)
