"""Every script in benchmarks/ runs at its smoke size, so a benchmark that an API change
breaks fails the build instead of the README's numbers going stale."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# scripts whose smoke run has its own test file, which also checks what it prints: run
# there only (each smoke run costs CI seconds to minutes)
OWN_TEST = {"grid_parallel.py": "test_benchmarks_grid.py",
            "hf_tfsd.py": "test_benchmarks_hf_tfsd.py",
            "integrations.py": "test_benchmarks_integrations.py"}
ALL_SCRIPTS = sorted(p.name for p in (REPO / "benchmarks").iterdir()
                     if p.suffix in (".py", ".sh") and p.name != "__init__.py")
SCRIPTS = [s for s in ALL_SCRIPTS if s not in OWN_TEST]


def test_every_benchmark_is_listed():
    assert {"dashboard.py", "export.py", "objectives.py", "gemm_shapes.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script,test", sorted(OWN_TEST.items()))
def test_benchmarks_left_to_their_own_test_are_smoke_run_there(script, test):
    assert script in ALL_SCRIPTS
    text = (REPO / "tests" / test).read_text()
    assert f"benchmarks/{script}" in text and '"--smoke"' in text, \
        f"{test} does not smoke-run {script}"


def _skip_reason(script: str) -> str | None:
    if script == "export.py":
        from geomviz.study.export import browser_path

        if browser_path() is None:
            return "export.py needs Chromium (apt-get install chromium); .ci/run has it"
    return None


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """Start every smoke run at once (one thread each) and let each test wait for its own:
    the wall time is about the slowest script's, not the sum."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO),
                                                        os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "PYTHON": sys.executable}
    procs = {}
    for script in SCRIPTS:
        if _skip_reason(script):
            continue
        path = REPO / "benchmarks" / script
        cwd = tmp_path_factory.mktemp(script.replace(".", "_"))
        cmd = ["bash", str(path), "--smoke"] if script.endswith(".sh") else \
            [sys.executable, str(path), "--smoke"]
        procs[script] = subprocess.Popen(cmd, cwd=cwd, env={**env, "OUT": str(cwd)},
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True)
    yield procs
    for p in procs.values():
        if p.poll() is None:
            p.kill()


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_smoke(script, smoke_runs):
    reason = _skip_reason(script)
    if reason:
        pytest.skip(reason)
    try:
        out, err = smoke_runs[script].communicate(timeout=300)
    except subprocess.TimeoutExpired:
        smoke_runs[script].kill()
        pytest.fail(f"{script} --smoke took over 300 s")
    assert smoke_runs[script].returncode == 0, \
        f"{script} --smoke failed:\n{out[-1500:]}\n{err[-3000:]}"
    assert out.strip(), f"{script} --smoke printed nothing"


LIGER_CHECK = r"""
import sys, torch
sys.path.insert(0, sys.argv[1])
from objectives import method_fn
from torch.nn import functional as F
from geomviz.objectives.heads import squared_distances
from geomviz.objectives.losses import tfsd_loss
g = torch.Generator().manual_seed(0)
x0, c0 = torch.randn(24, 8, generator=g), torch.randn(40, 8, generator=g)
y = torch.randint(0, 40, (24,), generator=g)
def run(name):
    x, c = x0.clone().requires_grad_(), c0.clone().requires_grad_()
    loss = method_fn(name)(x, c, y)
    loss.backward()
    return loss.detach(), x.grad, c.grad
def reference(fn):
    x, c = x0.double().requires_grad_(), c0.double().requires_grad_()
    loss = fn(x, c)
    loss.backward()
    return loss.detach(), x.grad, c.grad
ce = reference(lambda x, c: F.cross_entropy(x @ c.t(), y))
tf = reference(lambda x, c: tfsd_loss(squared_distances(x, c) * -0.05, y))
for name, want in [("liger_fused_ce", ce), ("fused_ce_triton@8", ce),
                   ("fused_ce_triton_tiled@8", ce), ("fused_tfsd_triton", tf),
                   ("fused_tfsd_triton@8", tf), ("fused_tfsd_triton_tiled", tf)]:
    for a, b in zip(run(name), want):
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-5)
print("ok")
"""


def test_benchmark_methods_compute_the_losses_they_name():
    """Liger's fused CE (the reference the GPU table compares against) and the fused Triton
    methods at fixed chunk sizes give fp64 autograd's values and gradients; on CPU the
    Triton kernels, Liger's too, run under TRITON_INTERPRET=1."""
    pytest.importorskip("triton")
    pytest.importorskip("liger_kernel")
    env = dict(os.environ, TRITON_INTERPRET="1")
    r = subprocess.run([sys.executable, "-c", LIGER_CHECK, str(REPO / "benchmarks")], env=env,
                       capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]


def test_target_lines_compare_with_the_floor_memory_and_liger():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from objectives import target_lines
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    gib = 2**30
    rows = [dict(V=32768, method="gemm_floor", ms=10.0, ratio=1.0, extra=None),
            dict(V=32768, method="fused_tfsd_triton", ms=11.9, ratio=1.19, extra=0.2 * gib),
            dict(V=32768, method="fused_ce_triton", ms=13.0, ratio=1.30, extra=0.3 * gib),
            dict(V=32768, method="fused_tfsd_triton@1024", ms=11.0, ratio=1.1, extra=0.1 * gib),
            dict(V=32768, method="liger_fused_ce", ms=12.0, ratio=1.2, extra=0.1 * gib)]
    lines = target_lines(rows, 1.2)
    assert len(lines) == 2  # chunk variants and references get no target line
    ce, tfsd = lines
    assert "fused_tfsd_triton: ×1.19 floor (≤ 1.2: met)" in tfsd and "faster" in tfsd
    assert "(≤ 0.25 GiB: met)" in tfsd
    assert "(≤ 1.2: NOT met)" in ce and "(≤ 0.25 GiB: NOT met)" in ce and "slower" in ce
