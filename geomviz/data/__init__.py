"""Datasets, one module per family; every loader returns a :class:`DataBundle`.

Nothing is downloaded at run time: generated sets are made offline from a seed and
cached under ``$GEOMVIZ_CACHE`` (default ``~/.cache/geomviz``); the others are read
from local files.
"""

from .base import CIFAR_MEAN, CIFAR_STD, IGNORE_INDEX, DataBundle, DataError, cache_dir
from .load import DATASETS, GROUPED_DATASETS, TOKEN_DATASETS, load_dataset, load_tokens
from .noise import NOISE_MODES, apply_label_noise
from .vectors import bayes_posterior

__all__ = ["CIFAR_MEAN", "CIFAR_STD", "DATASETS", "GROUPED_DATASETS", "NOISE_MODES",
           "TOKEN_DATASETS", "DataBundle", "DataError", "IGNORE_INDEX", "apply_label_noise",
           "bayes_posterior", "load_tokens", "cache_dir", "load_dataset"]
