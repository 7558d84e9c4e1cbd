"""Which attention maps find the nodule, and which are faithful to the network, on a synthetic test cohort.

    python benchmarks/attention_pointing.py [--cohort cache/synthetic-test-seed2024-n40] [--offset-mm 12]
                                            [--methods layercam gradcam ...] [--figures docs]

Measures, for every method of `CSFNetLib.attention` beside a random map and a "ROI centre" map (one that
ignores the image and peaks where the point was):
- the pointing game: a hit is a map whose maximum (the centroid of the voxels tied at it) lies inside the
  nodule or within 5 mm of its edge (radius from cases.csv's diameter_mm), over every nodule and time point
  where the nodule exists; by time point, malignant / benign and nodule diameter;
- the share of the map's mass inside the nodule (median), beside a uniform map's;
- deletion and insertion: the log-odds of malignancy as the top 1-20 % of one ROI's voxels (by the map) are
  filled with the ROI's median, or, from a ROI filled with its median, are put back; the mean change over
  those fractions. A faithful map's top voxels move the output more than a random order's;
- the sanity check: the rank correlation of each map with the same method's map from the network with
  its weights re-initialised (an edge detector, not an explanation, would be near 1);
- the time per nodule (both time points) on this machine.
With `--offset-mm`, each nodule's point is moved that far in a random in-plane direction (the same at both
scans), so the nodule lies off the ROI's centre and a map has to find it. `--figures` writes
attention_overlay.png (the default method, a malignant and a benign nodule at T0 and T1) and
attention_methods.png (every method, the same nodules).
"""

import argparse
import copy
import csv
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import SimpleITK as sitk
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CSFNetModule"))

from CSFNetLib.attention import attention_for_rois, log_odds, log_odds_replacing, peak_index  # noqa: E402
from CSFNetLib.cohort_csv import read_cohort  # noqa: E402
from CSFNetLib.dataset import RoiSet  # noqa: E402
from CSFNetLib.inference import Predictor  # noqa: E402
from CSFNetLib.options import ATTENTION_METHODS, DEFAULT_ATTENTION_METHOD  # noqa: E402
from CSFNetLib.preprocessing import roi_grid  # noqa: E402
from CSFNetLib.samples import iter_samples  # noqa: E402

FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2)  # shares of a ROI's voxels deleted or inserted
SIZES = (("< 8 mm", 0.0, 8.0), ("8-15 mm", 8.0, 15.0), ("> 15 mm", 15.0, np.inf))
RANDOM, CENTRE = "random", "ROI centre"


def off_centre(cases_csv: Path, offset_mm: float, out: Path, rng: np.random.Generator) -> Path:
    """A copy of cases.csv whose points are moved `offset_mm` in a random in-plane direction (the same for a
    nodule's two scans), image paths made absolute: ROIs then hold the nodule off their centre."""
    with open(cases_csv, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    turns: Dict[tuple, float] = {}
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


class Truth:
    """Where each nodule of the ROI set really is: per case and time point, the ROI's voxel distances to the
    nodule's centre (mm), its radius and diameter (0 where the nodule is gone)."""

    def __init__(self, rois: RoiSet, cases: Dict[tuple, object], predictor: Predictor):
        shape = predictor.preprocessing.roi_size_zyx
        self.shape = shape
        self.grids, self.distance, self.diameter, self.centre = [], [], [], []
        for i, key in enumerate(zip(rois.pids, rois.nodules)):
            rows = (cases[key].t0, cases[key].t1)
            grids = [roi_grid(rois.centers[i, t], predictor.preprocessing) for t in range(2)]
            voxels = [g.index_zyx_to_lps(np.indices(shape).reshape(3, -1).T) for g in grids]
            self.grids.append(grids)
            self.centre.append([np.asarray(r.center_lps) for r in rows])
            self.distance.append([np.linalg.norm(v - np.asarray(r.center_lps), axis=1) for v, r in zip(voxels, rows)])
            self.diameter.append([float(r.extra["diameter_mm"]) for r in rows])
        self.malignant = rois.labels == 1

    def scans(self):
        """(case, time point) of every nodule scan where the nodule exists."""
        return [(i, t) for i in range(len(self.grids)) for t in range(2) if self.diameter[i][t] > 0]

    def groups(self, i: int, t: int) -> List[str]:
        size = next(name for name, low, high in SIZES if low <= self.diameter[i][t] < high)
        return ["all", ("T0", "T1")[t], "malignant" if self.malignant[i] else "benign", size]


def pointing(truth: Truth, peaks: Dict[tuple, np.ndarray]) -> Dict[str, List[bool]]:
    hits: Dict[str, List[bool]] = {}
    for (i, t), peak in peaks.items():
        distance = np.linalg.norm(truth.grids[i][t].index_zyx_to_lps(np.asarray(peak, float)) - truth.centre[i][t])
        for group in truth.groups(i, t):
            hits.setdefault(group, []).append(bool(distance <= truth.diameter[i][t] / 2.0 + 5.0))
    return hits


def orders(maps: np.ndarray) -> np.ndarray:
    """Each ROI's voxels, most attributed first (N, 2, V)."""
    flat = maps.reshape(*maps.shape[:2], -1)
    return np.argsort(-flat, axis=-1, kind="stable")


def faithfulness(model, rois: RoiSet, device, voxel_orders: Dict[str, np.ndarray], truth: Truth):
    """Per order, kind and group: the mean log-odds change as each ROI's top voxels are deleted, or inserted
    into a ROI filled with its median."""
    scores: Dict[str, Dict[str, Dict[str, list]]] = {o: {"deletion": {}, "insertion": {}} for o in voxel_orders}
    for i, t in truth.scans():
        t0, t1, clinical, _ = rois.batch([i], device)
        roi = (t0, t1)[t]
        flat, background = roi.flatten(), float(roi.median())
        with torch.inference_mode():
            rows = model.spatial_features(t0, t1)
            reference = float(log_odds(model.classify(rows, clinical))[0])
            for name, order in voxel_orders.items():
                top = [torch.from_numpy(order[i, t, : int(share * flat.numel())].copy()) for share in FRACTIONS]
                deleted = [flat.clone().index_fill_(0, k, background) for k in top]
                inserted = [torch.full_like(flat, background).index_copy_(0, k, flat[k]) for k in top]
                blank = torch.full_like(flat, background)
                variants = torch.stack([*deleted, *inserted, blank]).view(-1, *roi.shape[1:])
                outputs = log_odds_replacing(model, rows, t, variants, clinical).cpu().numpy()
                n = len(FRACTIONS)
                changes = {"deletion": (outputs[:n] - reference).mean(),
                           "insertion": (outputs[n:2 * n] - outputs[-1]).mean()}
                for kind, change in changes.items():
                    for group in truth.groups(i, t):
                        scores[name][kind].setdefault(group, []).append(float(change))
    return scores


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    ranks = [np.argsort(np.argsort(x.ravel())).astype(float) for x in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def overlay(ct: np.ndarray, heat: np.ndarray, scale: int = 4) -> np.ndarray:
    """RGB: the CT slice in grey with the attention in red-yellow, opacity following attention."""
    grey = np.repeat(ct[..., None], 3, axis=-1)
    colour = np.stack([np.ones_like(heat), heat, np.zeros_like(heat)], axis=-1)
    alpha = 0.6 * heat[..., None]
    rgb = (1 - alpha) * grey + alpha * colour
    return np.kron((np.clip(rgb, 0, 1) * 255).astype(np.uint8), np.ones((scale, scale, 1), dtype=np.uint8))


def mosaic(rows: List[List[np.ndarray]], gap: int = 4) -> np.ndarray:
    """Panels (same size) laid out in rows, with white gaps."""
    lines = []
    for panels in rows:
        spaced = []
        for panel in panels:
            spaced += [panel, np.full((panel.shape[0], gap, 3), 255, np.uint8)]
        lines += [np.concatenate(spaced[:-1], axis=1), np.full((gap, sum(p.shape[1] for p in spaced[:-1]), 3), 255,
                                                              np.uint8)]
    return np.concatenate(lines[:-1], axis=0)


def figures(folder: Path, rois: RoiSet, truth: Truth, maps: Dict[str, np.ndarray], cases) -> str:
    """The largest grown solid malignant nodule and the largest stable benign one, at their centre slices."""
    def pick(course: str, malignant: bool) -> int:
        chosen = [i for i, key in enumerate(zip(rois.pids, rois.nodules)) if truth.malignant[i] == malignant
                  and cases[key].t0.extra["course"] == course and cases[key].t0.extra["nodule_type"] == "solid"
                  and min(truth.diameter[i]) > 0]
        return max(chosen, key=lambda i: truth.diameter[i][1])

    picks = [pick("grows", True), pick("stable", False)]

    def panel(method: str, i: int, t: int, with_map: bool = True) -> np.ndarray:
        z = int(round(truth.grids[i][t].lps_to_index_zyx(truth.centre[i][t])[0]))
        z = min(max(z, 0), truth.shape[0] - 1)
        ct = (rois.t0, rois.t1)[t][i, z]
        return overlay(ct, maps[method][i, t, z] if with_map else np.zeros_like(ct))

    default = DEFAULT_ATTENTION_METHOD if DEFAULT_ATTENTION_METHOD in maps else next(iter(maps))
    folder.mkdir(parents=True, exist_ok=True)
    rows = [[panel(default, i, t, with_map) for t in range(2) for with_map in (False, True)] for i in picks]
    sitk.WriteImage(sitk.GetImageFromArray(mosaic(rows), isVector=True), str(folder / "attention_overlay.png"))
    rows = [[panel(method, i, t) for i in picks for t in range(2)] for method in maps]
    sitk.WriteImage(sitk.GetImageFromArray(mosaic(rows), isVector=True), str(folder / "attention_methods.png"))
    names = [f"{rois.pids[i]} nodule {rois.nodules[i]} ({'malignant' if truth.malignant[i] else 'benign'}, "
             f"{truth.diameter[i][0]:.1f} -> {truth.diameter[i][1]:.1f} mm)" for i in picks]
    return (f"figures in {folder}: attention_overlay.png ({default}; rows {names[0]}, {names[1]}; columns T0, "
            f"T0 + map, T1, T1 + map) and attention_methods.png (rows {', '.join(maps)}; columns the malignant "
            "nodule at T0, T1, the benign one at T0, T1), axial slices through the nodule's centre, 64 x 64 mm")


def table(title: str, header: List[str], rows: List[List[str]]) -> None:
    print(f"\n{title}\n\n| {' | '.join(header)} |\n|{'---|' * len(header)}")
    for row in rows:
        print(f"| {' | '.join(row)} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, default=Path("cache/synthetic-test-seed2024-n40"))
    parser.add_argument("--offset-mm", type=float, default=0.0,
                        help="cut each ROI this far from the nodule (in-plane, random direction): a map must then "
                             "find the nodule, not the ROI's centre")
    parser.add_argument("--methods", nargs="+", choices=ATTENTION_METHODS, default=list(ATTENTION_METHODS))
    parser.add_argument("--figures", type=Path, help="write the overlay figures into this folder")
    parser.add_argument("--skip-sanity", action="store_true",
                        help="leave out the randomised-weights check (it does not depend on --offset-mm)")
    args = parser.parse_args()
    predictor = Predictor(device="auto")
    if not predictor.model.config.uses_baseline:
        parser.error("the benchmark explains both time points: use a model that sees the baseline")
    rng = np.random.default_rng(0)
    cases = {(c.pid, c.nodule): c for c in read_cohort(args.cohort / "cases.csv", args.cohort / "clinical.csv").cases}
    cases_csv = args.cohort / "cases.csv"
    if args.offset_mm:
        cases_csv = off_centre(cases_csv, args.offset_mm, Path(tempfile.mkdtemp()), rng)
    cohort = read_cohort(cases_csv, args.cohort / "clinical.csv")
    rois, _ = RoiSet.collect(iter_samples(cohort, predictor.preprocessing, predictor.vocabulary))
    truth = Truth(rois, cases, predictor)
    print(f"{len(rois)} nodules of {args.cohort}, ROIs cut {args.offset_mm:g} mm from the nodule; "
          f"{torch.get_num_threads()} threads on {predictor.device}")

    maps, seconds = {}, {}
    for method in args.methods:
        start = time.perf_counter()
        _, maps[method] = attention_for_rois(predictor.model, rois, predictor.device, method)
        seconds[method] = (time.perf_counter() - start) / len(rois)
    centre = (np.asarray(truth.shape, dtype=float) - 1.0) / 2.0
    centre_distance = np.linalg.norm(np.indices(truth.shape).reshape(3, -1).T - centre, axis=1)
    voxel_orders = {method: orders(m) for method, m in maps.items()}
    voxel_orders[RANDOM] = np.stack([np.stack([rng.permutation(centre_distance.size) for _ in range(2)])
                                     for _ in range(len(rois))])
    voxel_orders[CENTRE] = np.broadcast_to(np.argsort(centre_distance, kind="stable"), (len(rois), 2,
                                                                                       centre_distance.size))

    groups = ["all", "T0", "T1", "malignant", "benign", *(name for name, _, _ in SIZES)]
    rows = []
    for method in [*maps, RANDOM, CENTRE]:
        if method in maps:
            peaks = {(i, t): peak_index(maps[method][i, t]) for i, t in truth.scans()}
            masses = [float(maps[method][i, t].ravel()[truth.distance[i][t] <= truth.diameter[i][t] / 2].sum()
                            / max(maps[method][i, t].sum(), 1e-12)) for i, t in truth.scans()]
        elif method == RANDOM:  # a random voxel; the mass a uniform map holds inside: the nodule's share of the ROI
            peaks = {(i, t): np.array([rng.integers(0, n) for n in truth.shape], float) for i, t in truth.scans()}
            masses = [float(np.mean(truth.distance[i][t] <= truth.diameter[i][t] / 2)) for i, t in truth.scans()]
        else:
            peaks, masses = {scan: centre for scan in truth.scans()}, []
        hits = pointing(truth, peaks)
        cells = [f"{np.mean(hits[g]):.2f} ({sum(hits[g])}/{len(hits[g])})" if g in hits else "" for g in groups]
        rows.append([method, *cells, f"{np.median(masses):.3f}" if masses else ""])
    table("pointing game: the share of maps whose maximum lies on the nodule or within 5 mm of its edge; mass: the "
          "share of the map's sum inside the nodule (median; random: a uniform map's)", ["method", *groups, "mass"],
          rows)

    groups = ["all", "T0", "T1", "malignant", "benign"]
    scores = faithfulness(predictor.model, rois, predictor.device, voxel_orders, truth)
    for kind, sign in (("deletion", "fall"), ("insertion", "rise")):
        rows = [[method, *(f"{np.mean(scores[method][kind][g]):+.2f}" for g in groups)] for method in scores]
        table(f"{kind}: mean change of the log-odds of malignancy as the top 1, 2, 5, 10 and 20 % of one ROI's voxels "
              f"are {'filled with its median' if kind == 'deletion' else 'put back into a ROI filled with its median'}"
              f" (a faithful map makes the log-odds {sign} most)", ["order", *groups], rows)

    randomised = copy.deepcopy(predictor.model)
    torch.manual_seed(0)
    for module in randomised.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    rows = []
    for method in maps:
        correlation = "not measured"
        if not args.skip_sanity:
            _, random_maps = attention_for_rois(randomised, rois, predictor.device, method)
            correlations = [rank_correlation(maps[method][i, t], random_maps[i, t]) for i, t in truth.scans()
                            if maps[method][i, t].std() > 0 and random_maps[i, t].std() > 0]
            correlation = f"{np.median(correlations):.2f} ({len(correlations)} maps)"
        rows.append([method, correlation, f"{seconds[method]:.2f}"])
    table("sanity check: Spearman rank correlation of each map with the same method's map from the network with its "
          "weights re-initialised (median over nodule scans; near 1: the map does not depend on what the network "
          "learnt); time: seconds per nodule (both time points)", ["method", "rank correlation", "s per nodule"], rows)
    if args.figures:
        print("\n" + figures(args.figures, rois, truth, maps, cases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
