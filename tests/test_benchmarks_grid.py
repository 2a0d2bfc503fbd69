"""benchmarks/grid_parallel.py at its smoke size: the serial and the 2-worker grid both run
and it prints its ratio against the target."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_grid_parallel_smoke(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "GEOMVIZ_CACHE": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "grid_parallel.py"),
                        "--smoke"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "serial (this process):" in r.stdout and "--workers 2:" in r.stdout
    assert "speed-up ×" in r.stdout and "target ≥ 1.6" in r.stdout
