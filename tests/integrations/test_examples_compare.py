"""The examples' CE and TFSD runs open together on the compare page: both sides drawn,
each in its objective's colour. The examples run once (smoke size) for the module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from geomviz.figures.theme import OBJECTIVE_COLORS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {"plain_loop": ("plain_loop", None), "lightning_module": ("lightning", "lightning")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    pytest.importorskip("mnist1d")
    pytest.importorskip("dash")
    root = tmp_path_factory.mktemp("runs")
    env = {**os.environ, "GEOMVIZ_SMOKE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for name, (_, needs) in EXAMPLES.items():
        if needs and not _has(needs):
            continue
        res = subprocess.run([sys.executable, str(ROOT / "examples" / f"{name}.py"), str(root)],
                             cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
    return root


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def compare_page(root: Path, a: str, b: str) -> dict:
    """The compare page of runs ``a`` and ``b`` as the browser gets it: the page, its panels
    and the manifold figure of each side (``{"panels": ..., "left": fig, "right": fig}``)."""
    from geomviz.dashboard import create_app
    from geomviz.dashboard.drive import callback_body, layout_values

    app = create_app(root)
    from geomviz.dashboard.pages import compare  # registers itself: after the app exists

    client = app.server.test_client()
    assert client.get(f"/compare?a={a}&b={b}").status_code == 200
    with app.server.test_request_context():
        page = compare.layout(a=a, b=b)
    assert "Cannot compare" not in str(page)
    values = layout_values(page)

    def post(output, changed):
        r = client.post("/_dash-update-component",
                        json=callback_body(app, output, values, changed))
        assert r.status_code == 200, r.data[:300]
        return r.get_json()["response"]

    out = post("compare-left-graph.figure", ["compare-runs.data"])
    return {"panels": json.dumps(post("compare-panels.children", ["compare-options.value"])),
            "left": out["compare-left-graph"]["figure"],
            "right": out["compare-right-graph"]["figure"]}


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_the_examples_ce_and_tfsd_runs_open_together_on_the_compare_page(runs, name):
    folder, needs = EXAMPLES[name]
    if needs and not _has(needs):
        pytest.skip(f"needs {needs}")
    page = compare_page(runs, f"{folder}/ce", f"{folder}/tfsd")
    for key in ("loss", "radial", "decomp"):
        assert f'"panel": "{key}"' in page["panels"], key
    for colour in (OBJECTIVE_COLORS["ce"], OBJECTIVE_COLORS["tfsd"]):  # one hue each
        assert colour in page["panels"], colour
    for side in ("left", "right"):
        traces = page[side]["data"]
        assert traces and any(t.get("x") for t in traces), side
