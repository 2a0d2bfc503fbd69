"""benchmarks/hf_tfsd.py at its smoke size: it runs, reports every variant's time and peak
memory, and its patched variants compute the same TFSD loss, fused or not."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

REPO = Path(__file__).resolve().parents[1]


def test_hf_tfsd_benchmark_smoke(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO),
                                                        os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "hf_tfsd.py"), "--smoke",
                           "--json"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    variants = {"hf_ce", "tfsd_logits", "tfsd_fused", "trunk"}
    assert set(out["time_s"]) == set(out["peak_extra_b"]) == set(out["loss"]) == variants
    assert all(t > 0 for t in out["time_s"].values())
    assert all(isinstance(b, int) and b >= 0 for b in out["peak_extra_b"].values())
    # the stock CE holds at least its [N, V] fp32 logits; the RSS counters lag by far less
    assert out["peak_resolution_b"] < out["logits_b"] <= out["peak_extra_b"]["hf_ce"]
    loss = out["loss"]
    assert math.isclose(loss["tfsd_fused"], loss["tfsd_logits"], rel_tol=1e-4)
    assert abs(loss["hf_ce"] - math.log(out["v"])) < 0.5  # random init: CE ~ log V
    assert out["logits_b"] == out["n"] * out["v"] * 4
