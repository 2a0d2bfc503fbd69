"""What every dataset returns: in-memory splits (:class:`DataBundle`), one error type, the cache."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["DataError", "DataBundle", "cache_dir", "CIFAR_MEAN", "CIFAR_STD", "IGNORE_INDEX"]

IGNORE_INDEX = -100  # a target no loss, metric or probe counts (padding)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class DataError(Exception):
    """A dataset that cannot be loaded (missing folder, wrong format): one clear line."""


@dataclass
class DataBundle:
    """In-memory splits. Images are uint8 ``[N, 3, 32, 32]``; vectors float32 ``[N, D]``;
    token sequences (``kind="tokens"``) int64 inputs ``[N, T]`` with next-token targets
    ``y[N, T]`` (-100 where ignored) and OOD inputs ``x_ood[M, T]``, one class per vocabulary
    entry (``class_names`` are the token strings).

    ``truth``, where a generated language knows it, maps input tokens ``[B, T]`` to the exact
    next-token law ``[B, T, V]`` (float64) given everything the model sees.
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    class_names: list[str]
    kind: str  # "vector" | "image" | "tokens"
    x_ood: Tensor | None = None
    ood_name: str | None = None
    info: dict = field(default_factory=dict)
    x_ood_near: Tensor | None = None  # a second OOD set, scored but not snapshotted
    near_ood_name: str | None = None
    truth: Callable[[Tensor], Tensor] | None = None  # tokens [B, T] -> law [B, T, V]
    # label noise (see geomviz.data.noise): which training labels were flipped, and the
    # labels before flipping; None when no label was flipped on purpose
    noisy: Tensor | None = None  # [N] bool
    y_train_clean: Tensor | None = None  # [N] int64

    @property
    def noisy_index(self) -> np.ndarray:
        """Indices of the flipped training samples (empty without label noise)."""
        if self.noisy is None:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self.noisy.numpy()).astype(np.int64)

    @property
    def groups(self) -> np.ndarray | None:
        """The group of each class ``[C]`` (synonym set, CIFAR-100 superclass, Gaussian
        superclass), -1 where unknown; None when the dataset declares none. Kept in
        ``info["groups"]`` so the run's metadata carries it."""
        g = self.info.get("groups")
        return None if g is None else np.asarray(g, dtype=np.int64)

    @property
    def class_dissimilarity(self) -> np.ndarray | None:
        """A known dissimilarity between classes ``[C, C]``: the distances between the true
        means where they are known (``info["class_dissimilarity"]``), else 0 for classes of one
        group and 1 across groups (NaN where a group is unknown); None without either."""
        d = self.info.get("class_dissimilarity")
        if d is not None:
            return np.asarray(d, dtype=np.float64)
        g = self.groups
        if g is None:
            return None
        out = (g[:, None] != g[None, :]).astype(np.float64)
        out[(g[:, None] < 0) | (g[None, :] < 0)] = np.nan
        return out

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def prepare(self, x: Tensor) -> Tensor:
        """A batch as the model sees it: float32, images scaled and normalised per channel."""
        if self.kind == "tokens":
            return x
        if self.kind != "image":
            return x.float()
        mean = torch.tensor(CIFAR_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR_STD, device=x.device).view(1, 3, 1, 1)
        return (x.float() / 255.0 - mean) / std


def cache_dir() -> Path:
    return Path(os.environ.get("GEOMVIZ_CACHE", Path.home() / ".cache" / "geomviz"))


