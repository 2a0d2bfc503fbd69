"""``synonyms``: a generated language whose exact next-token law is known at every position.

Tokens are grouped into *concepts* (synonym sets of 1..K tokens, contiguous ids, named
``"c12.0"``, ``"c12.1"``, ...). A sparse random Markov chain of order 1 or 2 walks over the
concepts and each step emits one token of its concept (uniform or Zipf within the concept).
A token names its concept, so the concept history is visible, and the law of token ``t+1``
given tokens ``0..t`` is exact (:class:`SynonymLaw`, the bundle's ``truth``).

Why this construction:

* every chain row keeps ``sigma(b)`` as a successor, ``sigma`` one random cycle through all
  concepts and ``b`` the current concept, so every concept stays reachable while rows stay
  sparse (no uniform mixing); one row also gets ``sigma(sigma(b))``, which closes a cycle one
  step shorter, so the chain is aperiodic and has one stationary law. A *deterministic* row
  (about a third of them) has only ``sigma(b)``; the others add 1..3 random successors with
  Dirichlet(1) weights, which for order 2 depend on both previous concepts;
* sequences are independent, each ``seq_len + 1`` tokens: ``x = seq[:-1]``, ``y = seq[1:]``;
* every sequence starts in the stationary law (order 1: the first concept; order 2: the first
  pair), so the whole sequence is stationary and position 0 has an exact law too: order 1
  ``P(c1 | c0)`` is a chain row, order 2 it is ``Q(c0, c1) / sum_c Q(c0, c)`` under the
  stationary pair law ``Q``. The mean NLL of the true law over positions is then the entropy
  rate (order 1) or, for order 2, ``(H(C1 | C0) + (T - 1) * rate) / T`` (``info["truth_nll"]``).

``info`` also holds the synonym sets (``groups``, ``group_sizes``), the share of deterministic
rows, the stationary shares of "single" and "synonym" positions (:func:`positions_kind`) and
frequency buckets of the training targets. The OOD split comes from a second chain drawn the
same way over the same concepts and tokens.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile

import numpy as np
import torch
from scipy.sparse import csr_matrix, identity
from scipy.sparse.linalg import spsolve
from torch import Tensor

from .base import DataBundle, DataError, cache_dir
from .memory import check_synonyms_memory
from .text import frequency_buckets

__all__ = ["synonyms", "SynonymLaw", "positions_kind", "concept_sizes", "SYNONYMS_VERSION"]

SYNONYMS_VERSION = "synonyms-v1"  # bump whenever generation changes: it is part of the cache key
MAX_ORDER2_CONCEPTS = 256  # the order-2 law is a dense [C, C, C] float64 tensor (134 MB here)
SINGLE_FRACTION = 0.2  # at least this share of concepts has exactly one token, where V allows
DETERMINISTIC = 0.35  # chance that a chain row has exactly one successor
MAX_SUCCESSORS = 4  # a row has 1..4 successor concepts


def concept_sizes(rng: np.random.Generator, vocab_size: int, concepts: int,
                  max_synonyms: int) -> np.ndarray:
    """Sizes ``[C]`` in 1..K summing to ``vocab_size``; ``ceil(0.2 C)`` of them are 1 (fewer
    only when ``V`` is too close to ``C K`` to allow it), the rest share the other tokens."""
    c, k, v = concepts, max_synonyms, vocab_size
    if c < 1 or k < 1 or not c <= v <= c * k:
        raise DataError(f"synonyms: {c} concepts of 1..{k} tokens cannot make {v} tokens; "
                        f"need concepts <= vocab_size <= concepts * max_synonyms")
    singles = c if k == 1 else min(math.ceil(SINGLE_FRACTION * c), (c * k - v) // (k - 1))
    sizes = np.ones(c, dtype=np.int64)
    slots = np.repeat(np.arange(singles, c), k - 1)  # K-1 free slots per non-single concept
    np.add.at(sizes, slots[rng.choice(len(slots), v - c, replace=False)], 1)
    return rng.permutation(sizes)


def _distinct(rng: np.random.Generator, forbid: np.ndarray, c: int, k: int) -> np.ndarray:
    """Per row ``k`` distinct values of ``0..c-1`` other than ``forbid[row]``, uniformly:
    ``[rows, k]``. Few concepts: a random order per row; many: redraw collisions only."""
    rows = len(forbid)
    if c <= 32:
        keys = rng.random((rows, c))
        keys[np.arange(rows), forbid] = np.inf
        return np.argsort(keys, axis=1)[:, :k]
    out = rng.integers(0, c, (rows, k))
    while True:
        bad = out == forbid[:, None]
        for j in range(1, k):
            bad[:, j] |= (out[:, j:j + 1] == out[:, :j]).any(1)
        if not bad.any():
            return out
        out[bad] = rng.integers(0, c, int(bad.sum()))


class Chain:
    """A sparse order-``o`` chain over ``C`` concepts: row ``s`` (the last ``o`` concepts,
    ``s = a*C + b`` for order 2) has successors ``succ[s]`` with weights ``weight[s]``."""

    def __init__(self, order: int, concepts: int, succ: np.ndarray, weight: np.ndarray):
        self.order, self.c = order, concepts
        self.succ, self.weight = succ, weight  # [S, M] int64, [S, M] float64 (0 = padding)
        self._pi: np.ndarray | None = None

    @property
    def stationary(self) -> np.ndarray:
        """``[S]`` the stationary law of the last ``order`` concepts (computed once)."""
        if self._pi is None:
            self._pi = self._stationary()
        return self._pi

    @classmethod
    def random(cls, rng: np.random.Generator, order: int, concepts: int) -> Chain:
        c = concepts
        rows = c ** order
        sigma = rng.permutation(c)
        cycle = np.empty(c, dtype=np.int64)  # one cycle through all concepts: cycle[x] = next
        cycle[sigma] = np.roll(sigma, -1)
        last = np.arange(rows) % c  # the current concept of each row
        m = min(MAX_SUCCESSORS, c)
        many = rng.integers(2, m + 1, rows) if m > 1 else np.ones(rows, dtype=np.int64)
        count = np.where(rng.random(rows) < DETERMINISTIC, 1, many)
        extras = _distinct(rng, cycle[last], c, m - 1)  # differ from the cycle successor
        succ = np.concatenate([cycle[last][:, None], extras], axis=1)  # [S, M]
        if c > 1:  # aperiodic: one row also reaches cycle(cycle(b)), a loop of C-1 steps
            b = int(sigma[0])
            row = b if order == 1 else int(np.flatnonzero(cycle == b)[0]) * c + b
            count[row] = max(count[row], 2)
            if cycle[cycle[b]] not in succ[row, : count[row]]:
                succ[row, 1] = cycle[cycle[b]]
        valid = np.arange(m)[None, :] < count[:, None]
        weight = np.where(valid, rng.gamma(1.0, size=(rows, m)), 0.0)  # Dirichlet(1)
        weight /= weight.sum(1, keepdims=True)
        succ = np.where(valid, succ, succ[np.arange(rows), count - 1][:, None])  # pad: a real one
        return cls(order, c, succ.astype(np.int64), weight)

    def _stationary(self) -> np.ndarray:
        """The unique stationary law of the row states: power iteration (the sparse rows mix
        in a few hundred steps), or one sparse linear solve where that has not converged."""
        rows, c = self.succ.shape[0], self.c
        nxt = self.succ if self.order == 1 else (np.arange(rows) % c)[:, None] * c + self.succ
        tt = csr_matrix((self.weight.ravel(), (nxt.ravel(), np.repeat(
            np.arange(rows), self.succ.shape[1]))), shape=(rows, rows))  # T transposed
        pi = np.full(rows, 1.0 / rows)
        for _ in range(20_000):
            new = tt @ pi
            done = np.abs(new - pi).sum() < 1e-14
            pi = new / new.sum()
            if done:
                break
        if np.abs(tt @ pi - pi).max() > 1e-13:
            a = (tt - identity(rows, format="csr")).tolil()
            a[0, :] = 1.0  # one equation is redundant: replace it by sum(pi) = 1
            rhs = np.zeros(rows)
            rhs[0] = 1.0
            pi = np.clip(spsolve(a.tocsc(), rhs), 0.0, None)
            pi /= pi.sum()
        if np.abs(tt @ pi - pi).max() > 1e-10:
            raise DataError("synonyms: the chain's stationary law did not solve; change seed")
        return pi

    def dense(self) -> np.ndarray:
        """Transition law ``[C]*order + [C]`` (float64)."""
        p = np.zeros((self.succ.shape[0], self.c))
        np.add.at(p, (np.arange(p.shape[0])[:, None], self.succ), self.weight)
        return p.reshape((self.c,) * self.order + (self.c,))

    def first(self) -> np.ndarray:
        """Order 2's law of ``c1`` given ``c0`` ``[C, C]`` under the stationary pair law
        (order 1: the chain itself)."""
        if self.order == 1:
            return self.dense()
        q = self.stationary.reshape(self.c, self.c)
        marg = q.sum(1, keepdims=True)
        return np.divide(q, marg, out=np.full_like(q, 1.0 / self.c), where=marg > 0)

    def deterministic(self) -> np.ndarray:
        return (self.weight > 0).sum(1) == 1  # [S]

    def sample(self, rng: np.random.Generator, n: int, length: int) -> np.ndarray:
        """``n`` stationary concept sequences ``[n, length]``."""
        c, o = self.c, self.order
        start = np.searchsorted(np.cumsum(self.stationary), rng.random(n) * self.stationary.sum())
        start = np.minimum(start, len(self.stationary) - 1)
        out = np.empty((n, max(length, o)), dtype=np.int64)
        if o == 1:
            out[:, 0] = start
        else:
            out[:, 0], out[:, 1] = start // c, start % c
        cum = np.cumsum(self.weight, axis=1)
        cum[:, -1] = np.inf  # padding repeats a real successor, so rounding never picks junk
        for t in range(o, length):
            s = out[:, t - 1] if o == 1 else out[:, t - 2] * c + out[:, t - 1]
            j = (rng.random(n)[:, None] >= cum[s]).sum(1)
            out[:, t] = self.succ[s, j]
        return out[:, :length]


def _emission(sizes: np.ndarray, emission: str) -> np.ndarray:
    """Within-concept law ``[C, K]`` (0 beyond a concept's size): uniform, or Zipf
    ``p ∝ 1/(rank+1)`` with synonym 0 the most frequent."""
    k = int(sizes.max())
    rank = np.arange(k)[None, :]
    w = np.where(rank < sizes[:, None], 1.0 if emission == "uniform" else 1.0 / (rank + 1), 0.0)
    return w / w.sum(1, keepdims=True)


def _entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(-1)


class SynonymLaw:
    """The exact next-token law: tokens ``[B, T]`` -> float64 ``[B, T, V]``, the law of token
    ``t+1`` given tokens ``0..t``, on the tokens' device (vectorised, no loop over positions)."""

    def __init__(self, order: int, groups: Tensor, within: Tensor, trans: Tensor, first: Tensor):
        self.order = order
        self.groups = groups  # [V] int64: concept of each token
        self.within = within  # [V] float64: P(token | its concept)
        self.trans = trans  # [C]*order + [C] float64
        self.first = first  # [C, C] float64: order 2's law at position 0
        self._moved: dict[str, SynonymLaw] = {}

    def to(self, device: torch.device | str) -> SynonymLaw:
        device = torch.device(device)
        if self.groups.device == device:
            return self
        key = str(device)
        if key not in self._moved:
            self._moved[key] = SynonymLaw(self.order, *(t.to(device) for t in (
                self.groups, self.within, self.trans, self.first)))
        return self._moved[key]

    @property
    def vocab_size(self) -> int:
        return self.groups.numel()

    def concept_law(self, tokens: Tensor) -> Tensor:
        """Law of the next concept ``[B, T, C]`` given tokens ``[B, T]``."""
        law = self.to(tokens.device)
        c = law.groups[tokens]  # [B, T] concepts
        if self.order == 1:
            return law.trans[c]
        head = law.first[c[:, :1]]  # [B, 1, C]
        return torch.cat([head, law.trans[c[:, :-1], c[:, 1:]]], dim=1)

    def __call__(self, tokens: Tensor) -> Tensor:
        law = self.to(tokens.device)
        return self.concept_law(tokens)[..., law.groups] * law.within  # [B, T, V]


SYNONYM, SINGLE, OTHER = 1, 2, 0


def positions_kind(law: Tensor, groups: Tensor, tol: float = 1e-9) -> Tensor:
    """Per position of a next-token law ``[..., V]``: ``2`` ("single") where the next token is
    determined (largest probability >= 1 - tol); ``1`` ("synonym") where the law is not a point
    mass and all its mass (up to tol) lies in one concept of >= 2 tokens; ``0`` otherwise.
    These define the probes ``entropy.single.*`` and ``entropy.synonym.*``."""
    groups = groups.to(law.device)
    c = int(groups.max()) + 1
    size = torch.bincount(groups, minlength=c)  # [C]
    mass = law.new_zeros(law.shape[:-1] + (c,)).index_add_(-1, groups, law)  # [..., C]
    top = mass.argmax(-1)
    one = ((mass > tol).sum(-1) == 1) & (size[top] >= 2)
    single = law.amax(-1) >= 1 - tol
    kind = torch.where(one, SYNONYM, OTHER)
    return torch.where(single, SINGLE, kind).long()


def _key(**args) -> str:
    text = json.dumps({**args, "version": SYNONYMS_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _generate(seed: int, vocab_size: int, concepts: int, max_synonyms: int, order: int,
              emission: str, seq_len: int, n_train: int, n_test: int) -> dict:
    rng = np.random.default_rng([seed, 0])
    sizes = concept_sizes(rng, vocab_size, concepts, max_synonyms)
    chain = Chain.random(rng, order, concepts)
    other = Chain.random(np.random.default_rng([seed, 1]), order, concepts)
    within = _emission(sizes, emission)  # [C, K]
    offset = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    cum = np.cumsum(within, axis=1)
    cum[np.arange(len(sizes)), sizes - 1] = np.inf  # rounding never passes the last synonym

    def emit(concept: np.ndarray, g: np.random.Generator) -> np.ndarray:
        r = (g.random(concept.shape)[..., None] >= cum[concept]).sum(-1)
        return (offset[concept] + r).astype(np.int32)

    g = np.random.default_rng([seed, 2])
    return {"sizes": sizes, "succ": chain.succ, "weight": chain.weight,
            "train": emit(chain.sample(g, n_train, seq_len + 1), g),
            "test": emit(chain.sample(g, n_test, seq_len + 1), g),
            "ood": emit(other.sample(g, n_test, seq_len + 1), g),
            "ood_succ": other.succ, "ood_weight": other.weight}


_KEYS = {"sizes", "succ", "weight", "train", "test", "ood", "ood_succ", "ood_weight"}


def _load_or_generate(path, make) -> dict:
    """The cached arrays at ``path``, or ``make()``'s, written atomically; a damaged or stale
    file is regenerated."""
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                raw = {k: f[k] for k in f.files}
            if str(raw.pop("version")) == SYNONYMS_VERSION and _KEYS <= raw.keys():
                return raw
        except Exception:  # noqa: BLE001 - a damaged cache is regenerated
            pass
        path.unlink(missing_ok=True)
    raw = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp.npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, version=np.array(SYNONYMS_VERSION), **raw)
        os.replace(tmp, path)  # atomic: concurrent runs never read half a file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return raw


def check_sizes(vocab_size: int, concepts: int, max_synonyms: int, order: int, emission: str,
                seq_len: int, train_tokens: int, test_tokens: int) -> tuple[int, int]:
    """``(train, test sequences)`` of these arguments, or a :class:`DataError` line: sizes
    that make no language, or that cannot fit in memory (an estimate, before anything is
    allocated; see :mod:`geomviz.data.memory`). The config runs it before any work."""
    if order not in (1, 2):
        raise DataError(f"synonyms: order must be 1 or 2, got {order}")
    if emission not in ("uniform", "zipf"):
        raise DataError(f"synonyms: emission must be uniform or zipf, got {emission!r}")
    n_train, n_test = train_tokens // max(seq_len, 1), test_tokens // max(seq_len, 1)
    if seq_len < 1 or n_train < 1 or n_test < 1:
        raise DataError(f"synonyms: {train_tokens} train / {test_tokens} test tokens make no "
                        f"sequence of seq_len {seq_len}")
    c, k, v = concepts, max_synonyms, vocab_size
    if c < 1 or k < 1 or not c <= v <= c * k:
        raise DataError(f"synonyms: {c} concepts of 1..{k} tokens cannot make {v} tokens; "
                        f"need concepts <= vocab_size <= concepts * max_synonyms")
    if order == 2 and concepts > MAX_ORDER2_CONCEPTS:
        raise DataError(f"synonyms: order 2 allows at most {MAX_ORDER2_CONCEPTS} concepts (its "
                        f"exact law is a dense C^3 table), got {concepts}; use order 1")
    check_synonyms_memory(vocab_size=vocab_size, concepts=concepts, max_synonyms=max_synonyms,
                          order=order, seq_len=seq_len, train_tokens=train_tokens,
                          test_tokens=test_tokens)
    return n_train, n_test


def synonyms(seed: int = 0, vocab_size: int = 256, concepts: int = 96, max_synonyms: int = 4,
             order: int = 2, emission: str = "uniform", seq_len: int = 64,
             train_tokens: int = 262_144, test_tokens: int = 32_768) -> DataBundle:
    """The synonym language (see the module docstring); ``train_tokens // seq_len`` training
    sequences, ``test_tokens // seq_len`` test and as many OOD ones from another chain."""
    n_train, n_test = check_sizes(vocab_size, concepts, max_synonyms, order, emission,
                                  seq_len, train_tokens, test_tokens)
    args = dict(seed=seed, vocab_size=vocab_size, concepts=concepts, max_synonyms=max_synonyms,
                order=order, emission=emission, seq_len=seq_len, n_train=n_train, n_test=n_test)
    path = cache_dir() / f"synonyms-{_key(**args)}.npz"
    raw = _load_or_generate(path, lambda: _generate(**args))
    sizes = raw["sizes"].astype(np.int64)
    chain = Chain(order, concepts, raw["succ"].astype(np.int64), raw["weight"])
    groups = np.repeat(np.arange(concepts), sizes)  # [V]
    within = _emission(sizes, emission)
    rank = np.arange(vocab_size) - np.concatenate([[0], np.cumsum(sizes)[:-1]])[groups]
    law = SynonymLaw(order, torch.from_numpy(groups), torch.from_numpy(within[groups, rank]),
                     torch.from_numpy(chain.dense()), torch.from_numpy(chain.first()))
    seq = {k: torch.from_numpy(raw[k].astype(np.int64)) for k in ("train", "test", "ood")}
    info = _info(chain, sizes, within, groups, seq_len, emission, raw["train"][:, 1:])
    info["ood_deterministic_fraction"] = float(Chain(
        order, concepts, raw["ood_succ"].astype(np.int64), raw["ood_weight"]
    ).deterministic().mean())
    names = [f"c{c}.{r}" for c, r in zip(groups.tolist(), rank.tolist(), strict=True)]
    return DataBundle(name="synonyms", x_train=seq["train"][:, :-1], y_train=seq["train"][:, 1:],
                      x_test=seq["test"][:, :-1], y_test=seq["test"][:, 1:], class_names=names,
                      kind="tokens", x_ood=seq["ood"][:, :-1], ood_name="other chain",
                      info=info, truth=law)


def _info(chain: Chain, sizes: np.ndarray, within: np.ndarray, groups: np.ndarray,
          seq_len: int, emission: str, train_targets: np.ndarray) -> dict:
    """JSON-ready facts: the exact entropy rate, the expected NLL of the true law, the shares
    of deterministic rows and of "single" / "synonym" positions under the stationary law."""
    c, v = chain.c, len(groups)
    emit_h = _entropy(within)  # [C] entropy of a token given its concept
    rows = chain.dense().reshape(-1, c)  # [S, C]
    row_h = _entropy(rows) + rows @ emit_h  # [S] next-token entropy given the row
    pi = chain.stationary
    rate = float(pi @ row_h)
    nll = rate
    if chain.order == 2:  # position 0 is predicted from c0 only
        q = pi.reshape(c, c)
        first_h = float(q.sum(1) @ _entropy(chain.first()) + q.sum(0) @ emit_h)
        nll = (first_h + (seq_len - 1) * rate) / seq_len
    one = chain.deterministic()
    only = rows.argmax(1)
    return {"vocab_size": v, "seq_len": seq_len, "order": chain.order, "emission": emission,
            "concepts": c, "groups": groups.tolist(), "group_sizes": sizes.tolist(),
            "entropy_rate": rate, "truth_nll": float(nll),
            "deterministic_fraction": float(one.mean()),
            "single_share": float(pi @ (one & (sizes[only] == 1))),
            "synonym_share": float(pi @ (one & (sizes[only] >= 2))),
            "freq_bucket": frequency_buckets(train_targets, v)}
