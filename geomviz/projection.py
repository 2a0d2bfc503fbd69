"""Projections of the manifold snapshots to 2-D, precomputed and cached on disk.

Never computed inside a web request: ``geomviz project RUNS...`` (or a background
job) fills the cache, and the dashboard and the figure export read it.

* ``pca``: one basis fitted jointly on every run and every snapshot step given,
  so axes and scale are comparable across runs and over time (norm growth shows);
* ``aligned_umap``: umap-learn's AlignedUMAP over one run's snapshot steps, with
  identity relations on the fixed probe set, so points move smoothly;
* ``polar``: radius ``||x||`` and angle ``arccos(cos θ_y)`` to the true class
  (computed from the stored snapshot arrays; nothing to fit).

A cache file is keyed by the method, its parameters and, for every run, its
folder and snapshot steps: new snapshots of a live run give a new key.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .store import open_run

__all__ = ["Snapshots", "load_snapshots", "pca_joint", "aligned_umap", "polar", "project",
           "METHODS", "CACHE_DIR", "cache_path", "temporaries"]

METHODS = ("pca", "aligned_umap", "fast_umap", "polar")
CACHE_DIR = ".projections"
TMP_SUFFIX = ".tmp.npz"  # a cache file being written: <name>.<random>.tmp.npz
#: Bumped when a method's output changes, so caches written by older code are not reused
#: (fast_umap 2: later runs are moved onto the first run's centre, not the origin).
_REVISION = {"fast_umap": 2}


@dataclass
class Snapshots:
    """One run's snapshots at ``steps[T]``: per-sample arrays ``extra[name][T, P]``,
    ``labels[P]`` (-1 for OOD) and, once :meth:`load_features` ran, ``features[T, P, D]``."""

    folder: Path
    steps: np.ndarray
    labels: np.ndarray
    extra: dict[str, np.ndarray]
    features: np.ndarray | None = None

    def load_features(self) -> np.ndarray:
        """The float16 features as float32 (read only when a projection must be computed)."""
        if self.features is None:
            with open_run(self.folder) as run:
                feats = run.arrays("snapshot.features")
            self.features = np.stack([feats[int(s)] for s in self.steps]).astype(np.float32)
        return self.features


def load_snapshots(folder: str | Path, features: bool = True) -> Snapshots:
    """A run's snapshots; ``features=False`` skips the (large) feature arrays."""
    with open_run(folder) as run:
        steps = np.array(run.array_steps("snapshot.features"), dtype=np.int64)
        if not len(steps):
            raise ValueError(f"{folder} has no snapshots (trained with --snapshots 0?)")
        labels = run.arrays("snapshot.labels").get(0)
        extra = {}
        for name in _per_sample_names(run):
            arr = run.arrays(f"snapshot.{name}")
            if all(int(s) in arr for s in steps) and all(
                    arr[int(s)].ndim == 1 for s in steps):
                extra[name] = np.stack([arr[int(s)] for s in steps])
    if labels is None:
        size = next(iter(extra.values())).shape[1] if extra else 0
        labels = np.zeros(size, dtype=np.int64)
    snap = Snapshots(Path(folder), steps, np.asarray(labels), extra)
    if features:
        snap.load_features()
    return snap


KNOWN = ("norm", "cos_true", "true", "top_negative", "margin", "entropy_pred", "entropy_target")
_NOT_PER_SAMPLE = {"features", "logits", "labels", "index", "is_ood", "context", "class_vectors",
                   "class_ids"}


def _per_sample_names(run) -> list[str]:
    """The known per-sample snapshot arrays, then any other the run stores (a language-model
    run's token groups, say), so the views stay generic over what a snapshot holds."""
    stored = {n.split(".", 1)[1] for n in run.array_names("snapshot.")}
    return [n for n in KNOWN if n in stored] + sorted(stored - set(KNOWN) - _NOT_PER_SAMPLE)


def pca_joint(snaps: list[Snapshots], n_components: int = 2) -> list[np.ndarray]:
    """Project every run's snapshots on one PCA basis fitted on all of them: ``[T, P, 2]`` each.

    The basis is the top eigenvectors of the joint covariance (float64, [D, D]), which is
    the SVD's answer at a fraction of its cost for many points in few dimensions.
    """
    feats = [torch.from_numpy(s.load_features().reshape(-1, s.load_features().shape[-1]))
             for s in snaps]
    n = sum(len(f) for f in feats)
    mean = sum(f.double().sum(0) for f in feats) / n
    cov = sum((f.double() - mean).T @ (f.double() - mean) for f in feats) / n  # [D, D]
    _, vecs = torch.linalg.eigh(cov)
    basis = vecs[:, -n_components:].flip(1).T  # [k, D], largest variance first
    # a deterministic sign per axis: the largest-magnitude loading is positive
    sign = torch.sign(basis.gather(1, basis.abs().argmax(1, keepdim=True))).squeeze(1)
    basis = basis * sign[:, None]
    return [((torch.from_numpy(s.load_features()).double() - mean) @ basis.T).float().numpy()
            for s in snaps]


def aligned_umap(snap: Snapshots, n_neighbors: int = 15, n_epochs: int = 100,
                 alignment_regularisation: float = 0.01, random_state: int = 0) -> np.ndarray:
    """AlignedUMAP over the snapshot steps with identity relations: ``[T, P, 2]``."""
    try:
        import umap
    except ImportError:
        raise ImportError("aligned_umap needs umap-learn: pip install 'geomviz[dashboard]' "
                          "(or pip install umap-learn)") from None
    _quiet_umap()
    features = snap.load_features()
    identity = {i: i for i in range(features.shape[1])}
    slices = list(features)
    if len(slices) == 1:  # AlignedUMAP needs two slices; one snapshot is a plain UMAP
        emb = umap.UMAP(n_neighbors=n_neighbors, n_epochs=n_epochs,
                        random_state=random_state).fit_transform(slices[0])
        return emb[None].astype(np.float32)
    model = umap.AlignedUMAP(n_neighbors=n_neighbors, n_epochs=n_epochs,
                             alignment_regularisation=alignment_regularisation,
                             random_state=random_state)
    model.fit(slices, relations=[identity] * (len(slices) - 1))
    return np.stack(model.embeddings_).astype(np.float32)


def fast_aligned_umap(snaps: list[Snapshots], n_neighbors: int = 15, first_epochs: int = 200,
                      n_epochs: int = 50, alpha: float = 0.02, random_state: int = 0,
                      threads: int = 2) -> list[np.ndarray]:
    """Aligned UMAP in seconds: each step's UMAP starts from the previous step's layout.

    Per step: exact kNN (torch, [P, P] distances), UMAP's fuzzy graph, then ``n_epochs``
    of its layout optimisation at a low learning rate ``alpha`` from the previous layout,
    so points move only as far as their neighbourhoods change (the first step gets
    ``first_epochs`` from a spectral start). Runs go on ``threads`` threads; every run
    after the first is turned (orthogonal Procrustes on its last step, over the shared
    probe examples) to face the first, so both sides read the same way. ``[T, P, 2]`` each.
    """
    _quiet_umap()
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, threads)) as pool:
        out = list(pool.map(lambda s: _warm_umap(s.load_features(), n_neighbors, first_epochs,
                                                 n_epochs, alpha, random_state), snaps))
    ref = out[0][-1] - out[0][-1].mean(0)
    for i in range(1, len(out)):
        if out[i].shape[1] != ref.shape[0]:
            continue  # different probe sets: nothing to align on
        last = out[i][-1] - out[i][-1].mean(0)
        u, _, vt = np.linalg.svd(last.T.astype(np.float64) @ ref)  # [2, 2]
        out[i] = ((out[i] - out[i][-1].mean(0)) @ (u @ vt).astype(np.float32)
                  + out[0][-1].mean(0))  # turned about its centre, moved onto the first run's
    return out


def _warm_umap(features: np.ndarray, n_neighbors: int, first_epochs: int, n_epochs: int,
               alpha: float, seed: int) -> np.ndarray:
    """``features[T, P, D]`` -> ``[T, P, 2]``, each step warm-started from the last."""
    import umap.umap_ as U

    a, b = U.find_ab_params(1.0, 0.1)
    rng = np.random.RandomState(seed)
    prev, embs = None, []
    k = min(n_neighbors, features.shape[1] - 1)
    for x in features:
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        dist, idx = torch.cdist(xt, xt).topk(k, largest=False)  # [P, k] incl. self at 0
        graph, _, _ = U.fuzzy_simplicial_set(x, k, rng, "euclidean",
                                             knn_indices=idx.numpy().astype(np.int64),
                                             knn_dists=dist.numpy().astype(np.float32))
        if prev is None:
            emb, _ = U.simplicial_set_embedding(x, graph, 2, 1.0, a, b, 1.0, 5, first_epochs,
                                                "spectral", rng, "euclidean", {}, False, {},
                                                False)
        else:  # umap rescales its start into [0, 10]²: do it here and undo it after
            lo, span = prev.min(0), np.maximum(np.ptp(prev, 0), 1e-12)
            emb, _ = U.simplicial_set_embedding(x, graph, 2, alpha, a, b, 1.0, 5, n_epochs,
                                                (prev - lo) * (10.0 / span), rng, "euclidean",
                                                {}, False, {}, False)
            emb = emb * (span / 10.0) + lo
        prev = emb.astype(np.float32)
        embs.append(prev)
    return np.stack(embs)


def _quiet_umap() -> None:
    """umap warns about n_jobs whenever a seed is set; that is expected, not for the log."""
    import warnings

    warnings.filterwarnings("ignore", message=".*n_jobs value.*overridden.*")
    warnings.filterwarnings("ignore", message=".*gradient function is not yet implemented.*")


def polar(snap: Snapshots) -> np.ndarray:
    """``[T, P, 2]``: (radius ||x||, angle arccos(cos θ_y) in radians)."""
    if "norm" not in snap.extra or "cos_true" not in snap.extra:
        raise ValueError(f"{snap.folder}: snapshots lack norm/cos_true for the polar view")
    return np.stack([snap.extra["norm"], np.arccos(np.clip(snap.extra["cos_true"], -1, 1))],
                    axis=-1).astype(np.float32)


def _key(method: str, params: dict, snaps: list[Snapshots]) -> str:
    ident = {"method": method, "params": params,
             **({"revision": _REVISION[method]} if method in _REVISION else {}),
             "runs": [[str(s.folder.resolve()), s.steps.tolist()] for s in snaps]}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(root: str | Path, method: str, params: dict, snaps: list[Snapshots]) -> Path:
    """The file under ``root`` that caches ``method`` with ``params`` of these snapshots
    (what :func:`project` reads and writes; background jobs clean up after it)."""
    return Path(root) / CACHE_DIR / f"{method}-{_key(method, params, snaps)}.npz"


def temporaries(path: Path) -> list[Path]:
    """The temporaries an interrupted write of cache file ``path`` left (:func:`_save`'s)."""
    return sorted(path.parent.glob(f"{path.stem}.*{TMP_SUFFIX}"))


def project(folders: list[str | Path], method: str = "pca", cache_root: str | Path | None = None,
            cached_only: bool = False, **params) -> list[np.ndarray]:
    """Cached projection of the runs' snapshots, one ``[T, P, 2]`` array per run.

    ``pca`` is fitted jointly on all ``folders``; the other methods run per run.
    The cache lives in ``cache_root`` (default: the first run's parent folder)
    under ``.projections/``; it is written atomically. ``cached_only`` raises
    ``LookupError`` instead of computing (what a web request does for UMAP).
    """
    if method not in METHODS:
        raise ValueError(f"unknown projection {method!r}; choose one of: {', '.join(METHODS)}")
    snaps = [load_snapshots(f, features=False) for f in folders]  # features only on a miss
    root = Path(cache_root) if cache_root else Path(folders[0]).resolve().parent
    path = cache_path(root, method, params, snaps)
    with _computing(path):  # concurrent requests for one projection: one computes
        if path.exists():
            with np.load(path) as f:
                return [f[f"run{i}"] for i in range(len(snaps))]
        if cached_only:
            raise LookupError(f"{method} is not computed yet for these runs: run geomviz project")
        out = _compute(method, snaps, params)
        _save(path, out)
    return out


def _compute(method: str, snaps: list[Snapshots], params: dict) -> list[np.ndarray]:
    if method == "pca":
        return pca_joint(snaps, **params)
    if method == "polar":
        return [polar(s) for s in snaps]
    if method == "fast_umap":
        return fast_aligned_umap(snaps, **params)
    return [aligned_umap(s, **params) for s in snaps]


_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@contextmanager
def _computing(path: Path):
    """Serialise work on one cache file within this process (the others wait, then read it);
    across processes the atomic rename keeps readers from ever seeing half a file."""
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(path, threading.Lock())
    with lock:
        yield


def _save(path: Path, out: list[np.ndarray]) -> None:
    """Write to a unique temporary in the target folder, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{f"run{i}": a for i, a in enumerate(out)})
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
