"""The clinical branch: field embeddings reduced to one token per field and a clinical vector."""

from typing import Tuple

import torch
from torch import nn


class ClinicalEncoder(nn.Module):
    """(B, 6) embedding rows -> tokens (B, 6, out) via embedding + linear, and their mean (B, out)."""

    def __init__(self, vocabulary_size: int, embedding_dim: int, out_features: int):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary_size, embedding_dim)
        self.project = nn.Linear(embedding_dim, out_features)

    def forward(self, rows: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        tokens = self.project(self.embedding(rows))
        return tokens.mean(dim=1), tokens
