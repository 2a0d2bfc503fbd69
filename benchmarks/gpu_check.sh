#!/usr/bin/env bash
# One-shot GPU check: GEMM-shape diagnostics, the test suite (CUDA tests included), then the
# GPU benchmark. Output goes to $OUT (or ./gpu_out).
# Usage on a CUDA machine with torch (+ triton) installed:  bash benchmarks/gpu_check.sh
set -uo pipefail
out=${OUT:-gpu_out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$out/gpu.txt"
timeout 60 python3 benchmarks/gemm_shapes.py 2>&1 | tee "$out/gemm_shapes.md"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests 2>&1 | tee "$out/pytest.log" | tail -8
timeout 200 python3 benchmarks/objectives.py --preset gpu --json "$out/bench.json" 2>&1 | tee "$out/bench.md"
for s in ${SPLITS:-4}; do
  timeout 60 python3 benchmarks/objectives.py --preset gpu --dx-split "$s" \
    --methods fused_ce_triton fused_tfsd_triton 2>&1 | tee "$out/bench_split$s.md"
done
