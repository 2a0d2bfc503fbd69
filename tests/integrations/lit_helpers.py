"""A tiny LightningModule on blobs for the Lightning tests (importable by the DDP script)."""

from __future__ import annotations

import lightning.pytorch as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from geomviz.objectives import create_objective
from tests.integrations.helpers import D_IN, C, D, blobs


class Net(L.LightningModule):
    def __init__(self, objective: str = "ce", lr: float = 0.1, crash_at: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["crash_at"])
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(D_IN, D), nn.ReLU())
        self.objective = create_objective(objective, D, C)
        self.crash_at = crash_at

    def forward(self, x):
        return self.objective.head(self.body(x))

    def training_step(self, batch, _):
        if self.crash_at and self.global_step == self.crash_at:
            raise RuntimeError("simulated crash")
        x, y = batch
        return self.objective.loss(self(x), y)

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val_loss", self.objective.loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loaders(n: int = 128, batch: int = 16):
    x, y = blobs(n)
    xt, yt = blobs(64, seed=1)
    return (DataLoader(TensorDataset(x, y), batch_size=batch),
            DataLoader(TensorDataset(xt, yt), batch_size=32))


def trainer(callbacks, **kw) -> L.Trainer:
    from lightning.pytorch.callbacks import ModelCheckpoint

    ckpt = any(isinstance(c, ModelCheckpoint) for c in callbacks)
    kw = {"max_epochs": 1, "accelerator": "cpu", "devices": 1, "logger": False,
          "enable_checkpointing": ckpt, "enable_progress_bar": False,
          "enable_model_summary": False, **kw}
    return L.Trainer(callbacks=callbacks, **kw)
