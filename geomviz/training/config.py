"""Typed training configuration, layered as defaults < config file (YAML/JSON) < CLI flags.

Unknown keys are rejected with the list of known ones; values are checked here so
that a bad run fails before it starts. The resolved config is written into the run.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TrainConfig", "ConfigError", "load_config_file", "resolve_config"]


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
    # language-model data: dataset "synonyms" (a generated language with a known law) or
    # "text" (any UTF-8 file); sequences of seq_len input tokens, next-token targets
    data_path: str | None = None  # text: the UTF-8 file
    ood_data_path: str | None = None  # text: another file, scored as OOD
    tokenizer: str = "bpe"  # text: bpe (Hugging Face tokenizers, trained offline) | bytes
    vocab_size: int | None = None  # text: BPE vocabulary (default 4096); synonyms: tokens (256)
    seq_len: int = 64
    train_tokens: int = 65_536  # synonyms: generated training tokens
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
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(msg)

        need(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        need(self.optimizer in ("adamw", "sgd"), f"optimizer must be adamw or sgd, got "
             f"{self.optimizer!r}")
        need(math.isfinite(self.lr) and self.lr > 0, f"lr must be > 0, got {self.lr}")
        need(self.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        need(self.grad_clip is None or self.grad_clip > 0, "grad_clip must be > 0 or unset")
        need(self.amp in ("auto", "bf16", "off"), f"amp must be auto, bf16 or off, got "
             f"{self.amp!r}")
        need(self.flush_every >= 1, f"flush_every must be >= 1, got {self.flush_every}")
        need(self.probe_every is None or self.probe_every >= 1, "probe_every must be >= 1")
        need(self.snapshots >= 0 and self.snapshot_size >= 0 and self.snapshot_ood >= 0,
             "snapshot counts must be >= 0")
        need(self.feature_dim >= 1, f"feature_dim must be >= 1, got {self.feature_dim}")
        need(isinstance(self.objective_kw, dict), "objective_kw must be a mapping")
        need(self.seq_len >= 1, f"seq_len must be >= 1, got {self.seq_len}")
        need(self.seq_len <= self.block_size, f"seq_len {self.seq_len} is longer than the "
             f"model's context (block_size {self.block_size})")
        need(self.tokenizer in ("bpe", "bytes"), f"tokenizer must be bpe or bytes, got "
             f"{self.tokenizer!r}")
        need(self.order in (1, 2), f"order must be 1 or 2, got {self.order}")
        need(self.emission in ("uniform", "zipf"), f"emission must be uniform or zipf, got "
             f"{self.emission!r}")
        need(self.gpt_size in ("tiny", "small"), f"gpt_size must be tiny or small, got "
             f"{self.gpt_size!r}")
        need(self.fused in ("auto", "on", "off"), f"fused must be auto, on or off, got "
             f"{self.fused!r}")
        return self


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}

# Defaults of language-model datasets that differ from the classifiers' (applied below any
# config file or flag): 2048-token batches give the tiny GPT ~640 updates in 20 epochs of
# the default synonym language, about a minute on 2 CPU cores.
TOKEN_DEFAULTS: dict[str, dict[str, Any]] = {
    "synonyms": {"batch_size": 32},
    "text": {"batch_size": 32},
}


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (.yaml/.yml) or JSON config file into a dict (keys not yet checked)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    text = p.read_text()
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


def _coerce(key: str, value: Any) -> Any:
    default = _FIELDS[key].default
    if value is None:
        return None
    if isinstance(default, bool):
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes", "on")
        return bool(value)
    if isinstance(default, int) and not isinstance(default, bool):
        return int(value)
    if key in ("probe_every", "vocab_size"):
        return int(value)
    if isinstance(default, float) or key in ("grad_clip",):
        return float(value)
    return value


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
            try:
                merged[k] = _coerce(k, v)
            except (TypeError, ValueError):
                raise ConfigError(f"config key {k}: cannot use {v!r}") from None
    if "objective_kw" in merged:
        merged["objective_kw"] = {**(file_values or {}).get("objective_kw", {}),
                                  **merged["objective_kw"]}
    if merged.get("dataset") in TOKEN_DEFAULTS:  # below the file and the flags
        merged = {**TOKEN_DEFAULTS[merged["dataset"]], **merged}
    return TrainConfig(**merged).validate()
