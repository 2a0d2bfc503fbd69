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
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..grid import Execution, Job, execute
from ..store import STORE_FILE, StoreError, open_run
from ..training.config import (
    ONLY_FOR,
    ConfigError,
    TrainConfig,
    check_rate,
    parse_items,
    resolve_config,
)
from .runner import _IRRELEVANT, _no_repeats, _plan

__all__ = ["SWEEP_PRESETS", "SWEEP_OBJECTIVES", "SweepGrid", "Cell", "parse_lrs", "parse_onoff",
           "parse_items", "run_name", "sweep_config", "gpu_warning", "check_grid", "train_sweep",
           "MANIFEST", "cell_of", "manifest_cells"]

SWEEP_OBJECTIVES = ("ce", "ce_zloss", "tfsd", "metric_ce")
MANIFEST = "sweep.json"

# The CPU preset is sized to train its 40 runs (128 updates each, 10% warmup, then cosine
# decay), then report and figures, in under 20 minutes on 2 cores (measured: docs/claims/
# c4.md and docs/guide/grids.md); its top rate, 0.3, is past where Wortsman et al. see
# small Transformers without qk-layernorm break. The GPU one is a larger proxy.
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
    earlier: list[Path] = field(default_factory=list)  # runs of earlier grids (merged)
    failed: dict[Path, str] = field(default_factory=dict)  # runs that raised: one line each
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
        out.append(check_rate("--lrs", v))  # > 0 and a normal float32, as train's --lr
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
    _no_repeats(["on" if v else "off" for v in out], "--qk-layernorm value")
    return out


def run_name(cell: Cell) -> str:
    return f"{cell.objective}-lr{cell.lr:g}-qk{'on' if cell.qk else 'off'}-s{cell.seed}"


def sweep_config(preset: str | None, overrides: dict | None = None) -> tuple[TrainConfig, dict]:
    """The base config (preset, then ``overrides``), validated, and the preset's axes."""
    if preset is not None and preset not in SWEEP_PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose from {', '.join(SWEEP_PRESETS)}")
    p = SWEEP_PRESETS.get(preset, {}) if preset else {}
    preset_values = p.get("config", {})
    dataset = (overrides or {}).get("dataset")
    if dataset is not None:  # another dataset: drop the preset's fields that it would ignore
        preset_values = {k: v for k, v in preset_values.items()
                         if k not in ONLY_FOR or dataset in ONLY_FOR[k]}
    cfg = resolve_config({}, {**preset_values, **(overrides or {})})
    return cfg, {k: v for k, v in p.items() if k != "config"}


def gpu_warning(preset: str | None, cfg: TrainConfig) -> str | None:
    """The warning for a GPU preset about to train on a CPU (printed by the command once
    every flag has been checked, so a bad flag is still its one line)."""
    if preset and preset.endswith("-gpu") and cfg.device in ("auto", "cpu"):
        import torch

        if cfg.device == "cpu" or not torch.cuda.is_available():
            return (f"geomviz: warning: the {preset} preset is sized for a GPU; on this CPU "
                    "it will take hours (lm-spikes is the CPU one)")
    return None


_PER_CELL = ("objective", "lr", "qk_layernorm", "seed")


def _base_of(config: dict) -> dict:
    """The fields of a run's config that every cell of one grid shares (JSON-normalised)."""
    return json.loads(json.dumps({k: v for k, v in config.items()
                                  if k not in _IRRELEVANT and k not in _PER_CELL}))


def cell_of(name: str, entry: object) -> Cell:
    """The cell of one manifest entry, checked: an objective name, a finite rate > 0, qk
    true or false, a seed >= 0 (where the folder lies is checked where it is read). A bad
    entry (``"lr": NaN``, a string seed) raises ValueError saying why."""
    if not name:
        raise ValueError("an entry has an empty run name")
    if not isinstance(entry, dict):
        raise ValueError(f"{name}: not a table of objective, lr, qk and seed")
    try:
        obj, lr, qk, seed = (entry[k] for k in ("objective", "lr", "qk", "seed"))
    except KeyError as e:
        raise ValueError(f"{name}: no {e.args[0]!r}") from None
    if not isinstance(obj, str) or not obj:
        raise ValueError(f"{name}: objective {obj!r} is not a name")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or \
            not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"{name}: lr {lr!r} is not a finite number > 0")
    if not isinstance(qk, bool):
        raise ValueError(f"{name}: qk {qk!r} is not true or false")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"{name}: seed {seed!r} is not an integer >= 0")
    return Cell(obj, float(lr), qk, seed)


def manifest_cells(path: Path, runs: dict, warn: bool = True) -> dict[str, Cell]:
    """The good entries of a manifest's ``runs`` table; the bad ones are one warning line
    (how many, and the first with its reason), so one bad entry never hides a sweep."""
    cells, bad = {}, []
    for name, entry in runs.items():
        try:
            cells[name] = cell_of(name, entry)
        except ValueError as e:
            bad.append(str(e))
    if bad and warn:
        print(f"geomviz: warning: {path}: {len(bad)} bad run entr{'y' if len(bad) == 1 else 'ies'}"
              f" left out ({bad[0][:160]})", file=sys.stderr, flush=True)
    return cells


def _read_manifest(root: Path, warn: bool = True) -> dict | None:
    """The manifest in ``root`` (None when there is none), its bad entries dropped with one
    warning; a file that is not a manifest at all is one ConfigError."""
    path = root / MANIFEST
    if not path.exists():
        return None
    try:
        m = json.loads(path.read_text())
        if not isinstance(m, dict) or not isinstance(m.get("runs"), dict):
            raise ValueError("no 'runs' table")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path} cannot be read ({str(e).splitlines()[0][:120]}); move it "
                          "away or use another --out") from None
    good = manifest_cells(path, m["runs"], warn)
    m["runs"] = {name: m["runs"][name] for name in good}
    return m


def _stored_base(root: Path, manifest: dict) -> dict | None:
    """The base config of the grid already in ``root``: the manifest's, else (a manifest
    from before it recorded one) that of its first readable run."""
    if isinstance(manifest.get("config"), dict):
        return manifest["config"]
    for name in manifest["runs"]:
        folder = root / name
        if (folder / STORE_FILE).exists() and _inside(folder, root):
            try:
                with open_run(folder) as run:
                    cfg = run.meta.get("config")
            except StoreError:
                continue
            if isinstance(cfg, dict):
                return _base_of(cfg)
    return None


def _inside(folder: Path, root: Path) -> bool:
    return folder.resolve().is_relative_to(root.resolve())


def check_manifest(base: TrainConfig, root: str | Path, warn: bool = True) -> dict | None:
    """The manifest already in ``root`` (None when there is none), refused in one line when
    it cannot be read or its grid was trained with another base config: a new grid is
    merged into it only when the two share everything but the swept axes."""
    root = Path(root)
    m = _read_manifest(root, warn)
    if m is None:
        return None
    old, new = _stored_base(root, m), _base_of(dataclasses.asdict(base))
    if old is not None:
        diff = sorted(k for k in new if k in old and old[k] != new[k])
        if diff:
            raise ConfigError(f"{root} holds a sweep trained with another config "
                              f"({', '.join(diff[:6])} differ); use another --out")
    return m


def _manifest(old: dict | None, base: TrainConfig, cells: list[Cell]) -> dict:
    """This grid's manifest merged into ``old``: the axes and runs of both."""
    runs = dict((old or {}).get("runs", {}))
    runs.update({run_name(c): dataclasses.asdict(c) for c in cells})
    all_cells = [Cell(c["objective"], float(c["lr"]), bool(c["qk"]), int(c["seed"]))
                 for c in runs.values()]

    def axis(key):
        return list(dict.fromkeys(getattr(c, key) for c in all_cells))

    return {"objectives": axis("objective"), "lrs": sorted(axis("lr")),
            "seeds": sorted(axis("seed")), "qk_layernorm": sorted(axis("qk")),
            "dataset": base.dataset, "config": _base_of(dataclasses.asdict(base)),
            "runs": runs}


def check_grid(base: TrainConfig, objectives: list[str], lrs: list[float], seeds: list[int],
               qks: list[bool], root: str | Path) -> tuple[list[Cell], list[TrainConfig]]:
    """Every cell and its config, each checked (names, values, model) before any work."""
    from ..training.train import check_objective, resolve_objective

    root = Path(root)
    # a plugin's spec (package.module:name) is imported here: cells and folders take its
    # name, each run's config keeps the spec (a worker or --resume imports it again)
    infos = {o: resolve_objective(o) for o in objectives}
    spec = {i.name: i.spec for i in infos.values()}
    objectives = [infos[o].name for o in objectives]
    for what, items in (("objective", objectives), ("seed", seeds), ("learning rate", lrs),
                        ("qk-layernorm value", qks)):
        if not items:
            raise ConfigError(f"a sweep needs at least one {what}")
        _no_repeats(list(items), what)
    if any(not (lr > 0 and math.isfinite(lr)) for lr in lrs):
        raise ConfigError("every learning rate must be a finite number > 0")
    if base.dataset not in ("synonyms", "text") and any(qks):
        raise ConfigError("--qk-layernorm on needs the gpt model (a token dataset)")
    names: dict[str, float] = {}
    for lr in lrs:  # run names print the rate with 6 digits: two rates must not share one
        name = run_name(Cell("x", float(lr), False, 0))
        if name in names:
            raise ConfigError(f"the learning rates {names[name]!r} and {lr!r} give the same "
                              f"run name (lr{lr:g}); give rates that differ in 6 digits")
        names[name] = lr
    cells = [Cell(o, float(lr), bool(q), int(s)) for q in qks for o in objectives
             for lr in lrs for s in seeds]
    cfgs = [dataclasses.replace(base, objective=spec[c.objective], lr=c.lr, qk_layernorm=c.qk,
                                seed=c.seed, out=str(root / run_name(c)),
                                name=f"{root.name}/{run_name(c)}", resume=False)
            for c in cells]
    for cfg in cfgs:
        cfg.validate()
        check_objective(cfg)
    check_manifest(base, root, warn=False)  # warned once, when the grid reads it to train
    return cells, cfgs


def train_sweep(base: TrainConfig, objectives: list[str], lrs: list[float], seeds: list[int],
                qks: list[bool], root: str | Path, execution: Execution | None = None
                ) -> SweepGrid:
    """Train (or reuse) every cell under ``root``; every name, value and folder is checked
    before the first run starts. A diverged run is kept and counted. On workers
    (``execution``), a run that raises is counted with its reason and left out of the
    results; the grid goes on (serially it stops the grid, as always)."""
    from ..training.resume import check_out
    from ..training.train import Diverged, load_bundle, train

    root = Path(root)
    cells, cfgs = check_grid(base, objectives, lrs, seeds, qks, root)
    old = check_manifest(base, root)
    plans = [_plan(c, keep_diverged=True) for c in cfgs]
    bundles: dict[int, object] = {}
    first = next((c for c, p in zip(cfgs, plans, strict=True) if p in ("train", "resume")),
                 None)
    if first is not None:  # the data loads (or fails in one line) before anything is written
        bundles[first.seed] = load_bundle(first)
    for cfg, plan in zip(cfgs, plans, strict=True):
        if plan == "train":
            check_out(cfg)
    grid = SweepGrid(root)
    root.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(old, base, cells)
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(root / MANIFEST)
    names = {run_name(c) for c in cells}
    for name, c in manifest["runs"].items():  # earlier grids' runs: kept in the report
        folder = root / name
        if name not in names and (folder / STORE_FILE).exists() and _inside(folder, root):
            grid.cells[folder] = Cell(c["objective"], float(c["lr"]), bool(c["qk"]),
                                      int(c["seed"]))
            grid.earlier.append(folder)
    t0 = time.perf_counter()
    jobs = []
    for cell, cfg, plan in zip(cells, cfgs, plans, strict=True):
        out = Path(cfg.out)
        if plan == "skip":
            grid.skipped.append(out)
            continue
        grid.cells[out] = cell
        if plan == "reuse":
            grid.reused.append(out)
            continue
        note = "" if plan != "resume" else " (resumed)" if (out / "checkpoint.pt").exists() \
            else " (restarted: its writer died before the first checkpoint)"
        if execution is not None and not execution.serial:
            jobs.append(Job(dataclasses.asdict(cfg), plan == "resume", run_name(cell) + note))
            continue
        if cfg.seed not in bundles:
            bundles[cfg.seed] = load_bundle(cfg)
        print(f"== {run_name(cell)}{note}", flush=True)
        try:
            train(dataclasses.replace(cfg, resume=plan == "resume"), bundles[cfg.seed])
        except Diverged as e:
            print(f"   diverged, kept as a result: {e}", flush=True)
            grid.diverged.append(out)
        grid.trained.append(out)
    if jobs:
        bundles.clear()  # the workers load their own
        for j, res in sorted(execute(jobs, execution, base.device, bool(base.progress)).items()):
            out = jobs[j].out
            if res.status == "failed":
                grid.failed[out] = res.message
                del grid.cells[out]
                continue
            if res.status == "diverged":
                grid.diverged.append(out)
            grid.trained.append(out)
    grid.train_seconds = time.perf_counter() - t0
    return grid
