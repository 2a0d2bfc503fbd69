"""The compare page's slider work that needs no server: snapping a slider value to a snapshot
step, and moving the time panels' step markers.

Both ran as server callbacks: a slider move then cost a round trip before the manifolds were
even asked for, and every time panel was redrawn (``Plotly.react``) in the same frame as the
manifolds. In the browser, the snap is a pure function of the slider's value, the step on
screen and the snapshot steps (:func:`geomviz.dashboard.views.snap_step` is its reference,
and a browser test holds the two equal); the markers are moved with ``Plotly.relayout`` of
their one shape, one panel per idle moment, after the manifolds have been asked for.
``compare-marks`` holds what the markers need: the slider's steps and each side's own step
at each (the runs' steps differ: matched by fraction of training).
"""

from __future__ import annotations

from dash import Input, Output, State, callback, clientside_callback
from flask import current_app

from ..guard import run_ids, step_list
from .compare_data import load_manifold

# (slider value, step on screen, snapshot steps) -> [step on screen, slider value]; a value
# between two snapshots goes on to the next one in the direction of travel
SNAP_JS = """
function (value, shown, steps) {
    const nu = window.dash_clientside.no_update;
    if (!Array.isArray(steps) || !steps.length || typeof value !== 'number' ||
        !Number.isFinite(value)) return [nu, nu];
    const last = steps[steps.length - 1];
    const from = (typeof shown === 'number' && Number.isFinite(shown)) ? shown : last;
    let step;
    if (steps.includes(value)) {
        step = value;
    } else if (value > from) {  // the first snapshot at or after the value
        const i = steps.findIndex(s => s >= value);
        step = i < 0 ? last : steps[i];
    } else {  // the last snapshot at or before it
        let i = 0;
        for (let k = 0; k < steps.length; k++) if (steps[k] <= value) i = k;
        step = steps[i];
    }
    return [step === shown ? nu : step, step === value ? nu : step];
}
"""

# (step on screen, marks) -> nothing; moves every time panel's marker to its side's own step
MARKERS_JS = """
function (step, marks) {
    const nu = window.dash_clientside.no_update;
    if (!marks || !Array.isArray(marks.steps) || typeof step !== 'number') return nu;
    let i = marks.steps.indexOf(step);
    if (i < 0) i = marks.steps.length - 1;
    const own = marks.own.map(o => o[i]);
    const sides = {left: own[0], right: own[1]};
    const job = (window.__geomvizMarkers = {step: step});  // a newer move supersedes this one
    const todo = Array.from(document.querySelectorAll('#compare-panels [id^="{"]'));
    const next = () => {
        if (window.__geomvizMarkers !== job || !window.Plotly) return;
        const el = todo.shift();
        if (!el) return;
        const gd = el.querySelector('.js-plotly-plot');
        let id = null;
        try { id = JSON.parse(el.id); } catch (e) { id = null; }
        const shapes = gd && gd.layout && gd.layout.shapes;
        if (id && shapes && shapes.length) {
            const xs = (id.side === 'AB' && marks.mapping === 'fraction' && shapes.length > 1)
                ? own : [id.side in sides ? sides[id.side] : step];
            const update = {};
            xs.forEach((x, k) => { update[`shapes[${k}].x0`] = x; update[`shapes[${k}].x1`] = x; });
            if (xs.some((x, k) => shapes[k].x0 !== x)) window.Plotly.relayout(gd, update);
        }
        window.requestIdleCallback ? window.requestIdleCallback(next, {timeout: 300})
                                   : window.setTimeout(next, 0);
    };
    window.setTimeout(next, 0);
    return nu;
}
"""


def marks_data(root, runs: list[str]) -> dict:
    """``{"steps", "own": [per side, its own step at each slider step], "mapping"}``."""
    data = load_manifold(root, runs, "pca")
    return {"steps": data["steps"], "own": [r["steps"] for r in data["runs"]],
            "mapping": data["mapping"]}


clientside_callback(SNAP_JS, Output("compare-shown", "data"),
                    Output("compare-step", "value", allow_duplicate=True),
                    Input("compare-step", "value"), State("compare-shown", "data"),
                    State("compare-steps", "data"), prevent_initial_call=True)

clientside_callback(MARKERS_JS, Output("compare-marked", "data"),
                    Input("compare-shown", "data"), State("compare-marks", "data"),
                    prevent_initial_call=True)


@callback(Output("compare-marks", "data"), Input("compare-runs", "data"),
          Input("compare-steps", "data"), prevent_initial_call=True)
def _marks(runs, steps):
    """Another seed picked, or new snapshots of a live run: the markers' steps again."""
    step_list(steps)
    return marks_data(current_app.config["GEOMVIZ_RUNS"], run_ids(runs))
