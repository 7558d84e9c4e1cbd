"""Inference-only rewrite: each batch norm folded into the convolution before it.

In eval mode a BatchNorm3d is a per-channel affine map, so conv -> BN equals one conv with scaled
weights and a bias; the folded network computes the same function (to float rounding) with one
pass over each feature map fewer. Never used for training: the batch norms are gone.
"""

import copy
from typing import TypeVar

import torch
from torch import nn

Model = TypeVar("Model", bound=nn.Module)


def fold_batch_norm(model: Model) -> Model:
    """A copy of `model` (in eval mode) with every Conv3d -> BatchNorm3d pair inside a Sequential folded."""
    folded = copy.deepcopy(model).eval()
    for sequence in folded.modules():
        if not isinstance(sequence, nn.Sequential):
            continue
        layers = list(sequence.children())
        for i, (conv, norm) in enumerate(zip(layers, layers[1:])):
            if isinstance(conv, nn.Conv3d) and isinstance(norm, nn.BatchNorm3d):
                _fold_into(conv, norm)
                sequence[i + 1] = nn.Identity()
    return folded


@torch.no_grad()
def _fold_into(conv: nn.Conv3d, norm: nn.BatchNorm3d) -> None:
    # CSF-net's batch norms track running statistics (the default), the ones eval mode applies
    assert norm.running_mean is not None and norm.running_var is not None
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    conv.weight.mul_(scale.view(-1, 1, 1, 1, 1))
    conv.bias = nn.Parameter((bias - norm.running_mean) * scale + norm.bias)
