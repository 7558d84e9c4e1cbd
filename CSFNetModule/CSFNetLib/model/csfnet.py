"""CSF-net assembled: shared backbone on T0 and T1, temporal fusion, clinical branch, CMAF, head.

The ablation variants build only what they use: `t1-only` has no temporal fusion and no clinical
branch, `no-clinical` no clinical branch, `concat` concatenates the two vectors instead of CMAF.
"""

from typing import Optional, Union

import torch
from torch import nn

from ..clinical import FIELDS, ClinicalVocabulary
from .backbone import SpatialFeatureExtractor
from .clinical_branch import ClinicalEncoder
from .cmaf import CrossModalAttentionFusion
from .config import ModelConfig, get_config
from .temporal import ImageVector, TemporalResidualFusion


class CSFNet(nn.Module):
    """model(t0, t1, clinical) -> logits (B, 2).

    t0, t1: float (B, 1, 16, 64, 64) ROIs in [0, 1]; clinical: int64 (B, 6) embedding rows from a
    `ClinicalVocabulary`. In eval mode a case's output does not depend on the rest of its batch.

    `images_per_pass` (eval only; None: one pass) runs the backbone over the batch's ROIs a few at a
    time: on a CPU the feature maps of a small pass stay in cache (see inference.CPU_IMAGES_PER_PASS).
    """

    images_per_pass: Optional[int] = None

    def __init__(self, config: ModelConfig, vocabulary_size: int):
        super().__init__()
        self.config = config
        self.vocabulary_size = vocabulary_size
        self.backbone = SpatialFeatureExtractor(
            config.stem_width, config.stage_widths, config.cbam_reduction, config.cbam_kernel
        )
        if config.uses_baseline:
            self.temporal_fusion = TemporalResidualFusion(config.backbone_channels, config.fusion_gate_init)
        self.image_vector = ImageVector(config.backbone_channels, config.image_hidden, config.feature_dim)
        if config.uses_clinical:
            self.clinical_encoder = ClinicalEncoder(vocabulary_size, config.embedding_dim, config.feature_dim)
        if config.variant == "csf-net":
            self.cmaf = CrossModalAttentionFusion(config.feature_dim, config.attention_heads, config.attention_dropout)
        joint = 2 * config.feature_dim if config.uses_clinical else config.feature_dim
        self.head = nn.Sequential(
            nn.Linear(joint, config.head_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(config.head_hidden, config.num_classes),
        )
        self._init_convolutions()

    def _init_convolutions(self) -> None:
        """He initialisation for the ReLU convolutions, as ResNets use (PyTorch's default shrinks them)."""
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, t0: torch.Tensor, t1: torch.Tensor, clinical: torch.Tensor) -> torch.Tensor:
        self._check_inputs(t0, t1, clinical)
        return self.classify(self.spatial_features(t0, t1), clinical)

    def spatial_features(self, t0: torch.Tensor, t1: torch.Tensor) -> torch.Tensor:
        """The backbone's features of every ROI it sees: T0 then T1 as one batch of 2B (one pass, shared
        weights), or T1 alone (B) for a model without the baseline."""
        images = torch.cat([t0, t1], dim=0) if self.config.uses_baseline else t1
        if self.training or not self.images_per_pass or len(images) <= self.images_per_pass:
            return self.backbone(images)
        return torch.cat([self.backbone(part) for part in images.split(self.images_per_pass)])

    def classify(self, features: torch.Tensor, clinical: torch.Tensor) -> torch.Tensor:
        """Logits (B, 2) from `spatial_features` and the clinical rows: everything after the backbone."""
        variant = self.config.variant
        if self.config.uses_baseline:
            batch = clinical.shape[0]
            fused = self.temporal_fusion(features[:batch], features[batch:])
        else:
            fused = features
        image_vector, image_tokens = self.image_vector(fused, with_tokens=variant == "csf-net")
        if not self.config.uses_clinical:
            return self.head(image_vector)
        clinical_vector, clinical_tokens = self.clinical_encoder(clinical)
        if variant == "concat":
            return self.head(torch.cat([image_vector, clinical_vector], dim=1))
        return self.head(self.cmaf(image_vector, image_tokens, clinical_vector, clinical_tokens))

    def _check_inputs(self, t0: torch.Tensor, t1: torch.Tensor, clinical: torch.Tensor) -> None:
        expected = tuple(self.config.input_size_zyx)
        weight = next(self.parameters())
        for name, roi in (("t0", t0), ("t1", t1)):
            if not isinstance(roi, torch.Tensor) or not roi.is_floating_point():
                raise TypeError(f"{name} must be a floating-point torch.Tensor, got {_describe(roi)}")
            if roi.dtype != weight.dtype or roi.device != weight.device:
                raise TypeError(
                    f"{name} is {roi.dtype} on {roi.device} but the model is {weight.dtype} on {weight.device};"
                    f" convert it with .to(device, dtype)"
                )
            if roi.dim() != 5 or roi.shape[1] != 1 or tuple(roi.shape[2:]) != expected:
                shape = ", ".join(map(str, expected))
                raise ValueError(f"{name} must have shape (B, 1, {shape}), got {tuple(roi.shape)}")
        if t0.shape[0] != t1.shape[0]:
            raise ValueError(f"t0 and t1 must hold the same number of cases, got {t0.shape[0]} and {t1.shape[0]}")
        if not isinstance(clinical, torch.Tensor) or clinical.dtype != torch.int64:
            raise TypeError(f"clinical must be an int64 torch.Tensor of embedding rows, got {_describe(clinical)}")
        if clinical.device != weight.device:
            raise TypeError(f"clinical is on {clinical.device} but the model is on {weight.device}")
        if tuple(clinical.shape) != (t0.shape[0], len(FIELDS)):
            raise ValueError(f"clinical must have shape ({t0.shape[0]}, {len(FIELDS)}), got {tuple(clinical.shape)}")
        low, high = (int(clinical.min()), int(clinical.max())) if clinical.numel() else (0, 0)
        if low < 0 or high >= self.vocabulary_size:
            raise ValueError(
                f"clinical rows must lie in [0, {self.vocabulary_size}), got {low}..{high};"
                " encode fields with the model's ClinicalVocabulary"
            )


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def build_model(
    config: Union[str, ModelConfig, dict] = "full",
    vocabulary: Optional[ClinicalVocabulary] = None,
    variant: Optional[str] = None,
) -> CSFNet:
    """A freshly initialised CSF-net of a named configuration ("full" or "small"), or one of its ablations."""
    vocabulary = vocabulary or ClinicalVocabulary.default()
    return CSFNet(get_config(config, variant), vocabulary.size)


def count_parameters(model: nn.Module, include_embedding: bool = False) -> int:
    """Parameters of the model, by default leaving out embedding tables (their size follows the data)."""
    skip = set()
    if not include_embedding:
        skip = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)
