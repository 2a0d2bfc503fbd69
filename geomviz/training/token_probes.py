"""The fixed probe set of a language-model run: token positions the snapshots follow.

About ``snapshot_size`` test positions and ``snapshot_ood`` OOD positions, drawn with a
fixed seed (the same for every run of a comparison), stored once at step 0 with what a view
needs to show them: the target token (``labels``; -1 for OOD), its synonym set (``group``),
its frequency bucket, the kind of position (synonym, single, other; where the law is known)
and the last 8 input tokens (``context``). Each snapshot then stores the features at these
positions, and the class vectors of a fixed subset of up to 512 tokens (``class_ids``):
where tearing between synonyms would be seen.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from probes.snapshots import PROBE_SEED
from probes.tokens import contexts, select_class_subset, select_positions

from ..data import IGNORE_INDEX, DataBundle

__all__ = ["TokenProbeSet", "MAX_SNAPSHOT_VOCAB", "CONTEXT", "CLASS_SUBSET"]

MAX_SNAPSHOT_VOCAB = 1024  # larger vocabularies keep no per-snapshot [P, V] logits
CONTEXT = 8
CLASS_SUBSET = 512
CHUNK = 256  # sequences per forward pass
LAW_BUDGET = 2**22  # float64 numbers of the exact law held at once (32 MiB)


def _in_few_sequences(flat: np.ndarray, seq_len: int, n: int, seed: int) -> np.ndarray:
    """The positions of ``flat`` that lie in a fixed random set of sequences holding about
    ``2n`` of them: a snapshot then runs the model on ~2n/T sequences, not on all of them."""
    seqs = np.unique(flat // seq_len)
    k = min(len(seqs), max(1, -(-2 * n // seq_len)))
    chosen = np.random.default_rng(seed).choice(seqs, size=k, replace=False)
    return flat[np.isin(flat // seq_len, chosen)]


class TokenProbeSet:
    def __init__(self, bundle: DataBundle, size: int, ood_size: int,
                 device: torch.device) -> None:
        t = bundle.input_shape[0]
        self.device = device
        kept = np.flatnonzero(bundle.y_test.reshape(-1).numpy() != IGNORE_INDEX)
        self.test_pos = select_positions(_in_few_sequences(kept, t, size, PROBE_SEED), size,
                                         PROBE_SEED)
        n_ood = len(bundle.x_ood) if bundle.x_ood is not None else 0
        every = np.arange(n_ood * t)
        self.ood_pos = (select_positions(_in_few_sequences(every, t, ood_size, PROBE_SEED + 1),
                                         ood_size, PROBE_SEED + 1)
                        if n_ood and ood_size else np.zeros(0, dtype=np.int64))
        self.parts = [(bundle.x_test, self.test_pos)]
        if len(self.ood_pos):
            self.parts.append((bundle.x_ood, self.ood_pos))
        y = bundle.y_test.reshape(-1)[torch.from_numpy(self.test_pos)]
        self.labels = torch.cat([y, torch.full((len(self.ood_pos),), -1, dtype=torch.long)])
        info = bundle.info
        self.class_ids = select_class_subset(bundle.num_classes, info.get("groups"),
                                             info.get("freq_bucket"), CLASS_SUBSET)
        lab = self.labels.numpy()
        self.arrays: dict[str, np.ndarray] = {
            "labels": lab, "index": np.r_[self.test_pos, self.ood_pos],
            "is_ood": lab < 0, "class_ids": self.class_ids,
            "context": np.concatenate([contexts(x, pos, CONTEXT) for x, pos in self.parts]),
        }
        safe = np.where(lab >= 0, lab, 0)
        for key, name in (("groups", "group"), ("freq_bucket", "freq_bucket")):
            if key in info:
                self.arrays[name] = np.where(lab >= 0, np.asarray(info[key])[safe], -1)
        if bundle.truth is not None and "groups" in info:
            from ..data.synonyms import positions_kind

            seqs = np.unique(self.test_pos // t)
            row = np.searchsorted(seqs, self.test_pos // t)
            kind = np.empty(len(self.test_pos), dtype=np.int64)
            groups = torch.as_tensor(info["groups"])
            per = max(1, LAW_BUDGET // (t * bundle.num_classes))  # the [s, T, V] float64 law
            for i in range(0, len(seqs), per):  # of all S sequences was 32 GB at V = 10^6
                law = bundle.truth(bundle.x_test[torch.from_numpy(seqs[i : i + per])])
                sel = (row >= i) & (row < i + per)
                law_at = law[torch.from_numpy(row[sel] - i),
                             torch.from_numpy(self.test_pos[sel] % t)]  # [p, V]
                kind[sel] = positions_kind(law_at, groups).numpy()
            self.arrays["kind"] = np.r_[kind, np.full(len(self.ood_pos), -1)]

    @torch.no_grad()
    def run(self, model) -> tuple[Tensor, Tensor, Tensor]:
        """Features ``[P, D]``, logits ``[P, V]`` and labels ``[P]`` of the probe positions, in
        eval mode (the head runs on the gathered positions only)."""
        was = model.training
        model.eval()
        try:
            feats = []
            for x, pos in self.parts:
                t = x.shape[1]
                seqs = np.unique(pos // t)
                row = torch.from_numpy(np.searchsorted(seqs, pos // t))
                col = torch.from_numpy(pos % t)
                got = []
                for i in range(0, len(seqs), CHUNK):
                    xb = x[torch.from_numpy(seqs[i : i + CHUNK])].to(self.device)
                    got.append(model.features(xb).float())  # [b, T, D]
                f = torch.cat(got)  # [S, T, D]
                feats.append(f[row.to(f.device), col.to(f.device)])
            f = torch.cat(feats)  # [P, D]
            return f, model.head(f).float(), self.labels.to(f.device)
        finally:
            model.train(was)

    def class_vectors(self, head) -> np.ndarray:
        """``[K, D]`` float16: the class vectors of the fixed token subset."""
        v = head.class_vectors.detach()[torch.from_numpy(self.class_ids).to(
            head.class_vectors.device)]
        return v.half().cpu().numpy()
