"""One run of a grid as a job a worker executes: what it needs, what it reports back.

A :class:`Job` is plain data (a config dict and a resume flag), so it pickles to a local
worker process and to a Ray task alike. :func:`run_job` trains it and returns an
:class:`Outcome`: ``finished``, ``diverged`` (a result, kept) or ``failed`` with the
exception's first line (the store, if one was made, is closed as ``crashed`` by
:func:`~geomviz.training.train.train`). A ``KeyboardInterrupt`` is not an outcome: it
propagates, the store reads ``crashed`` and the next call resumes the run.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Job", "Outcome", "run_job", "data_key", "limit_blas"]

# the fields that do not change the data a run loads (a worker reuses a loaded bundle
# across them); everything else, seed included, is part of the key
_NOT_DATA = ("objective", "objective_kw", "lr", "qk_layernorm", "out", "name", "resume",
             "progress", "device", "epochs", "flush_every", "eval_batch_size", "weight_decay",
             "warmup_epochs", "optimizer", "momentum", "grad_clip", "probes", "probe_every",
             "snapshots", "amp", "compile", "fused")


@dataclass(frozen=True)
class Job:
    """One run: its full config (``TrainConfig`` as a dict), whether to resume it, and the
    label printed for it."""

    config: dict
    resume: bool
    label: str

    @property
    def out(self) -> Path:
        return Path(self.config["out"])


@dataclass
class Outcome:
    status: str  # finished, diverged or failed
    message: str = ""
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def data_key(config: dict) -> str:
    """What the data of a run depends on: runs with one key share one loaded bundle."""
    import json

    return json.dumps({k: v for k, v in sorted(config.items()) if k not in _NOT_DATA},
                      default=str)


def limit_blas(threads: int) -> None:
    """Cap numpy/scipy's BLAS (and any OpenMP pool) at ``threads``, as torch is capped.

    OpenBLAS starts one thread per core. Two workers on two cores then run four BLAS
    threads that spin-wait on each other: a 128×128 ``pinv`` in the evaluation's
    neural-collapse metric took 0.4–0.8 s in a worker against 1 ms at one thread, and
    made a worker's run 3× slower than a serial one (issue 23)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)  # process-wide, for the worker's lifetime


def _one_line(e: BaseException) -> str:
    text = (str(e).splitlines() or [""])[0].strip()[:200]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def run_job(job: Job, device: str | None = None, threads: int | None = None,
            cache: OrderedDict | None = None, local_dir: str | None = None) -> Outcome:
    """Train ``job`` in this process: ``threads`` torch threads, on ``device`` (else the
    config's), reusing bundles in ``cache`` (the last two loaded). With ``local_dir`` the
    run is written there (a worker's own disk) and published into its folder
    (:mod:`.staging`) at each checkpoint and when it ends."""
    import torch

    from ..training.config import TrainConfig
    from ..training.train import Diverged, load_bundle, train

    if threads:
        torch.set_num_threads(threads)
        limit_blas(threads)
    values = {**job.config, "resume": job.resume, "progress": False}
    if device:
        values["device"] = device
    cfg = TrainConfig(**values)
    t0 = time.perf_counter()
    stage = None
    try:
        if local_dir is not None:
            from .staging import Stage

            stage = Stage(Path(local_dir), Path(cfg.out))
            cfg = dataclasses.replace(cfg, out=str(stage.open()), resume=stage.resume)
        key = data_key(job.config)
        cache = OrderedDict() if cache is None else cache
        if key not in cache:
            cache[key] = load_bundle(cfg)
            while len(cache) > 2:
                cache.popitem(last=False)
        cache.move_to_end(key)
        train(cfg, cache[key])
        out = Outcome("finished")
    except Diverged as e:
        out = Outcome("diverged", _one_line(e))
    except Exception as e:  # noqa: BLE001 - a run that raises is counted; the grid goes on
        out = Outcome("failed", _one_line(e))
    finally:
        if stage is not None:
            stage.close()  # publish what there is, also after an interrupt
    out.seconds = time.perf_counter() - t0
    return out
