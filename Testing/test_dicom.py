"""DICOM in and out: scans read from DICOM series with real scanners' quirks, results written as DICOM SEG
and TID 1500 SR and read back by an independent reader (dcmqi's tid1500reader and segimage2itkimage).

Real synthetic scans written as CT series by `CSFNetLib.synth.dicom_series` (pydicom), the real reader,
the real export (highdicom), the shipped demo weights.
"""

import csv
import datetime
import json
import shutil
import subprocess

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import SYNTH_SEED
from CSFNetLib.cli import main as csfnet
from CSFNetLib.geometry import VoxelGrid
from CSFNetLib.images import read_image
from CSFNetLib.measure.segmentation import segment_nodule
from CSFNetLib.preprocessing import sample_in_scan
from CSFNetLib.synth import synthesize_patient

pytest.importorskip("highdicom")
from CSFNetLib.synth.dicom_series import DicomStudy, write_dicom_series, write_localizer  # noqa: E402

TILT_DEG = 12.0


@pytest.fixture(scope="module")
def patient():
    return synthesize_patient(SYNTH_SEED, 1, "small")


@pytest.fixture(scope="module")
def dicom_cohort(patient, tmp_path_factory):
    """Patient A as DICOM (T0: files in random order with a localizer beside; T1: gantry tilted), patient B
    as NRRD; cases.csv with a point on each nodule at both scans."""
    root = tmp_path_factory.mktemp("dicom")
    rows = []
    for k, timepoint in enumerate(("T0", "T1")):
        study = DicomStudy.new("PHANTOM-A", datetime.date(2021 + k, 3, 1))
        folder = root / "A" / timepoint
        write_dicom_series(patient.images[timepoint], folder, study, tilt_deg=TILT_DEG if k else 0.0,
                           shuffle=np.random.default_rng(k))
        if k == 0:
            write_localizer(patient.images[timepoint], folder, study)
        sitk.WriteImage(patient.images[timepoint], str(root / f"B_{timepoint}.nrrd"))
        for pid, image in (("A", f"A/{timepoint}"), ("B", f"B_{timepoint}.nrrd")):
            for nodule in patient.nodules:
                x, y, z = patient.nodule_center_lps(nodule, timepoint)
                rows.append(dict(pid=pid, nodule=str(nodule.nodule_id), timepoint=timepoint, image=image,
                                 x=f"{x:.2f}", y=f"{y:.2f}", z=f"{z:.2f}", days=365 * k))
    with open(root / "cases.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_a_series_in_random_file_order_with_a_localizer_beside_reads_as_the_original(patient, dicom_cohort):
    read = read_image(dicom_cohort / "A" / "T0")
    original = patient.images["T0"]
    assert read.GetSize() == original.GetSize()
    assert np.allclose(read.GetOrigin(), original.GetOrigin(), atol=1e-3)
    assert np.allclose(read.GetSpacing(), original.GetSpacing(), atol=1e-5)
    assert np.array_equal(sitk.GetArrayFromImage(read), np.round(sitk.GetArrayFromImage(original)))


def test_a_tilted_gantry_series_is_put_back_where_the_nodule_is(patient, dicom_cohort):
    read = read_image(dicom_cohort / "A" / "T1")
    nodule = patient.nodules[0]
    truth = patient.nodule_center_lps(nodule, "T1")
    found = segment_nodule(read, truth)
    reference = segment_nodule(patient.images["T1"], truth)
    assert np.linalg.norm(found.centre_lps - reference.centre_lps) < 0.5
    assert found.volume_mm3 == pytest.approx(reference.volume_mm3, rel=0.1)
    around = VoxelGrid.centred(truth, (41, 41, 41), (1.0, 1.0, 1.0))  # where the tilted slices saw
    hu, seen = sample_in_scan(read, around)
    original, _ = sample_in_scan(patient.images["T1"], around)
    assert seen.mean() > 0.5 and np.corrcoef(hu[seen], original[seen])[0, 1] > 0.97
    # the tilt is real: the slices' planes are turned, so unregularised geometry would misplace the nodule
    column = np.asarray(read.GetDirection()).reshape(3, 3)[:, 1]
    assert np.degrees(np.arccos(column[1])) == pytest.approx(TILT_DEG, abs=0.01)


def test_two_scans_in_one_folder_are_listed_and_a_file_of_one_chooses_it(patient, tmp_path):
    study = DicomStudy.new("PHANTOM-C", datetime.date(2022, 1, 1))
    write_dicom_series(patient.images["T0"], tmp_path / "mixed", study, series_number=2, description="lung")
    chosen = write_dicom_series(patient.images["T1"], tmp_path / "mixed" / "soft", study, series_number=3)
    for path in chosen:  # the second series beside the first, its files named apart
        path.rename(tmp_path / "mixed" / f"S{path.name}")
    with pytest.raises(ValueError, match=r"mixed: .*found 2: .*'lung'.*give the path of one of its files"):
        read_image(tmp_path / "mixed")
    read = read_image(tmp_path / "mixed" / f"S{chosen[0].name}")
    assert np.array_equal(sitk.GetArrayFromImage(read), np.round(sitk.GetArrayFromImage(patient.images["T1"])))


@pytest.fixture(scope="module")
def predicted(dicom_cohort):
    out = dicom_cohort / "run"
    code = csfnet(["predict", "--cases", str(dicom_cohort / "cases.csv"), "--out", str(out / "results.csv"),
                   "--measurements", str(out / "measurements.csv"), "--dicom-out", str(out / "dicom"),
                   "--report-dir", str(out / "reports"), "--attention-dir", str(out / "maps"), "--device", "cpu"])
    return out, code


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _tid1500(sr, tmp_path):
    reader = shutil.which("tid1500reader")
    if reader is None:
        pytest.skip("dcmqi is not installed (pip install dcmqi)")
    out = tmp_path / f"{sr.parent.name}.json"
    subprocess.run([reader, "--inputDICOM", str(sr), "--outputMetadata", str(out)], check=True, capture_output=True)
    return json.loads(out.read_text(encoding="utf-8"))


def _items(group):
    return {(item["quantity"]["CodeMeaning"], item.get("derivationModifier", {}).get("CodeMeaning", "")):
            float(item["value"]) for item in group["measurementItems"]}


def test_predict_writes_a_seg_and_sr_per_dicom_scan_that_dcmqi_reads_as_the_csv_values(predicted, tmp_path):
    out, code = predicted
    assert code == 1  # patient B's scans are NRRD: reported, the run carried on
    assert sorted(p.relative_to(out / "dicom").as_posix() for p in (out / "dicom").rglob("*.dcm")) == [
        "A/T0/seg.dcm", "A/T0/sr.dcm", "A/T1/seg.dcm", "A/T1/sr.dcm"]
    measured = {(row["pid"], row["nodule"], row["timepoint"]): row for row in _rows(out / "measurements.csv")}
    results = {(row["pid"], row["nodule"]): row for row in _rows(out / "results.csv")}
    reports = {t: _tid1500(out / "dicom" / "A" / t / "sr.dcm", tmp_path) for t in ("T0", "T1")}
    for timepoint, report in reports.items():
        groups = report["Measurements"]
        assert [g["TrackingIdentifier"] for g in groups] == [f"nodule {row['nodule']}" for row in _rows(
            out / "measurements.csv") if row["pid"] == "A" and row["timepoint"] == timepoint]
        for number, group in enumerate(groups, start=1):
            nodule = group["TrackingIdentifier"].split()[-1]
            row = measured[("A", nodule, timepoint)]
            items = _items(group)
            assert group["ReferencedSegment"] == number
            assert items[("Volume", "")] == pytest.approx(float(row["volume_mm3"]))
            assert items[("Diameter", "Mean")] == pytest.approx(float(row["diameter_mm"]))
            assert items[("Solid component diameter", "")] == pytest.approx(float(row["solid_diameter_mm"]))
            if timepoint == "T0":
                assert len(items) == 3  # no growth and no probability at the baseline
            else:
                probability = float(results[("A", nodule)]["p_malignant"])
                assert items[("Probability of cancer", "")] == pytest.approx(probability)
                if row["vdt_days"] not in ("", "inf"):
                    assert items[("Volume doubling time", "")] == pytest.approx(float(row["vdt_days"]))
            assert {ev["conceptValue"]["CodeMeaning"] for ev in group["qualitativeEvaluations"]} >= {row["type"]}
    same = [g["TrackingUniqueIdentifier"] for g in reports["T0"]["Measurements"]]
    assert same == [g["TrackingUniqueIdentifier"] for g in reports["T1"]["Measurements"]]  # followed over scans
    assert "synthetic" in reports["T1"]["SeriesDescription"]


def test_the_seg_masks_land_on_the_nodules(predicted, patient, tmp_path):
    out, _ = predicted
    converter = shutil.which("segimage2itkimage")
    if converter is None:
        pytest.skip("dcmqi is not installed (pip install dcmqi)")
    for timepoint in ("T0", "T1"):
        folder = tmp_path / timepoint
        folder.mkdir()
        subprocess.run([converter, "--inputDICOM", str(out / "dicom" / "A" / timepoint / "seg.dcm"),
                        "--outputDirectory", str(folder)], check=True, capture_output=True)
        for number, nodule in enumerate(patient.nodules, start=1):
            mask = sitk.ReadImage(str(folder / f"{number}.nrrd"))
            voxels = np.argwhere(sitk.GetArrayFromImage(mask) > 0)[:, ::-1].astype(float)  # x, y, z indices
            centre = np.mean([mask.TransformContinuousIndexToPhysicalPoint(v.tolist()) for v in voxels], axis=0)
            assert np.linalg.norm(centre - patient.nodule_center_lps(nodule, timepoint)) < 1.0


def test_nrrd_scans_are_told_that_dicom_output_needs_dicom_input(predicted, dicom_cohort, tmp_path):
    from CSFNetLib.dicom.export import export_run

    out, _ = predicted
    assert not (out / "dicom" / "B").exists()
    rows = [row for row in _rows(dicom_cohort / "cases.csv") if row["pid"] == "B"]
    cases = tmp_path / "cases.csv"
    with open(cases, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for image in ("B_T0.nrrd", "B_T1.nrrd"):
        shutil.copy(dicom_cohort / image, tmp_path / image)
    export = export_run(cases, tmp_path / "dicom")
    assert export.written == [] and len(export.problems) == 2
    assert all("B_T" in problem and "DICOM results need DICOM input" in problem for problem in export.problems)


def test_a_dicom_output_that_is_a_file_is_refused_before_any_work(dicom_cohort, tmp_path, capsys):
    (tmp_path / "taken").write_text("x", encoding="utf-8")
    code = csfnet(["predict", "--cases", str(dicom_cohort / "cases.csv"), "--out", str(tmp_path / "r.csv"),
                   "--dicom-out", str(tmp_path / "taken"), "--device", "cpu"])
    assert code == 2 and "taken: a file, not a folder for DICOM output" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_predict_writes_a_one_page_report_per_patient_and_csfnet_report_remakes_it(predicted, dicom_cohort, tmp_path):
    out, _ = predicted
    for pid in ("A", "B"):  # NRRD scans get a report too
        assert (out / "reports" / f"{pid}.pdf").read_bytes()[:5] == b"%PDF-"
        picture = sitk.ReadImage(str(out / "reports" / f"{pid}.png"))
        assert picture.GetSize() == (661, 935)  # one A4 page at 80 dpi
    code = csfnet(["report", "--cases", str(dicom_cohort / "cases.csv"), "--results", str(out / "results.csv"),
                   "--attention-dir", str(out / "maps"), "--out", str(tmp_path / "again")])
    assert code == 0 and sorted(p.name for p in (tmp_path / "again").iterdir()) == ["A.pdf", "A.png", "B.pdf",
                                                                                    "B.png"]
    first = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "reports" / "A.png")))
    again = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "again" / "A.png")))
    assert np.array_equal(first, again)  # the same page from the run's files
    assert csfnet(["report", "--cases", str(dicom_cohort / "cases.csv"), "--results", str(out / "results.csv"),
                   "--out", str(tmp_path / "plain")]) == 0
    plain = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "plain" / "A.png")))
    assert not np.array_equal(first, plain)  # the attention maps drawn over the nodules


def test_the_scene_s_results_leave_as_seg_and_sr_for_volumes_loaded_from_dicom(patient, dicom_cohort, tmp_path):
    slicer = pytest.importorskip("slicer")
    import pydicom

    from CSFNetLib.images import dicom_series_files
    from CSFNetLib.scene.exports import INSTANCE_UIDS, export_scene_dicom
    from CSFNetLib.scene.files import StandaloneScene
    from CSFNetLib.scene.logic import predict_scene
    from CSFNetLib.scene.nodes import add_fiducials, add_volume_node
    from CSFNetLib.scene.results_table import table_rows

    standalone = StandaloneScene()
    slicer.mrmlScene = scene = standalone.scene
    try:
        volumes, lists, files = [], [], {}
        for timepoint in ("T0", "T1"):  # as Slicer's DICOM import leaves them: the slices' instance UIDs on the node
            series = dicom_series_files(dicom_cohort / "A" / timepoint)
            uids = [str(pydicom.dcmread(name, stop_before_pixels=True).SOPInstanceUID) for name in series]
            files.update(zip(uids, series))
            volume = add_volume_node(scene, read_image(dicom_cohort / "A" / timepoint), f"A {timepoint}")
            volume.SetAttribute(INSTANCE_UIDS, " ".join(uids))
            volumes.append(volume)
            lists.append(add_fiducials(scene, f"nodules {timepoint}", [patient.nodule_center_lps(n, timepoint)
                                                                       for n in patient.nodules],
                                       [str(n.nodule_id) for n in patient.nodules]))
        table = predict_scene(scene, *volumes, *lists, device="cpu", attention=False, interval_days=365)
        written = export_scene_dicom(volumes, lists, [table], tmp_path / "dicom", files_of=files.get,
                                     patient="A")
        assert sorted(p.relative_to(tmp_path / "dicom").as_posix() for p in written) == [
            "T0/seg.dcm", "T0/sr.dcm", "T1/seg.dcm", "T1/sr.dcm"]
        (group,) = _tid1500(tmp_path / "dicom" / "T1" / "sr.dcm", tmp_path)["Measurements"]
        row = table_rows(table)[0]
        assert _items(group)[("Probability of cancer", "")] == pytest.approx(row["p_malignant"], abs=1e-6)
        assert _items(group)[("Diameter", "Mean")] == pytest.approx(row["diameter_mm"])
        volumes[0].SetAttribute(INSTANCE_UIDS, "")  # a volume loaded from NRRD
        with pytest.raises(ValueError, match="scan T0 'A T0' was not loaded from DICOM"):
            export_scene_dicom(volumes, lists, [table], tmp_path / "again", files_of=files.get)
    finally:
        standalone.close()


def test_a_report_folder_that_is_a_file_is_refused_before_any_work(dicom_cohort, tmp_path, capsys):
    (tmp_path / "taken").write_text("x", encoding="utf-8")
    code = csfnet(["predict", "--cases", str(dicom_cohort / "cases.csv"), "--out", str(tmp_path / "r.csv"),
                   "--report-dir", str(tmp_path / "taken"), "--device", "cpu"])
    assert code == 2 and "taken: a file, not a folder for reports" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()
