"""Verdicts from paired seed differences: better/worse only when a t-interval excludes 0.

Every objective of a seed shares its data, initialisation and batches, so the
comparison that removes the seed's own luck is the per-seed difference
``a_s - b_s``. Its mean gets a two-sided Student-t interval over the paired seeds;
a verdict of better or worse needs the interval to exclude 0, and the interval is
printed beside it. With 3 seeds (2 degrees of freedom, t = 4.30) intervals are wide
on purpose: few seeds cannot support a narrow claim.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["Paired", "paired_interval", "paired_verdict", "LEVEL"]

LEVEL = 0.95  # two-sided confidence level of every interval in the reports


@dataclass(frozen=True)
class Paired:
    """A paired comparison of ``a`` against ``b`` (``delta = a - b`` per seed)."""

    mean: float  # mean paired difference a - b
    lo: float  # interval bounds (nan with fewer than 2 pairs)
    hi: float
    n: int  # paired seeds
    label: str  # "better", "worse", "higher", "lower", "no clear difference", "one seed"
    level: float = LEVEL

    @property
    def interval(self) -> str:
        """``Δ +0.0158 [95% CI -0.0021, +0.0337], 3 paired seeds``."""
        head = f"Δ {self.mean:+.3g}"
        if self.n < 2:
            return f"{head}, {self.n} paired seed (no interval)"
        return (f"{head} [{self.level:.0%} CI {self.lo:+.3g}, {self.hi:+.3g}], "
                f"{self.n} paired seeds")

    @property
    def clear(self) -> bool:
        """Whether the interval excludes 0."""
        return self.label not in ("no clear difference", "one seed")


def paired_interval(diffs, level: float = LEVEL) -> tuple[float, float, float, int]:
    """``(mean, lo, hi, n)`` of the finite ``diffs``: mean ± t_{n-1, (1+level)/2} · sd/√n.
    ``lo = hi = nan`` below two values; a zero sd gives a zero-width interval."""
    from scipy import stats

    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    d = np.asarray([v for v in diffs if v is not None], dtype=np.float64)
    d = d[np.isfinite(d)]
    n = len(d)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(d.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * float(d.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half, n


def paired_verdict(a: Mapping, b: Mapping, better: str = "higher",
                   level: float = LEVEL) -> Paired | None:
    """Compare ``a`` with ``b``, both ``{seed: value}``, over the seeds they share.

    ``better``: ``"higher"``, ``"lower"`` or ``""`` (a descriptive quantity, labelled
    higher/lower). ``None`` when no seed has a finite value in both.
    """
    if better not in ("higher", "lower", ""):
        raise ValueError(f"better must be 'higher', 'lower' or '', got {better!r}")
    diffs = [float(a[s]) - float(b[s]) for s in a if s in b
             and a[s] is not None and b[s] is not None]
    mean, lo, hi, n = paired_interval(diffs, level)
    if n == 0:
        return None
    if n < 2:
        label = "one seed"
    elif lo <= 0.0 <= hi:
        label = "no clear difference"
    elif not better:
        label = "higher" if mean > 0 else "lower"
    else:
        label = "better" if (mean > 0) == (better == "higher") else "worse"
    return Paired(mean, lo, hi, n, label, level)
