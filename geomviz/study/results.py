"""Headline numbers of runs: one record per run, and mean ± sd per objective over seeds.

The summary table, the report and the dashboard all take their numbers from here,
so a number in a figure is the number in the report. Values come straight from the
store: the final evaluation in the run's metadata and the manifold snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..store import open_run

__all__ = ["METRICS", "Metric", "present_metrics", "run_record", "group_records", "seed_stat",
           "aggregate", "fmt_value", "fmt_stat", "objective_order"]


@dataclass(frozen=True)
class Metric:
    key: str
    header: str
    better: str  # "higher" | "lower" | "" (no direction: descriptive)
    digits: int  # significant digits in tables


METRICS = [
    Metric("acc", "accuracy", "higher", 4),
    Metric("nll", "NLL", "lower", 4),
    Metric("ece", "ECE", "lower", 3),
    Metric("auroc", "AUROC", "higher", 4),
    Metric("fpr95", "FPR95", "lower", 3),
    Metric("auroc_near", "AUROC (2nd OOD set)", "higher", 4),
    Metric("fpr95_near", "FPR95 (2nd OOD set)", "lower", 3),
    Metric("final_norm", "final ‖x‖", "", 4),
    Metric("norm_growth", "‖x‖ growth", "lower", 3),
    Metric("nc1", "NC1", "lower", 3),
    # language models: distance of the prediction from the exact next-token law
    Metric("truth_kl", "KL(true ‖ q)", "lower", 3),
    # class groups (synonym sets, superclasses): within/between distance, rank agreement
    Metric("classes_ratio", "within/between", "", 3),
    Metric("classes_structure", "structure ρ", "higher", 3),
    # label noise: memorised flipped labels; feature-gradient norm, flipped over clean
    Metric("memorised", "memorised", "lower", 3),
    Metric("grad_noisy_ratio", "‖g‖ flipped/clean", "", 3),
]

# the last quarter of training: where a probe series is summarised by its mean
TAIL = 0.25


def _snapshot_norms(run) -> tuple[float | None, float | None]:
    """Mean ‖x‖ of the in-distribution probe set at the last snapshot and its ratio to step 0."""
    norms = run.arrays("snapshot.norm")
    labels = run.arrays("snapshot.labels").get(0)
    if not norms:
        return None, None
    steps = sorted(norms)
    ind = np.ones(len(norms[steps[0]]), bool) if labels is None else np.asarray(labels) >= 0
    last = float(np.mean(norms[steps[-1]][ind], dtype=np.float64))
    if steps[0] != 0 or steps[-1] == 0:
        return last, None
    return last, last / float(np.mean(norms[0][ind], dtype=np.float64))


def _tail_mean(run, name: str, split: str = "train") -> float | None:
    """Mean of series ``name`` over the last :data:`TAIL` of its steps (``None`` if absent)."""
    s = run.scalars(name, split)
    if not len(s["step"]):
        return None
    keep = s["step"] >= s["step"].max() - TAIL * (s["step"].max() - s["step"].min())
    v = s["value"][keep]
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else None


def _series_max(run, name: str) -> float | None:
    v = run.scalars(name)["value"]
    v = v[np.isfinite(v)]
    return float(v.max()) if len(v) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b not in (None, 0.0) else None


def run_record(folder: str | Path, score: str = "msp") -> dict:
    """One run's headline numbers (``None`` where the run did not record one).

    accuracy, NLL and ECE are on the test split; AUROC and FPR95 detect OOD by the
    ID-confidence ``score``; final ‖x‖ is the mean feature norm of the in-distribution
    probe set at the last snapshot, ‖x‖ growth its ratio to the same set at step 0;
    NC1 is measured on the first 5000 training examples. All at the last evaluation.
    """
    with open_run(folder) as run:
        meta = run.meta
        final = meta.get("final") or {}
        final_norm, growth = _snapshot_norms(run)
        series = {"max_logit_train": _series_max(run, "health.max_logit"),
                  "hard_target": _tail_mean(run, "entropy.hard.target"),
                  "easy_target": _tail_mean(run, "entropy.easy.target"),
                  "hard_pred": _tail_mean(run, "entropy.hard.pred"),
                  "grad_noisy": _tail_mean(run, "grad.noisy.norm.mean"),
                  "grad_clean": _tail_mean(run, "grad.clean.norm.mean")}
    test, ood, train = final.get("test", {}), final.get("ood", {}), final.get("train_eval", {})
    near = final.get("ood_near", {})  # no snapshots: no final norm (never another definition)
    return {"folder": str(folder), "objective": meta.get("objective", "?"),
            "dataset": meta.get("dataset", "?"), "seed": meta.get("seed"),
            "status": meta.get("status"), "epochs": meta.get("epochs_done"),
            "seconds": float(meta["ended"]) - float(meta["created"])
            if meta.get("ended") and meta.get("created") else None,  # store creation to close
            "acc": test.get("acc"), "nll": test.get("nll"), "ece": test.get("ece"),
            "auroc": ood.get(f"{score}.auroc"), "fpr95": ood.get(f"{score}.fpr95"),
            "auroc_near": near.get(f"{score}.auroc"), "fpr95_near": near.get(f"{score}.fpr95"),
            "final_norm": final_norm, "norm_growth": growth, "nc1": train.get("nc1"),
            "truth_kl": test.get("truth.kl"), "classes_ratio": test.get("classes.ratio"),
            "classes_structure": test.get("classes.structure"),
            "memorised": train.get("memorised"),
            "grad_noisy_ratio": _ratio(series["grad_noisy"], series["grad_clean"]),
            "label_noise": (meta.get("config") or {}).get("label_noise") or 0.0,
            **series, **{f"{kind}_{q}": test.get(f"entropy.{kind}.{q}")
                         for kind in ("synonym", "single")
                         for q in ("target", "pred", "truth", "fraction")},
            "score": score, "auroc_by_score": {k.split(".")[0]: v for k, v in ood.items()
                                               if k.endswith(".auroc")},
            "auroc_near_by_score": {k.split(".")[0]: v for k, v in near.items()
                                    if k.endswith(".auroc")}}


def present_metrics(records: list[dict]) -> list[Metric]:
    """The metrics at least one run recorded (a second OOD set only where there is one)."""
    return [m for m in METRICS if any(r.get(m.key) is not None for r in records)]


def objective_order(names) -> list[str]:
    """Objectives in registry order (CE first), unknown ones after, alphabetically."""
    from ..objectives import list_objectives

    known = list_objectives()
    return sorted(set(names), key=lambda n: (known.index(n) if n in known else len(known), n))


def group_records(records: list[dict]) -> dict[str, list[dict]]:
    """``{objective: records sorted by seed}`` in :func:`objective_order`."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(r["objective"], []).append(r)
    return {k: sorted(groups[k], key=lambda r: (r["seed"] is None, r["seed"]))
            for k in objective_order(groups)}


def seed_stat(values) -> tuple[float, float, int] | None:
    """``(mean, sd, n)`` of the finite values given (``None`` entries skipped); sd is the
    sample sd, 0 for one value; ``None`` when nothing is left."""
    vals = np.array([v for v in values if v is not None], dtype=float)
    vals = vals[np.isfinite(vals)]
    if not len(vals):
        return None
    return float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, len(vals)


def aggregate(records: list[dict]) -> dict[str, dict[str, tuple[float, float, int] | None]]:
    """``{objective: {metric: (mean, sd, n)}}`` over seeds, by :func:`seed_stat`."""
    return {name: {m.key: seed_stat(r.get(m.key) for r in members) for m in METRICS}
            for name, members in group_records(records).items()}


def fmt_value(v: float | None, digits: int = 4) -> str:
    """A table cell: ``digits`` significant digits, '–' when missing."""
    if v is None or not np.isfinite(v):
        return "–"
    return f"{v:.{digits}g}"


def fmt_stat(stat: tuple[float, float, int] | None, digits: int = 4) -> str:
    """``mean ± sd`` (just the mean for one seed)."""
    if stat is None:
        return "–"
    mean, sd, n = stat
    return fmt_value(mean, digits) if n < 2 else f"{fmt_value(mean, digits)} ± {sd:.2g}"
