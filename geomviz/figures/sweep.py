"""Figures of a learning-rate sweep (pure builders: sweep results in, plotly figures out).

``lr_sensitivity``: final test loss against the learning rate (as measured: a finite
run worse than uniform stays above ``ln V``), one colour per objective (:mod:`.theme`),
the mean over seeds with a min–max seed band, diverged runs marked × at the initial loss
``ln V`` they count as; one panel per qk-layernorm setting, shared
axes. ``instability``: the largest pre-softmax attention logit and the largest output
logit over training at one rate (the largest stable for every CE seed), every seed.
"""

from __future__ import annotations

import numpy as np

from .theme import objective_colors, template

__all__ = ["lr_sensitivity", "instability"]


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _order(results) -> list[str]:
    names = sorted({r.cell.objective for r in results}, key=lambda o: (o != "ce", o))
    return names


def lr_sensitivity(results, title: str = "Final loss against learning rate"):
    """``results``: :class:`~geomviz.study.sweep_results.RunResult` list."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not results:
        raise ValueError("no sweep runs to plot")
    bad = next((r for r in results if not (np.isfinite(r.cell.lr) and r.cell.lr > 0)), None)
    if bad is not None:  # a NaN rate matches no rate: empty seed bands, on a log axis
        raise ValueError(f"{bad.folder.name}: learning rate {bad.cell.lr!r} is not a finite "
                         "number > 0")
    qks = sorted({r.cell.qk for r in results})
    names = _order(results)
    colors = objective_colors(names)
    fig = make_subplots(1, len(qks), shared_xaxes=True, shared_yaxes=True,
                        subplot_titles=[f"qk-layernorm {'on' if q else 'off'}" for q in qks],
                        horizontal_spacing=0.06)
    l0 = results[0].l0
    for col, qk in enumerate(qks, 1):
        for name in names:
            rs = [r for r in results if r.cell.qk == qk and r.cell.objective == name]
            lrs = sorted({r.cell.lr for r in rs})
            if not lrs:
                continue
            vals = [[r.loss for r in rs if r.cell.lr == lr] for lr in lrs]
            mean = [float(np.mean(v)) for v in vals]
            lo, hi = [min(v) for v in vals], [max(v) for v in vals]
            c = colors[name]
            first = col == 1
            fig.add_trace(go.Scatter(x=lrs + lrs[::-1], y=hi + lo[::-1], fill="toself",
                                     mode="lines", fillcolor=_rgba(c, 0.18),
                                     line={"width": 0, "color": _rgba(c, 0.18)},
                                     hoverinfo="skip", legendgroup=name, showlegend=False),
                          1, col)
            fig.add_trace(go.Scatter(
                x=lrs, y=mean, mode="lines+markers", name=name, legendgroup=name,
                showlegend=first, line={"color": c, "width": 2}, marker={"size": 7},
                customdata=[[len(v)] for v in vals],
                hovertemplate=f"{name}<br>lr %{{x:.3g}}<br>mean %{{y:.4f}} nats "
                              "(%{customdata[0]} seeds)<extra></extra>"), 1, col)
            div = [r for r in rs if r.status == "diverged"]
            if div:
                fig.add_trace(go.Scatter(
                    x=[r.cell.lr for r in div], y=[l0] * len(div), mode="markers",
                    marker={"symbol": "x", "size": 11, "color": c}, legendgroup=name,
                    showlegend=False, name=f"{name} diverged",
                    hovertemplate=f"{name} diverged<br>lr %{{x:.3g}}<extra></extra>"), 1, col)
        fig.add_hline(y=l0, line={"dash": "dash", "color": "#888", "width": 1}, row=1, col=col,
                      annotation_text="initial loss ln V" if col == 1 else None,
                      annotation_position="bottom left")
    fig.update_xaxes(type="log", title_text="learning rate (log scale)", exponentformat="power")
    fig.update_yaxes(title_text="final test NLL (nats/token)", row=1, col=1)
    fig.update_layout(template=template(), title=title, width=800, height=450,
                      legend={"title": {"text": "objective (× = diverged)"}})
    return fig


def instability(results, lr: float, qk: bool = False, title: str | None = None):
    """Max attention logit and max output logit over training at rate ``lr``."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rs = [r for r in results if r.cell.qk == qk and np.isclose(r.cell.lr, lr)]
    if not rs:
        raise ValueError(f"no sweep runs at lr {lr:g}")
    names = _order(rs)
    colors = objective_colors(names)
    fig = make_subplots(2, 1, shared_xaxes=True, vertical_spacing=0.08)
    dashes = ["solid", "dot", "dash", "dashdot"]
    for name in names:
        mine = sorted((r for r in rs if r.cell.objective == name), key=lambda r: r.cell.seed)
        for i, r in enumerate(mine):
            for row, key in ((1, "health.attn_logit.max"), (2, "health.max_logit")):
                steps, values = r.series.get(key, (np.array([]), np.array([])))
                fig.add_trace(go.Scatter(
                    x=steps, y=values, mode="lines+markers", marker={"size": 4}, name=name,
                    legendgroup=name,
                    showlegend=row == 1 and i == 0,
                    line={"color": colors[name], "dash": dashes[i % len(dashes)], "width": 1.8},
                    hovertemplate=f"{name} seed {r.cell.seed}<br>step %{{x}}<br>%{{y:.2f}}"
                                  f"{' (diverged)' if r.status == 'diverged' else ''}"
                                  "<extra></extra>"), row, 1)
    fig.update_xaxes(title_text="training step (updates)", row=2, col=1)
    fig.update_yaxes(title_text="max attention logit (logit units)", row=1, col=1)
    fig.update_yaxes(title_text="max output logit (logit units)", row=2, col=1)
    fig.update_layout(template=template(), width=800, height=560,
                      title=title or f"Logit growth at lr {lr:g} (qk-layernorm "
                                     f"{'on' if qk else 'off'}; line style = seed)")
    return fig
