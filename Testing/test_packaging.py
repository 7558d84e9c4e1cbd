"""Static checks of what Slicer installs and runs: no Slicer application is needed for these."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "CSFNetModule"


def listed_in_cmake(cmake: Path, variable: str):
    text = cmake.read_text(encoding="utf-8")
    block = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S).group(1)
    names = {"${MODULE_NAME}": "CSFNet", "${LIB_NAME}": "CSFNetLib"}
    entries = []
    for token in block.split():
        for key, value in names.items():
            token = token.replace(key, value)
        entries.append(token)
    return entries


def test_every_library_file_is_listed_for_installation():
    listed = set(listed_in_cmake(MODULE / "CMakeLists.txt", "MODULE_PYTHON_SCRIPTS"))
    on_disk = {p.relative_to(MODULE).as_posix() for folder in ("CSFNetLib", "Scripts")
               for p in (MODULE / folder).rglob("*.py")}
    assert on_disk - listed == set(), "not installed by Slicer"
    assert listed - on_disk - {"CSFNet.py"} == set(), "listed but missing"


def test_every_subpackage_is_installed_by_pip():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    listed = set(re.search(r"packages = \[(.*?)\]", pyproject).group(1).replace('"', "").replace(" ", "").split(","))
    on_disk = {".".join(p.parent.relative_to(MODULE).parts) for p in (MODULE / "CSFNetLib").rglob("__init__.py")}
    assert on_disk == listed


def test_listed_resources_exist():
    for resource in listed_in_cmake(MODULE / "CMakeLists.txt", "MODULE_PYTHON_RESOURCES"):
        assert (MODULE / resource).is_file(), resource


@pytest.mark.parametrize("path", sorted(MODULE.rglob("*.py")), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_code_that_runs_in_slicer_is_python_3_9(path):
    ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 9))


def test_extension_declares_its_pytorch_dependency_and_catalogue_entry():
    cmake = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    assert re.search(r'set\(EXTENSION_DEPENDS\s+"?PyTorch"?\)', cmake)
    assert "add_subdirectory(CSFNetModule)" in cmake
    entry = json.loads((ROOT / "CSFNetExtension" / "SlicerCSFNet.json").read_text(encoding="utf-8"))
    assert entry["build_dependencies"] == ["PyTorch"]
    assert {"category", "scm_url", "scm_revision", "tier"} <= set(entry)


def test_importing_the_package_does_not_import_torch():
    """Slicer's module panel imports CSFNetLib before torch is installed (PyTorch extension)."""
    code = "import sys, CSFNetLib; print('torch' in sys.modules, CSFNetLib.__version__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=MODULE, capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "False"
