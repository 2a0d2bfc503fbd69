"""Degenerate but valid sizes train to the end: a one-token synonym language (one class) made
the probes' per-class arrays floats and failed at the first flush (issue 25, row 8)."""

from __future__ import annotations

import numpy as np
import pytest

from geomviz.store import Run
from probes.stats import GRAD_FIELDS, layout
from probes.summary import summarize


def test_summary_of_one_class_keeps_the_per_class_arrays():
    agg = {f.name: np.ones(f.size) for f in layout("dot", 1) + GRAD_FIELDS}
    scalars, _, arrays = summarize(agg, "dot", np.ones(1))
    assert arrays["penultimate.norm.per_class"].shape == (1,)
    assert scalars["penultimate.norm.mean"] == 1.0


@pytest.mark.parametrize("objective", ["ce", "tfsd"])
def test_a_one_token_language_trains_and_is_stored(tmp_path, monkeypatch, objective):
    from geomviz.cli import main

    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "cache"))
    out = tmp_path / objective
    assert main(["train", "--dataset", "synonyms", "--concepts", "1", "--vocab-size", "1",
                 "--max-synonyms", "1", "--objective", objective, "--epochs", "1",
                 "--train-tokens", "2048", "--test-tokens", "512", "--snapshots", "2",
                 "--snapshot-size", "50", "--snapshot-ood", "10", "--no-progress",
                 "--out", str(out)]) == 0
    with Run(out) as r:
        assert r.status == "finished"
        assert r.array_steps("train.penultimate.norm.per_class")
