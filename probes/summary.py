"""Host-side summaries of flushed probe statistics, and the exact logit-change decomposition.

Pure functions over numpy values: what the store receives from one flush.
"""

from __future__ import annotations

import numpy as np

from .stats import (
    COS_EDGES,
    GRAD_FIELDS,
    NORM_EDGES,
    QUANTILES,
    SAMPLE_QUANTILES,
    SYMLOG_EDGES,
    _margin_names,
    entropy_edges,
    layout,
)

__all__ = ["summarize", "decompose", "shapley3"]


def shapley3(f0: tuple[float, float, float], f1: tuple[float, float, float]):
    """Exact Shapley split of ``R1·A1·C1 - R0·A0·C0`` into the parts due to R, A and C.

    For a product of three factors the symmetric (Shapley) attribution is
    ``ΔR·[(A0C0 + A1C1)/3 + (A0C1 + A1C0)/6]`` (and cyclically), whose three
    parts sum to the change exactly, whatever the order of the changes.
    """
    (r0, a0, c0), (r1, a1, c1) = f0, f1

    def part(d, u0, v0, u1, v1):
        return d * ((u0 * v0 + u1 * v1) / 3.0 + (u0 * v1 + u1 * v0) / 6.0)

    return (part(r1 - r0, a0, c0, a1, c1), part(a1 - a0, r0, c0, r1, c1),
            part(c1 - c0, r0, a0, r1, a1))


def _factors(agg: dict[str, float]):
    n = agg["n"]
    r, a = agg["penultimate.norm.sum"] / n, agg["head.norm_true.sum"] / n
    dot = agg["head.dot_true.sum"] / n
    c = dot / (r * a) if r * a > 0 else 0.0  # effective cosine: mean(r a cos) = R·A·C
    return {"R": r, "A": a, "C": c, "Qr": agg["penultimate.norm.sumsq"] / n,
            "Qa": agg["head.norm_true.sumsq"] / n, "B": agg["head.bias_true.sum"] / n}


def decompose(prev: dict[str, float], cur: dict[str, float], metric: str,
              scale: float = 1.0) -> dict[str, float]:
    """Attribute the change of the batch-mean true-class logit between two logs.

    With batch means R = mean ||x||, A = mean ||w_y||, C = mean(x·w_y)/(R·A),
    Qr = mean ||x||², Qa = mean ||w_y||² and B = mean b_y:

    * linear heads: z̄_y = R·A·C + B, so Δz̄_y = radial + weight + angular + bias with
      the Shapley parts of Δ(R·A·C) (see :func:`shapley3`) and bias = ΔB;
    * Euclidean heads: z̄_y = -s·(Qr + Qa - 2·R·A·C), so radial = -s·(ΔQr - 2·Sh_R),
      weight = -s·(ΔQa - 2·Sh_A), angular = 2s·Sh_C, bias = 0.

    The parts sum to ``total`` exactly. (For Euclidean heads the logits are clamped
    at distance 0, so ``total`` can differ from the change of the recorded mean logit
    by that rounding guard only.)
    """
    f0, f1 = _factors(prev), _factors(cur)
    sr, sa, sc = shapley3((f0["R"], f0["A"], f0["C"]), (f1["R"], f1["A"], f1["C"]))
    if metric == "euclidean":
        parts = {"radial": -scale * (f1["Qr"] - f0["Qr"] - 2 * sr),
                 "weight": -scale * (f1["Qa"] - f0["Qa"] - 2 * sa),
                 "angular": 2 * scale * sc, "bias": 0.0}
    else:
        parts = {"radial": sr, "weight": sa, "angular": sc, "bias": f1["B"] - f0["B"]}
    parts["total"] = sum(parts.values())
    return parts


def _mean(agg, key, n="n"):
    return agg[key] / agg[n] if agg[n] > 0 else float("nan")


def summarize(agg: dict[str, np.ndarray], metric: str, class_norms: np.ndarray | None = None):
    """``(scalars, histograms, arrays)`` for the store from one flush's aggregated fields.

    Fields declared with one element become floats; per-class fields stay arrays even with
    one class (a one-token vocabulary made ``class_sum`` a float, a TypeError at the first
    flush)."""
    one = {f.name for f in layout(metric, 0) + GRAD_FIELDS if f.size == 1}
    a = {k: (float(v[0]) if k in one and v.size == 1 else v) for k, v in agg.items()}
    n = a["n"]
    mean_r = a["penultimate.norm.sum"] / n
    s: dict[str, float] = {
        "penultimate.norm.mean": mean_r,
        "penultimate.norm.std": float(np.sqrt(max(a["penultimate.norm.sumsq"] / n - mean_r**2,
                                                  0.0))),
        "penultimate.norm.max": a["penultimate.norm.max"],
        "head.norm_true.mean": a["head.norm_true.sum"] / n,
        "head.cos_true.mean": a["head.cos_true.sum"] / n,
        "head.cos_true.std": float(np.sqrt(max(a["head.cos_true.sumsq"] / n -
                                               (a["head.cos_true.sum"] / n) ** 2, 0.0))),
        "head.logit_true.mean_raw": a["head.logit_true_raw.sum"] / n,
        "health.max_logit": a["health.max_logit"],
        "health.logsumexp": a["health.logsumexp.sum"] / n,
    }
    for q, v in zip(QUANTILES, a["penultimate.norm.quantiles"], strict=True):
        s[f"penultimate.norm.p{round(q * 100)}"] = float(v)
    hists = {"penultimate.norm": (a["penultimate.norm.hist"], NORM_EDGES),
             "head.cos_true": (a["head.cos_true.hist"], COS_EDGES)}
    for name in _margin_names(metric):
        s[f"{name}.mean"] = a[f"{name}.sum"] / n
        for q, v in zip(QUANTILES, a[f"{name}.quantiles"], strict=True):
            s[f"{name}.p{round(q * 100)}"] = float(v)
        hists[name] = (a[f"{name}.hist"], SYMLOG_EDGES)
    for g in ("all", "easy", "hard"):
        for k in ("pred", "target", "kl"):
            s[f"entropy.{g}.{k}"] = _mean(a, f"entropy.{g}.{k}", f"entropy.{g}.n")
        s[f"entropy.{g}.fraction"] = a[f"entropy.{g}.n"] / n
    num_classes = len(a["penultimate.norm.class_sum"])
    hists["entropy.pred"] = (a["entropy.pred.hist"], entropy_edges(num_classes))
    hists["entropy.target"] = (a["entropy.target.hist"], entropy_edges(num_classes))
    if a.get("grad.n", 0) > 0:
        gn = a["grad.n"]
        s["grad.radial.mean"] = a["grad.radial_abs.sum"] / gn
        s["grad.radial_signed.mean"] = a["grad.radial_signed.sum"] / gn
        s["grad.tangential.mean"] = a["grad.tangential.sum"] / gn
        s["grad.radial_fraction"] = (a["grad.radial_sq.sum"] / a["grad.total_sq.sum"]
                                     if a["grad.total_sq.sum"] > 0 else float("nan"))
        s["grad.sample_norm.max"] = a["grad.sample_norm.max"]
        for q, v in zip(SAMPLE_QUANTILES, np.atleast_1d(a["grad.sample_norm.quantiles"]),
                        strict=True):  # the flush's last probed batch (like the other p*)
            s[f"grad.sample_norm.p{round(q * 100)}"] = float(v)
        for part in ("noisy", "clean"):  # only where the trainer passed a noisy mask
            if a.get(f"grad.{part}.n", 0) > 0:
                s[f"grad.{part}.norm.mean"] = a[f"grad.{part}.norm.sum"] / a[f"grad.{part}.n"]
    counts = a["penultimate.norm.class_count"]
    per_class = np.where(counts > 0, a["penultimate.norm.class_sum"] / np.maximum(counts, 1),
                         np.nan)
    arrays = {"penultimate.norm.per_class": per_class.astype(np.float32)}
    if class_norms is not None:
        arrays["head.class_norms"] = class_norms.astype(np.float32)
        s["head.class_norm.mean"] = float(class_norms.mean())
        s["head.class_norm.min"] = float(class_norms.min())
        s["head.class_norm.max"] = float(class_norms.max())
    hists = {k: (np.rint(c).astype(np.int64), e) for k, (c, e) in hists.items()}
    return s, hists, arrays
