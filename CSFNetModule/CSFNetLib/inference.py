"""Running a trained model: load once, batch the cases, return p_malignant."""

import contextlib
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from .checkpoint import load_checkpoint
from .dataset import RoiSet
from .errors import DeviceUnavailable, UnusableOptions
from .model import CSFNet
from .model.folding import fold_batch_norm
from .options import PRECISION_TOLERANCE, PRECISIONS, AttentionMethod
from .shipped_weights import model_path


def resolve_device(device: Union[str, torch.device] = "auto") -> torch.device:
    """`auto` picks CUDA, then Apple MPS, then the CPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable("{device} cuda asked for, but torch sees no CUDA GPU")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceUnavailable("{device} mps asked for, but this torch has no Apple MPS device")
    return torch.device(device)


def fast_inference_model(model: CSFNet, channels_last: bool = False,
                         images_per_pass: Optional[int] = None) -> CSFNet:
    """The model rewritten for inference only: batch norms folded into convolutions (same results),
    optionally in the channels-last layout and with the backbone run `images_per_pass` ROIs at a time."""
    fast = fold_batch_norm(model)
    fast.images_per_pass = images_per_pass
    return fast.to(memory_format=torch.channels_last_3d) if channels_last else fast


#: The dtype each precision autocasts to (None: plain fp32); the benchmarks also measure bf16.
AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision that is not offered (options.PRECISIONS), and fp16 off CUDA GPUs.

    bf16's 8-bit mantissa moves p_malignant beyond the tolerance (docs/performance.md, "Reduced
    precision"). A CPU without native 16-bit 3-D convolutions runs them through torch's slow
    reference kernel; autocast on Apple MPS is untested.
    """
    if precision == "bf16":
        raise UnusableOptions("{precision} bf16 moves p_malignant further from fp32 than the {tolerance} this "
                              "tool allows (its 8-bit mantissa); use fp16 on a CUDA GPU", tolerance=PRECISION_TOLERANCE)
    if precision not in PRECISIONS:
        raise UnusableOptions("unknown {precision} {value!r}; choose one of {choices}", value=precision,
                              choices=list(PRECISIONS))
    if precision != "fp32" and device.type != "cuda":
        raise DeviceUnavailable("{precision} {value} is for CUDA GPUs (on {kind} it is slow or untested); use "
                                "fp32 there", value=precision, kind=device.type)


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


#: How each configuration runs fastest on a CPU (measured by benchmarks/reference_speed.py and
#: performance.py; docs/performance.md): the backbone a few ROIs per pass, whose feature maps then stay
#: in cache; `small`'s narrow layers also gain from the channels-last layout, `full` loses at batch 1.
CPU_FAST_PATH: Dict[str, Dict[str, Any]] = {
    "full": {"channels_last": False, "images_per_pass": 4},
    "small": {"channels_last": True, "images_per_pass": 8},
}


@contextlib.contextmanager
def threads_beside_readers(readers: int):
    """torch's CPU threads while `readers` processes read scans on the same cores: the cores they leave, at
    least one. torch's threads wait for each other by spinning, so on cores the readers keep busy they
    burn the time the readers need (a tenth of a 2-core prediction run)."""
    before = torch.get_num_threads()
    if readers > 1:
        torch.set_num_threads(max(1, min(before, (os.cpu_count() or 1) - readers)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Predictor:
    """A checkpoint loaded once (weights_only) on a device; `checkpoint=None` is the shipped default model.

    Predictions run on the inference fast path (batch norms folded), in `precision` (see PRECISIONS);
    attention maps on the model as trained, in fp32.
    """

    threshold = 0.5

    def __init__(self, checkpoint: Optional[Union[str, Path]] = None, *, device: Union[str, torch.device] = "auto",
                 batch_size: int = 16, precision: str = "fp32"):
        path = Path(checkpoint) if checkpoint else model_path()
        self.device = resolve_device(device)
        check_precision(precision, self.device)
        self.precision = precision
        self.checkpoint = load_checkpoint(path)
        self.model = self.checkpoint.build_model(self.device)
        cpu_path = CPU_FAST_PATH.get(self.checkpoint.model_config.name, {}) if self.device.type == "cpu" else {}
        self.fast_model = fast_inference_model(self.model, **cpu_path)
        self.forward_batch = batch_size
        # attention keeps every stage's activations for its backward pass: on a CPU, one pass's worth
        self.attention_batch = max(1, cpu_path["images_per_pass"] // 2) if cpu_path else batch_size
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

    def predict_with_attention(self, rois: RoiSet, method: AttentionMethod) -> Tuple[np.ndarray, np.ndarray]:
        """p_malignant (N,) and attention maps (N, 2, D, H, W) for T0 and T1, from the same forward pass."""
        from .attention import attention_for_rois

        return attention_for_rois(self.model, rois, self.device, method, self.attention_batch)


class PredictorCache:
    """Models loaded once per (checkpoint, device) and reused across runs (the Slicer module's Apply,
    a batch of scenes); a checkpoint file changed since it was loaded is loaded again."""

    def __init__(self) -> None:
        self._loaded: Dict[Tuple[str, str], Tuple[Tuple[int, int], Predictor]] = {}

    def get(self, checkpoint: Optional[Union[str, Path]], device: str) -> Predictor:
        path = Path(checkpoint) if checkpoint else model_path()
        stat = os.stat(path)
        stamp = (stat.st_mtime_ns, stat.st_size)
        key = (str(path.resolve()), device)
        if key not in self._loaded or self._loaded[key][0] != stamp:
            self._loaded[key] = (stamp, Predictor(path, device=device))
        return self._loaded[key][1]
