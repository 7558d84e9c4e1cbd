"""The spatial feature extractor ("ResNet + CBAM") shared by both time points."""

from typing import List, Sequence

import torch
from torch import nn

from .blocks import CBAM, ConvBnReLU, ResidualBlock


class Stage(nn.Sequential):
    """A stride-2 3^3 conv-BN-ReLU (width kept), one residual block per listed width, then CBAM."""

    def __init__(self, in_channels: int, widths: Sequence[int], cbam_reduction: int, cbam_kernel: int):
        layers: List[nn.Module] = [ConvBnReLU(in_channels, in_channels, stride=2)]
        channels = in_channels
        for width in widths:
            layers.append(ResidualBlock(channels, width))
            channels = width
        layers.append(CBAM(channels, cbam_reduction, cbam_kernel))
        super().__init__(*layers)


class SpatialFeatureExtractor(nn.Module):
    """(B, 1, 16, 64, 64) -> (B, C, 2, 8, 8): stem (two conv-BN-ReLU + CBAM) and three stages."""

    def __init__(self, stem_width: int, stage_widths: Sequence[Sequence[int]], cbam_reduction: int, cbam_kernel: int):
        super().__init__()
        self.stem = nn.Sequential(
            ConvBnReLU(1, stem_width),
            ConvBnReLU(stem_width, stem_width),
            CBAM(stem_width, cbam_reduction, cbam_kernel),
        )
        stages = []
        channels = stem_width
        for widths in stage_widths:
            stages.append(Stage(channels, widths, cbam_reduction, cbam_kernel))
            channels = widths[-1]
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))
