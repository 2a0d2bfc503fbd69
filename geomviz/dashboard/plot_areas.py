"""Equal plot areas for paired figures: the same fixed margins, colour bars and legends in
a reserved margin, so one side's colour bar or legend cannot shrink its plot."""

from __future__ import annotations

COLORBAR_MARGIN = 110  # px right of the plot for a colour bar, its ticks and its title
KEY_MARGIN = 150  # px right of the plot for a legend of line styles
Y2_MARGIN = 60  # px for a right-hand axis (accuracy)
ROW_PX, LEGEND_WIDTH = 24, 440  # a legend row; the narrowest plot width it must fit
X_TITLE_PX = 46  # tick labels and the x-axis title, above a legend under the plot


def _legend_entries(fig) -> list[str]:
    """The names plotly shows in ``fig``'s legend (a heatmap shows none by default)."""
    if fig.layout.showlegend is False:
        return []
    shown = [t for t in fig.data if t.name and (t.showlegend is True or (
        t.showlegend is None and t.type != "heatmap"))]
    if fig.layout.showlegend is None and len(fig.data) < 2:
        return []
    return [str(t.name) for t in shown]


def _right_margin(fig) -> int:
    need = 20
    for t in fig.data:
        marker = getattr(t, "marker", None)
        if (t.type == "heatmap" and t.showscale is not False) or \
                (marker is not None and getattr(marker, "showscale", None)):
            need = max(need, COLORBAR_MARGIN)
    if "yaxis2" in fig.layout and fig.layout["yaxis2"].overlaying:
        need = max(need, Y2_MARGIN)
    legend = fig.layout.legend
    if legend.x is not None and legend.x >= 1 and _legend_entries(fig):
        need = max(need, KEY_MARGIN)
    return need


def _rows_below(fig) -> int:
    legend = fig.layout.legend
    if legend.x is not None and legend.x >= 1:
        return 0
    names = _legend_entries(fig)
    if not names or fig.layout.showlegend is False:
        return 0
    width = sum(62 + 7 * len(n) for n in names)  # a symbol, the name's text, a gap
    return min(4, -(-width // LEGEND_WIDTH))


def equal_plot_areas(figs: list) -> None:
    """Give paired figures the same margins, fixed (``autoexpand`` off), so a colour bar or
    a legend on one side only cannot shrink that side's plot: the same range is then drawn
    at the same pixel scale with the same ticks. Colour bars and right-hand legends sit in
    the reserved right margin, legends under the plot in the reserved bottom margin."""
    if not figs:
        return
    left = max(max(int(f.layout.margin.l or 60), 64) for f in figs)
    top = max(int(f.layout.margin.t or 44) for f in figs)
    right = max(_right_margin(f) for f in figs)
    rows = max(_rows_below(f) for f in figs)
    bottom = max(max(int(f.layout.margin.b or 40) for f in figs), 40)
    if rows:  # plotly lifts the x title above a legend at the bottom: room for both
        bottom = max(bottom, X_TITLE_PX) + ROW_PX * rows + 4
    for f in figs:
        f.update_layout(margin={"l": left, "r": right, "t": top, "b": bottom,
                                "autoexpand": False})
        legend = f.layout.legend
        if legend.x is not None and legend.x >= 1:
            legend.update(x=1.0, xanchor="left", xref="paper")
        else:  # under the x-axis title, at the figure's bottom: inside the margin
            legend.update(orientation="h", x=0, xanchor="left", y=0, yref="container",
                          yanchor="bottom")
        for t in f.data:
            marker = getattr(t, "marker", None)
            if marker is not None and getattr(marker, "showscale", None):
                marker.colorbar.update(x=1.0, xanchor="left", xref="paper", xpad=12)
            elif t.type == "heatmap":
                t.colorbar.update(x=1.0, xanchor="left", xref="paper", xpad=12)
