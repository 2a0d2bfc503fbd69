"""The smallest synonym languages: a one-token vocabulary is refused in one line (it made the
probes' per-class arrays floats and failed with a TypeError at the first flush; issue 25,
row 8), and one concept of two synonyms trains to the end with every objective kind."""

from __future__ import annotations

import numpy as np
import pytest

from geomviz.store import Run
from probes.stats import GRAD_FIELDS, layout
from probes.summary import summarize

TINY = ["--dataset", "synonyms", "--epochs", "1", "--train-tokens", "2048", "--test-tokens",
        "512", "--snapshots", "2", "--snapshot-size", "50", "--snapshot-ood", "10",
        "--no-progress"]


def test_summary_of_one_class_keeps_the_per_class_arrays():
    agg = {f.name: np.ones(f.size) for f in layout("dot", 1) + GRAD_FIELDS}
    scalars, _, arrays = summarize(agg, "dot", np.ones(1))
    assert arrays["penultimate.norm.per_class"].shape == (1,)
    assert scalars["penultimate.norm.mean"] == 1.0


def test_a_one_token_language_is_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    from geomviz.cli import main

    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "one"
    assert main(["train", *TINY, "--concepts", "1", "--vocab-size", "1", "--max-synonyms", "1",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "vocab_size must be >= 2" in err[0], err
    assert not out.exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("objective", ["ce", "tfsd"])
def test_one_concept_of_two_synonyms_trains_and_is_stored(tmp_path, monkeypatch, objective):
    from geomviz.cli import main

    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "cache"))
    out = tmp_path / objective
    assert main(["train", *TINY, "--concepts", "1", "--vocab-size", "2", "--max-synonyms", "2",
                 "--objective", objective, "--out", str(out)]) == 0
    with Run(out) as r:
        assert r.status == "finished"
        assert r.array_steps("train.penultimate.norm.per_class")
