"""User objectives: ``--objective package.module:name`` or an entry point, resolved to a
registered objective.

A plugin registers its objective as geomviz registers its own::

    # mypkg/losses.py
    from geomviz.objectives import Objective, LinearHead, register_objective

    @register_objective("my_loss", "linear", "formula", "what it is")
    def my_loss(in_features, num_classes, gamma=2.0, reduction="mean", ignore_index=-100):
        return Objective("my_loss", LinearHead(in_features, num_classes), MyLoss(...))

and is then named ``mypkg.losses:my_loss`` (the module and the decorated factory), or,
installed with an entry point in the group ``geomviz.objectives``
(``[project.entry-points."geomviz.objectives"] my_loss = "mypkg.losses:my_loss"``), just
``my_loss``. Either way reports show the *registered* name, ``my_loss``.

Every bad spec is one ``ValueError`` line, raised before any work: the module is missing,
the attribute is missing, it is not a registered objective, it reuses a built-in's name,
or the module raises on import (the module and the exception's first line are named).
"""

from __future__ import annotations

import importlib
import re
from importlib import metadata

from . import registry
from .registry import ObjectiveInfo, ObjectiveNameClash, list_objectives

__all__ = ["ENTRY_POINT_GROUP", "available_objectives", "load_objective"]

ENTRY_POINT_GROUP = "geomviz.objectives"

_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _entry_points() -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def available_objectives() -> list[str]:
    """The registered names and the entry-point names (not imported), sorted."""
    return sorted(set(list_objectives()) | {ep.name for ep in _entry_points()})


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def _resolve(target: str, spec: str) -> ObjectiveInfo:
    """``target`` = ``package.module:attr`` -> the registered objective it names."""
    module, sep, attr = target.partition(":")
    if not sep or not _DOTTED.fullmatch(module) or not _DOTTED.fullmatch(attr):
        raise ValueError(f"objective {spec!r}: expected package.module:name (a dotted module, "
                         f"one ':', then the registered factory)")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and (module == e.name or module.startswith(e.name + ".")):
            raise ValueError(f"objective {spec!r}: no module named {e.name!r} (is the "
                             f"package installed, or on PYTHONPATH?)") from None
        raise ValueError(f"objective {spec!r}: importing {module!r} raised "
                         f"{_first_line(e)}") from None
    except ObjectiveNameClash as e:
        raise ValueError(f"objective {spec!r}: {module!r} clashes with a built-in: "
                         f"{_first_line(e).split(': ', 1)[1]}") from None
    except (Exception, SystemExit) as e:  # noqa: BLE001 - any failure is the plugin's
        raise ValueError(f"objective {spec!r}: importing {module!r} raised "
                         f"{_first_line(e)}") from None
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"objective {spec!r}: module {module!r} has no attribute "
                             f"{attr!r}")
        obj = getattr(obj, part)
    for info in registry._REGISTRY.values():
        if info.factory is obj:
            return info
    raise ValueError(f"objective {spec!r}: {module}.{attr} is not a registered objective (got "
                     f"{type(obj).__name__}; decorate its factory with @register_objective)")


def load_objective(spec: str) -> ObjectiveInfo:
    """Resolve one ``--objective`` value to its :class:`ObjectiveInfo` (``.name`` is what
    runs and reports are named by).

    ``spec``: a registered name (built-in, or a plugin already imported), a
    ``package.module:name``, or the name of an entry point in ``geomviz.objectives``.
    Raises ``ValueError`` (one line) for anything else.
    """
    if not isinstance(spec, str) or not spec or spec != spec.strip():
        raise ValueError(f"objective spec must be a non-empty name, got {spec!r}")
    if ":" in spec:
        return _resolve(spec, spec)
    if spec in registry._REGISTRY:
        return registry._REGISTRY[spec]
    eps = [ep for ep in _entry_points() if ep.name == spec]
    if len(eps) > 1:
        raise ValueError(f"objective {spec!r}: {len(eps)} entry points in "
                         f"{ENTRY_POINT_GROUP!r} have this name: "
                         f"{', '.join(ep.value for ep in eps)}")
    if eps:
        return _resolve(eps[0].value, spec)
    raise ValueError(f"unknown objective {spec!r}; choose one of: "
                     f"{', '.join(available_objectives())}, or give package.module:name")
