"""The label-noise figure (claim C6: TFSD "caps the gradients for outliers").

A pure builder over per-objective seed series, in :mod:`geomviz.figures.blog`'s
conventions: seed mean with a min-max band, one colour per objective, shared step axes.
"""

from __future__ import annotations

import numpy as np

from .blog import SeedSeries, _band, _finish, _subplots

__all__ = ["outlier_gradients", "ratio_series"]


def ratio_series(num: SeedSeries, den: SeedSeries) -> SeedSeries:
    """Per seed, ``num / den`` on the steps both logged (seeds paired in order); a seed
    missing either series is left out."""
    out: SeedSeries = []
    for (sn, vn), (sd, vd) in zip(num, den, strict=False):
        sn, sd = np.asarray(sn), np.asarray(sd)
        steps = np.intersect1d(sn, sd)
        if not len(steps):
            continue
        a = np.asarray(vn, dtype=np.float64)[np.searchsorted(sn, steps)]
        b = np.asarray(vd, dtype=np.float64)[np.searchsorted(sd, steps)]
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append((steps, np.where(b > 0, a / b, np.nan)))
    return out


def outlier_gradients(noisy: dict[str, SeedSeries], clean: dict[str, SeedSeries],
                      memorised: dict[str, SeedSeries], colors: dict[str, str]):
    """Per objective over training: the mean per-sample feature-gradient norm
    ‖∂ℓ_i/∂x_i‖ on flipped (solid) and clean (dotted) samples; their ratio; and the share
    of flipped samples predicted with their flipped label.

    ``noisy``/``clean``: ``grad.noisy.norm.mean``/``grad.clean.norm.mean`` (train split);
    ``memorised``: ``train_eval.memorised``. A capped outlier gradient shows as a ratio
    near 1 and a memorised share that stays low.
    """
    fig = _subplots(2, 2, specs=[[{"colspan": 2}, None], [{}, {}]], vertical_spacing=0.16,
                    horizontal_spacing=0.12,
                    subplot_titles=("mean ‖∂ℓ/∂x‖ per sample: flipped (solid), clean (dotted)",
                                    "flipped ÷ clean", "flipped labels memorised"))
    for name in dict.fromkeys([*noisy, *clean, *memorised]):
        color = colors[name]
        if name in noisy:
            _band(fig, noisy[name], name, color, 1, 1, what="flipped samples")
        if name in clean:
            _band(fig, clean[name], name, color, 1, 1, dash="dot", showlegend=name not in noisy,
                  what="clean samples")
        if name in noisy and name in clean:
            ratio = ratio_series(noisy[name], clean[name])
            if ratio:
                _band(fig, ratio, name, color, 2, 1, showlegend=False, what="flipped ÷ clean")
        if name in memorised:
            _band(fig, memorised[name], name, color, 2, 2, what="flipped labels memorised",
                  showlegend=name not in noisy and name not in clean)
    fig.add_hline(y=1.0, line={"color": "#888", "width": 1, "dash": "dash"}, row=2, col=1)
    fig.update_yaxes(type="log", title_text="‖∂ℓ/∂x‖ (loss per feature unit)", row=1, col=1)
    fig.update_yaxes(type="log", title_text="ratio (×)", row=2, col=1)
    fig.update_yaxes(range=[0, 1], title_text="share of flipped samples", row=2, col=2)
    for row, col in ((1, 1), (2, 1), (2, 2)):
        fig.update_xaxes(title_text="training step", row=row, col=col)
    fig.update_xaxes(matches="x", row=2, col=1)  # one step axis for all three panels
    fig.update_xaxes(matches="x", row=2, col=2)
    return _finish(fig, "Outlier gradients under label noise", 720)
