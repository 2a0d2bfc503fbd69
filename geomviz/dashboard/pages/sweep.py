"""Sweep page: a learning-rate sweep's grid as a table, and its loss-vs-LR curves.

``/sweep`` lists the sweeps under the runs folder (a ``sweep.json`` written by
``geomviz sweep`` up to three folders deep); ``/sweep?s=FOLDER`` shows one. Clicking a
run's point opens its compare page against CE at the same rate, qk-layernorm setting
and seed (``/compare?a=CE_RUN&b=RUN``). Nothing is kept at module level: every request
reads the stores again.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import dash
from dash import Input, Output, callback, dcc, html, no_update
from flask import current_app

from ...figures.axes import apply_ticks
from ...figures.sweep import lr_sensitivity
from ...figures.theme import objective_colors
from ...store import confined, list_runs, store_problem
from ...study.sweep import MANIFEST
from ...study.sweep_results import collect_root
from ..data import PathError, resolve_run

__all__ = ["find_sweeps", "compare_href", "layout"]


def find_sweeps(root: str | Path, skipped: list[str] | None = None) -> list[str]:
    """Sweep folders (relative to ``root``) holding a manifest, up to three levels down. A
    manifest that is a link out of ``root`` (or whose folder is), or no regular file, is
    never read: its folder goes to ``skipped``."""
    base = Path(root)
    found = []
    for depth in range(4):
        for m in sorted(base.glob("/".join(["*"] * depth + [MANIFEST]))):
            rel = m.parent.relative_to(base)
            name = "." if str(rel) == "." else str(rel)
            if store_problem(m, within=base) is None:
                found.append(name)
            elif skipped is not None:
                skipped.append(name)
    return found


def _rid(root: Path, folder: Path) -> str:
    return str(folder.resolve().relative_to(root.resolve()))


def compare_href(root: str | Path, run_id: str) -> str | None:
    """``/compare?a=CE&b=RUN``: CE at the same rate, qk setting and seed; None for a CE
    run or when that CE run is not in the sweep."""
    folder = resolve_run(root, run_id)
    name = folder.name
    objective, _, rest = name.partition("-lr")
    if not rest or objective == "ce":
        return None
    ce = folder.parent / f"ce-lr{rest}"
    if not (ce / "run.sqlite").exists():
        return None
    return "/compare?" + urlencode({"a": _rid(Path(root), ce), "b": run_id})


def _figure(root: Path, results):
    fig = lr_sensitivity(results, title="Final test loss against learning rate (click a run)")
    colors = objective_colors(sorted({r.cell.objective for r in results}))
    qks = sorted({r.cell.qk for r in results})
    for r in results:  # every run as a point (its id in customdata), over the seed bands
        fig.add_scatter(x=[r.cell.lr], y=[r.loss], mode="markers", showlegend=False,
                        legendgroup=r.cell.objective, name=r.folder.name,
                        customdata=[[_rid(root, r.folder)]],
                        marker={"size": 6, "color": colors[r.cell.objective], "opacity": 0.6,
                                "symbol": "x" if r.status == "diverged" else "circle"},
                        hovertemplate=f"{r.folder.name} ({r.status})<br>lr %{{x:.3g}}<br>"
                                      "final NLL %{y:.4f} nats<extra>click: compare</extra>",
                        row=1, col=qks.index(r.cell.qk) + 1)
    # the page's width, not a fixed 800 px; labelled rate ticks (plotly's log axis put a
    # stray minor "9" between the decades)
    fig.update_layout(width=None, autosize=True)
    fig.update_xaxes(tickmode=None, tickvals=None, ticktext=None, minor=None)
    apply_ticks(fig, linear=False)
    return fig


def _fmt(v: float) -> str:
    return "" if v != v else f"{v:.4f}"


def _table(root: Path, results):
    head = html.Tr([html.Th(c) for c in ("run", "objective", "lr", "qk-layernorm", "seed",
                                         "status", "final NLL", "spikes", "")])
    rows = []
    for r in sorted(results, key=lambda r: (r.cell.qk, r.cell.objective != "ce",
                                            r.cell.objective, r.cell.lr, r.cell.seed)):
        rid = _rid(root, r.folder)
        href = compare_href(root, rid)
        rows.append(html.Tr([
            html.Td(rid), html.Td(r.cell.objective), html.Td(f"{r.cell.lr:g}"),
            html.Td("on" if r.cell.qk else "off"), html.Td(r.cell.seed),
            html.Td(r.status, className=f"status-{r.status}"), html.Td(_fmt(r.final)),
            html.Td(r.events),
            html.Td(dcc.Link("vs CE", href=href) if href else "")]))
    return html.Table([html.Thead(head), html.Tbody(rows)], id="sweep-table")


def layout(s: str | None = None, **_):
    root = Path(current_app.config["GEOMVIZ_RUNS"])
    linked: list[str] = []
    sweeps = find_sweeps(root, linked)
    if not sweeps:
        return html.Div([html.H2("No sweeps yet"), html.P(
            "Run `geomviz sweep --preset lm-spikes --out SWEEP`, serve `geomviz dashboard "
            "SWEEP`, then reload this page.")], id="sweep-empty")
    chosen = s if s in sweeps else sweeps[0]
    links = [dcc.Link(name, href="/sweep?" + urlencode({"s": name}),
                      className="sweep-pick" + (" chosen" if name == chosen else ""))
             for name in sweeps]
    refused: list[str] = []
    skipped: list[tuple[Path, str]] = []
    try:
        with confined(root):  # a manifest's run that is a link out is never opened
            list_runs(root / chosen, within=root, skipped=skipped)
            results = collect_root(root / chosen, within=root, refused=refused)
            results = [r for r in results if r.folder not in {f for f, _ in skipped}]
            graph, table = _figure(root, results), _table(root, results)
    except Exception as e:  # noqa: BLE001 - a bad manifest or store is a message, never a 500
        return html.Div([html.H2("Cannot show this sweep"),
                         html.P(" ".join(str(e).split())[:300])], id="sweep-error")
    refused += [str(f.relative_to(root / chosen)) for f, _ in skipped]
    refused += [f"{name}/{MANIFEST}" for name in linked]
    note = html.P(f"{len(refused)} run(s) of this sweep lie outside the dashboard's runs "
                  f"folder (or are no regular file) and are not shown: "
                  f"{', '.join(refused)[:300]}", id="sweep-refused") if refused else None
    if not results:
        return html.Div([html.H2(f"Sweep {chosen}"), note, html.P("No runs written yet.")],
                        id="sweep-empty")
    return html.Div([
        html.H2(f"Sweep {chosen}"), html.Div(links, id="sweep-list"),
        dcc.Graph(id="sweep-graph", figure=graph, className="sweep-graph",
                  config={"responsive": True}),
        html.Div(table, id="sweep-table-box"),
        dcc.Location(id="sweep-url", refresh=True), note,
    ])


dash.register_page(__name__, path="/sweep", name="Sweep", layout=layout)


@callback(Output("sweep-url", "href"), Input("sweep-graph", "clickData"),
          prevent_initial_call=True)
def open_compare(click):
    """A clicked run point -> its compare page against CE (no change for CE or a band)."""
    try:
        rid = click["points"][0]["customdata"][0]
        if not isinstance(rid, str):  # a mean point (its seed count), not a run
            return no_update
        href = compare_href(current_app.config["GEOMVIZ_RUNS"], rid)
    except (TypeError, KeyError, IndexError, PathError):
        return no_update
    return href or no_update
