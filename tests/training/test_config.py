"""Config layering: defaults < config file < flags; unknown keys and bad values rejected."""

from __future__ import annotations

import json

import pytest

from geomviz.training.config import ConfigError, TrainConfig, load_config_file, resolve_config


def test_layering(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("epochs: 7\nlr: 0.01\nobjective: tfsd\nobjective_kw: {scale: 0.5}\n")
    cfg = resolve_config(load_config_file(f), {"lr": "0.02", "epochs": None, "seed": "3"})
    assert (cfg.epochs, cfg.lr, cfg.seed, cfg.objective) == (7, 0.02, 3, "tfsd")
    assert cfg.objective_kw == {"scale": 0.5}
    assert resolve_config().batch_size == TrainConfig().batch_size
    j = tmp_path / "c.json"
    j.write_text(json.dumps({"batch_size": 64}))
    assert resolve_config(load_config_file(j)).batch_size == 64


def test_unknown_keys_and_bad_values(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key.*epoch_count"):
        resolve_config({"epoch_count": 3})
    with pytest.raises(ConfigError, match="epochs must be >= 1"):
        resolve_config({}, {"epochs": 0})
    with pytest.raises(ConfigError, match="cannot use"):
        resolve_config({}, {"epochs": "many"})
    with pytest.raises(ConfigError, match="optimizer"):
        resolve_config({"optimizer": "lion"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1, 2\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config_file(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "none.yaml")
