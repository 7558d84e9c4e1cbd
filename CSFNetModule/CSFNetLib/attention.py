"""Where the network looked: attention maps over each ROI, and those maps placed in the scan.

Five methods, each per nodule and per time point, on the ROI's 16 x 64 x 64 grid in [0, 1]. Each
explains the log-odds of malignancy (malignant minus benign logit), the quantity p_malignant follows:
- "layercam" (default): LayerCAM at each of the three backbone stages (2, 4 and 8 mm cells in-plane):
  every voxel's features weighted by its own positive gradient, rectified, upsampled and normalised per
  stage, averaged. One backward pass.
- "gradcam": Grad-CAM on the last stage (8 mm cells): its feature maps weighted by their spatially
  averaged gradients, rectified, upsampled. The same backward pass.
- "input-x-gradient": each voxel's gradient times its difference from the ROI's median (its background),
  absolute, smoothed over 2 mm: voxel-fine, one backward pass to the input.
- "occlusion": how far the log-odds fall when an 8 mm cube of one ROI is filled with the ROI's median,
  for every cube of a tiling centred on the ROI (3 x 9 x 9 cells), rectified. Measured, not derived from
  gradients; a forward pass of the backbone per cube (about 250 times the others' cost).
- "cbam": the network's own CBAM spatial attention at the stem and the three stages, each upsampled and
  averaged. Free: it comes out of the forward pass that predicts.
docs/attention.md measures which of them find the nodule and which are faithful to the network.
Hooks exist only while maps are computed, so prediction without maps pays nothing; the logits come
from the same forward pass, so asking for maps never changes the prediction.
"""

import itertools
from typing import Callable, Dict, List, Sequence, Tuple

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
SMOOTHING_MM = 2.0  # input x gradient's Gaussian sigma (ROI voxels are 1 mm)
OCCLUSION_CUBE = 8  # voxels (mm) along each side of the cube occlusion blanks
OCCLUSION_BATCH = 32  # occluded ROIs per backbone pass


def _normalise(maps: torch.Tensor) -> torch.Tensor:
    """Each map (over its last three axes) scaled to [0, 1]; a constant map becomes 0."""
    flat = maps.flatten(-3)
    low, high = flat.min(dim=-1, keepdim=True).values, flat.max(dim=-1, keepdim=True).values
    return ((flat - low) / (high - low).clamp_min(1e-12)).view_as(maps)


def _to_roi(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(maps, size=tuple(size), mode="trilinear", align_corners=False)


def log_odds(logits: torch.Tensor) -> torch.Tensor:
    """The log-odds of malignancy (malignant minus benign logit): what every map explains."""
    return logits[:, 1] - logits[:, 0]


def log_odds_replacing(model: CSFNet, rows: torch.Tensor, slot: int, rois: torch.Tensor,
                       clinical_row: torch.Tensor) -> torch.Tensor:
    """The log-odds of one case (its `spatial_features` rows and clinical row) with the ROI in `slot` (0: the
    first row) replaced by each of `rois` (n, 1, D, H, W) in turn: one backbone pass over `rois` only."""
    variants = rows.unsqueeze(1).expand(-1, len(rois), *rows.shape[1:]).clone()
    variants[slot] = model.backbone(rois)
    return log_odds(model.classify(variants.flatten(0, 1), clinical_row.expand(len(rois), -1)))


def _backbone_rois(model: CSFNet, t0: torch.Tensor, t1: torch.Tensor) -> torch.Tensor:
    """The ROIs in the order the backbone sees them (`CSFNet.spatial_features`): T0 then T1, or T1 alone."""
    return torch.cat([t0, t1], dim=0) if model.config.uses_baseline else t1


#: A method: (model, t0, t1, clinical) -> (logits (B, 2), maps (R, D, H, W) over `_backbone_rois`, in [0, 1])
Method = Callable[[CSFNet, torch.Tensor, torch.Tensor, torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]


def _cbam(model: CSFNet, t0: torch.Tensor, t1: torch.Tensor, clinical: torch.Tensor):
    captured: List[torch.Tensor] = []
    modules = [m for m in model.backbone.modules() if isinstance(m, SpatialAttention)]
    hooks = [m.register_forward_hook(lambda _m, _i, out: captured.append(out.detach())) for m in modules]
    try:
        with torch.inference_mode():
            logits = model(t0, t1, clinical)
    finally:
        for hook in hooks:
            hook.remove()
    size = model.config.input_size_zyx
    return logits, _normalise(torch.stack([_normalise(_to_roi(m, size)) for m in captured]).mean(dim=0))[:, 0]


def _stage_gradients(model: CSFNet, t0: torch.Tensor, t1: torch.Tensor, clinical: torch.Tensor, stages):
    """Logits, and the features of `stages` with the log-odds' gradients at them."""
    captured: List[torch.Tensor] = []
    hooks = [stage.register_forward_hook(lambda _m, _i, out: captured.append(out)) for stage in stages]
    try:
        with torch.enable_grad():
            logits = model(t0, t1, clinical)
            gradients = torch.autograd.grad(log_odds(logits).sum(), captured)
    finally:
        for hook in hooks:
            hook.remove()
    return logits.detach(), [f.detach() for f in captured], gradients


def _gradcam(model: CSFNet, t0: torch.Tensor, t1: torch.Tensor, clinical: torch.Tensor):
    logits, (features,), (gradients,) = _stage_gradients(model, t0, t1, clinical, [model.backbone.stages[-1]])
    cam = F.relu((gradients.mean(dim=(2, 3, 4), keepdim=True) * features).sum(dim=1, keepdim=True))
    return logits, _normalise(_to_roi(cam, model.config.input_size_zyx))[:, 0]


def _layercam(model: CSFNet, t0: torch.Tensor, t1: torch.Tensor, clinical: torch.Tensor):
    logits, features, gradients = _stage_gradients(model, t0, t1, clinical, list(model.backbone.stages))
    size = model.config.input_size_zyx
    cams = [_normalise(_to_roi(F.relu((F.relu(g) * f).sum(dim=1, keepdim=True)), size))
            for f, g in zip(features, gradients)]
    return logits, _normalise(torch.stack(cams).mean(dim=0))[:, 0]


def _gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """(R, 1, D, H, W) smoothed along each axis by a Gaussian of `sigma` voxels, edges replicated."""
    radius = int(3 * sigma)
    kernel = torch.exp(-torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device) ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    for axis in range(3):
        shape, pad = [1, 1, 1, 1, 1], [0] * 6
        shape[2 + axis] = kernel.numel()
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = radius  # F.pad lists the last axis first
        maps = F.conv3d(F.pad(maps, pad, mode="replicate"), kernel.view(shape))
    return maps


def _input_x_gradient(model: CSFNet, t0: torch.Tensor, t1: torch.Tensor, clinical: torch.Tensor):
    inputs = [t0.detach().clone().requires_grad_(True), t1.detach().clone().requires_grad_(True)]
    with torch.enable_grad():
        logits = model(*inputs, clinical)
        gradients = torch.autograd.grad(log_odds(logits).sum(), inputs, allow_unused=True)
    filled = [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, gradients)]  # T1-only: no T0 gradient
    rois = _backbone_rois(model, t0, t1)
    background = rois.flatten(1).median(dim=1).values.view(-1, 1, 1, 1, 1)
    saliency = (_backbone_rois(model, *filled) * (rois - background)).abs()
    return logits.detach(), _normalise(_gaussian_blur(saliency, SMOOTHING_MM))[:, 0]


def occlusion_cells(size: Sequence[int], cube: int = OCCLUSION_CUBE) -> List[Tuple[slice, slice, slice]]:
    """The cubes occlusion hides, tiling the ROI with one centred on the ROI's centre (where the nodule point
    is: a tiling from the corner would split a small nodule among eight cubes); edge cells are cut short."""
    edges = []
    for n in size:
        first = (n // 2 - cube // 2) % cube
        edges.append(sorted({0, n, *range(first, n, cube)}))
    return [tuple(slice(a, b) for a, b in cell)  # type: ignore[misc]
            for cell in itertools.product(*(list(zip(e[:-1], e[1:])) for e in edges))]


def _occlusion(model: CSFNet, t0: torch.Tensor, t1: torch.Tensor, clinical: torch.Tensor):
    cells = occlusion_cells(model.config.input_size_zyx)
    with torch.inference_mode():
        rois = _backbone_rois(model, t0, t1)
        features = model.spatial_features(t0, t1)
        logits = model.classify(features, clinical)
        reference = log_odds(logits)
        batch = clinical.shape[0]
        maps = torch.zeros_like(rois[:, 0])
        for r in range(rois.shape[0]):
            case, slot = r % batch, r // batch  # whose ROI, and which of the case's backbone rows
            rows = features[case::batch]  # (1 or 2, ...): the case's T0 and T1 features, or T1's
            occluded = rois[r:r + 1].repeat(len(cells), 1, 1, 1, 1)
            background = rois[r].median()
            for k, cell in enumerate(cells):
                occluded[(k, slice(None)) + cell] = background
            drops = torch.cat([reference[case] - log_odds_replacing(model, rows, slot, chunk, clinical[case:case + 1])
                               for chunk in occluded.split(OCCLUSION_BATCH)])
            for cell, drop in zip(cells, F.relu(drops)):
                maps[(r,) + cell] = drop
    return logits, _normalise(maps)


METHODS: Dict[str, Method] = {"layercam": _layercam, "gradcam": _gradcam, "input-x-gradient": _input_x_gradient,
                              "occlusion": _occlusion, "cbam": _cbam}


def attention_maps(model: CSFNet, t0: torch.Tensor, t1: torch.Tensor, clinical: torch.Tensor,
                   method: AttentionMethod = DEFAULT_ATTENTION_METHOD) -> Tuple[torch.Tensor, torch.Tensor]:
    """p_malignant (B,) and maps (B, 2, D, H, W) in [0, 1] for T0 and T1 (the T0 map of a T1-only model is 0)."""
    if method not in ATTENTION_METHODS:
        raise ValueError(f"unknown attention method {method!r}; choose one of {ATTENTION_METHODS}")
    model.eval()
    logits, maps = METHODS[method](model, t0, t1, clinical)
    batch = t0.shape[0]
    if model.config.uses_baseline:
        maps = torch.stack([maps[:batch], maps[batch:]], dim=1)
    else:
        maps = torch.stack([torch.zeros_like(maps), maps], dim=1)
    return torch.softmax(logits.float(), dim=1)[:, 1], maps.detach()


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
