"""A short real training run on noisy, grouped data records the C6 and C8 series."""

from __future__ import annotations

import numpy as np

from geomviz.data import apply_label_noise, load_dataset
from geomviz.store import open_run
from geomviz.training.config import resolve_config
from geomviz.training.train import train


def test_a_run_on_noisy_grouped_data_records_memorisation_classes_and_gradient_tails(tmp_path):
    cfg = resolve_config({"objective": "tfsd", "dataset": "gaussians_hier", "epochs": 2,
                          "label_noise": 0.3, "label_noise_mode": "pairs", "snapshots": 0,
                          "progress": False, "out": str(tmp_path / "run"), "device": "cpu"})
    bundle = apply_label_noise(load_dataset("gaussians_hier", seed=0), cfg.label_noise,
                               cfg.label_noise_mode, cfg.seed)
    train(cfg, bundle)
    run = open_run(tmp_path / "run")
    for name, split in (("memorised", "train_eval"), ("noisy_acc_true", "train_eval"),
                        ("clean_acc", "train_eval"), ("classes.ratio", "test"),
                        ("classes.structure", "test"), ("grad.sample_norm.p99", "train"),
                        ("grad.sample_norm.max", "train"), ("grad.noisy.norm.mean", "train"),
                        ("grad.clean.norm.mean", "train")):
        v = run.scalars(name, split=split)["value"]
        assert len(v) >= 2 and np.all(np.isfinite(v)), name
    assert np.array_equal(run.arrays("train.noisy_index")[0], bundle.noisy_index)
    mem = run.scalars("memorised", split="train_eval")["value"]
    true = run.scalars("noisy_acc_true", split="train_eval")["value"]
    assert np.all((mem >= 0) & (mem + true <= 1 + 1e-12))  # one prediction per sample
    p50, p99, mx = (run.scalars(f"grad.sample_norm.{k}", split="train")["value"]
                    for k in ("p50", "p99", "max"))
    assert np.all(p50 <= p99 + 1e-6) and np.all(p99 <= mx + 1e-6)
    assert -1 <= run.scalars("classes.structure", split="test")["value"][-1] <= 1


def test_load_bundle_flips_the_same_labels_for_every_objective_of_a_seed():
    from geomviz.training.train import load_bundle

    def flipped(objective: str, seed: int) -> np.ndarray:
        cfg = resolve_config({"objective": objective, "dataset": "gaussians",
                              "label_noise": 0.25, "seed": seed})
        return load_bundle(cfg).noisy_index

    ce, tfsd = flipped("ce", 0), flipped("tfsd", 0)
    assert len(ce) > 0 and np.array_equal(ce, tfsd)
    assert not np.array_equal(ce, flipped("ce", 1))
    clean = load_bundle(resolve_config({"objective": "ce", "dataset": "gaussians"}))
    assert clean.noisy is None or not clean.noisy.any()
