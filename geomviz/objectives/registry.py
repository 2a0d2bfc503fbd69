"""Objectives = a head + a loss, behind a registry and ``create_objective(name, ...)``.

Changing the objective of a run is changing one string::

    obj = create_objective("tfsd", in_features=256, num_classes=10, scale=1.0)
    loss = obj(features, target)      # features [*, D], target [*]
    logits = obj.logits(features)     # [*, C]

``list_objectives()`` gives the registered names; ``objective_info(name)``
their head, formula and hyperparameters. Users register their own objectives with the same
decorator; :mod:`.plugins` loads them from ``package.module:name`` or an entry point.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from . import losses as L
from .fused import BACKENDS, check_chunk_size, fused_tfsd_loss
from .fused_ce import fused_ce_loss
from .heads import EuclideanHead, Head, LinearHead

__all__ = [
    "FusedCEObjective",
    "FusedTFSDObjective",
    "Objective",
    "ObjectiveInfo",
    "ObjectiveNameClash",
    "create_objective",
    "is_builtin",
    "list_objectives",
    "objective_info",
    "register_objective",
]


class Objective(nn.Module):
    """A head and the loss applied to its logits.

    ``forward(features[*, D], target[*]) -> loss`` (reduced per the loss's
    ``reduction``); ``logits(features) -> [*, C]`` for evaluation and probes.
    """

    def __init__(self, name: str, head: Head, loss: nn.Module | None) -> None:
        super().__init__()
        self.name = name
        self.head = head
        self.loss = loss

    @property
    def metric(self) -> str:
        """The head's geometry, "dot" or "euclidean": what the probes and OOD scores use."""
        return self.head.metric

    def logits(self, features: Tensor) -> Tensor:
        """``features[*, D] -> logits[*, C]``, the head alone (evaluation and probes)."""
        return self.head(features)

    def forward(self, features: Tensor, target: Tensor) -> Tensor:
        """The training loss of ``features[*, D]`` against ``target[*]`` (-100 ignored)."""
        return self.loss(self.head(features), target)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


class _FusedObjective(Objective):
    """Computes the loss straight from the features and the head's class vectors."""

    def __init__(self, name: str, head: Head, chunk_size: int | None, backend: str,
                 reduction: str, ignore_index: int, validate: bool) -> None:
        super().__init__(name, head, None)
        self.chunk_size = check_chunk_size(chunk_size)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self.reduction = L.check_reduction(reduction)
        self.ignore_index = int(ignore_index)
        self.validate = bool(validate)

    def _kw(self) -> dict:
        return dict(chunk_size=self.chunk_size, reduction=self.reduction,
                    ignore_index=self.ignore_index, validate=self.validate, backend=self.backend)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, fused=True, chunk_size={self.chunk_size}"


class FusedTFSDObjective(_FusedObjective):
    def forward(self, features: Tensor, target: Tensor) -> Tensor:
        return fused_tfsd_loss(features, self.head.centers, target, self.head.scale, **self._kw())


class FusedCEObjective(_FusedObjective):
    def forward(self, features: Tensor, target: Tensor) -> Tensor:
        return fused_ce_loss(features, self.head.weight, target, self.head.bias, **self._kw())


@dataclass(frozen=True)
class ObjectiveInfo:
    """What a registered objective is: its head kind, formula and hyperparameters."""

    name: str
    head: str
    formula: str
    description: str
    factory: Callable[..., Objective]

    @property
    def spec(self) -> str:
        """What ``load_objective`` takes to find this objective again in a fresh process (a
        run's stored config, a worker): the name for a built-in, else ``module:factory``."""
        if self.name in _BUILTINS:
            return self.name
        return f"{self.factory.__module__}:{self.factory.__qualname__}"

    @property
    def params(self) -> dict[str, object]:
        """Hyperparameters (beyond in_features/num_classes) and their defaults."""
        sig = inspect.signature(self.factory)
        return {k: p.default for k, p in list(sig.parameters.items())[2:]}


# Filled at import by the decorators below (the built-ins), then by plugins' imports.
_REGISTRY: dict[str, ObjectiveInfo] = {}
#: the names registered by geomviz itself (set at the end of this module)
_BUILTINS: frozenset[str] = frozenset()
#: letters, digits, "_" and "-": no ":" (spec syntax), "," (CLI lists), "/" or spaces (paths)
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")


class ObjectiveNameClash(ValueError):
    """A registration under a name geomviz already uses for a built-in objective."""


def _same_factory(a: Callable, b: Callable) -> bool:
    """The same definition, e.g. a plugin module imported again (importlib.reload)."""
    return (getattr(a, "__module__", None), getattr(a, "__qualname__", None)) == \
        (getattr(b, "__module__", None), getattr(b, "__qualname__", None))


def register_objective(name: str, head: str, formula: str, description: str):
    """Decorator: register ``factory(in_features, num_classes, **hyperparameters)``.

    The factory returns an :class:`Objective`; its hyperparameters are its keyword
    arguments with defaults. A name may be registered once (again only by the same
    definition, when its module is re-imported); a built-in's name raises
    :class:`ObjectiveNameClash`.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"objective name must be letters, digits, '_' or '-', got {name!r}")

    def deco(factory: Callable[..., Objective]) -> Callable[..., Objective]:
        if name in _BUILTINS:
            raise ObjectiveNameClash(
                f"objective {name!r} is already registered as a built-in; register yours "
                f"under another name")
        old = _REGISTRY.get(name)
        if old is not None and not _same_factory(old.factory, factory):
            raise ValueError(f"objective {name!r} is already registered by "
                             f"{old.factory.__module__}.{old.factory.__qualname__}")
        _REGISTRY[name] = ObjectiveInfo(name, head, formula, description, factory)
        return factory

    return deco


def is_builtin(name: str) -> bool:
    """Whether ``name`` is one of geomviz's own objectives (not a user's)."""
    return name in _BUILTINS


def list_objectives() -> list[str]:
    """The names of every registered objective, built-in or a user's once registered,
    sorted: what ``create_objective`` and ``--objective`` accept."""
    return sorted(_REGISTRY)


def objective_info(name: str) -> ObjectiveInfo:
    """The registry entry of ``name``: its head kind, formula, description and
    hyperparameters with their defaults (what ``geomviz objectives`` prints). An unknown
    name is one ``ValueError`` listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown objective {name!r}; choose one of: {', '.join(list_objectives())}"
        ) from None


def create_objective(name: str, in_features: int, num_classes: int, **kw) -> Objective:
    """Build a registered objective; unknown names or hyperparameters raise ``ValueError``."""
    info = objective_info(name)
    allowed = info.params
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise ValueError(
            f"objective {name!r} does not take {', '.join(unknown)}; "
            f"it takes: {', '.join(allowed) or 'no hyperparameters'}"
        )
    return info.factory(in_features, num_classes, **kw)


# ----------------------------------------------------------------------------- registrations
@register_objective("ce", "linear", "CE(W x + b, y)", "Cross-entropy on dot-product logits.")
def _ce(in_features, num_classes, bias=True, reduction="mean", ignore_index=-100, validate=True):
    return Objective("ce", LinearHead(in_features, num_classes, bias),
                     L.CrossEntropyLoss(reduction, ignore_index, validate))


@register_objective("label_smoothing", "linear", "CE(W x + b, (1-ε)·onehot(y) + ε/C)",
                    "Cross-entropy against label-smoothed targets (ε = smoothing).")
def _ls(in_features, num_classes, smoothing=0.1, bias=True, reduction="mean", ignore_index=-100,
        validate=True):
    return Objective("label_smoothing", LinearHead(in_features, num_classes, bias),
                     L.LabelSmoothingLoss(smoothing, reduction=reduction,
                                          ignore_index=ignore_index, validate=validate))


@register_objective("logitnorm", "linear", "CE(z / (τ·||z||), y), z = W x + b",
                    "LogitNorm (Wei et al. 2022): CE on L2-normalised logits at temperature τ.")
def _logitnorm(in_features, num_classes, tau=0.04, bias=True, reduction="mean", ignore_index=-100,
               validate=True):
    return Objective("logitnorm", LinearHead(in_features, num_classes, bias),
                     L.LogitNormLoss(tau, reduction=reduction, ignore_index=ignore_index,
                                     validate=validate))


@register_objective("ce_zloss", "linear", "CE(z, y) + coef·logsumexp(z)², z = W x + b",
                    "Cross-entropy plus the PaLM z-loss (coef = 1e-4).")
def _zloss(in_features, num_classes, coef=1e-4, bias=True, reduction="mean", ignore_index=-100,
           validate=True):
    return Objective("ce_zloss", LinearHead(in_features, num_classes, bias),
                     L.ZLossCrossEntropy(coef, reduction=reduction, ignore_index=ignore_index,
                                         validate=validate))


@register_objective("metric_ce", "euclidean", "CE(-s·||x - c||², y)",
                    "Ablation: the metric (Euclidean) head with plain CE, no self-distillation.")
def _metric_ce(in_features, num_classes, scale=1.0, reduction="mean", ignore_index=-100,
               validate=True):
    return Objective("metric_ce", EuclideanHead(in_features, num_classes, scale),
                     L.CrossEntropyLoss(reduction, ignore_index, validate))


@register_objective("tfsd", "euclidean",
                    "KL(softmax(z|z_y:=0) || softmax(z)), z = -s·||x - c||²",
                    "Teacher-Free Self-Distillation with the zero-anchor target (closed form).")
def _tfsd(in_features, num_classes, scale=1.0, reduction="mean", ignore_index=-100,
          validate=True):
    return Objective("tfsd", EuclideanHead(in_features, num_classes, scale),
                     L.TFSDLoss(reduction, ignore_index, validate))


@register_objective("tfsd_scaled", "euclidean",
                    "KL(softmax(z|z_y:=0) || softmax(z)), z = -||x - c||² / D",
                    "TFSD with s = 1/D (D = feature dim, unless scale= is given): logits are "
                    "the mean squared coordinate gap, of order 1 for LayerNorm-sized features, "
                    "so the zero-anchor target is not one-hot by construction.")
def _tfsd_scaled(in_features, num_classes, scale=None, reduction="mean", ignore_index=-100,
                 validate=True):
    s = 1.0 / in_features if scale is None else scale
    return Objective("tfsd_scaled", EuclideanHead(in_features, num_classes, s),
                     L.TFSDLoss(reduction, ignore_index, validate))


@register_objective("tfsd_fused", "euclidean", "as tfsd, chunked: never holds N×V logits",
                    "TFSD for large vocabularies: fused head+loss, gradients in forward.")
def _tfsd_fused(in_features, num_classes, scale=1.0, chunk_size=None, backend="auto",
                reduction="mean", ignore_index=-100, validate=True):
    return FusedTFSDObjective("tfsd_fused", EuclideanHead(in_features, num_classes, scale),
                              chunk_size, backend, reduction, ignore_index, validate)


@register_objective("ce_fused", "linear", "as ce, chunked: never holds N×V logits",
                    "Cross-entropy for large vocabularies: fused linear+CE.")
def _ce_fused(in_features, num_classes, bias=True, chunk_size=None, backend="auto",
              reduction="mean", ignore_index=-100, validate=True):
    return FusedCEObjective("ce_fused", LinearHead(in_features, num_classes, bias),
                            chunk_size, backend, reduction, ignore_index, validate)


_BUILTINS = frozenset(_REGISTRY)
