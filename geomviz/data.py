"""Datasets: each gives train/test splits, class names and, where one exists, an OOD split.

Nothing is downloaded at run time:

* ``mnist1d`` is generated offline by the ``mnist1d`` package (``make_dataset``)
  and cached under ``$GEOMVIZ_CACHE`` (default ``~/.cache/geomviz``);
* ``cifar10`` / ``cifar100`` are read from the standard python-pickle folders,
  ``svhn`` from ``train_32x32.mat`` / ``test_32x32.mat``, all under ``--data-dir``;
* ``gaussians`` is a synthetic mixture with deliberately overlapping class pairs
  (``info["hard_pairs"]``), for ground-truth checks of the target-entropy claim.

OOD: ``ood_classes`` holds classes out of training (their test examples become the
OOD split and the remaining labels are renumbered), and ``ood_dataset`` adds a
dataset-level OOD split (e.g. SVHN for CIFAR-10).
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["DataError", "DataBundle", "DATASETS", "load_dataset", "cache_dir", "bayes_posterior"]

DATASETS = ("mnist1d", "gaussians", "cifar10", "cifar100", "svhn")
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class DataError(Exception):
    """A dataset that cannot be loaded (missing folder, wrong format): one clear line."""


@dataclass
class DataBundle:
    """In-memory splits. Images are uint8 ``[N, 3, 32, 32]``; vectors float32 ``[N, D]``."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    class_names: list[str]
    kind: str  # "vector" | "image"
    x_ood: Tensor | None = None
    ood_name: str | None = None
    info: dict = field(default_factory=dict)
    x_ood_near: Tensor | None = None  # a second OOD set, scored but not snapshotted
    near_ood_name: str | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def prepare(self, x: Tensor) -> Tensor:
        """A batch as the model sees it: float32, images scaled and normalised per channel."""
        if self.kind != "image":
            return x.float()
        mean = torch.tensor(CIFAR_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR_STD, device=x.device).view(1, 3, 1, 1)
        return (x.float() / 255.0 - mean) / std


def cache_dir() -> Path:
    return Path(os.environ.get("GEOMVIZ_CACHE", Path.home() / ".cache" / "geomviz"))


# ----------------------------------------------------------------------------- sources
MNIST1D_VERSION = "v1"  # bump if the generation arguments below change


def _mnist1d() -> dict:
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


def _gaussians(num_classes: int = 10, dim: int = 32, n_train: int = 4000, n_test: int = 1000,
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

    def draw(n):
        y = g.integers(0, num_classes, n)
        return (centres[y] + g.standard_normal((n, dim))).astype(np.float32), y

    x, y = draw(n_train)
    xt, yt = draw(n_test)
    far = g.standard_normal(dim)
    far *= 3 * far_distance / np.linalg.norm(far)
    x_ood = (far + g.standard_normal((n_test, dim))).astype(np.float32)
    pairs = [[2 * p, 2 * p + 1] for p in range(hard_pairs)]
    return {"x": x, "y": y, "x_test": xt, "y_test": yt, "x_ood": x_ood, "hard_pairs": pairs,
            "centres": centres, "hard_distance": hard_distance, "far_distance": far_distance}


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
    raw = _gaussians(seed=seed)
    keep = np.setdiff1d(np.arange(len(raw["centres"])), np.asarray(held_out, dtype=np.int64))
    rows = np.flatnonzero(np.isin(raw["y_test"], keep))[np.asarray(test_index, dtype=np.int64)]
    x = raw["x_test"][rows].astype(np.float64)  # [N, D]
    d = ((x[:, None, :] - raw["centres"][keep][None]) ** 2).sum(-1)  # [N, C]
    logits = -d / 2
    logits -= logits.max(1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True)


def _cifar_folder(data_dir: Path | None, name: str, sub: str, files: list[str]) -> Path:
    if data_dir is None:
        raise DataError(f"{name} needs --data-dir: a folder holding {sub}/ "
                        "(the python version from https://www.cs.toronto.edu/~kriz/cifar.html)")
    for cand in (Path(data_dir) / sub, Path(data_dir)):
        if all((cand / f).exists() for f in files):
            return cand
    raise DataError(f"{name}: expected {sub}/ with {', '.join(files)} in {data_dir}")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except Exception as e:  # noqa: BLE001 - any failure is a bad file
        raise DataError(f"{path} is not a CIFAR python pickle ({type(e).__name__})") from None


def _cifar(data_dir: Path | None, which: str) -> dict:
    if which == "cifar10":
        train_files = [f"data_batch_{i}" for i in range(1, 6)]
        folder = _cifar_folder(data_dir, which, "cifar-10-batches-py",
                               [*train_files, "test_batch", "batches.meta"])
        parts = [_unpickle(folder / f) for f in train_files]
        test = _unpickle(folder / "test_batch")
        names = [n.decode() for n in _unpickle(folder / "batches.meta")[b"label_names"]]
        label = b"labels"
    else:
        folder = _cifar_folder(data_dir, which, "cifar-100-python", ["train", "test", "meta"])
        parts = [_unpickle(folder / "train")]
        test = _unpickle(folder / "test")
        names = [n.decode() for n in _unpickle(folder / "meta")[b"fine_label_names"]]
        label = b"fine_labels"

    def images(d):
        return np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)

    return {"x": np.concatenate([images(p) for p in parts]),
            "y": np.concatenate([np.asarray(p[label]) for p in parts]),
            "x_test": images(test), "y_test": np.asarray(test[label]), "names": names}


def _svhn(data_dir: Path | None) -> dict:
    if data_dir is None:
        raise DataError("svhn needs --data-dir: a folder holding train_32x32.mat and "
                        "test_32x32.mat (http://ufldl.stanford.edu/housenumbers/)")
    from scipy.io import loadmat

    out = {}
    for split, key in (("train", "x"), ("test", "x_test")):
        path = Path(data_dir) / f"{split}_32x32.mat"
        if not path.exists():
            raise DataError(f"svhn: expected {path.name} in {data_dir}")
        try:
            mat = loadmat(path)
            x = np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1)), dtype=np.uint8)
            y = np.asarray(mat["y"]).reshape(-1).astype(np.int64) % 10  # label 10 is digit 0
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{path} is not an SVHN .mat file ({type(e).__name__})") from None
        out[key], out["y" if split == "train" else "y_test"] = x, y
    return out


# ----------------------------------------------------------------------------- assembly
def _raw(name: str, data_dir: Path | None, seed: int) -> tuple[dict, list[str], str]:
    if name == "mnist1d":
        return _mnist1d(), [str(i) for i in range(10)], "vector"
    if name == "gaussians":
        raw = _gaussians(seed=seed)
        return raw, [f"g{i}" for i in range(len(raw["centres"]))], "vector"
    if name in ("cifar10", "cifar100"):
        raw = _cifar(data_dir, name)
        return raw, raw["names"], "image"
    if name == "svhn":
        return _svhn(data_dir), [str(i) for i in range(10)], "image"
    raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")


def load_dataset(name: str = "mnist1d", data_dir: str | Path | None = None,
                 ood_classes: tuple[int, ...] = (), ood_dataset: str | None = None,
                 ood_dir: str | Path | None = None, seed: int = 0,
                 near_ood_dataset: str | None = None,
                 near_ood_dir: str | Path | None = None) -> DataBundle:
    """Load ``name``; hold out ``ood_classes``; add ``ood_dataset``'s test split as OOD
    and ``near_ood_dataset``'s as a second OOD set."""
    raw, names, kind = _raw(name, Path(data_dir) if data_dir else None, seed)
    x, y = np.asarray(raw["x"]), np.asarray(raw["y"]).astype(np.int64)
    xt, yt = np.asarray(raw["x_test"]), np.asarray(raw["y_test"]).astype(np.int64)
    for split, labels, inputs in (("train", y, x), ("test", yt, xt)):
        if len(labels) != len(inputs):
            raise DataError(f"{name} {split}: {len(inputs)} inputs but {len(labels)} labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
            raise DataError(f"{name} {split}: labels outside 0..{len(names) - 1}")
    x_ood, ood_name = raw.get("x_ood"), ("far blob" if "x_ood" in raw else None)
    info = {k: raw[k] for k in ("hard_pairs", "hard_distance", "far_distance") if k in raw}
    held = sorted({int(c) for c in ood_classes})
    if held:
        bad = [c for c in held if not 0 <= c < len(names)]
        if bad or len(held) >= len(names) - 1:
            raise DataError(f"--ood-classes {held}: need classes in 0..{len(names) - 1} "
                            "and at least 2 left to train on")
        keep = [c for c in range(len(names)) if c not in held]
        remap = np.full(len(names), -1, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        x_ood, ood_name = xt[np.isin(yt, held)], f"held-out classes {held}"
        x, y = x[remap[y] >= 0], remap[y][remap[y] >= 0]
        xt, yt = xt[remap[yt] >= 0], remap[yt][remap[yt] >= 0]
        names = [names[c] for c in keep]
        info["held_out_classes"] = held
        if "hard_pairs" in info:
            info["hard_pairs"] = [[int(remap[a]), int(remap[b])] for a, b in info["hard_pairs"]
                                  if remap[a] >= 0 and remap[b] >= 0]
    def other_test(other_name: str, folder) -> np.ndarray:
        other = load_dataset(other_name, folder or data_dir, seed=seed)
        if other.input_shape != tuple(x.shape[1:]):
            raise DataError(f"{other_name} inputs {other.input_shape} do not match "
                            f"{name} inputs {tuple(x.shape[1:])}")
        return other.x_test.numpy()

    if ood_dataset:
        x_ood, ood_name = other_test(ood_dataset, ood_dir), ood_dataset
    x_near = other_test(near_ood_dataset, near_ood_dir) if near_ood_dataset else None
    dtype = np.uint8 if kind == "image" else np.float32
    return DataBundle(
        name=name, kind=kind, class_names=list(names),
        x_train=torch.from_numpy(np.ascontiguousarray(x, dtype=dtype)),
        y_train=torch.from_numpy(y), x_test=torch.from_numpy(np.ascontiguousarray(xt, dtype=dtype)),
        y_test=torch.from_numpy(yt),
        x_ood=None if x_ood is None else torch.from_numpy(np.ascontiguousarray(x_ood, dtype=dtype)),
        ood_name=ood_name, info=info,
        x_ood_near=None if x_near is None else
        torch.from_numpy(np.ascontiguousarray(x_near, dtype=dtype)),
        near_ood_name=near_ood_dataset)
