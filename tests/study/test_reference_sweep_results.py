"""The sweep summary against its documented rules, recomputed literally over random grids:
Wortsman et al.'s LR sensitivity per complete seed (capped at L0 and not), the best loss, the
largest stable rate (half-way from L0 to the seed's best), never-trains, spike events (runs of
consecutive steps), divergences, runs above L0 and the paired verdicts against CE."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geomviz.study.sweep import Cell
from geomviz.study.sweep_results import RunResult, summarize
from geomviz.study.verdicts import paired_verdict

L0 = math.log(20)
LRS = [1e-3, 3e-3, 1e-2, 3e-2]


@st.composite
def grid(draw):
    results = []
    lrs = draw(st.lists(st.sampled_from(LRS), min_size=1, max_size=4, unique=True))
    for obj in ("ce", "tfsd"):
        for lr in lrs:
            for seed in range(3):
                if not draw(st.booleans()) and draw(st.booleans()):
                    continue  # a missing cell (about 1 in 4)
                status = draw(st.sampled_from(["finished"] * 4 + ["diverged", "crashed"]))
                final = draw(st.one_of(st.floats(0.3, 6.0), st.just(math.inf))) \
                    if status == "finished" else math.nan
                steps = sorted(set(draw(st.lists(st.integers(1, 30), max_size=6))))
                results.append(RunResult(Cell(obj, lr, False, seed), Path(f"{obj}{lr}{seed}"),
                                         status, final, L0, [(s, 2.0) for s in steps]))
    return results


def _loss(r: RunResult, cap: bool) -> float:
    if r.status == "diverged" or not math.isfinite(r.final):
        return L0
    return min(r.final, L0) if cap else r.final


def _events(steps: list[int]) -> int:
    steps = sorted(steps)
    return sum(1 for i in range(len(steps)) if i == 0 or steps[i] != steps[i - 1] + 1)


@settings(max_examples=40, deadline=None)
@given(grid())
def test_summary_equals_its_rules_recomputed(results):
    summaries = {s.objective: s for s in summarize(results)}
    for obj, s in summaries.items():
        rs = [r for r in results if r.cell.objective == obj]
        lrs = sorted({r.cell.lr for r in rs})
        seeds = sorted({r.cell.seed for r in rs})
        at = {(r.cell.lr, r.cell.seed): r for r in rs}
        assert s.lrs == lrs and s.runs == len(rs)
        for lr in lrs:
            want = [_loss(at[lr, sd], cap=False) for sd in seeds if (lr, sd) in at]
            assert s.losses[lr] == pytest.approx(want)
        complete = [sd for sd in seeds if all((lr, sd) in at for lr in lrs)]
        assert sorted(s.sensitivity) == complete == sorted(s.sensitivity_uncapped)
        for sd in complete:
            capped = [_loss(at[lr, sd], cap=True) for lr in lrs]
            raw = [_loss(at[lr, sd], cap=False) for lr in lrs]
            assert s.sensitivity[sd] == pytest.approx(sum(capped) / len(capped) - min(capped),
                                                      abs=1e-12)
            assert s.sensitivity_uncapped[sd] == pytest.approx(
                sum(raw) / len(raw) - min(raw), abs=1e-12)
            assert s.best[sd] == min(capped)
        best = {sd: min(_loss(at[lr, sd], True) for lr in lrs if (lr, sd) in at) for sd in seeds}

        def trains(r, best=best):
            return (r.status == "finished" and math.isfinite(r.final)
                    and r.final <= (L0 + best[r.cell.seed]) / 2)

        stable = [lr for lr in lrs if all(trains(at[lr, sd]) for sd in seeds if (lr, sd) in at)]
        assert s.largest_stable == (max(stable) if stable else None)
        assert s.never_trains == (not any(trains(r) for r in rs))
        assert s.spikes == sum(_events([st_ for st_, _ in r.spikes]) for r in rs)
        assert s.diverged == sum(r.status == "diverged" for r in rs)
        assert s.above_l0 == sum(r.status == "finished" and math.isfinite(r.final)
                                 and r.final > L0 for r in rs)
    if "ce" in summaries and "tfsd" in summaries:
        ce, tf = summaries["ce"], summaries["tfsd"]
        for key, a, b in (("sensitivity", tf.sensitivity, ce.sensitivity),
                          ("sensitivity, uncapped", tf.sensitivity_uncapped,
                           ce.sensitivity_uncapped), ("best loss", tf.best, ce.best)):
            want, got = paired_verdict(a, b, "lower"), tf.vs_ce[key]
            assert (got is None) == (want is None)
            if want is not None:
                assert (got.mean, got.label, got.n) == (pytest.approx(want.mean), want.label,
                                                        want.n)
