"""Token-level probes for language models: pure functions on device tensors.

* :func:`class_group_distances`: how far apart the class vectors (centres of a Euclidean
  head, unembedding rows of a linear one) of tokens in the same synonym set are, against
  tokens of different sets. "Tearing" the manifold between synonyms would show as the
  ratio within/between growing.
* :func:`law_stats`: per-position comparison of the prediction with a known next-token law
  (KL(true ‖ q), H(true)), the direct test of whether a target is flat where the truth is.
* :func:`select_positions` / :func:`contexts`: the fixed set of probe positions that
  snapshots follow, and the short context shown with each.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["class_group_distances", "law_stats", "select_positions", "contexts",
           "select_class_subset", "FREQ_BUCKETS"]

FREQ_BUCKETS = ("top", "mid", "rare")  # top 10% of tokens by frequency, the middle, the rarest 50%


@torch.no_grad()
def class_group_distances(vectors: Tensor, groups: Tensor) -> dict[str, float]:
    """Mean Euclidean distance between class vectors ``vectors[V, D]`` of tokens in the same
    group (``groups[V]``, e.g. synonym-set ids; pairs i < j) and in different groups, and
    their ratio. Groups of one token contribute only "between" pairs."""
    v = vectors.double()
    d = torch.cdist(v, v)  # [V, V]
    same = groups[:, None] == groups[None, :]
    upper = torch.ones_like(same).triu(1)
    within, between = d[same & upper], d[~same & upper]
    w = float(within.mean()) if within.numel() else float("nan")
    b = float(between.mean()) if between.numel() else float("nan")
    return {"classes.within": w, "classes.between": b,
            "classes.ratio": w / b if b > 0 else float("nan")}


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
