"""``--executor ray``: each run of a grid is one Ray task, on a local Ray or a cluster.

A task asks for ``num_gpus=1`` where the cluster has GPUs (Ray sets the task's
``CUDA_VISIBLE_DEVICES``, so its run trains on ``cuda:0``, its own GPU), else for
``num_cpus`` = the cluster's CPUs shared over ``--workers`` (default: one per run, as
many runs at once as there are CPUs), which is also its torch thread count. At most
``--workers`` tasks are in flight, so the display shows which runs are live. The grid's
manifest, the reuse of finished runs, the locks and the report are the parent's, as with
local workers. A task whose worker dies costs only its run (Ray does not retry it: the
next call resumes it); Ctrl-C cancels the live tasks, whose runs close as ``crashed``.
On a cluster, geomviz must be installed on every node, and the runs folder shared, or
given ``--local-dir`` (:mod:`.staging`).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable

from ..training.config import ConfigError
from .job import Job, Outcome, run_job

__all__ = ["import_ray", "run_ray"]

_CACHE: OrderedDict = OrderedDict()  # per Ray worker process: its last loaded bundles


def import_ray():
    """The ``ray`` module, or one line naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ConfigError('--executor ray needs Ray: pip install "geomviz[ray]"') from None
    return ray


def _task(job: Job, threads: int, local_dir: str | None) -> Outcome:
    return run_job(job, None, threads, _CACHE, local_dir)


def _connect(ray, address: str | None) -> bool:
    """Start a local Ray or join ``address``; True when this call started it."""
    if ray.is_initialized():
        return False
    if address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private, local instance
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise ConfigError(f"--ray-address {address}: cannot connect to Ray "
                          f"({(str(e).splitlines() or [''])[0][:160]})") from None
    return True


def run_ray(jobs: list[Job], ex, on_start: Callable[[int], None],
            on_done: Callable[[int, Outcome], None], on_tick: Callable[[], None],
            device: str = "auto") -> None:
    """Run ``jobs`` as Ray tasks (see the module); the callbacks as in
    :func:`.local.run_local`."""
    ray = import_ray()
    from .faults import mark_crashed

    started = _connect(ray, ex.ray_address)
    try:
        res = ray.cluster_resources()
        cpus, gpus = int(res.get("CPU", 1)), int(res.get("GPU", 0))
        on_gpu = gpus > 0 and (device in ("auto", "cuda") or device.startswith("cuda"))
        workers = ex.workers or (gpus if on_gpu else cpus)
        threads = 1 if on_gpu else max(1, cpus // workers)
        remote = ray.remote(_task).options(num_cpus=threads, num_gpus=1 if on_gpu else 0,
                                           max_retries=0)
        todo = list(range(len(jobs)))
        live: dict = {}  # ref -> job
        try:
            while todo or live:
                while todo and len(live) < workers:
                    j = todo.pop(0)
                    live[remote.remote(jobs[j], threads, ex.local_dir)] = j
                    on_start(j)
                ready, _ = ray.wait(list(live), num_returns=1, timeout=0.5)
                for ref in ready:
                    j = live.pop(ref)
                    try:
                        out = ray.get(ref)
                    except ray.exceptions.RayError as e:  # its worker died
                        why = (f"Ray task failed ({type(e).__name__}); the next call "
                               "resumes this run")
                        mark_crashed(jobs[j].out, why)
                        out = Outcome("failed", why)
                    on_done(j, out)
                on_tick()
        except KeyboardInterrupt:
            for ref in live:  # KeyboardInterrupt in each task: its run closes as crashed
                ray.cancel(ref)
            ray.wait(list(live), num_returns=len(live), timeout=60)
            raise
    finally:
        if started:
            ray.shutdown()
