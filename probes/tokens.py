"""Token-level probes for language models: pure functions on device tensors.

* :func:`class_group_distances`: how far apart the class vectors (centres of a Euclidean
  head, unembedding rows of a linear one) of tokens in the same synonym set are, against
  tokens of different sets. "Tearing" the manifold between synonyms would show as the
  ratio within/between growing.
* :func:`class_structure`: the "dark knowledge" score, Spearman's rank correlation between
  the class vectors' pairwise distances and a known dissimilarity of the classes.
* :func:`law_stats`: per-position comparison of the prediction with a known next-token law
  (KL(true ‖ q), H(true)), the direct test of whether a target is flat where the truth is.
* :func:`select_positions` / :func:`contexts`: the fixed set of probe positions that
  snapshots follow, and the short context shown with each.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["class_group_distances", "class_structure", "spearman", "law_stats",
           "select_positions", "contexts",
           "select_class_subset", "FREQ_BUCKETS"]

FREQ_BUCKETS = ("top", "mid", "rare")  # top 10% of tokens by frequency, the middle, the rarest 50%


@torch.no_grad()
def class_group_distances(vectors: Tensor, groups: Tensor) -> dict[str, float]:
    """Mean Euclidean distance between class vectors ``vectors[V, D]`` of tokens in the same
    group (``groups[V]``, e.g. synonym-set ids; pairs i < j) and in different groups, and
    their ratio. Groups of one token contribute only "between" pairs; classes whose group
    is unknown (a negative id) count nowhere."""
    v = vectors.double()
    groups = groups.to(v.device)
    d = torch.cdist(v, v)  # [V, V]
    same = groups[:, None] == groups[None, :]
    known = (groups[:, None] >= 0) & (groups[None, :] >= 0)
    upper = torch.ones_like(same).triu(1) & known
    within, between = d[same & upper], d[~same & upper]
    w = float(within.mean()) if within.numel() else float("nan")
    b = float(between.mean()) if between.numel() else float("nan")
    return {"classes.within": w, "classes.between": b,
            "classes.ratio": w / b if b > 0 else float("nan")}


def _average_ranks(a: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (``scipy.stats.rankdata``'s default)."""
    order = np.argsort(a, kind="mergesort")
    s = a[order]
    new = np.r_[True, s[1:] != s[:-1]]  # [n] a new run of equal values starts here
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(a)]
    ranks = np.empty(len(a), dtype=np.float64)
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(new) - 1]
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of ``a[n]`` and ``b[n]`` (Pearson's r of the average ranks, as
    ``scipy.stats.spearmanr``); NaN when either side is constant or n < 2."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2:
        return float("nan")
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


@torch.no_grad()
def class_structure(vectors: Tensor, dissimilarity: np.ndarray) -> float:
    """``classes.structure``: Spearman's rho between the pairwise Euclidean distances of the
    class vectors ``vectors[C, D]`` and a known class dissimilarity ``[C, C]`` (distances
    between true means, or 0 within / 1 across superclasses), over the pairs i < j whose
    dissimilarity is known (finite). 1 when the vectors order the pairs as the truth does
    (with a 0/1 truth, the most its ties allow); NaN when either side is constant."""
    v = vectors.detach().double()
    d = torch.cdist(v, v).cpu().numpy()  # [C, C]
    truth = np.asarray(dissimilarity, dtype=np.float64)
    i, j = np.triu_indices(len(d), 1)
    ok = np.isfinite(truth[i, j])
    return spearman(d[i, j][ok], truth[i, j][ok])


def law_stats(law: Tensor, logq: Tensor, y: Tensor) -> dict[str, Tensor]:
    """Per position: KL(true ‖ q), H(true) and the true law's NLL of the target, float64.

    ``law[M, V]`` the exact next-token law, ``logq[M, V]`` the model's log-probabilities,
    ``y[M]`` the targets drawn from ``law``.
    """
    law, logq = law.double(), logq.double()
    xlx = torch.special.xlogy(law, law).sum(1)  # -H(true)
    cross = torch.where(law > 0, law * logq, torch.zeros_like(law)).sum(1)  # 0·log 0 = 0
    return {"kl": xlx - cross, "entropy": -xlx,
            "nll": -torch.log(law.gather(1, y[:, None]).squeeze(1))}


def select_positions(candidates: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` distinct flat positions (sequence · seq_len + t) out of ``candidates`` (e.g. the
    positions whose target is not ignored), drawn with a fixed seed and sorted: the same
    positions for every run of a comparison."""
    cand = np.asarray(candidates, dtype=np.int64)
    g = np.random.default_rng(seed)
    return np.sort(g.choice(cand, size=min(n, len(cand)), replace=False)).astype(np.int64)


def contexts(x: Tensor, flat: np.ndarray, width: int = 8) -> np.ndarray:
    """The last ``width`` input tokens up to and including each flat position of ``x[N, T]``,
    left-padded with -1: ``[P, width]`` int32 (the hover text of a token position)."""
    t = x.shape[1]
    seq, pos = flat // t, flat % t
    cols = pos[:, None] - np.arange(width - 1, -1, -1)[None, :]  # [P, width]
    xs = x.cpu().numpy()[seq[:, None], np.clip(cols, 0, None)]
    return np.where(cols >= 0, xs, -1).astype(np.int32)


def select_class_subset(num_classes: int, groups: list[int] | None = None,
                        freq_bucket: list[int] | None = None, limit: int = 512) -> np.ndarray:
    """Up to ``limit`` token ids whose class vectors the snapshots keep: whole synonym sets
    (in order) where groups are known, else the most frequent buckets first."""
    if groups is not None:
        g = np.asarray(groups)
        out: list[int] = []
        for gid in np.unique(g):
            members = np.flatnonzero(g == gid)
            if len(out) + len(members) > limit:
                break
            out.extend(members.tolist())
        return np.asarray(out, dtype=np.int64)
    if freq_bucket is not None:
        order = np.argsort(np.asarray(freq_bucket), kind="stable")
        return np.sort(order[:limit]).astype(np.int64)
    return np.arange(min(limit, num_classes), dtype=np.int64)
