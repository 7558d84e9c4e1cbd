"""Pictures of measured nodule masks on synthetic scans: one juxtapleural, one juxtavascular, one part-solid.

Each picture is the axial slice through the nodule's centre (resampled to 0.5 mm, lung window) with
the measured whole-nodule outline (yellow), its solid part (red) and the generator's true outline
(dashed cyan), and the measured and true volumes in the title.

  python docs/render_masks.py          # writes docs/mask-juxtapleural.png, mask-juxtavascular.png, mask-part-solid.png
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import SimpleITK as sitk  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CSFNetModule"))

from CSFNetLib.measure.segmentation import measure_nodule  # noqa: E402
from CSFNetLib.preprocessing import resample_to_grid  # noqa: E402
from CSFNetLib.synth import synthesize_patient  # noqa: E402
from CSFNetLib.synth.truth import true_masks, true_size  # noqa: E402

WANTED = {"juxtapleural": lambda n: n.attachment == "pleural" and n.kind == "solid",
          "juxtavascular": lambda n: n.attachment == "vascular",
          "part-solid": lambda n: n.kind == "part-solid"}
SEED = 11


def main() -> int:
    out = Path(__file__).resolve().parent
    found = {}
    for index in range(200):
        patient = synthesize_patient(SEED, index, "small")
        for nodule in patient.nodules:
            for name, wanted in WANTED.items():
                if name not in found and wanted(nodule) and nodule.diameter("T1") >= 8:
                    found[name] = (patient, nodule)
        if len(found) == len(WANTED):
            break
    for name, (patient, nodule) in found.items():
        image = patient.images["T1"]
        measured = measure_nodule(image, patient.nodule_center_lps(nodule, "T1"))
        segmentation = measured.segmentation
        truth, _ = true_masks(patient, nodule, "T1", segmentation.grid)
        hu = resample_to_grid(image, segmentation.grid, sitk.sitkLinear, -1000.0)
        z = int(round(segmentation.grid.lps_to_index_zyx(segmentation.centre_lps)[0]))
        half = segmentation.grid.spacing_xyz[0] * hu.shape[1] / 2
        extent = (-half, half, half, -half)
        figure, axis = plt.subplots(figsize=(4.5, 4.5), dpi=110)
        axis.imshow(hu[z], cmap="gray", vmin=-1350, vmax=150, extent=extent)
        axis.contour(segmentation.whole[z], levels=[0.5], colors="yellow", linewidths=1.2, extent=extent,
                     origin="upper")
        if segmentation.solid[z].any():
            axis.contour(segmentation.solid[z], levels=[0.5], colors="red", linewidths=1.0, extent=extent,
                         origin="upper")
        axis.contour(truth[z], levels=[0.5], colors="cyan", linewidths=0.8, linestyles="--", extent=extent,
                     origin="upper")
        true = true_size(patient, nodule, "T1")
        axis.set_title(f"{name} {nodule.kind}, {nodule.margin}: {measured.size.volume_mm3:.0f} mm3 measured, "
                       f"{true.volume_mm3:.0f} true", fontsize=8)
        axis.set_xlabel("mm (synthetic phantom, not a patient)", fontsize=7)
        axis.tick_params(labelsize=6)
        figure.tight_layout()
        path = out / f"mask-{name}.png"
        figure.savefig(path)
        plt.close(figure)
        print(f"{path.name}: {patient.spec.pid} nodule {nodule.nodule_id}, {measured.size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
