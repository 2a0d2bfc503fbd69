"""Vector datasets: MNIST-1D (generated offline by the ``mnist1d`` package, cached) and the
synthetic ``gaussians`` with deliberately overlapping class pairs and a known posterior."""

from __future__ import annotations

import os

import numpy as np

from .base import DataError, cache_dir

__all__ = ["mnist1d", "gaussians", "gaussians_hier", "bayes_posterior", "mean_distances"]

MNIST1D_VERSION = "v1"  # bump if the generation arguments below change


def mnist1d() -> dict:
    """The package's default MNIST-1D (4000 train / 1000 test, 40 features), cached."""
    path = cache_dir() / f"mnist1d-{MNIST1D_VERSION}.npz"
    if path.exists():
        try:
            with np.load(path) as f:
                return {k: f[k] for k in f.files}
        except Exception:  # noqa: BLE001 - a damaged cache is regenerated
            path.unlink(missing_ok=True)
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise DataError("mnist1d needs the mnist1d package: pip install mnist1d") from None
    raw = make_dataset(get_dataset_args())  # offline: generated from templates, no download
    out = {"x": raw["x"], "y": raw["y"], "x_test": raw["x_test"], "y_test": raw["y_test"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(path)  # atomic: concurrent runs never read half a file
    return out


def _sample(g: np.random.Generator, centres: np.ndarray, n_train: int, n_test: int,
            far_radius: float):
    """Unit-variance draws around ``centres[C, D]`` (train, then test: labels uniform), and an
    OOD blob of ``n_test`` points centred ``far_radius`` from the origin; draw order fixed."""
    num_classes, dim = centres.shape

    def draw(n):
        y = g.integers(0, num_classes, n)
        return (centres[y] + g.standard_normal((n, dim))).astype(np.float32), y

    x, y = draw(n_train)
    xt, yt = draw(n_test)
    far = g.standard_normal(dim)
    far *= far_radius / np.linalg.norm(far)
    x_ood = (far + g.standard_normal((n_test, dim))).astype(np.float32)
    return x, y, xt, yt, x_ood


def gaussians(num_classes: int = 10, dim: int = 32, n_train: int = 4000, n_test: int = 1000,
               hard_pairs: int = 2, hard_distance: float = 1.0, far_distance: float = 6.0,
               seed: int = 0) -> dict:
    """Unit-variance classes; pairs (0,1), (2,3), ... are ``hard_distance`` apart, the
    rest ``far_distance``. OOD samples come from a blob away from every class."""
    if not 0 <= 2 * hard_pairs <= num_classes:
        raise DataError(f"gaussians: {hard_pairs} hard pairs need >= {2 * hard_pairs} classes")
    g = np.random.default_rng(seed)
    anchors = g.standard_normal((num_classes, dim))
    anchors *= far_distance / np.sqrt(2) / np.linalg.norm(anchors, axis=1, keepdims=True)
    centres = anchors.copy()
    for p in range(hard_pairs):
        a, b = 2 * p, 2 * p + 1
        direction = g.standard_normal(dim)
        direction /= np.linalg.norm(direction)
        centres[b] = centres[a] + hard_distance * direction

    x, y, xt, yt, x_ood = _sample(g, centres, n_train, n_test, 3 * far_distance)
    pairs = [[2 * p, 2 * p + 1] for p in range(hard_pairs)]
    return {"x": x, "y": y, "x_test": xt, "y_test": yt, "x_ood": x_ood, "hard_pairs": pairs,
            "centres": centres, "hard_distance": hard_distance, "far_distance": far_distance}


def mean_distances(centres: np.ndarray) -> np.ndarray:
    """Euclidean distances ``[C, C]`` between the true class means ``centres[C, D]``."""
    c = np.asarray(centres, dtype=np.float64)
    return np.sqrt(np.maximum(((c[:, None, :] - c[None, :, :]) ** 2).sum(-1), 0.0))


def gaussians_hier(superclasses: int = 5, per_super: int = 4, dim: int = 32,
                   n_train: int = 4000, n_test: int = 1000, super_distance: float = 8.0,
                   spread: float = 2.0, seed: int = 0) -> dict:
    """A two-level hierarchy of unit-variance classes, for the semantic-structure claim.

    ``superclasses`` superclass means about ``super_distance`` apart (random directions at
    radius ``super_distance / sqrt 2``); each has ``per_super`` subclasses whose means lie
    ``spread`` from it in random directions (so about ``spread·sqrt 2`` from each other:
    overlapping siblings, distant cousins). Class k belongs to superclass ``k // per_super``
    (``groups``); ``centres`` are the true means. A far blob is the OOD split.
    """
    if superclasses < 2 or per_super < 1:
        raise DataError("gaussians_hier needs >= 2 superclasses of >= 1 class each")
    g = np.random.default_rng([int(seed), 0x68696572])  # "hier": not the gaussians' stream
    supers = g.standard_normal((superclasses, dim))
    supers *= super_distance / np.sqrt(2) / np.linalg.norm(supers, axis=1, keepdims=True)
    offsets = g.standard_normal((superclasses, per_super, dim))
    offsets *= spread / np.linalg.norm(offsets, axis=2, keepdims=True)
    centres = (supers[:, None, :] + offsets).reshape(-1, dim)  # [S·P, D]

    x, y, xt, yt, x_ood = _sample(g, centres, n_train, n_test, 3 * super_distance)
    return {"x": x, "y": y, "x_test": xt, "y_test": yt, "x_ood": x_ood, "centres": centres,
            "groups": np.repeat(np.arange(superclasses), per_super),
            "group_names": [f"s{i}" for i in range(superclasses)]}


def bayes_posterior(name: str, seed: int, test_index: np.ndarray,
                    held_out: list[int] | tuple[int, ...] = ()) -> np.ndarray:
    """The true class posterior ``[N, C]`` of test examples ``test_index`` (ground truth).

    Only the synthetic ``gaussians`` have one: classes are equally likely, unit-variance
    isotropic Gaussians, so ``p(y=k | x) = softmax_k(-||x - c_k||^2 / 2)`` exactly.
    With ``held_out`` classes, indices and columns are those of the trained classes
    (as :func:`load_dataset` numbers them), and the posterior is conditioned on them.
    """
    if name != "gaussians":
        raise DataError(f"{name} has no known posterior; only gaussians do")
    raw = gaussians(seed=seed)
    keep = np.setdiff1d(np.arange(len(raw["centres"])), np.asarray(held_out, dtype=np.int64))
    rows = np.flatnonzero(np.isin(raw["y_test"], keep))[np.asarray(test_index, dtype=np.int64)]
    x = raw["x_test"][rows].astype(np.float64)  # [N, D]
    d = ((x[:, None, :] - raw["centres"][keep][None]) ** 2).sum(-1)  # [N, C]
    logits = -d / 2
    logits -= logits.max(1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True)


