"""What every dataset returns: in-memory splits (:class:`DataBundle`), one error type, the cache."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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


