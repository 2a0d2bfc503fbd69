"""Pure figure builders: data in, ``plotly.graph_objects.Figure`` out.

``panels`` draws the dashboard's interactive panels, ``blog`` and ``distributions`` the
publication figure set (reusing the panels' conventions), ``theme`` the shared look and
colours, ``axes`` readable ticks and ranges at any data range, ``labels`` the names a
reader sees (legend labels, hover names, table numbers).
No builder reads files or keeps state.
"""

from .axes import apply_ticks, nice_ticks, padded_range
from .blog import (
    angle_radius,
    gradient_split,
    manifold_grid,
    summary_table,
    target_entropy,
    target_vs_bayes,
)
from .distributions import norm_growth, ood
from .labels import group_key, pretty_key, run_labels, table_column
from .panels import (
    OOD_COLOR,
    PALETTE,
    common_ranges,
    decomposition,
    entropy,
    hover_rows,
    hover_template,
    loss_accuracy,
    manifold,
    norm_heatmap,
    ood_scores,
    series,
    trace_masks,
)
from .theme import OBJECTIVE_COLORS, group_colors, objective_colors, template

__all__ = [
    "manifold", "trace_masks", "hover_rows", "hover_template", "common_ranges", "norm_heatmap",
    "series", "decomposition",
    "entropy", "loss_accuracy", "ood_scores", "PALETTE", "OOD_COLOR", "norm_growth",
    "manifold_grid", "angle_radius", "gradient_split", "target_entropy", "ood",
    "summary_table", "target_vs_bayes", "OBJECTIVE_COLORS", "objective_colors", "template",
    "group_colors", "apply_ticks", "nice_ticks", "padded_range", "group_key", "pretty_key",
    "run_labels", "table_column",
]
