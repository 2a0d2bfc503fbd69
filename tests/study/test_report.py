"""The study report: its tables hold the store's numbers, its verdicts follow from them."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from geomviz.store import list_runs, open_run
from geomviz.study.report import compare_lines
from geomviz.study.results import METRICS


def _table(text: str, heading: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the first table after ``heading``; arrows dropped from the header."""
    block = text.split(heading, 1)[1].split("\n\n", 2)[1]
    rows = [[c.strip() for c in r.strip("|").split("|")] for r in block.splitlines()
            if r.startswith("|")]
    return [h.rstrip(" ↑↓") for h in rows[0]], rows[2:]  # skip the rule


def _close(cell: str, value: float, digits: int) -> bool:
    """``cell`` is ``value`` to the ``digits`` significant digits it was printed with."""
    if value is None or not math.isfinite(value):
        return cell == "–"
    tol = 0.51 * 10 ** (math.floor(math.log10(abs(value) or 1)) - digits + 1)
    return abs(float(cell) - value) <= tol


def _stored(folder) -> dict:
    """The headline values read straight from the store, without geomviz.results."""
    with open_run(folder) as run:
        meta = run.meta
        norms, labels = run.arrays("snapshot.norm"), run.arrays("snapshot.labels")[0]
    f, ind = meta["final"], labels >= 0
    last = norms[max(norms)][ind].astype(np.float64).mean()
    return {"objective": meta["objective"], "seed": meta["seed"], "acc": f["test"]["acc"],
            "nll": f["test"]["nll"], "ece": f["test"]["ece"], "auroc": f["ood"]["msp.auroc"],
            "fpr95": f["ood"]["msp.fpr95"], "final_norm": last,
            "norm_growth": last / norms[0][ind].astype(np.float64).mean(),
            "nc1": f["train_eval"]["nc1"], "classes_structure": f["test"]["classes.structure"]}


def test_report_tables_equal_the_store(tiny_study):
    out, _ = tiny_study
    text = (out / "report.md").read_text()
    stored = {(s["objective"], s["seed"]): s for s in map(_stored, list_runs(out / "runs"))}
    by_header = {m.header: m for m in METRICS}
    header, rows = _table(text, "## Every seed")
    # gaussians have one OOD set, no class groups, no label noise and no known law (but known
    # class means): every other metric present
    absent = ("auroc_near", "fpr95_near", "truth_kl", "classes_ratio", "memorised",
              "grad_noisy_ratio")  # the true means are known: classes.structure is recorded
    assert header[3:] == [m.header for m in METRICS if m.key not in absent]
    assert len(rows) == len(stored) == 12
    for row in rows:
        s = stored[(row[0], int(row[1]))]
        assert row[2] == "finished"
        for m, cell in zip((by_header[h] for h in header[3:]), row[3:], strict=True):
            assert _close(cell, s[m.key], m.digits), (row[0], m.key, cell, s[m.key])
    header, rows = _table(text, "## Results (mean ± sd over seeds)")
    for row in rows:
        assert row[1] == "2"
        for m, cell in zip((by_header[h] for h in header[2:]), row[2:], strict=True):
            vals = [s[m.key] for (o, _), s in stored.items() if o == row[0]]
            mean, _, sd = cell.partition(" ± ")
            assert _close(mean, float(np.mean(vals)), m.digits), (row[0], m.key)
            assert float(sd) == pytest.approx(np.std(vals, ddof=1), rel=0.06, abs=1e-12)


def test_report_has_command_figures_ground_truth_and_provenance(tiny_study):
    out, argv = tiny_study
    text = (out / "report.md").read_text()
    assert "    geomviz " + " ".join(argv) + "\n" in text
    assert "## Ground truth: are hard samples' targets flatter?" in text
    assert re.search(r"\*\*tfsd: (the targets stay one-hot|hard-pair targets are (not )?"
                     r"flatter)", text)
    for name in ("norm_growth", "manifold_grid", "target_vs_bayes"):
        assert f"({'figures/' + name}.html)" in text
    assert "torch" in text and "commit" in text and "cpu_count" in text
    assert re.search(r"training time: \d+ s over 12 runs", text)


def _rec(obj, seed, acc):
    return {"objective": obj, "seed": seed, **{m.key: None for m in METRICS}, "acc": acc}


def test_compare_lines_say_worse_when_worse_and_unclear_within_spread():
    worse = [_rec("ce", 0, 0.90), _rec("ce", 1, 0.91), _rec("tfsd", 0, 0.80),
             _rec("tfsd", 1, 0.81)]
    (line,) = compare_lines(worse)
    assert "**worse**" in line and "tfsd 0.805 vs ce 0.905" in line
    close = [_rec("ce", 0, 0.90), _rec("ce", 1, 0.80), _rec("tfsd", 0, 0.86),
             _rec("tfsd", 1, 0.85)]
    assert "no clear difference" in compare_lines(close)[0]
    one = [_rec("ce", 0, 0.5), _rec("tfsd", 0, 0.6)]
    assert "one seed: no interval" in compare_lines(one)[0]
    # the mean paired difference +0.01 is the same in both; only consistent seeds count
    steady = [_rec("ce", s, 0.80 + s / 10) for s in range(3)] + \
        [_rec("tfsd", s, 0.81 + s / 10 + d) for s, d in enumerate((0.0, 0.001, -0.001))]
    assert "[95% CI +0.00" in compare_lines(steady)[0] and "better." in compare_lines(steady)[0]
    shaky = [_rec("ce", s, 0.80 + s / 10) for s in range(3)] + \
        [_rec("tfsd", s, 0.80 + s / 10 + d) for s, d in enumerate((0.05, -0.03, 0.01))]
    assert "no clear difference" in compare_lines(shaky)[0]
    assert compare_lines([_rec("ce", 0, 0.5)]) == []


def test_report_embeds_only_the_files_written_with_it(tiny_study, tmp_path):
    from geomviz.study.figureset import build_figures, find_runs
    from geomviz.study.report import write_report
    from geomviz.study.runner import preset_config

    out, _ = tiny_study
    figs = build_figures(find_runs([out / "runs"]), ["gradient_split"])
    # written beside the shared study's report, and removed after: a file no grid wrote
    # makes a rerun of the study refuse the folder (tests/study/test_runner.py)
    try:
        path = write_report(out / "other.md", "gaussians", preset_config("gaussians"), figs,
                            out / "figures", "geomviz study", files=[])
        text = path.read_text()
        assert "### gradient_split" in text and "](figures/" not in text  # stale: unlinked
        path = write_report(out / "other.md", "gaussians", preset_config("gaussians"), figs,
                            out / "figures", "geomviz study",
                            files=[out / "figures" / "gradient_split.html"])
        assert "[interactive](figures/gradient_split.html)" in path.read_text()
        assert "![gradient_split]" not in path.read_text()
    finally:
        (out / "other.md").unlink(missing_ok=True)


def test_verdict_follows_the_numbers():
    from geomviz.study.report import _verdict

    base = {"bayes_hard": 0.6, "target_easy": 0.01, "rho_target_bayes": 0.5,
            "anchor_hard_median": 3.0, "negative_hard_median": 4.0}
    assert "stay one-hot" in _verdict("tfsd", {**base, "target_hard": 1e-9, "p_flatter": 1e-9})
    assert "are flatter" in _verdict("tfsd", {**base, "target_hard": 0.3, "p_flatter": 1e-4})
    assert "are not flatter" in _verdict("tfsd", {**base, "target_hard": 0.3, "p_flatter": 0.2})
    assert "e^4" in _verdict("tfsd", {**base, "target_hard": 0.3, "p_flatter": 0.2})


def test_same_runs_is_said_only_when_every_value_agrees():
    from geomviz.study.report import same_runs

    recs = [_rec("metric_ce", s, 0.5 + s / 10) for s in range(3)] + \
        [_rec("tfsd", s, 0.5 + s / 10 + 1e-9) for s in range(3)]
    assert same_runs(recs)
    recs[-1]["acc"] += 1e-3
    assert not same_runs(recs)
    assert not same_runs([_rec("tfsd", 0, 0.5)])
