"""How close CSF-net runs to the machine's limit, in one report (not a test).

    python benchmarks/performance.py [--device cpu|cuda] [--configs full small] [--json out.json]
                                     [--precision fp32|bf16|fp16] [--channels-last] [--skip-pipeline]

Reports, as JSON (--json) and as a markdown table on stdout:
- FLOPs per case, counted by torch's FLOP counter on a real forward pass (2 per multiply-add);
- the machine's measured peak in the run's precision: a large matmul and the fastest of a few large
  3-D convolutions (the network's own kind of work), with the same thread count as the model runs;
- the forward time per case at batch 1 and at the best batch size, for each configuration, in ms
  and as a fraction of the conv3d peak (both the plain model and the inference fast path);
- the backbone alone, ms per ROI in passes of 1 to 16 ROIs (why it takes a few per pass on a CPU);
- ROI extraction time per nodule from a 512 x 512 x 300 scan;
- the end-to-end `csfnet predict` time per case on a small synthetic cohort (model load included,
  without measuring: benchmarks/pipeline_speed.py times that and the rest on whole-chest scans);
- the peak memory (RSS) of a one-case prediction (without measuring), in a fresh process.
How far bf16 / fp16 move p_malignant is benchmarks/precision.py's report.
"""

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "CSFNetModule"))

from CSFNetLib.clinical import FIELDS  # noqa: E402
from CSFNetLib.inference import AUTOCAST, CPU_FAST_PATH, fast_inference_model, reduced_precision  # noqa: E402
from CSFNetLib.model import build_model  # noqa: E402

BATCH_SIZES = (1, 2, 4, 8, 16, 32)
PASS_SIZES = (1, 2, 4, 6, 8, 16)
CONV_SHAPES = ((8, 64, 64, 8, 32, 32), (2, 128, 128, 8, 16, 16), (4, 32, 32, 16, 64, 64))  # N, Cin, Cout, D, H, W


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(run, device: torch.device, repeats: int) -> float:
    """The fastest of `repeats` timed runs after a warm-up: on a shared machine the minimum is the
    stable estimate of what the hardware can do (the median moves with the neighbours' load)."""
    run()  # warm-up: allocator, kernel choice
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def measured_peaks(device: torch.device, repeats: int, precision: str = "fp32") -> dict:
    """GFLOP/s of a 4096^3 matmul and of the fastest large conv3d (contiguous or channels-last), with
    operands in the dtype the model's autocast computes in."""
    dtype = AUTOCAST[precision] or torch.float32
    a, b = torch.randn(2, 4096, 4096, device=device, dtype=dtype)
    with torch.inference_mode():
        matmul = 2 * 4096 ** 3 / best_seconds(lambda: torch.mm(a, b), device, repeats) / 1e9
        convs = {}
        for n, c_in, c_out, d, h, w in CONV_SHAPES:
            conv = torch.nn.Conv3d(c_in, c_out, 3, padding=1, bias=False).to(device, dtype).eval()
            x = torch.randn(n, c_in, d, h, w, device=device, dtype=dtype)
            flops = 2 * n * c_out * c_in * 27 * d * h * w
            best = 0.0
            for layout in (torch.contiguous_format, torch.channels_last_3d):
                layer, data = conv.to(memory_format=layout), x.to(memory_format=layout)
                best = max(best, flops / best_seconds(lambda f=layer, v=data: f(v), device, repeats) / 1e9)
            convs["x".join(map(str, (n, c_in, c_out, d, h, w)))] = round(best, 1)
    return {"matmul_gflops": round(matmul, 1), "conv3d_gflops": max(convs.values()), "conv3d_shapes": convs}


def flops_per_case(model, device: torch.device) -> int:
    t0, t1, clinical = inputs(model, 1, device)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(t0, t1, clinical)
    return counter.get_total_flops()


def inputs(model, batch: int, device: torch.device):
    t0, t1 = torch.rand(2, batch, 1, *model.config.input_size_zyx, device=device)
    return t0, t1, torch.zeros(batch, len(FIELDS), dtype=torch.int64, device=device)


def forward_times(model, device: torch.device, repeats: int, precision: str = "fp32") -> dict:
    """ms per case at each batch size (inference mode, autocast unless fp32)."""
    result = {}
    for batch in BATCH_SIZES:
        t0, t1, clinical = inputs(model, batch, device)
        with torch.inference_mode(), reduced_precision(device, precision):
            result[batch] = best_seconds(lambda a=t0, b=t1, c=clinical: model(a, b, c), device, repeats) / batch * 1e3
    return result


def backbone_times(model, device: torch.device, repeats: int) -> dict:
    """ms per ROI of one backbone pass over 1 to 16 ROIs: why the backbone takes a few ROIs per pass."""
    result = {}
    with torch.inference_mode():
        for count in PASS_SIZES:
            rois = torch.rand(count, 1, *model.config.input_size_zyx, device=device)
            result[str(count)] = round(best_seconds(lambda r=rois: model.backbone(r), device, repeats) / count * 1e3, 1)
    return result


def model_report(name: str, device: torch.device, repeats: int, peak: float, precision: str,
                 channels_last: bool) -> dict:
    plain = build_model(name).to(device).eval()
    flops = flops_per_case(plain, device)
    # the fast path as `Predictor` runs it (on a CPU the passes and layout of CPU_FAST_PATH), or channels-last
    options = {**(CPU_FAST_PATH[name] if device.type == "cpu" else {}), **({"channels_last": True} if channels_last
                                                                          else {})}
    fast = fast_inference_model(plain, **options)
    report = {"gflop_per_case": round(flops / 1e9, 2), "fast_options": options,
              "backbone_ms_per_roi_by_pass": backbone_times(fast, device, repeats)}
    for label, model in (("plain", plain), ("fast", fast)):
        times = forward_times(model, device, repeats, precision)
        best = min(times, key=times.get)
        report[label] = {
            "ms_per_case": {str(b): round(t, 2) for b, t in times.items()},
            "batch1_ms": round(times[1], 2), "batch1_of_peak": round(flops / (times[1] / 1e3) / 1e9 / peak, 3),
            "best_batch": best, "best_ms": round(times[best], 2),
            "best_of_peak": round(flops / (times[best] / 1e3) / 1e9 / peak, 3),
        }
    return report


def roi_extraction_ms(repeats: int) -> float:
    """extract_roi per nodule on a 512 x 512 x 300 scan (the scan is read once, as in a batch run)."""
    from scene_time import NODULES_LPS, chest_scan

    from CSFNetLib.preprocessing import extract_roi

    scan = chest_scan(0.0, 6.0, 5.0)
    seconds = best_seconds(lambda: [extract_roi(scan, centre) for centre in NODULES_LPS], torch.device("cpu"),
                             repeats)
    return round(seconds / len(NODULES_LPS) * 1e3, 2)


def pipeline_report(folder: Path, device: str) -> dict:
    """`csfnet predict` end to end on a small synthetic cohort, and the peak RSS of a one-case run."""
    from CSFNetLib.prediction import predict_cohort
    from CSFNetLib.synth import write_cohort

    cohort = folder / "cohort"
    write_cohort(cohort, 4, 11, "small", workers=1)
    start = time.perf_counter()
    done, _ = predict_cohort(cohort / "cases.csv", folder / "results.csv", clinical_csv=cohort / "clinical.csv",
                             device=device, measure=False)
    per_case = (time.perf_counter() - start) / done
    lines = (cohort / "cases.csv").read_text(encoding="utf-8").splitlines()
    header, first_case = lines[0], [line for line in lines[1:] if line.split(",")[:2] == lines[1].split(",")[:2]]
    (cohort / "one.csv").write_text("\n".join([header, *first_case]) + "\n", encoding="utf-8")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
            "from CSFNetLib.prediction import predict_cohort; "
            "predict_cohort(Path(sys.argv[2]), Path(sys.argv[3]), device=sys.argv[4], measure=False); "
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])")
    # VmHWM (KiB): this process's own peak; ru_maxrss would carry the parent's over fork and exec
    child = subprocess.run([sys.executable, "-c", code, str(ROOT / "CSFNetModule"), str(cohort / "one.csv"),
                            str(folder / "one-results.csv"), device], check=True, capture_output=True, text=True)
    peak_mib = int(child.stdout.split()[-1]) / 1024
    return {"predict_s_per_case": round(per_case, 3), "cases": done, "one_case_peak_rss_mib": round(peak_mib, 1)}


def markdown(report: dict) -> str:
    peak = report["peak"]
    lines = [f"Machine: {report['machine']['cpu']}, {report['machine']['threads']} threads, torch "
             f"{report['machine']['torch']}, device {report['machine']['device']}"
             + (f", autocast {report['precision']}" if report["precision"] != "fp32" else ""),
             f"Measured {report['precision']} peak: matmul {peak['matmul_gflops']} GFLOP/s, "
             f"conv3d {peak['conv3d_gflops']} GFLOP/s",
             "", "| config | GFLOP per case | path | batch 1 ms | of conv3d peak | best batch | ms per case | "
             "of conv3d peak |", "|---|---|---|---|---|---|---|---|"]
    for name, r in report["models"].items():
        for path in ("plain", "fast"):
            p = r[path]
            lines.append(f"| {name} | {r['gflop_per_case']} | {path} | {p['batch1_ms']} | {p['batch1_of_peak']:.0%} | "
                         f"{p['best_batch']} | {p['best_ms']} | {p['best_of_peak']:.0%} |")
    lines += ["", "Backbone alone (fast path), ms per ROI by ROIs per pass:", "",
              "| config | " + " | ".join(map(str, PASS_SIZES)) + " |", "|---" * (len(PASS_SIZES) + 1) + "|"]
    for name, r in report["models"].items():
        lines.append(f"| {name} | " + " | ".join(str(v) for v in r["backbone_ms_per_roi_by_pass"].values()) + " |")
    if "roi_ms_per_nodule" in report:
        lines += ["", f"ROI extraction from a 512 x 512 x 300 scan: {report['roi_ms_per_nodule']} ms per nodule"]
    if "pipeline" in report:
        p = report["pipeline"]
        lines += [f"`csfnet predict` end to end: {p['predict_s_per_case']} s per case ({p['cases']} cases, model "
                  f"load included); one-case prediction peak RSS {p['one_case_peak_rss_mib']} MiB"]
    return "\n".join(lines)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--configs", nargs="+", default=["full", "small"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precision", choices=sorted(AUTOCAST), default="fp32", help="autocast (CUDA only)")
    parser.add_argument("--channels-last", action="store_true", help="fast path in channels-last memory format")
    parser.add_argument("--skip-pipeline", action="store_true", help="only the network (e.g. on a GPU machine)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.precision != "fp32" and device.type != "cuda":
        parser.error("--precision bf16 / fp16 is measured on CUDA GPUs only (the CPU's 16-bit 3-D convolutions "
                     "are torch's slow reference kernel)")
    report = {"machine": {"cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                         "device": str(device) + (f" ({torch.cuda.get_device_name(device)})"
                                                  if device.type == "cuda" else "")},
              "precision": args.precision, "peak": measured_peaks(device, args.repeats, args.precision), "models": {}}
    for name in args.configs:
        report["models"][name] = model_report(name, device, args.repeats, report["peak"]["conv3d_gflops"],
                                              args.precision, args.channels_last)
    if not args.skip_pipeline:
        report["roi_ms_per_nodule"] = roi_extraction_ms(args.repeats)
        with tempfile.TemporaryDirectory() as folder:
            report["pipeline"] = pipeline_report(Path(folder), args.device)
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
