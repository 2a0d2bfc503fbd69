"""Record your own PyTorch loop: CE and TFSD on MNIST-1D (digits 8, 9 held out as OOD).

    python examples/plain_loop.py [RUNS]       # GEOMVIZ_SMOKE=1: a few seconds
The four recorder lines are marked "# geomviz".
"""
import os
import sys

import torch
from mnist1d.data import get_dataset_args, make_dataset
from torch import nn

import geomviz
from geomviz.objectives import create_objective

RUNS = sys.argv[1] if len(sys.argv) > 1 else "runs"
STEPS = 30 if os.environ.get("GEOMVIZ_SMOKE") else 3000
d = make_dataset(get_dataset_args())  # offline: generated, never downloaded
x, y = torch.tensor(d["x"], dtype=torch.float32), torch.tensor(d["y"])
xt, yt = torch.tensor(d["x_test"], dtype=torch.float32), torch.tensor(d["y_test"])
x, y, x_ood, xt, yt = x[y < 8], y[y < 8], xt[yt >= 8], xt[yt < 8], yt[yt < 8]

for name in ("ce", "tfsd"):
    torch.manual_seed(0)
    # The one-line switch between heads: create_objective("ce", ...) is a dot-product
    # head with cross-entropy, create_objective("tfsd", ...) a distance head with TFSD's
    # loss; nothing else in the loop changes.
    objective = create_objective(name, 64, 8)  # the head and the loss of its logits
    model = nn.Sequential(nn.Linear(40, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(),
                          objective.head)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    config = {"lr": 1e-3, "batch_size": 128, "steps": STEPS, "seed": 0}
    with geomviz.Recorder(f"{RUNS}/plain_loop/{name}", model, head="4", objective=objective,
                          config=config, every=25, total_steps=STEPS,
                          probe_set=(xt[:400], yt[:400]), probe_ood=x_ood[:100]) as rec:  # geomviz
        for step in range(1, STEPS + 1):
            idx = torch.randint(len(x), (128,))
            rec.before_step(step, y[idx])  # geomviz
            loss = objective.loss(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log(step, loss=loss, lr=opt.param_groups[0]["lr"])  # geomviz
        rec.evaluate(STEPS, test=[(xt, yt)], ood=[x_ood])  # geomviz
print(f"geomviz dashboard {RUNS}   # then open "
      "http://127.0.0.1:8050/compare?a=plain_loop/ce&b=plain_loop/tfsd")
