"""Tiny language-model runs on the synonym language (CE and TFSD, seeds 0 and 1), trained
once per test session and shared by the dashboard, figure and study tests that need them."""

from __future__ import annotations

from pathlib import Path

import pytest

ARGS = ["--dataset", "synonyms", "--model", "gpt", "--epochs", "2", "--train-tokens", "8192",
        "--test-tokens", "4096", "--snapshots", "5", "--snapshot-size", "200",
        "--snapshot-ood", "40", "--no-progress"]


def lm_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runs folder holding ``lm/{ce,tfsd}-s{0,1}`` (trained at the first call)."""
    from geomviz.cli import main

    root = tmp_path_factory.getbasetemp() / "lm-runs"
    done = root / "done"
    if not done.exists():
        mp = pytest.MonkeyPatch()
        mp.setenv("GEOMVIZ_CACHE", str(tmp_path_factory.getbasetemp() / "lm-cache"))
        try:
            assert main(["compare", "--objectives", "ce,tfsd", "--seeds", "0,1", "--name", "lm",
                         "--runs-dir", str(root), *ARGS]) == 0
        finally:
            mp.undo()
        done.write_text("")
    return root
