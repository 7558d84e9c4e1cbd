"""Is there a torch this package can use, and installing one inside 3D Slicer.

Torch-free, so that the Slicer panel and the batch script can ask before anything imports torch: in a
fresh Slicer, torch arrives only when the PyTorch extension installs it. Installing goes through that
extension's `PyTorchUtils`, which picks the build that matches the computer's GPU.
"""

import importlib
import importlib.metadata
import re
from dataclasses import dataclass
from typing import Optional, Tuple

from .options import MINIMUM_TORCH

#: What the PyTorch extension is asked to install. The upper bound keeps torch 2.13 away for now: its
#: wheels (PEP 639 licence files) break a fresh install in Slicer 5.12 on Python 3.12, Slicer/light-the-torch
#: issue 176 (open; `<2.13` installs and runs). An installed torch 2.13 that imports is still accepted.
TORCH_INSTALL_REQUIREMENT = f">={MINIMUM_TORCH},<2.13"


def version_tuple(version: str) -> Tuple[int, ...]:
    """(major, minor) of a version string such as '2.5.1+cu121'."""
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


@dataclass(frozen=True)
class TorchStatus:
    """What this Python has of torch: its version (None when not installed) and, when unusable, why."""

    version: Optional[str]
    problem: str = ""

    @property
    def usable(self) -> bool:
        return not self.problem

    @property
    def missing(self) -> bool:
        return self.version is None


def package_status(name: str = "torch", minimum: str = MINIMUM_TORCH) -> TorchStatus:
    """Whether package `name` is installed, at least `minimum`, and imports; read from its metadata first."""
    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return TorchStatus(None, f"{name} is not installed (CSF-net needs {name} {minimum} or later)")
    if version_tuple(version) < version_tuple(minimum):
        return TorchStatus(version, f"{name} {version} is installed but CSF-net needs {name} {minimum} or later")
    try:
        importlib.import_module(name)
    except Exception as exc:  # a broken install fails in many ways (ImportError, OSError for a DLL, ...)
        return TorchStatus(version, f"{name} {version} is installed but does not load: {type(exc).__name__}: {exc}")
    return TorchStatus(version)


class TorchInstaller:
    """torch for CSF-net inside Slicer: `status()` checks, `install()` installs through the PyTorch extension.

    Neither asks the user anything: the panel asks before it calls `install()`, the batch script only
    installs when told to (`--install-torch`).
    """

    def status(self) -> TorchStatus:
        return package_status("torch", MINIMUM_TORCH)

    def install(self) -> TorchStatus:
        """Install torch with PyTorchUtils (a download of up to a few GB); the status afterwards."""
        try:
            import PyTorchUtils
        except ModuleNotFoundError:
            return TorchStatus(None, "the PyTorch extension is not installed: install 'PyTorch' from Slicer's "
                                     "Extensions Manager, restart Slicer and try again")
        installed = PyTorchUtils.PyTorchUtilsLogic().installTorch(
            askConfirmation=False, torchVersionRequirement=TORCH_INSTALL_REQUIREMENT)
        if installed is None:
            return TorchStatus(None, f"the PyTorch extension did not install torch{TORCH_INSTALL_REQUIREMENT} "
                                     "(see the Python console for why)")
        importlib.invalidate_caches()
        return self.status()
