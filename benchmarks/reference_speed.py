"""Our CSF-net against the original authors' code, side by side in one process (not a test).

    python benchmarks/reference_speed.py --reference PATH/TO/CSF-NET [--batches 1 2 4 8 16 32]
                                         [--repeats 5] [--json out.json]

PATH/TO/CSF-NET is a checkout of github.com/hdusyz/CSF-NET (the paper's code; not part of this
repository). Its model file at the last commit does not parse (its first line is `-import typing`)
and imports a module the repository lacks (`models.MutualGuidedCoAttention`), but the repository
also holds the CPython 3.11 bytecode of that file, which this script loads as it is, with an empty
module standing in for the missing one (its network, `ConvRes_table`, uses nothing of it). So run
it with Python 3.11 and the reference's own imports installed (scipy, einops, tensorboard,
torchmetrics), e.g. in a virtual environment beside ours.

Both networks run in inference mode, fp32, on the CPU with the same threads, at each batch size,
alternately (the machine's load moves both alike); ours exactly as `Predictor` runs it on a CPU
(batch norms folded, `inference.CPU_FAST_PATH`). Reported per case: the fastest and the median of
`--repeats` runs, and the fastest as a fraction of the machine's measured conv3d peak (FLOPs of each
network counted by torch's FLOP counter).
"""

import argparse
import importlib.machinery
import importlib.util
import json
import statistics
import sys
import time
import types
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from performance import cpu_name, measured_peaks  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CSFNetModule"))
from CSFNetLib.clinical import FIELDS  # noqa: E402
from CSFNetLib.inference import CPU_FAST_PATH, fast_inference_model  # noqa: E402
from CSFNetLib.model import build_model  # noqa: E402

#: The paper's stage widths, and category counts for the six clinical fields (they size only an embedding table).
REFERENCE_STAGES = [[64, 64, 64], [128, 128, 256], [256, 256, 256, 512]]
REFERENCE_CATEGORIES = [7, 3, 3, 10, 3, 3]
COMPILED = {"models.temporal.tem1": "models/temporal/__pycache__/tem1.cpython-311.pyc",
            "models.res_cnn": "models/__pycache__/res_cnn.cpython-311.pyc"}


def reference_network(checkout: Path) -> torch.nn.Module:
    """The reference's `ConvRes_table` in eval mode, loaded from its committed bytecode."""
    if sys.version_info[:2] != (3, 11):
        raise SystemExit("the reference's bytecode is CPython 3.11's: run this script with Python 3.11")
    sys.path.insert(0, str(checkout))
    sys.modules["models.MutualGuidedCoAttention"] = types.ModuleType("models.MutualGuidedCoAttention")
    for name, relative in COMPILED.items():
        loader = importlib.machinery.SourcelessFileLoader(name, str(checkout / relative))
        spec = importlib.util.spec_from_file_location(name, str(checkout / relative), loader=loader)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loader.exec_module(module)
    return sys.modules["models.res_cnn"].ConvRes_table(REFERENCE_STAGES, REFERENCE_CATEGORIES).eval()


def flops_per_case(network: torch.nn.Module) -> int:
    t0, t1, clinical = inputs(1)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        network(t0, t1, clinical)
    return counter.get_total_flops()


def inputs(batch: int):
    t0, t1 = torch.rand(2, batch, 1, 16, 64, 64)
    return t0, t1, torch.zeros(batch, len(FIELDS), dtype=torch.int64)


def side_by_side(networks: dict, batches, repeats: int) -> dict:
    """ms per case of each network at each batch size: fastest and median of `repeats`, run alternately."""
    result = {}
    for batch in batches:
        t0, t1, clinical = inputs(batch)
        times: dict = {name: [] for name in networks}
        with torch.inference_mode():
            for network in networks.values():
                network(t0, t1, clinical)  # warm-up: allocator, kernel choice
            for _ in range(repeats):
                for name, network in networks.items():
                    start = time.perf_counter()
                    network(t0, t1, clinical)
                    times[name].append((time.perf_counter() - start) / batch * 1e3)
        result[batch] = {name: {"best_ms": round(min(t), 1), "median_ms": round(statistics.median(t), 1)}
                         for name, t in times.items()}
        print(f"batch {batch}: " + ", ".join(f"{name} {t['best_ms']} ms" for name, t in result[batch].items()),
              file=sys.stderr, flush=True)
    return result


def markdown(report: dict) -> str:
    machine, flops = report["machine"], report["gflop_per_case"]
    lines = [f"Machine: {machine['cpu']}, {machine['threads']} threads, torch {machine['torch']}; conv3d peak "
             f"{report['peak']['conv3d_gflops']} GFLOP/s; GFLOP per case: ours {flops['ours']}, reference "
             f"{flops['reference']}", "",
             "| batch | ours, ms per case (median) | of conv3d peak | reference, ms per case (median) | of conv3d peak "
             "| reference / ours |", "|---|---|---|---|---|---|"]
    peak = report["peak"]["conv3d_gflops"]
    for batch, row in report["batches"].items():
        ours, ref = row["ours"], row["reference"]
        share = {name: flops[name] / (row[name]["best_ms"] / 1e3) / peak for name in ("ours", "reference")}
        lines.append(f"| {batch} | {ours['best_ms']} ({ours['median_ms']}) | {share['ours']:.0%} | {ref['best_ms']} "
                     f"({ref['median_ms']}) | {share['reference']:.0%} | {ref['best_ms'] / ours['best_ms']:.2f}x |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="a checkout of hdusyz/CSF-NET")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    networks = {"ours": fast_inference_model(build_model("full").eval(), **CPU_FAST_PATH["full"]),
                "reference": reference_network(args.reference)}
    report = {"machine": {"cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__},
              "peak": measured_peaks(torch.device("cpu"), args.repeats),
              "gflop_per_case": {name: round(flops_per_case(n) / 1e9, 2) for name, n in networks.items()},
              "batches": side_by_side(networks, args.batches, args.repeats)}
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
