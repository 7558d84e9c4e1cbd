"""Measure a synthetic cohort: generation time, HU of tissues and nodules, growth; draw a T0/T1 figure.

    csfnet synth --out /tmp/cohort --cases 200 --seed 7        # timed; the time lands in cohort.json
    python benchmarks/synth_report.py /tmp/cohort [--patients 20] [--figure docs/synthetic_pair.png]

Tissue HU is measured on `--patients` whole-chest (`full`) scans generated in memory from the seed,
classified by the phantom's own anatomy; nodule HU and growth on every nodule of the cohort, from the
files; the figure shows the cohort's most-grown free solid nodule of at least 8 mm at T0.
"""

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CSFNetModule"))

from CSFNetLib.images import read_image  # noqa: E402
from CSFNetLib.synth import synthesize_patient  # noqa: E402


def hu_within(image: sitk.Image, point, radius_mm: float) -> np.ndarray:
    """HU of the voxels nearest to the points of a 0.5 mm lattice within `radius_mm` of a physical point."""
    offsets = np.mgrid[-radius_mm:radius_mm:0.5, -radius_mm:radius_mm:0.5, -radius_mm:radius_mm:0.5].reshape(3, -1).T
    offsets = offsets[np.linalg.norm(offsets, axis=1) <= radius_mm]
    values = []
    array = sitk.GetArrayViewFromImage(image)
    for p in np.asarray(point) + offsets:
        index = np.round(image.TransformPhysicalPointToContinuousIndex(p.tolist())).astype(int)
        if np.all(index >= 0) and np.all(index < image.GetSize()):
            values.append(float(array[index[2], index[1], index[0]]))
    return np.array(values)


def tissue_statistics(seed: int, patients: int):
    """HU per tissue on whole-chest (`full`) scans: every 6th voxel, classified by the phantom's anatomy."""
    stats = {}
    noise = []
    for index in range(patients):
        patient = synthesize_patient(seed, index, "full")
        image = patient.images["T0"]
        array = sitk.GetArrayViewFromImage(image)
        voxels = np.argwhere(np.ones(array.shape, dtype=bool)[::6, ::6, ::6]) * 6
        grid = patient.acquisitions["T0"].grid
        body = patient.acquisitions["T0"].pose.apply_inverse(grid.index_zyx_to_lps(voxels))
        for name, mask in patient.anatomy.tissue_masks(body).items():
            values = array[tuple(voxels[mask].T)].astype(float)
            stats.setdefault(name, []).append((float(np.median(values)), float(np.std(values))))
            if name == "vertebral marrow":  # constant tissue: its SD is the scanner noise
                noise.append((float(np.std(values)), patient.acquisitions["T0"].noise_sd))
    return stats, noise


def nodule_statistics(cohort: Path):
    with open(cohort / "cases.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    pairs = {}
    for row in rows:
        pairs.setdefault((row["pid"], row["nodule"]), {})[row["timepoint"]] = row
    centre_hu = {"solid": [], "part-solid": [], "non-solid": []}
    growth = {"0": [], "1": []}
    images = {}
    for pair in pairs.values():
        t0, t1 = pair["T0"], pair["T1"]
        growth[t0["label"]].append(float(t1["diameter_mm"]) / float(t0["diameter_mm"]))
        if float(t0["diameter_mm"]) >= 6.0:
            image = images.setdefault(t0["image"], read_image(cohort / t0["image"]))
            point = [float(t0[c]) for c in "xyz"]
            radius = 0.2 * float(t0["diameter_mm"])
            centre_hu[t0["nodule_type"]].append(float(np.mean(hu_within(image, point, radius))))
        if len(images) > 50:
            images.clear()
    return pairs, centre_hu, growth


def figure(cohort: Path, pairs, out: Path) -> str:
    """Axial slices through a growing nodule at T0 and T1, each in its own scan, 80 mm wide."""
    growing = [p for p in pairs.values() if p["T0"]["course"] == "grows" and p["T0"]["attachment"] == "free"
               and p["T0"]["nodule_type"] == "solid" and float(p["T0"]["diameter_mm"]) >= 8.0]
    chosen = max(growing, key=lambda p: float(p["T1"]["diameter_mm"]) / float(p["T0"]["diameter_mm"]))
    panels = []
    for timepoint in ("T0", "T1"):
        row = chosen[timepoint]
        image = read_image(cohort / row["image"])
        point = [float(row[c]) for c in "xyz"]
        # an axial 80 x 80 mm plane at 0.5 mm through the nodule, in patient (LPS) axes
        reference = sitk.Image([160, 160, 1], sitk.sitkFloat32)
        reference.SetSpacing((0.5, 0.5, 1.0))
        reference.SetOrigin((point[0] - 40.0, point[1] - 40.0, point[2]))
        plane = sitk.GetArrayFromImage(sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, -1000.0))[0]
        panels.append(np.clip((plane + 1000.0) / 1400.0, 0.0, 1.0))
    gap = np.ones((160, 6))
    canvas = (np.concatenate([panels[0], gap, panels[1]], axis=1) * 255).astype(np.uint8)
    canvas = np.kron(canvas, np.ones((2, 2), dtype=np.uint8))  # 640 x 652 pixels
    out.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(canvas), str(out))
    t0, t1 = chosen["T0"], chosen["T1"]
    return (f"{t0['pid']} nodule {t0['nodule']}: {t0['nodule_type']}, {t0['margin']}, "
            f"{t0['diameter_mm']} mm at T0 -> {t1['diameter_mm']} mm at T1 ({t1['days']} days), label {t0['label']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohort", type=Path)
    parser.add_argument("--patients", type=int, default=3)
    parser.add_argument("--figure", type=Path, default=Path("docs/synthetic_pair.png"))
    args = parser.parse_args()
    summary = json.loads((args.cohort / "cohort.json").read_text())
    print(f"generation: {summary['patients']} patients ({summary['nodules']} nodules, {summary['malignant']} "
          f"malignant), size {summary['size']}, {summary['seconds']} s with {summary['workers']} workers "
          f"({summary['seconds'] / summary['patients']:.2f} s per patient)\n")
    stats, noise = tissue_statistics(summary["seed"], args.patients)
    print(f"| tissue ({args.patients} whole-chest scans) | median HU | per-scan medians | SD within a scan |")
    print("|---|---|---|---|")
    for name, values in stats.items():
        medians, sds = np.array(values).T
        spread = f"{medians.min():.0f} .. {medians.max():.0f}"
        print(f"| {name} | {np.median(medians):.0f} | {spread} | {np.mean(sds):.0f} |")
    measured, nominal = np.array(noise).T
    print(f"\nnoise SD in vertebral marrow: measured {measured.mean():.1f} HU (nominal {nominal.mean():.1f}), "
          f"range {measured.min():.0f} .. {measured.max():.0f}\n")
    pairs, centre_hu, growth = nodule_statistics(args.cohort)
    print("| nodule type (T0 >= 6 mm) | n | mean HU of the central 40 % |\n|---|---|---|")
    for kind, values in centre_hu.items():
        if values:
            print(f"| {kind} | {len(values)} | {np.mean(values):.0f} (SD {np.std(values):.0f}) |")
    print("\n| label | n | median T1/T0 diameter | share grown > 20 % |\n|---|---|---|---|")
    for label, values in growth.items():
        values = np.array(values)
        print(f"| {'malignant' if label == '1' else 'benign'} | {len(values)} | {np.median(values):.2f} | "
              f"{np.mean(values > 1.2):.2f} |")
    caption = figure(args.cohort, pairs, args.figure)
    print(f"\nfigure: {args.figure} - {caption}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
