"""How a user's batch is read: its inputs, its labels (the default rule, overridable) and the
labels the head's outputs line up with (shifted by one for causal language models)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

__all__ = ["default_labels", "default_inputs", "shift_labels", "to_device", "call_model",
           "iter_batches", "LABEL_KEYS", "IGNORE_INDEX"]

IGNORE_INDEX = -100  # as torch's cross_entropy, Transformers and geomviz's losses
LABEL_KEYS = ("labels", "label", "y", "target", "targets")


def default_labels(batch: Any) -> Tensor:
    """The labels of a batch: the second item of a tuple/list ``(x, y, ...)``, or the first of
    ``labels``, ``label``, ``y``, ``target(s)`` of a dict. ``ValueError`` otherwise."""
    if isinstance(batch, (tuple, list)) and len(batch) >= 2 and isinstance(batch[1], Tensor):
        return batch[1]
    if isinstance(batch, Mapping):
        for key in LABEL_KEYS:
            if isinstance(batch.get(key), Tensor):
                return batch[key]
    raise ValueError(f"cannot find the labels in a batch of type {type(batch).__name__}: "
                     "give a tuple (x, y), a dict with 'labels', or labels=fn(batch)")


def default_inputs(batch: Any) -> Any:
    """What the model is called with: ``x`` of ``(x, y)``, or the dict without its labels."""
    if isinstance(batch, (tuple, list)):
        return batch[0]
    if isinstance(batch, Mapping):
        return {k: v for k, v in batch.items() if k not in LABEL_KEYS}
    return batch


def shift_labels(labels: Tensor) -> Tensor:
    """``[B, T]`` labels of a causal LM moved one left: the head's output at position t is
    scored against token t+1 (as Transformers' loss does); the last position is ignored."""
    pad = torch.full_like(labels[:, :1], IGNORE_INDEX)
    return torch.cat([labels[:, 1:], pad], dim=1)


def to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def call_model(model: nn.Module, inputs: Any) -> Any:
    """``model(**inputs)`` for a dict (Transformers), ``model(inputs)`` otherwise."""
    return model(**inputs) if isinstance(inputs, Mapping) else model(inputs)


def iter_batches(data: Iterable | Callable[[], Iterable] | None) -> Iterable:
    """Batches from an iterable (a DataLoader, a list) or a callable returning one."""
    if data is None:
        return ()
    data = data() if callable(data) and not hasattr(data, "__iter__") else data
    if isinstance(data, (list, tuple)) and data and all(isinstance(d, DataLoader) for d in data):
        return itertools.chain.from_iterable(data)  # several loaders (Lightning's val list)
    return data
