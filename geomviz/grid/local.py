"""``--workers N``: a grid's runs in N worker processes on this machine.

Each worker is a ``spawn`` process that runs one job at a time, handed to it by the
parent, which therefore always knows which run a worker holds:

- threads: on CPU each worker gets ``cores // N`` torch threads; on a CUDA machine
  worker ``i`` trains on ``cuda:(i mod devices)`` (with ``--device auto`` or ``cuda``);
- a worker that dies (``kill -9``, out of memory) costs only its run: that store is
  marked ``crashed`` at once (its lock died with the worker), the run is counted as
  failed, a new worker takes its place and the grid goes on; the next call resumes it;
- Ctrl-C (``SIGINT`` to the parent; workers ignore the terminal's) sends each worker
  ``SIGTERM``, which interrupts its run like Ctrl-C interrupts a serial one: the store
  is closed as ``crashed`` and the next call resumes it from its checkpoint.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from .job import Job, Outcome, run_job

__all__ = ["run_local", "worker_devices"]

_STOP = signal.SIGTERM


def worker_devices(device: str, workers: int) -> list[str | None]:
    """The device of each worker: ``cuda:i`` round-robin over the visible GPUs when the
    config asks for ``auto``/``cuda`` and CUDA exists, else the config's own (None)."""
    import torch

    if device in ("auto", "cuda") and torch.cuda.is_available():
        n = torch.cuda.device_count()
        return [f"cuda:{i % n}" for i in range(workers)]
    return [None] * workers


def cpu_threads(workers: int) -> int:
    """Torch threads per worker: this process's cores shared evenly, at least one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // workers)


def _interrupt(*_):
    signal.signal(_STOP, signal.SIG_IGN)  # once: the run's own cleanup is not interrupted
    raise KeyboardInterrupt


def _worker(index: int, tasks, results, device: str | None, threads: int,
            local_dir: str | None) -> None:
    """A worker's loop: take a job, train it, report; ``None`` ends it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it sends _STOP
    signal.signal(_STOP, _interrupt)
    cache: OrderedDict = OrderedDict()
    parent = mp.parent_process()
    try:
        while True:
            try:
                item = tasks.get(timeout=1.0)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    return  # an orphan: the grid is gone
                continue
            if item is None:
                return
            job_id, job = item
            results.put(("done", index, job_id,
                         run_job(job, device, threads, cache, local_dir)))
    except KeyboardInterrupt:
        results.put(("interrupted", index, None, None))


class _Pool:
    def __init__(self, workers: int, devices: list[str | None], threads: int,
                 local_dir: str | None) -> None:
        self.ctx = mp.get_context("spawn")
        self.results = self.ctx.Queue()
        self.devices, self.threads, self.local_dir = devices, threads, local_dir
        self.procs: list = [None] * workers
        self.tasks: list = [None] * workers

    def start(self, i: int) -> None:
        self.tasks[i] = self.ctx.Queue()
        p = self.ctx.Process(target=_worker, name=f"geomviz-worker-{i}", daemon=True,
                             args=(i, self.tasks[i], self.results, self.devices[i],
                                   self.threads, self.local_dir))
        p.start()
        self.procs[i] = p

    def stop(self, grace: float = 60.0) -> None:
        """Interrupt every live worker, wait for its run to close its store, then kill."""
        live = [p for p in self.procs if p is not None and p.is_alive()]
        for p in live:
            os.kill(p.pid, _STOP)
        deadline = time.monotonic() + grace
        for p in live:
            p.join(max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(5)

    def close(self) -> None:
        for i, p in enumerate(self.procs):
            if p is not None and p.is_alive():
                self.tasks[i].put(None)
        for p in self.procs:
            if p is not None:
                p.join(10)
                if p.is_alive():
                    p.kill()


def run_local(jobs: list[Job], workers: int, on_start: Callable[[int], None],
              on_done: Callable[[int, Outcome], None], on_tick: Callable[[], None],
              device: str = "auto", local_dir: str | None = None) -> None:
    """Run ``jobs`` on ``workers`` processes; ``on_start(i)``/``on_done(i, outcome)`` are
    called in this process as job ``i`` starts and ends, ``on_tick()`` about every half
    second. Ctrl-C stops every worker (their runs resume on the next call) and re-raises."""
    from .faults import mark_crashed

    n = min(workers, len(jobs))
    pool = _Pool(n, worker_devices(device, n), cpu_threads(n), local_dir)
    pending = deque(range(len(jobs)))
    holding: dict[int, int] = {}  # worker -> job

    def assign(i: int) -> None:
        if pending:
            j = pending.popleft()
            holding[i] = j
            pool.tasks[i].put((j, jobs[j]))
            on_start(j)
        else:
            pool.tasks[i].put(None)

    try:
        for i in range(n):
            pool.start(i)
            assign(i)
        while holding:
            for kind, i, j, out in _messages(pool.results, wait=0.5):
                if kind == "done" and holding.get(i) == j:
                    del holding[i]
                    on_done(j, out)
                    assign(i)
                elif kind == "interrupted":  # a worker stopped by someone else's SIGTERM
                    raise KeyboardInterrupt
            for i, p in enumerate(pool.procs):  # a dead worker costs only its own run
                if p is None or p.is_alive() or i not in holding:
                    continue
                j = holding.pop(i)
                why = _death(p.exitcode)
                mark_crashed(jobs[j].out, why)
                on_done(j, Outcome("failed", why))
                if pending:
                    pool.start(i)
                    assign(i)
            on_tick()
    except KeyboardInterrupt:
        pool.stop()
        raise
    finally:
        pool.close()


def _messages(results, wait: float) -> list[tuple]:
    """Every message waiting (the first waited for up to ``wait`` s)."""
    out = []
    try:
        out.append(results.get(timeout=wait))
        while True:
            out.append(results.get_nowait())
    except queue.Empty:
        return out


def _death(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker process killed by {name}; the next call resumes this run"
    return f"worker process exited with status {code}; the next call resumes this run"

