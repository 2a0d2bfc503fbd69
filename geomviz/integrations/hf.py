"""A Hugging Face Transformers ``TrainerCallback`` that records the run as a geomviz run.

    from geomviz.integrations.hf import GeomvizCallback
    Trainer(model, args, train_dataset=..., callbacks=[GeomvizCallback("runs/mine/ce")])

``apply_tfsd`` (from :mod:`.hf_tfsd`, re-exported here) switches the same model to TFSD.

Causal language models (``*ForCausalLM``, ``*LMHeadModel``) and sequence classifiers
(``*ForSequenceClassification``). The head is ``get_output_embeddings()`` or the classifier
(``head=`` names another); its input are the features. The labels are read from the model's
call (``labels=``; for a causal LM whose labels the Trainer pops for ``compute_loss_func``,
the ``input_ids`` with padding ignored), shifted by one for causal LMs, ``-100`` masked.
A row every ``logging_steps`` (the Trainer's loss, lr and grad norm with the probes'
statistics), an evaluation at each ``eval_steps`` (the Trainer's eval data, and ``ood=``),
the token probes (frequency splits, entropies, norms; ``classes.*`` given ``token_groups``)
and snapshots of ``probe_set``. Resuming (``train(resume_from_checkpoint=...)``) continues
the run from the checkpoint's step.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from torch import Tensor, nn

try:
    from transformers import TrainerCallback
except ImportError:  # one line naming the extra
    raise ImportError('geomviz.integrations.hf needs Transformers: '
                      'pip install "geomviz[hf]"') from None

from .batches import IGNORE_INDEX
from .hf_tfsd import apply_tfsd  # one import path for both: record a model, or switch it to TFSD
from .recorder import Recorder

__all__ = ["GeomvizCallback", "apply_tfsd", "find_task", "find_head"]

# the callback whose run is open, by folder, until its run ends (a crashed Trainer's too)
_OPEN: dict[Path, GeomvizCallback] = {}

ARG_KEYS = ("learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps",
            "weight_decay", "warmup_steps", "lr_scheduler_type", "seed", "max_steps",
            "num_train_epochs", "optim", "max_grad_norm")


def find_task(model: nn.Module) -> str:
    """``"causal_lm"`` or ``"sequence_classification"`` from the model's class name."""
    name = type(model).__name__
    if name.endswith("ForCausalLM") or name.endswith("LMHeadModel"):
        return "causal_lm"
    if name.endswith("ForSequenceClassification"):
        return "sequence_classification"
    raise ValueError(f"cannot tell the task of a {name}: pass task='causal_lm' or "
                     "'sequence_classification'")


def find_head(model: nn.Module, task: str) -> nn.Module:
    """The output embeddings of a causal LM, the classifier's last linear layer otherwise."""
    if task == "causal_lm":
        head = model.get_output_embeddings()
        if head is None:
            raise ValueError(f"{type(model).__name__} has no output embeddings: pass head=")
        return head
    found = getattr(model, "classifier", None)
    if isinstance(getattr(found, "out_proj", None), nn.Linear):  # RoBERTa-style heads
        found = found.out_proj
    if not isinstance(found, nn.Linear):
        raise ValueError(f"cannot find the classifier of {type(model).__name__} (a pooled "
                         "nn.Linear named 'classifier'): pass head=")
    return found


class GeomvizCallback(TrainerCallback):
    """Record a Transformers ``Trainer`` run; keyword arguments as :class:`geomviz.Recorder`
    (``objective``, ``config``, ``probe_set``, ``token_groups``, ...), plus ``task``, ``ood``
    (batches to score as OOD at each evaluation) and ``every`` (default ``logging_steps``)."""

    def __init__(self, out: str | Path, head: nn.Module | str | None = None, *,
                 task: str | None = None, ood=None, every: int | None = None,
                 config: dict | None = None, **recorder_kw: Any) -> None:
        if task not in (None, "causal_lm", "sequence_classification"):
            raise ValueError(f"task must be 'causal_lm' or 'sequence_classification', "
                             f"got {task!r}")
        self.out, self.head, self.task, self.ood = Path(out), head, task, ood
        self.every, self.config, self.kw = every, config, recorder_kw
        self.recorder: Recorder | None = None
        self._inits, self._state, self._handle, self._warned = 0, None, None, False

    def on_init_end(self, args, state, control, **kwargs):
        """At ``Trainer(...)``, before anything is written: one callback per run folder."""
        self._inits += 1
        folders = state.__dict__.setdefault("_geomviz_folders", set())  # this Trainer's
        if self._inits > 1 or self.out.resolve() in folders:
            raise ValueError(f"GeomvizCallback for {self.out} was added to the Trainer twice: "
                             "give each run one callback")
        folders.add(self.out.resolve())

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        key = self.out.resolve()
        other = _OPEN.get(key)
        if other is not None and other is not self and other.recorder is not None \
                and not other.recorder.closed:
            if other._state is state:  # two callbacks on one folder in this Trainer
                raise ValueError(f"two GeomvizCallbacks write {self.out} in one Trainer: give "
                                 "each run one callback")
            # an earlier train() in this process died (the Trainer has no exception hook):
            # end its run as crashed so that this one may resume it
            other._end("crashed", "its Trainer stopped without ending the run")
        task = self.task or find_task(model)
        causal = task == "causal_lm"
        head = find_head(model, task) if self.head is None else self.head
        cfg = getattr(model, "config", None)
        classes = getattr(cfg, "vocab_size" if causal else "num_labels", None)
        config = {"lr": args.learning_rate, **{k: getattr(args, k, None) for k in ARG_KEYS},
                  "model_type": getattr(cfg, "model_type", type(model).__name__),
                  **(self.config or {})}
        every = self.every or (args.logging_steps if args.logging_steps >= 1 else 50)
        self.recorder = Recorder(
            self.out, model, head, causal=causal, num_classes=classes, config=config,
            every=int(every), total_steps=state.max_steps or None, integration="hf",
            resume_from=state.global_step or None, **{"labels": _labels, **self.kw})
        self._state = state
        self._handle = model.register_forward_pre_hook(self._before_forward, with_kwargs=True)
        _OPEN[key] = self

    def _before_forward(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        """Arm the probes for the coming optimizer step with this call's labels."""
        if not module.training or self.recorder is None:
            return
        rule = self.kw.get("labels")  # the user's rule, on the call's keyword inputs
        y = rule(kwargs) if rule is not None else kwargs.get("labels")
        if y is None and self.recorder.causal:  # popped for compute_loss_func
            y = _labels({"input_ids": kwargs.get("input_ids", args[0] if args else None),
                         "attention_mask": kwargs.get("attention_mask")})
        if y is not None:
            self.recorder.before_step(self._state.global_step + 1, y,
                                      epoch=int(self._state.epoch or 0))
        elif not self._warned:
            self._warned = True
            warnings.warn("geomviz: the model was called without labels (popped by the Trainer "
                          "for compute_loss_func?): no probe statistics are recorded; pass "
                          "labels=fn(inputs)", RuntimeWarning, stacklevel=2)

    def on_step_end(self, args, state, control, **kwargs):
        if self.recorder is not None:
            self.recorder.log(state.global_step)  # the probes' row (the loss comes in on_log)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.recorder is None or not logs or "loss" not in logs:
            return
        keep = {"loss": "loss", "learning_rate": "lr", "grad_norm": "grad_norm"}
        values = {keep[k]: float(v) for k, v in logs.items()
                  if k in keep and isinstance(v, (int, float))}
        self.recorder.writer.scalars(state.global_step, values, split="train",
                                     epoch=int(state.epoch or 0))
        self.recorder.writer.flush()

    def on_evaluate(self, args, state, control, model=None, eval_dataloader=None, **kwargs):
        if self.recorder is not None and eval_dataloader is not None:
            self.recorder.evaluate(state.global_step, test=eval_dataloader, ood=self.ood)

    def on_train_end(self, args, state, control, **kwargs):
        self._end()

    def _end(self, status: str | None = None, message: str | None = None) -> None:
        if _OPEN.get(self.out.resolve()) is self:
            del _OPEN[self.out.resolve()]
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if self.recorder is not None:
            self.recorder.close(status, message)


def _labels(batch: dict) -> Tensor:
    """A batch's labels, or for a causal LM without them its ``input_ids`` with padding
    (``attention_mask == 0``) ignored."""
    if isinstance(batch.get("labels"), Tensor):
        return batch["labels"]
    if isinstance(batch.get("label"), Tensor):
        return batch["label"]
    ids = batch.get("input_ids")
    if not isinstance(ids, Tensor):
        raise ValueError("cannot find the labels of a batch: give 'labels' or 'input_ids'")
    mask = batch.get("attention_mask")
    return ids if mask is None else ids.masked_fill(mask == 0, IGNORE_INDEX)
