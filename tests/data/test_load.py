"""Datasets: tiny files in the real CIFAR and SVHN formats, held-out classes, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from scipy.io import savemat

from geomviz.data import DataError, load_dataset


def _cifar10(root, n=6):
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": list(rng.integers(0, 10, n))}
        (d / name).write_bytes(pickle.dumps(batch))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
             b"ship", b"truck"]
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    return d


def test_cifar10_reads_the_python_pickle_format(tmp_path):
    d = _cifar10(tmp_path)
    b = load_dataset("cifar10", tmp_path)
    assert b.x_train.shape == (30, 3, 32, 32) and b.x_test.shape == (6, 3, 32, 32)
    assert b.class_names[0] == "airplane" and b.kind == "image" and b.num_classes == 10
    first = pickle.loads((d / "data_batch_1").read_bytes())
    assert np.array_equal(b.x_train[0].numpy().reshape(-1), first[b"data"][0])
    x = b.prepare(b.x_train[:2])
    assert x.dtype.is_floating_point and x.shape == (2, 3, 32, 32)


def _cifar100(root, n_train=8, n_test=4):
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for split, n in (("train", n_train), ("test", n_test)):
        (d / split).write_bytes(pickle.dumps({b"data": rng.integers(0, 256, (n, 3072),
                                                                    dtype=np.uint8),
                                              b"fine_labels": list(rng.integers(0, 100, n))}))
    (d / "meta").write_bytes(pickle.dumps({b"fine_label_names": [b"c%d" % i for i in range(100)]}))
    return d


def _svhn(root, n_train=5, n_test=3):
    svhn = root / "svhn"
    svhn.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for split, n in (("train", n_train), ("test", n_test)):
        savemat(svhn / f"{split}_32x32.mat",
                {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                 "y": (np.arange(n) % 10 + 1).reshape(-1, 1).astype(np.uint8)})
    return svhn


def test_cifar100_and_svhn_formats(tmp_path):
    _cifar100(tmp_path)
    svhn = _svhn(tmp_path)
    b = load_dataset("cifar100", tmp_path, ood_dataset="svhn", ood_dir=svhn)
    assert b.num_classes == 100 and b.x_train.shape == (8, 3, 32, 32)
    assert b.ood_name == "svhn" and b.x_ood.shape == (3, 3, 32, 32)
    s = load_dataset("svhn", svhn)
    assert s.y_train.tolist() == [1, 2, 3, 4, 5]  # labels 1..10, where 10 is the digit 0
    both = load_dataset("cifar100", tmp_path, ood_dataset="svhn", ood_dir=svhn,
                        near_ood_dataset="cifar100", near_ood_dir=tmp_path)
    assert both.x_ood.shape == (3, 3, 32, 32) and both.near_ood_name == "cifar100"
    assert torch.equal(both.x_ood_near, both.x_test)


@pytest.mark.parametrize("name,expect", [("cifar10", "cifar-10-batches-py"),
                                         ("cifar100", "cifar-100-python"),
                                         ("svhn", "train_32x32.mat")])
def test_missing_folders_say_what_was_expected_where(tmp_path, name, expect):
    with pytest.raises(DataError, match=expect):
        load_dataset(name, tmp_path)
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset(name, None)


def test_unknown_dataset_and_bad_held_out_classes():
    with pytest.raises(DataError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")
    with pytest.raises(DataError, match="ood-classes"):
        load_dataset("gaussians", ood_classes=(12,))


def test_gaussians_hard_pairs_overlap_and_held_out_classes_become_ood():
    b = load_dataset("gaussians", seed=3)
    assert b.info["hard_pairs"] == [[0, 1], [2, 3]] and b.x_ood is not None
    x, y = b.x_train.double(), b.y_train
    mean = lambda c: x[y == c].mean(0)  # noqa: E731
    assert (mean(0) - mean(1)).norm() < 2.0 < (mean(0) - mean(5)).norm()
    h = load_dataset("gaussians", ood_classes=(1, 9), seed=3)
    assert h.num_classes == 8 and h.class_names == [f"g{i}" for i in (0, 2, 3, 4, 5, 6, 7, 8)]
    assert set(h.y_train.tolist()) == set(range(8))
    assert len(h.x_ood) == int(np.isin(b.y_test.numpy(), [1, 9]).sum())
    assert h.info["hard_pairs"] == [[1, 2]]  # (2,3) renumbered; (0,1) lost class 1


def test_mnist1d_is_generated_offline_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path))
    b = load_dataset("mnist1d")
    assert b.x_train.shape == (4000, 40) and b.x_test.shape == (1000, 40)
    assert b.num_classes == 10 and b.x_ood is None
    assert len(list(tmp_path.glob("mnist1d-*.npz"))) == 1
    again = load_dataset("mnist1d", ood_classes=(8, 9))
    assert again.num_classes == 8 and len(again.x_ood) == int((b.y_test >= 8).sum())


def test_labels_out_of_range_are_a_data_error(tmp_path):
    d = _cifar10(tmp_path)
    bad = {b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [0, 12]}
    (d / "test_batch").write_bytes(pickle.dumps(bad))
    with pytest.raises(DataError, match="labels outside 0..9"):
        load_dataset("cifar10", tmp_path)
