"""Tiny Transformers models built from configs (random weights, nothing downloaded) and
token data for the HF tests, benchmark and example."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

V, T = 64, 16


class Tokens(Dataset):
    """Sequences of a repeating pattern with noise (learnable next tokens); ``label`` (the
    first token mod ``classes``) for classification, ``labels`` = inputs for causal LMs."""

    def __init__(self, n: int, classes: int | None = None, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        start = torch.randint(V, (n, 1), generator=g)
        self.ids = (start + torch.arange(T) * 3) % V
        noise = torch.rand(n, T, generator=g) < 0.1
        self.ids[noise] = torch.randint(V, (int(noise.sum()),), generator=g)
        self.classes = classes

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        if self.classes:
            return {"input_ids": self.ids[i], "labels": self.ids[i, 0] % self.classes}
        return {"input_ids": self.ids[i], "labels": self.ids[i].clone()}


def tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=T, n_embd=32, n_layer=2,
                                      n_head=2, tie_word_embeddings=False,
                                      bos_token_id=0, eos_token_id=0))


def tiny_bert(classes: int = 3):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=V, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=T, num_labels=classes))


def args(out, **kw):
    from transformers import TrainingArguments

    kw = {"output_dir": str(out), "max_steps": 8, "logging_steps": 2, "eval_strategy": "steps",
          "eval_steps": 4, "per_device_train_batch_size": 8, "per_device_eval_batch_size": 16,
          "learning_rate": 1e-3, "report_to": [], "save_strategy": "no", "use_cpu": True,
          "disable_tqdm": True, "seed": 0, **kw}
    return TrainingArguments(**kw)
