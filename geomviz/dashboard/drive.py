"""Drive the app's callbacks the way the browser does, with ids taken from the app itself
(its callback map and a page's real layout), so benchmarks and tests cannot go stale."""

from __future__ import annotations

from typing import Any


def layout_values(node) -> dict[str, Any]:
    """``{"id.prop": value}`` of every component with a string id in a layout tree."""
    out: dict[str, Any] = {}

    def walk(n) -> None:
        if n is None or isinstance(n, str | int | float):
            return
        if isinstance(n, list | tuple):
            for c in n:
                walk(c)
            return
        cid = getattr(n, "id", None)
        if isinstance(cid, str):
            for prop in n._prop_names:
                value = getattr(n, prop, None)
                if prop not in ("children", "id") and value is not None:
                    out[f"{cid}.{prop}"] = value
        walk(getattr(n, "children", None))

    walk(node)
    return out


def callback_body(app, output: str, values: dict[str, Any], changed: list[str]) -> dict:
    """The ``/_dash-update-component`` request for the callback whose outputs include
    ``output`` (``"id.prop"``, the primary callback, not an ``allow_duplicate`` one), with
    inputs and state filled from ``values`` (missing ones are None)."""
    if not app.callback_map:
        app.server.test_client().get("/")  # Dash fills the callback map at the first request
    for key, entry in app.callback_map.items():
        outs = entry["output"] if isinstance(entry["output"], list) else [entry["output"]]
        names = [f"{o.component_id}.{o.component_property}" for o in outs]
        if output in names and "@" not in key.split(output, 1)[1][:1]:
            def spec(deps):
                return [{"id": d["id"], "property": d["property"],
                         "value": values.get(f"{d['id']}.{d['property']}")} for d in deps]

            return {"output": key,
                    "outputs": [{"id": o.component_id, "property": o.component_property}
                                for o in outs] if len(outs) > 1 else
                    {"id": outs[0].component_id, "property": outs[0].component_property},
                    "inputs": spec(entry["inputs"]), "state": spec(entry["state"]),
                    "changedPropIds": changed}
    raise LookupError(f"no callback writes {output}")
