"""A Lightning callback that records the run as a geomviz run: ``Trainer(callbacks=[...])``.

    from geomviz.integrations.lightning import GeomvizCallback
    trainer = L.Trainer(callbacks=[GeomvizCallback("runs/mine/ce", head="head",
                                                   objective="ce")])

Labels come from each batch by the default rule (``(x, y)`` or a dict's ``labels``;
``labels=fn(batch)`` overrides it). A row is written every ``every`` optimizer steps; each
validation (not the sanity check) evaluates the validation data (or ``test=``) and ``ood=``
on rank 0; ``fast_dev_run`` records nothing. Under DDP every rank reduces the probes and rank
0 alone writes. Resuming from a Lightning checkpoint (``fit(ckpt_path=...)``) continues the
same run from the checkpoint's step, dropping the rows written after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # one line naming the extra
    raise ImportError('geomviz.integrations.lightning needs Lightning: '
                      'pip install "geomviz[lightning]"') from None

from .recorder import Recorder

__all__ = ["GeomvizCallback"]


class GeomvizCallback(Callback):
    """Record the geometry of a LightningModule's training; keyword arguments as
    :class:`geomviz.Recorder` (``objective``, ``config``, ``probe_set``, ``every``, ...),
    plus ``test`` and ``ood``: batches (or a callable returning them) to evaluate at each
    validation. The config stored is the module's ``hparams`` updated with ``config``."""

    def __init__(self, out: str | Path, head: Any = None, *, test=None, ood=None,
                 config: dict | None = None, **recorder_kw: Any) -> None:
        self.out, self.head, self.test, self.ood = Path(out), head, test, ood
        self.config, self.kw = config, recorder_kw
        self.recorder: Recorder | None = None
        self._loaded: dict | None = None

    @property
    def state_key(self) -> str:
        return f"GeomvizCallback[{self.out}]"

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        mine = [c for c in trainer.callbacks if isinstance(c, GeomvizCallback)]
        if sum(c is self for c in mine) > 1 or sum(c.out.resolve() == self.out.resolve()
                                                  for c in mine) > 1:
            raise ValueError(f"GeomvizCallback for {self.out} was added to the Trainer twice: "
                             "give each run one callback")

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.fast_dev_run:  # a smoke run of the user's code: nothing is recorded
            return
        hparams = dict(getattr(pl_module, "hparams", {}) or {})
        total = trainer.estimated_stepping_batches
        total = int(total) if total not in (None, float("inf")) else None
        state = self._loaded or {}
        self.recorder = Recorder(
            self.out, pl_module, self.head, config={**hparams, **(self.config or {})},
            total_steps=total, resume_from=state.get("step"), integration="lightning",
            **self.kw)
        if state.get("session") is not None:
            self.recorder.load_state_dict(state)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self.recorder is not None:
            self.recorder.before_step(trainer.global_step + 1, batch, epoch=trainer.current_epoch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.recorder is None:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        lr = {"lr": trainer.optimizers[0].param_groups[0]["lr"]} if trainer.optimizers else {}
        self.recorder.log(trainer.global_step, loss=loss, **lr)

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.recorder is None or trainer.sanity_checking:
            return
        test = self.test if self.test is not None else trainer.val_dataloaders
        if test is not None:
            self.recorder.evaluate(trainer.global_step, test=test, ood=self.ood)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.recorder is None:
            return
        if self.test is not None and trainer.val_dataloaders is None:  # no validation loop
            self.recorder.evaluate(trainer.global_step, test=self.test, ood=self.ood)
        self.recorder.close()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if self.recorder is not None:
            self.recorder.close("crashed", f"{type(exception).__name__}: {exception}")

    def state_dict(self) -> dict:
        return {} if self.recorder is None else self.recorder.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self._loaded = dict(state_dict) if state_dict else None
