"""The recorder's reads of the model outside the training step: evaluation of user batches
(test and OOD) and the fixed probe set that snapshots follow.

Both run the user's model as it is called in training, in eval mode without gradients, and
read the head's input (the features) and output (the logits) through a forward hook that is
removed in ``finally``. Metrics are reduced per batch, so a language model's ``[N·T, V]``
logits are never held at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from probes.snapshots import PROBE_SEED
from probes.stats import softmax_entropy, target_entropy
from probes.tokens import (
    FREQ_BUCKETS,
    class_group_distances,
    contexts,
    select_class_subset,
    select_positions,
)

from .. import metrics as M
from ..objectives.heads import squared_distances
from .batches import IGNORE_INDEX, call_model, iter_batches, shift_labels, to_device

__all__ = ["head_io", "evaluate_batches", "ProbeSet", "class_vectors", "EVAL_PROBE_ROWS"]

EVAL_PROBE_ROWS = 8192  # test rows (positions) the probes' test record sees
CHUNK = 256  # probe-set rows per forward pass
CLASS_LIMIT = 2048  # class vectors in classes.* (as geomviz.training.evaluate_tokens)


def class_vectors(head: nn.Module) -> Tensor:
    """``[C, D]``: a geomviz head's class vectors, an ``nn.Linear``'s weight rows."""
    return (head.class_vectors if hasattr(head, "class_vectors") else head.weight).detach()


@contextlib.contextmanager
def head_io(model: nn.Module, head: nn.Module):
    """Eval mode, no gradients, and a list that receives ``(features, logits)`` of each head
    call; the hook is removed and the mode restored on exit."""
    got: list[tuple[Tensor, Tensor]] = []
    handle = head.register_forward_hook(lambda _m, i, o: got.append((i[0].detach(), o.detach())))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield got
    finally:
        handle.remove()
        model.train(was)


def _rows(feats: Tensor, logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Flattened ``[M, D]``, ``[M, V]`` fp32, ``[M]`` of the kept (not ignored) rows."""
    d, v = feats.shape[-1], logits.shape[-1]
    f, z, y = feats.reshape(-1, d).float(), logits.reshape(-1, v).float(), y.reshape(-1)
    y = y.to(f.device)
    keep = y != IGNORE_INDEX
    return f[keep], z[keep], y[keep]


def _scores(f: Tensor, z: Tensor, head: nn.Module, metric: str) -> dict[str, np.ndarray]:
    dists = (squared_distances(f, class_vectors(head).float()) if metric == "euclidean"
             else None)
    return M.confidence_scores(z, dists)


def evaluate_batches(model: nn.Module, head: nn.Module, metric: str, target: str,
                     smoothing: float, test, ood, inputs_fn: Callable, labels_fn: Callable,
                     causal: bool, device: torch.device, freq_bucket: Tensor | None = None,
                     groups: Tensor | None = None) -> tuple[dict, dict, dict, dict]:
    """``(splits, conf_id, conf_ood, probe)``: ``splits["test"]`` acc, nll, ece (and, for
    token models, ``freq.{top,mid,rare}.*`` given frequency buckets, ``classes.*`` given token
    groups), ``splits["ood"]`` ``<score>.<metric>``; the per-row confidences; and the first
    :data:`EVAL_PROBE_ROWS` rows' features, logits and labels for the probes' test record."""
    sums: dict[str, float] = {}
    conf, right, scores = [], [], {}
    probe: dict[str, list[Tensor]] = {"features": [], "logits": [], "y": []}

    def add(name: str, value) -> None:
        sums[name] = sums.get(name, 0.0) + float(value)

    with head_io(model, head) as got:
        for batch in iter_batches(test):
            batch = to_device(batch, device)
            got.clear()
            call_model(model, inputs_fn(batch))
            if not got:
                raise ValueError("the head was not called by the model on a test batch")
            y = labels_fn(batch)
            f, z, y = _rows(*got[-1], shift_labels(y) if causal else y)
            logq = torch.log_softmax(z, 1)
            q_max, pred = logq.exp().max(1)
            add("n", len(y))
            add("nll", -logq.gather(1, y[:, None]).double().sum())
            add("correct", (pred == y).sum())
            conf.append(q_max.double().cpu())
            right.append((pred == y).cpu())
            for k, v in _scores(f, z, head, metric).items():
                scores.setdefault(k, []).append(v)
            if freq_bucket is not None:
                h_q = softmax_entropy(z.double(), pred)
                h_p = target_entropy(z.double(), y, target, smoothing)
                r = torch.linalg.vector_norm(f, dim=1).double()
                b = freq_bucket.to(y.device)[y]
                for i, name in enumerate(FREQ_BUCKETS):
                    m = (b == i).double()
                    add(f"freq.{name}.n", m.sum())
                    add(f"freq.{name}.norm", (r * m).sum())
                    add(f"freq.{name}.entropy.pred", (h_q * m).sum())
                    add(f"freq.{name}.entropy.target", (h_p * m).sum())
            have = sum(len(t) for t in probe["y"])
            if have < EVAL_PROBE_ROWS:
                k = EVAL_PROBE_ROWS - have
                for key, t in (("features", f), ("logits", z), ("y", y)):
                    probe[key].append(t[:k])
        if not sums.get("n"):
            raise ValueError("the test data gave no labelled rows to evaluate")

        def mean(num: str, den: str) -> float:
            return sums.get(num, 0.0) / sums[den] if sums.get(den) else float("nan")

        test = {"acc": mean("correct", "n"), "nll": mean("nll", "n"),
                "ece": M.ece_from_confidence(torch.cat(conf), torch.cat(right))}
        for name in FREQ_BUCKETS if freq_bucket is not None else ():
            for k in ("norm", "entropy.pred", "entropy.target"):
                test[f"freq.{name}.{k}"] = mean(f"freq.{name}.{k}", f"freq.{name}.n")
            test[f"freq.{name}.fraction"] = mean(f"freq.{name}.n", "n")
        if groups is not None:  # the first CLASS_LIMIT tokens: a [K, K] distance matrix
            k = min(CLASS_LIMIT, len(groups))
            test.update(class_group_distances(class_vectors(head)[:k], groups[:k]))
        conf_id = {k: np.concatenate(v) for k, v in scores.items()}
        ood_scores: dict[str, list[np.ndarray]] = {}
        for batch in iter_batches(ood):
            batch = to_device(batch, device)
            got.clear()
            call_model(model, inputs_fn(batch))
            feats, logits = got[-1]
            f = feats.reshape(-1, feats.shape[-1]).float()
            for k, v in _scores(f, logits.reshape(-1, logits.shape[-1]).float(), head,
                                metric).items():
                ood_scores.setdefault(k, []).append(v)
    splits = {"test": test}
    conf_ood = {k: np.concatenate(v) for k, v in ood_scores.items()}
    if conf_ood:
        splits["ood"] = {f"{k}.{m}": v for k in conf_id
                         for m, v in M.ood_metrics(conf_id[k], conf_ood[k]).items()}
    return splits, conf_id, conf_ood, {k: torch.cat(v) for k, v in probe.items()}


def _take(inputs: Any, idx: Tensor) -> Any:
    if isinstance(inputs, dict):
        return {k: v[idx] if isinstance(v, Tensor) else v for k, v in inputs.items()}
    return inputs[idx]


def _length(inputs: Any) -> int:
    if isinstance(inputs, dict):
        return len(next(v for v in inputs.values() if isinstance(v, Tensor)))
    return len(inputs)


class ProbeSet:
    """The fixed rows (or token positions) every snapshot reads, and what is stored once.

    ``inputs`` as the model takes them (a tensor, or a dict of tensors), ``labels[N]`` (or
    ``[N, T]`` for a causal LM, shifted here as in training), optional ``ood`` inputs (label
    -1). For a causal LM up to ``size`` positions whose label is not ignored are drawn with a
    fixed seed (the same for every run given the same data), or given as ``positions``.
    """

    def __init__(self, inputs: Any, labels: Tensor | None, ood: Any = None,
                 causal: bool = False, size: int = 1000, positions=None,
                 num_classes: int | None = None, groups=None, freq_bucket=None) -> None:
        if labels is None:
            raise ValueError("the probe set has no labels: give (inputs, labels)")
        labels = torch.as_tensor(labels)
        if _length(inputs) != len(labels):
            raise ValueError(f"the probe set has {_length(inputs)} inputs but {len(labels)} "
                             "labels")
        self.inputs, self.ood, self.causal = inputs, ood, causal
        self.arrays: dict[str, np.ndarray] = {}
        if causal:
            flat_y = shift_labels(labels).reshape(-1)
            t = labels.shape[1]
            cand = np.flatnonzero(flat_y.numpy() != IGNORE_INDEX)
            pos = (np.sort(np.asarray(positions, dtype=np.int64)) if positions is not None
                   else select_positions(cand, size, PROBE_SEED))
            self.pos, self.t = pos, t
            n_ood = _length(ood) if ood is not None else 0
            self.ood_pos = (select_positions(np.arange(n_ood * t), size // 5, PROBE_SEED + 1)
                            if n_ood else np.zeros(0, dtype=np.int64))
            y = flat_y[torch.from_numpy(pos)]
            ids = inputs["input_ids"] if isinstance(inputs, dict) else inputs
            ctx = [contexts(ids, pos, 8)]
            if len(self.ood_pos):
                oids = ood["input_ids"] if isinstance(ood, dict) else ood
                ctx.append(contexts(oids, self.ood_pos, 8))
            self.arrays["context"] = np.concatenate(ctx)
            self.arrays["class_ids"] = select_class_subset(
                num_classes or 0, None if groups is None else list(groups),
                None if freq_bucket is None else list(freq_bucket))
            index = np.r_[pos, self.ood_pos]
        else:
            y = labels.reshape(-1)
            self.ood_pos = np.arange(_length(ood) if ood is not None else 0)
            index = np.r_[np.arange(len(y)), self.ood_pos]
        if len(y) and int(y.min()) < 0 or num_classes and len(y) and int(y.max()) >= num_classes:
            raise ValueError(f"probe-set labels must lie in [0, {num_classes}) (got "
                             f"{int(y.min())}..{int(y.max())})")
        self.labels = torch.cat([y.long(), torch.full((len(self.ood_pos),), -1)])
        lab = self.labels.numpy()
        self.arrays.update({"labels": lab, "index": index.astype(np.int64), "is_ood": lab < 0})
        safe = np.where(lab >= 0, lab, 0)
        for name, per_class in (("group", groups), ("freq_bucket", freq_bucket)):
            if per_class is not None and causal:
                self.arrays[name] = np.where(lab >= 0, np.asarray(per_class)[safe], -1)

    def _run(self, model, head, inputs, pos, device, causal) -> Tensor:
        feats = []
        n = _length(inputs)
        rows = np.unique(pos // self.t) if causal else np.arange(n)
        with head_io(model, head) as got:
            for i in range(0, len(rows), CHUNK):
                got.clear()
                idx = torch.from_numpy(rows[i : i + CHUNK])
                call_model(model, to_device(_take(inputs, idx), device))
                if not got:
                    raise ValueError("the head was not called when the model ran on the "
                                     "probe set: is head= the module that makes the logits?")
                f = got[-1][0].float()  # [b, D] or [b, T, D]
                feats.append(f)
        f = torch.cat(feats)
        if causal:
            r = torch.from_numpy(np.searchsorted(rows, pos // self.t)).to(f.device)
            c = torch.from_numpy(pos % self.t).to(f.device)
            f = f[r, c]  # [P, D]
        return f

    @torch.no_grad()
    def run(self, model: nn.Module, head: nn.Module, device: torch.device
            ) -> tuple[Tensor, Tensor, Tensor]:
        """Features ``[P, D]``, logits ``[P, V]`` (the head on the gathered rows) and labels."""
        parts = [self._run(model, head, self.inputs, self.pos if self.causal else None,
                           device, self.causal)]
        if len(self.ood_pos):
            parts.append(self._run(model, head, self.ood, self.ood_pos if self.causal else None,
                                   device, self.causal))
        f = torch.cat(parts)
        with head_io(model, head):
            z = head(f.to(next(head.parameters()).dtype)).float()
        return f, z, self.labels.to(f.device)
