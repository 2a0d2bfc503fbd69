"""Typed training configuration, layered as defaults < config file (YAML/JSON) < CLI flags.

Unknown keys are rejected with the list of known ones; every value is coerced to its
field's declared type and range-checked here, so that a bad run fails in one line
before any data is loaded. The resolved config is written into the run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.base import DataError
from ..data.load import DIR_DATASETS, GROUPED_DATASETS, TOKEN_DATASETS
from ..data.noise import NOISE_MODES

__all__ = ["TrainConfig", "ConfigError", "ONLY_FOR", "load_config_file", "resolve_config",
           "check_rate", "check_float32"]

#: float32's largest finite number and its smallest normal one: a rate or factor outside
#: overflows to inf (a traceback in the optimizer) or rounds the update to nothing
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_TINY = 1.1754943508222875e-38


def check_float32(name: str, value: float) -> float:
    """``value`` if float32 holds it as a finite number, else one :class:`ConfigError` line
    (``--lr 1e39`` passed as a finite Python float, then overflowed in the optimizer)."""
    if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
        raise ConfigError(f"{name} {value:g} is not a finite float32 number (the largest is "
                          f"{FLOAT32_MAX:.4g}): the training would overflow")
    return value


def check_rate(name: str, value: float) -> float:
    """A learning rate: ``value`` if it is > 0 and float32 holds it as a normal number, else
    one :class:`ConfigError` line. Shared by ``train``/``compare``/``study`` (the ``lr``
    field) and ``sweep --lrs`` (``check_rate("--lrs", lr)``)."""
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value:g}")
    check_float32(name, value)
    if value < FLOAT32_TINY:
        raise ConfigError(f"{name} {value:g} is below float32's smallest normal number "
                          f"({FLOAT32_TINY:.4g}): every update would round to nothing")
    return value

#: fields only these datasets read: set anywhere else, they would be silently ignored
ONLY_FOR: dict[str, tuple[str, ...]] = {
    "data_path": ("text",), "ood_data_path": ("text",), "tokenizer": ("text",),
    "vocab_size": TOKEN_DATASETS, "seq_len": TOKEN_DATASETS,
    **{k: ("synonyms",) for k in ("train_tokens", "test_tokens", "concepts", "max_synonyms",
                                  "order", "emission")},
}


class ConfigError(ValueError):
    """A configuration the user must fix: one clear line."""


@dataclass
class TrainConfig:
    # what to train
    objective: str = "ce"
    objective_kw: dict[str, Any] = field(default_factory=dict)  # e.g. {"scale": 0.5}
    dataset: str = "mnist1d"
    data_dir: str | None = None
    ood_classes: list[int] = field(default_factory=list)
    ood_dataset: str | None = None
    ood_dir: str | None = None
    # a second OOD set, scored at each evaluation (e.g. CIFAR-100 as near-OOD for CIFAR-10)
    near_ood_dataset: str | None = None
    near_ood_dir: str | None = None
    # label noise (claim C6, outliers): flip this fraction of training labels, from the seed,
    # the same for every objective; symmetric (to another class, uniformly) or pairs
    # (class k -> (k + 1) mod K). Classification datasets only.
    label_noise: float = 0.0
    label_noise_mode: str = "symmetric"
    # class groups (claim C8): auto (record classes.* where the dataset declares groups or
    # known class distances) | on (the same, and the dataset must declare groups) | off
    class_groups: str = "auto"
    # language-model data: dataset "synonyms" (a generated language with a known law) or
    # "text" (any UTF-8 file); sequences of seq_len input tokens, next-token targets
    data_path: str | None = None  # text: the UTF-8 file
    ood_data_path: str | None = None  # text: another file, scored as OOD
    tokenizer: str = "bpe"  # text: bpe (Hugging Face tokenizers, trained offline) | bytes
    vocab_size: int | None = None  # text: BPE vocabulary (default 4096); synonyms: tokens (256)
    seq_len: int = 64
    train_tokens: int = 262_144  # synonyms: generated training tokens
    test_tokens: int = 16_384  # synonyms: test tokens, and as many OOD tokens
    concepts: int = 96  # synonyms: concepts the vocabulary is grouped into
    max_synonyms: int = 4  # synonyms: K, every concept has 1..K tokens
    order: int = 2  # synonyms: Markov order of the concept chain (1 or 2)
    emission: str = "uniform"  # synonyms: uniform | zipf, the law of a token within its concept
    model: str = "auto"  # auto (gpt for tokens, resnet for images, else mlp) | mlp | resnet | gpt
    gpt_size: str = "tiny"  # tiny (CPU: 2 layers, 4 heads) | small (GPU: 12 layers, 12 heads)
    block_size: int = 256  # gpt: the longest context (position embeddings)
    qk_layernorm: bool = False  # gpt: LayerNorm on queries and keys
    tie_embeddings: bool = False  # gpt: unembedding = token embedding (linear heads only)
    fused: str = "auto"  # auto (fused head + loss when the vocabulary is >= 8192) | on | off
    feature_dim: int = 128
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    width: int = 32
    # how
    epochs: int = 20
    batch_size: int = 128
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    grad_clip: float | None = None
    augment: bool = True  # random crop + flip, images only
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # auto (bf16 on CUDA) | bf16 | off
    compile: bool = False
    # where and how often
    out: str = "runs/run"
    name: str | None = None
    resume: bool = False
    flush_every: int = 50
    eval_batch_size: int = 1024
    progress: bool = True
    # probes (probes/): statistics every probe_every steps (default: every flush)
    probes: bool = True
    probe_every: int | None = None
    snapshots: int = 40  # manifold snapshots per run (plus step 0 and the last step)
    snapshot_size: int = 2000  # test examples in the fixed probe set (stratified)
    snapshot_ood: int = 500  # OOD examples in the probe set

    def validate(self) -> TrainConfig:
        """Every field coerced to its declared type, then range-checked: a bad value is
        one :class:`ConfigError` line, raised before any data is loaded."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, _coerce(f.name, getattr(self, f.name)))

        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(msg)

        need(bool(str(self.out).strip()), "out is empty: name a run folder")
        need(self.name is None or bool(self.name.strip()), "name is empty: leave it out (the run "
             "is named after its folder) or give one")

        for name in ("epochs", "batch_size", "eval_batch_size", "flush_every", "feature_dim",
                     "width", "seq_len", "train_tokens", "test_tokens", "concepts",
                     "max_synonyms", "block_size", "vocab_size", "probe_every"):
            value = getattr(self, name)
            need(value is None or value >= 1, f"{name} must be >= 1, got {value}")
        for name in ("snapshots", "snapshot_size", "snapshot_ood", "warmup_epochs",
                     "weight_decay", "momentum"):
            value = getattr(self, name)
            need(value >= 0, f"{name} must be >= 0, got {value}")
        need(self.vocab_size is None or self.vocab_size >= 2, f"vocab_size must be >= 2 (one "
             f"token leaves nothing to predict, and most objectives need two classes), got "
             f"{self.vocab_size}")
        need(0 <= self.seed < 2**32, f"seed must be in [0, 2**32), got {self.seed}")
        check_rate("lr", self.lr)
        need(self.grad_clip is None or self.grad_clip > 0, "grad_clip must be > 0 or unset")
        for name in ("momentum", "weight_decay", "warmup_epochs", "grad_clip", "label_noise"):
            if getattr(self, name) is not None:
                check_float32(name, getattr(self, name))
        need(all(h >= 1 for h in self.hidden), f"hidden sizes must be >= 1, got {self.hidden}")
        need(all(c >= 0 for c in self.ood_classes), f"ood_classes must be >= 0, got "
             f"{self.ood_classes}")
        need(len(set(self.ood_classes)) == len(self.ood_classes),
             f"ood_classes lists a class twice: {self.ood_classes}")
        for name, allowed in _CHOICES.items():
            need(getattr(self, name) in allowed, f"{name} must be one of "
                 f"{', '.join(map(str, allowed))}, got {getattr(self, name)!r}")
        need(0.0 <= self.label_noise < 1.0, f"label_noise must be in [0, 1), got "
             f"{self.label_noise}")
        need(self.label_noise == 0 or self.dataset not in TOKEN_DATASETS,
             f"label_noise needs a classification dataset; {self.dataset} is token sequences "
             "(next-token targets have no label to flip)")
        need(self.class_groups != "on" or self.dataset in GROUPED_DATASETS,
             f"class_groups on: {self.dataset} declares no class groups; datasets with groups: "
             f"{', '.join(GROUPED_DATASETS)}")
        for name, datasets in ONLY_FOR.items():
            default = TrainConfig.__dataclass_fields__[name].default
            need(self.dataset in datasets or getattr(self, name) == default,
                 f"--{name.replace('_', '-')} applies to --dataset {' or '.join(datasets)} "
                 f"only; {self.dataset} would ignore it")
        # folders nothing would read (a typo'd flag would train on other data without a
        # word); --data-dir is also where an OOD dataset without its own folder is read from
        need(self.data_dir is None or self.dataset in DIR_DATASETS or bool(
            self.ood_dataset or self.near_ood_dataset),
             f"--data-dir applies to --dataset {', '.join(DIR_DATASETS[:-1])} or "
             f"{DIR_DATASETS[-1]} (or an --ood-dataset / --near-ood-dataset); {self.dataset} "
             "would ignore it")
        for folder, dataset in (("ood_dir", "ood_dataset"),
                                ("near_ood_dir", "near_ood_dataset")):
            need(getattr(self, folder) is None or getattr(self, dataset) is not None,
                 f"--{folder.replace('_', '-')} applies with --{dataset.replace('_', '-')} "
                 "only; nothing would read it")
        need(self.tokenizer != "bytes" or self.vocab_size in (None, 256),
             f"--vocab-size {self.vocab_size} with --tokenizer bytes: the byte tokenizer has "
             "256 tokens; leave --vocab-size out (or use --tokenizer bpe)")
        need(self.seq_len <= self.block_size, f"seq_len {self.seq_len} is longer than the "
             f"model's context (block_size {self.block_size})")
        if self.dataset == "synonyms":  # sizes that make no language or cannot fit in
            from ..data.synonyms import check_sizes  # memory: refused before allocating

            try:
                check_sizes(self.vocab_size or 256, self.concepts, self.max_synonyms,
                            self.order, self.emission, self.seq_len, self.train_tokens,
                            self.test_tokens)
            except DataError as e:
                raise ConfigError(str(e)) from None
        return self


_CHOICES: dict[str, tuple] = {
    "optimizer": ("adamw", "sgd"), "amp": ("auto", "bf16", "off"), "tokenizer": ("bpe", "bytes"),
    "order": (1, 2), "emission": ("uniform", "zipf"), "gpt_size": ("tiny", "small"),
    "fused": ("auto", "on", "off"), "label_noise_mode": NOISE_MODES,
    "class_groups": ("auto", "on", "off"),
}


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}

# Defaults of language-model datasets that differ from the classifiers' (applied below any
# config file or flag): 2048-token batches; the synonym language is free to generate, so it
# is seen 5 times rather than 20 (20 passes over 65k tokens overfit it: test NLL and
# truth.kl were lowest halfway through and then rose), 640 updates in all.
TOKEN_DEFAULTS: dict[str, dict[str, Any]] = {
    "synonyms": {"batch_size": 32, "epochs": 5},
    "text": {"batch_size": 32},
}


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (.yaml/.yml) or JSON config file into a dict (keys not yet checked)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"config file {p} is a folder, not a file")
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {p} is not UTF-8 text (byte 0x{e.object[e.start]:02x} "
                          f"at offset {e.start})") from None
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:  # noqa: BLE001 - any parse failure is the user's file
        raise ConfigError(f"cannot parse {p}: {str(e).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p} must hold a mapping of config keys")
    return data


_TYPES = typing.get_type_hints(TrainConfig)
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_EXPECTED = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _scalar(key: str, kind: type, value: Any) -> Any:
    """``value`` as ``kind`` (bool, int, float or str); strings from flags are parsed."""
    bad = ConfigError(f"config key {key}: cannot use {value!r} (expected {_EXPECTED[kind]})")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise bad
    if isinstance(value, bool) or isinstance(value, (list, dict, tuple)):
        raise bad
    if kind is str:
        if isinstance(value, (str, int, float)):  # YAML `name: 2024` is still a name
            return str(value)
        raise bad
    if kind is int:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
            try:  # 1e15, 2.5e5: an exact integer written as a number
                number = float(value)
            except ValueError:
                raise bad from None
            if math.isfinite(number) and number.is_integer() and abs(number) < 2**53:
                return int(number)
            raise bad
        raise bad
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise bad from None
    if not math.isfinite(out):
        raise ConfigError(f"config key {key}: {value!r} is not a finite number")
    return out


def parse_items(text: str, flag: str, cast=str) -> list:
    """A comma-separated list given by the user (``--seeds``, ``--objectives``): an empty
    list, an empty item (``0,,1``, ``ce,``), an unparsable item or a repeat is one line."""
    items = [t.strip() for t in text.split(",")]
    if not any(items):
        raise ConfigError(f"{flag} must name at least one")
    if not all(items):
        raise ConfigError(f"{flag} {text!r} has an empty item (separate items by single "
                          "commas)")
    try:
        out = [cast(t) for t in items]
    except ValueError:
        raise ConfigError(f"{flag}: cannot parse the list {text!r}") from None
    dup = next((x for i, x in enumerate(out) if x in out[:i]), None)
    if dup is not None:
        raise ConfigError(f"{flag} lists {dup!r} twice")
    return out


_ON_OFF = ("class_groups", "fused")  # string fields whose values include "on" and "off"


def _coerce(key: str, value: Any) -> Any:
    """``value`` as the declared type of field ``key`` (``X | None`` accepts None)."""
    hint = _TYPES[key]
    args = typing.get_args(hint)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"config key {key}: cannot be empty (null)")
    if type(None) in args:  # X | None
        hint = next(a for a in args if a is not type(None))
    if key in _ON_OFF and isinstance(value, bool):  # YAML reads on/off as booleans
        value = "on" if value else "off"
    origin = typing.get_origin(hint)
    if origin is list:
        if isinstance(value, str):  # a flag: "8,9"
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key}: cannot use {value!r} (expected a list of "
                              "integers, e.g. [8, 9])")
        return [_scalar(key, typing.get_args(hint)[0], v) for v in value]
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"config key {key}: cannot use {value!r} (expected a mapping, "
                              "e.g. {scale: 0.5})")
        return dict(value)
    return _scalar(key, hint, value)


def resolve_config(file_values: dict[str, Any] | None = None,
                   cli_values: dict[str, Any] | None = None) -> TrainConfig:
    """defaults < ``file_values`` < ``cli_values`` (None in ``cli_values`` means 'not given')."""
    merged: dict[str, Any] = {}
    for source, values in (("config file", file_values or {}), ("flags", cli_values or {})):
        unknown = sorted(set(values) - set(_FIELDS))
        if unknown:
            raise ConfigError(f"unknown config key(s) in {source}: {', '.join(unknown)}; known: "
                              f"{', '.join(_FIELDS)}")
        for k, v in values.items():
            if source == "flags" and v is None:
                continue
            v = _coerce(k, v)
            merged[k] = {**merged.get(k, {}), **v} if k == "objective_kw" else v
    if merged.get("dataset") in TOKEN_DEFAULTS:  # below the file and the flags
        merged = {**TOKEN_DEFAULTS[merged["dataset"]], **merged}
    return TrainConfig(**merged).validate()
