"""geomviz: see the geometry of deep-learning training (CE vs TFSD and ablations).

Layers, in the direction data flows: ``data`` and ``models`` feed ``training`` (with the
hook-based ``probes`` package), which writes a run ``store``; ``projection``, ``study`` and
``figures`` read stores into pure figures; ``dashboard`` serves them; ``cli`` drives it all.
:class:`Recorder` records a training loop geomviz did not write as a run of its own
(``geomviz.integrations`` has the Lightning and Transformers callbacks).
"""

from .integrations.recorder import Recorder
from .objectives import (
    EuclideanHead,
    Head,
    LinearHead,
    Objective,
    create_objective,
    cross_entropy,
    fused_ce_loss,
    fused_tfsd_loss,
    label_smoothing_loss,
    list_objectives,
    logitnorm_loss,
    objective_info,
    tfsd_loss,
    zloss_cross_entropy,
)

__version__ = "0.1.0"

__all__ = [
    "EuclideanHead",
    "Head",
    "LinearHead",
    "Objective",
    "Recorder",
    "create_objective",
    "cross_entropy",
    "fused_ce_loss",
    "fused_tfsd_loss",
    "label_smoothing_loss",
    "list_objectives",
    "logitnorm_loss",
    "objective_info",
    "tfsd_loss",
    "zloss_cross_entropy",
]
