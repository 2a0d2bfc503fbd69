#!/usr/bin/env bash
# One-shot GPU check (issue 15), at most 560 s of step limits (checked by --smoke) on an
# H100/H200, each step under its own time limit so one slow step cannot eat the rest (the
# limits are estimates: never timed together). Everything goes to two files in $OUT (or
# ./gpu_out), report.md (every step's output under its own heading) and bench.json, since
# the device tool brings back at most 8 files; stdout gets each step's last lines:
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
report="$out/report.md"
{
  echo "# gpu_check.sh"
  echo
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$py" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  "$py" -c "import liger_kernel; print('liger-kernel', __import__('importlib.metadata').metadata.version('liger-kernel'))" \
    2>/dev/null || echo "liger-kernel: not installed (carry its wheel in .whl/)"
  git rev-parse --short HEAD 2>/dev/null
} | tee "$report"
log=$(mktemp)
step() {  # step SECONDS NAME CMD...: run CMD under a limit; its output goes into the report
  local limit=$1 name=$2
  shift 2
  echo "== $name: $* (limit ${limit}s)"
  local t0=$SECONDS
  timeout "$limit" "$@" > "$log" 2>&1
  local rc=$?
  echo "   rc=$rc, $((SECONDS - t0)) s"
  { echo; echo "## $name"; echo; echo "\`$*\`: rc=$rc, $((SECONDS - t0)) s of ${limit}";
    echo; cat "$log"; } >> "$report"
  tail -25 "$log"
}
step 60 cuda-tests "$py" -m pytest -q -p no:cacheprovider -m cuda tests/objectives
step 30 compile-test "$py" -m pytest -q -p no:cacheprovider tests/training/test_compile.py
step 150 objectives "$py" benchmarks/objectives.py --preset gpu --chunks 1024 2048 \
  --json "$out/bench.json"
step 40 objectives-gpt2 "$py" benchmarks/objectives.py --preset gpu-gpt2 --chunks 2048 4096
step 40 objectives-llama "$py" benchmarks/objectives.py --preset gpu-llama
step 40 profile "$py" benchmarks/objectives.py --preset gpu --vs 131072 --profile \
  --methods fused_tfsd_triton fused_tfsd_triton_tiled
step 30 profile-gpt2 "$py" benchmarks/objectives.py --preset gpu-gpt2 --profile \
  --methods fused_tfsd_triton fused_tfsd_triton_tiled
step 100 compile "$py" benchmarks/compile_speed.py --preset gpu --epochs 4
step 70 lm "$py" benchmarks/lm_throughput.py --preset gpu
rm -f "$log"
echo "gpu_check.sh: done; $report and $out/bench.json"
