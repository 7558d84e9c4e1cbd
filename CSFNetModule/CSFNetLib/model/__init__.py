"""The CSF-net network, built from small blocks and a configuration given as data."""

from .config import CONFIGS, VARIANTS, ModelConfig, get_config
from .csfnet import CSFNet, build_model, count_parameters

__all__ = ["CONFIGS", "CSFNet", "ModelConfig", "VARIANTS", "build_model", "count_parameters", "get_config"]
