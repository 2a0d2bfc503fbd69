"""The study report (Markdown): results table with every seed, what the numbers say,
the ground-truth test where there is one, figure embeds, command and provenance.

Every number is read from the runs through ``geomviz.results`` and
``geomviz.groundtruth``; the sentences are computed from those numbers, so a
claim the data do not support is reported as not supported.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from .claims import claims_table
from .figureset import CAPTIONS, FIGURES, FigureSet
from .report_tables import lm_table, noise_table
from .results import aggregate, fmt_stat, fmt_value, group_records, present_metrics, seed_stat
from .verdicts import paired_verdict

__all__ = ["write_report", "write_parts_report", "ReportPart", "compare_lines", "results_table",
           "seed_table", "ground_truth"]


def results_table(records: list[dict]) -> str:
    """Mean ± sd per objective (Markdown)."""
    agg = aggregate(records)
    groups = group_records(records)
    metrics = present_metrics(records)
    head = "| objective | seeds | " + " | ".join(
        m.header + {"higher": " ↑", "lower": " ↓"}.get(m.better, "") for m in metrics) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(metrics)]
    for obj, row in agg.items():
        lines.append(f"| {obj} | {len(groups[obj])} | " +
                     " | ".join(fmt_stat(row[m.key], m.digits) for m in metrics) + " |")
    return "\n".join(lines)


def seed_table(records: list[dict]) -> str:
    """One row per run (Markdown), the values as stored."""
    metrics = present_metrics(records)
    lines = ["| objective | seed | status | " + " | ".join(m.header for m in metrics) + " |",
             "|---|---:|---|" + "---:|" * len(metrics)]
    for obj, members in group_records(records).items():
        for r in members:
            lines.append(f"| {obj} | {r['seed']} | {r['status']} | " +
                         " | ".join(fmt_value(r.get(m.key), m.digits) for m in metrics) + " |")
    return "\n".join(lines)


def ood_table(records: list[dict], key: str = "auroc_by_score") -> str:
    """AUROC of every OOD score each objective recorded, mean ± sd (Markdown); '' if none.
    ``key``: ``auroc_by_score`` (the main OOD set) or ``auroc_near_by_score``."""
    groups = group_records(records)
    # min_distance ranks exactly as max_logit = -s·min_j ‖x - c_j‖² does: the same AUROC, shown once
    scores = sorted({k for r in records for k in r.get(key, {})} - {"min_distance"})
    if not scores:
        return ""
    lines = ["| objective | " + " | ".join(scores) + " |", "|---|" + "---:|" * len(scores)]
    for obj, members in groups.items():
        cells = [fmt_stat(seed_stat(r.get(key, {}).get(sc) for r in members), 4)
                 for sc in scores]
        lines.append(f"| {obj} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare_lines(records: list[dict], subject: str = "tfsd", baseline: str = "ce") -> list[str]:
    """One sentence per metric: subject vs baseline, from the paired seed differences.

    Better or worse only when the 95% t-interval of the mean paired difference
    excludes 0 (:mod:`geomviz.study.verdicts`); the interval is printed beside it.
    """
    groups = group_records(records)
    if subject not in groups or baseline not in groups:
        return []
    out = []
    for m in present_metrics(records):
        a = {r["seed"]: r.get(m.key) for r in groups[subject]}
        b = {r["seed"]: r.get(m.key) for r in groups[baseline]}
        v = paired_verdict(a, b, m.better)
        if v is None:
            continue
        ma, mb = seed_stat(a.values()), seed_stat(b.values())
        label = {"worse": "**worse**", "one seed": "one seed: no interval to judge by"}.get(
            v.label, v.label)
        out.append(f"- {m.header}: {subject} {fmt_value(ma[0], m.digits)} vs {baseline} "
                   f"{fmt_value(mb[0], m.digits)} ({v.interval}): {label}.")
    return out


def same_runs(records: list[dict], subject: str = "tfsd", baseline: str = "metric_ce",
              rel: float = 1e-5) -> bool:
    """Whether every paired seed value of every metric agrees to ``rel`` (relative): the
    two objectives trained to the same numbers."""
    groups = group_records(records)
    if subject not in groups or baseline not in groups:
        return False
    b = {r["seed"]: r for r in groups[baseline]}
    pairs = [(r.get(m.key), b[r["seed"]].get(m.key)) for r in groups[subject]
             if r["seed"] in b for m in present_metrics(records)]
    pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
    return bool(pairs) and all(abs(x - y) <= rel * max(abs(x), abs(y), 1e-12)
                               for x, y in pairs)


def ground_truth(figs: FigureSet, h: str = "##") -> str:
    """The target-entropy claim tested against the Bayes posterior (gaussians runs only)."""
    from ..store import open_run
    from .groundtruth import claim_test, probe_entropies

    rows, verdicts = [], []
    for obj, members in group_records(figs.records).items():
        per_run = [e for e in (probe_entropies(r["folder"]) for r in members) if e is not None]
        if not per_run:
            continue
        pooled = {k: np.concatenate([e[k] for e in per_run]) for k in per_run[0]}
        t = claim_test(pooled)
        rows.append(f"| {obj} | {t['n_hard']}/{t['n_easy']} | {t['bayes_hard']:.3g} / "
                    f"{t['bayes_easy']:.3g} | {t['target_hard']:.3g} / {t['target_easy']:.3g} | "
                    f"{t['pred_hard']:.3g} / {t['pred_easy']:.3g} | {t['p_flatter']:.2g} | "
                    f"{t['rho_target_bayes']:.2f} | {t['anchor_hard_median']:.3g} / "
                    f"{t['anchor_easy_median']:.3g} | {t['negative_hard_median']:.3g} / "
                    f"{t['negative_easy_median']:.3g} |")
        if obj.startswith("tfsd"):
            verdicts.append(_verdict(obj, t))
    if not rows:
        return ""
    with open_run(figs.records[0]["folder"]) as run:
        info = run.meta.get("data_info") or {}
    pairs = ", ".join(f"{a}-{b}" for a, b in info.get("hard_pairs", [])) or "none"
    head = ("| objective | n hard/easy | Bayes H hard / easy | H(p) hard / easy | "
            "H(q) hard / easy | p (H(p) hard > easy) | ρ(H(p), Bayes H) | s·d_y (or z_y) "
            "median hard / easy | nearest negative median hard / easy |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    return "\n".join([f"{h} Ground truth: are hard samples' targets flatter?", "",
                      f"Class pairs {pairs} overlap (centres "
                      f"{info.get('hard_distance', '?')} σ apart; other classes "
                      f"{info.get('far_distance', '?')} σ). Entropies in nats at the last "
                      "snapshot, probe set pooled over seeds. Hard = a class of an "
                      "overlapping pair.", "", *verdicts, "",
                      head, *rows, ""])


# a target entropy below this share of the Bayes entropy carries no usable uncertainty
FLAT_SHARE = 0.01


def _verdict(obj: str, t: dict) -> str:
    """The claim's answer for one objective, from :func:`groundtruth.claim_test`'s numbers."""
    share = t["target_hard"] / t["bayes_hard"] if t["bayes_hard"] > 0 else float("nan")
    ranked = (f"one-sided Mann-Whitney p = {t['p_flatter']:.2g} for hard > easy, Spearman ρ "
              f"with the Bayes entropy {t['rho_target_bayes']:.2f}")
    if not share >= FLAT_SHARE:
        head = (f"**{obj}: the targets stay one-hot on the hard pairs.** Their mean H(p) is "
                f"{t['target_hard']:.3g} nats, {share:.2%} of the Bayes posterior's "
                f"{t['bayes_hard']:.3g} nats (easy classes: {t['target_easy']:.3g}); any ranking "
                f"of such values ({ranked}) is at the level of float rounding.")
    elif t["p_flatter"] < 0.01 and t["target_hard"] > t["target_easy"]:
        head = (f"**{obj}: hard-pair targets are flatter than easy-class targets** (mean H(p) "
                f"{t['target_hard']:.3g} vs {t['target_easy']:.3g} nats, {share:.1%} of the "
                f"Bayes entropy on the hard pairs; {ranked}).")
    else:
        head = (f"**{obj}: hard-pair targets are not flatter than easy-class targets** (mean "
                f"H(p) {t['target_hard']:.3g} vs {t['target_easy']:.3g} nats; {ranked}).")
    return (head + f" On the hard pairs the median anchor gap s·d_y is "
            f"{t['anchor_hard_median']:.3g} and the nearest negative s·d_neg "
            f"{t['negative_hard_median']:.3g}: with the true class's distance set to 0, the "
            "target puts the true class e^(s·d_neg) ≈ "
            f"e^{t['negative_hard_median']:.3g} times above the nearest other class, so it is "
            "one-hot unless s·d_neg is of order 1 (d: the squared distance ‖x − c‖²).")


def _provenance(records: list[dict]) -> list[str]:
    from ..store import open_run

    with open_run(records[0]["folder"]) as run:
        meta = run.meta
    durations = [r["seconds"] for r in records if r.get("seconds") is not None]
    git = meta.get("git") or {}
    return [f"- code: geomviz {meta.get('versions', {}).get('geomviz', '?')}, commit "
            f"`{git.get('commit', '?')}`{' (uncommitted changes)' if git.get('dirty') else ''}",
            "- versions: " + ", ".join(f"{k} {v}" for k, v in
                                       (meta.get("versions") or {}).items()),
            "- hardware: " + ", ".join(f"{k} {v}" for k, v in
                                       (meta.get("hardware") or {}).items()),
            f"- training time: {sum(durations):.0f} s over {len(durations)} runs "
            "(store creation to close)"]


def write_report(path: str | Path, preset: str, cfg, figs: FigureSet, fig_dir: Path,
                 command: str, files: list[Path] | None = None) -> Path:
    """Write the Markdown report of a one-setting study at ``path``; figures are linked
    relative to it. ``files``: the figure files written with it (default: whatever exists
    in ``fig_dir``), so a stale image from an earlier export is never embedded."""
    return write_parts_report(path, preset, [ReportPart(cfg.dataset, cfg, figs, Path(fig_dir),
                                                        files)], command)


@dataclasses.dataclass
class ReportPart:
    """One setting of a study (a dataset, a noise rate): its runs' figures and files."""

    label: str
    cfg: object
    figs: FigureSet
    fig_dir: Path
    files: list[Path] | None = None


def write_parts_report(path: str | Path, preset: str, parts: list[ReportPart],
                       command: str) -> Path:
    """The report of every part: one claims table over all of them, then each part's
    setup, tables, verdicts and figures (a part's headings one level down when there are
    several)."""
    path = Path(path)
    every = [r for p in parts for r in p.figs.records]
    lines = [f"# geomviz study: {preset}", "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M')} by:", "", f"    {command}", "",
             "## Claims", "", claims_table([(p.label, p.figs.records) for p in parts]), ""]
    many = len(parts) > 1
    for p in parts:
        if many:
            lines += [f"## {p.label}", ""]
        lines += _part_lines(path, p, "#" * (3 if many else 2))
    lines += ["## Provenance", "", *(_provenance(every) if every else []), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def _part_lines(path: Path, part: ReportPart, h: str) -> list[str]:
    records, figs = part.figs.records, part.figs
    fig_dir = Path(part.fig_dir)
    rel = fig_dir.resolve().relative_to(path.parent.resolve()) \
        if fig_dir.resolve().is_relative_to(path.parent.resolve()) else fig_dir
    fresh = None if part.files is None else {Path(f).resolve() for f in part.files}
    near = ood_table(records, "auroc_near_by_score")
    lm, noise = lm_table(records), noise_table(records)

    def written(rel_path: Path) -> bool:
        full = (path.parent / rel_path).resolve()
        return full.exists() and (fresh is None or full in fresh)

    c = dataclasses.asdict(part.cfg)
    with_seeds = sorted({r["seed"] for r in records if r["seed"] is not None})
    ood = next((r for r in records), {})
    noisy = (f"; label noise {c['label_noise']} ({c.get('label_noise_mode', 'symmetric')})"
             if c.get("label_noise") else "")
    lines = [f"{h} Setup", "",
             f"- data: {c['dataset']}{noisy}; OOD: {_ood_name(ood)}; model: {c['model']} "
             f"(feature dim {c['feature_dim']}); {c['epochs']} epochs, batch {c['batch_size']}, "
             f"{c['optimizer']} lr {c['lr']}, weight decay {c['weight_decay']}",
             f"- objectives: {', '.join(group_records(records))}; seeds: "
             f"{', '.join(map(str, with_seeds))} (same data, initialisation and batches per "
             "seed)",
             f"- OOD score in the table: {records[0]['score']} (maximum softmax probability)"
             if records and records[0]["score"] == "msp" else "", "",
             f"{h} Results (mean ± sd over seeds)", "", results_table(records), "",
             "Columns: test accuracy, NLL and ECE (15 bins); OOD AUROC and FPR at 95% TPR with "
             "OOD as positive; final ‖x‖ is the mean feature norm of the in-distribution probe "
             "set at the last step, ‖x‖ growth its ratio to step 0; NC1 on 5000 training "
             "examples.", "",
             *([f"{h} Entropies against the exact law", "", lm, ""] if lm else []),
             *([f"{h} Label noise", "", noise, ""] if noise else []),
             f"{h}# TFSD against CE", "",
             "Paired over seeds (each seed shares data, initialisation and batches): the mean "
             "difference with its 95% t-interval; better or worse only when the interval "
             "excludes 0.", "",
             *(compare_lines(records) or ["- (a TFSD and a CE run are both needed)"]), "",
             f"{h}# TFSD against metric-CE (the same distance head, one-hot target)", "",
             "What the zero-anchor target adds over the distance head alone.", "",
             *(compare_lines(records, "tfsd", "metric_ce") or
               ["- (a TFSD and a metric_ce run are both needed)"]), "",
             *(["**TFSD and metric-CE trained to the same numbers** (every metric of every "
                "seed agrees to 1e-5, relative): TFSD's zero-anchor target was one-hot to "
                "float precision, so its loss KL(p ‖ q) was metric-CE's cross-entropy.", ""]
               if same_runs(records) else []),
             *([f"{h}# TFSD at s = 1/D against CE", "",
                "TFSD with the logit scale s = 1/D (D the feature dimension), so s·d is of "
                "order 1 and the zero-anchor target need not be one-hot.", "",
                *compare_lines(records, "tfsd_scaled", "ce"), ""]
               if "tfsd_scaled" in group_records(records) else []),
             *_user_lines(records, h),
             f"{h}# OOD AUROC by score", "",
             "Each score ranks inputs by the model's ID confidence. For distance heads "
             "max_logit is -s·min_j ‖x − c_j‖², so it ranks inputs exactly as the min-distance "
             "score does and has the same AUROC: that score is shown once, as max_logit.", "",
             ood_table(records) or "(no OOD split)", "",
             *([f"{h}# OOD AUROC by score, second OOD set", "", near, ""] if near else []),
             f"{h} Every seed", "", seed_table(records), "", ground_truth(figs, h),
             f"{h} Figures", ""]
    for name in FIGURES:
        if name in figs.figures:
            png, html = rel / f"{name}.png", rel / f"{name}.html"
            lines += [f"{h}# {name}", "", CAPTIONS[name], ""]
            if written(png):
                lines += [f"![{name}]({png.as_posix()})", ""]
            if written(html):
                lines += [f"[interactive]({html.as_posix()})", ""]
        elif name in figs.skipped and not figs.skipped[name].startswith("needs "):
            # "needs ...": a figure for other data (LM, label noise, Gaussians) is left out
            lines += [f"{h}# {name}", "", f"Not drawn: {figs.skipped[name]}.", ""]
    return lines


def _user_lines(records: list[dict], h: str) -> list[str]:
    """A section per user objective (a plugin), judged against CE as TFSD is."""
    from ..objectives import is_builtin

    out = []
    for obj in (o for o in group_records(records) if o != "?" and not is_builtin(o)):
        out += [f"{h}# {obj} against CE", "", f"The user objective `{obj}` (a plugin), "
                "paired over seeds as above.", "",
                *(compare_lines(records, obj, "ce") or
                  [f"- (a {obj} and a CE run are both needed)"]), ""]
    return out


def _ood_name(record: dict) -> str:
    from ..store import open_run

    if not record:
        return "none"
    with open_run(record["folder"]) as run:
        meta = run.meta
    near = meta.get("near_ood_name")
    return str(meta.get("ood_name") or "none") + (f"; second OOD set: {near}" if near else "")
