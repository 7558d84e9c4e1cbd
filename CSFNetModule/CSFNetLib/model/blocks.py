"""Small 3-D building blocks: conv-BN-ReLU, the residual block, and CBAM attention."""

import torch
from torch import nn


class ConvBnReLU(nn.Sequential):
    """k^3 convolution (no bias: BN follows), batch norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1):
        super().__init__(
            nn.Conv3d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )


class ResidualBlock(nn.Module):
    """Two 3^3 conv-BN-ReLU layers plus a 1^3 conv-BN-ReLU projection shortcut, summed."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.body = nn.Sequential(ConvBnReLU(in_channels, out_channels), ConvBnReLU(out_channels, out_channels))
        self.shortcut = ConvBnReLU(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class ChannelAttention(nn.Module):
    """Per-channel weights: sigmoid(MLP(avgpool(x)) + MLP(maxpool(x))), MLP C -> C/r -> C without bias."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Conv3d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv3d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(torch.mean(x, dim=(2, 3, 4), keepdim=True))
        peak = self.mlp(torch.amax(x, dim=(2, 3, 4), keepdim=True))
        return torch.sigmoid(avg + peak)


class SpatialAttention(nn.Module):
    """Per-voxel weights: sigmoid(conv k^3 over [channel max, channel mean])."""

    def __init__(self, kernel_size: int = 5):
        super().__init__()
        self.conv = nn.Conv3d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([torch.amax(x, dim=1, keepdim=True), torch.mean(x, dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """Convolutional block attention in residual form: spatial_attention * x + x.

    The spatial map is computed on the channel-attended features.
    """

    def __init__(self, channels: int, reduction: int = 4, kernel_size: int = 5):
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = self.spatial(self.channel(x) * x)
        return spatial * x + x
