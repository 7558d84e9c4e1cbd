#!/usr/bin/env bash
# The GPU benchmark in one go, for a lent CUDA machine: how far fp16 / bf16 move p_malignant
# (benchmarks/precision.py), then fp32, fp16 and bf16 autocast timings, each contiguous and
# channels-last (docs/performance.md). A JSON and a markdown table per run go to $OUT (or
# benchmarks/gpu-results).
#   bash benchmarks/gpu_check.sh
# SimpleITK comes from .wheels/ when the machine has none: `pip download SimpleITK --only-binary=:all:
# --python-version 3.12 --platform manylinux2014_x86_64 --no-deps -d .wheels` here, and carry .wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-benchmarks/gpu-results}
mkdir -p "$out"
python3 -c "import SimpleITK" 2>/dev/null || python3 -m pip install -q --no-deps .wheels/*.whl
export PYTHONPATH=$PWD/CSFNetModule
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 benchmarks/precision.py --device cuda --patients 40 --json "$out/precision.json" | tee "$out/precision.md"
for precision in fp32 fp16 bf16; do
    for layout in "" --channels-last; do
        name=$precision${layout:+-channels-last}
        python3 benchmarks/performance.py --device cuda --skip-pipeline --repeats 20 --precision "$precision" \
            $layout --json "$out/$name.json" | tee "$out/$name.md"
    done
done
