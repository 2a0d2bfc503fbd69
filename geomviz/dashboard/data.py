"""What the dashboard reads: runs under one folder (path-safe), their series and snapshots.

Every function takes the runs folder explicitly; nothing is cached at module level.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..class_vectors import (
    STATIC_ARRAYS,
    decode_contexts,
    load_class_vectors,
    project_class_vectors,
)
from ..figures.labels import RUN_ONLY_KEYS, group_key, run_labels
from ..projection import CACHE_DIR, load_snapshots, project
from ..store import StoreError, list_runs, open_run
from .steps import align_steps

__all__ = ["resolve_run", "check_cache", "run_table", "seed_groups", "time_series", "manifold_data",
           "ood_data", "class_vector_data", "class_vector_index", "PathError", "TOKEN_SCALARS"]

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
    return {"run": rid, "objective": "?", "dataset": "?", "seed": None, "lr": None,
            "config": {}, "status": "unreadable", "steps": 0, "acc": None, "auroc": None,
            "kl": None, "warning": warning}


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
                config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
                # a run without a stored config (an old store) is told apart by what its
                # metadata does say: objective and dataset
                config = dict(config) or {"objective": meta.get("objective", "?"),
                                          "dataset": meta.get("dataset", "?")}
                rows.append({"run": rid, "objective": meta.get("objective", "?"),
                             "dataset": meta.get("dataset", "?"), "seed": meta.get("seed"),
                             "lr": _number(config.get("lr")), "config": config,
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


def _number(v) -> float | None:
    try:
        return float(v) if v is not None and not isinstance(v, bool) else None
    except (TypeError, ValueError):
        return None


def _parent(run: str) -> str:
    return run.rsplit("/", 1)[0] if "/" in run else "."


def seed_groups(rows: list[dict]) -> list[dict]:
    """Runs whose configs are equal except for the seed (:func:`group_key`), within one
    folder: mean ± sd. ``ce-lr0.001`` and ``ce-lr0.01`` are two groups, never "2 seeds"; a
    sweep's runs form one group per (objective, rate, qk) cell. A group's id is
    ``folder/label``, the label being the objective plus whatever tells it apart from the
    folder's other groups ("ce lr 0.01"); ``members`` lists its runs."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["status"] == "unreadable":
            continue
        config = r.get("config") or {"objective": r["objective"], "dataset": r["dataset"]}
        groups.setdefault((_parent(r["run"]), group_key(config)), []).append(r)
    by_parent: dict[str, list[tuple]] = {}
    for key in sorted(groups):
        by_parent.setdefault(key[0], []).append(key)
    out = []
    for parent, keys in by_parent.items():
        configs = [groups[k][0].get("config") or {} for k in keys]
        # what the groups learn tells them apart, never how a member ran (its device, say:
        # a group's first run would name it for all)
        fields = sorted({f for c in configs for f in c} - {"objective"} - RUN_ONLY_KEYS)
        differ = [f for f in fields if len({repr(c.get(f)) for c in configs}) > 1]
        labels = run_labels([{"objective": groups[k][0]["objective"],
                              **{f: c.get(f) for f in differ},
                              "name": groups[k][0]["run"].rsplit("/", 1)[-1]}
                             for k, c in zip(keys, configs, strict=True)])
        for key, label in zip(keys, labels, strict=True):
            members = groups[key]
            first = members[0]
            row = {"group": f"{parent}/{label}", "label": label, "dataset": first["dataset"],
                   "objective": first["objective"], "lr": first.get("lr"), "n": len(members),
                   "members": sorted(m["run"] for m in members)}
            for k in ("acc", "auroc"):
                vals = np.array([m[k] for m in members if m[k] is not None], dtype=float)
                row[k] = (float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1
                          else 0.0, len(vals)) if len(vals) else None
            out.append(row)
    return sorted(out, key=lambda g: g["group"])


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
        return read_series(run)


def read_series(run) -> dict:
    """:func:`time_series` of an open run (read along with other things in one open)."""
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


def _feature_size(run) -> int | None:
    """The width D of a run's snapshot features ``[P, D]``, read from one row's shape."""
    import json

    rows = run._q("SELECT shape FROM arrays WHERE name = 'snapshot.features' LIMIT 1")
    shape = json.loads(rows[0][0]) if rows else []
    return int(shape[-1]) if shape else None


def pair_check(folders: list[Path]) -> tuple[str, bool]:
    """``(warning, joint)``: one line when the runs' datasets or feature sizes differ (an
    MLP against a GPT), and whether one joint projection of their features means anything
    (only when every run's features have one size)."""
    return _pair_warning([_run_info(f, static=False) for f in folders])


def _run_info(folder: Path, static: bool = True) -> dict:
    """A run's metadata, feature size and (token runs) per-position arrays stored once
    (:data:`STATIC_ARRAYS`), read in one store open."""
    with open_run(folder) as run:
        meta = run.meta
        info = {"meta": meta, "feature_size": _feature_size(run), "static": {}}
        if static and meta.get("kind") == "tokens":
            for name in STATIC_ARRAYS:
                a = run.arrays(f"snapshot.{name}").get(0)
                if a is not None:
                    info["static"][name] = np.asarray(a)
    return info


def _pair_warning(infos: list[dict]) -> tuple[str, bool]:
    datasets = [str(i["meta"].get("dataset", "?")) for i in infos]
    sizes = [i["feature_size"] for i in infos]
    parts = []
    if len(set(datasets)) > 1:
        parts.append(f"datasets differ ({' vs '.join(datasets)})")
    joint = len(set(sizes)) == 1
    if not joint:
        parts.append(f"feature sizes differ ({' vs '.join(str(d) for d in sizes)}): each "
                     "run's PCA is on its own basis, not a joint one")
    return ("Mismatched pair: " + "; ".join(parts) if parts else ""), joint


def manifold_data(root: Path, folders: list[Path], method: str) -> dict:
    """Cached projections of the runs' snapshots at the slider's steps (:func:`align_steps`:
    by step, or by fraction of training when the runs' steps differ), plus labels/colours;
    each run's ``steps`` are its own step at each slider stop.
    ``warning`` says when the runs' datasets or feature sizes differ; ``joint`` is False when
    the PCA was fitted per run (feature sizes differ: no joint basis exists)."""
    check_cache(root)
    snaps = [load_snapshots(f, features=False) for f in folders]
    infos = [_run_info(f) for f in folders]  # one open each: metadata, sizes, token arrays
    slider, positions, mapping = align_steps(
        [s.steps for s in snaps], [_number(i["meta"].get("total_steps")) for i in infos])
    warning, joint = _pair_warning(infos) if len(folders) > 1 else ("", True)
    if mapping == "fraction":
        lasts = " vs ".join(str(int(s.steps[-1])) for s in snaps)
        warning = " · ".join(w for w in (warning, (
            f"Snapshot steps differ (last {lasts}): each side shows its own step, matched "
            "by fraction of training")) if w)
    if method == "pca" and not joint:  # no joint basis for features of different sizes
        xy = [project([f], "pca", cache_root=root)[0] for f in folders]
    elif method == "aligned_umap":  # too slow for a request: only ever read from the cache
        xy = [project([f], method, cache_root=root, cached_only=True, n_epochs=100)[0]
              for f in folders]  # one embedding per run, as `geomviz project` caches them
    elif method == "fast_umap":  # one joint embedding of both runs, computed in the background
        xy = project(folders, method, cache_root=root, cached_only=True)
    else:  # PCA (one SVD) and the polar view are available at once, then cached
        xy = project(folders, method, cache_root=root)
    out = {"steps": slider, "runs": [], "warning": warning, "joint": joint,
           "mapping": mapping}
    for f, s, arr, info, pos in zip(folders, snaps, xy, infos, positions, strict=True):
        meta, static = info["meta"], dict(info["static"])
        context = static.pop("context", None)
        out["runs"].append({"xy": arr[pos], "labels": s.labels,
                            "steps": [int(s.steps[i]) for i in pos],  # its own, per stop
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


def class_vector_index(steps: list[int], step: int) -> int:
    """The class-vector snapshot shown beside a run's own feature step ``step``: the last one
    at or before it (vectors are stored on their own schedule), else the first."""
    before = [i for i, s in enumerate(steps) if s <= step]
    return before[-1] if before else 0


def class_vector_data(root: Path, folders: list[Path]) -> dict | None:
    """The runs' class vectors on one joint PCA basis (cached), every stored step of each run
    (points are tokens, coloured by synonym set, or by frequency bucket where the data has no
    synonym sets); each run's ``steps`` are its own (two runs of different lengths keep all
    of theirs: :func:`class_vector_index` picks the one to show). None unless every run
    stores them (a token run)."""
    check_cache(root)
    try:
        cvs = [load_class_vectors(f) for f in folders]
    except ValueError:
        return None
    if any(len(c.steps) == 0 for c in cvs):
        return None
    xy = project_class_vectors(cvs, root)
    base = Path(root).resolve()
    out = {"runs": []}
    for f, cv, arr in zip(folders, cvs, xy, strict=True):
        name = str(Path(f).relative_to(base)) if Path(f).is_relative_to(base) else Path(f).name
        out["runs"].append({"xy": arr, "labels": cv.ids, "extra": {},
                            "steps": [int(t) for t in cv.steps],
                            "static": {"group": cv.groups} if (cv.groups >= 0).any() else
                            {"freq_bucket": cv.freq} if (cv.freq >= 0).any() else {},
                            "hover": {"synonym set": cv.groups} if (cv.groups >= 0).any()
                            else {}, "tokens": None, "name": f"{name} · class vectors",
                            "metric": cv.metric, "class_names": cv.names})
    return out
