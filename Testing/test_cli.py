import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from CSFNetLib.checkpoint import save_checkpoint
from CSFNetLib.cli import main
from CSFNetLib.clinical import ClinicalVocabulary
from CSFNetLib.model import build_model
from CSFNetLib.preprocessing import Preprocessing
from CSFNetLib.version import __version__

CSFNET = shutil.which("csfnet", path=str(Path(sys.executable).parent)) or shutil.which("csfnet")


@pytest.mark.skipif(CSFNET is None, reason="the csfnet command is installed by `pip install -e .`")
def test_installed_command_answers_version_and_help():
    version = subprocess.run([CSFNET, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"csfnet {__version__}"
    help_text = subprocess.run([CSFNET, "--help"], capture_output=True, text=True, check=True).stdout
    assert "usage: csfnet" in help_text and "info" in help_text


def test_module_entry_point_without_a_command_prints_help_and_fails():
    result = subprocess.run([sys.executable, "-m", "CSFNetLib.cli"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1] / "CSFNetModule")
    assert result.returncode == 2
    assert "usage: csfnet" in result.stdout


def test_info_describes_a_checkpoint(tmp_path, capsys):
    path = save_checkpoint(tmp_path / "m.pt", build_model("small"), Preprocessing(), ClinicalVocabulary.default(),
                           metadata={"note": "synthetic"})
    assert main(["info", "--checkpoint", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["checkpoint"]["model_config"]["name"] == "small"
    assert report["checkpoint"]["metadata"] == {"note": "synthetic"}
    assert report["configurations"]["full"]["parameters_without_embedding"] > 40e6


def test_info_on_a_bad_checkpoint_names_it_and_fails(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["info", "--checkpoint", str(bad)]) == 2
    assert "bad.pt" in capsys.readouterr().err
