"""Evaluation of a model on the test and OOD splits: the numbers a run records per epoch.

Runs outside the training step, so moving results to the host here is fine.
"""

from __future__ import annotations

import torch
from torch import Tensor

from probes.tokens import class_group_distances, class_structure

from .. import metrics as M
from ..data import DataBundle
from ..models import Classifier
from ..objectives.heads import squared_distances

__all__ = ["collect", "evaluate", "noise_metrics", "class_metrics", "NOISY_SAMPLES"]

NC_SAMPLES = 5000
NOISY_SAMPLES = 5000  # flipped training samples scored for memorisation (the first ones)


@torch.no_grad()
def collect(model: Classifier, x: Tensor, bundle: DataBundle, device: torch.device,
            batch_size: int = 1024, amp_dtype: torch.dtype | None = None) -> dict[str, Tensor]:
    """Features, logits and (Euclidean heads) squared distances of ``x``, on the CPU in fp32."""
    feats, logits, dists = [], [], []
    head = model.head
    for i in range(0, len(x), batch_size):
        xb = bundle.prepare(x[i : i + batch_size].to(device, non_blocking=True))
        with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16,
                            enabled=amp_dtype is not None):
            f = model.features(xb)
            z = head(f)
        feats.append(f.float().cpu())
        logits.append(z.float().cpu())
        if head.metric == "euclidean":
            dists.append(squared_distances(f.float(), head.centers.float()).cpu())
    out = {"features": torch.cat(feats), "logits": torch.cat(logits)}
    if dists:
        out["distances"] = torch.cat(dists)
    return out


def evaluate(model: Classifier, bundle: DataBundle, device: torch.device, batch_size: int = 1024,
             amp_dtype: torch.dtype | None = None, on_test=None,
             on_scores=None, class_groups: bool = True) -> dict[str, dict[str, float]]:
    """``{"test": {...}, "ood": {...}, "train_eval": {...}}`` of scalar metrics.

    test: acc, nll, ece. ood: ``<score>.<metric>`` for MSP, max-logit, energy and
    min-distance (Euclidean heads); ood_near: the same for the second OOD set.
    train_eval: neural collapse on up to 5000 training examples (the first ones: the same
    examples for every run); ``acc`` is scored against the labels the model trained on
    (with label noise: the flipped ones). With label noise (``bundle.noisy``) also
    ``acc_true`` (the same examples against their original, clean labels), ``memorised``
    (the share of flipped samples, up to 5000, predicted with their flipped label),
    ``noisy_acc_true`` (with their original label) and ``clean_acc`` (accuracy on the
    unflipped ones among the first 5000).
    With ``class_groups``, test also gets ``classes.{within,between,ratio}`` (mean distance
    between class vectors of one group and of different groups, where the dataset declares
    groups) and ``classes.structure`` (see :func:`probes.tokens.class_structure`, where a
    class dissimilarity is known).
    ``on_test(collected)`` receives the test split's features and logits (for probes);
    ``on_scores(conf_id, conf_ood)`` the per-sample confidence scores (for the OOD panel).
    """
    was_training = model.training
    model.eval()
    try:
        test = collect(model, bundle.x_test, bundle, device, batch_size, amp_dtype)
        if on_test is not None:
            on_test(test)
        out = {"test": M.classification_metrics(test["logits"], bundle.y_test)}
        conf_id = M.confidence_scores(test["logits"], test.get("distances"))
        for split, x_ood in (("ood", bundle.x_ood), ("ood_near", bundle.x_ood_near)):
            if x_ood is None or not len(x_ood):
                continue
            ood = collect(model, x_ood, bundle, device, batch_size, amp_dtype)
            conf_ood = M.confidence_scores(ood["logits"], ood.get("distances"))
            if split == "ood" and on_scores is not None:  # the main set feeds the OOD panel
                on_scores(conf_id, conf_ood)
            out[split] = {f"{score}.{k}": v for score in conf_id
                          for k, v in M.ood_metrics(conf_id[score], conf_ood[score]).items()}
        n = min(NC_SAMPLES, len(bundle.x_train))
        train = collect(model, bundle.x_train[:n], bundle, device, batch_size, amp_dtype)
        out["train_eval"] = {
            **M.neural_collapse(train["features"], bundle.y_train[:n], bundle.num_classes),
            "acc": M.accuracy(train["logits"], bundle.y_train[:n]),
            "feature_norm": float(train["features"].double().norm(dim=1).mean()),
        }
        if bundle.noisy is not None:
            out["train_eval"].update(noise_metrics(model, bundle, train["logits"], device,
                                                   batch_size, amp_dtype))
        if class_groups:
            out["test"].update(class_metrics(model.head.class_vectors, bundle))
        return out
    finally:
        model.train(was_training)


def noise_metrics(model: Classifier, bundle: DataBundle, first_logits: Tensor,
                  device: torch.device, batch_size: int = 1024,
                  amp_dtype: torch.dtype | None = None) -> dict[str, float]:
    """How far the model fits the flipped labels: ``memorised`` and ``noisy_acc_true`` over
    up to :data:`NOISY_SAMPLES` flipped samples; ``acc_true`` (all of them against the clean
    labels) and ``clean_acc`` (the unflipped ones) from ``first_logits`` (the logits of the
    first training examples, already computed)."""
    out: dict[str, float] = {}
    if bundle.y_train_clean is not None:  # train_eval.acc is against the flipped labels
        out["acc_true"] = M.accuracy(first_logits, bundle.y_train_clean[: len(first_logits)])
    idx = torch.from_numpy(bundle.noisy_index[:NOISY_SAMPLES])
    if len(idx):
        pred = collect(model, bundle.x_train[idx], bundle, device, batch_size,
                       amp_dtype)["logits"].argmax(1)  # [M]
        out["memorised"] = float((pred == bundle.y_train[idx]).double().mean())
        if bundle.y_train_clean is not None:
            out["noisy_acc_true"] = float((pred == bundle.y_train_clean[idx]).double().mean())
    clean = ~bundle.noisy[: len(first_logits)]
    if clean.any():
        out["clean_acc"] = M.accuracy(first_logits[clean], bundle.y_train[: len(clean)][clean])
    return out


def class_metrics(vectors: Tensor, bundle: DataBundle) -> dict[str, float]:
    """``classes.*`` of the class vectors ``vectors[C, D]`` against the dataset's known class
    structure; empty where it declares none."""
    out: dict[str, float] = {}
    if bundle.groups is not None:
        out.update(class_group_distances(vectors.detach(), torch.from_numpy(bundle.groups)))
    if bundle.class_dissimilarity is not None:
        out["classes.structure"] = class_structure(vectors, bundle.class_dissimilarity)
    return out
