"""Time from volumes to results table in a Slicer scene: one case, 3 nodules, 512 x 512 x 300 CTs (not a test).

    python benchmarks/scene_time.py [--device cpu|cuda|auto] [--repeats 3] [--json out.json]

Runs `predict_scene` on real MRML (slicer-core) for the `small` config (the shipped demo weights)
and the `full` config (untrained weights saved to a temporary checkpoint: the time, not the
answer, is what is measured). Reports the first run (model load included) and the median of
the warm reruns, with and without attention maps.
"""

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CSFNetModule"))

from CSFNetLib.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from CSFNetLib.geometry import rotation_matrix  # noqa: E402
from CSFNetLib.inference import PredictorCache  # noqa: E402
from CSFNetLib.model import build_model  # noqa: E402
from CSFNetLib.scene.files import StandaloneScene  # noqa: E402
from CSFNetLib.scene.logic import predict_scene  # noqa: E402
from CSFNetLib.scene.nodes import add_fiducials, add_volume_node  # noqa: E402
from CSFNetLib.shipped_weights import model_path  # noqa: E402

SIZE_XYZ = (512, 512, 300)
SPACING = (0.7, 0.7, 1.0)
NODULES_LPS = ((-60.0, 10.0, 20.0), (70.0, -20.0, -40.0), (-40.0, 40.0, 90.0))


def chest_scan(shift_mm: float, radius_mm: float, tilt_deg: float) -> sitk.Image:
    """A 512 x 512 x 300 int16 CT: air, a soft-tissue body, lung, and three solid nodules."""
    image = sitk.Image(SIZE_XYZ, sitk.sitkInt16)
    image.SetSpacing(SPACING)
    extent = np.asarray(SIZE_XYZ) * np.asarray(SPACING)
    image.SetOrigin((-extent / 2 + shift_mm).tolist())
    image.SetDirection(rotation_matrix((0.0, 0.0, tilt_deg)).reshape(-1).tolist())
    y, x = np.meshgrid(np.arange(SIZE_XYZ[1]), np.arange(SIZE_XYZ[0]), indexing="ij")
    r = np.hypot((x - 256) / 230, (y - 256) / 170)
    plane = np.where(r < 0.85, -850, np.where(r < 1.0, 40, -1000)).astype(np.int16)
    hu = np.repeat(plane[None], SIZE_XYZ[2], axis=0)
    for centre in NODULES_LPS:
        index = np.round(image.TransformPhysicalPointToContinuousIndex(centre)).astype(int)
        reach = [int(np.ceil(radius_mm / s)) + 1 for s in SPACING]
        box = tuple(slice(index[a] - reach[a], index[a] + reach[a] + 1) for a in (2, 1, 0))
        kk, jj, ii = np.meshgrid(*(np.arange(b.start, b.stop) for b in box), indexing="ij")
        points = np.stack([ii, jj, kk], -1).reshape(-1, 3).astype(float)
        physical = np.array([image.TransformContinuousIndexToPhysicalPoint(p.tolist()) for p in points])
        inside = (np.linalg.norm(physical - np.asarray(centre), axis=1) < radius_mm).reshape(kk.shape)
        hu[box][inside] = 30
    out = sitk.GetImageFromArray(hu)
    out.CopyInformation(image)
    return out


def time_config(scene, nodes, checkpoint: Path, device: str, repeats: int, attention: bool,
                predictors: PredictorCache):
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        predict_scene(scene, *nodes, checkpoint=str(checkpoint), device=device, attention=attention,
                      predictors=predictors)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {"first_s": round(times[0], 3), "warm_median_s": round(statistics.median(times[1:]), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    standalone = StandaloneScene()
    scene = standalone.scene
    volumes = [add_volume_node(scene, chest_scan(shift, radius, tilt), name)
               for shift, radius, tilt, name in ((0.0, 4.0, 0.0, "baseline"), (3.0, 6.0, 5.0, "follow-up"))]
    points = [add_fiducials(scene, name, NODULES_LPS, ["1", "2", "3"]) for name in ("T0", "T1")]
    nodes = (volumes[0], volumes[1], points[0], points[1])
    report = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "device": args.device},
              "volume": {"size_xyz": SIZE_XYZ, "spacing_mm": SPACING}, "nodules": len(NODULES_LPS), "configs": {}}
    with tempfile.TemporaryDirectory() as folder:
        small = model_path()
        demo = load_checkpoint(small)
        full = save_checkpoint(Path(folder) / "full-untrained.pt", build_model("full", demo.vocabulary),
                               demo.preprocessing, demo.vocabulary, {"name": "full-untrained"})
        predictors = PredictorCache()  # as the module's logic keeps them: each model is loaded by its first run
        for name, checkpoint in (("small", small), ("full", full)):
            report["configs"][name] = {
                "with_attention": time_config(scene, nodes, checkpoint, args.device, args.repeats, True, predictors),
                "without_attention": time_config(scene, nodes, checkpoint, args.device, args.repeats, False,
                                                 predictors)}
    standalone.close()
    print("| config | attention | first run (s, model load included) | warm run (s, median) |")
    print("|---|---|---|---|")
    for name, runs in report["configs"].items():
        for kind, t in runs.items():
            print(f"| {name} | {kind.split('_')[0]} | {t['first_s']:.2f} | {t['warm_median_s']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
