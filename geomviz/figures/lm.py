"""Publication figures of language-model runs: pure builders over plain arrays.

``synonym_entropy`` puts TFSD's target entropy H(p) beside the prediction's H(q) and the true
law's H(true), on positions whose next token is spread over a synonym set and on determined
ones; ``tearing`` follows the within/between synonym-set distance ratio of the class vectors;
``class_vectors`` shows those vectors on one PCA basis. Conventions as in ``blog``: one
colour per objective, seeds as a mean with a min-max band.
"""

from __future__ import annotations

import numpy as np

from .blog import (
    SeedSeries,
    _band,
    _finish,
    _grid_axes,
    _step_grid,
    _stepped_scale,
    _subplots,
    seed_stats,
)
from .labels import pretty_key
from .panels import PALETTE, _go

__all__ = ["synonym_entropy", "tearing", "class_vectors", "REFERENCE_COLOR"]

REFERENCE_COLOR = "#888888"  # the true law: a reference, not an objective


def _reference(fig, series: SeedSeries, name: str, row: int, col: int, show: bool) -> None:
    """The true law's entropy: a grey dashed line (the mean over seeds; it is a property of the
    data, so the seeds' test sets agree up to their sampling)."""
    steps, mean, _, _ = seed_stats(series)
    if len(steps):
        fig.add_trace(_go().Scatter(x=steps, y=mean, mode="lines", name=name,
                                    legendgroup=name, showlegend=show,
                                    line={"color": REFERENCE_COLOR, "dash": "dash",
                                          "width": 2}), row, col)


def synonym_entropy(entropy: dict[str, dict[str, SeedSeries]], colors: dict[str, str]):
    """Over training, on the test positions: target H(p) (dotted) and prediction H(q) (solid)
    of each objective, and H(true) (grey dashed), on synonym positions (left) and determined
    positions (right). ``entropy[obj]["synonym.target"|"synonym.pred"|"synonym.truth"|
    "single.*"]`` are ``SeedSeries``."""
    fig = _subplots(1, 2, horizontal_spacing=0.1, shared_yaxes=True,
                    # the caption says what the two kinds of position are
                    subplot_titles=("synonym positions", "determined positions"))
    truth_done = set()
    for name, parts in entropy.items():
        for col, where in ((1, "synonym"), (2, "single")):
            for kind, dash in (("pred", "solid"), ("target", "dot")):
                if parts.get(f"{where}.{kind}"):
                    _band(fig, parts[f"{where}.{kind}"], name, colors[name], 1, col, dash=dash,
                          showlegend=col == 1 and kind == "pred",
                          what=pretty_key(f"{where}.{kind}"))
            truth = parts.get(f"{where}.truth")
            if truth and where not in truth_done:
                _reference(fig, truth, "H(true): the law's entropy", 1, col, show=not truth_done)
                truth_done.add(where)
    fig.update_yaxes(title_text="entropy (nats)", rangemode="tozero", row=1, col=1)
    for col in (1, 2):
        fig.update_xaxes(title_text="training step", row=1, col=col)
    return _finish(fig, "Target H(p) (dotted) vs prediction H(q) (solid) vs the true law", 440)


def tearing(ratio: dict[str, SeedSeries], colors: dict[str, str]):
    """The class vectors' mean distance within synonym sets over the mean distance between
    sets, over training (mean and min-max band over seeds); 1 means synonyms sit no closer
    than unrelated tokens, and a ratio that rises is synonyms being torn apart."""
    go = _go()
    fig = go.Figure()
    steps = [float(x) for series in ratio.values() for s, _ in series for x in s]
    if steps:  # drawn first, under the objectives' lines
        fig.add_trace(go.Scatter(x=[min(steps), max(steps)], y=[1.0, 1.0], mode="lines",
                                 name="1: synonyms no closer than other tokens",
                                 line={"color": REFERENCE_COLOR, "dash": "dash", "width": 1}))
    for name, series in ratio.items():
        _band(fig, series, name, colors[name])
    fig.update_yaxes(title_text="within / between distance (ratio, unitless)",
                     rangemode="tozero")
    fig.update_xaxes(title_text="training step")
    return _finish(fig, "Synonym tearing: class-vector distance within vs between sets", 420)


def class_vectors(panels: dict[str, dict], ranges: list[tuple] | None = None,
                  names: list[str] | None = None):
    """Class vectors on one PCA basis: a row per objective, a column per step, coloured by
    synonym set (ten colours, repeating). ``panels[obj]`` holds ``steps[S]``,
    ``xy[S, K, 2]``, ``groups[K]`` and ``ids[K]`` (token ids, named by ``names``);
    ``ranges[s]`` (column ``s``) are shared by the objectives."""
    go = _go()
    fig, objs, cols = _step_grid(panels)
    k, scale = len(PALETTE), _stepped_scale()
    for r, obj in enumerate(objs, start=1):
        p = panels[obj]
        groups = np.asarray(p["groups"])
        ids = np.asarray(p["ids"])
        text = [f"{names[i] if names and i < len(names) else i} (set {g})"
                for i, g in zip(ids.tolist(), groups.tolist(), strict=True)]
        for c, xy in enumerate(np.asarray(p["xy"]), start=1):
            fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", showlegend=False,
                                     name=obj, text=text, hoverinfo="text",
                                     marker={"size": 4, "opacity": 0.8,
                                             "color": np.where(groups >= 0, groups, 0) % k,
                                             "colorscale": scale, "cmin": -0.5,
                                             "cmax": k - 0.5}), r, c)
    _grid_axes(fig, ranges)
    for c in range(1, cols + 1):
        fig.update_xaxes(title_text="PC1 (vector units)", row=len(objs), col=c)
    for r in range(1, len(objs) + 1):
        fig.update_yaxes(title_text="PC2 (vector units)", row=r, col=1)
    return _finish(fig, "Class vectors on one PCA basis (colour: synonym set)",
                   220 + 150 * len(objs), legend=False)
