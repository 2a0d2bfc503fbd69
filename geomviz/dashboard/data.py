"""What the dashboard reads: runs under one folder (path-safe), their series and snapshots.

Every function takes the runs folder explicitly; nothing is cached at module level.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..class_vectors import (
    decode_contexts,
    load_class_vectors,
    project_class_vectors,
    token_static,
)
from ..projection import CACHE_DIR, load_snapshots, project
from ..store import StoreError, list_runs, open_run

__all__ = ["resolve_run", "check_cache", "run_table", "seed_groups", "time_series", "manifold_data",
           "ood_data", "class_vector_data", "PathError", "TOKEN_SCALARS"]

# a language-model run's test-split probes (geomviz.training.evaluate_tokens)
TOKEN_SCALARS = ("truth.kl", "classes.ratio") + tuple(
    f"entropy.{w}.{k}" for w in ("synonym", "single") for k in ("target", "pred", "truth"))


class PathError(ValueError):
    """A run id that does not resolve to a run inside the runs folder."""


def resolve_run(root: str | Path, run_id: str | None) -> Path:
    """The folder of ``run_id`` (relative to ``root``); anything outside ``root`` is refused."""
    if not run_id:
        raise PathError("no run selected")
    if not isinstance(run_id, str):
        raise PathError(f"run id {str(run_id)[:40]!r} is not text")
    if len(run_id) > 1000 or "\x00" in run_id:
        raise PathError(f"run id {run_id[:40]!r}... is not a run (too long or not text)")
    base = Path(root).resolve()
    try:  # symlinks followed: the folder and its store must both lie inside the runs folder
        folder = (base / run_id).resolve()
        store = (folder / "run.sqlite").resolve()
        exists = store.is_file()
    except (OSError, RuntimeError) as e:  # a name too long for the OS, a symlink loop
        raise PathError(f"run {run_id[:80]!r} cannot be read: {e.strerror or e}") from None
    for path in (folder, store):
        if path != base and base not in path.parents:
            raise PathError(f"run {run_id[:80]!r} is outside the runs folder")
    if not exists:
        raise PathError(f"no run {run_id[:80]!r} in the runs folder")
    return folder


def check_cache(root: str | Path) -> None:
    """The projection cache (``root/.projections``) is read and written by the dashboard:
    it must be a folder inside ``root`` holding no link out of it, else :class:`PathError`."""
    cache = Path(root) / CACHE_DIR
    if not os.path.lexists(cache):
        return
    base = Path(root).resolve()
    real = cache.resolve()
    if not real.is_relative_to(base) or not real.is_dir():
        raise PathError(f"the projection cache {CACHE_DIR} is a link out of the runs folder "
                        "or not a folder; move it away")
    for entry in os.scandir(real):
        if entry.is_symlink() and not Path(entry.path).resolve().is_relative_to(base):
            raise PathError(f"the projection cache holds {entry.name[:80]!r}, a link out of "
                            "the runs folder; move it away")


def _row(rid: str, warning: str) -> dict:
    return {"run": rid, "objective": "?", "dataset": "?", "seed": None,
            "status": "unreadable", "steps": 0, "acc": None, "auroc": None, "kl": None,
            "warning": warning}


def run_table(root: str | Path) -> list[dict]:
    """One row per run: id, objective, dataset, seed, status, steps, accuracy, AUROC, the
    distance to the true next-token law (``truth.kl``, token runs on known laws), warning.
    A store that is a link out of the runs folder, or no regular file, is a warning row and
    is never opened."""
    rows = []
    skipped: list[tuple[Path, str]] = []
    folders = list_runs(root, within=root, skipped=skipped)
    rows += [_row(str(f.relative_to(Path(root))), why) for f, why in skipped]
    for folder in folders:
        rid = str(folder.relative_to(Path(root)))
        try:
            with open_run(folder) as run:
                meta = run.meta
                steps = run.steps()
                final = meta.get("final") or {}
                rows.append({"run": rid, "objective": meta.get("objective", "?"),
                             "dataset": meta.get("dataset", "?"), "seed": meta.get("seed"),
                             "status": meta["status"],
                             "steps": int(steps[-1]) if len(steps) else 0,
                             "acc": final.get("test", {}).get("acc"),
                             "auroc": final.get("ood", {}).get("msp.auroc"),
                             "kl": final.get("test", {}).get("truth.kl"), "warning": ""})
        except Exception as e:  # noqa: BLE001 - one bad store is one warning row, never more
            if not isinstance(e, StoreError):
                e = f"{type(e).__name__}: {e}"
            rows.append(_row(rid, str(e)))
    return sorted(rows, key=lambda r: r["run"])


def seed_groups(rows: list[dict]) -> list[dict]:
    """Runs that differ only by seed (same folder, objective and dataset): mean ± sd."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["status"] == "unreadable":
            continue
        parent = r["run"].rsplit("/", 1)[0] if "/" in r["run"] else "."
        groups.setdefault((parent, r["objective"], r["dataset"]), []).append(r)
    out = []
    for (parent, objective, dataset), members in sorted(groups.items()):
        row = {"group": f"{parent}/{objective}", "dataset": dataset, "n": len(members)}
        for key in ("acc", "auroc"):
            vals = np.array([m[key] for m in members if m[key] is not None], dtype=float)
            row[key] = (float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
                        len(vals)) if len(vals) else None
        out.append(row)
    return out


def ood_data(folder: Path, score: str) -> dict | None:
    """The last evaluation's per-sample ``score`` for ID and OOD inputs, and its metrics."""
    with open_run(folder) as run:
        ids, oods = run.arrays(f"eval.confidence.{score}.id"), \
            run.arrays(f"eval.confidence.{score}.ood")
        if not ids or not oods:
            return None
        step = max(ids)
        metrics = {k: run.scalars(f"{score}.{k}", split="ood")["value"]
                   for k in ("auroc", "aupr_in", "aupr_out", "fpr95")}
    return {"step": step, "id": ids[step], "ood": oods[step],
            "metrics": {k: float(v[-1]) for k, v in metrics.items() if len(v)}}


def time_series(folder: Path) -> dict:
    """Everything the time panels need, as numpy arrays."""
    with open_run(folder) as run:
        def s(name, split="train"):
            d = run.scalars(name, split=split)
            return d["step"], d["value"]

        out = {"loss": s("loss"), "acc": s("acc"), "spike": s("health.spike.loss", "spike"),
               "radial_fraction": s("grad.radial_fraction"),
               "p50": s("penultimate.norm.p50"), "p95": s("penultimate.norm.p95"),
               "decomp": {k: s(f"decomp.{k}") for k in ("radial", "angular", "weight", "bias",
                                                         "total")},
               "entropy": {f"{g}.{k}": s(f"entropy.{g}.{k}") for g in ("easy", "hard")
                           for k in ("target", "pred")},
               "metric": (run.meta.get("probes") or {}).get("metric", "dot")}
        first, second = (("head.anchor_gap", "head.nearest_negative")
                         if out["metric"] == "euclidean" else
                         ("head.logit_true", "head.logit_top_negative"))
        out["tokens"] = {name: s(name, "test") for name in TOKEN_SCALARS}
        out["margins"] = {f"{name.split('.', 1)[1]} {q}": s(f"{name}.{q}")
                          for name in (first, second) for q in ("p5", "p50", "p95")}
        try:
            out["norm_hist"] = run.histograms("penultimate.norm", split="train")
        except KeyError:
            out["norm_hist"] = None
    return out


def manifold_data(root: Path, folders: list[Path], method: str) -> dict:
    """Cached projections of the runs' snapshots on their common steps, plus labels/colours."""
    check_cache(root)
    snaps = [load_snapshots(f, features=False) for f in folders]
    common = sorted(set.intersection(*(set(s.steps.tolist()) for s in snaps)))
    if method == "aligned_umap":  # too slow for a request: only ever read from the cache
        xy = [project([f], method, cache_root=root, cached_only=True, n_epochs=100)[0]
              for f in folders]  # one embedding per run, as `geomviz project` caches them
    elif method == "fast_umap":  # one joint embedding of both runs, computed in the background
        xy = project(folders, method, cache_root=root, cached_only=True)
    else:  # PCA (one SVD) and the polar view are available at once, then cached
        xy = project(folders, method, cache_root=root)
    out = {"steps": common, "runs": []}
    for f, s, arr in zip(folders, snaps, xy, strict=True):
        pos = [int(np.flatnonzero(s.steps == t)[0]) for t in common]
        with open_run(f) as run:
            meta = run.meta
        static = token_static(f) if meta.get("kind") == "tokens" else {}
        context = static.pop("context", None)
        out["runs"].append({"xy": arr[pos], "labels": s.labels,
                            "extra": {k: v[pos] for k, v in s.extra.items()},
                            "static": {k: v for k, v in static.items()
                                       if len(v) == len(s.labels)},
                            "tokens": None if context is None or len(context) != len(s.labels)
                            else decode_contexts(context, s.labels, meta.get("class_names")),
                            "name": str(Path(f).relative_to(Path(root).resolve()))
                            if Path(f).is_relative_to(Path(root).resolve()) else Path(f).name,
                            "objective": meta.get("objective", "?"),
                            "metric": (meta.get("probes") or {}).get("metric", "dot"),
                            "class_names": meta.get("class_names")})
    return out


def class_vector_data(root: Path, folders: list[Path]) -> dict | None:
    """The runs' class vectors on one joint PCA basis (cached), on their common steps, as
    manifold runs (points are tokens, coloured by synonym set, or by frequency bucket where
    the data has no synonym sets); None unless every run stores them (a token run)."""
    check_cache(root)
    try:
        cvs = [load_class_vectors(f) for f in folders]
    except ValueError:
        return None
    common = sorted(set.intersection(*(set(c.steps.tolist()) for c in cvs)))
    if not common:
        return None
    xy = project_class_vectors(cvs, root)
    base = Path(root).resolve()
    out = {"steps": common, "runs": []}
    for f, cv, arr in zip(folders, cvs, xy, strict=True):
        pos = [int(np.flatnonzero(cv.steps == t)[0]) for t in common]
        name = str(Path(f).relative_to(base)) if Path(f).is_relative_to(base) else Path(f).name
        out["runs"].append({"xy": arr[pos], "labels": cv.ids, "extra": {},
                            "static": {"group": cv.groups} if (cv.groups >= 0).any() else
                            {"freq_bucket": cv.freq} if (cv.freq >= 0).any() else {},
                            "hover": {"synonym set": cv.groups} if (cv.groups >= 0).any()
                            else {}, "tokens": None, "name": f"{name} · class vectors",
                            "metric": cv.metric, "class_names": cv.names})
    return out
