"""The shipped demo weights: found through the manifest, checked by SHA-256, labelled as synthetic."""

import json
import shutil

import numpy as np
import pytest
import torch

from CSFNetLib.cohort_csv import read_cohort
from CSFNetLib.inference import Predictor
from CSFNetLib.shipped_weights import model_entries, model_path, models_dir, read_manifest


def test_every_manifest_entry_verifies_and_says_it_was_trained_on_phantoms():
    manifest = read_manifest()
    assert manifest["default"] == "csfnet-small-demo"
    for entry in model_entries():
        path = model_path(entry["name"])
        assert path.stat().st_size < 8 * 2**20  # a few MB
        assert "synthetic" in entry["note"] and "not for clinical use" in entry["note"]
        assert entry["training_cohort"]["seed"] == 1001 and entry["recipe"].startswith("Resources/models/")


def test_the_default_predictor_is_the_demo_model_and_its_metadata_says_synthetic():
    predictor = Predictor(device="cpu")
    assert predictor.name == "csfnet-small-demo"
    assert "not for clinical use" in predictor.checkpoint.metadata["note"]
    assert predictor.checkpoint.model_config.name == "small"
    assert predictor.model.head[0].weight.dtype == torch.float32  # stored as float16, run as float32


def test_a_weights_file_that_does_not_match_its_manifest_is_refused(tmp_path):
    for item in models_dir().iterdir():
        if item.suffix in (".pt", ".json"):
            shutil.copy(item, tmp_path / item.name)
    damaged = tmp_path / "csfnet-small-demo.pt"
    data = bytearray(damaged.read_bytes())
    data[-100] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256 .* does not match the manifest"):
        model_path("csfnet-small-demo", tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    with pytest.raises(ValueError, match="no model named 'nope'"):
        model_path("nope", tmp_path)
    assert manifest["models"]


def test_demo_model_separates_a_growing_nodule_from_a_stable_one(synthetic_cohort):
    from CSFNetLib.dataset import RoiSet
    from CSFNetLib.samples import iter_samples

    predictor = Predictor(device="cpu")
    cohort = read_cohort(synthetic_cohort / "cases.csv", synthetic_cohort / "clinical.csv")
    rois, _ = RoiSet.collect(iter_samples(cohort, predictor.preprocessing, predictor.vocabulary))
    p = predictor.predict(rois)
    assert p.shape == (len(rois),) and np.all((p >= 0) & (p <= 1))
    course = {(c.pid, c.nodule): c.t0.extra["course"] for c in cohort.cases}
    courses = np.array([course[key] for key in zip(rois.pids, rois.nodules)])
    growing_cancer = (rois.labels == 1) & (courses == "grows")
    stable = courses == "stable"
    assert growing_cancer.any() and stable.any()  # the shared test cohort (seed 3) holds both
    assert p[growing_cancer].min() > 0.5 > p[stable].max()


def test_an_installed_module_finds_the_models_installed_beside_it(tmp_path):
    """Slicer installs CSFNetLib and Resources/models side by side under qt-scripted-modules/."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    installed = tmp_path / "qt-scripted-modules"
    shutil.copytree(Path(models_dir()).parents[1] / "CSFNetModule" / "CSFNetLib", installed / "CSFNetLib")
    (installed / "Resources" / "models").mkdir(parents=True)
    shutil.copy(models_dir() / "manifest.json", installed / "Resources" / "models" / "manifest.json")
    env = {k: v for k, v in os.environ.items() if k not in ("CSFNET_MODELS_DIR", "PYTHONPATH")}
    script = "from CSFNetLib.shipped_weights import models_dir; print(models_dir())"
    found = subprocess.run([sys.executable, "-c", script],
                           cwd=installed, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(found) == installed / "Resources" / "models"
