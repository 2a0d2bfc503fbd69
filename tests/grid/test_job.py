"""A grid worker's thread caps: torch's and the BLAS/OpenMP pools' alike (issue 23)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from geomviz.grid import job


def test_run_job_caps_blas_at_the_workers_threads(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(job, "limit_blas", calls.append)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # leave this process be
    with pytest.raises(TypeError):  # an unknown field: fails after the caps, before training
        job.run_job(job.Job({"no_such_field": 1}, False, "x"), None, threads=1)
    assert calls == [1]


def test_limit_blas_sets_every_blas_pool_of_the_process():
    """In a fresh process (the cap is process-wide): OpenBLAS starts one thread per core;
    two workers on two cores then ran four spin-waiting BLAS threads."""
    code = ("import numpy, json; from threadpoolctl import threadpool_info; "
            "from geomviz.grid.job import limit_blas; limit_blas(1); "
            "print(json.dumps([p['num_threads'] for p in threadpool_info()"
            " if p['user_api'] == 'blas']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    counts = json.loads(out.stdout.strip().splitlines()[-1])
    assert counts and all(n == 1 for n in counts), counts
