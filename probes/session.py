"""Attaching probes to a model: hooks collect, the session accumulates and flushes.

    with attach(model, writer=writer, every=50) as probes:
        for step, (x, y) in enumerate(batches, 1):
            probes.before_step(step, y)     # arms the hooks on logging steps (host-side int)
            loss = model.loss(x, y); loss.backward(); opt.step()
            if step % 50 == 0:
                probes.flush(step, epoch)   # one device->host transfer

A forward hook on the head sees the penultimate features (its input) and the
logits (its output); on an armed step it computes :func:`probes.stats.batch_stats`
on the device and registers a tensor hook on the features that splits their
gradient into radial and tangential parts during backward. Hooks only collect;
they are removed in ``finally``. Token sequences ``[B, T, D]`` are flattened.
"""

from __future__ import annotations

import contextlib
from collections import deque

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from .stats import GRAD_FIELDS, batch_stats, grad_stats, layout, reduce_rows, row_stats
from .summary import decompose, summarize

__all__ = ["ProbeSession", "attach", "resolve_head", "target_kind", "to_host"]


def resolve_head(model: nn.Module, head: nn.Module | str | None) -> nn.Module:
    """The head: given, named (a dotted submodule path), or ``model.head`` by the contract."""
    if isinstance(head, nn.Module):
        return head
    if isinstance(head, str):
        try:
            return model.get_submodule(head)
        except AttributeError:
            linear = [n for n, m in model.named_modules() if n and (isinstance(m, nn.Linear) or
                      hasattr(m, "class_vectors") and hasattr(m, "metric"))]
            shown = ", ".join(linear[:20]) + (f" (and {len(linear) - 20} more)"
                                              if len(linear) > 20 else "")
            raise ValueError(f"model has no submodule {head!r} to probe as the head; its "
                             f"nn.Linear modules and geomviz heads are: {shown or 'none'}"
                             ) from None
    found = getattr(model, "head", None)
    if not isinstance(found, nn.Module):
        raise ValueError("cannot find the head: pass head= (a module or its dotted name)")
    return found


def _head_geometry(head: nn.Module) -> tuple[str, Tensor, Tensor | None, float]:
    if hasattr(head, "class_vectors") and hasattr(head, "metric"):
        return head.metric, head.class_vectors, getattr(head, "bias", None), float(head.scale)
    if isinstance(head, nn.Linear):  # foreign models: a plain linear classifier
        return "dot", head.weight, head.bias, 1.0
    raise ValueError(f"cannot probe a head of type {type(head).__name__}: use nn.Linear or a "
                     "geomviz head")


def to_host(extra: Tensor, reduce: bool = True) -> np.ndarray:
    """``extra`` summed across DDP ranks (when running distributed), moved to the host."""
    if reduce and dist.is_available() and dist.is_initialized():
        dist.all_reduce(extra)
    return extra.cpu().numpy()


def target_kind(objective_name: str | None) -> str:
    if objective_name in ("tfsd", "tfsd_fused", "tfsd_scaled"):
        return "tfsd"
    return "label_smoothing" if objective_name == "label_smoothing" else "onehot"


class ProbeSession:
    """Holds the hooks' device-side results until ``flush``; see the module docstring."""

    def __init__(self, model: nn.Module, head: nn.Module | str | None = None, writer=None,
                 every: int = 50, target: str = "onehot", smoothing: float = 0.0,
                 easy: float = 0.9, hard: float = 0.5, spike_k: float = 3.0,
                 spike_window: int = 20, ignore_index: int = -100) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if not 0.0 <= hard <= easy <= 1.0:
            raise ValueError(f"need 0 <= hard <= easy <= 1, got hard={hard}, easy={easy}")
        self.model, self.head = model, resolve_head(model, head)
        self.metric, _, _, self.scale = _head_geometry(self.head)
        self.writer, self.every = writer, int(every)
        self.target, self.smoothing, self.easy, self.hard = target, smoothing, easy, hard
        self.spike_k, self._losses = spike_k, deque(maxlen=spike_window)
        self.ignore_index = int(ignore_index)
        self._handles: list = []
        self._armed, self._y, self._noisy = False, None, None
        self._pending: list[dict[str, Tensor]] = []
        self._prev_agg: dict[str, float] | None = None
        self.settings = {"every": every, "easy_threshold": easy, "hard_threshold": hard,
                         "flush_spike_k": spike_k, "flush_spike_window": spike_window,
                         "target": target, "metric": self.metric, "scale": self.scale}

    # resume --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """What the next flush reads from earlier ones: the last train aggregates (``decomp.*``
        is the change since them) and the flush losses of the flush-spike rule."""
        return {"prev_agg": self._prev_agg, "losses": list(self._losses)}

    def load_state_dict(self, state: dict) -> None:
        self._prev_agg = None if state["prev_agg"] is None else dict(state["prev_agg"])
        self._losses.clear()
        self._losses.extend(float(v) for v in state["losses"])

    # hooks ---------------------------------------------------------------------------------
    def _attach(self) -> None:
        self._handles.append(self.head.register_forward_hook(self._on_head))

    def _detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def before_step(self, step: int, y: Tensor, force: bool = False,
                    noisy: Tensor | None = None) -> None:
        """Arm the hooks when ``step`` is a logging step (or ``force``, e.g. an epoch's last
        step); ``y`` are the batch's targets, ``noisy[B]`` (optional, bool) marks the samples
        whose label was flipped (label noise): it splits the gradient norms into
        ``grad.noisy.norm.mean`` and ``grad.clean.norm.mean``."""
        self._armed = force or step % self.every == 0
        self._y = y if self._armed else None
        self._noisy = noisy if self._armed else None

    @property
    def armed(self) -> bool:
        return self._armed

    def _on_head(self, module: nn.Module, inputs: tuple, output: Tensor) -> None:
        if not self._armed or self._y is None:
            return
        self._record(module, inputs[0], output)

    @torch.compiler.disable
    def _record(self, module: nn.Module, x: Tensor, output: Tensor) -> None:
        """The armed step's statistics, run eagerly: under ``torch.compile`` the unarmed steps
        trace only the check above, and the statistics (data-dependent histograms, Python
        floats) neither break nor recompile the training graph."""
        self._armed = False  # one record per armed step, even if the head runs again
        d = x.shape[-1]
        xf, zf, y = x.reshape(-1, d), output.reshape(-1, output.shape[-1]), self._y.reshape(-1)
        noisy = None if self._noisy is None else self._noisy.reshape(-1)
        if xf.shape[0] != y.shape[0]:  # the head saw a subset of rows (fused heads' probe rows)
            y = y[: xf.shape[0]]
        if noisy is not None and noisy.shape[0] != xf.shape[0]:
            noisy = noisy[: xf.shape[0]] if noisy.shape[0] > xf.shape[0] else None
        _, vectors, bias, _ = _head_geometry(module)
        with torch.no_grad():
            rec = batch_stats(xf.detach(), zf.detach(), y, vectors.detach(),
                              None if bias is None else bias.detach(), self.metric, self.target,
                              self.smoothing, self.easy, self.hard, self.ignore_index)
        self._pending.append(rec)
        if x.requires_grad and torch.is_grad_enabled():
            xd, keep = xf.detach(), y != self.ignore_index
            rows = keep.sum().clamp_min(1).float()  # the mean reduction's divisor, on device

            def on_grad(g: Tensor) -> None:
                with torch.no_grad():  # per-sample ∂ℓ_i/∂x_i under a mean-reduced loss
                    rec.update(grad_stats(g.reshape(-1, d), xd, rows, keep, noisy))

            x.register_hook(on_grad)

    # flushing ------------------------------------------------------------------------------
    def _fields(self, num_classes: int):
        return layout(self.metric, num_classes) + GRAD_FIELDS

    def flush(self, step: int, epoch: int | None = None, extra: Tensor | None = None,
              split: str = "train", loss_fn=None, reduce: bool = True) -> np.ndarray | None:
        """Reduce what was recorded since the last flush (across DDP ranks if ``reduce``),
        move it to the host in one transfer, together with ``extra`` (returned on the
        host, summed across ranks), and write it to the store."""
        recs, self._pending = self._pending, []
        distributed = reduce and dist.is_available() and dist.is_initialized()
        if not recs:
            return None if extra is None else to_host(extra, reduce)
        num_classes = len(recs[0]["penultimate.norm.class_sum"])
        fields = self._fields(num_classes)
        dev = recs[0]["n"].device
        for rec in recs:  # batches without a backward pass (or not yet) contribute no gradient
            for f in GRAD_FIELDS:
                rec.setdefault(f.name, torch.zeros(f.size, device=dev, dtype=torch.float64))
        by_kind = {}
        for kind in ("sum", "max", "local"):
            parts = [f for f in fields if f.kind == kind]
            stacked = torch.stack([torch.cat([r[f.name] for f in parts]) for r in recs])
            by_kind[kind] = (parts, stacked.sum(0) if kind == "sum" else
                             stacked.amax(0) if kind == "max" else stacked[-1])
        _, vectors, _, _ = _head_geometry(self.head)
        class_norms = torch.linalg.vector_norm(vectors.detach().double(), dim=1).to(dev)
        if distributed:
            dist.all_reduce(by_kind["sum"][1])
            dist.all_reduce(by_kind["max"][1], op=dist.ReduceOp.MAX)
            if extra is not None:
                dist.all_reduce(extra)
        flat = [by_kind[k][1] for k in ("sum", "max", "local")] + [class_norms]
        if extra is not None:
            flat.append(extra.double().to(dev))
        host = torch.cat(flat).cpu().numpy().astype(np.float64)  # the one transfer
        agg, i = {}, 0
        for k in ("sum", "max", "local"):
            for f in by_kind[k][0]:
                agg[f.name] = host[i : i + f.size]
                i += f.size
        norms = host[i : i + num_classes]
        i += num_classes
        rest = host[i:] if extra is not None else None
        loss = loss_fn(rest) if (loss_fn is not None and rest is not None) else None
        self._write(agg, norms, step, epoch, split, loss)
        return rest

    def _write(self, agg, class_norms, step, epoch, split, loss) -> None:
        scalars, hists, arrays = summarize(agg, self.metric, class_norms)
        if split == "train":
            flat = {k: float(v[0]) for k, v in agg.items() if v.size == 1}
            if self._prev_agg is not None:
                scalars.update({f"decomp.{k}": v for k, v in
                                decompose(self._prev_agg, flat, self.metric, self.scale).items()})
            self._prev_agg = flat
            if loss is not None:
                med = float(np.median(self._losses)) if self._losses else float("nan")
                # a jump of the flush-window mean; per-step spikes are probes.health's
                scalars["health.flush_spike"] = float(bool(self._losses) and
                                                      loss > self.spike_k * med)
                self._losses.append(loss)
        if self.writer is None:
            return
        self.writer.scalars(step, scalars, split=split, epoch=epoch)
        for name, (counts, edges) in hists.items():
            self.writer.histogram(step, name, counts, edges, split=split, epoch=epoch)
        for name, value in arrays.items():
            self.writer.array(step, f"{split}.{name}", value)

    def record_eval(self, features: Tensor, logits: Tensor, y: Tensor, step: int,
                    epoch: int | None = None) -> None:
        """Statistics of a whole evaluation split (no gradients), written with split="test"."""
        _, vectors, bias, _ = _head_geometry(self.head)
        with torch.no_grad():
            rows = row_stats(features, logits, y, vectors.detach().to(features.device),
                             None if bias is None else bias.detach().to(features.device),
                             self.metric, self.target, self.smoothing, self.ignore_index)
        self.record_eval_rows(rows, logits.shape[1], step, epoch)

    def record_eval_rows(self, rows: dict[str, Tensor], num_classes: int, step: int,
                         epoch: int | None = None) -> None:
        """:meth:`record_eval` from per-position rows (:func:`probes.stats.row_stats`) that an
        evaluation gathered chunk by chunk: every position, never all of its logits."""
        with torch.no_grad():
            rec = reduce_rows(rows, self.metric, num_classes, self.easy, self.hard)
        saved, self._pending = self._pending, [rec]
        try:
            self.flush(step, epoch, split="test", reduce=False)
        finally:
            self._pending = saved


@contextlib.contextmanager
def attach(model: nn.Module, head: nn.Module | str | None = None, writer=None, every: int = 50,
           **kw):
    """Register the probe hooks for the duration of the block; always removed on exit."""
    session = ProbeSession(model, head, writer, every, **kw)
    session._attach()
    try:
        yield session
    finally:
        session._detach()
