"""Every script in benchmarks/ runs at its smoke size, so a benchmark that an API change
breaks fails the build instead of the README's numbers going stale."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (REPO / "benchmarks").iterdir()
                 if p.suffix in (".py", ".sh") and p.name != "__init__.py")


def test_every_benchmark_is_listed():
    assert {"dashboard.py", "export.py", "objectives.py", "gemm_shapes.py"} <= set(SCRIPTS)


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
