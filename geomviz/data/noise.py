"""Label noise: flip a fixed fraction of training labels, reproducibly from the seed.

Why: the claim that TFSD "caps the gradients for outliers" needs outliers whose identity is
known. Flipped labels are such outliers, and the per-sample gradient probes and
``train_eval.memorised`` compare them with the clean samples.

* ``symmetric``: each chosen sample gets a label drawn uniformly from the *other* classes
  (never its own, so the flipped fraction is exactly the requested one).
* ``pairs``: class k goes to its fixed partner (k + 1) mod K, the usual asymmetric
  "pair-flip" noise (Han et al., 2018, Co-teaching): every flipped k lands in one class.

Exactly ``round(rate · N)`` samples are flipped, chosen uniformly without replacement. The
draw uses its own numpy generator seeded from ``(seed, a fixed tag)``: it does not touch or
depend on torch's global RNG, the objective or anything else, so every objective of a seed
trains on the same flipped labels. Labels are flipped after held-out classes are removed
and renumbered (flips stay among the trained classes).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from .base import DataBundle, DataError

__all__ = ["apply_label_noise", "flip_labels", "NOISE_MODES"]

NOISE_MODES = ("symmetric", "pairs")
_TAG = 0x6E6F6973  # "nois": keeps this stream apart from other uses of the same seed


def flip_labels(y: np.ndarray, num_classes: int, rate: float, mode: str,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(noisy labels [N], flipped mask [N])`` of labels ``y[N]`` in ``0..num_classes-1``."""
    if not 0.0 <= rate < 1.0:
        raise DataError(f"label noise must be in [0, 1), got {rate}")
    if mode not in NOISE_MODES:
        raise DataError(f"label noise mode must be one of {', '.join(NOISE_MODES)}, got {mode!r}")
    if num_classes < 2:
        raise DataError(f"label noise needs at least 2 classes, got {num_classes}")
    y = np.asarray(y, dtype=np.int64)
    g = np.random.default_rng([int(seed), _TAG])
    n_flip = int(round(rate * len(y)))
    idx = g.choice(len(y), size=n_flip, replace=False)
    out, mask = y.copy(), np.zeros(len(y), dtype=bool)
    mask[idx] = True
    if mode == "pairs":
        out[idx] = (y[idx] + 1) % num_classes
    else:  # uniform over the K - 1 other classes: shift by 1..K-1
        out[idx] = (y[idx] + g.integers(1, num_classes, n_flip)) % num_classes
    return out, mask


def apply_label_noise(bundle: DataBundle, rate: float, mode: str = "symmetric",
                      seed: int = 0) -> DataBundle:
    """A copy of ``bundle`` whose training labels have ``rate`` of them flipped (see the
    module docstring), with ``noisy`` (the mask) and ``y_train_clean`` (the labels before
    flipping) set and ``info["label_noise"]`` describing the flip. ``rate == 0`` returns
    ``bundle`` itself."""
    if bundle.kind == "tokens":
        raise DataError(f"label noise needs a classification dataset; {bundle.name} is token "
                        "sequences (next-token targets have no label to flip)")
    if rate == 0:
        flip_labels(bundle.y_train.numpy()[:0], bundle.num_classes, rate, mode, seed)  # checks
        return bundle
    clean = bundle.y_train.numpy()
    noisy, mask = flip_labels(clean, bundle.num_classes, rate, mode, seed)
    info = {**bundle.info, "label_noise": {"rate": float(rate), "mode": mode,
                                           "flipped": int(mask.sum())}}
    return dataclasses.replace(bundle, y_train=torch.from_numpy(noisy),
                               noisy=torch.from_numpy(mask),
                               y_train_clean=bundle.y_train.clone(), info=info)
