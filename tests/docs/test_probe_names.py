"""Every scalar, histogram and array name that real tiny runs store (an MLP pair, CE and TFSD
with label noise and an OOD split, and a language model on `synonyms`) appears in the probes
reference, so the page cannot go stale when a probe is added."""

from __future__ import annotations

import itertools
import re
import sqlite3

import pytest

from tests.docs.snippets import ROOT

PAGE = ROOT / "docs" / "reference" / "probes.md"
PLACEHOLDERS = {"<score>": ["msp", "max_logit", "energy", "min_distance"],
                "<metric>": ["auroc", "aupr_in", "aupr_out", "fpr95"],
                "<split>": ["train", "test"]}


def expand(token: str) -> set[str]:
    """`a.{b,c}.<score>` -> every name it stands for."""
    parts = re.split(r"(\{[^{}]*\}|<score>|<metric>|<split>)", token)
    options = [p[1:-1].split(",") if p.startswith("{") else PLACEHOLDERS.get(p, [p])
               for p in parts]
    return {"".join(o).strip() for o in itertools.product(*options)}


def documented(text: str) -> set[str]:
    """Every name the page writes in backticks, braces and placeholders expanded."""
    return {n for token in re.findall(r"`([^`]+)`", text) for n in expand(token)}


def stored(folder) -> set[str]:
    con = sqlite3.connect(folder / "run.sqlite")
    names = set()
    for table in ("scalars", "histograms"):
        names |= {r[0] for r in con.execute(f"SELECT DISTINCT name FROM {table}")}
    names |= {r[0] for r in con.execute("SELECT DISTINCT name FROM arrays")}
    con.close()
    return names


def test_expand():
    assert expand("head.{gap,margin}.{mean,p5}") == {"head.gap.mean", "head.gap.p5",
                                                      "head.margin.mean", "head.margin.p5"}
    assert "msp.auroc" in expand("<score>.<metric>")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    pytest.importorskip("mnist1d")
    from geomviz.cli import main

    root = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("GEOMVIZ_CACHE", str(tmp_path_factory.mktemp("cache")))
    assert main(["compare", "--objectives", "ce,tfsd", "--seeds", "0", "--epochs", "2",
                 "--dataset", "mnist1d", "--ood-classes", "8,9", "--label-noise", "0.2",
                 "--name", "mlp", "--runs-dir", str(root), "--snapshots", "4",
                 "--snapshot-size", "100", "--snapshot-ood", "20", "--no-progress"]) == 0
    assert main(["train", "--objective", "tfsd", "--dataset", "synonyms", "--epochs", "1",
                 "--train-tokens", "4096", "--test-tokens", "1024", "--snapshots", "3",
                 "--out", str(root / "lm"), "--no-progress"]) == 0
    mp.undo()
    return [root / "mlp" / "ce-s0", root / "mlp" / "tfsd-s0", root / "lm"]


def test_every_stored_name_is_in_the_probes_reference(runs):
    names = set().union(*(stored(r) for r in runs))
    assert {"head.anchor_gap.mean", "truth.kl", "snapshot.features"} <= names  # real runs
    missing = sorted(names - documented(PAGE.read_text()))
    assert not missing, f"document these in docs/reference/probes.md: {missing}"
