"""The synonym language: its exact next-token law against samples and a literal per-position
reference, the entropy rate against the true law's test NLL, position kinds, the cache."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.sparse import csr_matrix

from geomviz.data import DataError
from geomviz.data import synonyms as syn
from geomviz.data.synonyms import SINGLE, SYNONYM, positions_kind, synonyms

SMALL = dict(vocab_size=20, concepts=8, max_synonyms=4, seq_len=16, train_tokens=2**17,
             test_tokens=2**14)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "cache"))


def _contexts(bundle, x: torch.Tensor) -> torch.Tensor:
    """Context id of every position ``[N, T]``: what the next token's law depends on."""
    g = torch.tensor(bundle.info["groups"])[x]
    c = bundle.info["concepts"]
    if bundle.info["order"] == 1:
        return g
    prev = torch.cat([torch.full_like(g[:, :1], c), g[:, :-1]], 1)  # c = "no previous"
    return prev * c + g


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("emission", ["uniform", "zipf"])
def test_truth_matches_the_sampled_next_token_frequencies(order, emission):
    b = synonyms(seed=3, order=order, emission=emission, **SMALL)
    v = b.num_classes
    law = b.truth(b.x_train)  # [N, T, V]
    ctx = _contexts(b, b.x_train).reshape(-1)
    law, y = law.reshape(-1, v), b.y_train.reshape(-1)
    keys = ctx.unique()
    first = torch.zeros(int(ctx.max()) + 1, dtype=torch.long)
    first[ctx.flip(0)] = torch.arange(len(ctx) - 1, -1, -1)  # one position per context
    ref = law[first[keys]]  # [K, V]
    # the law is a function of the context alone
    assert torch.equal(law, ref[torch.searchsorted(keys, ctx)])
    counts = torch.zeros(len(keys), v, dtype=torch.float64)
    counts.index_put_((torch.searchsorted(keys, ctx), y), torch.ones(len(y), dtype=torch.float64),
                      accumulate=True)
    n = counts.sum(1, keepdim=True)
    assert torch.all(counts[ref == 0] == 0), "a token sampled where the law says impossible"
    expect = n * ref
    cells = expect >= 5
    z2 = ((counts - expect) ** 2 / (expect * (1 - ref)).clamp_min(1e-300))[cells & (ref < 1)]
    dof = int(z2.numel())
    assert dof > 20
    assert z2.max() < 5.5**2
    assert z2.sum() < dof + 6 * math.sqrt(2 * dof)  # chi-square with dof degrees of freedom
    assert torch.all(counts[ref == 1] == n.expand_as(counts)[ref == 1])


def _pair_law(trans: np.ndarray) -> np.ndarray:
    """The stationary law of (c_{t-1}, c_t), by power iteration on the order-2 chain."""
    c = trans.shape[0]
    q = np.full((c, c), 1.0 / c**2)
    for _ in range(5000):
        q = np.einsum("ab,abc->bc", q, trans)
    return q


def _literal_law(b, seq: list[int]) -> list[list[float]]:
    """The next-token law by its definition, one position and one token at a time."""
    groups, sizes = b.info["groups"], b.info["group_sizes"]
    start = [sum(sizes[:c]) for c in range(len(sizes))]
    trans = b.truth.trans.numpy()
    zipf = b.info["emission"] == "zipf"

    def within(tok: int) -> float:
        c, r = groups[tok], tok - start[groups[tok]]
        w = [1.0 / (i + 1) if zipf else 1.0 for i in range(sizes[c])]
        return w[r] / sum(w)

    out = []
    for t in range(len(seq)):
        c = [groups[s] for s in seq[: t + 1]]
        if b.info["order"] == 1:
            concept = trans[c[-1]]
        elif t == 0:  # P(c1 | c0) under the stationary pair law
            q = b.truth_pairs
            concept = q[c[0]] / q[c[0]].sum()
        else:
            concept = trans[c[-2], c[-1]]
        out.append([concept[groups[v]] * within(v) for v in range(len(groups))])
    return out


@pytest.mark.parametrize("order", [1, 2])
def test_truth_equals_a_literal_per_position_reference(order):
    b = synonyms(seed=1, order=order, emission="zipf", **SMALL)
    if order == 2:  # the stationary pair law, recomputed here
        b.truth_pairs = _pair_law(b.truth.trans.numpy())
    law = b.truth(b.x_test[:3]).numpy()
    for i in range(3):
        ref = np.array(_literal_law(b, b.x_test[i].tolist()))
        np.testing.assert_allclose(law[i], ref, rtol=1e-12, atol=1e-15)


def test_truth_rows_are_laws_supported_on_successor_concepts():
    b = synonyms(seed=0, **SMALL)
    law = b.truth(b.x_test)
    assert law.dtype == torch.float64 and law.shape == (*b.x_test.shape, b.num_classes)
    torch.testing.assert_close(law.sum(-1), torch.ones(b.x_test.shape, dtype=torch.float64),
                               rtol=0, atol=1e-12)
    trans = b.truth.trans  # [C, C, C]
    groups = torch.tensor(b.info["groups"])
    g = groups[b.x_test]
    succ = trans[g[:, :-1], g[:, 1:]] > 0  # [N, T-1, C] successor concepts
    assert torch.equal(law[:, 1:] > 0, succ[..., groups])  # support = their tokens, exactly
    per_row = (trans > 0).sum(-1)  # successor concepts of each (c_{t-1}, c_t)
    assert per_row.min() >= 1 and per_row.max() <= 4
    assert 0.2 < b.info["deterministic_fraction"] < 0.5
    assert torch.allclose(b.truth.first.sum(-1), torch.ones(8, dtype=torch.float64))
    # a prefix sees the same law: nothing later leaks into earlier positions
    assert torch.equal(b.truth(b.x_test[:, :5]), law[:, :5])


@pytest.mark.parametrize("order", [1, 2])
def test_true_law_nll_is_the_entropy_rate(order):
    b = synonyms(seed=2, order=order, vocab_size=64, concepts=24, max_synonyms=4, seq_len=32,
                 train_tokens=2**10, test_tokens=2**16)
    law = b.truth(b.x_test)
    nll = -law.gather(-1, b.y_test[..., None]).squeeze(-1).log()  # [N, T]
    per_seq = nll.mean(1)  # sequences are independent
    err = per_seq.std() / math.sqrt(len(per_seq))
    assert abs(per_seq.mean() - b.info["truth_nll"]) < 4 * err
    tail = nll[:, 1:].mean(1)  # order 2's position 0 sees one concept only
    assert abs(tail.mean() - b.info["entropy_rate"]) < 4 * tail.std() / math.sqrt(len(tail))
    if order == 1:
        assert b.info["truth_nll"] == pytest.approx(b.info["entropy_rate"], rel=1e-12)
    else:
        assert b.info["truth_nll"] > b.info["entropy_rate"]
    kl = torch.special.xlogy(law, law) - torch.special.xlogy(law, law)
    assert kl.sum(-1).abs().max() == 0  # KL(true || true) = 0
    other = 0.5 * law + 0.5 / b.num_classes
    kl_other = (torch.special.xlogy(law, law) - law * other.log()).sum(-1)
    assert kl_other.min() > 0


def test_sequences_start_in_the_stationary_law():
    b = synonyms(seed=4, order=2, **SMALL)
    groups = torch.tensor(b.info["groups"])
    g = groups[torch.cat([b.x_train, b.y_train[:, -1:]], 1)]  # [N, T+1]
    c = b.info["concepts"]
    marginal = torch.from_numpy(_pair_law(b.truth.trans.numpy()).sum(1))
    tol = 5 * math.sqrt(0.25 / len(g))
    for t in (0, 1, g.shape[1] - 1):
        seen = torch.bincount(g[:, t], minlength=c).double() / len(g)
        assert (seen - marginal).abs().max() < tol


def test_positions_kind_on_a_hand_made_law():
    groups = torch.tensor([0, 0, 1, 2, 2, 2])  # sizes 2, 1, 3
    rows = torch.tensor([
        [0, 0, 1, 0, 0, 0],  # point mass, one-token concept: single
        [1, 0, 0, 0, 0, 0],  # point mass inside a synonym set: single
        [0.5, 0.5, 0, 0, 0, 0],  # spread over a 2-token set: synonym
        [0, 0, 0, 6 / 11, 3 / 11, 2 / 11],  # Zipf over a 3-token set: synonym
        [0.5, 0, 0.5, 0, 0, 0],  # two concepts: other
        [0.25, 0.25, 0, 0.5, 0, 0],  # two synonym sets: other
        [0.5, 0.5 - 1e-13, 1e-13, 0, 0, 0],  # leak below the tolerance: synonym
    ], dtype=torch.float64)
    want = torch.tensor([SINGLE, SINGLE, SYNONYM, SYNONYM, 0, 0, SYNONYM])
    assert torch.equal(positions_kind(rows, groups), want)
    law = rows.reshape(7, 1, 6).expand(7, 3, 6)  # any leading shape
    assert torch.equal(positions_kind(law, groups), want[:, None].expand(7, 3))
    assert positions_kind(law.float(), groups, tol=1e-6).dtype == torch.long


def test_shares_of_single_and_synonym_positions_match_positions_kind():
    b = synonyms(seed=0, vocab_size=64, concepts=24, seq_len=32, train_tokens=2**10,
                 test_tokens=2**16)
    kind = positions_kind(b.truth(b.x_test)[:, 1:], torch.tensor(b.info["groups"]))
    n = kind.numel()
    for k, name in ((SINGLE, "single_share"), (SYNONYM, "synonym_share")):
        p = b.info[name]
        assert abs((kind == k).double().mean() - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-3


def test_bundle_layout_and_info():
    b = synonyms(seed=0, vocab_size=40, concepts=16, max_synonyms=4, seq_len=8,
                 train_tokens=800, test_tokens=160)
    assert (b.name, b.kind, b.ood_name) == ("synonyms", "tokens", "other chain")
    assert b.x_train.shape == (100, 8) and b.x_test.shape == (20, 8) == b.x_ood.shape
    assert b.x_train.dtype == torch.int64 and torch.equal(b.x_train[:, 1:], b.y_train[:, :-1])
    info = json.loads(json.dumps(b.info))  # JSON-serialisable
    sizes, groups = info["group_sizes"], info["groups"]
    assert sum(sizes) == 40 and min(sizes) >= 1 and max(sizes) <= 4 and len(sizes) == 16
    assert sum(s == 1 for s in sizes) >= 0.2 * 16 and sum(s >= 2 for s in sizes) >= 3
    assert groups == sorted(groups) and [groups.count(c) for c in range(16)] == sizes
    rank = [t - groups.index(groups[t]) for t in range(40)]
    assert b.class_names == [f"c{c}.{r}" for c, r in zip(groups, rank, strict=True)]
    counts = np.bincount(b.y_train.reshape(-1).numpy(), minlength=40)
    bucket = np.array(info["freq_bucket"])
    assert [(bucket == k).sum() for k in range(3)] == [4, 16, 20]
    assert counts[bucket == 0].min() >= counts[bucket == 1].max() >= counts[bucket == 2].max()


def test_same_seed_same_data_other_seed_other_data(tmp_path, monkeypatch):
    a = synonyms(seed=5, **SMALL)
    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "elsewhere"))
    b = synonyms(seed=5, **SMALL)
    c = synonyms(seed=6, **SMALL)
    for k in ("x_train", "y_train", "x_test", "y_test", "x_ood"):
        assert torch.equal(getattr(a, k), getattr(b, k))
    assert a.info == b.info and torch.equal(a.truth.trans, b.truth.trans)
    assert not torch.equal(a.x_train, c.x_train)
    assert not torch.equal(a.truth.trans, c.truth.trans)


def test_cache_hit_and_corrupt_cache(tmp_path, monkeypatch):
    a = synonyms(seed=0, **SMALL)
    files = list((tmp_path / "cache").glob("synonyms-*.npz"))
    assert len(files) == 1

    def boom(**_):
        raise AssertionError("regenerated although cached")
    with monkeypatch.context() as m:
        m.setattr(syn, "_generate", boom)
        hit = synonyms(seed=0, **SMALL)
    assert torch.equal(hit.x_train, a.x_train) and torch.equal(hit.x_ood, a.x_ood)
    files[0].write_bytes(b"not an npz file")
    again = synonyms(seed=0, **SMALL)
    assert torch.equal(again.x_train, a.x_train) and again.info == a.info
    with np.load(files[0]) as f:  # rewritten whole
        assert f["train"].shape == (a.x_train.shape[0], a.x_train.shape[1] + 1)
    assert not list((tmp_path / "cache").glob("*.tmp*"))


def test_ood_chain_differs():
    b = synonyms(seed=0, **SMALL)
    law = b.truth(b.x_ood)  # the in-distribution law on OOD sequences
    p = law[:, :-1].gather(-1, b.x_ood[:, 1:, None]).squeeze(-1)
    assert (p == 0).double().mean() > 0.1  # many OOD transitions are impossible in-distribution
    assert b.x_ood.max() < b.num_classes


@pytest.mark.parametrize("kwargs", [
    dict(vocab_size=100, concepts=10, max_synonyms=4),  # more tokens than C*K
    dict(vocab_size=5, concepts=10, max_synonyms=4),  # fewer tokens than concepts
    dict(order=3), dict(emission="gauss"), dict(train_tokens=10, seq_len=64),
])
def test_bad_arguments_raise_one_line(kwargs):
    with pytest.raises(DataError) as e:
        synonyms(**{"train_tokens": 1024, "test_tokens": 256, **kwargs})
    assert "\n" not in str(e.value) and str(e.value)


def test_edge_sizes_generate():
    one = synonyms(vocab_size=3, concepts=3, max_synonyms=1, seq_len=4, train_tokens=64,
                   test_tokens=16)  # every concept a single token
    assert one.info["group_sizes"] == [1, 1, 1]
    full = synonyms(vocab_size=12, concepts=3, max_synonyms=4, seq_len=4, train_tokens=64,
                    test_tokens=16, emission="zipf")  # no room for singles
    assert full.info["group_sizes"] == [4, 4, 4]
    law = full.truth(full.x_test)
    assert torch.allclose(law.sum(-1), torch.ones(law.shape[:-1], dtype=torch.float64))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_truth_follows_the_input_device():
    b = synonyms(seed=0, **SMALL)
    law = b.truth(b.x_test[:4].cuda())
    assert law.device.type == "cuda"
    torch.testing.assert_close(law.cpu(), b.truth(b.x_test[:4]), rtol=0, atol=0)


@pytest.mark.parametrize("order", [1, 2])
def test_chains_are_sparse_with_one_aperiodic_stationary_law(order):
    """From a point mass, the chain's law converges to the stationary law it reports: one
    recurrent class, aperiodic, for small and larger concept counts (both sampling paths)."""
    for seed in range(8):
        for c in (1, 2, 3, 5, 40):
            chain = syn.Chain.random(np.random.default_rng(seed), order, c)
            rows = chain.dense().reshape(-1, c)  # [S, C]
            assert np.allclose(rows.sum(1), 1) and ((rows > 0).sum(1) <= 4).all()
            s = len(rows)  # next state: (b, c') for order 2, c' for order 1
            nxt = (np.arange(s) % c * c)[:, None] + np.arange(c) if order == 2 else \
                np.broadcast_to(np.arange(c), rows.shape)
            step = csr_matrix((rows.ravel(), (np.repeat(np.arange(s), c), nxt.ravel())),
                              shape=(s, s)).T.tocsr()
            law = np.zeros(s)
            law[(seed * 7) % s] = 1.0
            for _ in range(3000):
                law = step @ law
            np.testing.assert_allclose(law, chain.stationary, atol=1e-9)


def test_the_readme_floors_are_named_and_match_the_default_language():
    """Issue 25 row 15: the README (now the docs) quoted 1.397 and 1.402 both as "the floor".
    The floor is the true law's NLL on seed 0's test sample (`truth.nll`); 1.402 is its
    expectation."""
    import re
    from pathlib import Path

    from probes.tokens import law_stats

    b = synonyms(seed=0, train_tokens=262_144, test_tokens=16_384)  # the train defaults
    law = b.truth(b.x_test).reshape(-1, b.num_classes)
    y = b.y_test.reshape(-1)
    sample = float(law_stats(law, torch.log(law), y)["nll"].mean())
    expected = b.info["truth_nll"]
    assert f"{sample:.3f}" == "1.397" and f"{expected:.3f}" == "1.402"
    root = Path(__file__).parents[2]  # the README and the docs pages that moved out of it
    pages = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    text = " ".join(" ".join(p.read_text().split()) for p in pages)
    floors = set(re.findall(r"floor[^.|]{0,80}?(1\.\d{3})", text))
    assert floors == {"1.397"}, floors  # one floor, used everywhere
    assert re.search(r"expectation[^.]{0,60}1\.402", text)
    assert re.search(r"floor[^.]{0,60}`truth\.nll`", text)
