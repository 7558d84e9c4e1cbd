import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import Phantom, bright_centroid, rotation
from CSFNetLib import samples as samples_module
from CSFNetLib.clinical import ClinicalVocabulary
from CSFNetLib.cohort_csv import read_cohort
from CSFNetLib.images import read_image
from CSFNetLib.nlst_cmst import iter_nlst_cmst
from CSFNetLib.preprocessing import Preprocessing, hu_to_unit
from CSFNetLib.records import CaseProblem, Sample
from CSFNetLib.samples import iter_samples

ROI_CENTRE = np.array([7.5, 31.5, 31.5])  # (z, y, x): between the middle voxels
BRIGHT = hu_to_unit(0.0)
HEADER = ["pid", "nodule", "timepoint", "image", "x", "y", "z", "label", "days"]
OBLIQUE = rotation(z_deg=15.0, y_deg=-5.0, x_deg=8.0)


def write_csv(path: Path, header, rows, encoding="utf-8") -> Path:
    with open(path, "w", newline="", encoding=encoding) as f:
        csv.writer(f).writerows([header, *rows])
    return path


def small_phantom(direction=OBLIQUE) -> Phantom:
    """40 x 40 x 20 voxels, anisotropic and (by default) rotated: a quick scan with real geometry."""
    return Phantom(size_xyz=(40, 40, 20), spacing=(0.9, 0.8, 1.5), origin=(-20.0, 10.0, -100.0), direction=direction)


def sphere_scan(offset=(1.3, -0.7, 0.9), direction=OBLIQUE):
    """A scan with a bright sphere near its centre, and the sphere's LPS centre."""
    phantom = small_phantom(direction)
    centre = phantom.centre_lps + np.asarray(offset)
    return phantom.paint_sphere(centre, radius_mm=4.0, hu=400.0).image(), centre


def nodule_rows(pid, t0_image, t1_image, centre, nodule="1", label=1):
    x, y, z = (f"{v:.4f}" for v in centre)
    return [[pid, nodule, "T0", t0_image, x, y, z, label, 0], [pid, nodule, "T1", t1_image, x, y, z, label, 400]]


def assert_same_geometry(read: sitk.Image, written: sitk.Image):
    assert read.GetSize() == written.GetSize()
    assert np.allclose(read.GetOrigin(), written.GetOrigin(), atol=1e-4)
    assert np.allclose(read.GetSpacing(), written.GetSpacing(), atol=1e-5)
    assert np.allclose(read.GetDirection(), written.GetDirection(), atol=1e-5)
    assert np.array_equal(sitk.GetArrayFromImage(read), sitk.GetArrayFromImage(written))


def write_dicom_series(image: sitk.Image, folder: Path, series_uid: str, first_file: int = 0,
                       position_decimals: int = 6, patient_id: str = "") -> None:
    """One file per slice, with the tags a reader needs to rebuild the 3-D geometry."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    d = image.GetDirection()
    orientation = "\\".join(f"{v:.8f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7]))  # row, column cosines
    sx, sy, sz = image.GetSpacing()
    for k in range(image.GetDepth()):
        slice_ = image[:, :, k]
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {
            "0008|0060": "CT",
            "0008|0018": f"{series_uid}.{k + 1}",  # SOPInstanceUID
            "0020|000d": "1.2.826.0.1.3680043.8.498.1",  # StudyInstanceUID
            "0020|000e": series_uid,  # SeriesInstanceUID
            "0020|0052": "1.2.826.0.1.3680043.8.498.2",  # FrameOfReferenceUID
            "0020|0013": str(k + 1),  # InstanceNumber
            "0020|0032": "\\".join(f"{v:.{position_decimals}f}" for v in position),  # ImagePositionPatient
            "0020|0037": orientation,  # ImageOrientationPatient
            "0018|0050": f"{sz}",  # SliceThickness
            "0028|0030": f"{sy}\\{sx}",  # PixelSpacing: row spacing (y), column spacing (x)
            "0028|1052": "0",  # RescaleIntercept
            "0028|1053": "1",  # RescaleSlope
        }
        if patient_id:
            tags["0010|0020"] = patient_id
        for tag, value in tags.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"IM{first_file + k:04d}.dcm"))
        writer.Execute(slice_)


def samples_and_problems(items):
    items = list(items)
    return [i for i in items if isinstance(i, Sample)], [i for i in items if isinstance(i, CaseProblem)]


# ---------------------------------------------------------------- images


@pytest.mark.parametrize("suffix", [".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd"])
def test_every_file_type_reads_back_with_its_geometry_and_the_nodule_at_the_roi_centre(tmp_path, suffix):
    image, centre = sphere_scan()
    (tmp_path / "scans").mkdir()
    sitk.WriteImage(image, str(tmp_path / "scans" / f"p1{suffix}"))
    assert_same_geometry(read_image(tmp_path / "scans" / f"p1{suffix}"), image)

    rows = nodule_rows("P1", f"scans/p1{suffix}", f"scans/p1{suffix}", centre)
    samples, problems = samples_and_problems(iter_samples(read_cohort(write_csv(tmp_path / "c.csv", HEADER, rows))))
    assert problems == []
    (sample,) = samples
    assert sample.t0.shape == sample.t1.shape == (16, 64, 64) and sample.t0.dtype == np.float32
    assert np.allclose(bright_centroid(sample.t0, BRIGHT), ROI_CENTRE, atol=0.35)


def test_dicom_series_round_trip_keeps_the_geometry_and_the_nodule_at_the_roi_centre(tmp_path):
    image, centre = sphere_scan()
    write_dicom_series(image, tmp_path / "P1" / "T0", "1.2.826.0.1.3680043.8.498.10")
    write_dicom_series(image, tmp_path / "P1" / "T1", "1.2.826.0.1.3680043.8.498.11")
    assert_same_geometry(read_image(tmp_path / "P1" / "T0"), image)

    rows = nodule_rows("P1", "P1/T0", "P1/T1", centre)
    samples, problems = samples_and_problems(iter_samples(read_cohort(write_csv(tmp_path / "c.csv", HEADER, rows))))
    assert problems == []
    for roi in (samples[0].t0, samples[0].t1):
        assert np.allclose(bright_centroid(roi, BRIGHT), ROI_CENTRE, atol=0.35)


@pytest.mark.parametrize("readers", [1, 2])
def test_dicom_series_of_two_patients_paired_as_one_nodule_are_warned_of_once(tmp_path, readers):
    image, centre = sphere_scan()
    for k, (folder, patient_id) in enumerate((("P1/T0", "ANON-1"), ("P1/T1", "ANON-2"), ("P2/T0", "ANON-3"),
                                               ("P2/T1", "ANON-3"))):
        write_dicom_series(image, tmp_path / folder, f"1.2.826.0.1.3680043.8.498.4{k}", patient_id=patient_id)
    rows = (nodule_rows("P1", "P1/T0", "P1/T1", centre) + nodule_rows("P1", "P1/T0", "P1/T1", centre + 9, nodule="2")
            + nodule_rows("P2", "P2/T0", "P2/T1", centre))
    with pytest.warns(UserWarning) as caught:  # from the reader processes too
        samples, problems = samples_and_problems(
            iter_samples(read_cohort(write_csv(tmp_path / "c.csv", HEADER, rows)), readers=readers))
    assert len(samples) == 3 and problems == []  # a warning: some de-identification gives each study its own id
    (message,) = [str(w.message) for w in caught if "different patients" in str(w.message)]
    assert "patient P1 nodule 1: the T0 scan (line 2) and the T1 scan (line 3)" in message
    assert "PatientID 'ANON-1' and 'ANON-2'" in message


def test_a_folder_with_two_dicom_series_or_none_is_refused(tmp_path):
    image, _ = sphere_scan()
    mixed = tmp_path / "mixed"
    write_dicom_series(image, mixed, "1.2.826.0.1.3680043.8.498.20")
    write_dicom_series(image, mixed, "1.2.826.0.1.3680043.8.498.21", first_file=100)
    with pytest.raises(ValueError, match=r"mixed: .*exactly one series .*found 2: .*498\.20.*498\.21"):
        read_image(mixed)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: a folder holding no DICOM files$"):
        read_image(tmp_path / "empty")


def test_a_dicom_series_with_a_missing_slice_is_refused(tmp_path):
    image, _ = sphere_scan()
    series = tmp_path / "gap"
    write_dicom_series(image, series, "1.2.826.0.1.3680043.8.498.30")
    middle = sorted(series.iterdir())[image.GetDepth() // 2]
    middle.unlink()
    with pytest.raises(ValueError, match=r"gap: uneven slice spacing .*slices are missing"):
        read_image(series)


def test_a_complete_dicom_series_with_rounded_slice_positions_is_read(tmp_path):
    image, _ = sphere_scan(direction=np.eye(3))
    image.SetSpacing((image.GetSpacing()[0], image.GetSpacing()[1], 0.625))  # positions written to 0.1 mm
    write_dicom_series(image, tmp_path / "thin", "1.2.826.0.1.3680043.8.498.31", position_decimals=1)
    assert read_image(tmp_path / "thin").GetDepth() == image.GetDepth()


def test_an_image_that_is_not_ct_in_hu_is_refused(tmp_path):
    image, _ = sphere_scan()
    mr_like = sitk.Cast(sitk.RescaleIntensity(image, 0, 4000), sitk.sitkUInt16)
    sitk.WriteImage(mr_like, str(tmp_path / "mr.nrrd"))
    with pytest.raises(ValueError, match="mr.nrrd does not look like CT in HU"):
        read_image(tmp_path / "mr.nrrd")


def test_read_image_errors_name_the_path_and_the_reason(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.nrrd: no such file"):
        read_image(tmp_path / "nothere.nrrd")
    (tmp_path / "garbage.nrrd").write_bytes(b"this is not an image")
    with pytest.raises(ValueError, match="garbage.nrrd: cannot read image: .+"):
        read_image(tmp_path / "garbage.nrrd")
    (tmp_path / "scan.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"scan.png: unsupported image type.*\.nii\.gz"):
        read_image(tmp_path / "scan.png")
    sitk.WriteImage(sitk.Image(8, 8, sitk.sitkInt16), str(tmp_path / "flat.nrrd"))
    with pytest.raises(ValueError, match="flat.nrrd must be 3-D"):
        read_image(tmp_path / "flat.nrrd")


# ---------------------------------------------------------------- cases.csv


def test_relative_paths_are_relative_to_the_csv_and_absolute_paths_stay(tmp_path, monkeypatch):
    image, centre = sphere_scan()
    (tmp_path / "cohort" / "scans").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    sitk.WriteImage(image, str(tmp_path / "cohort" / "scans" / "t0.nrrd"))
    sitk.WriteImage(image, str(tmp_path / "elsewhere" / "t1.mha"))
    rows = nodule_rows("P1", "scans/t0.nrrd", str(tmp_path / "elsewhere" / "t1.mha"), centre)
    write_csv(tmp_path / "cohort" / "cases.csv", HEADER, rows)
    monkeypatch.chdir(tmp_path / "elsewhere")  # the working folder plays no part

    cohort = read_cohort(Path("..") / "cohort" / "cases.csv")
    (case,) = cohort.cases
    assert case.t0.image == (tmp_path / "cohort" / "scans" / "t0.nrrd").resolve()
    assert case.t1.image == tmp_path / "elsewhere" / "t1.mha"
    samples, problems = samples_and_problems(iter_samples(cohort))
    assert len(samples) == 1 and problems == []


def test_columns_values_and_clinical_rows_are_read_and_kept(tmp_path):
    header = ["pid", "timepoint", "image", "x", "y", "z", "label", "days", "diameter_mm", "nodule_type"]
    rows = [
        ["P1", "T0", "a.nrrd", "1", "-2.5", "3e1", "1.0", "0", "8.5", "solid"],
        ["P1", "t1", "b.nrrd", " 1 ", "-2.5", "30", "", "371", "9.1", "solid"],
        ["P2", "T0", "c.nrrd", "0", "0", "0", "", "", "", ""],
        ["P2", "T1", "d.nrrd", "0", "0", "0", "", "", "", ""],
    ]
    write_csv(tmp_path / "cases.csv", header, rows)
    clinical_header = ["pid", "race", "cigsmok", "gender", "age", "scr_res0", "scr_iso0", "family_history"]
    write_csv(tmp_path / "clinical.csv", clinical_header, [["P1", "1", "0", "2", "63", "", "1", "yes"]])

    cohort = read_cohort(tmp_path / "cases.csv", tmp_path / "clinical.csv")
    assert cohort.problems == []
    p1, p2 = cohort.cases
    assert (p1.pid, p1.nodule, p1.label) == ("P1", "1", 1)  # nodule defaults to 1; a label on one row is enough
    assert p1.t0.center_lps == (1.0, -2.5, 30.0) and p1.t1.center_lps == (1.0, -2.5, 30.0)
    assert (p1.t0.row, p1.t1.row, p1.t1.timepoint, p1.t1.days, p1.t1.label) == (2, 3, "T1", 371.0, None)
    assert p1.t0.extra == {"diameter_mm": "8.5", "nodule_type": "solid"}
    assert (p2.label, p2.t0.days) == (None, None)
    assert cohort.clinical["P1"]["family_history"] == "yes" and cohort.clinical["P1"]["age"] == "63"
    assert read_cohort(tmp_path / "cases.csv").clinical == {}


def test_utf8_bom_is_accepted(tmp_path):
    rows = nodule_rows("Pé", "a.nrrd", "b.nrrd", (0, 0, 0))
    cohort = read_cohort(write_csv(tmp_path / "cases.csv", HEADER, rows, encoding="utf-8-sig"))
    assert [c.pid for c in cohort.cases] == ["Pé"]


def _file_error(tmp_path, kind):
    cases = tmp_path / "cases.csv"
    good = nodule_rows("P1", "a.nrrd", "b.nrrd", (0, 0, 0))
    if kind == "missing":
        return cases, None, FileNotFoundError, "cases.csv: no such file"
    if kind == "empty":
        cases.write_bytes(b"")
        return cases, None, ValueError, "cases.csv: empty file"
    if kind == "header only":
        write_csv(cases, HEADER, [])
        return cases, None, ValueError, "cases.csv: no cases"
    if kind == "not utf-8":
        cases.write_bytes(("pid,timepoint,image,x,y,z\nP1,T0,a.nrrd,0,0,0\nP\xe9,T0,a.nrrd,0,0,0\n").encode("latin-1"))
        return cases, None, ValueError, "cases.csv:3: not UTF-8"
    if kind == "missing columns":
        write_csv(cases, ["pid", "timepoint", "image", "x", "z"], [["P1", "T0", "a.nrrd", "0", "0"]])
        return cases, None, ValueError, "cases.csv: missing column.* y;"
    write_csv(cases, HEADER, good)
    clinical = tmp_path / "clinical.csv"
    if kind == "clinical without pid":
        write_csv(clinical, ["patient", "age"], [["P1", "60"]])
        return cases, clinical, ValueError, "clinical.csv: missing column.* pid"
    if kind == "clinical of other patients":  # e.g. a spreadsheet turned 007 into 7
        write_csv(clinical, ["pid", "age"], [["1", "60"], ["2", "61"]])
        return cases, clinical, ValueError, "clinical.csv: none of the 1 patients .* has a row here \\(e.g. 'P1'\\)"
    write_csv(clinical, ["pid", "age"], [["P1", "60"], ["P2", "61"], ["P1", "62"]])
    return cases, clinical, ValueError, "clinical.csv:4: patient P1 appears twice .*line 2"


@pytest.mark.parametrize("kind", ["missing", "empty", "header only", "not utf-8", "missing columns",
                                  "clinical without pid", "clinical duplicate pid", "clinical of other patients"])
def test_file_level_errors_raise_naming_the_file(tmp_path, kind):
    cases, clinical, error, message = _file_error(tmp_path, kind)
    with pytest.raises(error, match=message):
        read_cohort(cases, clinical)


def test_patients_without_a_clinical_row_are_named_in_a_warning(tmp_path):
    cases = write_csv(tmp_path / "cases.csv", HEADER, nodule_rows("P1", "a.nrrd", "b.nrrd", (0, 0, 0))
                      + nodule_rows("007", "a.nrrd", "b.nrrd", (0, 0, 0)))
    clinical = write_csv(tmp_path / "clinical.csv", ["pid", "age"], [["P1", "60"], ["7", "61"]])
    with pytest.warns(UserWarning, match="clinical.csv: 1 of 2 patients have no row \\(e.g. '007'\\)"):
        cohort = read_cohort(cases, clinical)
    assert "007" not in cohort.clinical and len(cohort.cases) == 2


def test_row_problems_are_reported_with_file_row_patient_and_reason_and_the_rest_is_read(tmp_path):
    rows = [
        ["P1", "1", "T0", "a.nrrd", "1", "2", "3", "1", "0"],  # line 2
        ["P1", "1", "t1", "b.nrrd", "1", "2", "3", "1", "400"],
        [],  # line 4: blank, ignored but counted like an editor does
        ["P2", "1", "T0", "a.nrrd", "abc", "2", "3", "1", "0"],  # line 5
        ["P2", "1", "T1", "b.nrrd", "1", "2", "3", "1", "400"],
        ["P3", "1", "T0", "a.nrrd", "1", "2", "inf", "0", "0"],  # line 7
        ["P3", "1", "T1", "b.nrrd", "1", "2", "3", "0", "400"],
        ["P4", "1", "baseline", "a.nrrd", "1", "2", "3", "0", "0"],  # line 9
        ["P5", "1", "T0", "a.nrrd", "1", "2", "3", "maybe", "0"],  # line 10
        ["P6", "1", "T0", "a.nrrd", "1", "2", "3", "0", "0"],  # line 11
        ["P6", "1", "T0", "a.nrrd", "1", "2", "3", "0", "0"],  # line 12: duplicate
        ["P6", "1", "T1", "b.nrrd", "1", "2", "3", "0", "400"],
        ["P7", "2", "T0", "a.nrrd", "1", "2", "3", "0", "0"],  # line 14: no T1
        ["P8", "1", "T1", "b.nrrd", "1", "2", "3", "0", "400"],  # line 15: no T0
        ["P9", "1", "T0", "a.nrrd", "1", "2", "3", "1", "0"],
        ["P9", "1", "T1", "b.nrrd", "1", "2", "3", "0", "400"],  # line 17: labels disagree
        ["P10", "1", "T0", "a.nrrd", "1", "2", "3", "0", "soon"],  # line 18
        ["P11", "1", "T0", "a.nrrd", "1", "2"],  # line 19: short row
        ["", "1", "T0", "a.nrrd", "1", "2", "3", "0", "0"],  # line 20
        ["P12", "1", "T0", "", "1", "2", "3", "0", "0"],  # line 21
    ]
    cohort = read_cohort(write_csv(tmp_path / "cases.csv", HEADER, rows))
    expected = [
        (5, "patient P2 nodule 1", "T0: coordinate x = 'abc' is not a number"),
        (7, "patient P3 nodule 1", "T0: coordinate z = 'inf' is not finite"),
        (9, "patient P4 nodule 1", "timepoint 'baseline' is not T0, T1, T2, ..."),
        (10, "patient P5 nodule 1", "T0: label 'maybe' is not 0 (benign) or 1 (malignant)"),
        (12, "patient P6 nodule 1", "duplicate T0 row (also on line 11)"),
        (14, "patient P7 nodule 2", "T1 row missing"),
        (15, "patient P8 nodule 1", "T0 row missing"),
        (17, "patient P9 nodule 1", "labels disagree: 1 on line 16 (T0), 0 on line 17 (T1)"),
        (18, "patient P10 nodule 1", "T0: days = 'soon' is not a number"),
        (19, "patient P11 nodule 1", "6 values but the header has 9 columns"),
        (20, "", "empty pid"),
        (21, "patient P12 nodule 1", "T0: empty image"),
    ]
    assert [(p.row, p.file) for p in cohort.problems] == [(row, str(tmp_path / "cases.csv")) for row, _, _ in expected]
    for problem, (row, who, reason) in zip(cohort.problems, expected):
        assert str(problem) == ": ".join(filter(None, [f"{tmp_path / 'cases.csv'}:{row}", who, reason]))
    assert [(c.pid, c.nodule) for c in cohort.cases] == [("P1", "1")]
    # nothing silently dropped: every named nodule is a case or a problem
    named = {(r[0], r[1]) for r in rows if r and r[0]}
    assert named == {(c.pid, c.nodule) for c in cohort.cases} | {(p.pid, p.nodule) for p in cohort.problems if p.pid}


def test_case_problem_reads_like_a_compiler_message():
    problem = CaseProblem("P7", "2", "T1 row missing", "cases.csv", 12)
    assert str(problem) == "cases.csv:12: patient P7 nodule 2: T1 row missing"
    without_row = CaseProblem("P7", "1", "ROI file missing", "P7_T1.npy")
    assert str(without_row) == "P7_T1.npy: patient P7 nodule 1: ROI file missing"
    assert str(CaseProblem("", "", "empty pid", "cases.csv", 3)) == "cases.csv:3: empty pid"


# ---------------------------------------------------------------- streaming samples


def test_each_scan_is_read_once_per_patient_and_patients_stream_one_at_a_time(tmp_path, monkeypatch):
    reads, masks = Counter(), Counter()
    real_read, real_mask = samples_module.read_image, samples_module.lung_mask

    def counting_read(path):
        reads[Path(path).name] += 1
        return real_read(path)

    def counting_mask(image, *args):
        masks[image.GetOrigin()] += 1
        return real_mask(image, *args)

    monkeypatch.setattr(samples_module, "read_image", counting_read)
    monkeypatch.setattr(samples_module, "lung_mask", counting_mask)
    image, centre = sphere_scan()
    walled = sitk.GetArrayFromImage(image)  # a body wall round the in-plane border makes the inside a lung
    walled[:, :3, :] = walled[:, -3:, :] = walled[:, :, :3] = walled[:, :, -3:] = 40
    walled = sitk.GetImageFromArray(walled)
    walled.CopyInformation(image)
    image = walled
    rows = []
    for pid in ("P1", "P2"):
        sitk.WriteImage(image, str(tmp_path / f"{pid}_t0.nrrd"))
        moved = sitk.Image(image)
        moved.SetOrigin(tuple(np.add(image.GetOrigin(), 0.5)))  # a different scan (origin) for the mask count
        sitk.WriteImage(moved, str(tmp_path / f"{pid}_t1.nrrd"))
        for nodule, offset in (("1", 0.0), ("2", 3.0)):
            rows += nodule_rows(pid, f"{pid}_t0.nrrd", f"{pid}_t1.nrrd", centre + offset, nodule=nodule)
    cohort = read_cohort(write_csv(tmp_path / "cases.csv", HEADER, rows))

    stream = iter_samples(cohort, Preprocessing(lung_mask=True))
    first = next(stream)
    assert isinstance(first, Sample) and (first.pid, first.nodule) == ("P1", "1")
    assert set(reads) == {"P1_t0.nrrd", "P1_t1.nrrd"}  # nothing of P2 read yet
    rest = list(stream)
    assert [(s.pid, s.nodule) for s in rest] == [("P1", "2"), ("P2", "1"), ("P2", "2")]
    assert reads == Counter({"P1_t0.nrrd": 1, "P1_t1.nrrd": 1, "P2_t0.nrrd": 1, "P2_t1.nrrd": 1})
    assert sum(masks.values()) == 4 and len(masks) == 2  # one mask per scan (two scans share each geometry)


def test_bad_images_and_points_outside_the_scan_become_problems_and_the_batch_carries_on(tmp_path, monkeypatch):
    reads = Counter()
    real_read = samples_module.read_image

    def counting_read(path):
        reads[Path(path).name] += 1
        return real_read(path)

    monkeypatch.setattr(samples_module, "read_image", counting_read)
    image, centre = sphere_scan()
    sitk.WriteImage(image, str(tmp_path / "good.nrrd"))
    (tmp_path / "broken.nii").write_bytes(b"not a nifti file")
    far = centre + np.array([0.0, 0.0, 200.0])
    rows = (
        nodule_rows("P1", "missing.nrrd", "good.nrrd", centre, nodule="1")  # lines 2, 3
        + nodule_rows("P1", "missing.nrrd", "good.nrrd", centre, nodule="2")  # lines 4, 5
        + nodule_rows("P2", "good.nrrd", "broken.nii", centre)  # lines 6, 7
        + [["P3", "1", "T0", "good.nrrd", *centre, 0, 0], ["P3", "1", "T1", "good.nrrd", *far, 0, 300]]  # 8, 9
        + nodule_rows("P4", "good.nrrd", "good.nrrd", centre, label=0)  # lines 10, 11
        + [["P5", "1", "T0", "good.nrrd", 0, 0, 0, 0, 0]]  # line 12: no T1
    )
    write_csv(tmp_path / "clinical.csv", ["pid", "race", "cigsmok", "gender", "age", "scr_res0", "scr_iso0"],
              [["P4", "1", "1", "2", "60", "1", "0"]])
    cohort = read_cohort(write_csv(tmp_path / "cases.csv", HEADER, rows), tmp_path / "clinical.csv")
    items = list(iter_samples(cohort))

    assert isinstance(items[0], CaseProblem) and items[0].row == 12  # the CSV's problems come first
    problems = [str(i) for i in items if isinstance(i, CaseProblem)]
    csv_name = str(tmp_path / "cases.csv")
    assert problems[1].startswith(f"{csv_name}:2: patient P1 nodule 1: T0: {tmp_path / 'missing.nrrd'}: no such file")
    assert problems[2].startswith(f"{csv_name}:4: patient P1 nodule 2: T0: {tmp_path / 'missing.nrrd'}: no such file")
    assert problems[3].startswith(f"{csv_name}:7: patient P2 nodule 1: T1: {tmp_path / 'broken.nii'}: cannot read")
    assert problems[4].startswith(f"{csv_name}:9: patient P3 nodule 1: T1: {tmp_path / 'good.nrrd'}: nodule centre")
    assert "outside the scan" in problems[4]
    assert len(problems) == 5
    (sample,) = [i for i in items if isinstance(i, Sample)]
    assert (sample.pid, sample.label) == ("P4", 0)
    assert sample.clinical == ClinicalVocabulary.default().encode(cohort.clinical["P4"])
    assert reads["missing.nrrd"] == 1  # a failed read is not retried for the patient's next nodule

    def described(item):
        if isinstance(item, CaseProblem):
            return str(item)
        return item.pid, item.nodule, item.t0.tobytes(), item.t1.tobytes()

    # two reader processes: the same items in the same order
    assert [described(i) for i in iter_samples(cohort, readers=2)] == [described(i) for i in items]


def test_patients_without_clinical_rows_get_missing_codes_and_a_fitted_vocabulary_is_used(tmp_path):
    image, centre = sphere_scan()
    sitk.WriteImage(image, str(tmp_path / "s.mha"))
    rows = nodule_rows("P1", "s.mha", "s.mha", centre) + nodule_rows("P2", "s.mha", "s.mha", centre)
    write_csv(tmp_path / "clinical.csv", ["pid", "age", "gender"], [["P1", "70", "1"]])
    cohort = read_cohort(write_csv(tmp_path / "cases.csv", HEADER, rows), tmp_path / "clinical.csv")
    vocabulary = ClinicalVocabulary.fit([{"age": "70", "gender": "2"}])
    samples, _ = samples_and_problems(iter_samples(cohort, vocabulary=vocabulary))
    assert samples[0].clinical == vocabulary.encode({"age": "70", "gender": "1"})
    assert samples[1].clinical == [0] * 6


# ---------------------------------------------------------------- NLST-cmst


def test_nlst_cmst_pre_cut_rois_are_scaled_and_bad_cases_reported(tmp_path):
    rng = np.random.default_rng(0)
    rois = tmp_path / "rois"
    rois.mkdir()
    p1_t0 = rng.integers(0, 256, size=(16, 64, 64)).astype(np.uint8)
    p1_t1 = rng.uniform(0, 255, size=(16, 64, 64))
    np.save(rois / "100001_T0.npy", p1_t0)
    np.save(rois / "100001_T1.npy", p1_t1)
    np.save(rois / "100002_T0.npy", np.zeros((16, 64, 63), np.uint8))
    np.save(rois / "100002_T1.npy", np.zeros((16, 64, 64), np.uint8))
    np.save(rois / "100003_T0.npy", np.full((16, 64, 64), 100, np.uint8))
    np.save(rois / "100006_T0.npy", np.full((16, 64, 64), 300.0))
    np.save(rois / "100006_T1.npy", np.zeros((16, 64, 64)))
    for tp in ("T0", "T1"):  # already scaled to 0..1
        np.save(rois / f"100008_{tp}.npy", np.random.default_rng(8).random((16, 64, 64)))
    header = ["Subject ID", "study_yr", "x", "y", "z1", "z2", "label"]
    rows = [
        ["100001", "T0", "30", "40", "10", "14", "1"],  # line 2
        ["100001", "T1", "31", "40", "10", "14", "1"],
        ["100001", "T2", "31", "41", "10", "15", "1"],
        ["100002", "0", "30", "40", "10", "14", "0"],  # line 5: numeric study_yr accepted
        ["100002", "1", "30", "40", "10", "14", "0"],
        ["100003", "T0", "30", "40", "10", "14", "0"],  # line 7
        ["100004", "T0", "30", "40", "10", "14", "0"],  # line 8
        ["100004", "T1", "30", "40", "10", "14", "1"],  # line 9: labels disagree
        ["100005", "T0", "30", "40", "10", "14", "0"],  # line 10
        ["100005", "T5", "30", "40", "10", "14", "0"],  # line 11: bad study_yr
        ["100006", "T0", "30", "40", "10", "14", "0"],  # line 12
        ["100007", "T0", "30", "40", "10", "14", "0"],  # line 13
        ["100007", "T0", "30", "40", "10", "14", "0"],  # line 14: duplicate
        ["100008", "T0", "30", "40", "10", "14", "0"],
        ["100008", "T1", "30", "40", "10", "14", "0"],
    ]
    write_csv(tmp_path / "nlst.csv", header, rows)
    write_csv(tmp_path / "clinical.csv", ["pid", "race", "cigsmok", "gender", "age", "scr_res0", "scr_iso0"],
              [["100001", "2", "1", "1", "66", "4", "1"]])

    samples, problems = samples_and_problems(iter_nlst_cmst(tmp_path / "nlst.csv", rois, tmp_path / "clinical.csv"))
    (sample,) = samples
    assert (sample.pid, sample.nodule, sample.label) == ("100001", "1", 1)
    assert sample.t0.dtype == sample.t1.dtype == np.float32
    assert np.allclose(sample.t0, p1_t0 / 255.0) and np.allclose(sample.t1, p1_t1 / 255.0, atol=1e-6)
    assert sample.clinical == ClinicalVocabulary.default().encode({"race": 2, "cigsmok": 1, "gender": 1, "age": 66,
                                                                   "scr_res0": 4, "scr_iso0": 1})
    csv_name = str(tmp_path / "nlst.csv")
    assert [str(p) for p in problems] == [
        f"{csv_name}:11: patient 100005 nodule 1: study_yr 'T5' is not one of T0, T1, T2",
        f"{csv_name}:8: patient 100004 nodule 1: labels disagree: 0 on line 8, 1 on line 9",
        f"{csv_name}:14: patient 100007 nodule 1: duplicate T0 row (also on line 13)",
        f"{rois / '100002_T0.npy'}: patient 100002 nodule 1: ROI shape (16, 64, 63), expected (16, 64, 64)",
        f"{rois / '100003_T1.npy'}: patient 100003 nodule 1: ROI file missing",
        f"{rois / '100006_T0.npy'}: patient 100006 nodule 1: ROI values must be finite and within 0..255 "
        "(DSB2017 preprocessing)",
        f"{rois / '100008_T0.npy'}: patient 100008 nodule 1: ROI values all lie within 0..1 (already scaled, or "
        "empty); expected DSB2017's 0..255",
    ]


def test_nlst_cmst_file_errors_raise_at_the_call(tmp_path):
    write_csv(tmp_path / "nlst.csv", ["Subject", "study_yr"], [["1", "T0"]])
    with pytest.raises(ValueError, match="nlst.csv: missing column.* Subject ID"):
        iter_nlst_cmst(tmp_path / "nlst.csv", tmp_path)


@pytest.mark.parametrize("kind,message", [
    ("2-D", "must be 3-D, got a 2-D image"),
    ("4-D", "must be 3-D, got a 4-D image"),
    ("truncated", "cannot read image"),
])
def test_images_of_the_wrong_shape_or_cut_short_are_refused_by_name(tmp_path, kind, message):
    path = tmp_path / f"{kind}.nrrd"
    if kind == "2-D":
        sitk.WriteImage(sitk.Image([10, 10], sitk.sitkInt16) - 1000, str(path))
    elif kind == "4-D":
        sitk.WriteImage(sitk.Image([4, 4, 4, 3], sitk.sitkInt16), str(path))
    else:
        sitk.WriteImage(sitk.Image([40, 40, 40], sitk.sitkInt16) - 1000, str(path))
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=f"{kind}.nrrd.*{message}"):
        read_image(path)

