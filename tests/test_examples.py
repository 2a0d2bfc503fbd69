"""Each example runs at its smoke size (GEOMVIZ_SMOKE=1), records a finished CE and TFSD
run, and ends with the command that opens the pair on the compare page."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from geomviz.store import open_run

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {"plain_loop": None, "lightning_module": "lightning", "hf_trainer": "transformers"}
FOLDER = {"plain_loop": "plain_loop", "lightning_module": "lightning",
          "hf_trainer": "hf_trainer"}


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_the_example_records_a_ce_and_a_tfsd_run(tmp_path, name):
    if EXAMPLES[name]:
        pytest.importorskip(EXAMPLES[name])
    pytest.importorskip("mnist1d")
    env = {**os.environ, "GEOMVIZ_SMOKE": "1", "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, str(ROOT / "examples" / f"{name}.py"),
                          str(tmp_path / "runs")], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    folder = FOLDER[name]
    last = res.stdout.strip().splitlines()[-1]
    assert last.startswith(f"geomviz dashboard {tmp_path / 'runs'}")
    assert f"/compare?a={folder}/ce&b={folder}/tfsd" in last
    for objective in ("ce", "tfsd"):
        with open_run(tmp_path / "runs" / folder / objective) as run:
            assert run.status == "finished" and run.meta["objective"] == objective
            assert run.array_steps("snapshot.features") and "final" in run.meta
    assert len(Path(ROOT / "examples" / f"{name}.py").read_text().splitlines()) <= 60
