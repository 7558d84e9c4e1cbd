"""Every choice a user can make, and the constants front ends share: one torch-free home.

The command line, the batch script, the Slicer panel, `main.py`, the panel renderer and the demo-weight
trainer all read their choices here, so a new device, precision or model variant is added once.
Each set of choices is a `Literal` type (for the type checker) and the tuple of its values (for menus).
"""

from typing import Dict, Literal, Tuple, get_args

#: Where a model runs; "auto" picks CUDA, then Apple MPS, then the CPU.
Device = Literal["auto", "cpu", "cuda", "mps"]
DEVICES: Tuple[str, ...] = get_args(Device)

#: What a prediction may compute in: fp16 autocasts the network on a CUDA GPU (p_malignant within 0.01 of
#: fp32). bf16 is measured by the benchmarks but not offered: it moves p_malignant beyond that tolerance.
Precision = Literal["fp32", "fp16"]
PRECISIONS: Tuple[str, ...] = get_args(Precision)
PRECISION_TOLERANCE = 0.01  # the largest change of p_malignant a reduced precision may make

#: How attention maps are made (CSFNetLib.attention; docs/attention.md measures them).
AttentionMethod = Literal["layercam", "gradcam", "input-x-gradient", "occlusion", "cbam"]
ATTENTION_METHODS: Tuple[str, ...] = get_args(AttentionMethod)
DEFAULT_ATTENTION_METHOD: AttentionMethod = "layercam"  # finds the nodule most often and deletes faithfully

#: The named network configurations (CSFNetLib.model.config.CONFIGS): the paper's widths and a narrow one.
ConfigName = Literal["small", "full"]
CONFIG_NAMES: Tuple[str, ...] = get_args(ConfigName)

#: CSF-net and the ablations the paper's argument rests on, with the row name each has in the results table.
Variant = Literal["csf-net", "t1-only", "no-clinical", "concat"]
VARIANTS: Dict[str, str] = {
    "csf-net": "CSF-net",
    "t1-only": "T1 image only",
    "no-clinical": "T0+T1, no clinical",
    "concat": "Concat fusion",
}

#: How baseline and follow-up fiducials are paired into nodules ("auto": by label when the lists share them).
PairBy = Literal["auto", "index", "label"]
PAIR_BY: Tuple[str, ...] = get_args(PairBy)

#: The oldest torch the package supports (pyproject.toml asks for the same). Slicer 5.10+ ships numpy 2, and
#: torch wheels before 2.3 were built against numpy 1: `torch.from_numpy` fails in them.
MINIMUM_TORCH = "2.3"

#: The MRML attribute set on every node CSF-net creates, so that panels can tell inputs from outputs.
OUTPUT_ATTRIBUTE = "csfnet.output"

#: The network's input size: a nodule's region of interest, (z, y, x) voxels of 1 mm.
ROI_SIZE_ZYX: Tuple[int, int, int] = (16, 64, 64)
