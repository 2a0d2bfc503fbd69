"""Pure per-batch statistics of the penultimate features, the head and the targets.

Everything here runs on the device and returns tensors; nothing synchronises.
A batch's statistics are laid out as one flat vector per reduction kind
("sum" adds across DDP ranks, "max" takes the maximum, "local" is rank 0's own,
e.g. percentiles), described by :func:`layout`, so a flush moves one tensor.

Per sample i (x = feature, w_y = true class's weight or centre, z = logits):
r = ||x||, a = ||w_y||, cos θ_y = x·w_y / (r a); linear heads have
z_y = a r cos θ_y + b_y and Euclidean heads z_y = -s·d_y with
d_y = r² + a² - 2 r a cos θ_y.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["Field", "layout", "batch_stats", "grad_stats", "GRAD_FIELDS", "NORM_EDGES",
           "COS_EDGES", "SYMLOG_EDGES", "entropy_edges", "QUANTILES", "softmax_entropy",
           "target_distribution", "target_entropy", "masked_quantiles", "SAMPLE_QUANTILES",
           "row_stats", "reduce_rows"]

#: Fixed histogram bins, the same for every run so histograms add up across runs and ranks.
NORM_EDGES = np.r_[0.0, np.logspace(-3, 4, 57)]  # ||x||: 0, then 1e-3 .. 1e4, 8 bins/decade
COS_EDGES = np.linspace(-1.0, 1.0, 41)
SYMLOG_EDGES = np.r_[-np.logspace(5, -3, 33), 0.0, np.logspace(-3, 5, 33)]  # ±1e5 .. ±1e-3
QUANTILES = (0.05, 0.5, 0.95)
SAMPLE_QUANTILES = (0.5, 0.99)  # of the per-sample gradient norm ‖∂ℓ_i/∂x_i‖


def entropy_edges(num_classes: int) -> np.ndarray:
    """Entropy bins on [0, log C] (nats)."""
    return np.linspace(0.0, math.log(max(num_classes, 2)), 31)


@dataclass(frozen=True)
class Field:
    name: str  # dotted store key, e.g. "penultimate.norm.sum"
    size: int
    kind: str  # "sum" | "max" | "local"


def _margin_names(metric: str) -> tuple[str, str, str]:
    if metric == "euclidean":
        return "head.anchor_gap", "head.nearest_negative", "head.gap"
    return "head.logit_true", "head.logit_top_negative", "head.margin"


def layout(metric: str, num_classes: int) -> list[Field]:
    """The fields :func:`batch_stats` returns, in order."""
    nb, cb, sb = len(NORM_EDGES) - 1, len(COS_EDGES) - 1, len(SYMLOG_EDGES) - 1
    eb = len(entropy_edges(num_classes)) - 1
    f = [Field("n", 1, "sum"), Field("penultimate.norm.sum", 1, "sum"),
         Field("penultimate.norm.sumsq", 1, "sum"), Field("penultimate.norm.max", 1, "max"),
         Field("penultimate.norm.quantiles", len(QUANTILES), "local"),
         Field("penultimate.norm.hist", nb, "sum"),
         Field("penultimate.norm.class_sum", num_classes, "sum"),
         Field("penultimate.norm.class_count", num_classes, "sum"),
         Field("head.norm_true.sum", 1, "sum"), Field("head.norm_true.sumsq", 1, "sum"),
         Field("head.cos_true.sum", 1, "sum"), Field("head.cos_true.sumsq", 1, "sum"),
         Field("head.cos_true.hist", cb, "sum"), Field("head.dot_true.sum", 1, "sum"),
         Field("head.bias_true.sum", 1, "sum"), Field("head.logit_true_raw.sum", 1, "sum")]
    for name in _margin_names(metric):
        f += [Field(f"{name}.sum", 1, "sum"), Field(f"{name}.quantiles", len(QUANTILES), "local"),
              Field(f"{name}.hist", sb, "sum")]
    for group in ("all", "easy", "hard"):
        f += [Field(f"entropy.{group}.n", 1, "sum"), Field(f"entropy.{group}.pred", 1, "sum"),
              Field(f"entropy.{group}.target", 1, "sum"), Field(f"entropy.{group}.kl", 1, "sum")]
    f += [Field("entropy.pred.hist", eb, "sum"), Field("entropy.target.hist", eb, "sum"),
          Field("health.max_logit", 1, "max"), Field("health.logsumexp.sum", 1, "sum")]
    return f


def _hist(values: Tensor, edges: Tensor, weight: Tensor | None = None) -> Tensor:
    """(Weighted) counts of ``values`` in the bins ``edges`` (outside values clamp to the
    end bins)."""
    idx = torch.bucketize(values, edges[1:-1], right=True)
    return torch.bincount(idx, weights=weight, minlength=len(edges) - 1).to(values.dtype)


def masked_quantiles(v: Tensor, keep: Tensor | None = None,
                     qs: tuple[float, ...] = QUANTILES) -> Tensor:
    """Quantiles ``qs`` of ``v[N]`` over the kept, non-NaN rows, as ``torch.nanquantile``
    computes them (linear interpolation), NaN where no row is kept.

    Why not ``torch.quantile``: under ``torch.compile`` it fails on a dynamic batch size
    ("Cannot call numel() on tensor with symbolic sizes", issue 15). Here dropped rows are
    sorted to the end as +inf and the kept count stays a device tensor: no host sync, and
    any batch size traces.
    """
    v = v.float()
    ok = ~torch.isnan(v) if keep is None else keep & ~torch.isnan(v)
    s = torch.sort(torch.where(ok, v, torch.full_like(v, float("inf")))).values  # [N]
    k = ok.sum()  # kept rows, on the device
    q = torch.tensor(qs, dtype=torch.float32, device=v.device)
    pos = q * (k - 1).clamp_min(0).float()  # [Q]
    lo = pos.floor().long().clamp(0, len(v) - 1)
    hi = pos.ceil().long().clamp(0, len(v) - 1)
    a, b = s[lo], s[hi]
    out = torch.where(hi > lo, a + (b - a) * (pos - lo.float()), a)
    return torch.where(k > 0, out, torch.full_like(out, float("nan")))


def _quantiles(v: Tensor, keep: Tensor | None = None) -> Tensor:
    """The :data:`QUANTILES` of ``v`` over the kept rows (see :func:`masked_quantiles`)."""
    return masked_quantiles(v, keep, QUANTILES)


EXACT_BUDGET = 2**22  # float64 numbers per chunk of the exact entropies (32 MiB)


def _row_chunks(rows: int, width: int, budget: int = EXACT_BUDGET) -> list[slice]:
    """Row slices whose ``[rows, width]`` float64 temporaries stay within ``budget``."""
    step = max(1, budget // max(width, 1))
    return [slice(i, i + step) for i in range(0, rows, step)]


def _anchored_entropy(z: Tensor, anchor: Tensor) -> Tensor:
    """H(softmax(z)) per row, in ``z``'s dtype (see :func:`softmax_entropy`)."""
    a = anchor[:, None]
    u = (z - z.gather(1, a)).scatter(1, a, float("-inf"))  # [N, C], -inf at the anchor
    big_a = F.softplus(torch.logsumexp(u, 1))  # [N]: -log q_a
    q_off = torch.exp(u - big_a[:, None])  # [N, C], 0 at the anchor
    return big_a - (q_off * torch.where(torch.isfinite(u), u, torch.zeros_like(u))).sum(1)


def softmax_entropy(z: Tensor, anchor: Tensor) -> Tensor:
    """H(softmax(z)) per row ``z[N, C]`` in float64, exact when the mass off class
    ``anchor[N]`` is tiny.

    With u_j = z_j - z_a and M = logsumexp_{j≠a} u_j, log q_a = -softplus(M) and
    H = softplus(M) - Σ_{j≠a} q_j u_j: both terms are >= 0 when ``anchor`` holds the
    row's largest logit, so nothing cancels. The textbook -Σ q log q rounds q_a to 1 and
    loses the q_a·log q_a term (float32 entropies of easy samples came out ~3% low). Computed
    in float64, in row chunks: in float32 softplus(M) underflows once M < -104, and TFSD's
    targets at anchor gaps near 125 were stored as exactly 0 (issue 25).
    """
    parts = [_anchored_entropy(z[c].double(), anchor[c]) for c in _row_chunks(*z.shape)]
    return torch.cat(parts) if parts else z.new_zeros(0, dtype=torch.float64)


def target_distribution(logits: Tensor, y: Tensor, target: str, smoothing: float) -> Tensor:
    """The objective's target p [N, C]: zero-anchor softmax (tfsd), label-smoothed, or one-hot."""
    if target == "tfsd":
        return torch.softmax(logits.scatter(1, y[:, None], 0.0), 1)
    onehot = torch.zeros_like(logits).scatter_(1, y[:, None], 1.0)
    if target == "label_smoothing":
        return onehot * (1 - smoothing) + smoothing / logits.shape[1]
    return onehot


def _anchored_log_softmax(z: Tensor, anchor: Tensor) -> tuple[Tensor, Tensor]:
    """``(log softmax(z), log(1 + e^M))`` per row with the anchor's own term exact:
    log q_a = -log(1 + e^M), M = logsumexp_{j≠a}(z_j - z_a). (``torch.log_softmax`` rounds
    log(1 + 1e-26) to 0: a KL between two near one-hot laws then lost its main term and came
    out negative.) With ``anchor`` the row's largest logit, -sum q log q has no cancellation
    and equals :func:`softmax_entropy`'s form."""
    a = anchor[:, None]
    u = z - z.gather(1, a)
    m = torch.logsumexp(u.scatter(1, a, float("-inf")), 1)
    big = torch.logaddexp(torch.zeros_like(m), m)  # [N]: -log q_a
    return u - big[:, None], big


def _exact(z: Tensor, y: Tensor, target: str, smoothing: float) -> dict[str, Tensor]:
    """Per row of ``z[n, C]`` in float64: H(q), H(p), KL(p ‖ q), q_y and logsumexp(z), from
    anchored log-probabilities (two exp passes per law; 0·log 0 = 0)."""
    z = z.double()
    pred = z.argmax(1)
    logq, big = _anchored_log_softmax(z, pred)
    q = logq.exp()
    zero = torch.zeros((), dtype=z.dtype, device=z.device)
    out = {"h_pred": -torch.where(q > 0, q * logq, zero).sum(1),
           "q_y": q.gather(1, y[:, None]).squeeze(1),
           "lse": z.gather(1, pred[:, None]).squeeze(1) + big}
    if target == "tfsd":  # p = softmax(z with z_y := 0): its largest logit is z_y = 0
        logp, _ = _anchored_log_softmax(z.scatter(1, y[:, None], 0.0), y)
        p = logp.exp()  # log p is finite everywhere: p·(log p - log q) is never NaN
        out["h_target"] = -torch.where(p > 0, p * logp, zero).sum(1)
        out["kl"] = (p * (logp - logq)).sum(1)
    else:
        p = target_distribution(z, y, target, smoothing)
        xlx = torch.special.xlogy(p, p).sum(1)
        out["h_target"] = -xlx
        out["kl"] = xlx - torch.where(p > 0, p * logq, torch.zeros_like(p)).sum(1)
    return out


def target_entropy(logits: Tensor, y: Tensor, target: str, smoothing: float) -> Tensor:
    """H(p) per row of the objective's target in float64, computed exactly (see
    :func:`softmax_entropy`: the zero-anchor target is softmax(z with z_y := 0), whose largest
    logit is z_y = 0)."""
    if target == "tfsd":
        return softmax_entropy(logits.scatter(1, y[:, None], 0.0), y)
    parts = [_exact(logits[c], y[c], target, smoothing)["h_target"]
             for c in _row_chunks(*logits.shape)]
    return torch.cat(parts) if parts else logits.new_zeros(0, dtype=torch.float64)


def row_stats(x: Tensor, logits: Tensor, y: Tensor, vectors: Tensor, bias: Tensor | None,
              metric: str, target: str = "onehot", smoothing: float = 0.0,
              ignore_index: int = -100) -> dict[str, Tensor]:
    """Per-row quantities of :func:`batch_stats` (``[N]`` each): what :func:`reduce_rows`
    sums. A split evaluated in chunks keeps these, never its ``[N, C]`` logits. Entropies,
    KL, q_y and logsumexp are float64 (see :func:`softmax_entropy`)."""
    x, z, w = x.float(), logits.float(), vectors.float()
    keep = y != ignore_index  # [N]
    y = torch.where(keep, y, torch.zeros_like(y))
    r = torch.linalg.vector_norm(x, dim=1)  # [N]
    wy = w[y]  # [N, D]
    a = torch.linalg.vector_norm(wy, dim=1)
    dot = (x * wy).sum(1)
    zy = z.gather(1, y[:, None]).squeeze(1)
    top_neg = z.scatter(1, y[:, None], float("-inf")).amax(1)
    parts = [_exact(z[c], y[c], target, smoothing) for c in _row_chunks(*z.shape)]
    exact = {k: torch.cat([p[k] for p in parts]) for k in parts[0]} if parts else {
        k: z.new_zeros(0, dtype=torch.float64) for k in ("h_pred", "h_target", "kl", "q_y",
                                                          "lse")}
    return {"keep": keep.float(), "y": y, "r": r, "a": a, "dot": dot,
            "cos": dot / (r * a).clamp_min(1e-12), "zy": zy, "top_neg": top_neg,
            "bias_y": bias.float()[y] if bias is not None else torch.zeros_like(r),
            "max_logit": z.amax(1), **exact}


def reduce_rows(rows: dict[str, Tensor], metric: str, num_classes: int, easy: float = 0.9,
                hard: float = 0.5) -> dict[str, Tensor]:
    """The record of :func:`layout`'s fields from :func:`row_stats` (of one batch, or of a
    whole split's chunks concatenated)."""
    kf, y, r, a, cos = rows["keep"], rows["y"], rows["r"], rows["a"], rows["cos"]
    keep, dev = kf > 0, r.device
    zy, top_neg = rows["zy"], rows["top_neg"]
    if metric == "euclidean":
        m1, m2, m3 = -zy, -top_neg, zy - top_neg  # s·d_y, s·min_{j≠y} d_j, their gap
    else:
        m1, m2, m3 = zy, top_neg, zy - top_neg
    h_pred, h_target, kl, q_y = rows["h_pred"], rows["h_target"], rows["kl"], rows["q_y"]
    groups = {"all": kf, "easy": (q_y >= easy).float() * kf, "hard": (q_y < hard).float() * kf}
    t = lambda a_: torch.as_tensor(a_, dtype=torch.float32, device=dev)  # noqa: E731
    ent_edges = t(entropy_edges(num_classes))
    # sums in float64: sumsq/n - mean² cancels (float32 sums gave the std of norms 16 ± 0.01
    # 11% high); a flush adds these records in float64 too
    s = lambda v: (v.double() * kf).sum()  # noqa: E731
    mx = lambda v: torch.where(keep, v, torch.full_like(v, float("-inf"))).max()  # noqa: E731
    out = {
        "n": kf.sum().reshape(1), "penultimate.norm.sum": s(r),
        "penultimate.norm.sumsq": s(r * r), "penultimate.norm.max": mx(r),
        "penultimate.norm.quantiles": _quantiles(r, keep),
        "penultimate.norm.hist": _hist(r, t(NORM_EDGES), kf),
        "penultimate.norm.class_sum": torch.zeros(num_classes, device=dev).index_add_(
            0, y, r * kf),
        "penultimate.norm.class_count": torch.bincount(y, weights=kf, minlength=num_classes),
        "head.norm_true.sum": s(a), "head.norm_true.sumsq": s(a * a),
        "head.cos_true.sum": s(cos), "head.cos_true.sumsq": s(cos * cos),
        "head.cos_true.hist": _hist(cos, t(COS_EDGES), kf), "head.dot_true.sum": s(rows["dot"]),
        "head.bias_true.sum": s(rows["bias_y"]), "head.logit_true_raw.sum": s(zy),
    }
    for name, v in zip(_margin_names(metric), (m1, m2, m3), strict=True):
        out[f"{name}.sum"] = s(v)
        out[f"{name}.quantiles"] = _quantiles(v, keep)
        out[f"{name}.hist"] = _hist(v, t(SYMLOG_EDGES), kf)
    for g, m in groups.items():
        out[f"entropy.{g}.n"] = m.sum()
        out[f"entropy.{g}.pred"] = (h_pred * m).sum()
        out[f"entropy.{g}.target"] = (h_target * m).sum()
        out[f"entropy.{g}.kl"] = (kl * m).sum()
    out["entropy.pred.hist"] = _hist(h_pred.float(), ent_edges, kf)
    out["entropy.target.hist"] = _hist(h_target.clamp_min(0).float(), ent_edges, kf)
    out["health.max_logit"] = mx(rows["max_logit"])
    out["health.logsumexp.sum"] = s(rows["lse"])
    return {k: v.double().reshape(-1) for k, v in out.items()}


def batch_stats(x: Tensor, logits: Tensor, y: Tensor, vectors: Tensor, bias: Tensor | None,
                metric: str, target: str = "onehot", smoothing: float = 0.0,
                easy: float = 0.9, hard: float = 0.5, ignore_index: int = -100
                ) -> dict[str, Tensor]:
    """Statistics of one batch. Shapes: x[N, D], logits[N, C], y[N], vectors[C, D], bias[C].

    ``target``: "tfsd", "label_smoothing" or "onehot" (the target whose entropy is H(p)).
    A sample is easy when its true-class probability q_y >= ``easy``, hard when < ``hard``.
    Rows whose target is ``ignore_index`` (padding) count nowhere; they are masked, not
    removed, so nothing synchronises with the host.
    """
    rows = row_stats(x, logits, y, vectors, bias, metric, target, smoothing, ignore_index)
    return reduce_rows(rows, metric, logits.shape[1], easy, hard)


GRAD_FIELDS = [Field("grad.n", 1, "sum"), Field("grad.radial_abs.sum", 1, "sum"),
               Field("grad.radial_signed.sum", 1, "sum"), Field("grad.tangential.sum", 1, "sum"),
               Field("grad.radial_sq.sum", 1, "sum"), Field("grad.total_sq.sum", 1, "sum"),
               Field("grad.sample_norm.max", 1, "max"),
               Field("grad.sample_norm.quantiles", len(SAMPLE_QUANTILES), "local"),
               Field("grad.noisy.n", 1, "sum"), Field("grad.noisy.norm.sum", 1, "sum"),
               Field("grad.clean.n", 1, "sum"), Field("grad.clean.norm.sum", 1, "sum")]


def grad_stats(g: Tensor, x: Tensor, scale_rows: float | Tensor = 1.0,
               keep: Tensor | None = None, noisy: Tensor | None = None) -> dict[str, Tensor]:
    """Radial/tangential split of per-sample feature gradients ``g[N, D]`` at features ``x``,
    and the tail of their norms.

    g_r = g·x̂ (signed: negative means a descent step grows ||x||), g_t = g - g_r x̂.
    ``scale_rows`` undoes a mean reduction (the number of kept rows, possibly a device
    tensor) so the norms are those of ∂ℓ_i/∂x_i, the per-sample loss's gradient (exact when
    each ℓ_i depends on its own x_i only, as for every registered objective); rows outside
    ``keep[N]`` count nowhere. ``noisy[N]`` (bool: the sample's label was flipped) splits
    the mean norm into flipped and clean samples; without it both counts stay 0.
    """
    g, x = g.double() * scale_rows, x.double()  # float64: g_t = sqrt(|g|² - g_r²) cancels
    kf = torch.ones(len(g), device=g.device, dtype=g.dtype) if keep is None else keep.double()
    xhat = x / torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(1e-12)
    gr = (g * xhat).sum(1)
    gsq = (g * g).sum(1)
    gt = (gsq - gr * gr).clamp_min(0).sqrt()
    norm = gsq.sqrt()  # [N] ‖∂ℓ_i/∂x_i‖
    keep_b = kf > 0
    noisy_f = (torch.zeros_like(kf) if noisy is None else noisy.double() * kf)
    clean_f = (torch.zeros_like(kf) if noisy is None else (1 - noisy.double()) * kf)
    out = {"grad.n": kf.sum(), "grad.radial_abs.sum": (gr.abs() * kf).sum(),
           "grad.radial_signed.sum": (gr * kf).sum(), "grad.tangential.sum": (gt * kf).sum(),
           "grad.radial_sq.sum": (gr * gr * kf).sum(), "grad.total_sq.sum": (gsq * kf).sum(),
           "grad.sample_norm.max": torch.where(keep_b, norm, torch.zeros_like(norm)).max(),
           "grad.sample_norm.quantiles": masked_quantiles(norm, keep_b, SAMPLE_QUANTILES),
           "grad.noisy.n": noisy_f.sum(), "grad.noisy.norm.sum": (norm * noisy_f).sum(),
           "grad.clean.n": clean_f.sum(), "grad.clean.norm.sum": (norm * clean_f).sum()}
    return {k: v.reshape(-1) for k, v in out.items()}
