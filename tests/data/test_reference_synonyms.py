"""The synonym language's reported facts (entropy rate, the true law's expected NLL, shares of
determined and synonym positions) against a brute-force computation on the token-level
chain: every context's next-token law read from the law itself, its stationary law solved
by dense linear algebra, the entropies summed over every state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomviz.data.synonyms import synonyms


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "cache"))


def _entropy(p: np.ndarray) -> np.ndarray:
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)


def _stationary(t: np.ndarray) -> np.ndarray:
    """The law pi with pi T = pi, sum 1 (least squares on the stacked system)."""
    s = len(t)
    a = np.vstack([t.T - np.eye(s), np.ones((1, s))])
    rhs = np.r_[np.zeros(s), 1.0]
    pi = np.linalg.lstsq(a, rhs, rcond=None)[0]
    assert np.abs(pi @ t - pi).max() < 1e-10 and pi.min() > -1e-12
    return np.clip(pi, 0.0, None)


def _kinds(law: np.ndarray, groups: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """2 where the next token is determined, 1 where it spreads over one concept of >= 2
    tokens, else 0 (the documented position kinds), per row of ``law[S, V]``."""
    c = groups.max() + 1
    size = np.bincount(groups, minlength=c)
    mass = np.stack([law[:, groups == k].sum(1) for k in range(c)], 1)  # [S, C]
    one = ((mass > tol).sum(1) == 1) & (size[mass.argmax(1)] >= 2)
    return np.where(law.max(1) >= 1 - tol, 2, np.where(one, 1, 0))


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("emission", ["uniform", "zipf"])
def test_entropy_rate_nll_and_shares_against_the_token_chain(order, emission):
    seq_len = 16
    b = synonyms(seed=5, vocab_size=22, concepts=7, max_synonyms=4, order=order,
                 emission=emission, seq_len=seq_len, train_tokens=512, test_tokens=256)
    v, groups = b.num_classes, np.asarray(b.info["groups"])
    if order == 1:
        law = b.truth(torch.arange(v)[:, None])[:, 0].numpy()  # [V, V]: P(next | token)
        t = law  # states are tokens
    else:
        pairs = torch.cartesian_prod(torch.arange(v), torch.arange(v))  # [(v0, v1)]
        full = b.truth(pairs).numpy()  # [V², 2, V]
        law = full[:, 1]  # P(v2 | v0, v1)
        t = np.zeros((v * v, v * v))  # state (v0, v1) -> (v1, v2)
        for s, (_, v1) in enumerate(pairs.tolist()):
            t[s, v1 * v:(v1 + 1) * v] = law[s]
    np.testing.assert_allclose(t.sum(1), 1.0, atol=1e-12)
    pi = _stationary(t)
    rate = float(pi @ _entropy(law))
    assert b.info["entropy_rate"] == pytest.approx(rate, rel=1e-9, abs=1e-12)
    if order == 1:
        nll = rate
    else:  # position 0 sees one token: its law given v0, under the stationary marginal
        first = b.truth(torch.arange(v)[:, None])[:, 0].numpy()  # [V, V]
        marginal = pi.reshape(v, v).sum(1)
        nll = (float(marginal @ _entropy(first)) + (seq_len - 1) * rate) / seq_len
    assert b.info["truth_nll"] == pytest.approx(nll, rel=1e-9, abs=1e-12)
    kinds = _kinds(law, groups)
    assert b.info["single_share"] == pytest.approx(float(pi @ (kinds == 2)), abs=1e-9)
    assert b.info["synonym_share"] == pytest.approx(float(pi @ (kinds == 1)), abs=1e-9)
