"""The trainer's side of the probes: attach them, snapshot the fixed probe set, and hand
the evaluation split to them. With ``probes=False`` only the flush transfer and the
per-step spike detection (:mod:`probes.health`, a few device ops) remain."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import Tensor

from probes import attach, target_kind
from probes.health import Health
from probes.session import to_host
from probes.snapshots import run_model, select_probe_set, snapshot_arrays, snapshot_steps

from .token_probes import MAX_SNAPSHOT_VOCAB, TokenProbeSet

__all__ = ["Probing"]


class Probing(contextlib.AbstractContextManager):
    def __init__(self, cfg, model, bundle, writer, device: torch.device, rank: int,
                 total_steps: int) -> None:
        self.cfg, self.model, self.bundle, self.writer = cfg, model, bundle, writer
        self.device, self.rank = device, rank
        self.enabled = bool(cfg.probes)
        self.session = None
        self._stack = contextlib.ExitStack()
        self.steps = set(snapshot_steps(total_steps, cfg.snapshots)) if cfg.snapshots else set()
        self.probe_x: Tensor | None = None
        self.tokens: TokenProbeSet | None = None
        self.health: Health | None = None
        self.spikes = 0  # spikes written by this process

    def __enter__(self) -> Probing:
        self.health = Health(self.model.backbone, self.model.objective.head, self.cfg.flush_every,
                             self.device, probe_model=self.enabled)
        self._stack.callback(self.health.close)
        self.writer.set_meta(health=self.health.settings)
        if not self.enabled:
            return self
        kind = target_kind(self.cfg.objective)
        smoothing = float(self.cfg.objective_kw.get("smoothing", 0.1)) if kind == \
            "label_smoothing" else 0.0
        self.session = self._stack.enter_context(attach(
            self.model, writer=self.writer, every=self.cfg.probe_every or self.cfg.flush_every,
            target=kind, smoothing=smoothing))
        self.writer.set_meta(probes=self.session.settings)
        if self.rank == 0 and self.steps:
            if self.bundle.kind == "tokens":
                self.tokens = TokenProbeSet(self.bundle, self.cfg.snapshot_size,
                                            self.cfg.snapshot_ood, self.device)
                for name, value in self.tokens.arrays.items():
                    self.writer.array(0, f"snapshot.{name}", value)
            else:
                self._make_probe_set()
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def state_dict(self) -> dict:
        """The probes' history a resumed run needs to continue its series exactly."""
        return {"session": None if self.session is None else self.session.state_dict(),
                "health": None if self.health is None else self.health.state_dict()}

    def load_state_dict(self, state: dict | None) -> None:
        """Restore :meth:`state_dict` (after ``__enter__``); ``None``: a checkpoint from before
        probe state was saved, whose series restart their history."""
        if not state:
            return
        if self.session is not None and state.get("session") is not None:
            self.session.load_state_dict(state["session"])
        if self.health is not None and state.get("health") is not None:
            self.health.load_state_dict(state["health"])

    def _make_probe_set(self) -> None:
        b, cfg = self.bundle, self.cfg
        n_ood = len(b.x_ood) if b.x_ood is not None else 0
        test_idx, ood_idx = select_probe_set(b.y_test.numpy(), cfg.snapshot_size,
                                             cfg.snapshot_ood, n_ood)
        parts = [b.x_test[torch.from_numpy(test_idx)]]
        labels = [b.y_test[torch.from_numpy(test_idx)]]
        if len(ood_idx):
            parts.append(b.x_ood[torch.from_numpy(ood_idx)])
            labels.append(torch.full((len(ood_idx),), -1, dtype=torch.long))
        self.probe_x = torch.cat(parts).to(self.device)
        self.probe_y = torch.cat(labels).to(self.device)
        self.writer.array(0, "snapshot.labels", self.probe_y.cpu().numpy())
        self.writer.array(0, "snapshot.index", np.r_[test_idx, ood_idx])
        self.writer.array(0, "snapshot.is_ood", (self.probe_y < 0).cpu().numpy())

    def before_step(self, step: int, y: Tensor, force: bool = False,
                    noisy: Tensor | None = None) -> None:
        if self.session is not None:
            self.session.before_step(step, y, force, noisy)
            self.health.arm(self.session.armed)

    def on_loss(self, step: int, loss: Tensor) -> None:
        """The step's loss, for spike detection (device only)."""
        if self.health is not None:
            self.health.on_loss(step, loss)

    @property
    def armed(self) -> bool:
        """Whether the coming step is a probe step (a host-side flag)."""
        return self.session is not None and self.session.armed

    def after_step(self, step: int) -> None:
        """Snapshot the probe set if ``step`` is a snapshot step (rank 0; outside the step)."""
        if self.session is None or step not in self.steps:
            return
        head = self.session.head
        if self.tokens is not None:
            feats, logits, labels = self.tokens.run(self.model)
            arrays = snapshot_arrays(feats, logits, labels, head.class_vectors.detach(),
                                     self.session.metric, self.session.target,
                                     self.session.smoothing,
                                     keep_logits=self.bundle.num_classes <= MAX_SNAPSHOT_VOCAB)
            arrays["class_vectors"] = self.tokens.class_vectors(head)
        elif self.probe_x is not None:
            feats, logits = run_model(self.model, head, self.probe_x, self.bundle.prepare,
                                      self.cfg.eval_batch_size)
            arrays = snapshot_arrays(feats, logits, self.probe_y, head.class_vectors.detach(),
                                     self.session.metric, self.session.target,
                                     self.session.smoothing)
        else:
            return
        for name, value in arrays.items():
            self.writer.array(step, f"snapshot.{name}", value)

    def flush(self, step: int, epoch: int, extra: Tensor, loss_fn):
        """The one device->host transfer: probe statistics, ``extra`` (returned on the host)
        and the health window together; the health events are written here."""
        n = len(extra)
        if self.health is not None:
            extra = torch.cat([extra.float(), self.health.pack()])
        if self.session is None:
            host = to_host(extra)
        else:
            host = self.session.flush(step, epoch, extra=extra, loss_fn=loss_fn)
        if self.health is not None:  # ranks other than 0 hold a writer that writes nothing
            world = torch.distributed.get_world_size() if (
                torch.distributed.is_available() and torch.distributed.is_initialized()) else 1
            self.spikes += self.health.write(self.writer, step, epoch, host[n:], world)
        return host[:n]

    def on_test(self, step: int, epoch: int):
        def record(collected: dict) -> None:
            if self.session is not None and "rows" in collected:  # token runs: every position
                self.session.record_eval_rows(collected["rows"], collected["num_classes"],
                                              step, epoch)
            elif self.session is not None:
                y = collected.get("y", self.bundle.y_test)
                self.session.record_eval(collected["features"], collected["logits"], y, step,
                                         epoch)

        return record
