"""Training-health probes: per-step loss spikes, and a GPT's attention- and output-logit growth.

Two instabilities of small Transformers at high learning rates (Wortsman et al. 2023)
are attention-logit growth and output-logit divergence; loss spikes are their symptom.

**Spike** (defined here, tested in ``tests/probes/test_health.py``): the training loss of
step ``t`` (the batch mean) is a spike when it exceeds ``k`` times the median of the
losses of the (up to) ``W`` steps before it, ``loss_t > k · median(loss_{t-W}, ...,
loss_{t-1})``, with ``k = SPIKE_K`` (1.5) and ``W = SPIKE_WINDOW`` (20), the median of an
even count being the lower of the two middle values (``torch.nanmedian``'s convention).
Detection starts once ``SPIKE_MIN_HISTORY`` (5) steps precede ``t`` (in a run, or in a
resumed piece): a short run spends much of its updates, and its warmup, before a full
window, and an audit found early blow-ups that a full-window rule could not see.
The size of a
spike is the ratio ``loss_t / median``. A non-finite loss is a divergence, not a spike
(``inf`` compares as a spike of infinite size; NaN as none); the trainer stops on it.

Everything per step stays on the device: a ring buffer of the last ``W`` losses, the
median, the ratio and the flag are written into a ``[3, F]`` window tensor by host-side
indices (``F`` = steps between flushes). :meth:`Health.pack` gives that window and the
model probes as one flat tensor that the trainer appends to its one device→host transfer
per flush; :meth:`Health.write` stores the events and the model probes from the host copy:

- split ``spike``: ``health.spike`` (size) and ``health.spike.loss`` at each spike's step;
- split ``train``, at the flush step, from the probe steps since the last flush:
  ``health.attn_logit.max`` (max over layers and probe steps), ``health.block_out.norm``
  (mean token norm of the last block's output), ``health.output_logit.mean``;
- arrays ``health.attn_logit.max`` and ``health.block_out.norm``, ``[n_layer]`` each.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["SPIKE_K", "SPIKE_MIN_HISTORY", "SPIKE_WINDOW", "Health"]

SPIKE_K = 1.5
SPIKE_WINDOW = 20
SPIKE_MIN_HISTORY = 5


class Health:
    """Spike detection on every step; attention/output-logit probes on armed steps."""

    def __init__(self, backbone: nn.Module, head: nn.Module | None, flush_every: int,
                 device: torch.device, k: float = SPIKE_K, window: int = SPIKE_WINDOW,
                 probe_model: bool = True) -> None:
        if k <= 1.0 or window < 1 or flush_every < 1:
            raise ValueError(f"need k > 1, window >= 1, flush_every >= 1; got {k}, {window}, "
                             f"{flush_every}")
        self.k, self.window, self.cap = float(k), int(window), int(flush_every)
        self.min_history = min(SPIKE_MIN_HISTORY, self.window)  # steps before detection
        self.device = device
        self.buf = torch.full((window,), math.nan, device=device)  # last W losses
        self.win = torch.zeros(3, self.cap, device=device)  # loss, ratio, flag per step
        self.steps: list[int] = []  # host: the steps of the window's columns
        self.seen = 0  # host: losses seen by this process
        # the model probes: a GPT backbone records attention logits when asked
        self.gpt = backbone if probe_model and hasattr(backbone, "record_attn") else None
        self.n_layer = len(backbone.blocks) if self.gpt is not None else 0
        self._armed = False
        self._handle = None
        self._reset_model()
        if self.gpt is not None and head is not None:
            self._handle = head.register_forward_hook(self._on_head)
        self.settings = {"spike_k": self.k, "spike_window": self.window,
                         "spike_min_history": self.min_history}

    def state_dict(self) -> dict:
        """The spike detector's history (the last ``window`` losses and how many were seen);
        the per-flush window is empty at a checkpoint (every epoch ends with a flush)."""
        if self.steps:
            raise RuntimeError("Health.state_dict between flushes: the window is not written")
        return {"buf": self.buf.detach().cpu().clone(), "seen": self.seen}

    def load_state_dict(self, state: dict) -> None:
        buf = torch.as_tensor(state["buf"], dtype=torch.float32)
        if buf.shape != self.buf.shape:
            raise ValueError(f"spike window of {len(buf)} losses saved, {self.window} in use")
        self.buf.copy_(buf.to(self.device))
        self.seen = int(state["seen"])

    def _reset_model(self) -> None:
        n = self.n_layer
        self.attn = torch.full((n,), -math.inf, device=self.device)  # [L] running max
        self.norm = torch.zeros(n, device=self.device)  # [L] of the last probe step
        self.out = torch.zeros(2, device=self.device)  # output-logit mean sum, probe steps

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if self.gpt is not None:
            self.gpt.record_attn = False

    # per step (no host sync) -----------------------------------------------------------------
    def arm(self, armed: bool) -> None:
        """Record the model probes in the coming forward pass (a host-side flag)."""
        if self.gpt is not None:
            self._armed = armed
            self.gpt.record_attn = armed

    def _on_head(self, module: nn.Module, inputs: tuple, output: Tensor) -> None:
        if not self._armed:
            return
        self._record(output)

    @torch.compiler.disable
    def _record(self, output: Tensor) -> None:
        """Eager, like the probe session's records: kept out of a compiled step's graph."""
        self._armed = False
        self.gpt.record_attn = False  # evaluation forwards are not recorded
        with torch.no_grad():
            a, b = self.gpt.last_attn_logit_max, self.gpt.last_block_out_norm
            if a is not None:
                self.attn = torch.maximum(self.attn, a.float())
                self.norm = b.float()
            self.out = self.out + torch.stack([output.detach().float().mean(),
                                               torch.ones((), device=self.device)])

    def on_loss(self, step: int, loss: Tensor) -> None:
        """Record step ``step``'s loss (a 0-d device tensor) and whether it is a spike."""
        j = len(self.steps)
        if j >= self.cap:
            raise RuntimeError(f"more than flush_every={self.cap} steps without a flush")
        loss = loss.detach().float()
        if self.seen >= self.min_history:
            med = torch.nanmedian(self.buf)  # the slots not yet filled are NaN: skipped
            ratio = loss / med
            flag = (loss > self.k * med).float()
        else:
            ratio = flag = torch.zeros((), device=self.device)
        self.win[:, j] = torch.stack([loss, ratio, flag])
        self.buf[self.seen % self.window] = loss
        self.seen += 1
        self.steps.append(step)

    # per flush ---------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return 3 * self.cap + 2 * self.n_layer + 2

    def pack(self) -> Tensor:
        """``[3·F + 2·L + 2]``: the spike window, then attention max, block norms, output
        logit (sum, count); appended to the trainer's one transfer per flush."""
        return torch.cat([self.win.reshape(-1), self.attn, self.norm, self.out])

    def write(self, writer, step: int, epoch: int, host: np.ndarray, world: int = 1) -> int:
        """Store the events and model probes from ``host`` (:meth:`pack` on the host, summed
        over ``world`` ranks); reset the window. Returns the number of spikes written."""
        host = np.asarray(host, dtype=np.float64) / max(world, 1)
        win = host[: 3 * self.cap].reshape(3, self.cap)
        n = len(self.steps)
        spikes = 0
        for j, s in enumerate(self.steps[:n]):
            if win[2, j] > 0:
                writer.scalars(s, {"health.spike": float(win[1, j]),
                                   "health.spike.loss": float(win[0, j])},
                               split="spike", epoch=epoch)
                spikes += 1
        i, L = 3 * self.cap, self.n_layer
        attn, norm, out = host[i:i + L], host[i + L:i + 2 * L], host[i + 2 * L:]
        if self.gpt is not None and out[1] > 0:
            writer.scalars(step, {"health.attn_logit.max": float(attn.max()),
                                  "health.block_out.norm": float(norm[-1]),
                                  "health.output_logit.mean": float(out[0] / out[1])},
                           split="train", epoch=epoch)
            writer.array(step, "health.attn_logit.max", attn.astype(np.float32))
            writer.array(step, "health.block_out.norm", norm.astype(np.float32))
        self.steps = []
        self.win.zero_()
        self._reset_model()
        return spikes
