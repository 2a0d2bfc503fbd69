#!/usr/bin/env bash
# One-shot GPU check (issue 15), at most 560 s of step limits (checked by --smoke) on an
# H100/H200; everything goes to $OUT (or ./gpu_out), each step under its own time limit so
# one slow step cannot eat the rest (the limits are estimates: never timed together):
#   1. the CUDA tests (bf16 fused values and gradients against fp64) and the compile test;
#   2. the objectives table at N=8192, D=4096, V = 32768 and 131072, with Liger's fused CE
#      from the same process and the fused methods at 1024 and 2048 rows per chunk, then
#      the GPT-2-small (16384, 768, 50304) and Llama-3-8B (8192, 4096, 128256) heads; each
#      table ends with its target lines (× GEMM floor, extra memory, against Liger); the
#      experimental backend="triton_tiled" (fused_*_triton_tiled) runs beside "triton";
#   3. kernel profiles of fused TFSD, "triton" against "triton_tiled", at V = 131072 and at
#      the GPT-2-small head (where the passes over [n, V] dominate);
#   4. `--compile` against eager on a CIFAR-sized ResNet with a ragged last batch (4 epochs);
#   5. GPT training tokens/s, fused TFSD head against fused CE head (target ≤ 1.1×).
# Liger-Kernel is optional: the machine lacks it, so carry its wheel. Here, once:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl liger-kernel==0.8.5
# then call this with `.whl` carried; it installs every wheel under .whl/ first.
# Usage on a CUDA machine with torch + triton:   bash benchmarks/gpu_check.sh
#        bash benchmarks/gpu_check.sh --smoke   # no GPU: syntax, scripts and flags only (CI)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
if [ "${1:-}" = "--smoke" ]; then  # what the GPU run calls must exist and take its flags
  bash -n "$0" || exit 1
  for preset in gpu gpu-gpt2 gpu-llama; do
    "$py" "$here/objectives.py" --preset "$preset" --chunks 1024 2048 --help >/dev/null || exit 1
  done
  tfsd_pair="fused_tfsd_triton fused_tfsd_triton_tiled"  # the two profiles below
  # shellcheck disable=SC2086
  "$py" "$here/objectives.py" --preset gpu --vs 131072 --profile --methods $tfsd_pair \
    --help >/dev/null || exit 1
  # shellcheck disable=SC2086
  "$py" "$here/objectives.py" --preset gpu-gpt2 --profile --methods $tfsd_pair \
    --help >/dev/null || exit 1
  "$py" "$here/compile_speed.py" --preset gpu --epochs 4 --help >/dev/null || exit 1
  total=$(grep -oE '^step [0-9]+' "$0" | awk '{s += $2} END {print s}')
  [ "$total" -le 560 ] || { echo "gpu_check.sh: step limits sum to ${total}s > 560" >&2; exit 1; }
  "$py" "$here/lm_throughput.py" --preset gpu --help >/dev/null || exit 1
  echo "gpu_check.sh: syntax and the scripts it runs are fine, step limits ${total}s" \
    "(GPU steps not run: --smoke)"
  exit 0
fi
out=${OUT:-gpu_out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$py" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  "$py" -c "import liger_kernel; print('liger-kernel', __import__('importlib.metadata').metadata.version('liger-kernel'))" \
    2>/dev/null || echo "liger-kernel: not installed (carry its wheel in .whl/)"
  git rev-parse --short HEAD 2>/dev/null
} | tee "$out/gpu.txt"
step() {  # step SECONDS FILE CMD...: run CMD under a limit, output to FILE and the log
  local limit=$1 file=$2
  shift 2
  echo "== $* (limit ${limit}s)" | tee -a "$out/steps.log"
  local t0=$SECONDS
  timeout "$limit" "$@" > "$out/$file" 2>&1
  local rc=$?
  echo "   rc=$rc, $((SECONDS - t0)) s" | tee -a "$out/steps.log"
  tail -25 "$out/$file"
}
step 90 pytest.log "$py" -m pytest -q -p no:cacheprovider -m cuda tests/objectives \
  tests/training/test_compile.py "tests/test_benchmarks.py::test_target_lines_compare_with_the_floor_memory_and_liger"
step 150 bench.md "$py" benchmarks/objectives.py --preset gpu --chunks 1024 2048 \
  --json "$out/bench.json"
step 40 bench_gpt2.md "$py" benchmarks/objectives.py --preset gpu-gpt2 --chunks 2048 4096
step 40 bench_llama.md "$py" benchmarks/objectives.py --preset gpu-llama
step 40 profile.md "$py" benchmarks/objectives.py --preset gpu --vs 131072 --profile \
  --methods fused_tfsd_triton fused_tfsd_triton_tiled
step 30 profile_gpt2.md "$py" benchmarks/objectives.py --preset gpu-gpt2 --profile \
  --methods fused_tfsd_triton fused_tfsd_triton_tiled
step 100 compile.md "$py" benchmarks/compile_speed.py --preset gpu --epochs 4
step 70 lm.md "$py" benchmarks/lm_throughput.py --preset gpu
echo "gpu_check.sh: done; files in $out"
