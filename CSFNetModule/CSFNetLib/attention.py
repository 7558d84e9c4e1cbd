"""Where the network looked: attention maps over each ROI, and those maps placed in the scan.

Three methods, each per nodule and per time point, on the ROI's 16 x 64 x 64 grid in [0, 1]:
- "cbam": the network's own CBAM spatial attention, read at the stem and the three stages (64, 32,
  16 and 8 voxels across), each upsampled (trilinear) to the ROI and averaged. Free: it comes out of
  the forward pass that predicts.
- "gradcam": Grad-CAM on the last backbone stage for the malignant logit: the stage's feature maps
  weighted by their spatially averaged gradients, rectified, upsampled. One backward pass.
- "layercam": LayerCAM at each of the three stages (2, 4 and 8 mm cells in-plane): every voxel's features
  weighted by its own positive gradient, rectified, upsampled and normalised per stage, averaged: finer
  than the last stage alone. The same backward pass.
Hooks exist only while maps are computed, so prediction without maps pays nothing; the logits come
from the same forward pass, so asking for maps never changes the prediction.
"""

from typing import List, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F

from .dataset import RoiSet
from .model.blocks import SpatialAttention
from .model.csfnet import CSFNet
from .options import ATTENTION_METHODS, DEFAULT_ATTENTION_METHOD, AttentionMethod
from .preprocessing import Preprocessing, roi_grid

#: label -> (share of the ROI's voxels with the highest attention, name, RGBA colour)
LEVELS = ((1, 0.25, "top 25 %", (255, 255, 0, 90)), (2, 0.10, "top 10 %", (255, 128, 0, 150)),
          (3, 0.05, "top 5 %", (255, 0, 0, 210)))


def _normalise(maps: torch.Tensor) -> torch.Tensor:
    """Each map (over its last three axes) scaled to [0, 1]; a constant map becomes 0."""
    flat = maps.flatten(-3)
    low, high = flat.min(dim=-1, keepdim=True).values, flat.max(dim=-1, keepdim=True).values
    return ((flat - low) / (high - low).clamp_min(1e-12)).view_as(maps)


def _to_roi(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(maps, size=tuple(size), mode="trilinear", align_corners=False)


def attention_maps(model: CSFNet, t0: torch.Tensor, t1: torch.Tensor, clinical: torch.Tensor,
                   method: AttentionMethod = DEFAULT_ATTENTION_METHOD) -> Tuple[torch.Tensor, torch.Tensor]:
    """p_malignant (B,) and maps (B, 2, D, H, W) in [0, 1] for T0 and T1 (the T0 map of a T1-only model is 0)."""
    if method not in ATTENTION_METHODS:
        raise ValueError(f"unknown attention method {method!r}; choose one of {ATTENTION_METHODS}")
    model.eval()
    size = model.config.input_size_zyx
    batch = t0.shape[0]
    captured: List[torch.Tensor] = []
    if method == "cbam":
        modules = [m for m in model.backbone.modules() if isinstance(m, SpatialAttention)]
        hooks = [m.register_forward_hook(lambda _m, _i, out: captured.append(out.detach())) for m in modules]
        try:
            with torch.inference_mode():
                logits = model(t0, t1, clinical)
        finally:
            for hook in hooks:
                hook.remove()
        maps = _normalise(torch.stack([_normalise(_to_roi(m, size)) for m in captured]).mean(dim=0))[:, 0]
    else:
        stages = list(model.backbone.stages) if method == "layercam" else [model.backbone.stages[-1]]
        hooks = [stage.register_forward_hook(lambda _m, _i, out: captured.append(out)) for stage in stages]
        try:
            with torch.enable_grad():
                logits = model(t0, t1, clinical)
                gradients = torch.autograd.grad(logits[:, 1].sum(), captured)
        finally:
            for hook in hooks:
                hook.remove()
        if method == "layercam":  # each voxel's own positive gradient weighs its features, at every stage
            cams = [F.relu((F.relu(g) * f).sum(dim=1, keepdim=True)).detach() for f, g in zip(captured, gradients)]
            maps = _normalise(torch.stack([_normalise(_to_roi(cam, size)) for cam in cams]).mean(dim=0))[:, 0]
        else:
            weights = gradients[0].mean(dim=(2, 3, 4), keepdim=True)
            cam = F.relu((weights * captured[0]).sum(dim=1, keepdim=True)).detach()
            maps = _normalise(_to_roi(cam, size))[:, 0]
        logits = logits.detach()
    if model.config.uses_baseline:
        maps = torch.stack([maps[:batch], maps[batch:]], dim=1)
    else:
        maps = torch.stack([torch.zeros_like(maps), maps], dim=1)
    return torch.softmax(logits.float(), dim=1)[:, 1], maps


def attention_for_rois(model: CSFNet, rois: RoiSet, device: torch.device,
                       method: AttentionMethod = DEFAULT_ATTENTION_METHOD,
                       batch_size: int = 16) -> Tuple[np.ndarray, np.ndarray]:
    """p_malignant (N,) and maps (N, 2, D, H, W) float32 for every case of `rois`."""
    probabilities, maps = [], []
    for start in range(0, len(rois), batch_size):
        t0, t1, clinical, _ = rois.batch(np.arange(start, min(start + batch_size, len(rois))), device)
        p, m = attention_maps(model, t0, t1, clinical, method)
        probabilities.append(p.cpu().numpy())
        maps.append(m.cpu().numpy().astype(np.float32))
    if not maps:
        return np.zeros(0), np.zeros((0, 2, *model.config.input_size_zyx), np.float32)
    return np.concatenate(probabilities), np.concatenate(maps)


def peak_index(attention: np.ndarray) -> np.ndarray:
    """Continuous ROI index (z, y, x) of the map's maximum: the centroid of the voxels tied at it
    (an upsampled coarse map has plateaus; the first voxel of one would be its corner)."""
    attention = np.asarray(attention)
    return np.argwhere(attention >= attention.max() - 1e-6).mean(axis=0)


def heat_image(attention: np.ndarray, center_lps: Sequence[float], preprocessing: Preprocessing) -> sitk.Image:
    """The map as a float image on the ROI's own grid, placed where the ROI was taken in the scan."""
    return roi_grid(center_lps, preprocessing).image(np.asarray(attention, dtype=np.float32))


def label_image(attention: np.ndarray, center_lps: Sequence[float], preprocessing: Preprocessing) -> sitk.Image:
    """Attention levels as labels: 3 = top 5 % of the ROI's voxels, 2 = top 10 %, 1 = top 25 %, else 0.

    Voxels are ranked (ties in order), so each level holds at most its share; voxels at the map's
    minimum (e.g. Grad-CAM's rectified zeros) are never labelled.
    """
    attention = np.asarray(attention, dtype=np.float32)
    flat = attention.reshape(-1)
    order = np.argsort(-flat, kind="stable")
    labels = np.zeros(flat.shape, dtype=np.uint8)
    for label, share, _, _ in LEVELS:
        labels[order[: int(round(share * flat.size))]] = label
    labels[flat <= flat.min()] = 0
    return roi_grid(center_lps, preprocessing).image(labels.reshape(attention.shape))


def color_table() -> str:
    """The labels' colour table in 3D Slicer's format (index name R G B A per line)."""
    lines = ["# CSF-net attention levels (share of the ROI's voxels with the highest attention)",
             "0 background 0 0 0 0"]
    lines += [f"{label} {name.replace(' ', '_')} {r} {g} {b} {a}" for label, _, name, (r, g, b, a) in LEVELS]
    return "\n".join(lines) + "\n"
