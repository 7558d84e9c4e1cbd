"""CMAF: cross-modal attention fusion of the image and clinical representations.

Each sample attends only within itself: a modality's tokens are the key/value sequence of that
sample, its vector gives the one query. (The reference code let the cases of a batch attend to each
other, so a prediction depended on its batch mates; this form cannot.)
"""

from typing import Tuple

import torch
from torch import nn


class ModalityProjection(nn.Module):
    """Linear + ReLU into the shared width, then linear + ReLU projections to query, key and value."""

    def __init__(self, dim: int):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True))
        self.query = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True))
        self.key = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True))
        self.value = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True))

    def forward(self, vector: torch.Tensor, tokens: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """vector (B, D), tokens (B, N, D) -> embedded vector (B, D), query (B, 1, D), keys, values (B, N, D)."""
        embedded = self.embed(vector)
        embedded_tokens = self.embed(tokens)
        return embedded, self.query(embedded).unsqueeze(1), self.key(embedded_tokens), self.value(embedded_tokens)


class CrossModalAttentionFusion(nn.Module):
    """Image side: clinical query over image tokens + image residual; clinical side the mirror image.

    Each side then goes through its own linear layer; the two are concatenated (B, 2 * dim).
    """

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.image = ModalityProjection(dim)
        self.clinical = ModalityProjection(dim)
        self.clinical_attends_image = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.image_attends_clinical = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.image_out = nn.Linear(dim, dim)
        self.clinical_out = nn.Linear(dim, dim)

    def forward(
        self, image_vector: torch.Tensor, image_tokens: torch.Tensor, clinical_vector: torch.Tensor,
        clinical_tokens: torch.Tensor,
    ) -> torch.Tensor:
        image, image_query, image_keys, image_values = self.image(image_vector, image_tokens)
        clinical, clinical_query, clinical_keys, clinical_values = self.clinical(clinical_vector, clinical_tokens)
        image_side, _ = self.clinical_attends_image(clinical_query, image_keys, image_values, need_weights=False)
        clinical_side, _ = self.image_attends_clinical(image_query, clinical_keys, clinical_values, need_weights=False)
        image_side = self.image_out(image_side.squeeze(1) + image)
        clinical_side = self.clinical_out(clinical_side.squeeze(1) + clinical)
        return torch.cat([image_side, clinical_side], dim=1)
