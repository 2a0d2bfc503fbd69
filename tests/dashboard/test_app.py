"""create_app: every app in one process gets the pages' callbacks and clientside scripts
(Dash files them in global lists that the first app to start empties)."""

from __future__ import annotations

import pytest


def test_every_app_in_a_process_serves_the_clientside_functions(tmp_path):
    pytest.importorskip("dash")
    from geomviz.dashboard import create_app
    from geomviz.dashboard.pages.compare_client import MARKERS_JS, SNAP_JS

    pages = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        app = create_app(tmp_path / name)
        pages.append(app.server.test_client().get("/").get_data(as_text=True))
        assert any("compare-shown" in k for k in app.callback_map)
    for page in pages:  # the second app's page lacked them: its slider snapped nowhere
        assert SNAP_JS.strip()[:60] in page and MARKERS_JS.strip()[:60] in page
