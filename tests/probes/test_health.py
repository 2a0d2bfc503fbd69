"""Training-health probes: the spike rule against a host reference, no host sync per step,
and a GPT run storing the attention/output-logit probes under their exact names."""

import numpy as np
import pytest
import torch

from geomviz.store import open_run
from geomviz.training.config import resolve_config
from geomviz.training.train import train
from probes.health import Health
from tests.helpers import spy_host_syncs
from tests.training.test_lm import T, token_bundle


class _Writer:
    def __init__(self):
        self.scalar_rows, self.arrays = [], {}

    def scalars(self, step, values, split="train", epoch=None):
        self.scalar_rows.append((step, split, dict(values)))

    def array(self, step, name, value):
        self.arrays[(step, name)] = value


def _reference_spikes(losses, k, w):
    """Host float64 reference of the rule: loss_t > k · median(previous w losses), the
    lower median for an even w."""
    out = {}
    for t in range(min(5, w), len(losses)):  # from 5 previous steps on, up to w of them
        prev = sorted(losses[max(0, t - w):t])
        med = prev[(len(prev) - 1) // 2]
        if losses[t] > k * med:
            out[t + 1] = losses[t] / med  # steps are 1-based
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spikes_match_the_reference_rule(seed):
    rng = np.random.default_rng(seed)
    losses = 2.0 + 0.1 * rng.standard_normal(120)
    losses[rng.choice(np.arange(10, 120), 8, replace=False)] *= rng.uniform(1.2, 3.0, 8)
    losses[[3, 6]] *= 2.5  # before 5 steps of history: none; from 5, on a partial window
    h = Health(torch.nn.Identity(), None, flush_every=7, device=torch.device("cpu"), k=1.5,
               window=10)
    w = _Writer()
    for t, v in enumerate(losses, 1):
        h.on_loss(t, torch.tensor(v, dtype=torch.float64))
        if t % 7 == 0 or t == len(losses):
            h.write(w, t, 0, h.pack().numpy())
    got = {s: v["health.spike"] for s, split, v in w.scalar_rows if split == "spike"}
    want = _reference_spikes(losses.astype(np.float32).astype(np.float64), 1.5, 10)
    assert want and sorted(got) == sorted(want) and 7 in want and 4 not in want
    for s in want:
        assert got[s] == pytest.approx(want[s], rel=1e-5)


@pytest.mark.parametrize("cut", [3, 14, 35])
def test_a_detector_restored_from_its_state_flags_what_an_unbroken_one_does(cut):
    """A resumed run's detector continues the history (a fresh one is blind for 5 steps and
    measures against a shorter window)."""
    rng = np.random.default_rng(4)
    losses = 2.0 + 0.1 * rng.standard_normal(70)
    losses[[cut, cut + 2, 50]] *= 2.2

    def run(detectors):
        w, h = _Writer(), detectors[0]
        for t, v in enumerate(losses, 1):
            h.on_loss(t, torch.tensor(v))
            if t % 7 == 0 or t == cut:
                h.write(w, t, 0, h.pack().numpy())
                if t == cut and len(detectors) > 1:
                    state = h.state_dict()
                    h = detectors[1]
                    h.load_state_dict(state)
        return {s: v["health.spike"] for s, split, v in w.scalar_rows if split == "spike"}

    def make():
        return Health(torch.nn.Identity(), None, flush_every=7, device=torch.device("cpu"),
                      k=1.5, window=10)

    whole = run([make()])
    assert whole == run([make(), make()]) and {cut + 3, 51} <= set(whole)


def test_health_state_is_refused_between_flushes_or_for_another_window():
    h = Health(torch.nn.Identity(), None, flush_every=7, device=torch.device("cpu"), window=10)
    h.on_loss(1, torch.tensor(1.0))
    with pytest.raises(RuntimeError, match="between flushes"):
        h.state_dict()
    h.write(_Writer(), 1, 0, h.pack().numpy())
    other = Health(torch.nn.Identity(), None, flush_every=7, device=torch.device("cpu"),
                   window=5)
    with pytest.raises(ValueError, match="10 losses saved, 5 in use"):
        other.load_state_dict(h.state_dict())


def test_a_steady_or_falling_loss_has_no_spike():
    h = Health(torch.nn.Identity(), None, flush_every=100, device=torch.device("cpu"))
    for t in range(1, 101):
        h.on_loss(t, torch.tensor(5.0 / t))  # falling fast: never above the median
    w = _Writer()
    assert h.write(w, 100, 0, h.pack().numpy()) == 0


def test_per_step_health_makes_no_host_sync(monkeypatch):
    from geomviz.models import build_backbone

    gpt = build_backbone("gpt", (T,), 16, vocab_size=40, block_size=T)
    head = torch.nn.Linear(16, 40)
    h = Health(gpt, head, flush_every=50, device=torch.device("cpu"), window=3)
    x = torch.randint(0, 40, (4, T))
    calls = spy_host_syncs(monkeypatch)
    for t in range(1, 6):
        h.arm(t % 2 == 0)
        loss = head(gpt.forward_features(x)).logsumexp(-1).mean()
        h.on_loss(t, loss)
        loss.backward()
    assert calls == []
    h.pack().cpu()
    assert calls == ["cpu"]
    h.close()


def test_gpt_run_stores_the_health_probes_under_their_names(tmp_path):
    cfg = resolve_config({}, {"objective": "ce", "dataset": "synonyms", "epochs": 2,
                              "batch_size": 16, "seq_len": T, "block_size": T,
                              "feature_dim": 16, "out": str(tmp_path / "run"),
                              "progress": False, "snapshots": 0, "flush_every": 2})
    out = train(cfg, token_bundle())
    with open_run(out) as run:
        peak = run.scalars("health.attn_logit.max", split="train")
        assert len(peak["value"]) >= 4 and np.isfinite(peak["value"]).all()
        per_layer = run.arrays("health.attn_logit.max")
        assert sorted(per_layer) == sorted(int(s) for s in peak["step"])
        for s, v in zip(peak["step"], peak["value"], strict=True):
            assert per_layer[int(s)].shape == (2,) and per_layer[int(s)].max() == \
                pytest.approx(v)
        norms = run.arrays("health.block_out.norm")
        assert all(a.shape == (2,) and (a > 0).all() for a in norms.values())
        assert np.isfinite(run.scalars("health.output_logit.mean", split="train")["value"]).all()
        assert np.isfinite(run.scalars("health.max_logit", split="train")["value"]).all()
        assert run.meta["health"] == {"spike_k": 1.5, "spike_window": 20,
                                      "spike_min_history": 5}
