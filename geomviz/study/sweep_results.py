"""What a learning-rate sweep found: final losses, LR sensitivity, stability, spikes, verdicts.

**Final loss** of a run: its test NLL at the last evaluation (nats/token for language
models). **Initial loss** ``L0 = ln V`` (``V`` classes): the NLL of the uniform
prediction, what a model that learned nothing scores; the same for every objective. A
diverged run, or one whose final loss is not finite, counts as ``L0``.

**LR sensitivity** (Wortsman et al. 2023, eq. 1) of one objective and seed over the swept
rates ``η_1..η_n``: ``mean_i min(L(η_i), L0) − min_i L(η_i)``, the second term over the
capped losses too (so a sweep that never trains has sensitivity 0 and is flagged). The
cap makes a finite run that ends worse than uniform (``L > L0``) count as ``L0``; since it
can decide a verdict, the **uncapped** sensitivity (the same without ``min(·, L0)``; a
diverged or non-finite run still counts as ``L0``) is reported beside it. The final
losses shown in tables and figures are never capped (:attr:`RunResult.loss`).

**Stable** rate (the rate *trains*): every seed finished with a finite final loss that
closes at least half the gap from ``L0`` to that seed's best final loss over the rates,
``L <= (L0 + best) / 2``; merely ending below ``L0`` is not enough (a run at 0.026
accuracy can). The largest stable rate of an objective is the largest swept rate that is
stable (smaller rates need not all be: it is reported as measured).

**Spikes** are counted as events: consecutive spike steps (a blow-up that lasts several
steps) are one spike.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..store import StoreError, open_run
from .sweep import MANIFEST, Cell, manifest_cells
from .verdicts import Paired, paired_verdict

__all__ = ["RunResult", "Summary", "collect", "collect_root", "lr_sensitivity", "summarize",
           "capped"]


@dataclass
class RunResult:
    cell: Cell
    folder: Path
    status: str
    final: float  # test NLL at the last evaluation; nan when none or not finite
    l0: float  # ln V
    spikes: list[tuple[int, float]] = field(default_factory=list)  # (step, size)
    series: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def capped(self) -> float:
        return capped(self.final, self.l0, self.status)

    @property
    def loss(self) -> float:
        """The final loss as measured (not capped at ``L0``); ``L0`` only for a diverged
        run or a non-finite loss, which has no number of its own."""
        return capped(self.final, self.l0, self.status, cap=False)

    @property
    def above_l0(self) -> bool:
        """Finished with a finite loss worse than the uniform prediction's."""
        return self.status == "finished" and math.isfinite(self.final) and self.final > self.l0

    @property
    def events(self) -> int:
        """Spike events: runs of consecutive spike steps count once."""
        steps = sorted(s for s, _ in self.spikes)
        return sum(1 for i, s in enumerate(steps) if i == 0 or s > steps[i - 1] + 1)

    def trains(self, best: float) -> bool:
        """Finished, finite, and at least half-way from ``L0`` to ``best`` (see above)."""
        return (self.status == "finished" and math.isfinite(self.final)
                and self.final <= 0.5 * (self.l0 + best))


def capped(final: float, l0: float, status: str = "finished", cap: bool = True) -> float:
    """``min(final, L0)`` (``final`` with ``cap=False``), and ``L0`` for a diverged run or
    a non-finite final loss."""
    if status == "diverged" or final is None or not math.isfinite(final):
        return float(l0)
    return float(min(final, l0) if cap else final)


def lr_sensitivity(losses: Mapping[float, float], l0: float, cap: bool = True) -> float:
    """Wortsman et al.'s LR sensitivity of one ``{lr: final loss}`` sweep (NaN/inf and
    missing values count as ``l0``): mean of the capped losses minus their minimum;
    ``cap=False``: of the losses as measured."""
    if not losses:
        raise ValueError("LR sensitivity needs at least one rate")
    c = np.array([capped(v, l0, cap=cap) for v in losses.values()], dtype=np.float64)
    return max(0.0, float(c.mean() - c.min()))  # not -1e-16 when every rate is equal


_SERIES = {"health.attn_logit.max": "train", "health.max_logit": "train", "loss": "train"}


def _read(folder: Path, cell: Cell) -> RunResult | None:
    try:
        with open_run(folder) as run:
            meta = run.meta
            nll = (meta.get("final") or {}).get("test", {}).get("nll")
            final = float(nll) if nll is not None else math.nan
            l0 = math.log(len(meta.get("class_names") or []) or 2)
            sp = run.scalars("health.spike", split="spike")
            spikes = [(int(s), float(v)) for s, v in zip(sp["step"], sp["value"], strict=True)]
            series = {}
            for name, split in _SERIES.items():
                d = run.scalars(name, split=split)
                series[name] = (np.asarray(d["step"]), np.asarray(d["value"], dtype=float))
    except StoreError as e:
        print(f"warning: skipping {folder}: {str(e).splitlines()[0]}")
        return None
    status = meta["status"]
    if status != "finished":
        final = math.nan
    return RunResult(cell, folder, status, final, l0, spikes, series)


def collect(cells: Mapping[Path, Cell]) -> list[RunResult]:
    """Every run of the grid read back (unreadable stores are skipped with a warning)."""
    return [r for folder, cell in cells.items() if (r := _read(Path(folder), cell))]


def collect_root(root: str | Path, within: str | Path | None = None,
                 refused: list[str] | None = None) -> list[RunResult]:
    """The grid of the sweep whose manifest is ``root/sweep.json``. A file that is not a
    manifest (not JSON, no ``runs`` table) is one :class:`StoreError`; a bad entry in it
    (``"lr": NaN``, a seed that is not an integer) is one warning and left out, so the
    good runs stay visible. With ``within`` (the dashboard's runs folder), a run folder
    that resolves outside it (an absolute path, ``..``, a symlink to another store) is
    never read: its name goes to ``refused``."""
    root = Path(root)
    try:
        manifest = json.loads((root / MANIFEST).read_text())
        if not isinstance(manifest, dict) or not isinstance(manifest.get("runs"), dict):
            raise ValueError("no 'runs' table")
    except (OSError, ValueError) as e:
        raise StoreError(f"{root / MANIFEST} is not a sweep manifest: "
                         f"{str(e).splitlines()[0][:160]}") from None
    cells = {root / name: c for name, c in manifest_cells(root / MANIFEST,
                                                          manifest["runs"]).items()}
    if within is not None:
        base = Path(within).resolve()
        inside = {f: c for f, c in cells.items() if f.resolve().is_relative_to(base)}
        if refused is not None:
            refused.extend(str(f.relative_to(root)) if f.is_relative_to(root) else str(f)
                           for f in cells if f not in inside)
        cells = inside
    return collect({f: c for f, c in cells.items() if (f / "run.sqlite").exists()})


@dataclass
class Summary:
    """One objective (at one qk-layernorm setting) over the swept rates and seeds."""

    objective: str
    qk: bool
    lrs: list[float]
    losses: dict[float, list[float]]  # lr -> final loss per seed (seed order), not capped
    sensitivity: dict[int, float]  # seed -> LR sensitivity (Wortsman's, capped at L0)
    best: dict[int, float]  # seed -> best capped final loss over rates
    largest_stable: float | None
    spikes: int
    diverged: int
    runs: int
    never_trains: bool
    sensitivity_uncapped: dict[int, float] = field(default_factory=dict)
    above_l0: int = 0  # finished runs whose final loss is finite but above L0
    vs_ce: dict[str, Paired | None] = field(default_factory=dict)


def summarize(results: list[RunResult]) -> list[Summary]:
    """One :class:`Summary` per (qk, objective), CE first, verdicts against CE's seeds."""
    keys = sorted({(r.cell.qk, r.cell.objective) for r in results},
                  key=lambda k: (k[0], k[1] != "ce", k[1]))
    out: list[Summary] = []
    for qk, obj in keys:
        rs = [r for r in results if r.cell.qk == qk and r.cell.objective == obj]
        lrs = sorted({r.cell.lr for r in rs})
        seeds = sorted({r.cell.seed for r in rs})
        by = {(r.cell.lr, r.cell.seed): r for r in rs}
        losses = {lr: [by[lr, s].loss for s in seeds if (lr, s) in by] for lr in lrs}
        sens, raw, best = {}, {}, {}
        for s in seeds:
            sweep = {lr: by[lr, s].capped for lr in lrs if (lr, s) in by}
            if len(sweep) == len(lrs):  # a seed missing a rate has no comparable sensitivity
                sens[s] = lr_sensitivity(sweep, rs[0].l0)
                raw[s] = lr_sensitivity({lr: by[lr, s].loss for lr in lrs}, rs[0].l0, cap=False)
                best[s] = min(sweep.values())
        floor = {s: min(by[lr, s].capped for lr in lrs if (lr, s) in by) for s in seeds}
        stable = [lr for lr in lrs if all(by[lr, s].trains(floor[s]) for s in seeds
                                          if (lr, s) in by)]
        out.append(Summary(obj, qk, lrs, losses, sens, best, max(stable) if stable else None,
                           sum(r.events for r in rs),
                           sum(r.status == "diverged" for r in rs), len(rs),
                           not any(r.trains(floor[r.cell.seed]) for r in rs), raw,
                           sum(r.above_l0 for r in rs)))
    for s in out:
        ce = next((c for c in out if c.qk == s.qk and c.objective == "ce"), None)
        if ce is not None and s is not ce:
            s.vs_ce = {"sensitivity": paired_verdict(s.sensitivity, ce.sensitivity, "lower"),
                       "sensitivity, uncapped": paired_verdict(
                           s.sensitivity_uncapped, ce.sensitivity_uncapped, "lower"),
                       "best loss": paired_verdict(s.best, ce.best, "lower")}
    return out


def ce_largest_stable(summaries: list[Summary], qk: bool = False) -> float | None:
    """The largest rate stable for every CE seed (the instability figure's rate)."""
    ce = next((s for s in summaries if s.objective == "ce" and s.qk == qk), None)
    return ce.largest_stable if ce else None
