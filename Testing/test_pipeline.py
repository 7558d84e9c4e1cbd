"""Train -> evaluate -> predict end to end on a few synthetic patients (small config, seconds)."""

import csv
import json
import shutil
from typing import get_args

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from CSFNetLib.checkpoint import load_checkpoint
from CSFNetLib.cli import main
from CSFNetLib.cohort_csv import read_cohort
from CSFNetLib.dataset import RoiSet, augment_pairs
from CSFNetLib.evaluation import evaluate, table_with_intervals
from CSFNetLib.inference import threads_beside_readers
from CSFNetLib.model import CONFIGS
from CSFNetLib.options import CONFIG_NAMES, VARIANTS, Variant
from CSFNetLib.training import TrainSettings, train

SETTINGS = TrainSettings(epochs=2, batch_size=4, seed=0, fractions=(0.5, 0.25, 0.25))


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def trained(synthetic_cohort, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    summary = train(synthetic_cohort / "cases.csv", synthetic_cohort / "clinical.csv", run, SETTINGS, device="cpu")
    return run, summary


def test_training_writes_a_checkpoint_with_its_recipe_and_data_summary(trained):
    run, summary = trained
    ckpt = load_checkpoint(run / "model.pt")
    training = ckpt.metadata["training"]
    assert training["settings"]["learning_rate"] == 1e-4 and training["epochs_run"] == 2
    assert sum(training["patients"].values()) == 6
    assert ckpt.metadata["cohort"]["nodules"] >= 6
    split = json.loads((run / "split.json").read_text())
    assert not set(split["train"]) & set(split["test"]) and not set(split["validation"]) & set(split["test"])
    assert summary["best_epoch"] in (0, 1)
    # the tiny cohort's validation split holds one class: selection falls back to validation loss, and says so
    assert summary["selected_by"] == "validation loss (one-class validation split)"


def test_training_resumes_from_the_last_finished_epoch(synthetic_cohort, tmp_path, trained):
    epochs_seen = []

    def stop_after_first_epoch(status):
        if status.done:
            epochs_seen.append(status.epoch)
            if status.epoch == 0:
                raise Interrupt

    with pytest.raises(Interrupt):
        train(synthetic_cohort / "cases.csv", synthetic_cohort / "clinical.csv", tmp_path, SETTINGS, device="cpu",
              report=stop_after_first_epoch)
    assert (tmp_path / "state.pt").exists() and not (tmp_path / "model.pt").exists()
    train(synthetic_cohort / "cases.csv", synthetic_cohort / "clinical.csv", tmp_path, SETTINGS, device="cpu",
          report=stop_after_first_epoch)
    assert epochs_seen == [0, 1]  # epoch 0 was not trained again
    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]
    # the resumed run ends where the uninterrupted one did: weights after the last epoch, and the chosen ones
    for name in ("state.pt", "model.pt"):
        load = (lambda p: torch.load(p, weights_only=True)["model"]) if name == "state.pt" else \
            (lambda p: load_checkpoint(p).state_dict)
        resumed, straight = load(tmp_path / name), load(trained[0] / name)
        assert all(torch.allclose(resumed[k].float(), straight[k].float(), atol=1e-5) for k in straight), name


def test_a_resumed_run_must_ask_for_the_same_settings(synthetic_cohort, tmp_path):
    one_epoch = TrainSettings(epochs=1, batch_size=4, fractions=(0.5, 0.25, 0.25))
    train(synthetic_cohort / "cases.csv", synthetic_cohort / "clinical.csv", tmp_path, one_epoch, device="cpu")
    with pytest.raises(ValueError, match="other settings"):
        train(synthetic_cohort / "cases.csv", synthetic_cohort / "clinical.csv", tmp_path, SETTINGS, device="cpu")


def test_augmentation_keeps_time_points_aligned_and_changes_the_input():
    rng = np.random.default_rng(0)
    t0 = rng.random((3, 16, 64, 64)).astype(np.float32)
    t1 = t0.copy()
    a0, a1 = augment_pairs(t0, t1, np.random.default_rng(1), noise_sd=0.0)
    assert np.array_equal(a0, a1)  # same flips / rotations for both time points
    assert not np.array_equal(a0, t0)
    noisy0, noisy1 = augment_pairs(t0, t1, np.random.default_rng(1), noise_sd=0.02)
    assert not np.array_equal(noisy0, noisy1) and (noisy0 - a0).std() == pytest.approx(0.02, rel=0.1)


def test_augmentation_reaches_the_model_in_training_only(synthetic_cohort):
    cohort = read_cohort(synthetic_cohort / "cases.csv", synthetic_cohort / "clinical.csv")
    from CSFNetLib.samples import iter_samples

    rois, _ = RoiSet.collect(iter_samples(cohort))
    plain = rois.batch([0, 1], torch.device("cpu"))
    augmented = rois.batch([0, 1], torch.device("cpu"), augment=np.random.default_rng(3))
    assert torch.equal(plain[0], torch.from_numpy(rois.t0[[0, 1]])[:, None])
    assert not torch.equal(plain[0], augmented[0])
    assert torch.equal(plain[2], torch.from_numpy(rois.clinical[[0, 1]]))


def test_training_hides_some_clinical_values_so_the_missing_and_unknown_rows_are_learnt():
    from CSFNetLib.clinical import MISSING_INDEX, UNKNOWN_INDEX
    from CSFNetLib.dataset import hide_clinical_values

    clinical = np.random.default_rng(0).integers(2, 40, size=(4000, 6))
    hidden = hide_clinical_values(clinical, np.random.default_rng(1))
    changed = hidden != clinical
    assert changed.mean() == pytest.approx(0.05, abs=0.005)
    assert (hidden[changed] == MISSING_INDEX).mean() == pytest.approx(0.5, abs=0.05)
    assert set(np.unique(hidden[changed])) == {MISSING_INDEX, UNKNOWN_INDEX} and hidden.dtype == clinical.dtype


def test_evaluate_reports_networks_and_clinical_models_with_intervals(synthetic_cohort, trained, tmp_path):
    cohort = read_cohort(synthetic_cohort / "cases.csv", synthetic_cohort / "clinical.csv")
    report = evaluate(cohort, {"CSF-net": trained[0] / "model.pt"}, out_dir=tmp_path, device="cpu", resamples=50)
    assert set(report.rows) == {"CSF-net", "Brock (PanCan)", "Mayo", "Volume growth (VDT)", "Diameter growth",
                                "Lung-RADS"}
    for row in report.rows.values():
        for metric in ("accuracy", "precision", "f1", "auc", "recall"):
            low, high = row["ci95"][metric]
            assert low <= high
    table = table_with_intervals(report)
    assert table.splitlines()[0] == "| Methods | Acc | Prec | F1 score | AUC | Rec |"
    assert "| Brock (PanCan) |" in table
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["nodules"] == report.nodules
    with open(tmp_path / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == report.nodules and {"CSF-net", "Brock (PanCan)", "Mayo", "Lung-RADS"} <= set(rows[0])
    roc = sitk.ReadImage(str(tmp_path / "roc.png"))
    assert roc.GetNumberOfComponentsPerPixel() == 3


def test_predict_writes_results_and_reports_failed_cases(synthetic_cohort, trained, tmp_path, capsys):
    cases = list(csv.DictReader(open(synthetic_cohort / "cases.csv", newline="")))
    broken = [dict(r) for r in cases]
    first_pid = broken[0]["pid"]
    for row in broken:
        if row["pid"] == first_pid and row["timepoint"] == "T1":
            row["image"] = "images/missing.nrrd"  # this patient's nodules fail
    shutil.copytree(synthetic_cohort / "images", tmp_path / "images")
    with open(tmp_path / "cases.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(broken[0]))
        writer.writeheader()
        writer.writerows(broken)
    out = tmp_path / "results.csv"
    args = ["predict", "--cases", str(tmp_path / "cases.csv"), "--clinical", str(synthetic_cohort / "clinical.csv"),
            "--checkpoint", str(trained[0] / "model.pt"), "--out", str(out), "--device", "cpu", "--batch-size", "3"]
    assert main(args) == 1  # some cases failed
    results = list(csv.DictReader(open(out, newline="")))
    failed = [r for r in results if r["error"]]
    assert failed and all(r["pid"] == first_pid and "missing.nrrd" in r["error"] for r in failed)
    good = [r for r in results if not r["error"]]
    assert len(good) + len(failed) == len(cases) // 2
    assert all(0.0 <= float(r["p_malignant"]) <= 1.0 and r["prediction"] in ("0", "1") for r in good)
    assert "missing.nrrd" in capsys.readouterr().err
    before = out.read_bytes()
    assert main(args) == 2 and out.read_bytes() == before  # an existing results file is never overwritten
    assert "exists" in capsys.readouterr().err


def test_predict_survives_a_last_batch_of_failed_cases(synthetic_cohort, trained, tmp_path, capsys):
    rows = list(csv.DictReader(open(synthetic_cohort / "cases.csv", newline="")))
    last_pid = rows[-1]["pid"]
    for row in rows:
        row["image"] = str(synthetic_cohort / row["image"])
        if row["pid"] == last_pid:
            row["x"] = "1e6"  # far outside the scan
    with open(tmp_path / "cases.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "results.csv"
    code = main(["predict", "--cases", str(tmp_path / "cases.csv"), "--checkpoint", str(trained[0] / "model.pt"),
                 "--out", str(out), "--device", "cpu", "--batch-size", "1"])
    assert code == 1
    results = list(csv.DictReader(open(out, newline="")))
    assert [r["pid"] for r in results if r["error"]] == [last_pid]
    assert "outside the scan" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*partial"))


def test_predict_reads_the_authors_precut_rois(trained, tmp_path):
    rng = np.random.default_rng(0)
    with open(tmp_path / "nlst.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Subject ID", "study_yr", "x", "y", "z1", "z2", "label"])
        for pid in ("100001", "100002"):
            for year in ("T0", "T1"):
                writer.writerow([pid, year, 32, 32, 6, 10, 1])
                np.save(tmp_path / f"{pid}_{year}.npy", (rng.random((16, 64, 64)) * 255).astype(np.uint8))
    out = tmp_path / "results.csv"
    assert main(["predict", "--cases", str(tmp_path / "nlst.csv"), "--nlst-cmst", str(tmp_path), "--checkpoint",
                 str(trained[0] / "model.pt"), "--out", str(out), "--device", "cpu"]) == 0
    results = list(csv.DictReader(open(out, newline="")))
    assert [r["pid"] for r in results] == ["100001", "100002"] and all(r["p_malignant"] for r in results)


def test_cli_choices_match_the_library():
    assert set(CONFIG_NAMES) == set(CONFIGS) and tuple(VARIANTS) == get_args(Variant)


def test_train_command_shows_progress_with_loss_and_validation_auc(synthetic_cohort, tmp_path, capsys):
    code = main(["train", "--cases", str(synthetic_cohort / "cases.csv"), "--clinical",
                 str(synthetic_cohort / "clinical.csv"), "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--batch-size", "4", "--device", "cpu"])
    assert code == 0
    err = capsys.readouterr().err  # stderr is not a terminal here: no bar, one line per epoch
    assert "csfnet train: epoch 1/1: loss " in err and "val AUC" in err and "\r" not in err
    assert (tmp_path / "run" / "model.pt").exists()


def test_k_fold_training_tests_every_patient_once(synthetic_cohort, tmp_path):
    rows = list(csv.DictReader(open(synthetic_cohort / "cases.csv", newline="")))
    second = sorted({r["pid"] for r in rows if r["label"] == "0"})[0]
    for row in rows:  # two malignant patients, so that each of two stratified folds gets one
        row["image"] = str(synthetic_cohort / row["image"])
        row["label"] = "1" if row["pid"] == second else row["label"]
    with open(tmp_path / "cases.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    settings = TrainSettings(epochs=1, batch_size=4)
    summary = train(tmp_path / "cases.csv", synthetic_cohort / "clinical.csv", tmp_path, settings,
                    folds=2, device="cpu")
    tested = [json.loads((tmp_path / f"fold_{k}" / "split.json").read_text())["test"] for k in (1, 2)]
    assert not set(tested[0]) & set(tested[1]) and len(tested[0]) + len(tested[1]) == 6
    assert len(summary["folds"]) == 2 and (tmp_path / "cv_summary.json").exists()
    for k in (1, 2):
        split = json.loads((tmp_path / f"fold_{k}" / "split.json").read_text())
        assert not set(split["train"]) & set(split["test"]) and not set(split["validation"]) & set(split["test"])
        fold = json.loads((tmp_path / f"fold_{k}" / "summary.json").read_text())
        if not split["validation"]:  # too few patients to validate on: the last epoch, said so
            assert fold["selected_by"] == "the last epoch (no validation patients)"
            assert fold["best_epoch"] == settings.epochs - 1


def test_the_network_takes_the_cores_the_readers_leave(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(6)
        with threads_beside_readers(3):
            assert torch.get_num_threads() == 5
        with threads_beside_readers(8):
            assert torch.get_num_threads() == 1
        with threads_beside_readers(1):  # reading in this process, between the network's batches
            assert torch.get_num_threads() == 6
        assert torch.get_num_threads() == 6
    finally:
        torch.set_num_threads(before)
