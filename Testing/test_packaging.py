"""Static checks of what Slicer installs and runs: no Slicer application is needed for these."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "CSFNetModule"


def test_every_subpackage_is_installed_by_pip():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    listed = set(re.search(r"packages = \[(.*?)\]", pyproject).group(1).replace('"', "").replace(" ", "").split(","))
    on_disk = {".".join(p.parent.relative_to(MODULE).parts) for p in (MODULE / "CSFNetLib").rglob("__init__.py")}
    assert on_disk == listed


@pytest.mark.parametrize("path", sorted(MODULE.rglob("*.py")), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_code_that_runs_in_slicer_is_python_3_9(path):
    ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 9))


def test_importing_the_package_does_not_import_torch():
    """Slicer's module panel imports CSFNetLib before torch is installed (PyTorch extension)."""
    code = "import sys, CSFNetLib; print('torch' in sys.modules, CSFNetLib.__version__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=MODULE, capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "False"


def test_every_test_named_in_the_bad_input_table_exists():
    table = (ROOT / "docs" / "bad-input.md").read_text(encoding="utf-8")
    named = set(re.findall(r"(test_\w+\.py)::(test_\w+?)(?:\.\.\.|\[|`)", table))
    assert len(named) > 15
    for file, test in named:
        assert re.search(rf"def {test}", (ROOT / "Testing" / file).read_text(encoding="utf-8")), (file, test)
