"""The compare page's time panels of two sides (one run or a group of seeds each), overlaid
on one axis or paired with shared ranges, as pure functions of the runs' time series."""

from __future__ import annotations

from .. import figures as F
from ..figures.axes import apply_ticks
from ..figures.compare import DASHES, overlay, share_ranges
from ..figures.labels import pretty_key
from ..figures.theme import template
from .plot_areas import equal_plot_areas

HEADS = {"euclidean": "a Euclidean (distance) head", "dot": "a linear head"}

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


def side_markers(fig, marks: list[tuple[str, int]]) -> None:
    """One step marker per side, in the side's colour: ``shapes[i]`` is side i's (the runs'
    steps differ, so one slider step is a different step of each)."""
    line = {"width": 1.5, "dash": "dot"}
    for i, (color, step) in enumerate(marks):
        if i == 0:
            fig.layout.shapes[0].update(x0=step, x1=step, line={**line, "color": color})
        else:
            fig.add_vline(x=step, line={**line, "color": color})


def time_panels(sides: list[dict], mode: str, shared: bool,
                step: int | dict[str, int]) -> list[tuple]:
    """``[(panel key, side id, figure)]``: overlay mode draws A and B on one axis per panel
    (side id "AB"); side-by-side mode draws a pair with one range each when ``shared``.
    A ``side`` is ``{"label", "color", "ts": [time_series per seed]}``. ``step`` is the
    step marked, or each side's own (``{side id: step}``, runs whose steps differ): an
    overlaid panel then has one marker per side, ``shapes[i]`` for side i."""
    own = step if isinstance(step, dict) else {s["id"]: step for s in sides}
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
                          title, ytitle, log_y, own[sides[0]["id"]], y2, note, reference)
            if isinstance(step, dict):
                side_markers(fig, [(s["color"], own[s["id"]]) for s in sides])
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
                    s["label"], key, s["ts"][0].get("metric") if s["ts"] else None),
                    own[s["id"]]))
                continue
            if key == "norm" and len(s["ts"]) == 1 and s["ts"][0]["norm_hist"] is not None \
                    and len(s["ts"][0]["norm_hist"].steps):
                h, ts = s["ts"][0]["norm_hist"], s["ts"][0]
                fig = F.norm_heatmap(h.steps, h.edges, h.counts, ts["p50"][1], ts["p95"][1],
                                     own[s["id"]], title=f"{s['label']}: {title}")
            else:
                fig = overlay([(s["label"], s["color"], lines)] if lines else [],
                              f"{s['label']}: {title}", ytitle, log_y, own[s["id"]],
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
