"""A picture of one-click matching on a synthetic patient whose follow-up lies turned, moved and breathed.

Left: the baseline's axial slice through the clicked nodule (the click, +). Right: the follow-up's slice
through the found nodule, with where the lungs' registration alone put it (x), where aligning the
nodule's neighbourhood put it (o) and the nodule found there (+, the match), and the true centre
(dashed circle of the nodule's radius). 60 mm views, lung window.

  python docs/render_match.py          # writes docs/match-pair.png
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CSFNetModule"))

from CSFNetLib.geometry import VoxelGrid  # noqa: E402
from CSFNetLib.match.nodule import match_nodule  # noqa: E402
from CSFNetLib.match.registration import register_lungs  # noqa: E402
from CSFNetLib.preprocessing import resample_to_grid  # noqa: E402
from CSFNetLib.synth import synthesize_patient  # noqa: E402
from CSFNetLib.synth.scanner import MOTIONS  # noqa: E402

SEED, INDEX, HALF_MM = 21, 26, 30.0  # a patient whose registration alone misses by several mm


def axial(ax, image: sitk.Image, centre: np.ndarray, title: str):
    """The 60 mm axial slice of `image` centred on `centre`; returns LPS (x, y) -> plot coordinates."""
    n = int(2 * HALF_MM / 0.5) + 1
    grid = VoxelGrid.centred(centre, (1, n, n), (0.5, 0.5, 0.5))
    hu = resample_to_grid(image, grid, sitk.sitkLinear, -1000.0)[0]
    ax.imshow(hu, cmap="gray", vmin=-1200, vmax=300, origin="upper",
              extent=(-HALF_MM, HALF_MM, HALF_MM, -HALF_MM))
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return lambda point: (point[0] - centre[0], point[1] - centre[1])


def main() -> int:
    patient = synthesize_patient(SEED, INDEX, "small", motion=MOTIONS["large"])
    nodule = max(patient.nodules, key=lambda n: min(n.diameter("T0"), n.diameter("T1")))
    click = patient.nodule_center_lps(nodule, "T0") + np.array([1.0, -1.0, 0.5])
    registration = register_lungs(patient.images["T0"], patient.images["T1"])
    match = match_nodule(patient.images["T0"], click, patient.images["T1"], registration)
    truth = patient.nodule_center_lps(nodule, "T1")
    assert match.centre_lps is not None and match.registered_lps is not None and match.aligned_lps is not None

    figure, (left, right) = plt.subplots(1, 2, figsize=(8.0, 4.3))
    at = axial(left, patient.images["T0"], click, f"{patient.spec.pid} baseline (T0): the click")
    left.plot(*at(click), "+", color="yellow", markersize=14, markeredgewidth=2)
    at = axial(right, patient.images["T1"], match.centre_lps,
               f"follow-up (T1, {patient.spec.interval_days} days later)")
    right.plot(*at(match.registered_lps), "x", color="orange", markersize=10, markeredgewidth=2,
               label=f"registration alone ({np.linalg.norm(match.registered_lps - truth):.1f} mm off)")
    right.plot(*at(match.aligned_lps), "o", color="deepskyblue", markersize=8, fillstyle="none", markeredgewidth=2,
               label=f"neighbourhood aligned ({np.linalg.norm(match.aligned_lps - truth):.1f} mm off)")
    right.plot(*at(match.centre_lps), "+", color="yellow", markersize=14, markeredgewidth=2,
               label=f"found ({np.linalg.norm(match.centre_lps - truth):.1f} mm off)")
    right.add_patch(plt.Circle(at(truth), nodule.diameter("T1") / 2.0, fill=False, color="lime", linestyle="--",
                               label="true nodule"))
    right.legend(loc="lower left", fontsize=7, framealpha=0.8)
    figure.suptitle("One-click matching (synthetic phantom: follow-up turned, moved and breathed; not patient data)",
                    fontsize=9)
    figure.tight_layout()
    out = Path(__file__).resolve().parent / "match-pair.png"
    figure.savefig(out, dpi=110)
    print(out, match.status, f"moved {match.moved_mm:.1f} mm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
