"""One checkpoint file = weights + model configuration + preprocessing + clinical vocabulary + versions.

Saved as plain data and tensors only, and loaded with `torch.load(weights_only=True)`, so a file
from an unknown source can never run code. Everything needed to rebuild the model and repeat its
preprocessing comes from the file, not from the code's defaults.
"""

import os
import pickle
import platform
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import SimpleITK as sitk
import torch

from .clinical import ClinicalVocabulary
from .model.config import ModelConfig
from .model.csfnet import CSFNet
from .preprocessing import Preprocessing
from .version import __version__

FORMAT = "csfnet-checkpoint"
FORMAT_VERSION = 1
_REQUIRED = ("format", "format_version", "model_config", "preprocessing", "vocabulary", "state_dict")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the reason."""


@dataclass
class Checkpoint:
    """The contents of a checkpoint file, typed."""

    model_config: ModelConfig
    preprocessing: Preprocessing
    vocabulary: ClinicalVocabulary
    state_dict: Dict[str, torch.Tensor]
    versions: Dict[str, str] = field(default_factory=dict)
    metadata: Dict[str, Any] = field(default_factory=dict)
    path: Optional[Path] = None

    def build_model(self, device: Union[str, torch.device] = "cpu") -> CSFNet:
        """The network with these weights, in eval mode, on `device`."""
        model = CSFNet(self.model_config, self.vocabulary.size)
        try:
            model.load_state_dict(self.state_dict, strict=True)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise CheckpointError(
                f"{self.path or 'checkpoint'}: weights do not fit configuration {self.model_config.name!r}: {exc}"
            ) from exc
        return model.to(device).eval()


def runtime_versions() -> Dict[str, str]:
    """Versions of what produced a result, recorded in checkpoints and results."""
    return {
        "csfnet": __version__,
        "torch": str(torch.__version__),  # TorchVersion would not load with weights_only
        "numpy": np.__version__,
        "SimpleITK": sitk.Version.VersionString(),
        "python": platform.python_version(),
    }


def save_checkpoint(
    path: Union[str, Path],
    model: CSFNet,
    preprocessing: Preprocessing,
    vocabulary: ClinicalVocabulary,
    metadata: Optional[Dict[str, Any]] = None,
    storage_dtype: Optional[torch.dtype] = None,
) -> Path:
    """Write a checkpoint atomically (a temporary file renamed into place); returns its path.

    `storage_dtype=torch.float16` halves the file (shipped weights); loading restores float32.
    """
    if vocabulary.size != model.vocabulary_size:
        raise ValueError(f"vocabulary has {vocabulary.size} rows but the model's embedding has {model.vocabulary_size}")
    if tuple(preprocessing.roi_size_zyx) != tuple(model.config.input_size_zyx):
        raise ValueError(f"preprocessing makes {preprocessing.roi_size_zyx} ROIs but the model takes "
                         f"{model.config.input_size_zyx}")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": model.config.to_dict(),
        "preprocessing": preprocessing.to_dict(),
        "vocabulary": vocabulary.to_dict(),
        "versions": runtime_versions(),
        "metadata": dict(metadata or {}),
        "state_dict": {k: _stored(v.detach().cpu(), storage_dtype) for k, v in model.state_dict().items()},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a checkpoint is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@dataclass(frozen=True)
class ModelCard:
    """What reports say of a model: its name, version and note (for the shipped weights: trained on synthetic
    phantoms, not for clinical use)."""

    name: str
    version: str
    note: str


def model_card(path: Optional[Union[str, Path]] = None) -> ModelCard:
    """The model card of the checkpoint at `path` (default: the shipped demo model)."""
    from .shipped_weights import model_path

    path = Path(path) if path else model_path()
    info = load_checkpoint(path).metadata
    return ModelCard(str(info.get("name", path.stem)), str(info.get("version", "")), str(info.get("note", "")))


def load_checkpoint(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu") -> Checkpoint:
    """Read and validate a checkpoint; never unpickles anything but tensors and plain data."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: a folder, not a checkpoint file (name the .pt file in it)")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # torch warns of a foreign pickle protocol before refusing the file
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(str(path), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if _file_kind(path) != "a PyTorch file":
            raise CheckpointError(f"{path}: not a checkpoint: it is {_file_kind(path)}") from exc
        raise CheckpointError(
            f"{path}: refused, it holds Python objects other than weights and plain data "
            f"(loading it could run code): {_unpickler_reason(exc)}"
        ) from exc
    except Exception as exc:  # torch's readers fail on foreign bytes in many ways (KeyError: 101 for text)
        kind = _file_kind(path)
        if kind == "a PyTorch file":
            raise CheckpointError(f"{path}: not a readable checkpoint: a PyTorch file that is truncated or damaged "
                                  f"({type(exc).__name__}: {exc})") from exc
        raise CheckpointError(f"{path}: not a checkpoint: it is {kind}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
            raise CheckpointError(f"{path}: not a CSF-net checkpoint: a bare state dict ({len(payload)} tensors) "
                                  "without the model's configuration, preprocessing and clinical vocabulary; save "
                                  "models with `csfnet train` or CSFNetLib.checkpoint.save_checkpoint")
        raise CheckpointError(f"{path}: not a CSF-net checkpoint (no '{FORMAT}' marker)")
    missing = [key for key in _REQUIRED if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    if not isinstance(payload["format_version"], int) or not isinstance(payload["state_dict"], dict):
        raise CheckpointError(f"{path}: malformed checkpoint (format_version or state_dict of the wrong type)")
    if payload["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {payload['format_version']} is newer than this version reads ({FORMAT_VERSION})"
        )
    try:
        config = ModelConfig.from_dict(payload["model_config"])
        preprocessing = Preprocessing.from_dict(payload["preprocessing"])
        vocabulary = ClinicalVocabulary(payload["vocabulary"])
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: invalid settings in checkpoint: {exc}") from exc
    if tuple(preprocessing.roi_size_zyx) != tuple(config.input_size_zyx):
        raise CheckpointError(
            f"{path}: preprocessing makes {preprocessing.roi_size_zyx} ROIs but the model takes {config.input_size_zyx}"
        )
    return Checkpoint(
        model_config=config,
        preprocessing=preprocessing,
        vocabulary=vocabulary,
        state_dict=payload["state_dict"],
        versions=dict(payload.get("versions", {})),
        metadata=dict(payload.get("metadata", {})),
        path=path,
    )


#: A file's first bytes -> what it is, for files given where a checkpoint belongs.
_MAGIC = ((b"PK\x03\x04", "a PyTorch file"), (b"\x89HDF", "an HDF5 file (Keras / TensorFlow weights?)"),
          (b"\x93NUMPY", "a NumPy array file"), (b"\x80", "a plain Python pickle, not a PyTorch file"),
          (b"%PDF", "a PDF document"), (b"\x08", "a protocol-buffer file (ONNX or TensorFlow?)"))


def _file_kind(path: Path) -> str:
    """What a file that should be a checkpoint looks like it is, from its first bytes."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    if not head:
        return "empty"
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if len(head) > 8 and head[8:10] == b'{"':
        return "a safetensors file (weights without CSF-net's configuration)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"binary data of an unknown kind (starting {head[:8].hex(' ')})"
    if text.lstrip().lower().startswith(("<!doctype html", "<html")):
        return "an HTML page (a download that returned a web page?)"
    first = text.strip().splitlines()[0][:60] if text.strip() else ""
    return f"a text file (first line: {first!r})"


def _unpickler_reason(exc: Exception) -> str:
    """The line of torch's long weights_only message that says what was found."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "WeightsUnpickler error" in line:
            return line.split("WeightsUnpickler error:", 1)[1].strip().split(". Please")[0]
    return lines[0] if lines else type(exc).__name__


def _stored(tensor: torch.Tensor, dtype: Optional[torch.dtype]) -> torch.Tensor:
    return tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor


def _umask() -> int:
    """The process's file-creation mask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
