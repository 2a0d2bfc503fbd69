"""What the compare page draws, as pure functions of the data: colourings (and why a run
lacks one), shared colour and axis ranges, manifold figures and their slider patches, and
the time panels of two sides (one run or a group of seeds each), overlaid or paired.

Generic over the snapshot arrays: any per-sample array a run stores beyond the known ones
is offered as a continuous colouring under its own name.
"""

from __future__ import annotations

import numpy as np
from dash import Patch

from .. import figures as F
from ..class_vectors import FREQ_NAMES, KIND_NAMES
from ..figures.axes import apply_ticks
from ..figures.compare import DASHES, overlay, share_ranges
from ..figures.labels import pretty_key
from ..figures.theme import template

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
HEADS = {"euclidean": "a Euclidean (distance) head", "dot": "a linear head"}


def coloring_options(runs: list[dict]) -> list[dict]:
    """The dropdown: known colourings, then any other per-sample array a run stores."""
    opts = [{"label": v[0], "value": k} for k, v in COLORINGS.items()
            if v[1] != "codes" or any(k in r.get("static", {}) for r in runs)]
    extra = sorted({k for r in runs for k in r["extra"]} - KNOWN_ARRAYS)
    return opts + [{"label": k, "value": k} for k in extra]


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


TEXT_LABEL = "tokens"  # hover label of a token run's last context tokens → target


def manifold_figure(run: dict, idx: int, key: str, step: int, ranges, crange, method: str,
                    highlight=(), axis_titles: tuple[str, str] | None = None):
    values, cats, reason = color_values(run, idx, key)
    label = COLORINGS.get(key, (key,))[0]
    fig = F.manifold(_round(run["xy"][idx]), run["labels"], values, label,
                     f"{run['name']} · step {step}", _hover(run, idx), run.get("class_names"),
                     highlight=np.asarray(highlight, dtype=int), ranges=ranges,
                     categories=cats, crange=crange,
                     axis_titles=axis_titles or AXES.get(method, ("x", "y")),
                     step=step, text=run.get("tokens"), text_label=TEXT_LABEL)
    fig.update_layout(template=template())
    kind = "class" if values is None else ("category" if cats else "color")
    for i, (tkind, _, _) in enumerate(F.trace_masks(run["labels"], kind, values, cats)):
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


def manifold_patch(run: dict, idx: int, key: str, step: int, ranges=None) -> Patch:
    """A slider move: x/y, hover rows (and colours) of every trace, no full figure."""
    values, cats, _ = color_values(run, idx, key)
    kind = "class" if values is None else ("category" if cats else "color")
    xy = _round(run["xy"][idx])
    hover = _hover(run, idx)
    template = F.hover_template(hover, step,
                                None if run.get("tokens") is None else TEXT_LABEL)
    p = Patch()
    for i, (tkind, _, m) in enumerate(F.trace_masks(run["labels"], kind, values, cats)):
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


def snap_step(value, shown, steps: list[int]) -> int:
    """The snapshot step for slider value ``value``: itself if a snapshot, else the next one
    in the direction of travel from ``shown`` (the step on screen)."""
    if value in steps:
        return int(value)
    arr = np.asarray(steps)
    if shown is not None and value is not None and value > shown:
        i = int(np.searchsorted(arr, value, "left"))
    else:
        i = int(np.searchsorted(arr, value if value is not None else arr[-1], "right")) - 1
    return int(arr[min(max(i, 0), len(arr) - 1)])


def manifold_ranges(runs: list[dict], shared: bool, idx: int | None = None) -> list:
    """Axis ranges of each run's manifold: over every step (or only step ``idx``: "fit to
    current step"), over both runs when ``shared``."""
    pick = [r["xy"] if idx is None else r["xy"][idx] for r in runs]
    if shared:
        return [F.common_ranges(*pick)] * len(runs)
    return [F.common_ranges(p) for p in pick]


# ---- equal plot areas ----------------------------------------------------------------

COLORBAR_MARGIN = 110  # px right of the plot for a colour bar, its ticks and its title
KEY_MARGIN = 150  # px right of the plot for a legend of line styles
Y2_MARGIN = 60  # px for a right-hand axis (accuracy)
ROW_PX, LEGEND_WIDTH = 24, 440  # a legend row; the narrowest plot width it must fit
X_TITLE_PX = 46  # tick labels and the x-axis title, above a legend under the plot


def _legend_entries(fig) -> list[str]:
    """The names plotly shows in ``fig``'s legend (a heatmap shows none by default)."""
    if fig.layout.showlegend is False:
        return []
    shown = [t for t in fig.data if t.name and (t.showlegend is True or (
        t.showlegend is None and t.type != "heatmap"))]
    if fig.layout.showlegend is None and len(fig.data) < 2:
        return []
    return [str(t.name) for t in shown]


def _right_margin(fig) -> int:
    need = 20
    for t in fig.data:
        marker = getattr(t, "marker", None)
        if (t.type == "heatmap" and t.showscale is not False) or \
                (marker is not None and getattr(marker, "showscale", None)):
            need = max(need, COLORBAR_MARGIN)
    if "yaxis2" in fig.layout and fig.layout["yaxis2"].overlaying:
        need = max(need, Y2_MARGIN)
    legend = fig.layout.legend
    if legend.x is not None and legend.x >= 1 and _legend_entries(fig):
        need = max(need, KEY_MARGIN)
    return need


def _rows_below(fig) -> int:
    legend = fig.layout.legend
    if legend.x is not None and legend.x >= 1:
        return 0
    names = _legend_entries(fig)
    if not names or fig.layout.showlegend is False:
        return 0
    width = sum(62 + 7 * len(n) for n in names)  # a symbol, the name's text, a gap
    return min(4, -(-width // LEGEND_WIDTH))


def equal_plot_areas(figs: list) -> None:
    """Give paired figures the same margins, fixed (``autoexpand`` off), so a colour bar or
    a legend on one side only cannot shrink that side's plot: the same range is then drawn
    at the same pixel scale with the same ticks. Colour bars and right-hand legends sit in
    the reserved right margin, legends under the plot in the reserved bottom margin."""
    if not figs:
        return
    left = max(max(int(f.layout.margin.l or 60), 64) for f in figs)
    top = max(int(f.layout.margin.t or 44) for f in figs)
    right = max(_right_margin(f) for f in figs)
    rows = max(_rows_below(f) for f in figs)
    bottom = max(max(int(f.layout.margin.b or 40) for f in figs), 40)
    if rows:  # plotly lifts the x title above a legend at the bottom: room for both
        bottom = max(bottom, X_TITLE_PX) + ROW_PX * rows + 4
    for f in figs:
        f.update_layout(margin={"l": left, "r": right, "t": top, "b": bottom,
                                "autoexpand": False})
        legend = f.layout.legend
        if legend.x is not None and legend.x >= 1:
            legend.update(x=1.0, xanchor="left", xref="paper")
        else:  # under the x-axis title, at the figure's bottom: inside the margin
            legend.update(orientation="h", x=0, xanchor="left", y=0, yref="container",
                          yanchor="bottom")
        for t in f.data:
            marker = getattr(t, "marker", None)
            if marker is not None and getattr(marker, "showscale", None):
                marker.colorbar.update(x=1.0, xanchor="left", xref="paper", xpad=12)
            elif t.type == "heatmap":
                t.colorbar.update(x=1.0, xanchor="left", xref="paper", xpad=12)


# ---- time panels ------------------------------------------------------------------------

PANELS = {  # key: (title, y title, log y, y starts at 0)
    "norm": ("feature norm ‖x‖: p50 solid, p95 dotted", "‖x‖ (feature units, log)", True,
             False),
    "radial": ("radial share of ‖∂ℓ/∂x‖²", "radial share (fraction, 0–1)", False, True),
    "decomp": ("Δ mean true logit: radial, angular, weight, bias, total",
               "Δ z_y per interval (logit units)", False, False),
    "entropy": ("entropy: easy H(p), easy H(q), hard H(p), hard H(q)", "entropy (nats)",
                False, True),
    "anchor_gap": ("anchor gap s·‖x − c_y‖² vs nearest negative (p5, p50, p95)",
                   "s·d² (logit units, log)", True, False),
    "true_logit": ("true logit z_y vs top negative (p5, p50, p95)", "logit (logit units)",
                   False, False),
    # each objective trains on its own loss: TFSD's is a KL to its target, not an NLL
    "loss": ("own training loss (TFSD's is a KL) and accuracy (right, dotted)",
             "training loss (nats)", False, True),
    # language-model runs (test positions, each evaluation)
    "truth_kl": ("distance to the true next-token law KL(true ‖ q)", "KL (nats per token)",
                 False, True),
    "synonym_entropy": ("synonym positions: H(q) solid, H(p) dotted, H(true) grey dashed",
                        "entropy (nats)", False, True),
    "single_entropy": ("determined positions: H(q) solid, H(p) dotted, H(true) grey dashed",
                       "entropy (nats)", False, True),
    "tearing": ("class vectors: within / between synonym-set distance",
                "distance ratio (unitless)", False, True),
}
TOKEN_PANELS = {"truth_kl": {"KL": "truth.kl"},
                "synonym_entropy": {"H(q)": "entropy.synonym.pred",
                                    "H(p)": "entropy.synonym.target",
                                    "H(true)": "entropy.synonym.truth"},
                "single_entropy": {"H(q)": "entropy.single.pred", "H(p)": "entropy.single.target",
                                   "H(true)": "entropy.single.truth"},
                "tearing": {"ratio": "classes.ratio"}}
REFERENCE = "H(true)"  # a property of the data: one grey line, not one per side


STYLE_KEY = {"decomp", "entropy", "anchor_gap", "true_logit"}  # titles name no line style


SHORT = {"anchor_gap": "anchor", "nearest_negative": "nearest neg.", "logit_true": "true",
         "logit_top_negative": "top neg.", "target": "H(p)", "pred": "H(q)"}


def style_key(fig, names: list[str]) -> None:
    """A legend on the right naming, in grey, the line each dash style draws (line j of
    every side is ``DASHES[j]``): with four to six lines a side, the title's list of names
    cannot say which line is which. On the right, one entry a row: under the plot it
    wrapped onto the x-axis title."""
    for j, name in enumerate(names):
        # short enough for the key's margin: "hard samples, prediction H(q)" -> "hard H(q)"
        name = name.replace(" samples,", "").replace("prediction ", "").replace("target ", "")
        words = [SHORT.get(w, w) for w in name.replace(".", " ").split()]
        fig.add_scatter(x=[None], y=[None], mode="lines", name=" ".join(words),
                        line={"color": "#555555", "dash": DASHES[j % len(DASHES)], "width": 2},
                        legendgroup="line styles", showlegend=True, hoverinfo="skip")
    fig.update_layout(legend={"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1.0,
                              "yanchor": "top", "traceorder": "normal"})


def panel_lines(ts: dict, key: str) -> dict | None:
    """``{line: (steps, values)}`` of panel ``key`` for one run, None if it lacks it."""
    if key == "norm":
        return {"p50": ts["p50"], "p95": ts["p95"]}
    if key == "radial":
        return {"radial share": ts["radial_fraction"]}
    if key == "decomp":
        d = ts["decomp"]
        return {k: (d["total"][0], d[k][1]) for k in ("radial", "angular", "weight", "bias")} \
            | {"total": d["total"]}
    if key == "entropy":
        e = ts["entropy"]
        # hover and legend names in words ("hard samples, prediction H(q)"), not "hard.pred"
        return {pretty_key(k): e[k] for k in ("easy.target", "easy.pred", "hard.target",
                                              "hard.pred")}
    if key in ("anchor_gap", "true_logit"):
        if (ts["metric"] == "euclidean") != (key == "anchor_gap"):
            return None
        return dict(ts["margins"])
    if key == "loss":
        return {"loss": ts["loss"]}
    if key in TOKEN_PANELS:
        tokens = ts.get("tokens") or {}
        lines = {line: tokens[name] for line, name in TOKEN_PANELS[key].items()
                 if name in tokens and len(tokens[name][0])}
        return lines or None
    raise KeyError(key)


def panel_keys(sides: list[dict]) -> list[str]:
    """Every panel at least one side has (anchor gap and true logit are never mixed)."""
    return [k for k in PANELS
            if any(panel_lines(ts, k) is not None for s in sides for ts in s["ts"])]


def _side_lines(side: dict, key: str) -> dict | None:
    per_seed = [panel_lines(ts, key) for ts in side["ts"]]
    if any(p is None for p in per_seed):
        return None
    return {name: [p[name] for p in per_seed] for name in per_seed[0]}


def _names(present: list[tuple]) -> list[str]:
    return next((list(lines) for _, lines in present if lines), [])


TITLE_CHARS = 56  # a panel title line that fits half a 1280 px screen at 14 px


def wrap_title(text: str, width: int = TITLE_CHARS) -> str:
    """``text`` on lines of at most ``width`` characters (``<br>`` between), broken at
    spaces: a panel half a screen wide cut "…accuracy (right, dotte"."""
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "<br>".join([*lines, line])


def _titled(fig, text: str):
    """Set the wrapped title; the top margin holds its lines and, under them, a note
    written just above the plot (``y >= 1`` in paper units)."""
    wrapped = wrap_title(text)
    lines = wrapped.count("<br>") + 1
    note = any(a.yref == "paper" and (a.y or 0) >= 1 for a in fig.layout.annotations)
    # just above the plot (and above the note); plotly anchors a title's first line, the
    # others go below it: lift it by their height
    fig.layout.title.update(text=wrapped, y=1, yref="paper", yanchor="bottom",
                            pad={"b": 6 + 18 * (lines - 1) + (18 if note else 0)},
                            font={"size": 14})
    fig.layout.margin.t = max(int(fig.layout.margin.t or 44),
                              14 + 18 * lines + (18 if note else 0))
    return fig


def message_panel(title: str, message: str, step: int):
    """A panel a side has no data for: its title and one line saying why, and no axes (an
    empty plot with full axes read as data). The step marker is kept, hidden, so slider
    patches of ``shapes[0]`` apply to every panel alike."""
    import plotly.graph_objects as go
    fig = go.Figure()
    fig.update_layout(xaxis={"visible": False}, yaxis={"visible": False},
                      margin={"l": 64, "r": 20, "t": 44, "b": 40}, showlegend=False,
                      shapes=[{"type": "line", "x0": step, "x1": step, "y0": 0, "y1": 1,
                               "xref": "x", "yref": "paper", "visible": False}])
    fig.add_annotation(text=message, xref="paper", yref="paper", x=0.5, y=0.5,
                       showarrow=False, font={"size": 13, "color": "#888"})
    return _titled(fig, title)


def _lacks(label: str, key: str, sides_metric: str | None) -> str:
    """One line: why side ``label`` has nothing to draw in panel ``key``."""
    if key in ("anchor_gap", "true_logit"):
        other = "true-logit" if key == "anchor_gap" else "anchor-gap"
        return f"{label} has {HEADS.get(sides_metric, 'another head')}: see the {other} panel"
    if key in TOKEN_PANELS:
        return f"{label} logged no language-model test probes (not a token run)"
    return f"{label} logged none of this panel's series"


def time_panels(sides: list[dict], mode: str, shared: bool, step: int) -> list[tuple]:
    """``[(panel key, side id, figure)]``: overlay mode draws A and B on one axis per panel
    (side id "AB"); side-by-side mode draws a pair with one range each when ``shared``.
    A ``side`` is ``{"label", "color", "ts": [time_series per seed]}``."""
    out = []
    for key in panel_keys(sides):
        title, ytitle, log_y, from0 = PANELS[key]
        present = [(s, _side_lines(s, key)) for s in sides]
        missing = [s["label"] for s, lines in present if lines is None]
        note = ""
        if missing:
            other = "true logit" if key == "anchor_gap" else "anchor gap"
            note = (f"{', '.join(missing)}: not shown, its head has the {other} instead"
                    if key in ("anchor_gap", "true_logit") else f"{', '.join(missing)}: none")
        y2 = ({s["label"]: ("accuracy (fraction)", {"accuracy": [ts["acc"] for ts in s["ts"]]})
               for s in sides} if key == "loss" else None)
        reference = None
        for _, lines in present:  # H(true) once, from the first side that has it
            if lines and REFERENCE in lines:
                reference = reference or {REFERENCE: lines[REFERENCE]}
        present = [(s, None if lines is None else
                    {k: v for k, v in lines.items() if k != REFERENCE}) for s, lines in present]
        if mode == "overlay":
            fig = overlay([(s["label"], s["color"], lines) for s, lines in present if lines],
                          title, ytitle, log_y, step, y2, note, reference)
            _titled(fig, title)
            share_ranges([fig], log_y, from0)
            apply_ticks(fig, linear=False)  # >= 3 labels on log and single-value axes
            if key in STYLE_KEY:
                style_key(fig, _names(present))
            out.append((key, "AB", fig))
            continue
        figs = []
        for s, lines in present:
            if lines is None:  # one line why, no empty axes
                figs.append(message_panel(f"{s['label']}: {title}", _lacks(
                    s["label"], key, s["ts"][0].get("metric") if s["ts"] else None), step))
                continue
            if key == "norm" and len(s["ts"]) == 1 and s["ts"][0]["norm_hist"] is not None \
                    and len(s["ts"][0]["norm_hist"].steps):
                h, ts = s["ts"][0]["norm_hist"], s["ts"][0]
                fig = F.norm_heatmap(h.steps, h.edges, h.counts, ts["p50"][1], ts["p95"][1],
                                     step, title=f"{s['label']}: {title}")
            else:
                fig = overlay([(s["label"], s["color"], lines)] if lines else [],
                              f"{s['label']}: {title}", ytitle, log_y, step,
                              {s["label"]: y2[s["label"]]} if y2 else None,
                              "" if lines else note, reference)
            if key in STYLE_KEY and lines:
                style_key(fig, list(lines))
            figs.append(_titled(fig, f"{s['label']}: {title}"))
        if shared:
            share_ranges(figs, log_y, from0)
        else:
            for f in figs:
                share_ranges([f], log_y, from0)
        for f in figs:  # after sharing: one range gives one set of ticks on both sides
            apply_ticks(f, linear=shared)
        equal_plot_areas(figs)
        out.extend((key, s["id"], f) for s, f in zip(sides, figs, strict=True))
    for _, _, f in out:
        f.update_layout(template=template())
        for t in f.data:  # a series of one value (one probe log so far) is a marker: as a
            # line it draws nothing, and the panel looked empty
            if t.type == "scatter" and t.mode == "lines" and t.x is not None \
                    and len(t.x) == 1 and t.x[0] is not None:
                t.mode = "lines+markers"
    return out
