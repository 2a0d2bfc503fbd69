"""The loss-spike rule of probes.health against a host loop of its definition, over random
k, windows, flush intervals and losses with many ties (the lower median of an even count)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from probes.health import SPIKE_MIN_HISTORY, Health


class _Writer:
    def __init__(self) -> None:
        self.spikes: dict[int, tuple[float, float]] = {}

    def scalars(self, step, values, split="train", epoch=None):
        if split == "spike":
            self.spikes[step] = (values["health.spike"], values["health.spike.loss"])

    def array(self, step, name, value):
        pass


def reference_spikes(losses: list[float], k: float, window: int) -> dict[int, float]:
    """Step t (1-based) spikes when loss_t > k · (lower median of the up to ``window`` losses
    before it), once min(SPIKE_MIN_HISTORY, window) losses precede it; value loss_t / median."""
    out = {}
    for t in range(len(losses)):
        if t < min(SPIKE_MIN_HISTORY, window):
            continue
        prev = sorted(losses[max(0, t - window):t])
        med = prev[(len(prev) - 1) // 2]
        if losses[t] > k * med:
            out[t + 1] = losses[t] / med
    return out


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 12).map(float), min_size=1, max_size=60),
       st.sampled_from([1.5, 2.0, 3.0]), st.integers(1, 25), st.integers(1, 9))
def test_spikes_equal_the_literal_rule(losses, k, window, flush):
    h = Health(torch.nn.Identity(), None, flush_every=flush, device=torch.device("cpu"), k=k,
               window=window)
    w = _Writer()
    total = 0
    for t, v in enumerate(losses, 1):
        h.on_loss(t, torch.tensor(v))
        if t % flush == 0 or t == len(losses):
            total += h.write(w, t, 0, h.pack().numpy())
    want = reference_spikes(losses, k, window)
    assert sorted(w.spikes) == sorted(want) and total == len(want)
    for step, ratio in want.items():
        assert w.spikes[step][0] == pytest.approx(ratio, rel=1e-6)
        assert w.spikes[step][1] == losses[step - 1]


def test_an_infinite_loss_is_a_spike_of_infinite_size_and_nan_none():
    h = Health(torch.nn.Identity(), None, flush_every=10, device=torch.device("cpu"))
    w = _Writer()
    for t, v in enumerate([1.0] * 6 + [np.inf, np.nan], 1):
        h.on_loss(t, torch.tensor(v))
    h.write(w, 8, 0, h.pack().numpy())
    assert list(w.spikes) == [7] and w.spikes[7][0] == np.inf
