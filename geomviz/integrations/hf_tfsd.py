"""TFSD under a Hugging Face causal LM in one call, as Liger-Kernel patches its fused CE in.

    from geomviz.integrations.hf_tfsd import apply_tfsd
    model = LlamaForCausalLM(config)
    apply_tfsd(model)                  # model(input_ids, labels=labels).loss is now TFSD

What the call changes, on this one instance (the class and other instances are untouched):

* ``model.lm_head`` becomes a :class:`DistanceLMHead` holding the *same* weight Parameter,
  so its rows are the class centres: logits ``z[*, V] = -s·||h - c_j||²`` (always <= 0).
  The state-dict key stays ``lm_head.weight``, optimizers that already hold the Parameter
  keep training it, and checkpoints load back into a stock model (then re-apply).
* ``model.forward`` computes the TFSD loss (zero-anchor target, closed form; see
  :func:`geomviz.objectives.tfsd_loss`) on the shifted labels, exactly as the stock model
  computes CE: same shift, ``ignore_index=-100``, and ``num_items_in_batch`` (passed by
  ``Trainer`` under gradient accumulation) turns the mean into sum / num_items.
* In training with labels and a fused loss (``fused="auto"`` and ``V >= 8192``, or
  ``fused=True``), the loss comes from the hidden states and the centres through
  :func:`geomviz.objectives.fused_tfsd_loss` (chunked PyTorch on CPU, Triton on CUDA), so
  no ``[N, V]`` logits tensor exists; ``outputs.logits`` is then ``None`` (as in Liger).
  In eval mode, without labels and in ``generate``, the model returns distance logits.

Tied embeddings (GPT-2's default, Llama's when ``tie_word_embeddings=True``): the centres
*are* the input embedding rows; the patch does not untie them. TFSD then pulls the hidden
state that predicts token j towards the point where token j is also embedded as input, so
the input space and the output classes share one metric geometry, and the centres'
gradient reaches the input embeddings. To train untied centres, build the model with
``tie_word_embeddings=False`` before patching.

``scale`` defaults to ``ln(V)/D`` (``D = hidden_size``). A final-norm hidden state has
``||h||² ≈ D`` and fresh embedding rows are near the origin, so the zero anchor lifts the
true class by about ``s·D`` nats: ``ln V`` here, so the target gives it about half its
mass whatever ``V``. The classifier default ``1/D`` (``tfsd_scaled``) lifts it by 1 nat,
i.e. a target weight of ``e/(e + V - 1)`` (8e-5 at ``V = 32768``), where loss and
gradient nearly vanish (see the measurements in docs/reference/large-vocab.md). Either way
the TFSD loss is not monotone in accuracy early on: it is small while the logits are
near-uniform and grows as they spread, before it falls.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass, fields
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..objectives.fused import BACKENDS, check_chunk_size, fused_tfsd_loss
from ..objectives.heads import Head, Metric, check_scale, squared_distances
from ..objectives.losses import tfsd_loss

__all__ = ["FUSED_MIN_VOCAB", "SUPPORTED", "DistanceLMHead", "TFSDPatch", "apply_tfsd"]

#: ``fused="auto"`` fuses at this vocabulary size and above.
FUSED_MIN_VOCAB = 8192

#: class name -> attribute of the decoder that returns ``last_hidden_state``. Each family's
#: stock forward computes ``lm_head(hidden_states)`` then the loss; tested in
#: tests/integrations/test_hf_tfsd.py with a tiny random config each.
SUPPORTED = {
    "GPT2LMHeadModel": "transformer",
    "LlamaForCausalLM": "model",
    "MistralForCausalLM": "model",
    "Qwen2ForCausalLM": "model",
    "Qwen3ForCausalLM": "model",
}

_LOSS_KWARGS = ("num_items_in_batch", "ignore_index", "shift_labels")


@dataclass(frozen=True)
class TFSDPatch:
    """What :func:`apply_tfsd` set on a model (kept as ``model.geomviz_tfsd``)."""

    scale: float
    fused: bool
    backend: str
    chunk_size: int | None
    validate: bool
    base: str  # attribute of the decoder
    objective: str = "tfsd"


class DistanceLMHead(Head):
    """Distance logits ``z = -s·||h - c||²`` over the rows ``c`` of an existing LM-head weight.

    A geomviz :class:`~geomviz.objectives.heads.Head`, so probes read its centres and scale
    as they read :class:`~geomviz.objectives.heads.EuclideanHead`'s.
    """

    metric: ClassVar[Metric] = "euclidean"

    def __init__(self, weight: nn.Parameter, scale: float) -> None:
        super().__init__()
        self.weight = weight  # [V, D], the same Parameter (tying and optimizers are kept)
        self._scale = check_scale(scale)

    @property
    def num_classes(self) -> int:  # type: ignore[override]
        return self.weight.shape[0]

    @property
    def in_features(self) -> int:  # type: ignore[override]
        return self.weight.shape[1]

    @property
    def class_vectors(self) -> Tensor:
        return self.weight

    @property
    def scale(self) -> float:
        return self._scale

    def forward(self, hidden: Tensor) -> Tensor:
        """``hidden[*, D] -> logits[*, V]`` (fp32, or fp64 for fp64 input)."""
        self._check_features(hidden)
        d = squared_distances(hidden.reshape(-1, self.in_features), self.weight)  # [N, V]
        return d.mul_(-self._scale).reshape(*hidden.shape[:-1], self.num_classes)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_classes={self.num_classes}, " \
               f"scale={self._scale:g}"


def _family(model: nn.Module) -> str:
    for cls in type(model).__mro__:
        if cls.__name__ in SUPPORTED:
            return cls.__name__
    raise ValueError(
        f"apply_tfsd supports the causal LMs {', '.join(SUPPORTED)}; got "
        f"{type(model).__name__} (its loss and logits are computed elsewhere, so the patch "
        f"would not reach them)")


def apply_tfsd(model: nn.Module, scale: float | None = None, fused: bool | str = "auto",
               backend: str = "auto", chunk_size: int | None = None,
               validate: bool = False) -> nn.Module:
    """Switch a Transformers causal LM to TFSD on distance logits, in place; returns it.

    ``scale``: ``s`` in ``z = -s·||h - c||²`` (default ``ln(V)/hidden_size``). ``fused``:
    ``"auto"`` (fused at ``V >= 8192``), ``True`` or ``False``. ``backend``/``chunk_size``:
    those of :func:`~geomviz.objectives.fused_tfsd_loss`. ``validate=True`` checks targets
    and logit signs on every call (a host sync; off by default, as in the stock CE).
    Raises ``ValueError`` for unsupported models, an LM head with a bias, a second call,
    or bad arguments.
    """
    family = _family(model)
    if getattr(model, "geomviz_tfsd", None) is not None:
        raise ValueError("apply_tfsd was already applied to this model")
    head = getattr(model, "lm_head", None)
    if not isinstance(head, nn.Linear):
        raise ValueError(f"apply_tfsd expects {family}.lm_head to be nn.Linear, "
                         f"got {type(head).__name__}")
    if head.bias is not None:
        raise ValueError("apply_tfsd needs an LM head without bias: a bias would make "
                         "distance logits positive and the zero anchor meaningless")
    if fused not in ("auto", True, False):
        raise ValueError(f"fused must be 'auto', True or False, got {fused!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    vocab, dim = head.weight.shape
    s = check_scale(math.log(vocab) / dim if scale is None else scale)
    patch = TFSDPatch(scale=s, fused=(vocab >= FUSED_MIN_VOCAB) if fused == "auto" else fused,
                      backend=backend, chunk_size=check_chunk_size(chunk_size),
                      validate=bool(validate), base=SUPPORTED[family])
    model.lm_head = DistanceLMHead(head.weight, s)
    model.geomviz_tfsd = patch
    # bound to this instance, as accelerate wraps forwards (via __func__); the signature
    # seen by Trainer and generate (functools.wraps) stays the stock one
    model.forward = _tfsd_forward(type(model).forward).__get__(model, type(model))
    return model


def _tfsd_forward(stock):
    sig = inspect.signature(stock)
    var_kw = next((p.name for p in sig.parameters.values()
                   if p.kind is inspect.Parameter.VAR_KEYWORD), None)

    @functools.wraps(stock)
    def forward(self, *args, **kwargs):
        bound = sig.bind_partial(self, *args, **kwargs).arguments
        named = {k: v for k, v in bound.items() if k not in ("self", var_kw)}
        named.update(bound.get(var_kw, {}))
        labels = named.pop("labels", None)
        loss_kw = {k: named.pop(k) for k in _LOSS_KWARGS if k in named}
        if labels is None and loss_kw.get("shift_labels") is None:
            return stock(self, **named)  # distance logits, no loss (eval, generate)
        patch: TFSDPatch = self.geomviz_tfsd
        ignore = loss_kw.get("ignore_index", -100)
        target = loss_kw.get("shift_labels")
        if target is None:  # the stock shift: position t predicts token t+1, the last none
            target = F.pad(labels, (0, 1), value=ignore)[..., 1:]  # [B, T]
        n_items = loss_kw.get("num_items_in_batch")
        reduction = "mean" if n_items is None else "sum"
        return_dict = named.pop("return_dict", None)
        if return_dict is None:
            return_dict = getattr(self.config, "return_dict", True)
        if patch.fused and self.training:
            named.pop("logits_to_keep", None)
            base_out = getattr(self, patch.base)(**named)
            hidden = base_out[0]  # [B, T, D]
            loss = fused_tfsd_loss(hidden, self.lm_head.weight, target, patch.scale,
                                   patch.chunk_size, reduction, ignore, patch.validate,
                                   patch.backend)
            out_cls = sig.return_annotation
            keep = {f.name for f in fields(out_cls)} - {"loss", "logits"}
            extra = base_out.items() if hasattr(base_out, "items") else ()
            out = out_cls(loss=_per_item(loss, n_items), logits=None,
                          **{k: v for k, v in extra if k in keep})
        else:
            out = stock(self, **named, return_dict=True)
            loss = tfsd_loss(out.logits, target, reduction, ignore, patch.validate)
            out = type(out)(**{**out, "loss": _per_item(loss, n_items)})
        return out if return_dict else out.to_tuple()

    return forward


def _per_item(loss: Tensor, n_items) -> Tensor:
    """The stock loss's gradient-accumulation rule: sum / num_items_in_batch when given."""
    if n_items is None:
        return loss
    if torch.is_tensor(n_items):
        n_items = n_items.to(loss.device)
    return loss / n_items
