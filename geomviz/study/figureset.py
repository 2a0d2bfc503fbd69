"""The named publication figure set: what each figure reads from the runs.

Reads runs through the reader API (``geomviz.store``, cached projections), turns
them into plain arrays and hands them to the pure builders in
``geomviz.figures``. Runs whose configs differ only by seed form a group (one per
objective, or per objective and rate in a sweep), drawn as a mean with a band.
Writing files is ``geomviz.study.export``'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import figures as F
from ..class_vectors import load_class_vectors, project_class_vectors
from ..figures import lm as LM
from ..figures.labels import RUN_ONLY_KEYS, group_key, run_labels, table_column
from ..figures.noise import outlier_gradients
from ..projection import load_snapshots, project
from ..projection import polar as polar_view
from ..store import StoreError, list_runs, open_run, warn_skipped
from .groundtruth import binned_mean, probe_entropies
from .results import METRICS, group_records, present_metrics, run_record, seed_stat

__all__ = ["FIGURES", "CAPTIONS", "FigureSet", "find_runs", "build_figures"]

FIGURES = ("norm_growth", "manifold_grid", "angle_radius", "gradient_split", "target_entropy",
           "ood", "summary_table", "target_vs_bayes", "synonym_entropy", "tearing",
           "class_vectors", "outlier_gradients")
LM_FIGURES = ("synonym_entropy", "tearing", "class_vectors")  # token runs with synonym sets
NOISE_FIGURES = ("outlier_gradients",)  # runs trained with label noise

CAPTIONS = {
    "norm_growth": "Median penultimate feature norm ‖x‖ of the training batches (line: mean "
                   "over seeds; band: mean p5–p95), and the distribution of the probe set's "
                   "‖x‖ at the last snapshot (all seeds pooled; bins shared by the objectives "
                   "and fitted to the data's range); without snapshots, the last training "
                   "batch's fixed-bin histogram.",
    "manifold_grid": "The fixed probe set (test examples, OOD as ×) on one PCA basis fitted "
                     "jointly to every run and step shown (first seed of each objective). "
                     "One x and one y range for every panel, so the cloud's growth over "
                     "training shows (per-step ranges only when asked, as the title says).",
    "angle_radius": "Top: the probe set at the end as angle to the true class vector vs "
                    "radius. Bottom: the change of the mean true-class logit between logs, "
                    "attributed exactly (Shapley) to the radius and the angle, summed over "
                    "training.",
    "gradient_split": "Share of the feature gradient's squared norm along x (radial); the "
                      "rest is tangential.",
    "target_entropy": "Target and prediction entropy of easy (q_y ≥ 0.9) and hard "
                      "(q_y < 0.5) training samples; for distance heads, the median anchor "
                      "gap s·d_y and nearest-negative distance s·d_neg (d = ‖x − c‖², "
                      "squared).",
    "ood": "ID vs OOD confidence histograms and ROC curves (OOD is the positive class), "
           "first seed; AUROC: mean ± sd over seeds.",
    "summary_table": "Final test metrics, mean ± sd over seeds.",
    "outlier_gradients": "Label noise: mean per-sample feature-gradient norm ‖∂ℓ_i/∂x_i‖ of "
                         "flipped (solid) and clean (dotted) training samples, their ratio, "
                         "and the share of flipped samples predicted with their flipped "
                         "label (line: mean over seeds; band: min-max).",
    "target_vs_bayes": "Gaussians only: mean target and prediction entropy of the probe set in "
                       "bins of the exact Bayes posterior's entropy (all seeds pooled).",
    "synonym_entropy": "Language models: on test positions whose true next token is spread "
                       "over a synonym set (left) and on determined ones (right), TFSD's "
                       "target entropy H(p), the prediction's H(q) and the true law's H(true), "
                       "over training (line: mean over seeds; band: min-max).",
    "tearing": "Class groups (synonym sets, superclasses): mean distance between class "
               "vectors of one group over the mean distance between groups (classes.ratio), "
               "over training; above 1, members of a group sit farther apart than unrelated "
               "classes.",
    "class_vectors": "Language models: the class vectors (unembedding rows or centres) of the "
                     "stored token subset on one PCA basis fitted to every objective and step "
                     "shown (first seed), coloured by synonym set; axes shared within a column.",
}


@dataclass
class FigureSet:
    figures: dict = field(default_factory=dict)  # name -> plotly Figure
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why it was not drawn
    records: list[dict] = field(default_factory=list)


def _readable(folder: Path) -> bool:
    try:
        with open_run(folder) as run:
            run.meta  # noqa: B018 - malformed metadata fails here
        return True
    except StoreError as e:
        warn_skipped(folder, str(e).splitlines()[0])
        return False


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Readable run folders given directly or found under folders of runs, in order,
    de-duplicated; an unreadable store is one warning line and is left out."""
    out: list[Path] = []
    found = 0
    for p in paths:
        for folder in list_runs(p):
            if folder.resolve() not in [o.resolve() for o in out]:
                found += 1
                if _readable(folder):
                    out.append(folder)
    if not out:
        raise StoreError(f"no {'readable ' if found else ''}runs under "
                         f"{', '.join(map(str, paths))}")
    return out


def _series(folders: list[Path], name: str, split: str = "train") -> list[tuple]:
    out = []
    for f in folders:
        with open_run(f) as run:
            d = run.scalars(name, split=split)
        if len(d["step"]):
            out.append((d["step"], d["value"]))
    return out


def _per_objective(groups: dict[str, list[Path]], name: str, split: str = "train") -> dict:
    out = {obj: _series(fs, name, split) for obj, fs in groups.items()}
    return {k: v for k, v in out.items() if v}


def _pick_steps(steps: list[int], k: int) -> list[int]:
    """``k`` steps spread evenly in log(step + 1) from the first to the last."""
    if len(steps) <= k:
        return list(steps)
    arr = np.asarray(steps)
    targets = np.geomspace(arr[0] + 1, arr[-1] + 1, k) - 1
    chosen = sorted({int(arr[np.argmin(np.abs(arr - t))]) for t in targets})
    for s in steps:  # nearest-neighbour picks can collide early on: fill in order
        if len(chosen) >= k:
            break
        if s not in chosen:
            chosen = sorted([*chosen, s])
    return chosen


def _subsample(labels: np.ndarray, n: int) -> np.ndarray:
    """The same ``n`` probe examples for every run (a fixed permutation), in index order."""
    if len(labels) <= n:
        return np.arange(len(labels))
    return np.sort(np.random.default_rng(0).permutation(len(labels))[:n])


def _manifold(first: dict[str, Path], steps: int, max_points: int, cache_root: Path):
    snaps = {o: load_snapshots(f, features=False) for o, f in first.items()}
    common = sorted(set.intersection(*(set(s.steps.tolist()) for s in snaps.values())))
    if not common:
        raise ValueError("the runs share no snapshot step")
    chosen = _pick_steps(common, steps)
    xy = project(list(first.values()), "pca", cache_root=cache_root)
    panels, polar = {}, {}
    for (obj, snap), arr in zip(snaps.items(), xy, strict=True):
        keep = _subsample(snap.labels, max_points)
        pos = [int(np.flatnonzero(snap.steps == s)[0]) for s in chosen]
        panels[obj] = {"steps": chosen, "xy": arr[pos][:, keep], "labels": snap.labels[keep]}
        end = int(np.flatnonzero(snap.steps == common[-1])[0])
        polar[obj] = {"xy": polar_view(snap)[end][keep], "labels": snap.labels[keep]}
    ranges = [F.common_ranges(*(p["xy"][i] for p in panels.values()))
              for i in range(len(chosen))]
    return panels, ranges, polar


def seed_groups(records: list[dict]) -> dict[str, list[dict]]:
    """``{legend label: records}``: runs whose configs are equal except for the seed form
    one group (:func:`geomviz.figures.labels.group_key`), in objective order; the label
    is the objective, plus the rate or another differing setting when one objective has
    several groups (:func:`geomviz.figures.labels.run_labels`)."""
    configs = {}
    for r in records:
        with open_run(r["folder"]) as run:
            configs[r["folder"]] = {"objective": r["objective"],
                                    **(run.meta.get("config") or {})}
    by_key: dict[str, list[dict]] = {}
    for obj, rs in group_records(records).items():  # objective order, seeds sorted
        for r in rs:
            by_key.setdefault(obj + "\0" + group_key(configs[r["folder"]]), []).append(r)
    keys = list(by_key)
    cfgs = [configs[by_key[k][0]["folder"]] for k in keys]
    differ = [k for k in dict.fromkeys(k for c in cfgs for k in c)
              if k not in RUN_ONLY_KEYS and len({repr(c.get(k)) for c in cfgs}) > 1]
    fields = [{"objective": c["objective"], **{k: c.get(k) for k in differ if k != "objective"}}
              for c in cfgs]
    objs = [k.split("\0")[0] for k in keys]

    def rank(i: int) -> tuple:  # objective order kept; one objective's groups by rate
        lr = cfgs[i].get("lr")
        return objs.index(objs[i]), float(lr) if isinstance(lr, int | float) else 0.0

    order = sorted(range(len(keys)), key=rank)
    labels = run_labels(fields)
    return {labels[i]: by_key[keys[i]] for i in order}


def build_figures(folders: list[Path], names: list[str] | None = None, score: str = "msp",
                  steps: int = 5, max_points: int = 300,
                  cache_root: Path | None = None, per_step_ranges: bool = False) -> FigureSet:
    """Build the named figures (all by default) for ``folders``; figures the runs cannot
    support (no snapshots, no OOD split, no known posterior) are listed in ``skipped``.
    Seeds are grouped only when their configs are equal otherwise (:func:`seed_groups`).
    ``per_step_ranges``: ``manifold_grid`` with a range per step instead of one."""
    names = list(names or FIGURES)
    bad = [n for n in names if n not in FIGURES]
    if bad:
        raise ValueError(f"unknown figure {bad[0]!r}; choose from {', '.join(FIGURES)}")
    records = []
    for f in folders:  # one bad store hides no other run
        try:
            records.append(run_record(f, score))
        except StoreError as e:
            warn_skipped(f, str(e).splitlines()[0])
    if not records:
        raise StoreError("none of the runs given can be read")
    folders = [Path(r["folder"]) for r in records]
    grouped = seed_groups(records)
    groups = {label: [Path(r["folder"]) for r in rs] for label, rs in grouped.items()}
    colors = F.group_colors({label: rs[0]["objective"] for label, rs in grouped.items()})
    first = {label: fs[0] for label, fs in groups.items()}
    cache_root = cache_root or Path(folders[0]).resolve().parent
    with open_run(folders[0]) as run:
        class_names = run.meta.get("class_names")
    out = FigureSet(records=records)
    manifold = None

    def need_manifold():
        nonlocal manifold
        if manifold is None:
            manifold = _manifold(first, steps, max_points, cache_root)
        return manifold

    agg = {label: {m.key: seed_stat(r.get(m.key) for r in rs) for m in METRICS}
           for label, rs in grouped.items()}  # once, for the OOD legend and the summary table
    for name in names:
        try:
            out.figures[name] = (
                _build_lm(name, groups, first, colors, steps, cache_root, class_names)
                if name in LM_FIGURES else
                _build(name, groups, first, colors, score, records, agg, class_names,
                       need_manifold, per_step_ranges))
        except (ValueError, KeyError, StoreError) as e:  # StoreError: damaged after opening
            out.skipped[name] = str(e).splitlines()[0] if str(e) else type(e).__name__
    return out


def _probe_norms(folder: Path) -> np.ndarray | None:
    """The in-distribution probe set's ‖x‖ ``[P]`` at the run's last snapshot, if stored."""
    try:
        snap = load_snapshots(folder, features=False)
    except ValueError:
        return None
    if "norm" not in snap.extra:
        return None
    return np.asarray(snap.extra["norm"][-1], np.float64)[np.asarray(snap.labels) >= 0]


def _final_norms(groups: dict[str, list[Path]]) -> tuple[dict, str]:
    """Per group, the probe set's final ‖x‖ (seeds pooled) when every group has snapshots;
    else the first run's last training-batch histogram (fixed bins); and the panel title."""
    samples = {}
    for label, fs in groups.items():
        got = [v for v in (_probe_norms(f) for f in fs) if v is not None and len(v)]
        if got:
            samples[label] = np.concatenate(got)
    if samples and len(samples) == len(groups):
        return samples, "‖x‖ at the end (probe set)"
    hists = {}
    for label, fs in groups.items():
        with open_run(fs[0]) as run:
            h = run.histograms("penultimate.norm", split="train")
        if len(h.counts):
            hists[label] = (h.edges, h.counts[-1])
    return hists, "‖x‖ at the end (last batch)"


def _build(name, groups, first, colors, score, records, agg, class_names, need_manifold,
           per_step=False):
    if name == "norm_growth":
        final, title = _final_norms(groups)
        return F.norm_growth(_per_objective(groups, "penultimate.norm.p50"),
                             _per_objective(groups, "penultimate.norm.p5"),
                             _per_objective(groups, "penultimate.norm.p95"), final, colors,
                             final_title=title)
    if name == "manifold_grid":
        panels, ranges, _ = need_manifold()
        return F.manifold_grid(panels, class_names, ranges, per_step=per_step)
    if name == "angle_radius":
        _, _, polar = need_manifold()
        return F.angle_radius(polar, _per_objective(groups, "decomp.radial"),
                              _per_objective(groups, "decomp.angular"), colors)
    if name == "gradient_split":
        return F.gradient_split(_per_objective(groups, "grad.radial_fraction"), colors)
    if name == "target_entropy":
        ent = {obj: {f"{g}.{k}": _series(fs, f"entropy.{g}.{k}") for g in ("easy", "hard")
                     for k in ("target", "pred")} for obj, fs in groups.items()}
        gaps = {}
        for obj, fs in groups.items():
            parts = {k: _series(fs, f"head.{k}.p50") for k in ("anchor_gap", "nearest_negative")}
            if any(parts.values()):
                gaps[obj] = parts
        return F.target_entropy(ent, gaps, colors)
    if name == "ood":
        scores = {}
        for obj, f in first.items():
            with open_run(f) as run:
                ids, oods = (run.arrays(f"eval.confidence.{score}.{s}") for s in ("id", "ood"))
            if ids and oods:
                scores[obj] = (ids[max(ids)], oods[max(oods)])
        if not scores:
            raise ValueError(f"no OOD split with score {score!r} in these runs")
        auroc = dict(zip(scores, table_column([agg[o]["auroc"] for o in scores], 3),
                         strict=True))
        return F.ood(scores, auroc, score, colors)
    if name == "summary_table":
        metrics = present_metrics(records)
        columns = ["objective", "seeds"] + [m.header for m in metrics]
        # one number of decimals per column (means and sds alike)
        cols = [table_column([agg[o][m.key] for o in agg], m.digits) for m in metrics]
        rows = [[obj, str(len(groups[obj]))] + [c[i] for c in cols]
                for i, obj in enumerate(agg)]
        return F.summary_table(columns, rows, [colors[o] for o in agg])
    if name == "target_vs_bayes":
        curves = {}
        for obj, fs in groups.items():
            per_run = [e for e in (probe_entropies(f) for f in fs) if e is not None]
            if not per_run:
                continue
            pooled = {k: np.concatenate([e[k] for e in per_run]) for k in per_run[0]}
            curves[obj] = {k: binned_mean(pooled["bayes"], pooled[k]) for k in ("target", "pred")}
        if not curves:
            raise ValueError("needs runs on the gaussians data (known posterior)")
        return F.target_vs_bayes(curves, colors)
    if name == "outlier_gradients":
        noisy = _per_objective(groups, "grad.noisy.norm.mean")
        if not noisy:
            raise ValueError("needs runs trained with label noise (--label-noise R)")
        return outlier_gradients(noisy, _per_objective(groups, "grad.clean.norm.mean"),
                                 _per_objective(groups, "memorised", "train_eval"), colors)
    raise AssertionError(name)


def _build_lm(name, groups, first, colors, steps, cache_root, class_names):
    """The language-model figures; runs without the token probes are left out, and a figure
    none of the runs supports is skipped with the reason."""
    if name == "synonym_entropy":
        ent = {}
        for obj, fs in groups.items():
            parts = {f"{w}.{k}": _series(fs, f"entropy.{w}.{k}", "test")
                     for w in ("synonym", "single") for k in ("target", "pred", "truth")}
            if any(parts.values()):
                ent[obj] = parts
        if not ent:
            raise ValueError("needs language-model runs on data with a known law and synonym "
                             "sets (--dataset synonyms)")
        return LM.synonym_entropy(ent, colors)
    if name == "tearing":
        ratio = _per_objective(groups, "classes.ratio", "test")
        if not ratio:
            raise ValueError("needs language-model runs on data with synonym sets "
                             "(classes.ratio; --dataset synonyms)")
        return LM.tearing(ratio, colors)
    if name == "class_vectors":
        cvs = {}
        for obj, f in first.items():
            try:
                cv = load_class_vectors(f)
            except ValueError:
                continue
            if (cv.groups >= 0).any():
                cvs[obj] = cv
        if not cvs:
            raise ValueError("needs language-model runs with class-vector snapshots on data "
                             "with synonym sets (--dataset synonyms)")
        common = sorted(set.intersection(*(set(c.steps.tolist()) for c in cvs.values())))
        if not common:
            raise ValueError("the runs share no class-vector snapshot step")
        chosen = _pick_steps(common, steps)
        xy = project_class_vectors(list(cvs.values()), cache_root)
        panels = {}
        for (obj, cv), arr in zip(cvs.items(), xy, strict=True):
            pos = [int(np.flatnonzero(cv.steps == s)[0]) for s in chosen]
            panels[obj] = {"steps": chosen, "xy": arr[pos], "groups": cv.groups, "ids": cv.ids}
        ranges = [F.common_ranges(*(p["xy"][i] for p in panels.values()))
                  for i in range(len(chosen))]
        return LM.class_vectors(panels, ranges, class_names)
    raise AssertionError(name)
