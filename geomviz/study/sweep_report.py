"""``geomviz sweep``: train the grid, then ``<out>/report.md`` and its figures.

The report gives, per objective: final loss against learning rate (seed band), LR
sensitivity (:mod:`.sweep_results`), the largest stable rate, spikes and divergences,
and a verdict against CE from paired seed differences with their 95% t-interval
(:func:`.verdicts.paired_verdict`; "no clear difference" when it includes 0).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from ..grid import Execution
from ..training.config import TrainConfig
from .sweep import SweepGrid, train_sweep
from .sweep_results import RunResult, Summary, ce_largest_stable, collect, summarize

__all__ = ["run_sweep", "write_report", "sweep_figures"]


def _g(v: float | None) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:g}"


def _loss_table(results: list[RunResult], summaries: list[Summary], qk: bool) -> list[str]:
    sums = [s for s in summaries if s.qk == qk]
    lrs = sorted({lr for s in sums for lr in s.lrs})
    lines = ["| objective | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |",
             "|---|" + "---:|" * len(lrs)]
    for s in sums:
        cells = []
        for lr in lrs:
            rs = [r for r in results if r.cell.qk == qk and r.cell.objective == s.objective
                  and r.cell.lr == lr]
            if not rs:
                cells.append("")
                continue
            v = [r.loss for r in rs]
            text = f"{sum(v) / len(v):.3f}"
            if len(v) > 1:
                text += f" [{min(v):.3f}, {max(v):.3f}]"
            div = sum(r.status == "diverged" for r in rs)
            above = sum(r.above_l0 for r in rs)
            spikes = sum(r.events for r in rs)
            if div:
                text += f" ({div} div.)"
            if above:
                text += f" ({above} > L0)"
            if spikes:
                text += f" ({spikes} sp.)"
            cells.append(text)
        lines.append(f"| {s.objective} | " + " | ".join(cells) + " |")
    return lines


def _mean(d: dict) -> str:
    if not d:
        return "–"
    v = list(d.values())
    return f"{sum(v) / len(v):.4f} (" + ", ".join(f"{x:.4f}" for x in v) + ")"


def _verdict(p) -> str:
    if p is None:
        return "–"
    return f"{p.label}: {p.interval}"


def _stability_table(summaries: list[Summary], qk: bool) -> list[str]:
    lines = ["| objective | LR sensitivity ↓ mean (per seed) | best final loss ↓ mean (per seed) "
             "| largest stable lr | spikes | diverged / runs | sensitivity vs CE | "
             "best loss vs CE |", "|---|---:|---:|---:|---:|---:|---|---|"]
    for s in (s for s in summaries if s.qk == qk):
        note = " (never trains)" if s.never_trains else ""
        lines.append(
            f"| {s.objective}{note} | {_mean(s.sensitivity)} | {_mean(s.best)} | "
            f"{_g(s.largest_stable)} | {s.spikes} | {s.diverged} / {s.runs} | "
            f"{_verdict(s.vs_ce.get('sensitivity')) if s.objective != 'ce' else 'reference'} | "
            f"{_verdict(s.vs_ce.get('best loss')) if s.objective != 'ce' else 'reference'} |")
    return lines


def _uncapped_table(summaries: list[Summary], qk: bool) -> list[str]:
    """The sensitivity without Wortsman's cap at L0: a finite run that ends worse than the
    uniform prediction keeps its loss (the cap can decide a verdict)."""
    lines = ["Without the cap at L0 (a finite run worse than uniform keeps its loss):", "",
             "| objective | uncapped LR sensitivity ↓ mean (per seed) | runs above L0 | "
             "uncapped sensitivity vs CE |", "|---|---:|---:|---|"]
    for s in (s for s in summaries if s.qk == qk):
        vs = ("reference" if s.objective == "ce"
              else _verdict(s.vs_ce.get("sensitivity, uncapped")))
        lines.append(f"| {s.objective} | {_mean(s.sensitivity_uncapped)} | {s.above_l0} | "
                     f"{vs} |")
    return lines


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _findings(summaries: list[Summary], qk: bool) -> list[str]:
    out = []
    words = {"better": "less sensitive to the learning rate than CE",
             "worse": "more sensitive to the learning rate than CE"}
    for s in (s for s in summaries if s.qk == qk and s.objective != "ce"):
        v, u = s.vs_ce.get("sensitivity"), s.vs_ce.get("sensitivity, uncapped")
        if v is None:
            continue
        text = f"- **{s.objective}**: {words.get(v.label, v.label)} ({v.interval})"
        if u is not None:
            text += f"; uncapped: {words.get(u.label, u.label)} ({u.interval})"
        out.append(f"{text}; {_plural(s.spikes, 'spike')}, {_plural(s.diverged, 'diverged run')}"
                   f" and {_plural(s.above_l0, 'run')} ending above L0, of {s.runs} "
                   "(CE: see the tables).")
    return out


def _peak(r: RunResult, key: str) -> float:
    v = r.series.get(key, (None, []))[1]
    v = [x for x in v if math.isfinite(x)]
    return max(v) if v else math.nan


def _instability_table(results: list[RunResult], lr: float | None, qk: bool) -> list[str]:
    """Peak max attention logit and peak max output logit over training, per objective,
    at the instability figure's rate (mean over seeds [min, max])."""
    if lr is None:
        return ["No swept rate is stable for every CE seed: no instability rate to show.", ""]
    lines = [f"Logit growth at lr {lr:g} (the largest rate stable for every CE seed), peak "
             "over training of the probe steps' largest logit, mean over seeds [min, max]. "
             "Distance heads' output logits are −s·d² ≤ 0 by construction: their scale is "
             "not a linear head's.", "",
             "| objective | max attention logit | max output logit |", "|---|---:|---:|"]
    for obj in sorted({r.cell.objective for r in results}, key=lambda o: (o != "ce", o)):
        rs = [r for r in results if r.cell.objective == obj and r.cell.qk == qk
              and r.cell.lr == lr]
        cells = []
        for key in ("health.attn_logit.max", "health.max_logit"):
            v = [p for r in rs if math.isfinite(p := _peak(r, key))]
            cells.append(f"{sum(v) / len(v):.4g} [{min(v):.4g}, {max(v):.4g}]" if v else "–")
        lines.append(f"| {obj} | {cells[0]} | {cells[1]} |")
    return lines + [""]


def sweep_figures(results: list[RunResult], summaries: list[Summary]) -> dict:
    """``{"lr_sensitivity": fig, "instability": fig}`` (the second only when CE is stable at
    some rate, at the largest such rate)."""
    from ..figures.sweep import instability, lr_sensitivity

    figs = {"lr_sensitivity": lr_sensitivity(results)}
    qk = min(r.cell.qk for r in results)  # qk-layernorm off when swept: where logits grow
    lr = ce_largest_stable(summaries, qk)
    if lr is not None:
        figs["instability"] = instability(results, lr, qk)
    return figs


def write_report(path: Path, base: TrainConfig, grid: SweepGrid, results: list[RunResult],
                 summaries: list[Summary], files: list[Path], command: str) -> Path:
    from probes.health import SPIKE_K, SPIKE_MIN_HISTORY, SPIKE_WINDOW

    qks = sorted({r.cell.qk for r in results})
    model = "gpt" if base.model == "auto" and base.dataset in ("synonyms", "text") else base.model
    n_div = sum(r.status == "diverged" for r in results)
    l0 = results[0].l0 if results else float("nan")
    from ..data import TOKEN_DATASETS

    shape = (f"({base.gpt_size}, width {base.feature_dim}, seq_len {base.seq_len}), "
             f"{_plural(base.epochs, 'epoch')} of {base.train_tokens} training tokens"
             if base.dataset in TOKEN_DATASETS else
             f"(feature dim {base.feature_dim}), {_plural(base.epochs, 'epoch')}")
    lines = [
        "# Learning-rate sweep", "",
        f"Command: `{command}`", "",
        f"Dataset `{base.dataset}`, model `{model}` {shape}, batch {base.batch_size}, "
        f"{base.optimizer}, "
        f"warmup {base.warmup_epochs} epochs then cosine, weight decay {base.weight_decay}, "
        f"grad clip {base.grad_clip}. {_plural(len(results), 'run')}: {len(grid.trained)} "
        f"trained in {grid.train_seconds:.0f} s, {len(grid.reused)} reused; {n_div} diverged "
        "(kept and counted)"
        + (f"; {len(grid.failed)} more raised (left out, listed below)." if grid.failed
           else "."), "",
        f"Final loss: test NLL at the last evaluation (nats/token). Initial loss L0 = ln V = "
        f"{l0:.4f}; a diverged run or a non-finite loss counts as L0. LR sensitivity "
        "(Wortsman et al. 2023): mean over the rates of min(final loss, L0) minus the best "
        "of them; uncapped: the same without min(·, L0), so a finite run that ends worse "
        "than uniform keeps its loss. Stable rate: every seed finished at least half-way "
        "from L0 to its best final loss over the rates. Spike (consecutive steps count "
        f"once): a step whose training loss exceeds {SPIKE_K} × the median of the "
        f"previous {SPIKE_WINDOW} steps (of all previous steps while fewer; none before "
        f"{SPIKE_MIN_HISTORY}), measured on each objective's own training loss. "
        "Verdicts: paired differences against CE across seeds, 95% t-interval; "
        "\"no clear difference\" when it includes 0.", ""]
    n_spikes = sum(r.events for r in results)
    n_above = sum(r.above_l0 for r in results)
    lines += [f"Across the grid: {_plural(n_spikes, 'spike')} in "
              f"{sum(bool(r.spikes) for r in results)} of {len(results)} runs, "
              f"{_plural(n_div, 'diverged run')} (a non-finite loss), "
              f"{_plural(n_above, 'finished run')} ending above L0 (worse than the uniform "
              "prediction, with a finite loss).", ""]
    if grid.earlier:
        lines += [f"This folder's sweep.json merges grids of the same base config: the report "
                  f"covers their union, {len(grid.earlier)} of the {len(results)} runs from "
                  "earlier calls (not in this command's grid).", ""]
    for qk in qks:
        lines += [f"## qk-layernorm {'on' if qk else 'off'}", "",
                  "Final test NLL against learning rate, as measured (not capped at L0): "
                  "mean over seeds [min, max]:", "",
                  *_loss_table(results, summaries, qk), "",
                  *_stability_table(summaries, qk), "", *_uncapped_table(summaries, qk), "",
                  *_findings(summaries, qk), "",
                  *_instability_table(results, ce_largest_stable(summaries, qk), qk)]
    if grid.failed:
        from .runner import failure_lines

        lines += failure_lines(grid.failed, [], path.parent)
    if files:
        lines += ["## Figures", ""] + [f"- [{f.name}]({f.relative_to(path.parent)})"
                                       if f.is_relative_to(path.parent) else f"- {f}"
                                       for f in files] + [""]
    path.write_text("\n".join(lines))
    return path


def run_sweep(base: TrainConfig, objectives: list[str], lrs: list[float], seeds: list[int],
              qks: list[bool], out: str | Path, formats: tuple[str, ...] = ("png", "svg", "html"),
              width: int = 800, scale: float = 2.0, command: str = "geomviz sweep",
              execution: Execution | None = None) -> dict:
    """Train (or reuse) the grid under ``out/runs``, export the figures to ``out/figures``
    and write ``out/report.md``."""
    from .export import ExportError, export

    out = Path(out)
    grid = train_sweep(base, objectives, lrs, seeds, qks, out / "runs", execution)
    t0 = time.perf_counter()
    results = collect(grid.cells)
    summaries = summarize(results)
    figs = sweep_figures(results, summaries) if results else {}
    error, files = None, []
    try:
        files = export(figs, out / "figures", list(formats), width, scale).files if figs else []
    except ExportError as e:  # the report is still written, with the HTML files written
        error = e
        files = [out / "figures" / f"{n}.html" for n in figs] if "html" in formats else []
    report = write_report(out / "report.md", base, grid, results, summaries, files, command)
    if error is not None:
        raise error
    return {"grid": grid, "results": results, "summaries": summaries, "report": report,
            "files": files, "report_seconds": time.perf_counter() - t0}
