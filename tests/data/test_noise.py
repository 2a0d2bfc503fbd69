"""Label noise: exact counts, reproducible from the seed alone, symmetric and pair flips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomviz.data import DataError, apply_label_noise, load_dataset, load_tokens
from geomviz.data.noise import flip_labels


def test_flips_are_reproducible_from_the_seed_only():
    b = load_dataset("gaussians", seed=0)
    torch.manual_seed(1)
    np.random.seed(1)
    first = apply_label_noise(b, 0.2, "symmetric", seed=3)
    torch.manual_seed(99)  # global RNG states play no part
    np.random.seed(99)
    torch.rand(5)
    second = apply_label_noise(load_dataset("gaussians", seed=0), 0.2, "symmetric", seed=3)
    assert torch.equal(first.y_train, second.y_train) and torch.equal(first.noisy, second.noisy)
    other = apply_label_noise(b, 0.2, "symmetric", seed=4)
    assert not torch.equal(first.noisy, other.noisy)
    assert torch.equal(b.y_train, first.y_train_clean)  # the input bundle is left alone
    assert b.noisy is None and b.y_train is not first.y_train


@pytest.mark.parametrize("mode", ["symmetric", "pairs"])
@pytest.mark.parametrize("rate", [0.2, 0.4])
def test_exactly_the_requested_fraction_is_flipped_to_another_class(mode, rate):
    b = load_dataset("gaussians", seed=0)
    nb = apply_label_noise(b, rate, mode, seed=0)
    n = len(b.y_train)
    flipped = nb.y_train != b.y_train
    assert int(nb.noisy.sum()) == round(rate * n)
    assert torch.equal(flipped, nb.noisy)  # every chosen label changed, nothing else did
    assert nb.noisy_index.tolist() == np.flatnonzero(flipped.numpy()).tolist()
    assert nb.info["label_noise"] == {"rate": rate, "mode": mode, "flipped": round(rate * n)}
    if mode == "pairs":
        k = b.num_classes
        assert torch.equal(nb.y_train[nb.noisy], (b.y_train[nb.noisy] + 1) % k)


def test_symmetric_flips_are_uniform_over_the_other_classes():
    k, n = 4, 40_000
    y = np.repeat(np.arange(k), n // k)
    noisy, mask = flip_labels(y, k, 0.5, "symmetric", seed=0)
    counts = np.zeros((k, k))
    np.add.at(counts, (y[mask], noisy[mask]), 1)
    assert np.all(np.diag(counts) == 0)
    off = counts[~np.eye(k, dtype=bool)].reshape(k, k - 1) / counts.sum(1, keepdims=True)
    np.testing.assert_allclose(off, 1 / (k - 1), atol=0.02)  # ~5000 per row: sd ~0.007


def test_flips_stay_among_the_trained_classes_with_held_out_ones():
    b = load_dataset("gaussians", seed=0, ood_classes=(8, 9))
    nb = apply_label_noise(b, 0.4, "symmetric", seed=0)
    assert int(nb.y_train.max()) == 7 and int(nb.y_train.min()) == 0


def test_zero_rate_bad_rates_and_token_data():
    b = load_dataset("gaussians", seed=0)
    assert apply_label_noise(b, 0.0, "pairs", seed=0) is b
    for rate in (1.0, -0.1):
        with pytest.raises(DataError, match=r"\[0, 1\)"):
            apply_label_noise(b, rate, "symmetric", seed=0)
    with pytest.raises(DataError, match="mode"):
        apply_label_noise(b, 0.1, "bogus", seed=0)
    tokens = load_tokens("synonyms", 0, train_tokens=4096, test_tokens=1024)
    with pytest.raises(DataError, match="classification dataset"):
        apply_label_noise(tokens, 0.1, "symmetric", seed=0)
