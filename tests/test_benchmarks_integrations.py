"""benchmarks/integrations.py at its smoke size, in this process: both loops run with and
without the callback and print their step times and ratio against the 1.05 target."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_integrations_benchmark_prints_both_ratios(capsys):
    pytest.importorskip("lightning")
    pytest.importorskip("transformers")
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from integrations import TARGET, main
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    main(["--smoke"])
    out = capsys.readouterr().out
    for loop in ("lightning", "hf"):
        line = next(ln for ln in out.splitlines() if ln.startswith(loop))
        without, with_, ratio = map(float, re.search(
            r"without +([\d.]+) ms/step +with +([\d.]+) ms/step +×([\d.]+)", line).groups())
        assert without > 0 and with_ > 0 and ratio == pytest.approx(with_ / without, rel=0.01)
        assert f"target ≤ {TARGET}" in line
