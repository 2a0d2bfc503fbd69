"""LR sensitivity against hand-computed grids and a literal float64 loop; the per-objective
summary (largest stable rate, divergences, spikes, verdicts against CE)."""

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from geomviz.study.sweep import Cell
from geomviz.study.sweep_results import RunResult, capped, lr_sensitivity, summarize
from geomviz.study.verdicts import paired_verdict


def test_lr_sensitivity_of_a_hand_computed_grid():
    # L0 = 5: capped losses 3.0, 2.5, 5.0 (nan), 5.0 (7 > L0) -> mean 3.875, best 2.5
    assert lr_sensitivity({1e-3: 3.0, 1e-2: 2.5, 1e-1: math.nan, 1.0: 7.0}, 5.0) == \
        pytest.approx(1.375)
    # inf counts as L0 too; one rate: always 0
    assert lr_sensitivity({1e-3: 2.0, 1e-2: math.inf}, 4.0) == pytest.approx(1.0)
    assert lr_sensitivity({1e-3: 2.0}, 4.0) == 0.0
    # a sweep that never trains is 0 (flagged in the report, see summarize)
    assert lr_sensitivity({1e-3: math.nan, 1e-2: 9.0}, 4.0) == 0.0
    with pytest.raises(ValueError):
        lr_sensitivity({}, 4.0)


@given(st.lists(st.one_of(st.floats(0.0, 20.0), st.just(math.nan), st.just(math.inf)),
                min_size=1, max_size=8), st.floats(0.5, 10.0))
def test_lr_sensitivity_equals_the_literal_definition(losses, l0):
    vals = []
    for v in losses:  # Wortsman et al. eq. 1, literally, in float64
        vals.append(l0 if not math.isfinite(v) else min(v, l0))
    want = sum(vals) / len(vals) - min(vals)
    got = lr_sensitivity(dict(enumerate(losses)), l0)
    assert got == pytest.approx(want, abs=1e-12) and got >= 0.0


def test_capped_counts_a_diverged_run_as_the_initial_loss():
    assert capped(1.0, 5.0, "diverged") == 5.0
    assert capped(1.0, 5.0) == 1.0 and capped(9.0, 5.0) == 5.0


def _r(obj, lr, seed, final, status="finished", spikes=0, qk=False):
    return RunResult(Cell(obj, lr, qk, seed), Path(f"{obj}-{lr}-{seed}"), status, final,
                     math.log(256), [(10 + 5 * i, 2.0) for i in range(spikes)])


def test_summary_counts_stability_spikes_divergence_and_gives_paired_verdicts():
    L0 = math.log(256)
    res = [
        _r("ce", 1e-3, 0, 2.0), _r("ce", 1e-3, 1, 2.1), _r("ce", 1e-2, 0, 1.8),
        _r("ce", 1e-2, 1, 1.9, spikes=2), _r("ce", 1e-1, 0, math.nan, "diverged"),
        _r("ce", 1e-1, 1, 3.0),
        _r("tfsd", 1e-3, 0, 2.2), _r("tfsd", 1e-3, 1, 2.3), _r("tfsd", 1e-2, 0, 1.7),
        _r("tfsd", 1e-2, 1, 1.85), _r("tfsd", 1e-1, 0, 2.5), _r("tfsd", 1e-1, 1, 2.4,
                                                                  spikes=1),
    ]
    ce, tfsd = summarize(res)
    assert ce.objective == "ce" and tfsd.objective == "tfsd"
    # CE: 1e-1 seed 0 diverged -> largest stable 1e-2; TFSD stable everywhere
    assert ce.largest_stable == 1e-2 and tfsd.largest_stable == 1e-1
    assert (ce.diverged, ce.spikes, ce.runs) == (1, 2, 6)
    assert (tfsd.diverged, tfsd.spikes) == (0, 1)
    # sensitivity per seed, by hand: CE s0 = mean(2.0, 1.8, L0) - 1.8,
    # s1 = mean(2.1, 1.9, 3.0) - 1.9
    assert ce.sensitivity[0] == pytest.approx((2.0 + 1.8 + L0) / 3 - 1.8)
    assert ce.sensitivity[1] == pytest.approx((2.1 + 1.9 + 3.0) / 3 - 1.9)
    assert tfsd.sensitivity[0] == pytest.approx((2.2 + 1.7 + 2.5) / 3 - 1.7)
    want = paired_verdict(tfsd.sensitivity, ce.sensitivity, "lower")
    got = tfsd.vs_ce["sensitivity"]
    assert got.mean == pytest.approx(want.mean) and got.label == want.label
    assert tfsd.vs_ce["best loss"].mean == pytest.approx(np.mean([1.7 - 1.8, 1.85 - 1.9]))
    assert ce.vs_ce == {}


def test_an_objective_that_never_trains_is_flagged():
    res = [_r("ce", 1e-3, 0, 2.0), _r("tfsd", 1e-3, 0, math.nan, "diverged")]
    ce, tfsd = summarize(res)
    assert tfsd.never_trains and not ce.never_trains and tfsd.largest_stable is None


def test_spike_steps_in_a_row_are_one_event_and_stable_means_half_way_down():
    r = RunResult(Cell("tfsd", 0.3, False, 0), Path("x"), "finished", 5.3, math.log(256),
                  [(21, 2.0), (22, 2.4), (23, 3.0), (40, 1.6)])
    assert r.events == 2
    L0 = math.log(256)
    assert r.trains(best=1.9) is False  # below L0 = 5.545, but not half-way to 1.9
    assert RunResult(Cell("ce", 0.03, False, 0), Path("y"), "finished", 3.3, L0).trains(1.9)
    res = [_r("ce", 1e-2, 0, 2.0), _r("ce", 3e-1, 0, 5.3), _r("ce", 3e-2, 0, 3.3)]
    (ce,) = summarize(res)
    assert ce.largest_stable == 3e-2  # 5.3 < L0 is not training


@given(st.lists(st.one_of(st.floats(0.0, 20.0), st.just(math.nan), st.just(math.inf)),
                min_size=1, max_size=8), st.floats(0.5, 10.0))
def test_uncapped_sensitivity_equals_the_literal_definition(losses, l0):
    vals = [l0 if not math.isfinite(v) else v for v in losses]  # no min(·, L0)
    want = sum(vals) / len(vals) - min(vals)
    got = lr_sensitivity(dict(enumerate(losses)), l0, cap=False)
    assert got == pytest.approx(want, abs=1e-9) and got >= 0.0
    assert got >= lr_sensitivity(dict(enumerate(losses)), l0) - 1e-9 or min(vals) > l0


def test_a_run_worse_than_uniform_keeps_its_loss_except_in_the_capped_sensitivity():
    L0 = math.log(256)
    res = [_r("ce", 1e-3, 0, 2.0), _r("ce", 1e-1, 0, 5.0), _r("ce", 1e-3, 1, 2.2),
           _r("ce", 1e-1, 1, 5.2),
           _r("tfsd", 1e-3, 0, 1.9), _r("tfsd", 1e-1, 0, 6.5), _r("tfsd", 1e-3, 1, 2.1),
           _r("tfsd", 1e-1, 1, math.nan, "diverged")]
    ce, tfsd = summarize(res)
    assert tfsd.losses[1e-1] == [6.5, L0]  # as measured; the diverged run as L0
    assert res[5].above_l0 and not res[7].above_l0 and tfsd.above_l0 == 1 and ce.above_l0 == 0
    assert tfsd.sensitivity[0] == pytest.approx((1.9 + L0) / 2 - 1.9)  # capped at L0
    assert tfsd.sensitivity_uncapped[0] == pytest.approx((1.9 + 6.5) / 2 - 1.9)
    assert tfsd.sensitivity_uncapped[1] == pytest.approx((2.1 + L0) / 2 - 2.1)
    want = paired_verdict(tfsd.sensitivity_uncapped, ce.sensitivity_uncapped, "lower")
    assert tfsd.vs_ce["sensitivity, uncapped"].mean == pytest.approx(want.mean)
