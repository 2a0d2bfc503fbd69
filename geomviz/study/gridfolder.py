"""The output folder of a grid (``geomviz study`` and ``geomviz sweep``): one writer, and
only files the grid owns.

- **One grid per folder at a time.** :class:`GridLock` is an OS lock (``flock``) on
  ``<out>/grid.lock``, held for the whole command: a second grid into the same ``--out``
  is refused in one line, before any work (two different sweeps would otherwise both
  rewrite ``sweep.json``, and the last writer would win). The OS drops it with the
  process, ``kill -9`` included.
- **Nothing of the user's is overwritten.** The grid writes ``runs/``, ``report.md`` and
  ``figures/``; it records what it wrote outside ``runs/`` in ``<out>/.geomviz-files.json``.
  A folder holding any other file (a ``report.md`` or ``figures/x.png`` no grid wrote) is
  refused, as ``geomviz train`` refuses a folder that is not a run. A folder made before
  the record existed (it holds ``runs/`` but no record) is taken as a grid's.
- **A refused command leaves no folder behind.** :func:`grid_folder` removes the folders
  (and the lock file) it created when the command fails before writing anything else,
  e.g. for data that cannot be loaded.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from ..store import PidLock
from ..training.config import ConfigError
from ..training.resume import make_folder

__all__ = ["GRID_LOCK", "OWNED", "GridLock", "check_grid_folder", "record_files",
           "grid_folder"]

GRID_LOCK = "grid.lock"
OWNED = ".geomviz-files.json"
_ALWAYS = {GRID_LOCK, OWNED, "runs"}  # the grid's own, whatever the record says


class GridLock(PidLock):
    """``flock`` on ``<out>/grid.lock`` (holding the pid): one grid command per folder."""

    FILE = GRID_LOCK

    def held(self, holder: str) -> Exception:
        return ConfigError(f"--out {self.path.parent} is being written by another geomviz "
                           f"grid (pid {holder}); wait for it to end or use another --out")


def _recorded(out: Path) -> set[str] | None:
    path = out / OWNED
    if not path.exists():
        return None
    try:
        files = json.loads(path.read_text())["files"]
        return {str(f) for f in files}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path} cannot be read ({str(e).splitlines()[0][:80]}); move it "
                          "away or use another --out") from None


def check_grid_folder(out: str | Path) -> None:
    """Refuse (one line) an ``--out`` holding a file the grid did not write: the report,
    figures and manifest would land among, or over, the user's own files."""
    out = Path(out)
    if not out.is_dir():
        return
    owned = _recorded(out)
    legacy = owned is None and (out / "runs").is_dir()  # a grid's, from before the record
    foreign = []
    for p in sorted(out.iterdir()):
        if p.name in _ALWAYS:
            continue
        if p.name == "figures" and p.is_dir() and not p.is_symlink():
            files = sorted(str(f.relative_to(out)) for f in p.rglob("*") if not f.is_dir())
            foreign += [f for f in files if not legacy and f not in (owned or set())]
        elif p.name == "report.md" and (legacy or p.name in (owned or set())):
            continue
        else:
            foreign.append(p.name)
    if foreign:
        raise ConfigError(f"--out {out} holds files no geomviz grid wrote ({foreign[0]!r}, "
                          f"{len(foreign)} in all): use a new or empty folder, or move them "
                          "away")


def record_files(out: str | Path) -> None:
    """Record ``report.md`` and every file under ``figures/`` as the grid's (atomically):
    they were checked to be the grid's before it ran, or written by it."""
    out = Path(out)
    if not (out / "report.md").is_file() and not (out / "figures").is_dir():
        return  # nothing written (a refused or interrupted grid): nothing to record
    files = sorted({*(_recorded(out) or set()),
                    *(str(f.relative_to(out)) for f in (out / "figures").rglob("*")
                      if not f.is_dir()),
                    *(["report.md"] if (out / "report.md").is_file() else [])})
    tmp = out / (OWNED + ".tmp")
    tmp.write_text(json.dumps({"files": files}, indent=1))
    tmp.replace(out / OWNED)


@contextlib.contextmanager
def grid_folder(out: str | Path) -> Iterator[Path]:
    """Create ``out`` (or say in one line why not), take its :class:`GridLock` and check it
    holds only the grid's files; on an error, remove what this call created if nothing
    else was written into it (a data error found at load time leaves no empty folder)."""
    make_folder(out, keep=False)  # one line if it cannot be made (or is ''); nothing left
    out = Path(out)
    made = [p for p in [*reversed(out.parents), out] if not p.exists()]
    make_folder(out)
    had_lock = (out / GRID_LOCK).exists()
    lock = None
    try:
        lock = GridLock(out)
        check_grid_folder(out)
        yield out
    except BaseException:
        if lock is not None:
            lock.release()
            lock = None
            if not had_lock and not (out / "runs").exists():  # refused before any work
                with contextlib.suppress(OSError):
                    (out / GRID_LOCK).unlink()
        for p in reversed(made):
            _remove_empty(p)
        raise
    finally:
        if lock is not None:
            lock.release()


def _remove_empty(folder: Path) -> None:
    """Remove ``folder`` if it holds nothing but empty folders."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for p in folder.iterdir():
        if p.is_dir() and not p.is_symlink():
            _remove_empty(p)
    with contextlib.suppress(OSError):
        folder.rmdir()
