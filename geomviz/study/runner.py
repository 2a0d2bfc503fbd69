"""A reproducible multi-objective, multi-seed study: train the grid, then figures and report.

The grid is every objective × seed with the same data, initialisation and schedule.
Runs already finished with the same configuration are kept, so running the same
command again only rebuilds what changed: the figures and the report.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..grid import Execution
from ..store import RunLock, RunLocked, StoreError, open_run, warn_skipped
from ..training.config import ConfigError, TrainConfig, resolve_config

__all__ = ["PRESETS", "STUDY_OBJECTIVES", "PRESET_PLANS", "StudyResult", "preset_config",
           "preset_plan", "check_study", "train_grid", "run_study"]

STUDY_OBJECTIVES = ("ce", "metric_ce", "tfsd", "label_smoothing", "logitnorm", "ce_zloss")
LM_OBJECTIVES = ("ce", "metric_ce", "tfsd", "label_smoothing", "ce_zloss")

PRESETS: dict[str, dict] = {
    # CPU, minutes: digits 8 and 9 held out as the OOD split
    "mnist1d": {"dataset": "mnist1d", "ood_classes": [8, 9], "epochs": 20},
    # ground truth for the target-entropy claim: overlapping class pairs, a far OOD blob
    "gaussians": {"dataset": "gaussians", "epochs": 20},
    # GPU: ResNet on local CIFAR-10 files; SVHN (far) or CIFAR-100 (near) as OOD if present
    "cifar10": {"dataset": "cifar10", "model": "resnet", "epochs": 30, "batch_size": 256,
                "optimizer": "sgd", "lr": 0.1, "weight_decay": 5e-4, "warmup_epochs": 2.0},
    # CPU, <= 15 min: the generated language with synonym sets and its exact next-token law
    "lm-synonyms": {"dataset": "synonyms", "model": "gpt", "train_tokens": 131072,
                    "epochs": 4, "snapshots": 20},
    # GPU: a text file (--data-path), byte-level BPE, the small GPT
    "lm-text": {"dataset": "text", "model": "gpt", "gpt_size": "small", "feature_dim": 768,
                "vocab_size": 8192, "seq_len": 256, "batch_size": 64, "epochs": 3,
                "lr": 6e-4, "snapshots": 20},
    # CPU: semantic structure (C8): 5 superclasses of 4 Gaussian classes, a far OOD blob
    "hierarchy": {"dataset": "gaussians_hier", "epochs": 20},
    # CPU: label noise on two datasets at two rates (its parts in PRESET_PLANS)
    "noise": {"dataset": "mnist1d", "ood_classes": [8, 9], "epochs": 20, "label_noise": 0.2},
}


@dataclass(frozen=True)
class Plan:
    """What a preset trains beyond its config: objectives, seeds and settings (parts)."""

    objectives: tuple[str, ...] = STUDY_OBJECTIVES
    seeds: tuple[int, ...] = (0, 1, 2)
    # (label, config overrides): one grid per part, trained and reported in turn
    parts: tuple[tuple[str, dict], ...] = ()
    needs: tuple[str, ...] = ()  # config fields the user must give


_NOISE_PARTS = tuple(
    (f"{name}, label noise {rate}", {**data, "label_noise": rate})
    for name, data in (("mnist1d", {"dataset": "mnist1d", "ood_classes": [8, 9]}),
                       ("gaussians", {"dataset": "gaussians", "ood_classes": []}))
    for rate in (0.2, 0.4))

FIVE = (0, 1, 2, 3, 4)  # claims need paired intervals; 3 seeds give t = 4.30, 5 give 2.78
PRESET_PLANS: dict[str, Plan] = {
    "mnist1d": Plan(seeds=FIVE),
    "gaussians": Plan(seeds=FIVE),
    "hierarchy": Plan(seeds=FIVE),
    "lm-synonyms": Plan(objectives=LM_OBJECTIVES),
    "lm-text": Plan(objectives=LM_OBJECTIVES, needs=("data_path",)),
    "noise": Plan(seeds=FIVE, parts=_NOISE_PARTS),
}


def preset_plan(preset: str) -> Plan:
    """The preset's objectives, default seeds and parts."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    return PRESET_PLANS.get(preset, Plan())

# fields that do not change what a run computes: a finished run is reused across them
_IRRELEVANT = ("out", "name", "resume", "progress", "flush_every", "eval_batch_size", "device")


@dataclass
class StudyResult:
    root: Path
    runs: list[Path] = field(default_factory=list)
    trained: list[Path] = field(default_factory=list)
    reused: list[Path] = field(default_factory=list)
    train_seconds: float = 0.0
    diverged: list[Path] = field(default_factory=list)  # on workers: kept, counted
    failed: dict[Path, str] = field(default_factory=dict)  # on workers: run -> one line


def _cifar_ood(data_dir: str | None, ood_dir: str | None) -> dict[str, str]:
    """The OOD sets present beside CIFAR-10: SVHN (far) and CIFAR-100 (near). The first
    found is the main OOD split (snapshotted, in the table); the other is scored too."""
    if not data_dir:
        return {}
    base, found = Path(data_dir), {}
    if ood_dir and not Path(ood_dir).is_dir():
        raise ConfigError(f"--ood-dir {ood_dir} is not a folder")
    if ood_dir and not (Path(ood_dir) / "test_32x32.mat").exists():
        raise ConfigError(f"--ood-dir {ood_dir} holds no SVHN test_32x32.mat")
    for cand in [Path(ood_dir)] if ood_dir else [base / "svhn", base]:
        if (cand / "test_32x32.mat").exists():
            found["svhn"] = str(cand)
            break
    for cand in (base / "cifar-100-python", base):
        if (cand / "test").exists() and (cand / "meta").exists():
            found["cifar100"] = str(base)
            break
    return found


def preset_config(preset: str, overrides: dict | None = None) -> TrainConfig:
    """The preset's config with ``overrides`` (CLI flags) on top, validated."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    values = {**PRESETS[preset], **(overrides or {})}
    missing = [k for k in preset_plan(preset).needs if not values.get(k)]
    if missing:
        raise ConfigError(f"the {preset} preset needs --{missing[0].replace('_', '-')}")
    if preset == "cifar10" and not values.get("ood_dataset"):
        found = list(_cifar_ood(values.get("data_dir"), values.get("ood_dir")).items())
        if found:
            values.update(ood_dataset=found[0][0], ood_dir=found[0][1])
        if len(found) > 1:
            values.update(near_ood_dataset=found[1][0], near_ood_dir=found[1][1])
    return resolve_config({}, values)


def _differences(stored: dict, cfg: TrainConfig) -> list[str]:
    """Fields whose stored value differs; a field the run predates compares as its default
    (a field is added with the default that keeps the earlier behaviour)."""
    want, defaults = dataclasses.asdict(cfg), dataclasses.asdict(TrainConfig())
    return [k for k in want if k not in _IRRELEVANT and stored.get(k, defaults[k]) != want[k]]


def _plan(cfg: TrainConfig, keep_diverged: bool = False) -> str:
    """``train``, ``reuse``, ``resume`` or ``skip`` (an unreadable store, with a warning)
    for the run folder ``cfg.out``; refuses to overwrite. A run whose writer is dead (its
    ``run.lock`` flock is free: the OS drops it with the process, ``kill -9`` included) is
    resumed, from scratch when it died before its first checkpoint, whatever its heartbeat
    says. ``keep_diverged``: a diverged run is a result (a sweep's), reused as is."""
    out = Path(cfg.out)
    if not (out / "run.sqlite").exists():
        return "train"
    try:
        with open_run(out) as run:
            meta = run.meta
    except StoreError as e:
        warn_skipped(out, f"{str(e).splitlines()[0]} (move it away to train it again)")
        return "skip"
    diff = _differences(meta.get("config", {}), cfg)
    if diff:
        raise ConfigError(f"{out} was trained with a different config ({', '.join(diff)}); "
                          "use another --out or move that run away")
    if meta["status"] == "finished" or (keep_diverged and meta["status"] == "diverged"):
        return "reuse"
    if meta["status"] in ("crashed", "running"):
        try:
            RunLock(out).release()
        except RunLocked:
            raise StoreError(f"{out} is still being written by another process") from None
        return "resume"  # from the checkpoint, or from scratch without one
    raise StoreError(f"{out} holds a {meta['status']} run; move it away to retrain")


def check_study(preset: str, seeds: list[int] | None, objectives: list[str] | None,
                overrides: dict | None = None) -> None:
    """Everything about a study that can fail without work: preset, parts, seeds,
    objectives and each run's config (names, data paths). Raises ConfigError."""
    from ..training.train import check_objective, resolve_objective

    plan = preset_plan(preset)
    seeds = list(plan.seeds) if seeds is None else seeds
    objectives = list(plan.objectives) if objectives is None else objectives
    if not seeds or not objectives:
        raise ConfigError("a study needs at least one seed and one objective")
    if any(s < 0 for s in seeds):
        raise ConfigError(f"--seeds must be >= 0, got {min(seeds)}")
    _no_repeats([resolve_objective(o).name for o in objectives], "objective")
    _no_repeats(seeds, "seed")
    for _, extra in plan.parts or ((None, {}),):
        base = preset_config(preset, {**extra, **(overrides or {})})
        for o in objectives:
            check_objective(dataclasses.replace(base, objective=o))


def _no_repeats(items: list, what: str) -> None:
    dup = next((x for i, x in enumerate(items) if x in items[:i]), None)
    if dup is not None:
        raise ConfigError(f"the {what} {dup!r} is listed twice")


def train_grid(base: TrainConfig, objectives: list[str], seeds: list[int], root: Path,
               reuse: bool = False, execution: Execution | None = None) -> StudyResult:
    """Train ``objectives × seeds`` under ``root/<objective>-s<seed>``, sharing one data
    bundle per seed. With ``reuse``, finished runs of the same config are kept and
    crashed ones resumed from their checkpoint. ``execution``: on workers (``--workers``,
    Ray), where a run that raises or diverges is counted and the grid goes on; serially
    (the default) a run that raises stops the grid, as always."""
    from ..training.resume import check_out
    from ..training.train import check_objective, load_bundle, resolve_objective, train

    result = StudyResult(root)
    # a plugin's spec (package.module:name) is imported here; folders take its name
    infos = [resolve_objective(o) for o in objectives]
    cfgs = [dataclasses.replace(base, objective=i.spec, seed=s,
                                out=str(root / f"{i.name}-s{s}"),
                                name=f"{root.name}/{i.name}-s{s}", resume=False)
            for i in infos for s in seeds]
    label = {i.spec: i.name for i in infos}
    _no_repeats([i.name for i in infos], "objective")
    _no_repeats(seeds, "seed")
    for cfg in cfgs:  # every name, value and folder checked before the first run starts
        check_objective(cfg)
    plans = [_plan(c) if reuse else "train" for c in cfgs]
    for cfg, plan in zip(cfgs, plans, strict=True):
        if plan == "train":
            check_out(cfg)
    bundles: dict[int, object] = {}
    t0 = time.perf_counter()
    todo = []
    for cfg, plan in zip(cfgs, plans, strict=True):
        if plan == "skip":
            continue
        result.runs.append(Path(cfg.out))
        if plan == "reuse":
            print(f"== {label[cfg.objective]} seed {cfg.seed}: finished run kept ({cfg.out})")
            result.reused.append(Path(cfg.out))
            continue
        if execution is not None and not execution.serial:
            todo.append((cfg, plan))
            continue
        if cfg.seed not in bundles:
            bundles[cfg.seed] = load_bundle(cfg)
        print(f"== {label[cfg.objective]} seed {cfg.seed} -> {cfg.out}"
              f"{' (resumed)' if plan == 'resume' else ''}", flush=True)
        train(dataclasses.replace(cfg, resume=plan == "resume"), bundles[cfg.seed])
        result.trained.append(Path(cfg.out))
    if todo:
        _train_on_workers(todo, execution, result, base)
    result.train_seconds = time.perf_counter() - t0
    return result


def _train_on_workers(todo: list[tuple[TrainConfig, str]], execution: Execution,
                      result: StudyResult, base: TrainConfig) -> None:
    """The runs of ``todo`` on the workers; the data of the first is loaded here first, so
    a data error is one line before any worker starts or any run is written."""
    from ..grid import Job, execute
    from ..training.train import load_bundle, resolve_objective

    load_bundle(todo[0][0])
    jobs = [Job(dataclasses.asdict(c), p == "resume",
                f"{resolve_objective(c.objective).name} seed {c.seed}"
                f"{' (resumed)' if p == 'resume' else ''}")
            for c, p in todo]
    outcomes = execute(jobs, execution, base.device, bool(base.progress))
    for j, out in sorted(outcomes.items()):
        folder = jobs[j].out
        if out.status == "failed":
            result.failed[folder] = out.message
            result.runs.remove(folder)
        else:
            result.trained.append(folder)
            if out.status == "diverged":
                result.diverged.append(folder)


def run_study(preset: str, seeds: list[int] | None, out: str | Path,
              objectives: list[str] | None = None, overrides: dict | None = None,
              formats: tuple[str, ...] = ("png", "svg", "html"), width: int = 800,
              scale: float = 2.0, command: str | None = None,
              execution: Execution | None = None) -> dict:
    """Train (or reuse) the grid of every part of the preset, export each part's figure
    set to ``out/figures[/<part>]`` and write ``out/report.md``. Returns what was done
    (``grid``: every run; the training time summed over parts)."""
    from .export import ExportError, export
    from .figureset import build_figures
    from .report import ReportPart, write_parts_report

    out = Path(out)
    plan = preset_plan(preset)
    objectives = list(objectives or plan.objectives)
    seeds = list(plan.seeds) if seeds is None else seeds
    if not seeds or not objectives:
        raise ConfigError("a study needs at least one seed and one objective")
    parts = plan.parts or ((None, {}),)
    # every part's config is checked before the first run trains
    bases = [(label, preset_config(preset, {**extra, **(overrides or {})}))
             for label, extra in parts]
    total = StudyResult(out / "runs")
    report_parts, exported, error = [], [], None
    for label, base in bases:
        sub = _slug(label) if label else ""
        grid = train_grid(base, objectives, seeds, out / "runs" / sub if sub else out / "runs",
                          reuse=True, execution=execution)
        for name in ("runs", "trained", "reused", "diverged"):
            getattr(total, name).extend(getattr(grid, name))
        total.failed.update(grid.failed)
        total.train_seconds += grid.train_seconds
        figs = build_figures(grid.runs, cache_root=grid.root)
        fig_dir = out / "figures" / sub if sub else out / "figures"
        try:
            res = export(figs.figures, fig_dir, list(formats), width, scale)
            files = res.files
            exported.append(res)
        except ExportError as e:  # the report still gets written, linking the HTML written
            error = e
            files = [fig_dir / f"{n}.html" for n in figs.figures] if "html" in formats else []
        report_parts.append(ReportPart(label or base.dataset, base, figs, fig_dir, files))
    report = write_parts_report(out / "report.md", preset, report_parts,
                                command or shlex.join(["geomviz", *sys.argv[1:]]))
    if total.failed or total.diverged:
        with open(report, "a") as f:
            f.write("\n" + "\n".join(failure_lines(total.failed, total.diverged, out)) + "\n")
    if error is not None:
        raise error
    return {"grid": total, "figures": [p.figs for p in report_parts], "export": exported,
            "report": report}


def failure_lines(failed: dict[Path, str], diverged: list[Path], out: Path) -> list[str]:
    """The report's section on runs that raised (left out of every table and figure; the
    next call resumes them) and runs that diverged on workers (kept)."""
    def rel(p: Path) -> str:
        return str(p.relative_to(out)) if p.is_relative_to(out) else str(p)

    lines = ["## Runs that did not finish", ""]
    if failed:
        lines += [f"{len(failed)} run{'' if len(failed) == 1 else 's'} raised and "
                  f"{'is' if len(failed) == 1 else 'are'} left out of the results above; "
                  "the same command resumes "
                  f"{'it' if len(failed) == 1 else 'them'}:", ""]
        lines += [f"- `{rel(p)}`: {why}" for p, why in sorted(failed.items())]
        lines.append("")
    if diverged:
        lines += [f"{len(diverged)} run{'' if len(diverged) == 1 else 's'} diverged (a "
                  "non-finite loss) and "
                  f"{'is' if len(diverged) == 1 else 'are'} kept with status diverged: "
                  + ", ".join(f"`{rel(p)}`" for p in diverged), ""]
    return lines


def _slug(label: str) -> str:
    """A folder name for a part label: ``mnist1d, label noise 0.2`` -> ``mnist1d-noise0.2``."""
    return label.replace(", label noise ", "-noise").replace(" ", "_").replace(",", "")
