"""Starting a run in its folder: the output check, the one-writer lock and ``--resume``.

``--resume`` continues a run only with the configuration it was trained with: a
field that changes what the run computes (objective and its arguments, model and
its sizes, data, batch size, seed, optimizer, learning rate and schedule) must
match the stored one, and ``epochs`` may only grow. :data:`MAY_CHANGE` lists the
fields that only change how the run is executed or observed. With no checkpoint
yet (a crash in the first epoch) ``--resume`` restarts the run from scratch in the
same store, under the same lock.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..store import LOCK_FILE, STORE_FILE, NullWriter, RunLock, RunWriter, StoreError, open_run
from .config import ConfigError, TrainConfig

__all__ = ["CHECKPOINT", "MAY_CHANGE", "EXTEND_ONLY", "config_diff", "code_changes",
           "make_folder", "check_out", "load_checkpoint", "open_writer", "restore"]

CHECKPOINT = "checkpoint.pt"  # as train.CHECKPOINT

# fields a resumed run may change: where and how it runs, and what is observed
MAY_CHANGE = ("out", "name", "resume", "progress", "device", "amp", "compile", "flush_every",
              "eval_batch_size", "probes", "probe_every", "snapshots")
EXTEND_ONLY = ("epochs",)  # may grow (the cosine schedule is stretched from the resumed step)
_STATE_KEYS = ("model", "opt", "sched", "epoch", "step")


def config_diff(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """``'key: stored -> wanted'`` for every field of ``wanted`` that may not change.

    A field missing from ``stored`` (a run from before the field existed) compares as
    its default.
    """
    defaults = dataclasses.asdict(TrainConfig())
    out = []
    for key, new in wanted.items():
        if key in MAY_CHANGE:
            continue
        old = stored.get(key, defaults.get(key))
        if key in EXTEND_ONLY:
            if isinstance(old, int) and isinstance(new, int) and new < old:
                out.append(f"{key}: {old} -> {new} (may only be extended)")
        elif old != new:
            out.append(f"{key}: {old!r} -> {new!r}")
    return out


def make_folder(path: str | Path, flag: str = "--out", keep: bool = True) -> Path:
    """Create the output folder ``path`` or say in one line why it cannot be used: a
    file, under a file, not writable, not creatable (``/proc/x``). ``keep=False`` only
    tries: the folders it had to create are removed again (nothing is left behind by a
    run refused later, e.g. for its data)."""
    if not str(path).strip():
        raise ConfigError(f"{flag} is empty: name a folder")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file, not a folder")
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{flag} {path} lies under {parent}, which is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: {parent} is not writable")
    made = []  # the folders created here, outermost first (a `..` in path is no folder of ours)
    try:
        for p in [*reversed(path.parents), path]:
            if not p.exists():
                p.mkdir()
                made.append(p)
    except OSError as e:
        raise ConfigError(f"{flag} {path}: cannot create it ({e.strerror})") from None
    if not keep:  # remove what was created, deepest first
        for p in reversed(made):
            p.rmdir()
    return path


def check_out(cfg: TrainConfig) -> None:
    """Before any data is loaded: the run folder can be written, holds no run unless
    ``--resume``, and a resumed run's stored configuration matches (checked again under
    the lock by :func:`open_writer`)."""
    out, ckpt = Path(cfg.out), Path(cfg.out) / CHECKPOINT
    if cfg.resume and not (out / STORE_FILE).exists() and not ckpt.exists():
        raise ConfigError(f"--resume: no {CHECKPOINT} in {out} to continue from "
                          "(and no run store)")
    make_folder(out, keep=False)  # the writer creates it, once the data has loaded
    has_store = (out / STORE_FILE).exists()
    if has_store or ckpt.exists():
        RunLock(out).release()  # a live writer: one line naming its pid, before any data
    if has_store and not cfg.resume:
        raise ConfigError(f"{out / STORE_FILE} already exists (use a new --out or --resume)")
    if not cfg.resume and out.is_dir():
        other = sorted(p.name for p in out.iterdir() if not _run_file(p.name))
        if other:  # e.g. --out / or a project folder: the run's files would land among them
            raise ConfigError(f"--out {out} is a folder holding other files ({other[0]!r}, "
                              f"{len(other)} in all), not a run: use a new or empty folder")
    if cfg.resume:
        _check_config(out, _config_of(_stored_meta(out)), cfg)
        if ckpt.exists() and not zipfile.is_zipfile(ckpt):  # cheap: the zip's last record
            raise StoreError(f"{ckpt} cannot be read (truncated or not a checkpoint); delete "
                             "it and --resume restarts the run from scratch")


def _run_file(name: str) -> bool:
    """A file a run writes into its folder (store, its journal, lock, checkpoint)."""
    return name.startswith((STORE_FILE, LOCK_FILE, CHECKPOINT))


def _check_config(out: Path, stored: dict[str, Any] | None, cfg: TrainConfig) -> None:
    diff = config_diff(stored, dataclasses.asdict(cfg)) if stored else []
    if diff:
        raise ConfigError(f"--resume: {out} was trained with another configuration "
                          f"({'; '.join(diff)}); resume with the stored values or use "
                          "another --out")


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The checkpoint at ``path``; a truncated or foreign file is one :class:`StoreError`."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means an unusable file
        first = (str(e).splitlines() or [""])[0][:120]
        raise StoreError(f"{path} cannot be read ({type(e).__name__}: {first}); delete it "
                         "and --resume restarts the run from scratch") from None
    missing = [k for k in _STATE_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise StoreError(f"{path} is not a geomviz checkpoint (no {', '.join(missing)})")
    return state


def _stored_meta(out: Path) -> dict[str, Any]:
    if not (out / STORE_FILE).exists():
        return {}
    try:
        with open_run(out) as run:
            return run.meta
    except StoreError as e:
        raise StoreError(f"--resume: {e}; move the folder away to train it again") from None


def _config_of(meta: dict[str, Any]) -> dict[str, Any] | None:
    config = meta.get("config")
    return config if isinstance(config, dict) else None


def code_changes(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """How the code resuming a run differs from the code that trained it so far (the
    commit, and the version of each recorded library); empty where nothing is known."""
    out = []
    old, new = stored.get("git") or {}, current.get("git") or {}
    if old.get("commit") and new.get("commit") and old["commit"] != new["commit"]:
        out.append(f"commit {old['commit'][:10]} -> {new['commit'][:10]}")
    old_v, new_v = stored.get("versions") or {}, current.get("versions") or {}
    out += [f"{lib} {old_v[lib]} -> {new_v[lib]}" for lib in new_v
            if lib in old_v and old_v[lib] != new_v[lib]]
    return out


def _resume_record(stored: dict[str, Any], meta: dict[str, Any], step: int, out: Path
                   ) -> dict[str, Any]:
    """Metadata for a run resumed at ``step``: the code it was trained with until then is
    kept in ``resumes`` (``git`` and ``versions`` become this process's), and a change of
    code is one warning line, since the result may then differ from an uninterrupted run."""
    changes = code_changes(stored, meta)
    if changes:
        print(f"geomviz: warning: resuming {out} at step {step} with other code than it was "
              f"trained with ({'; '.join(changes)}): the result may differ from an "
              "uninterrupted run", file=sys.stderr, flush=True)
    before = {"step": step, "git": stored.get("git"), "versions": stored.get("versions")}
    resumes = stored.get("resumes")
    return {"resumes": [*(resumes if isinstance(resumes, list) else []), before]}


def open_writer(cfg: TrainConfig, meta: dict[str, Any], ckpt_path: Path,
                device: torch.device | str, rank: int, model: torch.nn.Module, opt, sched
                ) -> tuple[RunWriter | NullWriter, int, int, dict | None]:
    """The run's writer (rank 0; the others get a :class:`NullWriter`), the
    ``(start_epoch, step)`` to continue from, the checkpoint loaded into ``model``,
    ``opt`` and ``sched`` (``(0, 0)``: from scratch), and the probes' saved state (None when
    starting from scratch or from a checkpoint without it).

    On rank 0 the lock is taken first, so the config check, the checkpoint and the
    store's rows are read and rewritten by one process only.
    """
    out = Path(cfg.out)
    if rank != 0:
        state = load_checkpoint(ckpt_path, device) if cfg.resume and ckpt_path.exists() \
            else None
        return NullWriter(), *restore(state, model, opt, sched), _probe_state(state)
    if not cfg.resume:
        return RunWriter(out, meta), 0, 0, None
    if not ckpt_path.exists() and not (out / STORE_FILE).exists():
        raise ConfigError(f"--resume: no {ckpt_path.name} in {out} to continue from "
                          "(and no run store)")
    out.mkdir(parents=True, exist_ok=True)
    lock = RunLock(out)
    try:
        stored_meta = _stored_meta(out)
        stored = _config_of(stored_meta)
        state = load_checkpoint(ckpt_path, device) if ckpt_path.exists() else None
        if stored is None and state is not None:
            stored = state.get("config")
        _check_config(out, stored, cfg)
        saved = state.get("config") if state is not None else None
        diff = config_diff(saved, dataclasses.asdict(cfg)) if isinstance(saved, dict) else []
        if diff:  # e.g. a checkpoint copied from another run beside this run's store
            raise ConfigError(f"--resume: {ckpt_path} was saved by another run "
                              f"({'; '.join(diff)}); delete it and --resume restarts the "
                              "run from scratch")
        start_epoch, step = restore(state, model, opt, sched)
        if state is not None:
            meta = {**meta, **_resume_record(stored_meta, meta, step, out)}
        writer = RunWriter(out, meta, resume=True, restart=state is None, lock=lock,
                           drop_after_step=None if state is None else step)
    except BaseException:
        lock.release()
        raise
    return writer, start_epoch, step, _probe_state(state)


def _probe_state(state: dict[str, Any] | None) -> dict | None:
    return None if state is None else state.get("probes")


def restore(state: dict[str, Any] | None, model: torch.nn.Module, opt, sched) -> tuple[int, int]:
    """Load ``state`` into the model, optimiser and schedule; ``(start_epoch, step)``."""
    if state is None:
        return 0, 0
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise StoreError(f"the checkpoint does not fit this model "
                         f"({(str(e).splitlines() or [''])[0][:160]})") from None
    return int(state["epoch"]) + 1, int(state["step"])
