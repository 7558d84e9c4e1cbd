"""The pointing game for attention maps, on a synthetic test cohort, and an overlay figure.

    python benchmarks/attention_pointing.py [--cohort cache/synthetic-test-seed2024-n40]
                                            [--figure docs/attention_overlay.png] [--offset-mm 12]

For every nodule and time point where the nodule exists, a method scores a hit when its map's
maximum (the centroid of the voxels tied at it) lies inside the nodule or within 5 mm of its edge
(nodule radius from cases.csv's diameter_mm). A random voxel of the ROI is the chance baseline; the ROI
is centred on the nodule, so "ROI centre" (a map that ignores the image) is the bar a method must pass
for its hits to mean more than "near the middle".
"""

import argparse
import copy
import csv
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

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


def off_centre(cases_csv: Path, offset_mm: float, out: Path, rng: np.random.Generator) -> Path:
    """A copy of cases.csv whose points are moved `offset_mm` in a random in-plane direction (the same for a
    nodule's two scans), image paths made absolute: ROIs then hold the nodule off their centre."""
    with open(cases_csv, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    turns = {}
    for row in rows:
        angle = turns.setdefault((row["pid"], row["nodule"]), rng.uniform(0.0, 2.0 * np.pi))
        row["x"] = f"{float(row['x']) + offset_mm * np.cos(angle):.2f}"
        row["y"] = f"{float(row['y']) + offset_mm * np.sin(angle):.2f}"
        row["image"] = str((cases_csv.parent / row["image"]).resolve())
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "cases.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out / "cases.csv"


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    ranks = [np.argsort(np.argsort(x.ravel())).astype(float) for x in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, default=Path("cache/synthetic-test-seed2024-n40"))
    parser.add_argument("--figure", type=Path, default=Path("docs/attention_overlay.png"))
    parser.add_argument("--offset-mm", type=float, default=0.0,
                        help="cut each ROI this far from the nodule (in-plane, random direction): a map must then "
                             "find the nodule, not the ROI's centre")
    args = parser.parse_args()
    predictor = Predictor(device="auto")
    rng = np.random.default_rng(0)
    truth = read_cohort(args.cohort / "cases.csv", args.cohort / "clinical.csv")
    cases = args.cohort / "cases.csv"
    if args.offset_mm:
        cases = off_centre(cases, args.offset_mm, Path(tempfile.mkdtemp()), rng)
    cohort = read_cohort(cases, args.cohort / "clinical.csv")
    rows = {(c.pid, c.nodule): c for c in truth.cases}
    rois, _ = RoiSet.collect(iter_samples(cohort, predictor.preprocessing, predictor.vocabulary))
    maps = {}
    print(f"{len(rois)} nodules of {args.cohort}, ROIs cut {args.offset_mm:g} mm from the nodule\n")
    print("pointing game (share of maps whose maximum lies on the nodule or within 5 mm of it); mass: the "
          "share of the map's sum inside the nodule, median\n")
    print("| method | all | T0 | T1 | malignant | benign | mass |\n|---|---|---|---|---|---|---|")
    for method in (*METHODS, "random voxel (mass: a uniform map)", "ROI centre"):
        if method in METHODS:
            _, maps[method] = attention_for_rois(predictor.model, rois, predictor.device, method)
        hits = {"all": [], "T0": [], "T1": [], "malignant": [], "benign": []}
        masses = []
        for i, key in enumerate(zip(rois.pids, rois.nodules)):
            for t, timepoint in enumerate(("T0", "T1")):
                row = rows[key].t0 if t == 0 else rows[key].t1
                radius = float(row.extra["diameter_mm"]) / 2.0
                if radius <= 0:
                    continue
                shape = predictor.preprocessing.roi_size_zyx
                grid = roi_grid(rois.centers[i, t], predictor.preprocessing)
                nodule_lps = np.asarray(row.center_lps)
                voxels = grid.index_zyx_to_lps(np.indices(shape).reshape(3, -1).T)
                inside = np.linalg.norm(voxels - nodule_lps, axis=1) <= radius
                if method in METHODS:  # its maximum, and the share of its mass within the nodule
                    peak = peak_index(maps[method][i, t])
                    heat = maps[method][i, t].ravel()
                    masses.append(float(heat[inside].sum() / max(heat.sum(), 1e-12)))
                elif method == "ROI centre":  # where the point was: what a map that ignores the image would say
                    peak = (np.asarray(shape, dtype=float) - 1.0) / 2.0
                else:  # and the mass a uniform map holds inside: the nodule's share of the ROI
                    peak = np.array([rng.integers(0, n) for n in shape], dtype=float)
                    masses.append(float(inside.mean()))
                distance = np.linalg.norm(grid.index_zyx_to_lps(np.asarray(peak, float)) - nodule_lps)
                hit = bool(distance <= radius + 5.0)
                for group in ("all", timepoint, "malignant" if rois.labels[i] == 1 else "benign"):
                    hits[group].append(hit)
        cells = [f"{np.mean(h):.3f} ({sum(h)}/{len(h)})" for h in hits.values()]
        mass = f"{np.median(masses):.3f}" if masses else ""
        print(f"| {method} | {' | '.join(cells)} | {mass} |")

    print("\nsanity check: each map against the same method's map from the network with its weights re-initialised "
          "(Spearman rank correlation over the ROI, median over nodule scans; near 1: the map does not depend on "
          "what the network learnt)\n")
    randomised = copy.deepcopy(predictor.model)
    torch.manual_seed(0)
    for module in randomised.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    print("| method | rank correlation with the randomised network's map |\n|---|---|")
    for method in METHODS:
        _, random_maps = attention_for_rois(randomised, rois, predictor.device, method)
        correlations = [_rank_correlation(maps[method][i, t], random_maps[i, t])
                        for i in range(len(rois)) for t in range(2)
                        if maps[method][i, t].std() > 0 and random_maps[i, t].std() > 0]
        print(f"| {method} | {np.median(correlations):.2f} ({len(correlations)} maps) |")

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
