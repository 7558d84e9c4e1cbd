"""Temporal residual fusion of the T0 and T1 feature maps, and the image vector read from it."""

from typing import Optional, Tuple, cast

import torch
import torch.nn.functional as F
from torch import nn


class TemporalResidualFusion(nn.Module):
    """sigmoid(a) * conv(pool(upsample([T0, T1]))) + sigmoid(b) * T1, with learnable scalars a, b.

    The concatenated maps are upsampled x2 (trilinear) and average-pooled back to their own size,
    then a 3^3 conv halves the channels; the gate keeps a residual path from the follow-up scan.
    """

    def __init__(self, channels: int, gate_init: Tuple[float, float] = (0.3, 0.7)):
        super().__init__()
        self.conv = nn.Conv3d(2 * channels, channels, 3, padding=1)
        self.gate_fused = nn.Parameter(torch.tensor(float(gate_init[0])))
        self.gate_followup = nn.Parameter(torch.tensor(float(gate_init[1])))

    def forward(self, baseline: torch.Tensor, followup: torch.Tensor) -> torch.Tensor:
        both = torch.cat([baseline, followup], dim=1)
        smoothed = F.adaptive_avg_pool3d(
            F.interpolate(both, scale_factor=2.0, mode="trilinear", align_corners=False),
            cast(Tuple[int, int, int], both.shape[2:]),  # (B, C, D, H, W) input: three spatial sizes
        )
        fused = self.conv(smoothed)
        return torch.sigmoid(self.gate_fused) * fused + torch.sigmoid(self.gate_followup) * followup


class ImageVector(nn.Module):
    """FC feature_in -> hidden -> ReLU -> FC out, read both from the pooled map and per position.

    The pooled vector (global average pool first) is the paper's 128-d image vector. The same layers
    applied at each voxel of the fused map give one token per position, the keys and values that the
    clinical query attends over in CMAF; no extra weights are involved.
    """

    def __init__(self, in_channels: int, hidden: int, out_features: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_features))

    def forward(self, fused: torch.Tensor, with_tokens: bool = True) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(B, C, D, H, W) -> vector (B, out), tokens (B, D*H*W, out) or None when not asked for."""
        vector = self.mlp(torch.mean(fused, dim=(2, 3, 4)))
        tokens = self.mlp(fused.flatten(2).transpose(1, 2)) if with_tokens else None
        return vector, tokens
