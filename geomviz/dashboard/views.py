"""What the compare page draws, as pure functions of the data: colourings (and why a run
lacks one), shared colour and axis ranges, manifold figures and their slider patches. The
time panels (:mod:`.time_views`) and equal plot areas (:mod:`.plot_areas`) are re-exported
here.

Generic over the snapshot arrays: any per-sample array a run stores beyond the known ones
is offered as a continuous colouring under its own name.
"""

from __future__ import annotations

import numpy as np
from dash import Patch

from .. import figures as F
from ..class_vectors import FREQ_NAMES, KIND_NAMES
from ..figures.panels import MAX_LEGEND_CLASSES
from ..figures.theme import template
from .plot_areas import equal_plot_areas
from .time_views import (
    HEADS,
    PANELS,
    SHORT,
    STYLE_KEY,
    TITLE_CHARS,
    TOKEN_PANELS,
    message_panel,
    panel_keys,
    panel_lines,
    style_key,
    time_panels,
    wrap_title,
)

__all__ = [  # with the time panels and plot areas, re-exported from their modules
    "COLORINGS", "AXES", "coloring_options", "focus_options", "focus_value", "color_values",
    "color_range", "own_step", "manifold_figure", "ood_template", "manifold_patch",
    "nearest_step", "next_step", "manifold_ranges", "equal_plot_areas", "HEADS", "PANELS",
    "SHORT", "STYLE_KEY", "TITLE_CHARS", "TOKEN_PANELS", "message_panel", "panel_keys",
    "panel_lines", "style_key", "time_panels", "wrap_title",
]

# key: (label with unit, kind, head metric it needs or None, snapshot array it reads)
COLORINGS: dict[str, tuple[str, str, str | None, str | None]] = {
    "class": ("class", "class", None, None),
    "correct": ("correct / wrong (margin > 0)", "category", None, "margin"),
    "norm": ("‖x‖ (feature units)", "color", None, "norm"),
    "cos_true": ("cos θ_y (unitless)", "color", None, "cos_true"),
    "entropy_target": ("target entropy H(p) (nats)", "color", None, "entropy_target"),
    "entropy_pred": ("prediction entropy H(q) (nats)", "color", None, "entropy_pred"),
    "anchor_gap": ("anchor gap s·‖x − c_y‖² (logit units)", "color", "euclidean", "true"),
    "true_logit": ("true logit z_y (logit units)", "color", "dot", "true"),
    "margin": ("margin z_y − max z_j≠y (logit units)", "color", None, "margin"),
    # language-model runs: arrays stored once per probe position (codes into categories)
    "group": ("synonym set / concept of the target token", "codes", None, "group"),
    "freq_bucket": ("target-token frequency (training counts)", "codes", None, "freq_bucket"),
    "kind": ("position: next token spread over synonyms or determined", "codes", None,
             "kind"),
}
ZERO_BASED = {"entropy_target", "entropy_pred", "norm"}  # these cannot be negative
KNOWN_ARRAYS = {"norm", "cos_true", "true", "top_negative", "margin", "entropy_pred",
                "entropy_target"}
HOVER = {"‖x‖": "norm", "cos θ_y": "cos_true", "H(p) nats": "entropy_target",
         "H(q) nats": "entropy_pred"}
AXES = {"pca": ("PC1 (joint basis, feature units)", "PC2 (joint basis, feature units)"),
        "aligned_umap": ("UMAP 1 (arbitrary units)", "UMAP 2 (arbitrary units)"),
        "fast_umap": ("UMAP 1 (arbitrary units)", "UMAP 2 (arbitrary units)"),
        "polar": ("radius ‖x‖ (feature units)", "angle θ_y to the true class (rad)")}


def coloring_options(runs: list[dict]) -> list[dict]:
    """The dropdown: known colourings, then any other per-sample array a run stores."""
    opts = [{"label": v[0], "value": k} for k, v in COLORINGS.items()
            if v[1] != "codes" or any(k in r.get("static", {}) for r in runs)]
    extra = sorted({k for r in runs for k in r["extra"]} - KNOWN_ARRAYS)
    return opts + [{"label": k, "value": k} for k in extra]


def focus_options(runs: list[dict], key: str) -> list[dict]:
    """The codes of colouring ``key`` that are too many to tell apart by colour (a token
    run's 256 tokens or 96 synonym sets): one entry each to pick and draw on top, a set
    named with its tokens. Empty when the colouring has few codes (a legend names them)."""
    run = runs[0]
    labels = np.asarray(run["labels"])
    names = run.get("class_names") or []

    def token(t: int) -> str:
        return str(names[t]) if 0 <= t < len(names) else str(t)

    if key == "class":
        ids = np.unique(labels[labels >= 0])
        if len(ids) <= MAX_LEGEND_CLASSES:
            return []
        return [{"label": f"token {token(int(t))}", "value": int(t)} for t in ids]
    if COLORINGS.get(key, ("", ""))[1] != "codes" or key not in run.get("static", {}):
        return []
    codes = np.asarray(run["static"][key])
    cats = _code_names(key, codes)
    if len(cats) <= MAX_LEGEND_CLASSES:
        return []
    out = []
    for g, cat in enumerate(cats):
        members = np.unique(labels[(codes == g) & (labels >= 0)])
        if not len(members):
            continue
        words = " ".join(token(int(t)) for t in members[:6]) + (" …" if len(members) > 6 else "")
        out.append({"label": f"{cat}: {words}", "value": g})
    return out


def focus_value(value) -> int | None:
    """The picked code: None, or an integer >= 0 (anything else is :class:`BadInput`)."""
    from .guard import BadInput

    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 10**6:
        raise BadInput(f"the highlighted set {str(value)[:40]!r} is not a set's or token's "
                       "number")
    return value


def color_values(run: dict, idx: int, key: str):
    """``(values[P] or None, categories or None, reason or None)`` of colouring ``key`` at
    snapshot ``idx``; a run that lacks the quantity gets class colours and the reason."""
    label, kind, needs, source = COLORINGS.get(key, (key, "color", None, key))
    if kind == "class":
        return None, None, None
    if needs and run.get("metric", "dot") != needs:
        other = "anchor gap" if needs == "euclidean" else "true logit"
        return None, None, (f"{run['name']} has {HEADS.get(run.get('metric'), 'another head')}: "
                            f"no {other} ({label} is defined for {HEADS[needs]} only)")
    if kind == "codes":
        codes = run.get("static", {}).get(source)
        if codes is None:
            return None, None, f"{run['name']} stores no '{source}' array (not a token run)"
        return np.asarray(codes, dtype=np.int64), _code_names(source, codes), None
    if source not in run["extra"]:
        return None, None, f"{run['name']} stores no '{source}' snapshot array"
    values = run["extra"][source][idx]
    if kind == "category":
        return (values > 0).astype(np.int64), ["wrong", "correct"], None
    return values, None, None


def _code_names(source: str, codes: np.ndarray) -> list[str]:
    if source == "freq_bucket":
        return FREQ_NAMES
    if source == "kind":
        return KIND_NAMES
    return [f"set {g}" for g in range(int(np.max(codes, initial=0)) + 1)]


def color_range(runs: list[dict], key: str) -> tuple[float, float] | None:
    """One colour range over every step of ``runs`` (entropy and norms start at 0)."""
    vals = []
    for r in runs:
        v, cats, _ = color_values(r, 0, key)
        if v is None or cats:
            continue
        source = COLORINGS.get(key, (key, "color", None, key))[3]
        vals.append(np.asarray(r["extra"][source], np.float64).ravel())
    if not vals:
        return None
    v = np.concatenate(vals)
    v = v[np.isfinite(v)]
    if not len(v):
        return None
    lo, hi = float(v.min()), float(v.max())
    if key in ZERO_BASED:
        lo = 0.0
    return lo, max(hi, lo + 1e-6)


def _round(a: np.ndarray) -> np.ndarray:
    """About 4 significant digits of the spread: enough on screen, a third of the bytes."""
    span = float(np.nanmax(np.abs(a))) if a.size else 1.0
    return np.round(a.astype(np.float64), max(0, 3 - int(np.floor(np.log10(max(span, 1e-9))))))


def _hover(run: dict, idx: int) -> dict:
    """Hover values at snapshot ``idx``: per-point values fixed over steps (``run["hover"]``),
    then the snapshot's own. (A token run's context text is the traces' ``text``.)"""
    return dict(run.get("hover") or {}) | {
        label: run["extra"][k][idx] for label, k in HOVER.items() if k in run["extra"]}


def own_step(run: dict, idx: int, step: int) -> int:
    """The run's own step at slider stop ``idx`` (runs whose steps differ are matched by
    fraction of training), else the slider's ``step``."""
    steps = run.get("steps")
    return int(steps[idx]) if steps is not None and 0 <= idx < len(steps) else step


TEXT_LABEL = "tokens"  # hover label of a token run's last context tokens → target


def manifold_figure(run: dict, idx: int, key: str, step: int, ranges, crange, method: str,
                    highlight=(), axis_titles: tuple[str, str] | None = None,
                    focus: int | None = None):
    """One side's manifold at snapshot ``idx`` coloured by ``key`` (``focus``: the one
    token or synonym set drawn on top when there are too many to tell apart)."""
    step = own_step(run, idx, step)
    values, cats, reason = color_values(run, idx, key)
    label = COLORINGS.get(key, (key,))[0]
    fig = F.manifold(_round(run["xy"][idx]), run["labels"], values, label,
                     f"{run['name']} · step {step}", _hover(run, idx), run.get("class_names"),
                     highlight=np.asarray(highlight, dtype=int), ranges=ranges,
                     categories=cats, crange=crange,
                     axis_titles=axis_titles or AXES.get(method, ("x", "y")),
                     step=step, text=run.get("tokens"), text_label=TEXT_LABEL, focus=focus)
    fig.update_layout(template=template())
    kind = "class" if values is None else ("category" if cats else "color")
    for i, (tkind, _, _) in enumerate(F.trace_masks(run["labels"], kind, values, cats, focus)):
        if tkind == "ood":
            fig.data[i].hovertemplate = ood_template(fig.data[i].hovertemplate)
    return fig, reason


# An OOD input has no true class: its snapshot geometry is taken against the predicted
# class ŷ (probes/snapshots.py), so its hover must not call that θ_y or the true target.
OOD_HOVER = {"cos θ_y": "cos θ_ŷ (predicted class)", "H(p) nats": "H(p) nats (ŷ as target)"}


def ood_template(template: str | None) -> str | None:
    """The hover template of OOD points: the same values, named for the predicted class."""
    for old, new in OOD_HOVER.items():
        template = template and template.replace(old, new)
    return template


def manifold_patch(run: dict, idx: int, key: str, step: int, ranges=None,
                   focus: int | None = None) -> Patch:
    """A slider move: x/y, hover rows (and colours) of every trace, no full figure."""
    step = own_step(run, idx, step)
    values, cats, _ = color_values(run, idx, key)
    kind = "class" if values is None else ("category" if cats else "color")
    xy = _round(run["xy"][idx])
    hover = _hover(run, idx)
    template = F.hover_template(hover, step,
                                None if run.get("tokens") is None else TEXT_LABEL)
    p = Patch()
    for i, (tkind, _, m) in enumerate(F.trace_masks(run["labels"], kind, values, cats, focus)):
        p["data"][i]["x"] = xy[m, 0].tolist()
        p["data"][i]["y"] = xy[m, 1].tolist()
        p["data"][i]["customdata"] = F.hover_rows(m, run["labels"], run.get("class_names"), hover)
        p["data"][i]["hovertemplate"] = ood_template(template) if tkind == "ood" else template
        if tkind == "color":
            p["data"][i]["marker"]["color"] = np.round(values[m], 4).tolist()
    p["data"][-1]["x"], p["data"][-1]["y"] = [], []
    p["layout"]["title"]["text"] = f"{run['name']} · step {step}"
    if ranges is not None:
        p["layout"]["xaxis"]["range"] = list(ranges[0])
        p["layout"]["yaxis"]["range"] = list(ranges[1])
    return p


def nearest_step(value: float, steps: list[int]) -> int:
    """The snapshot step nearest slider value ``value`` (the earlier on a tie): where a drag,
    a click on the track or a typed number lands. The reference of the page's snap, which
    runs in the browser (``pages/compare_client``)."""
    arr = np.asarray(steps)
    return int(arr[int(np.abs(arr - value).argmin())])


def next_step(current: float, direction: int, steps: list[int]) -> int:
    """The snapshot after (``direction`` > 0) or before ``current``, clamped to the ends:
    where an arrow key goes. The reference of the page's key handler, in the browser."""
    arr = np.asarray(steps)
    if direction > 0:
        after = arr[arr > current]
        return int(after[0]) if len(after) else int(arr[-1])
    before = arr[arr < current]
    return int(before[-1]) if len(before) else int(arr[0])


def manifold_ranges(runs: list[dict], shared: bool, idx: int | list[int] | None = None) -> list:
    """Axis ranges of each run's manifold: over every step (or only snapshot ``idx``, one per
    run when a list: "fit to current step"), over both runs when ``shared``."""
    idxs = idx if isinstance(idx, list) else [idx] * len(runs)
    pick = [r["xy"] if i is None else r["xy"][i] for r, i in zip(runs, idxs, strict=True)]
    if shared:
        return [F.common_ranges(*pick)] * len(runs)
    return [F.common_ranges(p) for p in pick]
