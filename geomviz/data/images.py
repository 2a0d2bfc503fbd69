"""Image datasets read from local files: CIFAR-10/100 (python pickles) and SVHN (.mat)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from .base import DataError

__all__ = ["cifar", "svhn"]

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


def cifar(data_dir: Path | None, which: str) -> dict:
    """CIFAR-10/100 from the python pickles; CIFAR-100 adds ``groups`` (the superclass of each
    fine class) when its pickles carry ``coarse_labels``."""
    groups, coarse = None, []
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
        meta = _unpickle(folder / "meta")
        names = [n.decode() for n in meta[b"fine_label_names"]]
        label = b"fine_labels"
        if b"coarse_labels" in parts[0]:  # the 20 superclasses (always in the real files)
            groups = _superclasses([parts[0], test], len(names))
            coarse = [n.decode() for n in meta.get(b"coarse_label_names", [])]

    def images(d):
        return np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)

    out = {"x": np.concatenate([images(p) for p in parts]),
           "y": np.concatenate([np.asarray(p[label]) for p in parts]),
           "x_test": images(test), "y_test": np.asarray(test[label]), "names": names}
    if groups is not None:
        out["groups"] = groups
        if coarse:
            out["group_names"] = coarse
    return out


def _superclasses(splits: list[dict], num_classes: int) -> np.ndarray:
    """The superclass of each fine class ``[C]`` read off the (fine, coarse) label pairs;
    -1 for a class no split shows. A fine class under two superclasses is a bad file."""
    groups = np.full(num_classes, -1, dtype=np.int64)
    for d in splits:
        if b"coarse_labels" not in d:
            continue
        fine = np.asarray(d[b"fine_labels"], dtype=np.int64)
        coarse = np.asarray(d[b"coarse_labels"], dtype=np.int64)
        if len(fine) != len(coarse) or (len(fine) and fine.max() >= num_classes):
            raise DataError("cifar100: fine_labels and coarse_labels do not match")
        for f in np.unique(fine):
            seen = np.unique(coarse[fine == f])
            if len(seen) > 1 or (groups[f] >= 0 and groups[f] != seen[0]):
                raise DataError(f"cifar100: fine class {f} lies in two superclasses")
            groups[f] = seen[0]
    return groups


def svhn(data_dir: Path | None) -> dict:
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


