"""Class groups and known class dissimilarities: CIFAR-100 superclasses, gaussians_hier."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from geomviz.data import DataError, load_dataset
from geomviz.data.vectors import gaussians, gaussians_hier, mean_distances


def _cifar100(root, coarse_of, n_train=40, n_test=10, bad=False):
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for split, n in (("train", n_train), ("test", n_test)):
        fine = rng.integers(0, 100, n)
        coarse = coarse_of[fine].copy()
        if bad and split == "test":
            coarse[0] = (coarse[0] + 1) % 20
        (d / split).write_bytes(pickle.dumps({
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"fine_labels": list(fine), b"coarse_labels": list(coarse)}))
    (d / "meta").write_bytes(pickle.dumps({
        b"fine_label_names": [b"c%d" % i for i in range(100)],
        b"coarse_label_names": [b"s%d" % i for i in range(20)]}))
    return fine


def test_cifar100_superclasses_come_from_the_coarse_labels(tmp_path):
    coarse_of = np.random.default_rng(0).permutation(np.repeat(np.arange(20), 5))
    _cifar100(tmp_path, coarse_of)
    b = load_dataset("cifar100", tmp_path)
    seen = np.isin(np.arange(100), np.r_[b.y_train.numpy(), b.y_test.numpy()])
    assert np.array_equal(b.groups[seen], coarse_of[seen]) and np.all(b.groups[~seen] == -1)
    assert b.info["group_names"][3] == "s3"
    d = b.class_dissimilarity
    i, j = np.flatnonzero(seen)[:2]
    assert d[i, j] == float(coarse_of[i] != coarse_of[j]) and np.isnan(d[~seen][:, seen]).all()
    held = load_dataset("cifar100", tmp_path, ood_classes=(0, 1))
    assert np.array_equal(held.groups, b.groups[2:])  # renumbered with the classes


def test_a_fine_class_under_two_superclasses_is_a_bad_file(tmp_path):
    coarse_of = np.repeat(np.arange(20), 5)
    _cifar100(tmp_path, coarse_of, bad=True)
    with pytest.raises(DataError, match="two superclasses"):
        load_dataset("cifar100", tmp_path)


def test_gaussians_hier_is_a_two_level_hierarchy():
    raw = gaussians_hier(seed=0)
    b = load_dataset("gaussians_hier", seed=0)
    assert b.num_classes == 20 and b.groups.tolist() == np.repeat(np.arange(5), 4).tolist()
    d = b.class_dissimilarity
    np.testing.assert_allclose(d, mean_distances(raw["centres"]))
    c = raw["centres"]
    np.testing.assert_allclose(d[2, 7], np.linalg.norm(c[2] - c[7]))
    same = b.groups[:, None] == b.groups[None, :]
    off = ~np.eye(20, dtype=bool)
    assert d[same & off].max() < d[~same].min()  # siblings closer than any cousins
    assert 2.0 < d[same & off].mean() < 3.5  # siblings overlap (unit variance)
    # the empirical class means sit at the true means
    x, y = b.x_train.numpy(), b.y_train.numpy()
    emp = np.stack([x[y == k].mean(0) for k in range(20)])
    assert np.abs(emp - c).max() < 0.5
    assert b.x_ood is not None and load_dataset("gaussians_hier", seed=1).x_train[0, 0] != \
        b.x_train[0, 0]


def test_plain_gaussians_keep_their_data_and_gain_true_mean_distances():
    raw = gaussians(seed=0)
    b = load_dataset("gaussians", seed=0)
    assert np.array_equal(b.x_train.numpy(), raw["x"]) and b.groups is None
    np.testing.assert_allclose(b.class_dissimilarity, mean_distances(raw["centres"]))
    held = load_dataset("gaussians", seed=0, ood_classes=(0,))
    np.testing.assert_allclose(held.class_dissimilarity, b.class_dissimilarity[1:, 1:])
    assert load_dataset("mnist1d").class_dissimilarity is None
