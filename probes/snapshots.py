"""Manifold snapshots: a fixed probe set's features and per-sample geometry at chosen steps.

The probe set is stratified by class and drawn with a fixed seed from the test split
(plus OOD examples), so every run of a comparison snapshots the same examples.
Steps are spaced logarithmically early (where the geometry moves fastest) and
evenly later, plus step 0 and the last step.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from .stats import softmax_entropy, target_entropy

__all__ = ["select_probe_set", "snapshot_steps", "snapshot_arrays"]

PROBE_SEED = 20_240_601


def select_probe_set(y: np.ndarray, n: int = 2000, n_ood: int = 0, ood_total: int = 0,
                     seed: int = PROBE_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices into the test split (stratified: about ``n / C`` per class) and into OOD."""
    g = np.random.default_rng(seed)
    y = np.asarray(y)
    classes = np.unique(y)
    per = max(1, n // max(len(classes), 1))
    idx = [g.permutation(np.flatnonzero(y == c))[:per] for c in classes]
    test_idx = np.sort(np.concatenate(idx)) if idx else np.zeros(0, dtype=np.int64)
    ood_idx = np.sort(g.permutation(ood_total)[: min(n_ood, ood_total)])
    return test_idx.astype(np.int64), ood_idx.astype(np.int64)


def snapshot_steps(total: int, n: int = 40) -> list[int]:
    """About ``n`` steps in [0, total]: half log-spaced over the first 10%, half even after."""
    if total <= 0:
        return [0]
    early_end = max(1, total // 10)
    k = max(1, n // 2)
    early = np.unique(np.round(np.logspace(0, np.log10(early_end), k)).astype(int))
    late = np.round(np.linspace(early_end, total, n - k + 1)).astype(int)
    return sorted({0, total, *early.tolist(), *late.tolist()})


@torch.no_grad()
def snapshot_arrays(features: Tensor, logits: Tensor, labels: Tensor, vectors: Tensor,
                    metric: str, target: str = "onehot", smoothing: float = 0.0,
                    keep_logits: bool = True) -> dict[str, np.ndarray]:
    """Per-sample arrays for one snapshot. OOD rows have label -1 (their geometry is taken
    against the predicted class, since they have no true one). ``keep_logits=False`` leaves
    the ``[P, C]`` logits out (large vocabularies)."""
    x, z = features.half().float(), logits.float()  # geometry of exactly what is stored
    y = torch.where(labels >= 0, labels, z.argmax(1))
    r = torch.linalg.vector_norm(x, dim=1)
    wy = vectors.float()[y]
    cos = (x * wy).sum(1) / (r * torch.linalg.vector_norm(wy, dim=1)).clamp_min(1e-12)
    zy = z.gather(1, y[:, None]).squeeze(1)
    top_neg = z.scatter(1, y[:, None], float("-inf")).amax(1)
    out = {
        "features": x.half(), "logits": z.half(), "norm": r, "cos_true": cos,
        "true": -zy if metric == "euclidean" else zy,
        "top_negative": -top_neg if metric == "euclidean" else top_neg,
        "margin": zy - top_neg,
        "entropy_pred": softmax_entropy(z, z.argmax(1)),
        "entropy_target": target_entropy(z, y, target, smoothing),
    }
    if not keep_logits:
        del out["logits"]
    return {k: v.cpu().numpy() for k, v in out.items()}


def run_model(model: nn.Module, head: nn.Module, x: Tensor, prepare, batch: int = 1024):
    """Features (head inputs) and logits of ``x`` in eval mode, without gradients."""
    feats, logits = [], []

    def grab(_m, inputs, output):
        feats.append(inputs[0].detach())
        logits.append(output.detach())

    handle = head.register_forward_hook(grab)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch):
                model(prepare(x[i : i + batch]))
    finally:
        handle.remove()
        model.train(was)
    return torch.cat(feats), torch.cat(logits)
