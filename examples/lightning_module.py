"""Record a LightningModule: CE and TFSD on MNIST-1D (digits 8, 9 held out as OOD).

    python examples/lightning_module.py [RUNS]       # GEOMVIZ_SMOKE=1: a few seconds
The one added line is marked "# geomviz".
"""
import os
import sys

import lightning.pytorch as L
import torch
from mnist1d.data import get_dataset_args, make_dataset
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from geomviz.integrations.lightning import GeomvizCallback
from geomviz.objectives import create_objective

RUNS = sys.argv[1] if len(sys.argv) > 1 else "runs"
EPOCHS = 1 if os.environ.get("GEOMVIZ_SMOKE") else 40


class Net(L.LightningModule):
    def __init__(self, objective: str = "ce", lr: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters()  # stored as the run's config
        self.body = nn.Sequential(nn.Linear(40, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU())
        # The one-line switch between heads: Net("ce") trains a dot-product head with
        # cross-entropy, Net("tfsd") a distance head with TFSD's loss; nothing else changes.
        self.objective = create_objective(objective, 64, 8)  # head + loss of its logits

    def forward(self, x):
        return self.objective.head(self.body(x))

    def training_step(self, batch, _):
        x, y = batch
        return self.objective.loss(self(x), y)

    def validation_step(self, batch, _):
        self.log("val_loss", self.objective.loss(self(batch[0]), batch[1]))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


d = make_dataset(get_dataset_args())  # offline: generated, never downloaded
x, y = torch.tensor(d["x"], dtype=torch.float32), torch.tensor(d["y"])
xt, yt = torch.tensor(d["x_test"], dtype=torch.float32), torch.tensor(d["y_test"])
train = DataLoader(TensorDataset(x[y < 8], y[y < 8]), batch_size=128, shuffle=True)
val = DataLoader(TensorDataset(xt[yt < 8], yt[yt < 8]), batch_size=500)
x_ood = [xt[yt >= 8]]
for name in ("ce", "tfsd"):
    torch.manual_seed(0)
    cb = GeomvizCallback(f"{RUNS}/lightning/{name}", head="objective.head", objective=name,
                         every=10, probe_set=(xt[yt < 8][:400], yt[yt < 8][:400]),
                         probe_ood=x_ood[0][:100], ood=x_ood)  # geomviz
    L.Trainer(max_epochs=EPOCHS, callbacks=[cb], logger=False, enable_checkpointing=False,
              enable_progress_bar=False, accelerator="cpu").fit(Net(name), train, val)
print(f"geomviz dashboard {RUNS}   # then open "
      "http://127.0.0.1:8050/compare?a=lightning/ce&b=lightning/tfsd")
