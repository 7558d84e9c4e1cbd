"""The shipped models: `Resources/models/manifest.json` lists each weights file with its SHA-256.

A model is loaded only from the manifest (after its checksum matches) or from a path the user gave.
`CSFNET_MODELS_DIR` points elsewhere.
"""

import hashlib
import json
import os
from pathlib import Path
from typing import Dict, List, Optional

MANIFEST = "manifest.json"


def models_dir() -> Path:
    """Where the shipped models are: beside the installed Slicer module, else in the source checkout."""
    override = os.environ.get("CSFNET_MODELS_DIR")
    if override:
        return Path(override)
    here = Path(__file__).resolve()
    installed = here.parents[1] / "Resources" / "models"  # qt-scripted-modules/Resources/models in Slicer
    return installed if (installed / MANIFEST).is_file() else here.parents[2] / "Resources" / "models"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(directory: Optional[Path] = None) -> Dict:
    path = (directory or models_dir()) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"model manifest not found: {path}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable manifest: {exc}") from exc
    if not isinstance(manifest.get("models"), list):
        raise ValueError(f"{path}: manifest has no 'models' list")
    return manifest


def model_entries(directory: Optional[Path] = None) -> List[Dict]:
    return read_manifest(directory)["models"]


def model_path(name: Optional[str] = None, directory: Optional[Path] = None) -> Path:
    """The verified weights file of a manifest entry (the manifest's default when `name` is None)."""
    directory = directory or models_dir()
    manifest = read_manifest(directory)
    name = name or manifest.get("default")
    entries = {entry["name"]: entry for entry in manifest["models"]}
    if name not in entries:
        raise ValueError(f"no model named {name!r} in {directory / MANIFEST}; known: {sorted(entries)}")
    entry = entries[name]
    path = directory / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"weights of model {name!r} not found: {path}")
    actual = sha256_of(path)
    if actual != entry["sha256"]:
        raise ValueError(f"{path}: SHA-256 {actual} does not match the manifest ({entry['sha256']}); "
                         "the file is damaged or was replaced - refusing to load it")
    return path
