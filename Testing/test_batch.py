"""Batch script over scene files and cohorts (slicer-core scenes, the shipped demo model, CPU)."""

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("slicer")

from CSFNetLib.cli import main as csfnet  # noqa: E402
from CSFNetLib.scene.batch import main as batch  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "CSFNetModule" / "Scripts" / "csfnet_batch.py"


def read_results(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def probabilities(rows):
    return {(r["pid"], r["nodule"]): float(r["p_malignant"]) for r in rows if not r["error"]}


def assert_same(found, expected):
    assert found.keys() == expected.keys()
    assert all(abs(found[k] - expected[k]) <= 1e-5 for k in found), (found, expected)  # batching: float rounding


@pytest.fixture(scope="module")
def cohort_run(synthetic_cohort, tmp_path_factory):
    """The synthetic cohort through the batch script, each patient's scene saved with its results."""
    out = tmp_path_factory.mktemp("batch")
    code = batch(["--cases", str(synthetic_cohort / "cases.csv"), "--clinical", str(synthetic_cohort / "clinical.csv"),
                  "--out", str(out / "results.csv"), "--save-dir", str(out / "scenes"), "--device", "cpu"])
    return code, out


def test_a_cohort_batch_gives_what_csfnet_predict_gives(cohort_run, synthetic_cohort, tmp_path):
    code, out = cohort_run
    assert code == 0
    assert csfnet(["predict", "--cases", str(synthetic_cohort / "cases.csv"), "--clinical",
                   str(synthetic_cohort / "clinical.csv"), "--out", str(tmp_path / "cli.csv"), "--device", "cpu"]) == 0
    scene_path = read_results(out / "results.csv")
    assert len(scene_path) == len(read_results(synthetic_cohort / "cases.csv")) // 2  # every nodule, once
    assert_same(probabilities(scene_path), probabilities(read_results(tmp_path / "cli.csv")))
    pids = {r["pid"] for r in scene_path}
    assert {p.stem for p in (out / "scenes").glob("*.mrb")} == pids


def test_saved_scenes_rerun_to_the_same_results_and_bad_scenes_are_reported(cohort_run, synthetic_cohort,
                                                                             tmp_path, capsys):
    _, out = cohort_run
    scenes = sorted((out / "scenes").glob("*.mrb"))
    broken = tmp_path / "broken.mrb"
    broken.write_bytes(b"not a zip")
    assert batch(["--scenes", *map(str, scenes), str(broken), "--clinical", str(synthetic_cohort / "clinical.csv"),
                  "--out", str(tmp_path / "again.csv"), "--device", "cpu", "--no-attention"]) == 1
    rows = read_results(tmp_path / "again.csv")
    errors = [r for r in rows if r["error"]]
    assert [r["pid"] for r in errors] == ["broken"] and "broken.mrb" in errors[0]["error"]
    assert "broken.mrb" in capsys.readouterr().err
    assert_same(probabilities(rows), probabilities(read_results(out / "results.csv")))


def test_scene_nodes_are_found_by_name_or_the_case_is_reported(cohort_run, tmp_path):
    _, out = cohort_run
    scene = sorted((out / "scenes").glob("*.mrb"))[0]
    assert batch(["--scenes", str(scene), "--followup", "no such CT", "--out", str(tmp_path / "r.csv"),
                  "--device", "cpu"]) == 1
    (row,) = read_results(tmp_path / "r.csv")
    assert row["pid"] == scene.stem and "no node named 'no such CT'" in row["error"]


def test_a_cohort_batch_carries_on_past_bad_cases(synthetic_cohort, tmp_path):
    rows = read_results(synthetic_cohort / "cases.csv")
    pids = sorted({r["pid"] for r in rows})
    for row in rows:
        row["image"] = str(synthetic_cohort / row["image"])
        if row["pid"] == pids[0] and row["timepoint"] == "T1":
            row["x"] = "1e6"  # outside the scan
        if row["pid"] == pids[1] and row["timepoint"] == "T0":
            row["image"] = str(tmp_path / "missing.nrrd")
    keep = [r for r in rows if r["pid"] in pids[:3]]
    with open(tmp_path / "cases.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(keep[0]))
        writer.writeheader()
        writer.writerows(keep)
    out = tmp_path / "results.csv"
    assert batch(["--cases", str(tmp_path / "cases.csv"), "--out", str(out), "--device", "cpu", "--no-attention"]) == 1
    results = read_results(out)
    failed = {r["pid"]: r["error"] for r in results if r["error"]}
    assert "outside the scan" in failed[pids[0]] and "cases.csv:" in failed[pids[0]]
    assert "missing.nrrd" in failed[pids[1]]
    assert {r["pid"] for r in results if not r["error"]} == {pids[2]}
    assert len(results) == len(keep) // 2


def test_the_script_runs_under_plain_python_and_never_overwrites(cohort_run, synthetic_cohort, tmp_path):
    _, out = cohort_run
    scene = sorted((out / "scenes").glob("*.mrb"))[0]
    results = tmp_path / "results.csv"
    command = [sys.executable, str(SCRIPT), "--", "--scenes", str(scene), "--out", str(results), "--device", "cpu",
               "--save-dir", str(tmp_path), "--clinical", str(synthetic_cohort / "clinical.csv")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / scene.name).is_file()
    expected = probabilities(read_results(out / "results.csv"))
    assert_same(probabilities(read_results(results)), {k: v for k, v in expected.items() if k[0] == scene.stem})
    before = results.read_bytes()
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "exists" in again.stderr and results.read_bytes() == before


def test_an_interrupted_batch_resumes_without_redoing_or_repeating_a_case(cohort_run, synthetic_cohort, tmp_path):
    _, out = cohort_run
    results, partial = tmp_path / "results.csv", tmp_path / ".results.csv.partial"
    arguments = ["--cases", str(synthetic_cohort / "cases.csv"), "--clinical", str(synthetic_cohort / "clinical.csv"),
                 "--out", str(results), "--device", "cpu", "--no-attention"]
    run = subprocess.Popen([sys.executable, str(SCRIPT), "--", *arguments],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while run.poll() is None and time.monotonic() < deadline:
        if partial.exists() and len(partial.read_text(encoding="utf-8").splitlines()) >= 2:  # header + a row
            break
        time.sleep(0.02)
    run.kill()
    assert run.wait() < 0, "the batch finished before it could be interrupted"
    written = [(r["pid"], r["nodule"]) for r in read_results(partial)]
    assert batch(arguments) == 2  # an interrupted run is not silently thrown away
    assert batch([*arguments, "--resume"]) == 0
    rows = read_results(results)
    keys = [(r["pid"], r["nodule"]) for r in rows]
    assert keys[: len(written)] == written and len(set(keys)) == len(keys)  # kept, and nothing twice
    assert_same(probabilities(rows), probabilities(read_results(out / "results.csv")))


def run_script(*args, env=None, python_flags=()):
    return subprocess.run([sys.executable, *python_flags, str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_every_ending_of_the_script_is_an_exit_status(tmp_path):
    """Headless Slicer exits only on SystemExit: help, bad arguments, no usable torch, a crash."""
    assert run_script("--help").returncode == 0
    bad = run_script("--cases", "x.csv")
    assert bad.returncode == 2 and "--out" in bad.stderr

    fake = tmp_path / "site"  # a torch that is installed but does not load, as after a failed install
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text("raise ImportError('DLL load failed while importing _C')\n")
    (fake / "torch-2.5.0.dist-info").mkdir()
    (fake / "torch-2.5.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.5.0\n")
    env = {**os.environ, "PYTHONPATH": str(fake)}
    no_torch = run_script("--cases", "x.csv", "--out", str(tmp_path / "r.csv"), env=env)
    assert no_torch.returncode == 3 and "torch 2.5.0 is installed but does not load" in no_torch.stderr
    assert "pip install" in no_torch.stderr and not (tmp_path / "r.csv").exists()

    crashed = run_script("--help", python_flags=("-S",))  # no site-packages: the library cannot import numpy
    assert crashed.returncode == 4 and "ModuleNotFoundError" in crashed.stderr and "exit status 4" in crashed.stderr
