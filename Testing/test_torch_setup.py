"""The torch check the panel and the batch script run before anything imports torch."""

import sys

from CSFNetLib.options import MINIMUM_TORCH
from CSFNetLib.torch_setup import TorchInstaller, package_status, version_tuple


def broken_package(folder, name="brokenpkg", version="2.5.0"):
    """An installed package (with its metadata) whose import fails, as a half-installed torch does."""
    (folder / name).mkdir()
    (folder / name / "__init__.py").write_text("raise ImportError('DLL load failed while importing _C')\n")
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return folder


def test_the_torch_here_is_usable_and_recent_enough():
    status = TorchInstaller().status()
    assert status.usable and not status.missing and version_tuple(status.version) >= version_tuple(MINIMUM_TORCH)


def test_a_missing_an_old_and_a_broken_package_each_say_what_is_wrong(tmp_path, monkeypatch):
    missing = package_status("csfnet-no-such-package", "1.0")
    assert missing.missing and not missing.usable and "is not installed" in missing.problem

    old = package_status("pip", "999.0")  # pip is installed, but not version 999
    assert not old.missing and not old.usable and "CSF-net needs pip 999.0 or later" in old.problem

    monkeypatch.syspath_prepend(str(broken_package(tmp_path)))
    broken = package_status("brokenpkg", "2.3")
    assert broken.version == "2.5.0" and not broken.usable
    assert "does not load: ImportError: DLL load failed" in broken.problem
    sys.modules.pop("brokenpkg", None)


def test_versions_compare_by_major_and_minor():
    assert version_tuple("2.12.1+cu130") == (2, 12) < version_tuple("2.13.0") == (2, 13)
    assert version_tuple("2.3.0a0") >= version_tuple(MINIMUM_TORCH) == (2, 3)


def test_an_install_outside_slicer_says_what_is_missing():
    status = TorchInstaller().install()  # no PyTorch extension here: nothing is installed
    assert not status.usable and "install 'PyTorch' from Slicer's Extensions Manager" in status.problem
