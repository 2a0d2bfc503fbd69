"""A language-model run's token views: the class vectors its snapshots keep, on one cached
PCA basis, and the fixed token positions' static arrays decoded to text.

The class vectors (centres of a distance head, unembedding rows of a linear head) of a fixed
token subset are stored at every snapshot step (``snapshot.class_vectors[K, D]``, token ids in
``snapshot.class_ids``): where synonyms drawing apart ("tearing") would be seen. Their
projection is fitted jointly on every run and step given, so two runs share one basis, and
cached like ``geomviz.projection``'s (same folder, same atomic write, one computation for
concurrent callers).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .projection import CACHE_DIR, _computing, _save
from .store import open_run

__all__ = ["ClassVectors", "load_class_vectors", "project_class_vectors", "token_static",
           "decode_contexts", "STATIC_ARRAYS", "FREQ_NAMES", "KIND_NAMES"]

STATIC_ARRAYS = ("group", "freq_bucket", "kind", "context")  # stored once, at step 0
FREQ_NAMES = ["top 10%", "middle 40%", "rarest 50%"]  # geomviz.data.text.frequency_buckets
KIND_NAMES = ["other", "synonym set", "determined"]  # geomviz.data.synonyms.positions_kind


@dataclass
class ClassVectors:
    """One run's class vectors at ``steps[T]``: token ids ``ids[K]``, their synonym set
    ``groups[K]`` (-1 where the dataset has none), their frequency bucket ``freq[K]`` (-1 if
    unknown) and token names (``names``, may be None)."""

    folder: Path
    steps: np.ndarray
    ids: np.ndarray
    groups: np.ndarray
    freq: np.ndarray
    names: list[str] | None
    metric: str

    def vectors(self) -> np.ndarray:
        """``[T, K, D]`` float32 (read only when a projection must be computed)."""
        with open_run(self.folder) as run:
            v = run.arrays("snapshot.class_vectors")
        return np.stack([v[int(s)] for s in self.steps]).astype(np.float32)


def load_class_vectors(folder: str | Path) -> ClassVectors:
    """The run's class-vector snapshots (without the vectors); ``ValueError`` if it has none."""
    with open_run(folder) as run:
        steps = np.array(run.array_steps("snapshot.class_vectors"), dtype=np.int64)
        if not len(steps):
            raise ValueError(f"{Path(folder).name} stores no class vectors (not a language-model "
                             "run, or trained with --snapshots 0)")
        ids = run.arrays("snapshot.class_ids").get(0)
        meta = run.meta
    info = meta.get("data_info") or {}
    ids = np.arange(0) if ids is None else np.asarray(ids, dtype=np.int64)

    def per_token(key: str) -> np.ndarray:
        if info.get(key) is None:
            return np.full(len(ids), -1, dtype=np.int64)
        return np.asarray(info[key], dtype=np.int64)[ids]

    return ClassVectors(Path(folder), steps, ids, per_token("groups"), per_token("freq_bucket"),
                        meta.get("class_names"), (meta.get("probes") or {}).get("metric", "dot"))


def _key(runs: list[ClassVectors]) -> str:
    ident = {"method": "class_vectors_pca",
             "runs": [[str(r.folder.resolve()), r.steps.tolist()] for r in runs]}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def _pca(stacks: list[np.ndarray]) -> list[np.ndarray]:
    """One 2-D PCA basis (float64 covariance eigenvectors) for every ``[T, K, D]`` stack."""
    flat = [torch.from_numpy(s.reshape(-1, s.shape[-1])).double() for s in stacks]
    n = sum(len(f) for f in flat)
    mean = sum(f.sum(0) for f in flat) / n
    cov = sum((f - mean).T @ (f - mean) for f in flat) / n  # [D, D]
    _, vecs = torch.linalg.eigh(cov)
    basis = vecs[:, -2:].flip(1).T  # [2, D], largest variance first
    sign = torch.sign(basis.gather(1, basis.abs().argmax(1, keepdim=True))).squeeze(1)
    basis = basis * sign[:, None]
    return [((torch.from_numpy(s).double() - mean) @ basis.T).float().numpy() for s in stacks]


def project_class_vectors(runs: list[ClassVectors], cache_root: str | Path,
                          cached_only: bool = False) -> list[np.ndarray]:
    """``[T, K, 2]`` per run on one joint PCA basis, cached under ``cache_root/.projections``
    (keyed by the runs' folders and steps: a live run's new snapshot is a new key)."""
    path = Path(cache_root) / CACHE_DIR / f"class_vectors-{_key(runs)}.npz"
    with _computing(path):
        if path.exists():
            with np.load(path) as f:
                return [f[f"run{i}"] for i in range(len(runs))]
        if cached_only:
            raise LookupError("the class-vector projection is not computed yet")
        stacks = [r.vectors() for r in runs]
        if len({s.shape[-1] for s in stacks}) != 1:
            raise ValueError("the runs' class vectors have different widths: no common basis")
        out = _pca(stacks)
        _save(path, out)
    return out


def token_static(folder: str | Path) -> dict[str, np.ndarray]:
    """The probe positions' arrays stored once at step 0 (synonym set, frequency bucket,
    position kind, context ``[P, W]``); those the run lacks are left out."""
    out = {}
    with open_run(folder) as run:
        for name in STATIC_ARRAYS:
            a = run.arrays(f"snapshot.{name}").get(0)
            if a is not None:
                out[name] = np.asarray(a)
    return out


def decode_contexts(context: np.ndarray, labels: np.ndarray, names: list[str] | None,
                    last: int = 5) -> np.ndarray:
    """Per position: its last ``last`` context tokens and the target, as text
    (``"c3.1 c7.0 c12.2 → c40.1"``; ``?`` for the unknown target of an OOD position)."""
    def name(t: int) -> str:
        return names[t] if names and 0 <= t < len(names) else str(t)

    rows = []
    for ctx, y in zip(np.asarray(context)[:, -last:], np.asarray(labels), strict=True):
        toks = " ".join(name(int(t)) for t in ctx if t >= 0)
        rows.append(f"{toks} → {name(int(y)) if y >= 0 else '?'}")
    return np.asarray(rows, dtype=object)
