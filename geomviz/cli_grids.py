"""The grid commands, ``geomviz compare``, ``study`` and ``sweep``: parsers and handlers.

Kept apart from :mod:`geomviz.cli` (the entry point and the single-run commands) so each
file stays one concern; they share its argument parsers and its one-line error handling.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from .cli import (
    UserError,
    _add_config_flags,
    _compare,
    _int_in,
    _named,
    _parse_list,
    _positive_float,
    check_figure_size,
    check_seeds,
)

__all__ = ["add_grid_commands"]


def _execution(args: argparse.Namespace):
    """Where the runs execute (``--workers``, ``--executor``, ...), checked before any work:
    a missing Ray is one line naming the extra."""
    from .grid import Execution

    ex = Execution(args.workers, args.executor, args.ray_address, args.local_dir)
    ex.check()
    return ex


def _failed(failed: dict) -> int:
    """Exit status 1 when runs raised (the grid went on; the report lists them)."""
    if failed:
        print(f"geomviz: {len(failed)} run{'' if len(failed) == 1 else 's'} raised (listed "
              "in the report); the same command resumes them", file=sys.stderr)
        return 1
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    objectives = _parse_list(args.objectives, flag="--objectives")
    seeds = check_seeds(_parse_list(args.seeds, int, flag="--seeds"))
    name = f"compare-{time.strftime('%Y%m%d-%H%M%S')}" if args.name is None else args.name
    if not name.strip() or Path(name).is_absolute() or ".." in Path(name).parts:
        raise UserError(f"--name {name!r}: give a folder name inside --runs-dir (not empty, "
                        "absolute or with '..')")
    ex = _execution(args)
    root = Path(_named(args.runs_dir, "--runs-dir")) / name
    grid = _compare(args, objectives, seeds, root, execution=ex)
    print(f"runs written under {root}; list them with: geomviz runs {root}")
    return _failed(grid.failed)


def _cmd_study(args: argparse.Namespace) -> int:
    from .study.export import parse_formats
    from .study.gridfolder import grid_folder, record_files
    from .study.runner import check_study, preset_plan, run_study

    plan = preset_plan(args.preset)
    seeds = check_seeds(_parse_list(args.seeds, int, flag="--seeds")) \
        if args.seeds is not None else None
    objectives = _parse_list(args.objectives, flag="--objectives") \
        if args.objectives is not None else list(plan.objectives)
    formats = parse_formats(args.format)
    check_figure_size(args.width, args.scale)
    overrides = {k: v for k, v in (("epochs", args.epochs), ("data_dir", args.data_dir),
                                   ("ood_dir", args.ood_dir), ("data_path", args.data_path),
                                   ("device", args.device), ("progress", args.progress))
                 if v is not None}
    check_study(args.preset, seeds, objectives, overrides)  # before any folder is made
    ex = _execution(args)
    with grid_folder(args.out) as out:  # locked; only the grid's files; removed if refused
        try:
            res = run_study(args.preset, seeds, out, objectives, overrides, tuple(formats),
                            args.width, args.scale, shlex.join(["geomviz", *args.argv]),
                            execution=ex)
        finally:
            record_files(out)
    grid = res["grid"]
    n_figs = sum(len(f.figures) for f in res["figures"])
    n_files = sum(len(e.files) for e in res["export"])
    n = len(grid.trained)
    print(f"\n{n} run{'' if n == 1 else 's'} trained in {grid.train_seconds:.0f} s, "
          f"{len(grid.reused)} reused; {n_figs} figures ({n_files} files) in "
          f"{Path(args.out) / 'figures'}; report: {res['report']}")
    return _failed(grid.failed)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .study.export import parse_formats
    from .study.gridfolder import grid_folder, record_files
    from .study.sweep import (
        SWEEP_OBJECTIVES,
        check_grid,
        gpu_warning,
        parse_lrs,
        parse_onoff,
        sweep_config,
    )
    from .study.sweep_report import run_sweep

    base, axes = sweep_config(args.preset, {k: v for k, v in (
        ("dataset", args.dataset), ("data_path", args.data_path), ("epochs", args.epochs),
        ("data_dir", args.data_dir), ("ood_dir", args.ood_dir),
        ("train_tokens", args.train_tokens), ("batch_size", args.batch_size),
        ("device", args.device), ("progress", args.progress)) if v is not None})
    lrs = parse_lrs(args.lrs) if args.lrs is not None else axes.get("lrs") or parse_lrs("")
    seeds = (check_seeds(_parse_list(args.seeds, int, flag="--seeds"))
             if args.seeds is not None else axes.get("seeds", [0, 1]))
    objectives = (_parse_list(args.objectives, flag="--objectives") if args.objectives
                  is not None else axes.get("objectives", list(SWEEP_OBJECTIVES)))
    qks = parse_onoff(args.qk_layernorm) if args.qk_layernorm is not None \
        else axes.get("qk", [False])
    formats = parse_formats(args.format)
    check_figure_size(args.width, args.scale)
    check_grid(base, objectives, lrs, seeds, qks, Path(args.out) / "runs")  # before any work
    ex = _execution(args)
    warning = gpu_warning(args.preset, base)
    t0 = time.perf_counter()
    with grid_folder(args.out) as out:  # locked; only the grid's files; removed if refused
        if warning:
            print(warning, file=sys.stderr, flush=True)
        try:
            res = run_sweep(base, objectives, lrs, seeds, qks, out, tuple(formats), args.width,
                            args.scale, shlex.join(["geomviz", *args.argv]), execution=ex)
        finally:
            record_files(out)
    grid = res["grid"]
    n = len(grid.trained)
    print(f"\n{n} run{'' if n == 1 else 's'} trained in {grid.train_seconds:.0f} s "
          f"({len(grid.diverged)} diverged, kept), {len(grid.reused)} reused; "
          f"{len(res['files'])} figure files; report: {res['report']} "
          f"(total {time.perf_counter() - t0:.0f} s)")
    return _failed(grid.failed)


def _add_execution_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=_int_in(1), help="runs at once: N local processes, "
                   "each with cores/N torch threads, or one per GPU (default 1: one after "
                   "another in this process); with --executor ray, tasks in flight "
                   "(default: as many as the cluster fits)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local processes (default) or Ray tasks (pip install "
                   "\"geomviz[ray]\")")
    p.add_argument("--ray-address", help="a running Ray cluster, e.g. ray://head:10001 "
                   "(default: start a local Ray)")
    p.add_argument("--local-dir", help="write each run in this folder on the worker's own "
                   "disk and publish it into the runs folder at each checkpoint and at its "
                   "end (for a runs folder on a network filesystem)")


def add_grid_commands(sub) -> None:
    """Add ``compare``, ``study`` and ``sweep`` to the subcommand parsers ``sub``."""
    p = sub.add_parser("compare", help="train several objectives × seeds, same init and data")
    p.add_argument("--objectives", default="ce,tfsd", help="comma-separated (default ce,tfsd);"
                   " a user objective is package.module:name or an entry point")
    p.add_argument("--seeds", default="0", help="comma-separated (default 0)")
    p.add_argument("--runs-dir", default="runs", help="root folder (default runs)")
    _add_config_flags(p, skip=("objective", "seed", "out", "resume"))
    _add_execution_flags(p)
    p.set_defaults(func=_cmd_compare)
    p = sub.add_parser("study", help="train objectives × seeds, then figures and report.md")
    p.add_argument("--preset", required=True, help="mnist1d, gaussians, cifar10 (GPU), "
                   "lm-synonyms, lm-text (GPU, needs --data-path), noise or hierarchy")
    p.add_argument("--seeds", help="comma-separated (default: the preset's: 0-4 for mnist1d, "
                   "gaussians, hierarchy and noise, 0,1,2 otherwise)")
    p.add_argument("--out", default="study", help="output folder (default study)")
    p.add_argument("--objectives", help="comma-separated (default: ce, metric_ce, tfsd, "
                   "label_smoothing, logitnorm, ce_zloss; no logitnorm for the lm presets);"
                   " a user objective is package.module:name or an entry point")
    p.add_argument("--epochs", type=_int_in(1), help="override the preset's epochs")
    p.add_argument("--data-dir", help="dataset folder (cifar10)")
    p.add_argument("--ood-dir", help="OOD dataset folder (cifar10: SVHN)")
    p.add_argument("--data-path", help="UTF-8 text file (lm-text)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--format", default="png,svg,html", help="figure formats (png,svg,pdf,html)")
    p.add_argument("--width", type=_int_in(1), default=800, help="figure width in px, "
                   "100..5000 (default 800)")
    p.add_argument("--scale", type=_positive_float, default=2.0, help="PNG pixel scale, "
                   "0.25..8 (default 2)")
    _add_execution_flags(p)
    p.set_defaults(func=_cmd_study)
    p = sub.add_parser("sweep", help="objectives × learning rates × seeds: LR sensitivity, "
                       "spikes, report.md")
    p.add_argument("--preset", help="lm-spikes (CPU, under 20 min) or lm-spikes-gpu")
    p.add_argument("--dataset", help="dataset (default: the preset's, else mnist1d)")
    p.add_argument("--data-path", help="text: the UTF-8 file")
    p.add_argument("--data-dir", help="dataset folder (cifar10, cifar100, svhn)")
    p.add_argument("--ood-dir", help="OOD dataset folder (cifar10: SVHN)")
    p.add_argument("--objectives", help="comma-separated (default ce,ce_zloss,tfsd,metric_ce);"
                   " a user objective is package.module:name or an entry point")
    p.add_argument("--lrs", help="comma-separated learning rates > 0, e.g. 1e-3,3e-3,1e-2")
    p.add_argument("--seeds", help="comma-separated (default: the preset's, else 0,1)")
    p.add_argument("--qk-layernorm", help="on, off or on,off: a grid axis (gpt only)")
    p.add_argument("--epochs", type=_int_in(1), help="override the preset's epochs")
    p.add_argument("--train-tokens", type=_int_in(1), help="synonyms: training tokens")
    p.add_argument("--batch-size", type=_int_in(1))
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--out", default="sweep", help="output folder (default sweep)")
    p.add_argument("--format", default="png,svg,html", help="figure formats (png,svg,pdf,html)")
    p.add_argument("--width", type=_int_in(1), default=800, help="figure width in px, "
                   "100..5000 (default 800)")
    p.add_argument("--scale", type=_positive_float, default=2.0, help="PNG pixel scale, "
                   "0.25..8 (default 2)")
    _add_execution_flags(p)
    p.set_defaults(func=_cmd_sweep)
