"""Hook-based probes of the geometry of training (feature norms, angle vs radius, the
radial/tangential gradient split, target and prediction entropy, manifold snapshots).

Public API::

    from probes import attach
    with attach(model, head=None, writer=run_writer, every=50) as session:
        ...  # session.before_step(step, y); train; session.flush(step, epoch)

Store keys are stable dotted names, e.g. ``penultimate.norm.mean``,
``head.cos_true.mean``, ``grad.radial_fraction``, ``entropy.hard.target``,
``decomp.radial``; see docs/reference/probes.md for the full list.
"""

from .session import ProbeSession, attach, resolve_head, target_kind
from .snapshots import select_probe_set, snapshot_arrays, snapshot_steps
from .stats import batch_stats, grad_stats, layout
from .summary import decompose, shapley3, summarize

__all__ = [
    "ProbeSession", "attach", "batch_stats", "decompose", "grad_stats", "layout",
    "resolve_head", "select_probe_set", "shapley3", "snapshot_arrays", "snapshot_steps",
    "summarize", "target_kind",
]
