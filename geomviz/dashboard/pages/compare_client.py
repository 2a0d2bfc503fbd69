"""The compare page's slider work that needs no server: snapping the slider to snapshot
steps, arrow keys from snapshot to snapshot, and moving the time panels' step markers.

The snap ran as a server callback, in the direction of travel from the step on screen, and
wrote the snapshot back to the slider: a move cost a round trip before the manifolds were
even asked for, and under a slowly dragging pointer the written-back thumb and the pointer
fought (119, 125, 119, 125...). Now, in the browser: a drag (the slider's ``drag_value``)
shows the nearest snapshot and leaves the thumb under the pointer; a release, a click on
the track or a typed number lands on the nearest snapshot; an arrow key moves the slider
to the next snapshot itself (:func:`geomviz.dashboard.views.nearest_step` and
:func:`~geomviz.dashboard.views.next_step` are the references, held equal by a browser
test). The markers are moved with ``Plotly.relayout`` of their one shape, one panel per idle
moment, after the manifolds have been asked for. ``compare-marks`` holds what they need:
the slider's steps and each side's own step at each (the runs' steps differ: matched by
fraction of training).
"""

from __future__ import annotations

from dash import Input, Output, State, callback, clientside_callback
from flask import current_app

from ..guard import run_ids, step_list
from .compare_data import marks_data

# (value, snapshot steps) -> the nearest snapshot step, the earlier on a tie
NEAREST_JS = """function (value, steps) {
    let best = 0;
    for (let k = 1; k < steps.length; k++)
        if (Math.abs(steps[k] - value) < Math.abs(steps[best] - value)) best = k;
    return steps[best];
}"""

# (current, direction, snapshot steps) -> the snapshot after (> 0) or before it, clamped
NEXT_JS = """function (current, direction, steps) {
    if (direction > 0) {
        const after = steps.find(s => s > current);
        return after === undefined ? steps[steps.length - 1] : after;
    }
    let before = steps[0];
    for (const s of steps) if (s < current) before = s;
    return before;
}"""

# (value, drag value, step on screen, snapshot steps) -> [step on screen, slider value]
SNAP_JS = f"""function (value, dragValue, shown, steps) {{
    const nu = window.dash_clientside.no_update;
    const nearest = {NEAREST_JS};
    if (!Array.isArray(steps) || !steps.length) return [nu, nu];
    const fired = (window.dash_clientside.callback_context.triggered || []).map(t => t.prop_id);
    const dragging = fired.length > 0 && fired.every(p => p.endsWith('.drag_value'));
    const raw = dragging ? dragValue : value;
    if (typeof raw !== 'number' || !Number.isFinite(raw)) return [nu, nu];
    if (dragging && dragValue === value) return [nu, nu];  // a key or a click: value's call
    const step = nearest(raw, steps);
    // a drag leaves the thumb under the pointer; anything else lands on the snapshot
    return [step === shown ? nu : step, (dragging || step === value) ? nu : step];
}}"""

# (snapshot steps) -> nothing; installs, once per page, arrow keys from snapshot to snapshot
KEYS_JS = f"""function (steps) {{
    window.__geomvizSteps = steps;
    if (!window.__geomvizKeys) {{
        window.__geomvizKeys = true;
        const next = {NEXT_JS};
        document.addEventListener('keydown', e => {{
            const dir = {{ArrowLeft: -1, ArrowDown: -1, ArrowRight: 1, ArrowUp: 1}}[e.key];
            const root = document.getElementById('compare-step');
            const steps = window.__geomvizSteps;
            if (!dir || !root || !root.contains(e.target) || e.target.tagName === 'INPUT' ||
                !Array.isArray(steps) || !steps.length) return;
            e.preventDefault();
            e.stopPropagation();  // the slider's own handler would move it by one step
            const thumb = root.querySelector('[role=slider]');
            const pending = window.__geomvizKeyTarget;  // a press the thumb has not shown yet
            const current = (pending && performance.now() - pending.at < 400) ? pending.step
                : Number(thumb && thumb.getAttribute('aria-valuenow'));
            const step = next(current, dir, steps);
            window.__geomvizKeyTarget = {{step: step, at: performance.now()}};
            window.dash_clientside.set_props('compare-step', {{value: step}});
        }}, true);
    }}
    return window.dash_clientside.no_update;
}}"""

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


clientside_callback(SNAP_JS, Output("compare-shown", "data"),
                    Output("compare-step", "value", allow_duplicate=True),
                    Input("compare-step", "value"), Input("compare-step", "drag_value"),
                    State("compare-shown", "data"), State("compare-steps", "data"),
                    prevent_initial_call=True)

clientside_callback(KEYS_JS, Output("compare-keys", "data"), Input("compare-steps", "data"))

clientside_callback(MARKERS_JS, Output("compare-marked", "data"),
                    Input("compare-shown", "data"), State("compare-marks", "data"),
                    prevent_initial_call=True)


@callback(Output("compare-marks", "data"), Input("compare-runs", "data"),
          Input("compare-steps", "data"), prevent_initial_call=True)
def _marks(runs, steps):
    """Another seed picked, or new snapshots of a live run: the markers' steps again."""
    step_list(steps)
    return marks_data(current_app.config["GEOMVIZ_RUNS"], run_ids(runs))
