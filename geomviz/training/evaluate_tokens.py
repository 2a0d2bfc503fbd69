"""Evaluation of a language model on token positions, in chunks: never all ``[N·T, V]`` logits.

Each chunk of test sequences gives its features and logits; what the run records is reduced
per chunk (sums, and per-position scalars such as confidences):

* ``test``: per-position ``acc``, ``nll``, ``ece``; where the data's next-token law is known
  (the ``synonyms`` language) ``truth.kl`` (mean KL(true ‖ q)), ``truth.entropy`` (mean
  H(true)), ``truth.nll`` (the NLL the true law itself gets: the floor), and
  ``entropy.{synonym,single}.{target,pred,truth,fraction}``: mean H(p), H(q), H(true) on
  positions whose next token is spread over one synonym set of >= 2 tokens, and on
  positions whose next token is determined; where synonym sets are known,
  ``classes.{within,between,ratio}``; always ``freq.{top,mid,rare}.{norm,entropy.pred,
  entropy.target,fraction}`` split by the target token's training frequency.
* ``ood``: ``<score>.<metric>`` of the per-position scores on the OOD sequences.
* ``train_eval``: ``acc`` and ``feature_norm`` on the first training positions.

``on_test`` receives the per-position quantities of the probes' test record
(:func:`probes.stats.row_stats`) of every test position, computed chunk by chunk from the
logits this evaluation computes anyway, so the ``test`` rows ``entropy.*``,
``penultimate.norm.*`` and ``head.*`` cover the whole split like ``nll`` (they used to see
only its first 8,192 positions); ``on_scores`` the per-position confidences.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from probes import target_kind
from probes.session import _head_geometry
from probes.stats import row_stats
from probes.tokens import FREQ_BUCKETS, class_group_distances, class_structure, law_stats

from .. import metrics as M
from ..data import IGNORE_INDEX, DataBundle
from ..models import Classifier
from ..objectives import squared_distances

__all__ = ["evaluate_tokens", "chunk_sequences", "CLASS_LIMIT"]

LOGIT_BUDGET = 2**22  # logits per chunk (16 MiB in fp32)
TRAIN_POSITIONS = 16384  # training positions of train_eval
CLASS_LIMIT = 2048  # class vectors in classes.* (the first tokens)


def chunk_sequences(seq_len: int, vocab: int, budget: int = LOGIT_BUDGET) -> int:
    """Sequences per chunk so a chunk's logits stay within ``budget`` numbers."""
    return max(1, budget // max(seq_len * vocab, 1))


def _chunks(model: Classifier, x: Tensor, y: Tensor | None, device, amp_dtype, per: int):
    """Yield ``(x[b, T], features[M, D], logits[M, V] fp32, y[M] or None)`` per chunk, where
    M counts the kept positions (targets not ignored)."""
    head = model.head
    for i in range(0, len(x), per):
        xb = x[i : i + per].to(device)
        with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16,
                            enabled=amp_dtype is not None):
            f = model.features(xb)  # [b, T, D]
        f = f.float().reshape(-1, f.shape[-1])
        z = head(f).float()  # [b·T, V]
        if y is None:
            yield xb, f, z, None
            continue
        yb = y[i : i + per].to(device).reshape(-1)
        keep = yb != IGNORE_INDEX
        yield xb, f[keep], z[keep], yb[keep]


class _Sums:
    """Named float64 running sums (host side; a chunk adds once)."""

    def __init__(self) -> None:
        self.v: dict[str, float] = {}

    def add(self, name: str, value) -> None:
        self.v[name] = self.v.get(name, 0.0) + float(value)

    def mean(self, num: str, den: str) -> float:
        d = self.v.get(den, 0.0)
        return self.v.get(num, 0.0) / d if d > 0 else float("nan")


def _scores(z: Tensor, f: Tensor, head) -> dict[str, np.ndarray]:
    """Per-position ID confidences of one chunk (:func:`metrics.confidence_scores`)."""
    dists = squared_distances(f, head.centers.float()) if head.metric == "euclidean" else None
    return M.confidence_scores(z, dists)


@torch.no_grad()
def evaluate_tokens(model: Classifier, bundle: DataBundle, device: torch.device,
                    batch_size: int = 1024, amp_dtype: torch.dtype | None = None, on_test=None,
                    on_scores=None, class_groups: bool = True) -> dict[str, dict[str, float]]:
    """``{"test": {...}, "ood": {...}, "train_eval": {...}}``; see the module docstring.
    (``batch_size`` is unused: chunks are sized by the logits they hold.) ``class_groups``:
    record ``classes.*`` where the language has synonym sets."""
    was_training = model.training
    model.eval()
    try:
        return _evaluate(model, bundle, device, amp_dtype, on_test, on_scores, class_groups)
    finally:
        model.train(was_training)


def _evaluate(model, bundle, device, amp_dtype, on_test, on_scores, class_groups=True):
    head, obj = model.head, model.objective
    target = target_kind(obj.name)
    smoothing = float(getattr(obj.loss, "smoothing", 0.0) or 0.0)
    per = chunk_sequences(bundle.input_shape[0], bundle.num_classes)
    info = bundle.info
    groups = torch.as_tensor(info["groups"], device=device) if "groups" in info else None
    buckets = (torch.as_tensor(info["freq_bucket"], device=device) if "freq_bucket" in info
               else None)
    s, conf, right, scores = _Sums(), [], [], {}
    metric, vectors, bias, _ = _head_geometry(head)
    vectors, bias = vectors.detach().float(), None if bias is None else bias.detach().float()
    probe: dict[str, list[Tensor]] = {}  # per-position rows of the probes' test record
    kinds_of = None
    if bundle.truth is not None and groups is not None:
        from ..data.synonyms import positions_kind as kinds_of
    for xb, f, z, y in _chunks(model, bundle.x_test, bundle.y_test, device, amp_dtype, per):
        logq = torch.log_softmax(z, 1)
        q_max, pred = logq.exp().max(1)
        s.add("n", len(y))
        s.add("nll", -logq.gather(1, y[:, None]).double().sum())
        s.add("correct", (pred == y).sum())
        conf.append(q_max.double().cpu())
        right.append((pred == y).cpu())
        for k, v in _scores(z, f, head).items():
            scores.setdefault(k, []).append(v)
        rows = row_stats(f, z, y, vectors, bias, metric, target, smoothing)  # float64 H, KL
        h_q, h_p = rows["h_pred"], rows["h_target"]  # the same exact form as entropy.all.*
        for k, v in rows.items() if on_test is not None else ():
            probe.setdefault(k, []).append(v)  # [M] each: ~17 numbers a position, no logits
        if buckets is not None:
            r = torch.linalg.vector_norm(f, dim=1).double()
            for b, name in enumerate(FREQ_BUCKETS):
                m = (buckets[y] == b).double()
                s.add(f"freq.{name}.n", m.sum())
                s.add(f"freq.{name}.norm", (r * m).sum())
                s.add(f"freq.{name}.entropy.pred", (h_q * m).sum())
                s.add(f"freq.{name}.entropy.target", (h_p * m).sum())
        if bundle.truth is not None:
            law = bundle.truth(xb).reshape(-1, bundle.num_classes)  # [b·T, V] (no ignored)
            ls = law_stats(law, logq, y)
            for k in ("kl", "entropy", "nll"):
                s.add(f"truth.{k}", ls[k].sum())
            if kinds_of is not None:
                kind = kinds_of(law, groups)
                for code, name in ((1, "synonym"), (2, "single")):
                    m = (kind == code).double()
                    s.add(f"{name}.n", m.sum())
                    s.add(f"{name}.target", (h_p * m).sum())
                    s.add(f"{name}.pred", (h_q * m).sum())
                    s.add(f"{name}.truth", (ls["entropy"] * m).sum())
    test = {"acc": s.mean("correct", "n"), "nll": s.mean("nll", "n"),
            "ece": M.ece_from_confidence(torch.cat(conf), torch.cat(right))}
    if bundle.truth is not None:
        test.update({f"truth.{k}": s.mean(f"truth.{k}", "n") for k in ("kl", "entropy", "nll")})
        for name in ("synonym", "single") if kinds_of is not None else ():
            for k in ("target", "pred", "truth"):
                test[f"entropy.{name}.{k}"] = s.mean(f"{name}.{k}", f"{name}.n")
            test[f"entropy.{name}.fraction"] = s.mean(f"{name}.n", "n")
    for name in FREQ_BUCKETS if buckets is not None else ():
        for k in ("norm", "entropy.pred", "entropy.target"):
            test[f"freq.{name}.{k}"] = s.mean(f"freq.{name}.{k}", f"freq.{name}.n")
        test[f"freq.{name}.fraction"] = s.mean(f"freq.{name}.n", "n")
    if groups is not None and class_groups:
        k = min(CLASS_LIMIT, bundle.num_classes)
        vectors = head.class_vectors.detach()[:k]
        test.update(class_group_distances(vectors, groups[:k]))
        # 0 within a synonym set, 1 across: the "dark knowledge" rank score of the vectors
        test["classes.structure"] = class_structure(vectors, bundle.class_dissimilarity[:k, :k])
    if on_test is not None and probe:
        rows = {k: torch.cat(v) for k, v in probe.items()}
        on_test({"rows": rows, "num_classes": bundle.num_classes, "y": rows["y"]})
    out = {"test": test}
    conf_id = {k: np.concatenate(v) for k, v in scores.items()}
    if bundle.x_ood is not None and len(bundle.x_ood):
        ood: dict[str, list[np.ndarray]] = {}
        for _, f, z, _ in _chunks(model, bundle.x_ood, None, device, amp_dtype, per):
            for k, v in _scores(z, f, head).items():
                ood.setdefault(k, []).append(v)
        conf_ood = {k: np.concatenate(v) for k, v in ood.items()}
        if on_scores is not None:
            on_scores(conf_id, conf_ood)
        out["ood"] = {f"{k}.{m}": v for k in conf_id
                      for m, v in M.ood_metrics(conf_id[k], conf_ood[k]).items()}
    out["train_eval"] = _train_eval(model, bundle, device, amp_dtype, per)
    return out


def _train_eval(model, bundle, device, amp_dtype, per) -> dict[str, float]:
    n_seq = max(1, TRAIN_POSITIONS // bundle.input_shape[0])
    n = correct = norm = 0.0
    for _, f, z, y in _chunks(model, bundle.x_train[:n_seq], bundle.y_train[:n_seq], device,
                              amp_dtype, per):
        n += len(y)
        correct += float((z.argmax(1) == y).sum())
        norm += float(torch.linalg.vector_norm(f.double(), dim=1).sum())
    return {"acc": correct / max(n, 1), "feature_norm": norm / max(n, 1)}

