"""The library's shape holds: one home for options, a visible Slicer boundary, errors worded per front end."""

import os
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
import torch

from CSFNetLib.errors import InterruptedRun, ResultsExist, command_line_option
from CSFNetLib.inference import PredictorCache
from CSFNetLib.model import build_model
from CSFNetLib.options import CONFIG_NAMES, DEVICES, VARIANTS, Device, Variant
from CSFNetLib.results_file import ResultsWriter
from CSFNetLib.training import TrainSettings

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "CSFNetModule" / "CSFNetLib"


def test_every_module_outside_scene_imports_without_slicer_or_vtk():
    modules = sorted("CSFNetLib." + ".".join(p.relative_to(LIBRARY).with_suffix("").parts).replace(".__init__", "")
                     for p in LIBRARY.rglob("*.py") if "scene" not in p.relative_to(LIBRARY).parts)
    code = ("import importlib, sys\n"
            "sys.modules['slicer'] = None; sys.modules['vtk'] = None\n"  # None: any import of them fails
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name.removesuffix('.__init__'))\n"
            "print('imported', len(sys.argv))")
    found = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "CSFNetModule", capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert len(modules) > 30


def test_the_scene_subpackage_is_what_needs_slicer():
    code = "import sys; sys.modules['slicer'] = None\nimport CSFNetLib.scene.nodes"
    found = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "CSFNetModule", capture_output=True, text=True)
    assert found.returncode != 0 and "slicer" in found.stderr


def test_options_and_model_configurations_import_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from CSFNetLib.options import DEVICES\nfrom CSFNetLib.model.config import CONFIGS\n"
            "import CSFNetLib.cli, CSFNetLib.errors\nprint(sorted(CONFIGS))")
    found = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "CSFNetModule", capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == ["['full',", "'small']"]


def test_the_literal_types_and_their_menus_agree():
    from CSFNetLib.model.config import CONFIGS

    assert DEVICES == get_args(Device) and set(CONFIG_NAMES) == set(CONFIGS)
    assert tuple(VARIANTS) == get_args(Variant)


def test_library_errors_name_parameters_and_the_command_line_names_its_flags(tmp_path):
    (tmp_path / "results.csv").write_text("pid\n")
    with pytest.raises(ResultsExist) as refused:
        ResultsWriter.check_target(tmp_path / "results.csv")
    assert "pass overwrite=True" in str(refused.value) and "--" not in str(refused.value)
    assert refused.value.worded(command_line_option).endswith("pass --overwrite to replace it")
    assert isinstance(refused.value, FileExistsError)  # callers catching the builtin still do
    (tmp_path / ".other.csv.partial").write_text("pid\n")
    with pytest.raises(InterruptedRun) as interrupted:
        ResultsWriter.check_target(tmp_path / "other.csv")
    assert "--resume to continue it or --overwrite" in interrupted.value.worded(command_line_option)


def test_a_path_with_braces_is_a_fact_not_a_field(tmp_path):
    odd = tmp_path / "{resume}"
    odd.mkdir()
    (odd / "results.csv").write_text("pid\n")
    with pytest.raises(ResultsExist) as refused:
        ResultsWriter.check_target(odd / "results.csv")
    assert str(odd / "results.csv") in refused.value.worded(command_line_option)


def test_the_predictor_cache_reuses_a_model_and_reloads_a_changed_checkpoint(tmp_path):
    from CSFNetLib.checkpoint import save_checkpoint
    from CSFNetLib.clinical import ClinicalVocabulary
    from CSFNetLib.preprocessing import DEFAULT_PREPROCESSING

    vocabulary = ClinicalVocabulary.default()

    path = tmp_path / "model.pt"
    torch.manual_seed(0)
    save_checkpoint(path, build_model("small", vocabulary), DEFAULT_PREPROCESSING, vocabulary)
    cache = PredictorCache()
    first = cache.get(path, "cpu")
    assert cache.get(str(path), "cpu") is first
    torch.manual_seed(1)
    save_checkpoint(path, build_model("small", vocabulary), DEFAULT_PREPROCESSING, vocabulary)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # a later write, whatever the clock
    second = cache.get(path, "cpu")
    assert second is not first
    changed = [k for k, v in first.model.state_dict().items()
               if v.dtype.is_floating_point and not torch.equal(v, second.model.state_dict()[k])]
    assert changed


def test_training_settings_read_back_the_same_and_older_records_take_the_defaults():
    settings = TrainSettings(epochs=3, fractions=(0.5, 0.25, 0.25))
    assert TrainSettings.from_record(settings.record()) == settings
    older = {k: v for k, v in settings.record().items() if k not in ("adam_betas", "augmentation", "fold_fractions")}
    assert TrainSettings.from_record(older) == settings
    assert TrainSettings.from_record({**settings.record(), "adam_betas": [0.9, 0.999]}) != settings


def test_fewer_than_one_fold_is_refused_before_any_work(tmp_path, capsys):
    from CSFNetLib.cli import main

    code = main(["train", "--cases", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "run"), "--folds", "0"])
    assert code == 2 and "--folds must be at least 1" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_synthetic_cohort_of_no_patients_is_refused(tmp_path, capsys):
    from CSFNetLib.cli import main

    assert main(["synth", "--out", str(tmp_path / "cohort"), "--cases", "0"]) == 2
    assert "--cases must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "cohort").exists()


def test_every_csfnetlib_import_in_the_readme_and_docs_resolves():
    """Code examples users copy: each `from CSFNetLib... import names` line names what is there."""
    import importlib
    import re

    pattern = re.compile(r"^\s*from (CSFNetLib[\w.]*) import ([\w, ]+)", re.MULTILINE)
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = [(page.name, module, name.strip()) for page in pages
             for module, names in pattern.findall(page.read_text(encoding="utf-8"))
             for name in names.split(",") if name.strip()]
    missing = [f"{page}: {module}.{name}" for page, module, name in found
               if not hasattr(importlib.import_module(module), name)]
    assert len(found) >= 10 and missing == []
