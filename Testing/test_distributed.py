"""Several processes (torchrun, gloo on the CPU): prediction shared by patient, training with DDP."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch

from CSFNetLib.checkpoint import load_checkpoint
from CSFNetLib.cli import main
from CSFNetLib.distributed import Ranks, share


def torchrun(*args, processes=2):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "-m", "CSFNetLib.cli", *args, "--distributed"]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # as this process computes
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)


def test_work_is_shared_round_robin():
    ranks = [Ranks(r, 3) for r in range(3)]
    assert [share(list(range(7)), r) for r in ranks] == [[0, 3, 6], [1, 4], [2, 5]]
    assert [[i for i in range(7) if r.mine(i)] for r in ranks] == [[0, 3, 6], [1, 4], [2, 5]]


def test_two_processes_predict_exactly_what_one_process_writes(synthetic_cohort, tmp_path):
    rows = list(csv.DictReader(open(synthetic_cohort / "cases.csv", newline="")))
    pids = list(dict.fromkeys(r["pid"] for r in rows))
    for row in rows:
        row["image"] = str(synthetic_cohort / row["image"])
        if row["pid"] == pids[1] and row["timepoint"] == "T1":
            row["image"] = str(tmp_path / "missing.nrrd")  # a case that fails while reading scans
    rows.append({**rows[0], "x": "not a number"})  # a problem found in the CSV itself
    with open(tmp_path / "cases.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    common = ["--cases", str(tmp_path / "cases.csv"), "--clinical", str(synthetic_cohort / "clinical.csv"),
              "--device", "cpu", "--batch-size", "1"]  # each case alone: no batch-composition rounding
    assert main(["predict", *common, "--out", str(tmp_path / "one.csv")]) == 1
    done = torchrun("predict", *common, "--out", str(tmp_path / "two.csv"))
    assert done.returncode == 1, done.stderr[-2000:]
    one, two = (tmp_path / "one.csv").read_text(), (tmp_path / "two.csv").read_text()
    assert two == one and "missing.nrrd" in one and "not a number" in one
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_two_processes_train_with_ddp_and_the_loss_falls(synthetic_cohort, tmp_path):
    out = tmp_path / "run"
    done = torchrun("train", "--cases", str(synthetic_cohort / "cases.csv"), "--clinical",
                    str(synthetic_cohort / "clinical.csv"), "--out", str(out), "--epochs", "4", "--batch-size", "2",
                    "--device", "cpu", "--roi-cache", str(tmp_path / "rois.npz"))
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["epochs_run"] == 4
    history = json.loads((out / "history.json").read_text())
    assert history[-1]["loss"] < history[0]["loss"]
    assert load_checkpoint(out / "model.pt").metadata["training"]["processes"] == 2
    assert done.stdout.count('"processes": 2') == 1  # the summary is printed by rank 0 only


def test_distributed_without_torchrun_is_refused(synthetic_cohort, tmp_path, capsys):
    env = {k: os.environ.pop(k) for k in ("RANK", "WORLD_SIZE") if k in os.environ}
    try:
        assert main(["predict", "--cases", str(synthetic_cohort / "cases.csv"), "--out", str(tmp_path / "r.csv"),
                     "--device", "cpu", "--distributed"]) == 2
    finally:
        os.environ.update(env)
    assert "launched by torchrun" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "predict"])
def test_both_commands_offer_distributed(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--distributed" in capsys.readouterr().out
