"""Long prediction runs survive: rows written as they come, an interrupted run resumed, nothing repeated."""

import csv
import subprocess
import sys
import time

from CSFNetLib.cli import main


def keys(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return [(row["pid"], row["nodule"]) for row in csv.DictReader(handle)]


def test_a_killed_prediction_resumes_and_every_case_is_there_exactly_once(synthetic_cohort, tmp_path, capsys,
                                                                          monkeypatch):
    cohort = tmp_path / "cohort"  # the synthetic cohort, its scans by absolute path, and a row in error
    cohort.mkdir()
    with open(synthetic_cohort / "cases.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["image"] = str(synthetic_cohort / row["image"])
    rows.insert(0, {**rows[0], "pid": "BAD", "x": "abc"})
    with open(cohort / "cases.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "results.csv"
    common = ["predict", "--clinical", str(synthetic_cohort / "clinical.csv"), "--device", "cpu", "--batch-size", "1"]
    run = subprocess.Popen([sys.executable, "-m", "CSFNetLib.cli", *common, "--cases", "cases.csv", "--out", str(out)],
                           cwd=cohort, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = tmp_path / ".results.csv.partial"
    deadline = time.monotonic() + 600
    while run.poll() is None and time.monotonic() < deadline:
        if partial.exists() and len(partial.read_text(encoding="utf-8").splitlines()) >= 4:  # header + 3 rows
            break
        time.sleep(0.02)
    run.kill()
    assert run.wait() < 0, "the run finished before it could be interrupted"
    assert not out.exists()  # an unfinished run never looks finished
    written = keys(partial)
    assert len(written) >= 3 and written[0][0] == "BAD"

    monkeypatch.chdir(tmp_path)  # resumed from elsewhere, the cases file spelt another way
    common += ["--cases", "cohort/cases.csv"]
    assert main([*common, "--out", str(out)]) == 2  # an interrupted run is not silently thrown away
    assert "--resume" in capsys.readouterr().err
    assert main([*common, "--out", str(out), "--resume"]) == 1  # 1: the row in error
    assert not partial.exists() and not (tmp_path / ".results.csv.partial.json").exists()

    reference = tmp_path / "reference.csv"
    assert main([*common, "--out", str(reference)]) == 1
    assert keys(out)[: len(written)] == written  # the interrupted run's rows were kept, not redone
    assert out.read_bytes() == reference.read_bytes()  # each case (and error) once, in order, same line endings


def test_a_resumed_run_must_be_the_same_run(synthetic_cohort, tmp_path, capsys):
    out = tmp_path / "results.csv"
    (tmp_path / ".results.csv.partial").write_text("pid,nodule\n", encoding="utf-8")
    (tmp_path / ".results.csv.partial.json").write_text('{"cases": "another cohort"}', encoding="utf-8")
    code = main(["predict", "--cases", str(synthetic_cohort / "cases.csv"), "--out", str(out), "--device", "cpu",
                 "--resume"])
    assert code == 2 and "written by another run" in capsys.readouterr().err


class _Model:
    threshold, name, version, device_text, precision = 0.5, "model", "1", "cpu", "fp32"


def test_a_run_killed_before_its_header_reached_the_disk_resumes_with_one(tmp_path):
    from CSFNetLib.results_file import ResultsWriter

    out = tmp_path / "results.csv"
    first = ResultsWriter(out, _Model(), run={"cases": "c"}).__enter__()
    first._handle.close()
    (tmp_path / ".results.csv.partial").write_bytes(b"")  # as if killed before the header was flushed
    with ResultsWriter(out, _Model(), resume=True, run={"cases": "c"}) as again:
        again.prediction("P1", "1", 0.7)
    with open(out, newline="", encoding="utf-8") as handle:
        assert [(r["pid"], r["p_malignant"]) for r in csv.DictReader(handle)] == [("P1", "0.700000")]


def test_the_prediction_follows_the_probability_as_written(tmp_path):
    from CSFNetLib.results_file import ResultsWriter

    with ResultsWriter(tmp_path / "results.csv", _Model()) as results:
        results.prediction("P1", "1", 0.4999996)  # written as 0.500000: at the threshold
        results.prediction("P2", "1", 0.4999994)  # written as 0.499999
    with open(tmp_path / "results.csv", newline="", encoding="utf-8") as handle:
        rows = [(r["p_malignant"], r["prediction"]) for r in csv.DictReader(handle)]
    assert rows == [("0.500000", "1"), ("0.499999", "0")]
