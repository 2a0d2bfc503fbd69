"""What a run records about how it was made: code version, library versions, hardware."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

__all__ = ["provenance", "git_commit"]

LIBRARIES = ("torch", "numpy", "scipy", "mnist1d", "triton")


def git_commit(path: Path | None = None) -> dict | None:
    """Commit and dirty flag of the checkout holding geomviz, or None outside one."""
    here = path or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": sha, "dirty": bool(dirty.strip())}


@functools.cache
def _process_git() -> dict | None:
    """The checkout's commit when this process first asked (its first run's start): a
    process that trains many runs (study, sweep) keeps the code it loaded, so commits made
    while it runs must not be credited to its later runs."""
    return git_commit()


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def provenance(device: torch.device, world_size: int = 1) -> dict:
    hw = {"device": str(device), "cpu_count": os.cpu_count(), "platform": platform.platform(),
          "world_size": world_size}
    if device.type == "cuda":
        hw["gpu"] = torch.cuda.get_device_name(device)
    return {
        "versions": {"geomviz": _version("geomviz"), "python": sys.version.split()[0],
                     **{lib: _version(lib) for lib in LIBRARIES}},
        "git": _process_git(),
        "hardware": hw,
    }
