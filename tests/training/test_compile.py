"""``--compile`` end to end on CPU with a ragged last batch (issue 15).

On an H200 (torch 2.11) ``geomviz train --compile`` died at the first flush: the probes'
percentiles met a dynamic batch dimension after the ragged last batch forced a
recompile, and ``torch.quantile`` could not trace symbolic sizes there. torch 2.13 on CPU
traces ``torch.quantile`` with dynamic sizes, so this test does not reproduce that crash
(checked: it passes with ``torch.nanquantile`` put back). It guards the compiled path end
to end instead: ragged batches, recompiles and every probe, against an eager run.
``aot_eager`` runs Dynamo and AOT autograd as inductor does, without code generation;
the CUDA + inductor run is in ``benchmarks/gpu_check.sh``.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from geomviz.store import open_run
from geomviz.training.config import resolve_config
from geomviz.training.train import load_bundle, train

# gaussians: batches of 96 leave a ragged last batch; label noise arms the per-sample
# gradient percentiles (grad.sample_norm.*) as well as the feature-norm quantiles
BASE = {"dataset": "gaussians", "objective": "tfsd", "batch_size": 96, "epochs": 2,
        "flush_every": 7, "label_noise": 0.2, "progress": False}


def _ragged() -> int:
    n = len(load_bundle(resolve_config(BASE)).x_train)
    return n % BASE["batch_size"]


def test_compiled_training_with_a_ragged_last_batch_runs_and_matches_eager(tmp_path,
                                                                         monkeypatch):
    assert _ragged() != 0, "the data must leave a ragged last batch for this test to mean much"
    if not hasattr(torch, "compile"):
        pytest.skip("torch.compile unavailable")
    eager = open_run(train(resolve_config(BASE, {"out": str(tmp_path / "eager")})))
    torch._dynamo.reset()
    counters.clear()
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    compiled = open_run(train(resolve_config(BASE, {"out": str(tmp_path / "compiled"),
                                                     "compile": True})))
    assert compiled.status == "finished", compiled.meta.get("message")
    # the probes' statistics run eagerly (torch.compiler.disable): with them traced, their
    # histograms and Python floats made 29 graphs here; now the step, its ragged-batch and
    # probe-step variants make 5
    assert counters["stats"]["unique_graphs"] <= 8, dict(counters["stats"])
    assert compiled.meta["final"]["test"]["acc"] == pytest.approx(
        eager.meta["final"]["test"]["acc"], abs=0.02)
    names = set(compiled.scalar_names())
    probed = {"grad.sample_norm.p99", "penultimate.norm.p95", "penultimate.norm.p50"}
    assert probed <= names, sorted(probed - names)
    for name in ("grad.sample_norm.p99", "penultimate.norm.p95", "penultimate.norm.p50",
                 "loss"):
        a, b = compiled.scalars(name), eager.scalars(name)
        assert a["step"].tolist() == b["step"].tolist()  # the ragged flush is recorded too
        assert np.isfinite(a["value"]).all()
        np.testing.assert_allclose(a["value"][:3], b["value"][:3], rtol=2e-3, atol=1e-5)
