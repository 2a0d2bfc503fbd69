"""Which snapshot of each run the compare page shows at a slider step: by step when the
runs share their snapshot steps, else by fraction of training (a 140-step run beside a
500-step one: the slider no longer stops at 140, and each side shows its own step)."""

from __future__ import annotations

import numpy as np

__all__ = ["align_steps"]


def align_steps(steps: list[np.ndarray], totals: list[float | None]
                ) -> tuple[list[int], list[list[int]], str]:
    """``(slider steps, per run the index of its snapshot shown at each, mapping)``.

    ``steps[r]`` are run r's snapshot steps, ``totals[r]`` its planned training steps (None:
    its last snapshot step). Runs with one set of steps map ``"step"``: the slider holds
    those steps. Otherwise ``"fraction"``: the slider holds the steps of the run with the
    most snapshots (the longer on a tie), and every run shows its snapshot nearest to the
    same fraction of its own training (the earlier on a tie); a run that stopped early
    (planned 500, ended at 140) stays on its last snapshot past its end."""
    steps = [np.asarray(s, dtype=np.int64) for s in steps]
    if any(len(s) == 0 for s in steps):
        raise ValueError("a run has no snapshots")
    if all(np.array_equal(steps[0], s) for s in steps[1:]):
        return steps[0].tolist(), [list(range(len(steps[0])))] * len(steps), "step"
    ref = max(range(len(steps)), key=lambda r: (len(steps[r]), int(steps[r][-1])))
    spans = [float(t) if t and t > 0 else float(max(int(s[-1]), 1))
             for s, t in zip(steps, totals, strict=True)]
    fraction = steps[ref] / spans[ref]  # [S]
    pos = []
    for s, span in zip(steps, spans, strict=True):
        gap = np.abs(s[None, :] / span - fraction[:, None])  # [S, T_r]
        pos.append(gap.argmin(1).tolist())  # argmin: the first (earlier) on a tie
    return steps[ref].tolist(), pos, "fraction"
