"""Record a Hugging Face Trainer run: a tiny GPT-2 (random weights, built from a config) on a
synthetic token language, trained with CE and with TFSD as its head and loss.

    python examples/hf_trainer.py [RUNS]       # GEOMVIZ_SMOKE=1: a few seconds
The one added line is marked "# geomviz".
"""
import os
import sys

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

from geomviz.integrations.hf import GeomvizCallback
from geomviz.objectives import create_objective

RUNS = sys.argv[1] if len(sys.argv) > 1 else "runs"
SMOKE = bool(os.environ.get("GEOMVIZ_SMOKE"))
V, T, D = 256, 32, 64


def sequences(n: int, seed: int) -> torch.Tensor:
    """Token t+1 = token t + a per-sequence stride (mod V), with 10% random tokens."""
    g = torch.Generator().manual_seed(seed)
    start, stride = torch.randint(V, (n, 1), generator=g), torch.randint(1, 8, (n, 1), generator=g)
    ids = (start + stride * torch.arange(T)) % V
    noise = torch.rand(n, T, generator=g) < 0.1
    return torch.where(noise, torch.randint(V, (n, T), generator=g), ids)


train = [{"input_ids": s, "labels": s} for s in sequences(64 if SMOKE else 4096, 0)]
test = [{"input_ids": s, "labels": s} for s in sequences(64 if SMOKE else 512, 1)]
ood = [{"input_ids": torch.randint(V, (64, T))}]  # no structure at all
probe = sequences(32, 2)
for name in ("ce", "tfsd"):
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=T, n_embd=D, n_layer=2,
                                       n_head=4, tie_word_embeddings=False))
    objective = create_objective(name, D, V)
    model.lm_head = objective.head  # logits from the objective's head (linear or distance)

    def loss(outputs, labels, num_items_in_batch=None, objective=objective):
        return objective.loss(outputs.logits[:, :-1], labels[:, 1:])  # next-token targets

    args = TrainingArguments(output_dir=f"{RUNS}/.hf/{name}", max_steps=8 if SMOKE else 1500,
                             logging_steps=4 if SMOKE else 25, eval_strategy="steps",
                             eval_steps=8 if SMOKE else 250, learning_rate=1e-3,
                             per_device_train_batch_size=32, report_to=[], save_strategy="no",
                             use_cpu=True, disable_tqdm=True)
    cb = GeomvizCallback(f"{RUNS}/hf_trainer/{name}", objective=objective, ood=ood,
                         probe_set=(probe, probe), probe_size=300)  # geomviz
    Trainer(model=model, args=args, train_dataset=train, eval_dataset=test,
            compute_loss_func=loss, callbacks=[cb]).train()
print(f"geomviz dashboard {RUNS}   # then open "
      "http://127.0.0.1:8050/compare?a=hf_trainer/ce&b=hf_trainer/tfsd")
