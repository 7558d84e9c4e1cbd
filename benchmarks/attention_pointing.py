"""The pointing game for attention maps, on a synthetic test cohort, and an overlay figure.

    python benchmarks/attention_pointing.py [--cohort cache/synthetic-test-seed2024-n40]
                                            [--figure docs/attention_overlay.png]

For every nodule and time point where the nodule exists, a method scores a hit when its map's
maximum (the centroid of the voxels tied at it) lies inside the nodule or within 5 mm of its edge
(nodule radius from cases.csv's diameter_mm). A random voxel of the ROI is the chance baseline; the ROI
is centred on the nodule, so "ROI centre" (a map that ignores the image) is the bar a method must pass
for its hits to mean more than "near the middle".
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CSFNetModule"))

from CSFNetLib.attention import attention_for_rois, peak_index  # noqa: E402
from CSFNetLib.cohort_csv import read_cohort  # noqa: E402
from CSFNetLib.dataset import RoiSet  # noqa: E402
from CSFNetLib.inference import Predictor  # noqa: E402
from CSFNetLib.options import ATTENTION_METHODS as METHODS  # noqa: E402
from CSFNetLib.preprocessing import roi_grid  # noqa: E402
from CSFNetLib.samples import iter_samples  # noqa: E402


def overlay(ct: np.ndarray, heat: np.ndarray, scale: int = 4) -> np.ndarray:
    """RGB: the CT slice in grey with the attention in red-yellow, opacity following attention."""
    grey = np.repeat(ct[..., None], 3, axis=-1)
    colour = np.stack([np.ones_like(heat), heat, np.zeros_like(heat)], axis=-1)
    alpha = 0.6 * heat[..., None]
    rgb = (1 - alpha) * grey + alpha * colour
    return np.kron((np.clip(rgb, 0, 1) * 255).astype(np.uint8), np.ones((scale, scale, 1), dtype=np.uint8))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, default=Path("cache/synthetic-test-seed2024-n40"))
    parser.add_argument("--figure", type=Path, default=Path("docs/attention_overlay.png"))
    args = parser.parse_args()
    predictor = Predictor(device="auto")
    cohort = read_cohort(args.cohort / "cases.csv", args.cohort / "clinical.csv")
    rows = {(c.pid, c.nodule): c for c in cohort.cases}
    rois, _ = RoiSet.collect(iter_samples(cohort, predictor.preprocessing, predictor.vocabulary))
    rng = np.random.default_rng(0)
    maps = {}
    print(f"{len(rois)} nodules of {args.cohort}\n")
    print("| method | all | T0 | T1 | malignant | benign |\n|---|---|---|---|---|---|")
    for method in (*METHODS, "random voxel", "ROI centre"):
        if method in METHODS:
            _, maps[method] = attention_for_rois(predictor.model, rois, predictor.device, method)
        hits = {"all": [], "T0": [], "T1": [], "malignant": [], "benign": []}
        for i, key in enumerate(zip(rois.pids, rois.nodules)):
            for t, timepoint in enumerate(("T0", "T1")):
                row = rows[key].t0 if t == 0 else rows[key].t1
                radius = float(row.extra["diameter_mm"]) / 2.0
                if radius <= 0:
                    continue
                shape = predictor.preprocessing.roi_size_zyx
                if method in METHODS:
                    peak = peak_index(maps[method][i, t])
                elif method == "ROI centre":  # where the point was: what a map that ignores the image would say
                    peak = (np.asarray(shape, dtype=float) - 1.0) / 2.0
                else:
                    peak = np.array([rng.integers(0, n) for n in shape], dtype=float)
                grid = roi_grid(rois.centers[i, t], predictor.preprocessing)
                distance = np.linalg.norm(grid.index_zyx_to_lps(np.asarray(peak, float)) - rois.centers[i, t])
                hit = bool(distance <= radius + 5.0)
                for group in ("all", timepoint, "malignant" if rois.labels[i] == 1 else "benign"):
                    hits[group].append(hit)
        cells = [f"{np.mean(h):.3f} ({sum(h)}/{len(h)})" for h in hits.values()]
        print(f"| {method} | {' | '.join(cells)} |")

    growing = [i for i, key in enumerate(zip(rois.pids, rois.nodules))
               if rows[key].t0.extra["course"] == "grows" and rows[key].t0.extra["nodule_type"] == "solid"]
    i = max(growing, key=lambda k: float(rows[(rois.pids[k], rois.nodules[k])].t1.extra["diameter_mm"]))
    middle = predictor.preprocessing.roi_size_zyx[0] // 2
    panels = []
    for method in METHODS:
        row = [overlay(rois.t0[i, middle], maps[method][i, 0, middle]), np.full((256, 4, 3), 255, np.uint8),
               overlay(rois.t1[i, middle], maps[method][i, 1, middle])]
        panels.append(np.concatenate(row, axis=1))
        panels.append(np.full((4, panels[-1].shape[1], 3), 255, np.uint8))
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(np.concatenate(panels[:-1], axis=0), isVector=True), str(args.figure))
    key = (rois.pids[i], rois.nodules[i])
    print(f"\nfigure {args.figure}: {key[0]} nodule {key[1]}, axial mid-slice of the ROI (64 x 64 mm), "
          f"T0 left, T1 right; rows: {', '.join(METHODS)}; p_malignant "
          f"{float(predictor.predict(rois.subset([i]))[0]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
