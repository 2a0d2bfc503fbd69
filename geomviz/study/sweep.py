"""A learning-rate sweep: objectives × learning rates × seeds (× qk-layernorm) on one model.

Wortsman et al. 2023 (arXiv 2309.14322) reproduce the instabilities of large Transformer
runs (attention-logit growth, output-logit divergence) in small ones trained at high
learning rates, and measure stability as learning-rate sensitivity. This trains that
grid; :mod:`.sweep_results` reads it back and :mod:`.sweep_report` writes the report.

Every cell is a run under ``<root>/<objective>-lr<lr>-qk<on|off>-s<seed>``; every
objective of a seed shares its data, initialisation and batches (as in ``geomviz
study``). A finished run of the same config is reused, a crashed one resumed, and a
diverged one (non-finite loss: :class:`~geomviz.training.train.Diverged`) is a result:
kept with status ``diverged``, reused on the next call and counted, never an error.
``<root>/sweep.json`` lists the grid's axes, for the dashboard's sweep page.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..store import StoreError, open_run
from ..training.config import ConfigError, TrainConfig, resolve_config
from .runner import _differences, _no_repeats, _plan

__all__ = ["SWEEP_PRESETS", "SWEEP_OBJECTIVES", "SweepGrid", "Cell", "parse_lrs", "parse_onoff",
           "run_name", "sweep_config", "check_grid", "train_sweep", "MANIFEST"]

SWEEP_OBJECTIVES = ("ce", "ce_zloss", "tfsd", "metric_ce")
MANIFEST = "sweep.json"

# The CPU preset is sized to train its 40 runs (128 updates each, 10% warmup, then cosine
# decay), then report and figures, in under 20 minutes on 2 cores (measured: README); its
# top rate, 0.3, is past where Wortsman et al. see small Transformers without qk-layernorm
# break. The GPU one is a larger proxy.
SWEEP_PRESETS: dict[str, dict] = {
    "lm-spikes": {
        "config": {"dataset": "synonyms", "model": "gpt", "gpt_size": "tiny",
                   "train_tokens": 131_072, "test_tokens": 4096, "epochs": 2, "batch_size": 32,
                   "warmup_epochs": 0.2, "flush_every": 8, "snapshots": 0},
        "objectives": list(SWEEP_OBJECTIVES), "lrs": [1e-3, 1e-2, 3e-2, 1e-1, 3e-1],
        "seeds": [0, 1], "qk": [False]},
    "lm-spikes-gpu": {
        "config": {"dataset": "synonyms", "model": "gpt", "gpt_size": "small",
                   "feature_dim": 768, "seq_len": 256, "block_size": 256,
                   "train_tokens": 8_388_608, "test_tokens": 65_536, "epochs": 1,
                   "batch_size": 64, "warmup_epochs": 0.1, "flush_every": 20, "snapshots": 0,
                   "weight_decay": 1e-4},
        "objectives": list(SWEEP_OBJECTIVES),
        "lrs": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1], "seeds": [0, 1, 2],
        "qk": [False, True]},
}


@dataclass(frozen=True)
class Cell:
    objective: str
    lr: float
    qk: bool
    seed: int


@dataclass
class SweepGrid:
    root: Path
    cells: dict[Path, Cell] = field(default_factory=dict)  # every run of the grid
    trained: list[Path] = field(default_factory=list)
    reused: list[Path] = field(default_factory=list)
    diverged: list[Path] = field(default_factory=list)  # this call's new divergences
    skipped: list[Path] = field(default_factory=list)  # unreadable stores (warned)
    train_seconds: float = 0.0


def parse_lrs(text: str | None) -> list[float]:
    """``"1e-3,3e-3"`` -> ``[0.001, 0.003]``: finite, > 0, no repeats; else one line."""
    items = [t.strip() for t in (text or "").split(",")]
    if not text or not any(items):
        raise ConfigError("--lrs must list at least one learning rate, e.g. 1e-3,3e-3")
    out = []
    for t in items:
        try:
            v = float(t)
        except ValueError:
            raise ConfigError(f"--lrs: {t!r} is not a number (give e.g. 1e-3,3e-3)") from None
        if not (v > 0 and math.isfinite(v)):
            raise ConfigError(f"--lrs: every learning rate must be a finite number > 0, got {t}")
        out.append(v)
    _no_repeats(out, "learning rate")
    return out


def parse_onoff(text: str) -> list[bool]:
    """``"on,off"`` -> ``[True, False]`` (the ``--qk-layernorm`` axis)."""
    table = {"on": True, "off": False, "true": True, "false": False}
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in table]
    if not items or bad:
        raise ConfigError(f"--qk-layernorm takes on, off or on,off; got {text!r}")
    out = [table[t] for t in items]
    _no_repeats(out, "--qk-layernorm value")
    return out


def run_name(cell: Cell) -> str:
    return f"{cell.objective}-lr{cell.lr:g}-qk{'on' if cell.qk else 'off'}-s{cell.seed}"


def sweep_config(preset: str | None, overrides: dict | None = None) -> tuple[TrainConfig, dict]:
    """The base config (preset, then ``overrides``), validated, and the preset's axes."""
    if preset is not None and preset not in SWEEP_PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose from {', '.join(SWEEP_PRESETS)}")
    p = SWEEP_PRESETS.get(preset, {}) if preset else {}
    values = {**p.get("config", {}), **(overrides or {})}
    return resolve_config({}, values), {k: v for k, v in p.items() if k != "config"}


def _plan_cell(cfg: TrainConfig) -> str:
    """:func:`.runner._plan`, except that a diverged run of the same config is a result."""
    out = Path(cfg.out)
    if (out / "run.sqlite").exists():
        try:
            with open_run(out) as run:
                meta = run.meta
        except StoreError:
            meta = None  # _plan warns and skips it
        if meta and meta["status"] == "diverged" and not _differences(meta["config"], cfg):
            return "reuse"
    return _plan(cfg)


def check_grid(base: TrainConfig, objectives: list[str], lrs: list[float], seeds: list[int],
               qks: list[bool], root: str | Path) -> tuple[list[Cell], list[TrainConfig]]:
    """Every cell and its config, each checked (names, values, model) before any work."""
    from ..training.train import check_objective

    root = Path(root)
    for what, items in (("objective", objectives), ("seed", seeds), ("learning rate", lrs),
                        ("qk-layernorm value", qks)):
        if not items:
            raise ConfigError(f"a sweep needs at least one {what}")
        _no_repeats(list(items), what)
    if any(not (lr > 0 and math.isfinite(lr)) for lr in lrs):
        raise ConfigError("every learning rate must be a finite number > 0")
    if base.dataset not in ("synonyms", "text") and any(qks):
        raise ConfigError("--qk-layernorm on needs the gpt model (a token dataset)")
    cells = [Cell(o, float(lr), bool(q), int(s)) for q in qks for o in objectives
             for lr in lrs for s in seeds]
    cfgs = [dataclasses.replace(base, objective=c.objective, lr=c.lr, qk_layernorm=c.qk,
                                seed=c.seed, out=str(root / run_name(c)),
                                name=f"{root.name}/{run_name(c)}", resume=False)
            for c in cells]
    for cfg in cfgs:
        cfg.validate()
        check_objective(cfg)
    return cells, cfgs


def train_sweep(base: TrainConfig, objectives: list[str], lrs: list[float], seeds: list[int],
                qks: list[bool], root: str | Path) -> SweepGrid:
    """Train (or reuse) every cell under ``root``; every name, value and folder is checked
    before the first run starts. A diverged run is kept and counted."""
    from ..training.resume import check_out
    from ..training.train import Diverged, load_bundle, train

    root = Path(root)
    cells, cfgs = check_grid(base, objectives, lrs, seeds, qks, root)
    plans = [_plan_cell(c) for c in cfgs]
    for cfg, plan in zip(cfgs, plans, strict=True):
        if plan == "train":
            check_out(cfg)
    grid = SweepGrid(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST).write_text(json.dumps({
        "objectives": objectives, "lrs": [float(x) for x in lrs], "seeds": seeds,
        "qk_layernorm": qks, "dataset": base.dataset,
        "runs": {run_name(c): dataclasses.asdict(c) for c in cells}}, indent=1))
    bundles: dict[int, object] = {}
    t0 = time.perf_counter()
    for cell, cfg, plan in zip(cells, cfgs, plans, strict=True):
        out = Path(cfg.out)
        if plan == "skip":
            grid.skipped.append(out)
            continue
        grid.cells[out] = cell
        if plan == "reuse":
            grid.reused.append(out)
            continue
        if cfg.seed not in bundles:
            bundles[cfg.seed] = load_bundle(cfg)
        print(f"== {run_name(cell)}{' (resumed)' if plan == 'resume' else ''}", flush=True)
        try:
            train(dataclasses.replace(cfg, resume=plan == "resume"), bundles[cfg.seed])
        except Diverged as e:
            print(f"   diverged, kept as a result: {e}", flush=True)
            grid.diverged.append(out)
        grid.trained.append(out)
    grid.train_seconds = time.perf_counter() - t0
    return grid
