"""Record the geometry of your own training loop as a first-class geomviz run.

    with geomviz.Recorder("runs/mine/ce", model, head="fc", objective=objective,
                          config=cfg, probe_set=(x_probe, y_probe)) as rec:
        for step, (x, y) in enumerate(batches, 1):
            rec.before_step(step, y)            # arms the probes on logging steps
            loss = objective(model.features(x), y); loss.backward(); opt.step()
            rec.log(step, loss=loss, lr=opt.param_groups[0]["lr"])  # a row every `every`
        rec.evaluate(step, test=test_batches, ood=ood_batches)

The run folder holds what a ``geomviz train`` run holds (``geomviz runs``, ``compare``,
``figures``, ``project`` read it alike): the user's config, the objective, versions, git
commits and hardware in its metadata; loss, lr, the user's scalars and the probes' statistics
every ``every`` steps; test/OOD metrics; snapshots of a fixed probe set. Checks come first and
raise one ``ValueError``; nothing is written for a refused input. The probe rules hold: loss
tensors stay on the device until the row is written (one transfer), the statistics run
outside ``torch.compile``'d graphs, and under DDP all ranks reduce and rank 0 alone writes.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from probes import ProbeSession, resolve_head, target_kind
from probes.snapshots import snapshot_arrays, snapshot_steps

from ..store import STORE_FILE, NullWriter, RunWriter, StoreError, open_run
from ..training.provenance import git_commit, provenance
from .batches import default_inputs, default_labels, shift_labels
from .evaluation import ProbeSet, class_vectors, evaluate_batches

__all__ = ["Recorder", "head_classes", "buckets_from_counts"]

MAX_SNAPSHOT_VOCAB = 1024  # larger vocabularies keep no per-snapshot [P, V] logits


def head_classes(head: nn.Module) -> int:
    """The number of classes (vocabulary) the head scores."""
    if hasattr(head, "class_vectors"):
        return int(head.class_vectors.shape[0])
    if isinstance(head, nn.Linear):
        return int(head.out_features)
    raise ValueError(f"cannot probe a head of type {type(head).__name__}: use nn.Linear or a "
                     "geomviz head")


def buckets_from_counts(counts: np.ndarray) -> np.ndarray:
    """Frequency bucket per token id from its count (as ``geomviz.data.text.frequency_buckets``):
    0 for the 10% most frequent, 2 for the rarest 50%, 1 between."""
    v = len(counts)
    order = np.argsort(-np.asarray(counts), kind="stable")
    bucket = np.ones(v, dtype=np.int64)
    bucket[order[v - v // 2:]] = 2
    bucket[order[: -(-v // 10)]] = 0
    return bucket


def _json(config: dict | None) -> dict:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValueError(f"config must be a dict, got {type(config).__name__}")
    return json.loads(json.dumps(config, default=str))


def _config_diff(stored: dict, wanted: dict) -> list[str]:
    keys = sorted(set(stored) | set(wanted))
    return [f"{k}: {stored.get(k)!r} -> {wanted.get(k)!r}" for k in keys
            if stored.get(k) != wanted.get(k)]


class Recorder:
    """One recorded run; see the module docstring. ``head``: an ``nn.Linear``, a geomviz head
    or a dotted module name (default ``model.head``); its input are the features ``[B, D]`` or
    ``[B, T, D]``. ``objective``: a geomviz ``Objective`` or its name (else "custom").
    ``causal``: the head scores next tokens (labels are shifted by one, -100 is ignored).
    ``probe_set``: ``(inputs, labels)`` snapshotted at ~``snapshots`` steps over
    ``total_steps``; ``resume_from``: continue the run in ``out`` from this step (its rows
    after it are dropped), with the same config."""

    def __init__(self, out: str | Path, model: nn.Module, head: nn.Module | str | None = None,
                 *, objective: Any = None, config: dict | None = None,
                 num_classes: int | None = None, every: int = 50, probe_set=None,
                 probe_ood=None, probe_size: int = 1000, causal: bool = False,
                 labels=None, inputs=None, token_groups=None, token_freq=None,
                 snapshots: int = 40, total_steps: int | None = None, name: str | None = None,
                 dataset: str = "custom", class_names: list[str] | None = None,
                 resume_from: int | None = None, heartbeat_s: float = 5.0,
                 integration: str = "plain") -> None:
        self.model, self.out = model, Path(out)
        head_module = resolve_head(model, head)
        classes = head_classes(head_module)
        if num_classes is not None and int(num_classes) != classes:
            raise ValueError(f"the head outputs {classes} scores but the model has "
                             f"{num_classes} {'tokens' if causal else 'classes'}: pass the "
                             "module that produces the logits as head=")
        self.num_classes, self.causal = classes, bool(causal)
        obj_name = getattr(objective, "name", objective) or "custom"
        if not isinstance(obj_name, str):
            raise ValueError(f"objective must be an Objective or its name, got {objective!r}")
        loss = getattr(objective, "loss", None)
        smoothing = float(getattr(loss, "smoothing", 0.0) or 0.0)
        self.config = _json(config)
        self._labels_fn = labels or default_labels
        self._inputs_fn = inputs or default_inputs
        groups = None if token_groups is None else np.asarray(token_groups, dtype=np.int64)
        freq = None if token_freq is None else np.asarray(token_freq, dtype=np.int64)
        for what, arr in (("token_groups", groups), ("token_freq", freq)):
            if arr is not None and len(arr) != classes:
                raise ValueError(f"{what} has {len(arr)} entries, the vocabulary {classes}")
        self.groups, self.freq = groups, freq
        self.probe = None
        if probe_set is not None:
            if not isinstance(probe_set, (tuple, list)) or len(probe_set) not in (1, 2):
                raise ValueError("probe_set must be (inputs, labels)")
            self.probe = ProbeSet(probe_set[0], probe_set[1] if len(probe_set) == 2 else None,
                                  probe_ood, self.causal, probe_size, num_classes=classes,
                                  groups=groups, freq_bucket=freq)
        self.rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        self.world = dist.get_world_size() if dist.is_available() and dist.is_initialized() \
            else 1
        resuming = self.rank == 0 and self._check_out(resume_from)
        self.device = next(model.parameters()).device
        self.session = ProbeSession(model, head_module, None, every,
                                    target=target_kind(obj_name), smoothing=smoothing)
        self.every = int(every)
        self.steps = (set(snapshot_steps(total_steps, snapshots)) if total_steps else None) \
            if snapshots else set()
        meta = {"name": name or self.out.name, "objective": obj_name, "dataset": dataset,
                "head_objective": obj_name, "kind": "tokens" if causal else "custom",
                "seed": self.config.get("seed"), "config": self.config,
                "class_names": class_names, "ood_name": None, "near_ood_name": None,
                "data_info": {k: v.tolist() for k, v in (("groups", groups),
                                                         ("freq_bucket", freq))
                              if v is not None},
                "total_steps": total_steps, "recorded_by": integration,
                "probes": self.session.settings,
                "user_git": git_commit(Path(sys.argv[0]).resolve().parent
                                       if sys.argv and sys.argv[0] else Path.cwd()),
                **provenance(self.device, self.world)}
        if meta["seed"] is None:  # unknown: listed blank, never as "None"
            del meta["seed"]
        self.step, self.epoch, self.closed = int(resume_from or 0), None, False
        self._snapped = -1
        first = (self._snapshot_arrays() if self.probe is not None and self.rank == 0
                 and not resuming else None)  # the probe set runs: a bad one fails here
        # ---- checks are done: from here on the run is written
        self.writer = (RunWriter(self.out, meta, heartbeat_s, resume=resuming,
                                 drop_after_step=resume_from) if self.rank == 0
                       else NullWriter())
        self.session.writer = self.writer
        self.session._attach()
        self._dev: dict[str, Tensor] = {}
        self._n: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._counts: Tensor | None = None
        self._armed_step: int | None = None
        self._warned, self._records, self._flushed = False, 0, -1
        self._diverged: str | None = None
        if self.probe is not None and self.rank == 0:
            for key, value in {**self.probe.arrays, **(first or {})}.items():
                self.writer.array(0, f"snapshot.{key}", value)
            self._snapped = 0 if first else -1
        self.writer.flush()

    def _check_out(self, resume_from: int | None) -> bool:
        """Whether ``out`` holds a run to continue; ``ValueError`` for a folder that cannot
        be used (a file, another run, a different config)."""
        if self.out.exists() and not self.out.is_dir():
            raise ValueError(f"{self.out} is a file, not a run folder")
        if not (self.out / STORE_FILE).exists():
            return False
        try:
            with open_run(self.out) as run:
                stored = run.meta.get("config") or {}
        except StoreError as e:
            raise ValueError(f"{self.out} holds an unreadable run store: {e}") from None
        diff = _config_diff(stored, self.config)
        if resume_from is None:
            why = f"with another config ({'; '.join(diff)[:300]})" if diff else "already"
            raise ValueError(f"{self.out} holds a run {why}: record into a new folder, or "
                             "resume it (resume_from=step)")
        if diff:
            raise ValueError(f"cannot resume {self.out} with another config: "
                             f"{'; '.join(diff)[:300]}")
        return True

    # ---- the training step --------------------------------------------------------------
    def before_step(self, step: int, batch_or_labels: Any, force: bool = False,
                    epoch: int | None = None) -> None:
        """Arm the probes when ``step`` is a logging step (``step % every == 0``) or
        ``force``; give the batch's labels (or the batch: the default rule finds them)."""
        self.step, self.epoch = int(step), epoch
        y = batch_or_labels if isinstance(batch_or_labels, Tensor) \
            else self._labels_fn(batch_or_labels)
        if self.causal:
            y = shift_labels(y)
            if self.freq is None:  # training-target counts for the frequency splits (device)
                if self._counts is None:
                    self._counts = torch.zeros(self.num_classes, device=y.device)
                flat = y.reshape(-1)
                self._counts.scatter_add_(0, flat.clamp_min(0), (flat >= 0).float())
        self.session.before_step(self.step, y, force)
        if self.session.armed:
            self._armed_step = self.step

    def log(self, step: int, loss: Tensor | float | None = None, **scalars) -> None:
        """Record the step's ``loss`` and ``scalars`` (``lr=...``): tensors stay on the device
        and are averaged over the steps of a row, numbers are written as their last value.
        A row is written every ``every`` steps (and at :meth:`close`)."""
        if loss is not None:
            scalars = {"loss": loss, **scalars}
        for k, v in scalars.items():
            if isinstance(v, Tensor):
                v = v.detach().float().reshape(-1)[:1].reshape(())
                self._dev[k] = self._dev[k] + v if k in self._dev else v.clone()
                self._n[k] = self._n.get(k, 0) + 1
            else:
                self._last[k] = float(v)
        self.step = int(step)
        if self.step % self.every == 0 and self.step != self._flushed:  # (gradient accumulation
            self.flush(self.step)  # logs one optimizer step several times: one row)
        self.maybe_snapshot(self.step)

    def flush(self, step: int) -> None:
        """Write one row: the probes' statistics and the logged values, one transfer."""
        if self.session.armed and self._armed_step is not None and not self._warned:
            self._warned = True
            warnings.warn(f"geomviz: the head {type(self.session.head).__name__} was not "
                          f"called in step {self._armed_step}: no probe statistics were "
                          "recorded (is head= the module that makes the logits?)",
                          RuntimeWarning, stacklevel=2)
        self._records += len(self.session._pending)
        names = sorted(self._dev)
        extra = torch.stack([self._dev[n] for n in names]) if names else None
        host = self.session.flush(step, self.epoch, extra=extra, loss_fn=(
            (lambda h: float(h[names.index("loss")]) / self._n["loss"] / self.world)
            if "loss" in names else None))
        values = dict(self._last)
        if host is not None:
            values.update({n: float(host[i]) / self._n[n] / self.world
                           for i, n in enumerate(names)})
        if "loss" in values and not np.isfinite(values["loss"]) and self._diverged is None:
            self._diverged = f"loss became non-finite by step {step}"
        if values:
            self.writer.scalars(step, values, split="train", epoch=self.epoch)
        self.writer.flush()
        self._dev, self._n, self._last, self._flushed = {}, {}, {}, step

    # ---- outside the step ---------------------------------------------------------------
    def maybe_snapshot(self, step: int) -> None:
        """Snapshot the probe set if ``step`` is a snapshot step."""
        if self.steps is None:  # total unknown: 1, 2, 4, ... then every 4 rows
            due = step > 0 and (step & (step - 1) == 0 and step < 4 * self.every
                                or step % (4 * self.every) == 0)
        else:
            due = step in self.steps
        if due:
            self.snapshot(step)

    def snapshot(self, step: int) -> None:
        """Features and per-sample geometry of the fixed probe set at ``step`` (rank 0)."""
        if self.probe is None or self.rank != 0 or step == self._snapped:
            return
        for name, value in self._snapshot_arrays().items():
            self.writer.array(step, f"snapshot.{name}", value)
        self.writer.flush()
        self._snapped = step

    def _snapshot_arrays(self) -> dict[str, np.ndarray]:
        s = self.session
        feats, logits, labels = self.probe.run(self.model, s.head, self.device)
        vectors = class_vectors(s.head)
        arrays = snapshot_arrays(feats, logits, labels, vectors, s.metric, s.target,
                                 s.smoothing, keep_logits=self.num_classes <= MAX_SNAPSHOT_VOCAB)
        if self.causal:
            ids = torch.from_numpy(self.probe.arrays["class_ids"]).to(vectors.device)
            arrays["class_vectors"] = vectors[ids].half().cpu().numpy()
        return arrays

    def evaluate(self, step: int, test, ood=None) -> dict:
        """Evaluate ``test`` (and ``ood``) batches (iterables, or callables returning them)
        at ``step``: test acc, nll, ece (and token probes), OOD ``<score>.<metric>``, the
        probes' test statistics; written on rank 0 and returned (``{}`` on other ranks)."""
        if self.rank != 0:
            return {}
        freq = self.freq
        if freq is None and self._counts is not None:
            freq = buckets_from_counts(self._counts.cpu().numpy())
        s = self.session
        splits, conf_id, conf_ood, probe = evaluate_batches(
            self.model, s.head, s.metric, s.target, s.smoothing, test, ood, self._inputs_fn,
            self._labels_fn, self.causal, self.device,
            None if freq is None else torch.as_tensor(freq),
            None if self.groups is None else torch.as_tensor(self.groups))
        for split, values in splits.items():
            self.writer.scalars(step, values, split=split, epoch=self.epoch)
        for score in conf_ood:
            self.writer.array(step, f"eval.confidence.{score}.id",
                              conf_id[score].astype("float32"))
            self.writer.array(step, f"eval.confidence.{score}.ood",
                              conf_ood[score].astype("float32"))
        s.record_eval(probe["features"], probe["logits"], probe["y"], step, self.epoch)
        self.writer.set_meta(final=splits)
        self.writer.flush()
        return splits

    # ---- lifecycle ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """What a resumed run needs to continue its series exactly (save it with your
        checkpoint; give it to :meth:`load_state_dict` after ``resume_from``)."""
        return {"session": self.session.state_dict(), "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` saved, so a resumed run's series continue exactly."""
        self.session.load_state_dict(state["session"])

    def close(self, status: str | None = None, message: str | None = None) -> None:
        """Write the last row and snapshot, remove the hooks and end the run (``finished``,
        or ``diverged`` when the loss became non-finite)."""
        if self.closed:
            return
        self.closed = True
        try:
            if status is None:
                if self._dev or self._last or self.session._pending:
                    self.flush(self.step)
                self.snapshot(self.step)
                if self._records == 0 and self._armed_step is not None and not self._warned:
                    warnings.warn("geomviz: the head was never called on a probed step: the "
                                  "run holds no probe statistics", RuntimeWarning,
                                  stacklevel=2)
        finally:
            self.session._detach()
            if status is None:
                status = "diverged" if self._diverged else "finished"
                message = message or self._diverged
            self.writer.close(status, message)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.close()
        else:
            self.close("crashed", f"{exc_type.__name__}: {exc}")
