"""What keeps the dashboard inside its runs folder and its callbacks out of 500s.

* every request runs inside :func:`geomviz.store.confined` (a store whose real path, links
  followed, leaves the runs folder is refused before it is opened, wherever in the code it
  is opened: runs table, compare page, sweep manifests, figure downloads);
* a request body is capped (:data:`MAX_BODY`, then 413), and a callback request whose shape
  is not that of one of the app's callbacks (an unknown output, inputs that are not the
  callback's) is a 400 with one line, before Dash's dispatcher raises on it;
* a callback that fails on its inputs (a run id not in the folder, a junk value) changes
  nothing and says why in the page's note line (:data:`NOTE`), never a 500.
"""

from __future__ import annotations

import json
from pathlib import Path

from flask import current_app, jsonify, request

from ..store import StoreError, confined
from .data import PathError

__all__ = ["MAX_BODY", "NOTE", "BadInput", "guard_app", "on_callback_error"]

MAX_BODY = 8 * 2**20  # bytes: a lasso over every point of two manifolds stays far below
NOTE = "app-note"  # the shell's note line, on every page


class BadInput(ValueError):
    """A callback input that is not a value the page can send (a crafted request)."""


def _confining(wsgi_app, root: Path):
    def app(environ, start_response):
        with confined(root):
            return wsgi_app(environ, start_response)

    return app


def guard_app(app, root: Path, assets: Path | None) -> None:
    """Install the request cap, the confinement and the callback-shape check on ``app``."""
    server = app.server
    server.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    server.wsgi_app = _confining(server.wsgi_app, root)

    @server.before_request
    def _check():
        if request.method == "POST" and request.path.endswith("/_dash-update-component"):
            why = bad_callback_body(app.callback_map, request.get_json(silent=True))
            if why is not None:
                return jsonify(error=why), 400
        if assets is not None and "/assets/" in request.path:  # no link out of assets/
            rel = request.path.split("/assets/", 1)[1]
            try:
                real = (assets / rel).resolve()
            except (OSError, RuntimeError, ValueError):
                return "not found", 404
            if not real.is_relative_to(assets.resolve()):
                return "not found", 404
        return None


_TEXT = ("pathname", "search", "hash", "href")  # a dcc.Location's parts


def _ids(spec) -> list[tuple[str, str]]:
    return [(d["id"], d["property"]) for d in spec]


def _is_pattern(cid: str) -> bool:
    return cid.startswith("{")


def _bad_deps(got, deps: list[dict], what: str) -> str | None:
    if not isinstance(got, list) or len(got) != len(deps):
        return f"{what}: expected a list of {len(deps)}"
    for g, (cid, prop) in zip(got, _ids(deps), strict=True):
        if _is_pattern(cid):  # a wildcard id: a list of matches, each with a dict id
            ok = isinstance(g, list) and all(isinstance(x, dict) and isinstance(x.get("id"), dict)
                                             and x.get("property") == prop for x in g)
        else:
            ok = isinstance(g, dict) and g.get("id") == cid and g.get("property") == prop
            if ok and prop in _TEXT:  # the URL's parts are text, whatever the id
                v = g.get("value")
                ok = v is None or isinstance(v, str) and (prop != "pathname" or v[:1] == "/")
        if not ok:
            return f"{what}: expected {cid}.{prop}" + (" as text" if prop in _TEXT else "")
    return None


def _outputs(key: str) -> list[tuple[str, str]]:
    """``(id, property)`` of each output in a callback key (``..a.b...c.d..`` or ``a.b``)."""
    parts = key[2:-2].split("...") if key.startswith("..") else [key]
    return [tuple(p.split("@", 1)[0].rsplit(".", 1)) for p in parts]


def _prop(output: dict) -> str:
    return str(output.get("property")).split("@", 1)[0]


def bad_callback_body(callback_map: dict, body) -> str | None:
    """Why ``body`` is not a request for one of the app's callbacks, or None."""
    if not isinstance(body, dict):
        return "the callback request is not a JSON object"
    key = body.get("output")
    if not isinstance(key, str) or key not in callback_map:
        return f"unknown callback output {str(key)[:80]!r}"
    entry = callback_map[key]
    for field, what in (("inputs", "inputs"), ("state", "state")):
        why = _bad_deps(body.get(field, []), entry[field], what)
        if why is not None:
            return why
    outs = _outputs(key)
    got = body.get("outputs")
    got = got if isinstance(got, list) and len(outs) > 1 else [got]
    if len(got) != len(outs):
        return f"outputs: expected {len(outs)}"
    for g, (cid, prop) in zip(got, outs, strict=True):  # "prop@hash": allow_duplicate
        if _is_pattern(cid):
            ok = isinstance(g, list) and all(isinstance(x, dict) and isinstance(x.get("id"), dict)
                                             and _prop(x) == prop for x in g)
        else:
            ok = isinstance(g, dict) and g.get("id") == cid and _prop(g) == prop
        if not ok:
            return f"outputs: expected {cid}.{prop}"
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
        return "changedPropIds: expected a list of 'id.property' names"
    return None


def on_callback_error(err: Exception):
    """Dash's error handler for every callback: nothing on the page changes, the note line
    says why. A failure that is not about the inputs is logged with its traceback too."""
    from dash import set_props

    from .pages.compare_data import safe_error

    if not isinstance(err, PathError | StoreError | BadInput | LookupError):
        current_app.logger.error("a dashboard callback failed", exc_info=err)
    set_props(NOTE, {"children": f"not updated: {safe_error(err)}"})
    return None


def as_list(value, what: str, n: int | None = None) -> list:
    """``value`` as a list (of ``n`` items), else :class:`BadInput` naming ``what``."""
    if not isinstance(value, list) or not value or (n is not None and len(value) != n):
        raise BadInput(f"{what} is {json.dumps(value)[:60]}, not a list"
                       + (f" of {n}" if n else ""))
    return value


def run_ids(value) -> list[str]:
    """The page's two run ids (``compare-runs.data``)."""
    ids = as_list(value, "the runs shown", 2)
    if not all(isinstance(r, str) for r in ids):
        raise BadInput("the runs shown are not two run ids")
    return ids


def step_list(value) -> list[int]:
    """The page's snapshot steps (``compare-steps.data``): a non-empty list of integers."""
    steps = as_list(value, "the snapshot steps")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in steps):
        raise BadInput("the snapshot steps are not integers")
    return steps


def number(value, what: str, default: float | None = None) -> float:
    """A finite number, else ``default`` if given, else :class:`BadInput`."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value \
            and abs(value) != float("inf"):
        return value
    if default is not None:
        return default
    raise BadInput(f"{what} is {json.dumps(value)[:60]}, not a number")


def options(value) -> list[str]:
    """A checklist's value: a list of strings (anything else reads as nothing ticked)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def choice(value, allowed, what: str):
    """``value`` if it is one of ``allowed``, else :class:`BadInput` naming the choices."""
    if not isinstance(value, str) or value not in allowed:
        raise BadInput(f"{what} {json.dumps(value)[:60]} is not one of "
                       f"{', '.join(map(str, allowed))}")
    return value


def count(value, what: str) -> int:
    """A click or tick count: an integer >= 0 (None, before the first, reads as 0)."""
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadInput(f"{what} is {json.dumps(value)[:60]}, not a count")
    return value


_SIDE_KEYS = {"id": str, "label": str, "objective": str, "color": str, "runs": list}


def page_token(value) -> str:
    """The page's own token (``compare-page.data``, a uuid4 hex): 8 to 64 hex digits, else
    :class:`BadInput` (a crafted token could name another page's hold, or anything)."""
    if not isinstance(value, str) or not 8 <= len(value) <= 64 \
            or any(c not in "0123456789abcdef" for c in value):
        raise BadInput(f"the page token {str(value)[:40]!r} is not this page's")
    return value


def side_list(value) -> list[dict]:
    """The page's two sides (``compare-sides.data``), each with its run ids and colour."""
    sides = as_list(value, "the compared sides", 2)
    for s in sides:
        if not isinstance(s, dict) or any(not isinstance(s.get(k), t)
                                          for k, t in _SIDE_KEYS.items()):
            raise BadInput("the compared sides are not the page's (id, label, objective, "
                           "color, runs)")
        if not s["runs"] or not all(isinstance(r, str) for r in s["runs"]) \
                or not _is_color(s["color"]):
            raise BadInput("a compared side has no run ids or no #rrggbb colour")
    return sides


def _is_color(text: str) -> bool:
    return len(text) == 7 and text[0] == "#" and all(c in "0123456789abcdefABCDEF"
                                                     for c in text[1:])
