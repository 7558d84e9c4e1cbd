"""Running a trained model: load once, batch the cases, return p_malignant."""

import contextlib
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from .checkpoint import load_checkpoint
from .dataset import RoiSet
from .model.folding import fold_batch_norm
from .shipped_weights import model_path


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


#: The dtype each precision autocasts to (None: plain fp32).
AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

#: What a prediction may run in. fp16 autocast keeps p_malignant within 0.01 of fp32 (3.7e-3 at most
#: on 13 synthetic nodules); bf16, with its 8-bit mantissa, moved it by up to 0.09 and turned one
#: prediction over, so benchmarks measure it but predictions do not offer it (benchmarks/precision.py).
PRECISIONS = ("fp32", "fp16")


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision that is not offered, and fp16 off CUDA GPUs.

    A CPU without native 16-bit 3-D convolutions runs them through torch's reference kernel (about
    90x slower than fp32 on a 2-core EPYC); autocast on Apple MPS is untested here.
    """
    if precision == "bf16":
        raise ValueError("precision bf16 moves p_malignant by up to 0.09 from fp32 (its 8-bit mantissa), beyond "
                         "the 0.01 this tool allows; use fp16 on a CUDA GPU")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
    if precision != "fp32" and device.type != "cuda":
        raise ValueError(f"precision {precision} is for CUDA GPUs (on {device.type} it is slow or untested); "
                         "use fp32 there")


def reduced_precision(device: torch.device, precision: str):
    """Autocast to `precision` on `device`, or nothing for fp32."""
    dtype = AUTOCAST[precision]
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def predict_rois(model: nn.Module, rois: RoiSet, device: torch.device, batch_size: int = 32,
                 precision: str = "fp32") -> np.ndarray:
    """p_malignant for every case of `rois`, in batches, in inference mode.

    Under autocast a batch whose logits overflow the 16-bit range (inf or NaN) is computed again in fp32.
    """
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(rois), batch_size):
            t0, t1, clinical, _ = rois.batch(np.arange(start, min(start + batch_size, len(rois))), device)
            with reduced_precision(device, precision):
                logits = model(t0, t1, clinical).float()
            if precision != "fp32" and not torch.isfinite(logits).all():
                logits = model(t0, t1, clinical)
            out.append(torch.softmax(logits, dim=1)[:, 1].cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


#: On a CPU the forward pass costs least per case at small batches, whose feature maps stay in cache
#: (benchmarks/performance.py, 2 cores: full 369 ms per case at batch 2 but 519 at 16; small best at 8).
CPU_FORWARD_BATCH = {"full": 2, "small": 8}


class Predictor:
    """A checkpoint loaded once (weights_only) on a device; `checkpoint=None` is the shipped default model.

    Predictions run on the inference fast path (batch norms folded), in `precision` (see PRECISIONS);
    attention maps on the model as trained, in fp32.
    """

    threshold = 0.5

    def __init__(self, checkpoint: Optional[Union[str, Path]] = None, device: str = "auto", batch_size: int = 16,
                 precision: str = "fp32"):
        path = Path(checkpoint) if checkpoint else model_path()
        self.device = resolve_device(device)
        check_precision(precision, self.device)
        self.precision = precision
        self.checkpoint = load_checkpoint(path)
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
    def device_text(self) -> str:
        """The device, and the precision when it is not fp32: what a results row says it ran on."""
        return str(self.device) if self.precision == "fp32" else f"{self.device} {self.precision}"

    @property
    def preprocessing(self):
        return self.checkpoint.preprocessing

    @property
    def vocabulary(self):
        return self.checkpoint.vocabulary

    def predict(self, rois: RoiSet) -> np.ndarray:
        return predict_rois(self.fast_model, rois, self.device, self.forward_batch, self.precision)

    def predict_with_attention(self, rois: RoiSet, method: str) -> Tuple[np.ndarray, np.ndarray]:
        """p_malignant (N,) and attention maps (N, 2, D, H, W) for T0 and T1, from the same forward pass."""
        from .attention import attention_for_rois

        return attention_for_rois(self.model, rois, self.device, method, self.forward_batch)
