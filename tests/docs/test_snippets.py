"""Every python and bash block of README.md and docs/ runs at its smoke size, or its page
says why it cannot (docs/development.md, "The snippet rule"); see tests/docs/snippets.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.snippets import ROOT, all_blocks, blocks, pages

MARKERS = {"smoke", "skip", "file", "demo-command", "test-command"}
LANGS = {"python", "bash", "yaml", "text"}
RUNNABLE = [p for p in pages() if any(b.action in ("run", "file") for b in blocks(p))]


def test_every_block_is_run_or_marked_with_a_reason():
    problems = []
    for b in all_blocks():
        if b.lang not in LANGS:
            problems.append(f"{b.where}: fence language {b.lang!r} (use one of {sorted(LANGS)})")
        if unknown := set(b.markers) - MARKERS:
            problems.append(f"{b.where}: unknown marker {sorted(unknown)}")
        if "skip" in b.markers and len(b.markers["skip"]) < 10:
            problems.append(f"{b.where}: a skipped block must say why")
        if "skip" in b.markers and ("smoke" in b.markers or "file" in b.markers):
            problems.append(f"{b.where}: skipped, yet it has smoke or file markers")
        if b.lang == "yaml" and b.action != "file" and "skip" not in b.markers:
            problems.append(f"{b.where}: a yaml block is a file (<!-- file: PATH -->)")
        try:
            b.smoke()
        except ValueError as e:
            problems.append(str(e))
    assert not problems, "\n".join(problems)


def test_the_rule_catches_a_stale_smoke_substitution(tmp_path):
    from tests.docs.snippets import Block

    b = Block("x.md", 1, "bash", "geomviz train --epochs 20\n", {"smoke": "--epochs 30 => 1"})
    with pytest.raises(ValueError, match="not in the block"):
        b.smoke()
    page = tmp_path / "p.md"
    page.write_text("<!-- skip: a server until Ctrl-C -->\n```bash\ngeomviz demo\n```\n\n"
                    "```python\nprint(1)\n```\n")
    found = blocks(page) if page.is_relative_to(ROOT) else None
    assert found is None or [b.action for b in found] == ["skip", "run"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("snippet-cache")  # MNIST-1D is generated once


@pytest.mark.parametrize("page", RUNNABLE, ids=[str(p.relative_to(ROOT)) for p in RUNNABLE])
def test_the_page_snippets_run(page: Path, tmp_path, cache):
    pytest.importorskip("mnist1d")
    for name in ("examples", "benchmarks", "app.py", "assets", "tests", "pyproject.toml"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {**os.environ, "GEOMVIZ_SMOKE": "1", "GEOMVIZ_CACHE": str(cache),
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
           "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    for i, b in enumerate(blocks(page)):
        if b.action == "file":
            dest = tmp_path / b.markers["file"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(b.code)
            continue
        if b.action != "run":
            continue
        code = b.smoke()
        if b.lang == "python":
            script = tmp_path / f"_snippet_{i}.py"
            script.write_text(code)
            argv = [sys.executable, str(script)]
        else:
            argv = ["bash", "-euo", "pipefail", "-c", code]
        res = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=300)
        assert res.returncode == 0, (f"{b.where} failed (exit {res.returncode}):\n{code}\n"
                                     f"{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
