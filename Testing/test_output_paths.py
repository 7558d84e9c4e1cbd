"""Outputs checked before any work: folders for files and the reverse, places that cannot be written, a full
disk; and a run that fails before its first row leaves nothing behind."""

from pathlib import Path

import pytest

from CSFNetLib.cli import main
from CSFNetLib.output_paths import check_output_file, check_output_folder

WRONG_HEADER = "patient,nod,time,img,x,y,z\nP1,1,T0,a.nrrd,1,2,3\n"


def test_a_results_path_naming_a_folder_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    code = main(["predict", "--cases", "missing.csv", "--out", "out"])
    error = capsys.readouterr().err
    assert code == 2 and "out: a folder, not a file name for the results (e.g. out/results.csv)" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("option", ["--attention-dir", "--dicom-out", "--report-dir"])
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, option):
    taken = tmp_path / "taken"
    taken.write_text("mine\n")
    code = main(["predict", "--cases", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "results.csv"),
                 option, str(taken)])
    assert code == 2 and "taken: a file, not a folder for" in capsys.readouterr().err
    assert taken.read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_a_place_that_cannot_be_written_is_named(capsys):
    code = main(["predict", "--cases", "missing.csv", "--out", "/proc/csfnet/results.csv"])
    assert code == 2 and "/proc/csfnet/results.csv: cannot write the results there" in capsys.readouterr().err
    with pytest.raises(PermissionError, match="cannot write attention maps there"):
        check_output_folder("/proc/csfnet/maps", "attention maps")


def test_a_disk_without_room_for_the_results_is_refused(tmp_path):
    with pytest.raises(OSError, match=r"MiB free, under the \d+ MiB a run needs for measurements"):
        check_output_file(tmp_path / "new" / "measurements.csv", "measurements", overwrite=False,
                          min_free_bytes=2**62)
    check_output_file(tmp_path / "new" / "measurements.csv", "measurements", overwrite=False)  # room enough
    assert not (tmp_path / "new").exists()  # checking makes nothing


def test_a_run_refused_before_its_first_row_leaves_no_partial_file(tmp_path, capsys):
    cases, rois = tmp_path / "cases.csv", tmp_path / "rois"
    cases.write_text(WRONG_HEADER)
    rois.mkdir()
    out = tmp_path / "results.csv"
    assert main(["predict", "--cases", str(cases), "--nlst-cmst", str(rois), "--out", str(out)]) == 2
    assert "missing column(s)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cases.csv", "rois"]
    assert main(["predict", "--cases", str(cases), "--nlst-cmst", str(rois), "--out", str(out)]) == 2
    assert "interrupted run" not in capsys.readouterr().err  # the rerun is not sent to --resume


def test_an_interrupted_run_with_rows_keeps_them_for_resume(tmp_path):
    from CSFNetLib.inference import Predictor
    from CSFNetLib.results_file import ResultsWriter

    out = tmp_path / "results.csv"
    with pytest.raises(RuntimeError):
        with ResultsWriter(out, Predictor(device="cpu")) as results:
            results.problem("P1", "1", "unreadable scan")
            raise RuntimeError("killed")
    assert Path(tmp_path / ".results.csv.partial").read_text().count("unreadable scan") == 1
