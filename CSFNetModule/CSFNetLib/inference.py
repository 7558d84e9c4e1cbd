"""Running a trained model: load once, batch the cases, return p_malignant."""

from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from .checkpoint import load_checkpoint
from .dataset import RoiSet
from .model.folding import fold_batch_norm
from .models import model_path


def resolve_device(device: str = "auto") -> torch.device:
    """`auto` picks CUDA, then Apple MPS, then the CPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA GPU")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("--device mps asked for, but this torch has no Apple MPS device")
    return torch.device(device)


def fast_inference_model(model: nn.Module, channels_last: bool = False) -> nn.Module:
    """The model rewritten for inference only: batch norms folded into convolutions (same results)."""
    fast = fold_batch_norm(model)
    return fast.to(memory_format=torch.channels_last_3d) if channels_last else fast


def predict_rois(model: nn.Module, rois: RoiSet, device: torch.device, batch_size: int = 32) -> np.ndarray:
    """p_malignant for every case of `rois`, in batches, in inference mode."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(rois), batch_size):
            t0, t1, clinical, _ = rois.batch(np.arange(start, min(start + batch_size, len(rois))), device)
            out.append(torch.softmax(model(t0, t1, clinical).float(), dim=1)[:, 1].cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


#: On a CPU the forward pass costs least per case at small batches, whose feature maps stay in cache
#: (benchmarks/performance.py, 2 cores: full 369 ms per case at batch 2 but 519 at 16; small best at 8).
CPU_FORWARD_BATCH = {"full": 2, "small": 8}


class Predictor:
    """A checkpoint loaded once (weights_only) on a device; `checkpoint=None` is the shipped default model.

    Predictions run on the inference fast path (batch norms folded); attention maps on the model as trained.
    """

    threshold = 0.5

    def __init__(self, checkpoint: Optional[Union[str, Path]] = None, device: str = "auto", batch_size: int = 16):
        path = Path(checkpoint) if checkpoint else model_path()
        self.checkpoint = load_checkpoint(path)
        self.device = resolve_device(device)
        self.model = self.checkpoint.build_model(self.device)
        self.fast_model = fast_inference_model(self.model)
        if self.device.type == "cpu":
            batch_size = min(batch_size, CPU_FORWARD_BATCH.get(self.checkpoint.model_config.name, batch_size))
        self.forward_batch = batch_size
        info = self.checkpoint.metadata
        self.name = str(info.get("name", path.stem))
        self.version = str(info.get("version", self.checkpoint.versions.get("csfnet", "")))
        self.note = str(info.get("note", ""))  # e.g. that the shipped demo weights are trained on phantoms

    @property
    def preprocessing(self):
        return self.checkpoint.preprocessing

    @property
    def vocabulary(self):
        return self.checkpoint.vocabulary

    def predict(self, rois: RoiSet) -> np.ndarray:
        return predict_rois(self.fast_model, rois, self.device, self.forward_batch)

    def predict_with_attention(self, rois: RoiSet, method: str) -> Tuple[np.ndarray, np.ndarray]:
        """p_malignant (N,) and attention maps (N, 2, D, H, W) for T0 and T1, from the same forward pass."""
        from .attention import attention_for_rois

        return attention_for_rois(self.model, rois, self.device, method, self.forward_batch)
