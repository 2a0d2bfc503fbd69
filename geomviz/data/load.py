"""Datasets: each gives train/test splits, class names and, where one exists, an OOD split.

Nothing is downloaded at run time:

* ``mnist1d`` is generated offline by the ``mnist1d`` package (``make_dataset``)
  and cached under ``$GEOMVIZ_CACHE`` (default ``~/.cache/geomviz``);
* ``cifar10`` / ``cifar100`` are read from the standard python-pickle folders,
  ``svhn`` from ``train_32x32.mat`` / ``test_32x32.mat``, all under ``--data-dir``;
* ``gaussians`` is a synthetic mixture with deliberately overlapping class pairs
  (``info["hard_pairs"]``), for ground-truth checks of the target-entropy claim;
  ``gaussians_hier`` a two-level hierarchy (5 superclasses of 4 classes), for the
  semantic-structure claim.

Class structure: ``info["groups"]`` (the group of each class: CIFAR-100's 20 superclasses,
``gaussians_hier``'s superclasses, the synonym sets of ``synonyms``) and, where the true
means are known (both Gaussian sets), ``info["class_dissimilarity"]`` (distances between
them); see :attr:`DataBundle.groups` and :attr:`DataBundle.class_dissimilarity`.

OOD: ``ood_classes`` holds classes out of training (their test examples become the
OOD split and the remaining labels are renumbered), and ``ood_dataset`` adds a
dataset-level OOD split (e.g. SVHN for CIFAR-10).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .base import DataBundle, DataError
from .images import cifar, svhn
from .vectors import gaussians, gaussians_hier, mean_distances, mnist1d

__all__ = ["DATASETS", "TOKEN_DATASETS", "GROUPED_DATASETS", "DIR_DATASETS", "load_dataset",
           "load_tokens"]

DATASETS = ("mnist1d", "gaussians", "gaussians_hier", "cifar10", "cifar100", "svhn",
            "synonyms", "text")
TOKEN_DATASETS = ("synonyms", "text")
GROUPED_DATASETS = ("cifar100", "gaussians_hier", "synonyms")  # datasets that declare groups
DIR_DATASETS = ("cifar10", "cifar100", "svhn")  # read from files under --data-dir


def _raw(name: str, data_dir: Path | None, seed: int) -> tuple[dict, list[str], str]:
    if name == "mnist1d":
        return mnist1d(), [str(i) for i in range(10)], "vector"
    if name in ("gaussians", "gaussians_hier"):
        raw = gaussians(seed=seed) if name == "gaussians" else gaussians_hier(seed=seed)
        raw["class_dissimilarity"] = mean_distances(raw["centres"])
        return raw, [f"g{i}" for i in range(len(raw["centres"]))], "vector"
    if name in ("cifar10", "cifar100"):
        raw = cifar(data_dir, name)
        return raw, raw["names"], "image"
    if name == "svhn":
        return svhn(data_dir), [str(i) for i in range(10)], "image"
    raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")


def load_tokens(name: str, seed: int = 0, *, data_path: str | None = None,
                ood_data_path: str | None = None, tokenizer: str = "bpe",
                vocab_size: int | None = None, seq_len: int = 64, train_tokens: int = 262_144,
                test_tokens: int = 32_768, concepts: int = 96, max_synonyms: int = 4,
                order: int = 2, emission: str = "uniform",
                progress: bool | None = None) -> DataBundle:
    """A language-model dataset: ``synonyms`` (generated from ``seed``, with its exact
    next-token law) or ``text`` (the UTF-8 file ``data_path``, BPE or bytes). ``progress``:
    show a BPE tokenizer's training on stderr (default: when stderr is a terminal)."""
    if name == "synonyms":
        from .synonyms import synonyms

        return synonyms(seed, vocab_size or 256, concepts, max_synonyms, order, emission,
                        seq_len, train_tokens, test_tokens)
    if name == "text":
        if not data_path:
            raise DataError("--dataset text needs --data-path FILE (any UTF-8 text file)")
        from .text import text

        return text(data_path, ood_data_path, tokenizer, vocab_size or 4096, seq_len,
                    progress=progress)
    raise DataError(f"{name!r} is not a token dataset; choose one of: "
                    f"{', '.join(TOKEN_DATASETS)}")


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
    info = {k: raw[k] for k in ("hard_pairs", "hard_distance", "far_distance", "group_names")
            if k in raw}
    groups = None if raw.get("groups") is None else np.asarray(raw["groups"], dtype=np.int64)
    dissim = raw.get("class_dissimilarity")
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
        groups = None if groups is None else groups[keep]
        dissim = None if dissim is None else np.asarray(dissim)[np.ix_(keep, keep)]
    if groups is not None:  # plain lists: info goes into the run's JSON metadata
        info["groups"] = groups.tolist()
    if dissim is not None:
        info["class_dissimilarity"] = np.asarray(dissim, dtype=np.float64).tolist()
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
