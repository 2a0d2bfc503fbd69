"""One progress display for a grid on many workers: runs done of the total, each live
run's progress (read from its store, as the dashboard reads it) and an ETA.

The bar counts runs, a live run counting as the fraction of its steps done, so tqdm's
rate and ETA are in runs. One line per run that ends (its status and time) is printed
whether or not the bar is shown.
"""

from __future__ import annotations

import sys
import time

from .job import Job, Outcome

__all__ = ["GridProgress"]


def _fraction(job: Job) -> float:
    """Steps done / total of a live run's store (0 when it has none yet)."""
    from ..store import StoreError, open_run

    try:
        with open_run(job.out) as run:
            total = run.meta.get("total_steps") or 0
            steps = run.steps()
        return min(1.0, float(steps[-1]) / total) if total and len(steps) else 0.0
    except (StoreError, OSError, TypeError, ValueError):
        return 0.0


class GridProgress:
    def __init__(self, jobs: list[Job], enabled: bool, every: float = 1.0) -> None:
        self.jobs, self.every = jobs, every
        self.live: dict[int, float] = {}
        self.finished = 0
        self._last = 0.0
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=len(jobs), desc="grid", unit="run", dynamic_ncols=True,
                            bar_format="{desc}: {n:.1f}/{total} runs |{bar}| "
                                       "[{elapsed}<{remaining}] {postfix}")

    def _print(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def start(self, j: int) -> None:
        self.live[j] = 0.0
        job = self.jobs[j]
        self._print(f"== {job.label}: started")

    def done(self, j: int, out: Outcome) -> None:
        self.live.pop(j, None)
        self.finished += 1
        why = f": {out.message}" if out.message and out.status != "finished" else ""
        self._print(f"   {self.jobs[j].label}: {out.status} in {out.seconds:.0f} s{why}")
        self._refresh()

    def tick(self) -> None:
        if self.bar is None or time.monotonic() - self._last < self.every:
            return
        self._last = time.monotonic()
        for j in self.live:
            self.live[j] = _fraction(self.jobs[j])
        self._refresh()

    def _refresh(self) -> None:
        if self.bar is None:
            return
        self.bar.n = self.finished + sum(self.live.values())
        self.bar.set_postfix_str(", ".join(f"{self.jobs[j].label} {f:.0%}"
                                           for j, f in self.live.items())[:120],
                                 refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
