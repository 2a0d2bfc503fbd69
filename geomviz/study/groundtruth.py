"""The target-entropy claim against ground truth, on data whose posterior is known.

TFSD's claim: targets are sharp for easy samples and flat for hard ones. On the
``gaussians`` data the hard samples are known twice over: by construction (the
overlapping class pairs) and per sample (the entropy of the exact Bayes posterior).
This module measures, at a run's last snapshot, how the target entropy H(p) and
the prediction entropy H(q) follow either, and what the anchor gap s·d_y is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import bayes_posterior
from ..store import open_run

__all__ = ["probe_entropies", "claim_test", "binned_mean"]


def _entropy(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(-1)


def probe_entropies(folder: str | Path) -> dict[str, np.ndarray] | None:
    """Per in-distribution probe example at the last snapshot: ``bayes`` (entropy of the true
    posterior), ``target`` H(p), ``pred`` H(q), ``hard`` (label in an overlapping pair),
    ``anchor`` (s·d_y, or the true logit for dot-product heads) and ``negative``.
    ``None`` when the run's data have no known posterior or no snapshots."""
    with open_run(folder) as run:
        meta = run.meta
        if meta.get("dataset") != "gaussians":
            return None
        info = meta.get("data_info") or {}
        pairs, held = info.get("hard_pairs", []), info.get("held_out_classes", [])
        index, labels = run.arrays("snapshot.index").get(0), run.arrays("snapshot.labels").get(0)
        steps = run.array_steps("snapshot.entropy_target")
        if index is None or labels is None or not steps:
            return None
        last = steps[-1]
        arrays = {k: run.arrays(f"snapshot.{k}")[last]
                  for k in ("entropy_target", "entropy_pred", "true", "top_negative")}
    ind = np.asarray(labels) >= 0  # the index lists test rows first, then OOD rows
    test_index = np.asarray(index)[: int(ind.sum())]
    hard_classes = {int(c) for pair in pairs for c in pair}
    y = np.asarray(labels)[ind]
    return {"bayes": _entropy(bayes_posterior("gaussians", int(meta.get("seed", 0)), test_index,
                                                 held)),
            "target": arrays["entropy_target"][ind].astype(np.float64),
            "pred": arrays["entropy_pred"][ind].astype(np.float64),
            "hard": np.isin(y, sorted(hard_classes)),
            "anchor": arrays["true"][ind].astype(np.float64),
            "negative": arrays["top_negative"][ind].astype(np.float64)}


def claim_test(e: dict[str, np.ndarray]) -> dict[str, float]:
    """Numbers that decide the claim, whichever way it goes.

    Group means of H(p), H(q) and the Bayes entropy for hard-pair vs easy samples,
    the one-sided Mann-Whitney p-value of H(p)_hard > H(p)_easy, Spearman's rho
    between H(p) and the Bayes entropy, and the median anchor / nearest-negative
    values per group.
    """
    from scipy.stats import mannwhitneyu, spearmanr

    hard, easy = e["hard"], ~e["hard"]
    out: dict[str, float] = {"n_hard": int(hard.sum()), "n_easy": int(easy.sum())}
    for key in ("target", "pred", "bayes"):
        out[f"{key}_hard"] = float(e[key][hard].mean()) if hard.any() else float("nan")
        out[f"{key}_easy"] = float(e[key][easy].mean()) if easy.any() else float("nan")
    for key in ("anchor", "negative"):
        out[f"{key}_hard_median"] = float(np.median(e[key][hard])) if hard.any() else np.nan
        out[f"{key}_easy_median"] = float(np.median(e[key][easy])) if easy.any() else np.nan
    varied = np.ptp(e["target"]) > 0
    if hard.any() and easy.any() and varied:
        out["p_flatter"] = float(mannwhitneyu(e["target"][hard], e["target"][easy],
                                              alternative="greater").pvalue)
    else:  # constant targets (one-hot, or smoothing): hard ones are not flatter
        out["p_flatter"] = 1.0
    out["rho_target_bayes"] = float(spearmanr(e["target"], e["bayes"]).statistic) \
        if varied else float("nan")
    out["rho_pred_bayes"] = float(spearmanr(e["pred"], e["bayes"]).statistic) \
        if np.ptp(e["pred"]) > 0 else float("nan")
    return out


def binned_mean(x: np.ndarray, y: np.ndarray, bins: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``y`` in quantile bins of ``x``: ``(mean x per bin, mean y per bin)``."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return np.array([x.mean()]), np.array([y.mean()])
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    keep = np.bincount(idx, minlength=len(edges) - 1) > 0
    mx = np.bincount(idx, x, len(edges) - 1)[keep] / np.bincount(idx, None, len(edges) - 1)[keep]
    my = np.bincount(idx, y, len(edges) - 1)[keep] / np.bincount(idx, None, len(edges) - 1)[keep]
    return mx, my
