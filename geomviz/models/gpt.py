"""A small pre-LayerNorm decoder-only Transformer (a GPT), as the backbone of a language model.

``forward_features(tokens[B, T]) -> features[B, T, D]``: the final LayerNorm's output, which
the objective's head (the LM head: a linear unembedding or Euclidean class centres) turns
into next-token logits. Attention is causal, through ``F.scaled_dot_product_attention``.

``qk_layernorm`` normalises queries and keys per head before their dot product (Wortsman
et al. 2023, Dehghani et al. 2023), which bounds the attention logits.

Instability probes read ``last_attn_logit_max`` (``[n_layer]``, the largest pre-softmax
attention logit of each layer at the last forward in which ``record_attn`` was set) and
``last_block_out_norm`` (``[n_layer]``, the mean norm of each block's output). Both are
device tensors, computed only when asked: the training step never synchronises for them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["GPT", "GPT_SIZES"]

# (layers, heads); the width is the config's feature_dim
GPT_SIZES: dict[str, tuple[int, int]] = {"tiny": (2, 4), "small": (12, 12)}


class _Attention(nn.Module):
    def __init__(self, d: int, n_head: int, qk_layernorm: bool) -> None:
        super().__init__()
        self.n_head, self.d_head = n_head, d // n_head
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.q_norm = nn.LayerNorm(self.d_head) if qk_layernorm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.d_head) if qk_layernorm else nn.Identity()

    def forward(self, x: Tensor, record: list | None = None) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)  # each [B, T, D]
        q, k, v = (u.view(b, t, self.n_head, self.d_head).transpose(1, 2) for u in (q, k, v))
        q, k = self.q_norm(q), self.k_norm(k)  # [B, H, T, Dh]
        if record is not None:  # the largest causal pre-softmax logit (probes only)
            with torch.no_grad():
                s = (q.float() @ k.float().transpose(-2, -1)) / math.sqrt(self.d_head)
                mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
                record.append(s.masked_fill(~mask, float("-inf")).amax())
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, T, Dh]
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class _Block(nn.Module):
    def __init__(self, d: int, n_head: int, qk_layernorm: bool) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = _Attention(d, n_head, qk_layernorm)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: Tensor, record: list | None = None) -> Tensor:
        x = x + self.attn(self.ln1(x), record)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Token and position embeddings, ``n_layer`` pre-LN blocks, a final LayerNorm."""

    def __init__(self, vocab_size: int, block_size: int = 256, n_layer: int = 2, n_head: int = 4,
                 d_model: int = 128, qk_layernorm: bool = False) -> None:
        super().__init__()
        if min(vocab_size, block_size, n_layer, n_head, d_model) < 1:
            raise ValueError("GPT sizes must be >= 1")
        if d_model % n_head:
            raise ValueError(f"the width {d_model} must be a multiple of the heads {n_head}")
        self.vocab_size, self.block_size, self.feature_dim = vocab_size, block_size, d_model
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(block_size, d_model)
        self.blocks = nn.ModuleList(_Block(d_model, n_head, qk_layernorm) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model)
        self.record_attn = False  # set by the probes on a probe step (host-side flag)
        self.last_attn_logit_max: Tensor | None = None  # [n_layer], device
        self.last_block_out_norm: Tensor | None = None  # [n_layer], device
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: scaled init of residual projections
            if name.endswith("attn.proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def forward_features(self, idx: Tensor) -> Tensor:
        """``idx[B, T]`` token ids -> ``[B, T, D]`` features for the LM head."""
        b, t = idx.shape
        if t > self.block_size:
            raise ValueError(f"sequence length {t} is longer than the context {self.block_size}")
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))  # [B, T, D]
        record: list | None = [] if self.record_attn else None
        norms = []
        for block in self.blocks:
            x = block(x, record)
            if record is not None:
                norms.append(torch.linalg.vector_norm(x.detach().float(), dim=-1).mean())
        if record is not None:
            self.last_attn_logit_max = torch.stack(record)
            self.last_block_out_norm = torch.stack(norms)
        return self.ln_f(x)
