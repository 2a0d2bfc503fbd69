"""The AlignedUMAP estimate shown before a start: the cost model against a timing measured
apart from it, its scaling, the machine's load, and the line the page shows."""

from __future__ import annotations

import numpy as np
import pytest

from geomviz.dashboard import estimate as E


def test_the_model_matches_timings_measured_apart_from_it():
    # README (benchmarks/dashboard.py --demo, 2 cores shared, load 6.1): AlignedUMAP with the
    # page's n_epochs=100 on the demo's two runs (37 steps x 1,000 points each): 708.6 s
    loaded = E.estimate([(37, 1000), (37, 1000)], 100, load=6.1, cores=2).seconds
    assert 708.6 / 1.5 < loaded < 708.6 * 1.5, loaded
    # ENVIRONMENT.md (2026-11-28, 2 idle cores): the same runs, default n_epochs (200): 233 s
    idle = E.seconds([(37, 1000), (37, 1000)], 200)
    assert 233 / 2 < idle < 233 * 2, idle


def test_cost_grows_with_steps_points_and_epochs_and_startup_is_paid_once():
    one = E.seconds([(10, 500)], 100, startup=False)
    assert E.seconds([(20, 500)], 100, startup=False) == pytest.approx(
        2 * one - E.PER_RUN_S)  # twice the steps: twice the per-step work
    assert E.seconds([(10, 1000)], 100, startup=False) > one
    assert E.seconds([(10, 500)], 200, startup=False) > one
    assert E.seconds([(10, 500)] * 2, 100) == pytest.approx(E.STARTUP_S + 2 * one)
    assert E.seconds([], 100) == 0.0


def test_a_busy_machine_scales_the_estimate_by_the_share_of_a_core_left():
    assert E.load_factor(0.5, 2) == 1.0  # a core is free
    assert E.load_factor(5.0, 2) == pytest.approx(3.0)  # 6 runnable on 2 cores
    idle, busy = E.estimate([(37, 1000)], 100, 0.0, 2), E.estimate([(37, 1000)], 100, 5.0, 2)
    assert busy.seconds == pytest.approx(3 * idle.seconds)
    assert "busy, ×3.0" in busy.text() and "busy" not in idle.text()


def test_the_line_says_minutes_and_sizes():
    assert E.duration(59) == "under a minute" and E.duration(1020) == "about 17 min"
    est = E.Estimate(250.0, ((37, 1000), (37, 1000)), 100, 1.0)
    assert est.text() == "about 4 min on this machine (2 runs × 37 steps × 1,000 points, " \
                         "n_epochs 100)"
    mixed = E.Estimate(30.0, ((37, 1000), (5, 200)), 100, 1.0)
    assert "37 steps × 1,000 points + 5 steps × 200 points" in mixed.text()
    assert E.Estimate(0.0, (), 100, 1.0).text() == "already computed"


def test_run_sizes_are_read_from_the_store(tmp_path):
    from geomviz.store import RunWriter

    w = RunWriter(tmp_path / "r", {"objective": "ce"})
    w.array(0, "snapshot.labels", np.zeros(30, np.int64))
    for step in (0, 5, 9):
        w.array(step, "snapshot.features", np.ones((30, 4), np.float16))
    w.close()
    assert E.run_sizes([tmp_path / "r"]) == [(3, 30)]
