#!/usr/bin/env bash
# One-shot GPU check: GEMM-shape diagnostics, the test suite (CUDA tests included), the GPU
# benchmark, and a kernel profile of fused TFSD. Output goes to $OUT (or ./gpu_out).
# Usage on a CUDA machine with torch (+ triton) installed:  bash benchmarks/gpu_check.sh
#        bash benchmarks/gpu_check.sh --smoke   # no GPU: syntax, scripts and flags only (CI)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = "--smoke" ]; then  # what the GPU run calls must exist and take its flags
  bash -n "$0" || exit 1
  py=${PYTHON:-python3}
  "$py" "$here/gemm_shapes.py" --help >/dev/null || exit 1
  "$py" "$here/objectives.py" --preset gpu --vs 131072 --methods fused_tfsd_triton --help \
    >/dev/null || exit 1
  echo "gpu_check.sh: syntax and the scripts it runs are fine (GPU steps not run: --smoke)"
  exit 0
fi
out=${OUT:-gpu_out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$out/gpu.txt"
timeout 60 python3 benchmarks/gemm_shapes.py 2>&1 | tee "$out/gemm_shapes.md"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests 2>&1 | tee "$out/pytest.log" | tail -8
timeout 200 python3 benchmarks/objectives.py --preset gpu --json "$out/bench.json" 2>&1 | tee "$out/bench.md"
timeout 60 python3 benchmarks/objectives.py --preset gpu --vs 131072 --profile \
  --methods fused_tfsd_triton > "$out/profile.md" 2>&1
