"""A run's headline numbers read back from a store, against their definitions recomputed from
the written values: tail means over the last quarter of the steps (non-finite skipped), the
flipped/clean gradient ratio, the series maximum, the final norm and its growth."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geomviz.store import RunWriter
from geomviz.study.results import run_record

series = st.lists(st.tuples(st.integers(0, 400), st.one_of(st.floats(0.01, 100.0),
                                                           st.just(math.nan))),
                  min_size=0, max_size=12, unique_by=lambda t: t[0])


def _tail_mean(points: list[tuple[int, float]]) -> float | None:
    """Mean of the finite values at steps in the last quarter of the series' step span."""
    if not points:
        return None
    steps = [s for s, _ in points]
    lo = max(steps) - 0.25 * (max(steps) - min(steps))
    vals = [v for s, v in points if s >= lo and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


@settings(max_examples=15, deadline=None)
@given(series, series, series, series, st.integers(0, 2**16))
def test_run_record_series_and_norms_equal_their_definitions(hard, noisy, clean, logit, seed):
    g = np.random.default_rng(seed)
    labels = np.r_[g.integers(0, 3, 8), -np.ones(4, dtype=np.int64)]  # 4 OOD rows at the end
    norms = {s: g.uniform(0.1, 10.0, 12).astype(np.float32) for s in (0, 5, 9)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "run"
        w = RunWriter(folder, {"objective": "tfsd", "seed": 0})
        for name, pts in (("entropy.hard.target", hard), ("grad.noisy.norm.mean", noisy),
                          ("grad.clean.norm.mean", clean), ("health.max_logit", logit)):
            for s, v in pts:
                w.scalars(s, {name: v})
        w.array(0, "snapshot.labels", labels)
        for s, v in norms.items():
            w.array(s, "snapshot.norm", v)
        w.close()
        rec = run_record(folder)
    assert rec["hard_target"] == pytest.approx(_tail_mean(hard))
    a, b = _tail_mean(noisy), _tail_mean(clean)
    assert rec["grad_noisy_ratio"] == (None if a is None or not b else pytest.approx(a / b))
    finite = [v for _, v in logit if math.isfinite(v)]
    assert rec["max_logit_train"] == (max(finite) if finite else None)
    ind = labels >= 0
    last = norms[9][ind].astype(np.float64).mean()
    assert rec["final_norm"] == pytest.approx(last, rel=1e-12)
    assert rec["norm_growth"] == pytest.approx(last / norms[0][ind].astype(np.float64).mean(),
                                               rel=1e-12)
