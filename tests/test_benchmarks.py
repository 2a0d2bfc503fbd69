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


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_smoke(script, tmp_path):
    path = REPO / "benchmarks" / script
    if script == "export.py":
        from geomviz.study.export import browser_path

        if browser_path() is None:
            pytest.skip("export.py needs Chromium (apt-get install chromium); .ci/run has it")
    cmd = ["bash", str(path), "--smoke"] if script.endswith(".sh") else \
        [sys.executable, str(path), "--smoke"]
    # one thread each: the smoke runs check that the scripts work, not their speed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO),
                                                        os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OUT": str(tmp_path),
           "MPLBACKEND": "Agg", "PYTHON": sys.executable}
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{script} --smoke failed:\n{r.stdout[-1500:]}\n{r.stderr[-3000:]}"
    assert r.stdout.strip(), f"{script} --smoke printed nothing"
