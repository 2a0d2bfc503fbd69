"""Where a grid's runs execute: in this process (the default), on ``--workers N`` local
processes (:mod:`.local`), or as Ray tasks (:mod:`.ray_exec`), optionally written on the
worker's own disk and published into the runs folder (:mod:`.staging`).

Every executor takes the same :class:`~.job.Job` list and reports one
:class:`~.job.Outcome` per job; what a grid keeps, reuses and reports does not depend
on where its runs trained.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..training.config import ConfigError
from .job import Job, Outcome

__all__ = ["Execution", "Job", "Outcome", "execute", "EXECUTORS"]

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Execution:
    """How to run a grid: ``workers`` processes (1: serially in this process, as always),
    ``executor`` local or ray (``ray_address``: a running cluster, else a local Ray), and
    ``local_dir``: write each run on the worker's disk, published into the runs folder."""

    workers: int | None = None  # None: 1 locally; as many as fit on Ray
    executor: str = "local"
    ray_address: str | None = None
    local_dir: str | None = None

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ConfigError(f"--executor {self.executor!r}: choose local or ray")
        if self.workers is not None and (not isinstance(self.workers, int)
                                         or self.workers < 1):
            raise ConfigError(f"--workers must be an integer >= 1, got {self.workers!r}")
        if self.ray_address is not None and self.executor != "ray":
            raise ConfigError("--ray-address needs --executor ray")
        if self.local_dir is not None and not str(self.local_dir).strip():
            raise ConfigError("--local-dir is empty: name a folder on the worker's disk")

    @property
    def serial(self) -> bool:
        """Today's path: every run in this process, one after another."""
        return self.executor == "local" and (self.workers or 1) == 1 and \
            self.local_dir is None

    def check(self) -> None:
        """What can fail before any work: Ray installed (one line naming the extra)."""
        if self.executor == "ray":
            from .ray_exec import import_ray

            import_ray()


def execute(jobs: list[Job], ex: Execution, device: str = "auto",
            progress: bool = True) -> dict[int, Outcome]:
    """Run ``jobs`` as ``ex`` says; ``{job index: outcome}`` for every job that ended.
    Ctrl-C stops every worker and re-raises (their runs resume on the next call)."""
    from .progress import GridProgress

    outcomes: dict[int, Outcome] = {}
    display = GridProgress(jobs, progress)

    def done(j: int, out: Outcome) -> None:
        outcomes[j] = out
        display.done(j, out)

    try:
        if ex.executor == "ray":
            from .ray_exec import run_ray

            run_ray(jobs, ex, display.start, done, display.tick, device)
        else:
            from .local import run_local

            run_local(jobs, ex.workers or 1, display.start, done, display.tick, device,
                      ex.local_dir)
    finally:
        display.close()
    return outcomes
