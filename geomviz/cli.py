"""The ``geomviz`` command line (also ``python -m geomviz``).

Errors a user can cause (bad names, values, paths, files) print one line to
stderr and exit with status 2, without a traceback; a diverged run exits with 3.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sqlite3
import sys
import time
from pathlib import Path

from .training.config import ConfigError, TrainConfig, load_config_file, parse_items, resolve_config

DEMO_EPOCHS = 20
SCORES = ("msp", "max_logit", "energy", "min_distance")  # metrics.confidence_scores


class UserError(Exception):
    """An error caused by the user's input: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (exit status 2), like every other
    user error."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_in(lo: int, hi: int | None = None):
    """An argparse type: an integer in ``[lo, hi]``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(
                f"{value} is out of range ({lo}..{hi})" if hi is not None else
                f"{value} must be >= {lo}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number > 0")
    return value


def check_figure_size(width: int, scale: float) -> None:
    """The sizes :func:`geomviz.study.export.export` accepts, checked before any training
    or folder (export itself would refuse them only at the end)."""
    if not 100 <= width <= 5000:
        raise UserError(f"--width must be between 100 and 5000 px, got {width}")
    if not 0.25 <= scale <= 8:
        raise UserError(f"--scale must be between 0.25 and 8, got {scale}")


def check_seeds(seeds: list[int]) -> list[int]:
    """Seeds as the config takes them, in [0, 2**32): checked before any folder or data."""
    for s in seeds:
        if not 0 <= s < 2**32:
            raise UserError(f"--seeds must be {'>= 0' if s < 0 else '< 2**32'}, got {s}")
    return seeds


def _named(text: str, flag: str) -> str:
    """A folder or file name the user gave: an empty one is an error, not the default."""
    if not text.strip():
        raise UserError(f"{flag} is empty: name a folder or file")
    return text


# ----------------------------------------------------------------------------- flags
def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_config_flags(p: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per TrainConfig field; every default is None so only given flags override."""
    p.add_argument("--config", help="YAML or JSON file of config keys (flags override it)")
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip or f.name == "objective_kw":
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if isinstance(default, bool):
            p.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, default=None)
        elif isinstance(default, list):
            p.add_argument(_flag(f.name), default=None, metavar="A,B",
                           help=f"comma-separated (default {','.join(map(str, default)) or '-'})")
        elif f.name == "objective":
            p.add_argument("--objective", default=None, metavar="NAME",
                           help="a built-in (geomviz objectives), an entry point of "
                           "geomviz.objectives, or package.module:name (default: ce)")
        else:
            p.add_argument(_flag(f.name), default=None, metavar=f.name.upper(),
                           help=f"default: {default}")
    p.add_argument("--objective-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="objective hyperparameter, e.g. scale=0.5 (repeatable)")


def _parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def _config_from_args(args: argparse.Namespace, **overrides) -> TrainConfig:
    file_values = load_config_file(args.config) if args.config is not None else {}
    cli: dict = {}
    for f in dataclasses.fields(TrainConfig):
        value = getattr(args, f.name, None)
        if value is None or f.name == "objective_kw":
            continue
        if f.name in ("ood_classes", "hidden"):
            try:
                value = [int(v) for v in str(value).split(",") if v.strip()]
            except ValueError:
                raise ConfigError(f"{_flag(f.name)} takes comma-separated integers") from None
        cli[f.name] = value
    kw = {}
    for item in args.objective_arg:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--objective-arg takes KEY=VALUE, got {item!r}")
        kw[key.strip()] = _parse_value(val.strip())
    if kw:
        cli["objective_kw"] = kw
    cli.update(overrides)
    return resolve_config(file_values, cli)


# ----------------------------------------------------------------------------- commands
def _cmd_train(args: argparse.Namespace) -> int:
    from .training.resume import check_out
    from .training.train import check_objective, train

    cfg = _config_from_args(args)
    check_objective(cfg)
    if os.environ.get("RANK", "0") == "0":  # DDP: rank 0 owns the run folder
        check_out(cfg)  # before any data is loaded
    out = train(cfg)
    print(f"run written to {out}")
    return 0


def _parse_list(text: str, cast=str, flag: str | None = None) -> list:
    """A comma-separated list; with ``flag``, checked as a user's list (:func:`parse_items`:
    no empty list or item, no repeat), else empty items are dropped."""
    if flag is not None:
        return parse_items(text, flag, cast)
    try:
        return [cast(t.strip()) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"cannot parse the list {text!r}") from None


def _compare(args: argparse.Namespace, objectives: list[str], seeds: list[int], root: Path,
             execution=None, **overrides):
    from .study.runner import train_grid

    return train_grid(_config_from_args(args, **overrides), objectives, seeds, root,
                      execution=execution)


def _cmd_runs(args: argparse.Namespace) -> int:
    from .store import StoreError, list_runs, open_run

    folders = list_runs(_named(args.folder, "the runs folder"))
    if not folders:
        print(f"no runs under {args.folder}")
        return 0
    def name(folder: Path) -> str:  # relative to the folder asked for: never cut
        try:
            return str(Path(folder).relative_to(args.folder)) or "."
        except ValueError:
            return str(folder)

    w = max(3, *(len(name(f)) for f in folders))
    print(f"{'run':{w}s} {'objective':12s} {'dataset':9s} {'seed':>4s} {'lr':>7s} "
          f"{'status':9s} {'step':>6s} {'test acc':>8s} {'NLL':>6s} {'AUROC':>6s}")
    for folder in folders:
        try:  # one bad store must not hide the others: it is one warning row
            with open_run(folder) as run:
                meta = run.meta
                final = meta.get("final") or {}
                acc = _number(final.get("test", {}).get("acc"))
                nll = _number(final.get("test", {}).get("nll"))
                lr = _number((meta.get("config") or {}).get("lr"))
                auroc = _number(final.get("ood", {}).get("msp.auroc"))
                steps = run.steps()
        except (StoreError, AttributeError) as e:
            why = str(e).splitlines()[0] if isinstance(e, StoreError) else "malformed metadata"
            print(f"{name(folder):{w}s} unreadable: {why[:120]}")
            continue
        print(f"{name(folder):{w}s} {str(meta.get('objective', '?')):12s} "
              f"{str(meta.get('dataset', '?')):9s} {str(meta.get('seed', '')):>4s} "
              f"{'' if lr is None else f'{lr:g}':>7s} "
              f"{meta['status']:9s} {int(steps[-1]) if len(steps) else 0:>6d} "
              f"{'' if acc is None else f'{acc:.3f}':>8s} "
              f"{'' if nll is None else f'{nll:.3f}':>6s} "
              f"{'' if auroc is None else f'{auroc:.3f}':>6s}")
    return 0


def _number(value) -> float | None:
    """A metric read from run metadata, or None when it is absent or not a number."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def _cmd_project(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .projection import METHODS, project
    from .store import open_run, warn_skipped
    from .study.figureset import find_runs

    methods = _parse_list(args.method, flag="--method")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise UserError(f"unknown projection {bad[0]!r}; choose from {', '.join(METHODS)}")
    folders = []  # one unreadable store or run without snapshots is a warning, not the end
    for folder in find_runs(args.runs):
        with open_run(folder) as run:
            has_snapshots = bool(run.array_steps("snapshot.features"))
        if has_snapshots:
            folders.append(folder)
        else:
            warn_skipped(folder, "no snapshots (trained with --snapshots 0?)")
    if not folders:
        raise UserError(f"no runs with snapshots under {', '.join(args.runs)}")
    # pca and fast_umap embed all the runs given together (one basis; one joint layout, which
    # the compare page reuses when it shows exactly these runs); the others run per folder
    joint = ("pca", "fast_umap")
    jobs = [(m, folders) for m in methods if m in joint] + \
        [(m, [f]) for m in methods if m not in joint for f in folders]
    for method, group in tqdm(jobs, desc="projections", unit="job"):
        params = {"n_epochs": args.umap_epochs} if method == "aligned_umap" else {}  # as the
        # dashboard asks for it (n_epochs=100 by default)
        project(group, method, cache_root=Path(args.runs[0]), **params)
    print(f"cached {len(jobs)} projection(s) under {Path(args.runs[0]) / '.projections'}")
    return 0


def _cmd_figures(args: argparse.Namespace) -> int:
    from .study.export import export, parse_formats
    from .study.figureset import FIGURES, build_figures, find_runs
    from .training.resume import make_folder

    formats = parse_formats(args.format)
    check_figure_size(args.width, args.scale)
    names = _parse_list(args.only, flag="--only") if args.only is not None else None
    bad = [n for n in names or () if n not in FIGURES]
    if bad:  # before any store is opened: a typo is one line, not a warning per bad store
        raise UserError(f"unknown figure {bad[0]!r}; choose from {', '.join(FIGURES)}")
    make_folder(args.out, keep=False)  # only checked: nothing is written for a refused input
    folders = find_runs(args.runs)
    t0 = time.perf_counter()
    figs = build_figures(folders, names, score=args.score, steps=args.steps,
                         max_points=args.max_points)
    built = time.perf_counter() - t0
    for name, why in figs.skipped.items():
        print(f"skipped {name}: {why}")
    if not figs.figures:
        raise UserError("none of the figures asked for can be drawn from these runs")
    make_folder(args.out)
    res = export(figs.figures, args.out, formats, args.width, args.scale)
    print(f"{len(res.files)} files for {len(figs.figures)} figures from {len(folders)} runs "
          f"in {args.out}: built in {built:.1f} s, exported in {res.total_seconds:.1f} s "
          f"(static rendering {res.static_seconds:.1f} s, one browser)")
    return 0


def _cmd_objectives(args: argparse.Namespace) -> int:
    """The built-ins, then the entry points of ``geomviz.objectives`` (imported to show
    them; one that fails to load is listed with its one-line reason, never hiding the
    others). A name or ``package.module:name`` shows that one, or is one line, exit 2."""
    from .objectives import available_objectives, is_builtin, load_objective

    if args.name is not None and not args.name.strip():
        raise UserError(f"unknown objective {args.name!r}; choose one of: "
                        f"{', '.join(available_objectives())}")
    for spec in [args.name] if args.name is not None else available_objectives():
        try:
            info = load_objective(spec)
        except ValueError as e:
            if args.name is not None:
                raise UserError(str(e)) from None
            print(f"{spec:16s} (entry point that cannot be loaded: {e})")
            continue
        params = ", ".join(f"{k}={v!r}" for k, v in info.params.items())
        print(f"{info.name:16s} head={info.head:9s} {info.formula}")
        print(f"{'':16s} {info.description}")
        print(f"{'':16s} hyperparameters: {params}")
        if not is_builtin(info.name):
            print(f"{'':16s} user objective: --objective {info.spec}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="geomviz", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("train", help="train one run")
    _add_config_flags(p)
    p.set_defaults(func=_cmd_train)
    p = sub.add_parser("runs", help="list runs with status and headline metrics")
    p.add_argument("folder", nargs="?", default="runs")
    p.set_defaults(func=_cmd_runs)
    from .cli_serve import add_dashboard_command, add_demo_command

    add_demo_command(sub)
    p = sub.add_parser("project", help="precompute the snapshot projections (PCA, AlignedUMAP)")
    p.add_argument("runs", nargs="+", help="run folders or folders of runs")
    p.add_argument("--method", default="pca,fast_umap,polar",
                   help="comma-separated: pca, fast_umap, aligned_umap (slow), polar")
    p.add_argument("--umap-epochs", type=_int_in(1), default=100)
    p.set_defaults(func=_cmd_project)
    p = sub.add_parser("figures", help="export the publication figure set of some runs")
    p.add_argument("runs", nargs="+", help="run folders or folders of runs")
    p.add_argument("--out", default="figures", help="output folder (default figures)")
    p.add_argument("--format", default="png,svg,html",
                   help="comma-separated: png, svg, pdf, html (default png,svg,html)")
    p.add_argument("--width", type=_int_in(1), default=800,
                   help="width in px, 100..5000 (default 800)")
    p.add_argument("--scale", type=_positive_float, default=2.0,
                   help="pixel scale of PNGs, 0.25..8 (default 2)")
    p.add_argument("--only", help="comma-separated figure names (default: all)")
    p.add_argument("--score", default="msp", choices=SCORES, help="OOD score: msp, "
                   "max_logit, energy, min_distance (default msp)")
    p.add_argument("--steps", type=_int_in(1), default=5, help="manifold steps (default 5)")
    p.add_argument("--max-points", type=_int_in(1), default=300,
                   help="probe examples per manifold panel (default 300)")
    p.set_defaults(func=_cmd_figures)
    from .cli_grids import add_grid_commands

    add_grid_commands(sub)
    p = sub.add_parser("objectives", help="list the objectives (built-in and entry points "
                       "of geomviz.objectives) and their formulas")
    p.add_argument("name", nargs="?", help="show one objective only (a name or "
                   "package.module:name)")
    p.set_defaults(func=_cmd_objectives)
    add_dashboard_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv  # the exact command, for reports
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from .data import DataError
    from .store import StoreError
    from .study.export import ExportError
    from .training.train import Diverged

    try:
        return int(args.func(args))
    except Diverged as e:
        print(f"geomviz: run diverged: {e}", file=sys.stderr)
        return 3
    except (UserError, ConfigError, DataError, StoreError, ExportError, ValueError,
            ImportError, OSError, sqlite3.Error) as e:
        if isinstance(e, BrokenPipeError):  # e.g. `geomviz objectives | head`
            sys.stdout = open("/dev/null", "w")  # noqa: SIM115 - silence the flush at exit
            return 0
        print(f"geomviz: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("geomviz: interrupted", file=sys.stderr)
        return 130


def _one_line(e: BaseException) -> str:
    """The first line of an error; OS errors as 'reason: path' (no errno)."""
    if isinstance(e, OSError) and e.strerror:
        where = f": {e.filename}" if e.filename else ""
        return f"{e.strerror}{where}"
    text = str(e).splitlines()[0] if str(e).strip() else ""
    return text or type(e).__name__


if __name__ == "__main__":
    raise SystemExit(main())
