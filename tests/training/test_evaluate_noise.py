"""Evaluation with label noise (memorisation) and class groups (classes.*), on toy models
whose predictions and class vectors are set by hand."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from geomviz.data import DataBundle, apply_label_noise
from geomviz.models import Classifier
from geomviz.objectives import create_objective
from geomviz.training.evaluate import evaluate

C = 4


class Identity(nn.Module):
    def forward_features(self, x):
        return x


def _model(objective="ce", vectors=None) -> Classifier:
    """Features are the inputs; a linear head with W = 10·I predicts argmax(x)."""
    obj = create_objective(objective, C, C, validate=False)
    with torch.no_grad():
        v = obj.head.class_vectors
        v.copy_(torch.eye(C) * 10 if vectors is None else vectors)
        if getattr(obj.head, "bias", None) is not None:
            obj.head.bias.zero_()
    return Classifier(Identity(), obj)


def _bundle(n=400, seed=0, **info) -> DataBundle:
    g = torch.Generator().manual_seed(seed)
    y, yt = torch.randint(0, C, (n,), generator=g), torch.randint(0, C, (50,), generator=g)
    onehot = lambda t: torch.eye(C)[t]  # noqa: E731
    return DataBundle(name="toy", x_train=onehot(y), y_train=y, x_test=onehot(yt), y_test=yt,
                      class_names=[str(i) for i in range(C)], kind="vector", info=dict(info))


def _predicting(bundle: DataBundle, labels: torch.Tensor) -> DataBundle:
    """The same bundle whose training inputs make the toy model predict ``labels``."""
    return dataclasses.replace(bundle, x_train=torch.eye(C)[labels])


def test_memorised_counts_flipped_samples_predicted_with_their_flipped_label():
    nb = apply_label_noise(_bundle(), 0.25, "symmetric", seed=0)
    cpu = torch.device("cpu")
    fits_noise = evaluate(_model(), _predicting(nb, nb.y_train), cpu)["train_eval"]
    assert fits_noise["memorised"] == 1.0 and fits_noise["noisy_acc_true"] == 0.0
    assert fits_noise["clean_acc"] == 1.0 and fits_noise["acc"] == 1.0
    fits_truth = evaluate(_model(), _predicting(nb, nb.y_train_clean), cpu)["train_eval"]
    assert fits_truth["memorised"] == 0.0 and fits_truth["noisy_acc_true"] == 1.0
    assert fits_truth["acc"] == pytest.approx(0.75)  # against the (noisy) training labels
    # half of the flipped samples memorised, by hand
    idx = nb.noisy_index
    mixed = nb.y_train_clean.clone()
    mixed[idx[::2]] = nb.y_train[idx[::2]]
    got = evaluate(_model(), _predicting(nb, mixed), cpu)["train_eval"]
    assert got["memorised"] == pytest.approx(len(idx[::2]) / len(idx))
    assert got["noisy_acc_true"] == pytest.approx(1 - len(idx[::2]) / len(idx))


def test_train_accuracy_is_stored_against_the_flipped_and_the_clean_labels():
    """Issue 25 row 16: ``acc`` scores the labels trained on, ``acc_true`` the clean ones."""
    nb = apply_label_noise(_bundle(), 0.25, "symmetric", seed=0)
    cpu = torch.device("cpu")
    n = len(nb.y_train)
    flipped = float(nb.noisy.double().mean())
    fits_noise = evaluate(_model(), _predicting(nb, nb.y_train), cpu)["train_eval"]
    assert fits_noise["acc"] == 1.0
    assert fits_noise["acc_true"] == pytest.approx(1 - flipped)
    fits_truth = evaluate(_model(), _predicting(nb, nb.y_train_clean), cpu)["train_eval"]
    assert fits_truth["acc_true"] == 1.0 and fits_truth["acc"] == pytest.approx(1 - flipped)
    # by hand: predict the clean label on the first half only, class 0 elsewhere
    pred = torch.where(torch.arange(n) < n // 2, nb.y_train_clean, torch.zeros_like(nb.y_train))
    got = evaluate(_model(), _predicting(nb, pred), cpu)["train_eval"]
    assert got["acc_true"] == pytest.approx(float((pred == nb.y_train_clean).double().mean()))
    assert got["acc"] == pytest.approx(float((pred == nb.y_train).double().mean()))


def test_without_noise_there_is_no_memorisation_entry():
    out = evaluate(_model(), _bundle(), torch.device("cpu"))
    assert "memorised" not in out["train_eval"] and "classes.ratio" not in out["test"]
    assert "acc_true" not in out["train_eval"]


@pytest.mark.parametrize("objective", ["ce", "tfsd"])
def test_class_metrics_by_hand_on_a_toy_head(objective):
    vectors = torch.tensor([[0.0, 0, 0, 0], [3, 4, 0, 0], [0, 0, 1, 0], [0, 0, 7, 1]])
    b = _bundle(groups=[0, 0, 1, 1])
    out = evaluate(_model(objective, vectors), b, torch.device("cpu"))["test"]
    d = np.linalg.norm(vectors.numpy()[:, None] - vectors.numpy()[None], axis=-1)
    within = (d[0, 1] + d[2, 3]) / 2
    between = (d[0, 2] + d[0, 3] + d[1, 2] + d[1, 3]) / 4
    assert out["classes.within"] == pytest.approx(within)
    assert out["classes.between"] == pytest.approx(between)
    assert out["classes.ratio"] == pytest.approx(within / between)
    # the 0/1 hierarchy: pairs (0,1), (2,3) are 5 and 6.1 apart, cousins 1 to 8.6: by hand,
    # Spearman of the 6 pair distances against [0, 1, 1, 1, 1, 0]
    i, j = np.triu_indices(4, 1)
    dd, hh = d[i, j], np.array([0, 1, 1, 1, 1, 0], float)
    rd = np.argsort(np.argsort(dd)) + 1.0  # distinct distances: plain ranks
    rh = np.where(hh == 0, 1.5, 4.5)  # two tied zeros share ranks 1-2, four ones ranks 3-6
    want = np.corrcoef(rd, rh)[0, 1]
    assert out["classes.structure"] == pytest.approx(want)
    off = evaluate(_model(objective, vectors), b, torch.device("cpu"), class_groups=False)
    assert not any(k.startswith("classes.") for k in off["test"])


def test_structure_is_one_when_the_class_vectors_sit_at_the_true_means():
    means = torch.randn(C, C, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    truth = torch.cdist(means, means).numpy()
    b = _bundle(class_dissimilarity=truth.tolist())
    out = evaluate(_model("tfsd", means.float()), b, torch.device("cpu"))["test"]
    assert out["classes.structure"] == pytest.approx(1.0) and "classes.ratio" not in out
