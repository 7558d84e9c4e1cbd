"""`python main.py`: the paper's command, which evaluates a model and prints the paper's table.

Evaluation needs a synthetic test cohort and trained demo weights, which are not shipped yet. Until
they are, this prints the table the paper reports and checks this installation end to end: a
synthetic baseline / follow-up scan pair held in memory, ROI extraction around the nodule, and one
forward pass of the full CSF-net with untrained weights (its output is therefore meaningless).
"""

import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "CSFNetModule"))

from CSFNetLib import ClinicalVocabulary, build_model, count_parameters, extract_roi  # noqa: E402
from CSFNetLib.paper import REPORTED, format_table  # noqa: E402
from CSFNetLib.version import __version__  # noqa: E402


def scan_with_nodule(radius_mm: float, origin, spacing) -> sitk.Image:
    """A 100 x 100 x 40 block of lung (-850 HU) with a solid nodule (+30 HU) centred at LPS (0, 0, 0)."""
    points = sitk.PhysicalPointSource(sitk.sitkVectorFloat32, [100, 100, 40], origin, spacing)
    inside = np.linalg.norm(sitk.GetArrayFromImage(points), axis=-1) <= radius_mm
    image = sitk.GetImageFromArray(np.where(inside, 30, -850).astype(np.int16))
    image.CopyInformation(points)
    return image


def main() -> int:
    print("CSF-net as reported in the paper (NLST-cmst, 443 cases, test split):\n")
    print(format_table(REPORTED))
    print(
        "\nEvaluating our own model needs the synthetic test cohort and the demo weights, which this version "
        "does not ship yet;\nuntil then `python main.py` checks the installation on an embedded synthetic case.\n"
    )
    baseline = scan_with_nodule(4.0, origin=(-37.0, -37.0, -30.0), spacing=(0.75, 0.75, 1.5))
    followup = scan_with_nodule(6.0, origin=(-35.5, -38.2, -28.5), spacing=(0.7, 0.7, 1.25))
    t0 = torch.from_numpy(extract_roi(baseline, (0.0, 0.0, 0.0)))[None, None]
    t1 = torch.from_numpy(extract_roi(followup, (0.0, 0.0, 0.0)))[None, None]
    vocabulary = ClinicalVocabulary.default()
    clinical = torch.tensor([vocabulary.encode({"race": 1, "cigsmok": 1, "gender": 2, "age": 62})])
    torch.manual_seed(0)
    model = build_model("full", vocabulary).eval()
    with torch.inference_mode():
        start = time.perf_counter()
        probability = torch.softmax(model(t0, t1, clinical), dim=1)[0, 1].item()
        seconds = time.perf_counter() - start
    print(f"csfnet {__version__}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"ROIs: T0 {tuple(t0.shape)}, T1 {tuple(t1.shape)}; nodule voxels above -300 HU: "
          f"T0 {int((t0 > 0.5).sum())}, T1 {int((t1 > 0.5).sum())}")
    print(f"CSF-net 'full': {count_parameters(model) / 1e6:.2f} M parameters (embedding excluded), "
          f"one case in {seconds:.2f} s; untrained weights, p_malignant {probability:.3f} is not a prediction")
    return 0


if __name__ == "__main__":
    sys.exit(main())
