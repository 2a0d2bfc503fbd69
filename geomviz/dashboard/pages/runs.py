"""Runs page: every run under the folder, live status, and a picker for two runs to compare."""

from __future__ import annotations

from urllib.parse import urlencode

import dash
from dash import Input, Output, callback, dcc, html
from flask import current_app

from ...figures.labels import fmt_rate
from ..data import run_table, seed_groups


def _fmt(v, digits=3):
    return "" if v is None else f"{v:.{digits}f}"


def _short(text: str, n: int = 80) -> str:
    """The cell's text; the whole message stays in its tooltip (``title``)."""
    return text if len(text) <= n else text[:n - 1].rstrip() + "…"


def _default_pair(rows: list[dict]) -> list[str]:
    """The picker's first pair: the first run and the first one of another objective on
    the same dataset (CE vs TFSD, not CE seed 0 vs CE seed 1), else the next run."""
    ok = [r for r in rows if r["status"] != "unreadable"]
    if not ok:
        return [None, None]
    first = ok[0]
    other = next((r for r in ok if r["objective"] != first["objective"]
                  and r["dataset"] == first["dataset"]), None)
    return [first["run"], (other or (ok + ok)[1])["run"]]


def _table(rows: list[dict]):
    kl = any(r.get("kl") is not None for r in rows)  # token runs on a known law
    head = html.Tr([html.Th(c) for c in ("run", "objective", "dataset", "seed",
                                         "learning rate", "status",
                                         "steps", "test acc", "AUROC (MSP)",
                                         *(["KL to true law (nats/token)"] if kl else []),
                                         "")])
    body = [html.Tr([html.Td(r["run"]), html.Td(r["objective"]), html.Td(r["dataset"]),
                     html.Td("" if r["seed"] is None else r["seed"]),
                     html.Td("" if r.get("lr") is None else fmt_rate(r["lr"])),
                     html.Td(r["status"], className=f"status-{r['status']}"),
                     html.Td(r["steps"]), html.Td(_fmt(r["acc"])), html.Td(_fmt(r["auroc"])),
                     *([html.Td(_fmt(r.get("kl")))] if kl else []),
                     html.Td(_short(r["warning"]), title=r["warning"], className="warning")])
            for r in rows]
    return html.Table([html.Thead(head), html.Tbody(body)], id="runs-table")


def _groups(rows: list[dict]):
    def ms(v):
        return "" if v is None else f"{v[0]:.3f} ± {v[1]:.3f} (n={v[2]})"

    # runs equal in everything but the seed; a group of one run is no group
    groups = [g for g in seed_groups(rows) if g["n"] > 1]
    if not groups:
        return html.Div()
    head = html.Tr([html.Th(c) for c in ("seed group", "dataset", "runs", "test acc",
                                         "AUROC (MSP)", "compare (mean, min-max band)")])

    def links(g):  # against every other group of the same folder and dataset
        parent = g["group"].rsplit("/", 1)[0]
        return [dcc.Link(f"vs {o['label']}", className="group-link",
                         href="/compare?" + urlencode({"ga": g["group"], "gb": o["group"]}))
                for o in groups if o is not g and o["dataset"] == g["dataset"]
                and o["group"].rsplit("/", 1)[0] == parent]

    body = [html.Tr([html.Td(g["group"], title="\n".join(g["members"])),
                     html.Td(g["dataset"]), html.Td(g["n"]),
                     html.Td(ms(g["acc"])), html.Td(ms(g["auroc"])), html.Td(links(g))])
            for g in groups]
    return html.Div([html.H3("Seed groups (mean ± sd)"),
                     html.Table([html.Thead(head), html.Tbody(body)], id="runs-groups")])


def layout(**_):
    rows = run_table(current_app.config["GEOMVIZ_RUNS"])
    if not rows:
        return html.Div([html.H2("No runs yet"), html.P(
            "Train some with `geomviz compare --objectives ce,tfsd` or `geomviz demo`, "
            "then reload this page.")], id="runs-empty")
    ids = [r["run"] for r in rows if r["status"] != "unreadable"]
    default = _default_pair(rows)
    return html.Div([
        html.H2("Runs"),
        html.Div(_table(rows), id="runs-table-box"),
        html.Div(_groups(rows), id="runs-groups-box"),
        dcc.Interval(id="runs-interval", interval=5000),
        html.Div([html.Label("left"), dcc.Dropdown(ids, default[0], id="runs-left"),
                  html.Label("right"), dcc.Dropdown(ids, default[1], id="runs-right"),
                  dcc.Link("compare →", href="", id="runs-compare-link")], className="picker"),
    ])


dash.register_page(__name__, path="/", name="Runs", layout=layout)


@callback(Output("runs-table-box", "children"), Output("runs-groups-box", "children"),
          Input("runs-interval", "n_intervals"))
def _refresh(_n):
    rows = run_table(current_app.config["GEOMVIZ_RUNS"])
    return _table(rows), _groups(rows)


@callback(Output("runs-compare-link", "href"), Input("runs-left", "value"),
          Input("runs-right", "value"))
def _link(a, b):
    return "/compare?" + urlencode({"a": a or "", "b": b or ""})
