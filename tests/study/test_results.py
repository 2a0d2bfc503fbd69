"""Headline numbers: read from the store as stored, aggregated like numpy does."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from geomviz.store import open_run
from geomviz.study.results import METRICS, aggregate, fmt_stat, fmt_value, run_record


def test_run_record_is_the_stores_final_evaluation(tiny_study):
    out, _ = tiny_study
    folder = out / "runs" / "tfsd-s0"
    rec = run_record(folder)
    with open_run(folder) as run:
        final = run.meta["final"]
        norms = run.arrays("snapshot.norm")
        labels = run.arrays("snapshot.labels")[0]
    assert rec["acc"] == final["test"]["acc"] and rec["nll"] == final["test"]["nll"]
    assert rec["auroc"] == final["ood"]["msp.auroc"] and rec["nc1"] == final["train_eval"]["nc1"]
    last = max(norms)
    ind = labels >= 0
    assert rec["final_norm"] == pytest.approx(norms[last][ind].astype(np.float64).mean())
    assert rec["norm_growth"] == pytest.approx(rec["final_norm"] /
                                               norms[0][ind].astype(np.float64).mean())
    assert run_record(folder, "min_distance")["auroc"] == final["ood"]["min_distance.auroc"]
    with open_run(folder) as run:
        meta = run.meta
    assert rec["seconds"] == pytest.approx(meta["ended"] - meta["created"]) and rec["seconds"] > 0


finite = st.floats(-1e6, 1e6, allow_nan=False)


@given(st.lists(st.tuples(st.sampled_from(["ce", "tfsd", "zz"]), finite), min_size=1,
                max_size=12))
def test_aggregate_is_mean_and_sample_sd(rows):
    records = [{"objective": o, "seed": i, **{m.key: v for m in METRICS}}
               for i, (o, v) in enumerate(rows)]
    agg = aggregate(records)
    assert list(agg) == [o for o in ("ce", "tfsd", "zz") if o in agg]  # registry order first
    for obj, row in agg.items():
        vals = np.array([v for o, v in rows if o == obj])
        mean, sd, n = row["acc"]
        assert n == len(vals) and mean == pytest.approx(vals.mean(), abs=1e-6)
        assert sd == pytest.approx(vals.std(ddof=1) if n > 1 else 0.0, abs=1e-6)


def test_missing_values_and_formatting():
    recs = [{"objective": "ce", "seed": 0, **{m.key: None for m in METRICS}},
            {"objective": "ce", "seed": 1, **{m.key: 2.0 for m in METRICS}}]
    assert aggregate(recs)["ce"]["acc"] == (2.0, 0.0, 1)
    assert fmt_value(None) == "–" and fmt_value(math.nan) == "–"
    assert fmt_value(0.123456, 3) == "0.123" and fmt_stat((1.0, 0.25, 3), 3) == "1 ± 0.25"
    assert fmt_stat((1.0, 0.0, 1)) == "1"
