"""Config layering: defaults < config file < flags; unknown keys and bad values rejected."""

from __future__ import annotations

import json
import re

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


def _bad_value(hint) -> object:
    """A value of the wrong type for a field annotated ``hint``."""
    import typing

    args = [a for a in typing.get_args(hint) if a is not type(None)]
    hint = args[0] if args else hint
    origin = typing.get_origin(hint)
    if origin is list:
        return 8  # `ood_classes: 8`
    if origin is dict:
        return [1, 2]  # `objective_kw: [1, 2]`
    return {bool: "nah", int: "abc", float: "fast", str: [1, 2]}[hint]


def test_every_field_rejects_a_wrong_type_in_one_line():
    import typing

    hints = typing.get_type_hints(TrainConfig)
    for name, hint in hints.items():
        with pytest.raises(ConfigError, match=f"config key {name}") as e:
            resolve_config({name: _bad_value(hint)})
        assert "\n" not in str(e.value)
        optional = type(None) in typing.get_args(hint)
        if optional:
            assert getattr(resolve_config({name: None}), name) is None
        else:
            with pytest.raises(ConfigError, match=f"config key {name}: cannot be empty"):
                resolve_config({name: None})


def test_values_are_coerced_to_the_field_types():
    cfg = resolve_config({"hidden": [64, "32"], "ood_classes": "8,9", "probes": "off",
                          "lr": "3e-4", "epochs": 4.0, "name": 2024, "grad_clip": 1},
                         {"qk_layernorm": "yes", "seed": "7", "vocab_size": "384",
                          "dataset": "synonyms"})
    assert cfg.hidden == [64, 32] and cfg.ood_classes == [8, 9] and cfg.probes is False
    assert cfg.lr == 3e-4 and cfg.epochs == 4 and isinstance(cfg.epochs, int)
    assert cfg.name == "2024" and cfg.grad_clip == 1.0 and isinstance(cfg.grad_clip, float)
    assert cfg.qk_layernorm is True and cfg.seed == 7 and cfg.vocab_size == 384
    # the config file's objective_kw and the flags' merge, flags winning
    cfg = resolve_config({"objective_kw": {"scale": 1, "k": 2}}, {"objective_kw": {"scale": 3}})
    assert cfg.objective_kw == {"scale": 3, "k": 2}


@pytest.mark.parametrize("values,message", [
    ({"eval_batch_size": 0}, "eval_batch_size must be >= 1"),
    ({"seed": 10**20}, "seed must be in [0, 2**32)"),
    ({"seed": -1}, "seed must be in [0, 2**32)"),
    ({"vocab_size": 0}, "vocab_size must be >= 1"),
    ({"train_tokens": 0}, "train_tokens must be >= 1"),
    ({"test_tokens": -5}, "test_tokens must be >= 1"),
    ({"concepts": 0}, "concepts must be >= 1"),
    ({"max_synonyms": 0}, "max_synonyms must be >= 1"),
    ({"block_size": 0}, "block_size must be >= 1"),
    ({"seq_len": 300, "dataset": "synonyms"}, "longer than the model's context"),
    ({"hidden": [64, 0]}, "hidden sizes must be >= 1"),
    ({"ood_classes": [8, 8]}, "lists a class twice"),
    ({"ood_classes": [-1]}, "ood_classes must be >= 0"),
    ({"lr": float("inf")}, "not a finite number"),
    ({"momentum": -0.1}, "momentum must be >= 0"),
    ({"snapshots": -1}, "snapshots must be >= 0"),
    ({"order": 3}, "order must be one of 1, 2"),
    ({"fused": "maybe"}, "fused must be one of auto, on, off"),
    ({"probes": 2}, "expected true or false"),
    ({"epochs": True}, "expected an integer"),
    ({"hidden": [1.5]}, "expected an integer"),
    ({"label_noise": 1.0}, "label_noise must be in [0, 1), got 1.0"),
    ({"label_noise": -0.2}, "label_noise must be in [0, 1)"),
    ({"label_noise": 0.2, "dataset": "synonyms"}, "label_noise needs a classification dataset"),
    ({"label_noise_mode": "asym"}, "label_noise_mode must be one of symmetric, pairs"),
    ({"class_groups": "on"}, "class_groups on: mnist1d declares no class groups"),
    ({"class_groups": "on", "dataset": "gaussians"}, "gaussians declares no class groups"),
    ({"class_groups": "yes"}, "class_groups must be one of auto, on, off"),
    ({"name": " "}, "name is empty"),
])
def test_ranges_and_choices(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_config(values)


@pytest.mark.parametrize("values,message", [
    ({"dataset": "gaussians", "train_tokens": 5000}, "--train-tokens applies to --dataset "
     "synonyms only; gaussians would ignore it"),
    ({"dataset": "text", "concepts": 12, "data_path": "f.txt"}, "--concepts applies to"),
    ({"dataset": "mnist1d", "data_path": "f.txt"}, "--data-path applies to --dataset text"),
    ({"dataset": "synonyms", "tokenizer": "bytes"}, "--tokenizer applies to --dataset text"),
    ({"dataset": "cifar10", "seq_len": 32}, "--seq-len applies to --dataset synonyms or text"),
    # folders nothing reads: a typo'd run would train on other data without a word
    ({"dataset": "gaussians", "data_dir": "d"}, "--data-dir applies to --dataset cifar10, "
     "cifar100 or svhn (or an --ood-dataset / --near-ood-dataset); gaussians would ignore it"),
    ({"dataset": "cifar10", "data_dir": "d", "ood_dir": "o"},
     "--ood-dir applies with --ood-dataset only"),
    ({"dataset": "cifar10", "data_dir": "d", "near_ood_dir": "o"},
     "--near-ood-dir applies with --near-ood-dataset only"),
])
def test_a_field_the_dataset_would_ignore_is_refused(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_config(values)


def test_fields_for_the_dataset_and_defaults_elsewhere_are_accepted():
    assert resolve_config({"dataset": "synonyms", "train_tokens": 5000}).train_tokens == 5000
    assert resolve_config({"dataset": "text", "data_path": "f.txt", "vocab_size": 512,
                           "seq_len": 32}).seq_len == 32
    assert resolve_config({"dataset": "gaussians", "seq_len": 64}).dataset == "gaussians"
    # --data-dir is also where an OOD dataset without its own folder is read from
    assert resolve_config({"dataset": "mnist1d", "ood_dataset": "svhn", "data_dir": "d"})
    assert resolve_config({"dataset": "cifar10", "data_dir": "d", "ood_dataset": "svhn",
                           "ood_dir": "o", "near_ood_dataset": "cifar100",
                           "near_ood_dir": "n"}).near_ood_dir == "n"


def test_a_config_file_that_is_a_folder_or_not_utf8_is_one_line_naming_it(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    (tmp_path / "latin1.yaml").write_bytes(b"lr: 0.1  # caf\xe9\n")
    with pytest.raises(ConfigError, match="dir.yaml is a folder, not a file"):
        load_config_file(tmp_path / "dir.yaml")
    with pytest.raises(ConfigError, match=r"latin1.yaml is not UTF-8 text \(byte 0xe9 at "
                       r"offset 14\)"):
        load_config_file(tmp_path / "latin1.yaml")


def test_sweep_preset_fields_another_dataset_ignores_are_dropped():
    from geomviz.study.sweep import sweep_config

    cfg, _ = sweep_config("lm-spikes", {"dataset": "text", "data_path": "f.txt"})
    assert cfg.train_tokens == TrainConfig().train_tokens and cfg.model == "gpt"
    with pytest.raises(ConfigError, match="--train-tokens applies to --dataset synonyms"):
        sweep_config("lm-spikes", {"dataset": "text", "data_path": "f.txt",
                                   "train_tokens": 4096})


def test_validate_checks_a_config_built_in_python():
    with pytest.raises(ConfigError, match="config key hidden"):
        TrainConfig(hidden="abc").validate()  # type: ignore[arg-type]


def test_label_noise_and_class_groups_accepted_values():
    cfg = resolve_config({"label_noise": 0.4, "label_noise_mode": "pairs"},
                         {"dataset": "gaussians_hier", "class_groups": "on"})
    assert (cfg.label_noise, cfg.label_noise_mode, cfg.class_groups) == (0.4, "pairs", "on")
    assert resolve_config({"dataset": "synonyms", "class_groups": "on"}).label_noise == 0.0


@pytest.mark.parametrize("flags,message", [
    (["--label-noise", "1.5"], "label_noise must be in [0, 1)"),
    (["--dataset", "mnist1d", "--class-groups", "on"], "mnist1d declares no class groups"),
    (["--dataset", "text", "--label-noise", "0.1"], "needs a classification dataset"),
])
def test_cli_bad_label_noise_or_groups_is_one_line_and_exit_2(tmp_path, capsys, flags, message):
    from geomviz.cli import main

    try:
        rc = main(["train", *flags, "--out", str(tmp_path / "run")])
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and err.count("\n") == 0
    assert not (tmp_path / "run").exists()  # caught before any work


def test_yaml_on_off_booleans_mean_on_and_off(tmp_path):
    from geomviz.training.config import load_config_file

    p = tmp_path / "c.yaml"
    p.write_text("dataset: gaussians_hier\nclass_groups: on\nfused: off\n")
    cfg = resolve_config(load_config_file(p))
    assert (cfg.class_groups, cfg.fused) == ("on", "off")


@pytest.mark.parametrize("values,message", [
    ({"lr": 1e39}, "lr 1e+39 is not a finite float32 number"),
    ({"lr": "1e300"}, "lr 1e+300 is not a finite float32 number"),
    ({"lr": 1e-300}, "lr 1e-300 is below float32's smallest normal number"),
    ({"lr": 1e-39}, "below float32's smallest normal number"),
    ({"weight_decay": 1e39}, "weight_decay 1e+39 is not a finite float32"),
    ({"grad_clip": 1e300}, "grad_clip 1e+300 is not a finite float32"),
    ({"dataset": "synonyms", "train_tokens": "1e15"}, "memory (estimated before allocating"),
])
def test_values_float32_or_memory_cannot_hold_are_refused(values, message):
    """Issue 25 row 7: these passed validation, then crashed with a traceback."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_config({}, values)


def test_check_rate_is_shared_and_integers_take_exponents():
    from geomviz.training.config import check_rate

    assert check_rate("--lrs", 3e-4) == 3e-4
    assert check_rate("--lrs", 1e38) == 1e38
    for bad in (0.0, -1e-3, float("nan"), float("inf"), 1e39, 1e-300):
        with pytest.raises(ConfigError, match="^--lrs "):
            check_rate("--lrs", bad)
    cfg = resolve_config({}, {"dataset": "synonyms", "train_tokens": "1.31072e5"})
    assert cfg.train_tokens == 131072 and isinstance(cfg.train_tokens, int)

