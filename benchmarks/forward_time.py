"""Forward time per case of each CSF-net configuration at batch 1 and batch 8 (not a test).

    python benchmarks/forward_time.py [--device cpu|cuda|mps] [--repeats 5] [--batch-sizes 1 8] [--json out.json]

Random inputs of the network's shape, eval mode under torch.inference_mode, one warm-up pass,
then the median of `--repeats` timed passes; reported per case.
"""

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CSFNetModule"))

from CSFNetLib.clinical import FIELDS  # noqa: E402
from CSFNetLib.model import CONFIGS, build_model, count_parameters  # noqa: E402


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that wall-clock time covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_forward(model, batch: int, repeats: int, device: torch.device) -> float:
    """Median seconds of one forward pass of `batch` cases."""
    t0, t1 = torch.rand(2, batch, 1, *model.config.input_size_zyx, device=device)
    clinical = torch.zeros(batch, len(FIELDS), dtype=torch.int64, device=device)
    times = []
    with torch.inference_mode():
        model(t0, t1, clinical)  # warm-up: allocator and kernel selection
        for _ in range(repeats):
            synchronize(device)
            start = time.perf_counter()
            model(t0, t1, clinical)
            synchronize(device)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, mps")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--configs", nargs="+", default=sorted(CONFIGS))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    device = torch.device(args.device)

    rows = []
    for name in args.configs:
        torch.manual_seed(0)
        model = build_model(name).eval().to(device)
        for batch in args.batch_sizes:
            seconds = time_forward(model, batch, args.repeats, device)
            rows.append({"config": name, "parameters": count_parameters(model), "batch": batch,
                         "ms_per_case": 1000 * seconds / batch})
    processor = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    machine = {"device": str(device), "processor": processor, "cpu_threads": torch.get_num_threads(),
               "torch": str(torch.__version__)}
    print(f"{machine['device']} ({processor}), {machine['cpu_threads']} CPU threads, torch {machine['torch']}\n")
    print("| config | parameters | batch | ms per case |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['parameters'] / 1e6:.2f} M | {r['batch']} | {r['ms_per_case']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
