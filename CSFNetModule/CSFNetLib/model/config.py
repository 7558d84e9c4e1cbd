"""Named CSF-net configurations, as data: the paper's widths (`full`) and a narrow CPU variant (`small`)."""

from dataclasses import asdict, dataclass, replace
from typing import Any, Dict, Optional, Tuple, Union, cast

from ..options import ROI_SIZE_ZYX, VARIANTS, ConfigName, Variant


@dataclass(frozen=True)
class ModelConfig:
    """Every number that shapes the network. Saved in each checkpoint, so loading needs no defaults."""

    name: str
    stage_widths: Tuple[Tuple[int, ...], ...]
    stem_width: int = 4
    input_size_zyx: Tuple[int, int, int] = ROI_SIZE_ZYX
    cbam_reduction: int = 4
    cbam_kernel: int = 5
    image_hidden: int = 256  # GAP -> FC image_hidden -> ReLU -> FC feature_dim
    feature_dim: int = 128  # width of the image and clinical vectors and of CMAF
    embedding_dim: int = 512
    attention_heads: int = 4
    attention_dropout: float = 0.2
    head_hidden: int = 128
    num_classes: int = 2
    fusion_gate_init: Tuple[float, float] = (0.3, 0.7)  # a (fused conv), b (T1 features)
    variant: Variant = "csf-net"  # or one of the ablations the paper's argument rests on (options.VARIANTS)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown model variant {self.variant!r}; choose one of {list(VARIANTS)}")

    @property
    def uses_baseline(self) -> bool:
        return self.variant != "t1-only"

    @property
    def uses_clinical(self) -> bool:
        return self.variant in ("csf-net", "concat")

    @property
    def backbone_channels(self) -> int:
        """Channels of the backbone's last feature map (what the temporal fusion sees)."""
        return self.stage_widths[-1][-1]

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["stage_widths"] = [list(s) for s in self.stage_widths]
        d["input_size_zyx"] = list(self.input_size_zyx)
        d["fusion_gate_init"] = list(self.fusion_gate_init)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ModelConfig":
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown model settings {unknown}; was this made by a newer version?")
        missing = [key for key in ("name", "stage_widths") if key not in d]
        if missing:
            raise ValueError(f"model settings lack {missing}")
        d = dict(d)
        d["stage_widths"] = tuple(tuple(int(w) for w in s) for s in d["stage_widths"])
        for key in ("input_size_zyx", "fusion_gate_init"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


CONFIGS: Dict[ConfigName, ModelConfig] = {
    # The paper: feature maps 4x16x64x64 -> 64x8x32x32 -> 256x4x16x16 -> 512x2x8x8.
    "full": ModelConfig(name="full", stage_widths=((64, 64, 64), (128, 128, 256), (256, 256, 256, 512))),
    # Same depth and blocks at a quarter of the widths: for CPU training and the demo weights.
    "small": ModelConfig(
        name="small",
        stage_widths=((16, 16, 16), (32, 32, 64), (64, 64, 64, 128)),
        image_hidden=128,
        feature_dim=64,
        embedding_dim=128,
        head_hidden=64,
    ),
}


def get_config(config: Union[str, ModelConfig, Dict[str, Any]], variant: Optional[str] = None) -> ModelConfig:
    """A ModelConfig from a name, a ModelConfig, or its dict form; optionally as an ablation `variant`."""
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    elif not isinstance(config, ModelConfig):
        if not isinstance(config, str) or config not in CONFIGS:
            raise ValueError(f"unknown model configuration {config!r}; choose one of {sorted(CONFIGS)}")
        config = CONFIGS[config]
    # an unknown variant name is refused by ModelConfig.__post_init__
    return config if variant is None else replace(config, variant=cast(Variant, variant))
