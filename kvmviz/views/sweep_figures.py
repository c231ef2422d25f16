"""Sweeps drawn: one measured column of a :func:`kvmviz.experiments.grid` table over two swept
axes as an annotated heatmap (:func:`heatmap`, :func:`heatmaps` one per kernel on one colour
scale), or against one axis as a line per value of another, with the seeds' spread as a band
(:func:`curves`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullFormatter

from .._shared._checks import strict_booleans
from . import theme
from .metric_labels import METRICS

__all__ = ["curves", "heatmap", "heatmaps"]

_HEATMAP_CMAP = "YlOrBr"  # ColorBrewer sequential, colour-blind safe; orange means stalled


def _describe(value: str) -> tuple[str, str, float]:
    """(what, unit, factor) of a measured column."""
    extra = {
        "writer_hold_mean_us": ("mean mmu_lock write hold", "µs", 1.0),
        "writer_hold_max_us": ("longest mmu_lock write hold", "µs", 1.0),
        "spurious_event_hold_us": ("mmu_lock write hold per spurious event", "µs", 1.0),
        # kvmviz.metrics.freeze (chapter 08)
        "freeze_max_ms": ("longest fault: the freeze", "ms", 1.0),
        "zap_ms": ("longest zap, first grant to last release", "ms", 1.0),
        "futile_reads": ("futile reads of mmu_lock", "", 1.0),
        "yields": ("times a zap yielded mmu_lock", "", 1.0),
    }
    return {**METRICS, **extra}.get(value, (value, "", 1.0))


def _tick(value) -> str:
    """An axis value as a tick label: a number as ``:g`` writes it, a name (a kernel, a
    preemption model) as it is."""
    return f"{value:g}" if isinstance(value, int | float | np.number) else str(value)


def _label(name: str, labels: Mapping[str, str] | None) -> str:
    return (labels or {}).get(name, name)


def _cell_text(value: float, unit: str) -> str:
    if not np.isfinite(value):
        return ""
    if value == 0:
        return "0"
    if unit == "%":
        return f"{value:.1f}" if value < 10 else f"{value:.0f}"
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.2g}"


@strict_booleans
def heatmap(
    table: pd.DataFrame,
    x: str,
    y: str,
    value: str,
    *,
    ax=None,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = _HEATMAP_CMAP,
    colorbar: bool = True,
    labels: Mapping[str, str] | None = None,
    title: str | None = None,
):
    """One measured column over two axes of a sweep, as an annotated grid of coloured cells.

    Rows with the same ``(x, y)`` (several seeds, say) are averaged. ``y`` grows upwards.
    Drawn by ``seaborn.heatmap``, which also picks each cell's text colour from its
    luminance: dark on light cells, white on dark ones.

    Parameters
    ----------
    table : pandas.DataFrame
        A :func:`grid` table, or any tidy table with columns ``x``, ``y`` and ``value``;
        filter it to one kernel first.
    x, y : str
        Columns for the horizontal and vertical axes.
    value : str
        The column to colour by. Known metrics (``"stall_p99_us"``, ``"brownout_mean"``, ...) get
        their unit; shares are shown in %.
    ax : matplotlib.axes.Axes, optional
    vmin, vmax : float, optional
        Colour scale, in the unit shown (% for shares); default the data's range, from 0.
    cmap : str
        A sequential colormap; default ColorBrewer ``"YlOrBr"`` (colour-blind safe).
    colorbar : bool
        Draw a colour bar labelled with the metric and its unit.
    labels : mapping, optional
        Axis labels for the column names, e.g. ``{"n_vcpus": "vCPUs"}``.
    title : str, optional
        Default: the metric.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = ax or plt.gca()
    what, unit, factor = _describe(value)
    cells = table.pivot_table(index=y, columns=x, values=value, aggfunc="mean", observed=True)
    cells = cells * factor
    cells = cells.sort_index(ascending=False)  # seaborn draws the first row at the top
    data = cells.to_numpy(dtype=float)
    vmin = 0.0 if vmin is None else vmin
    vmax = float(np.nanmax(data)) if vmax is None else vmax
    sns.heatmap(
        cells,
        ax=ax,
        vmin=vmin,
        vmax=max(vmax, vmin + 1e-12),
        cmap=cmap,
        annot=np.vectorize(lambda v: _cell_text(v, unit), otypes=[object])(data),
        fmt="",
        annot_kws={"fontsize": "small"},
        linewidths=1.0,
        linecolor=theme.color("background"),
        cbar=colorbar,
        cbar_kws={"shrink": 0.9, "label": f"{what} ({unit})" if unit else what},
        xticklabels=[_tick(c) for c in cells.columns],
        yticklabels=[_tick(r) for r in cells.index],
    )
    ax.tick_params(length=0, labelrotation=0)
    ax.set_xlabel(_label(x, labels))
    ax.set_ylabel(_label(y, labels))
    ax.set_title(what if title is None else title)
    return ax


def heatmaps(
    table: pd.DataFrame,
    x: str,
    y: str,
    value: str,
    *,
    col: str = "kernel",
    order: Sequence | None = None,
    labels: Mapping[str, str] | None = None,
    titles: Mapping | None = None,
    cmap: str = _HEATMAP_CMAP,
    figsize: tuple[float, float] | None = None,
):
    """:func:`heatmap` once per value of ``col`` (each kernel, say), on one shared colour scale.

    Parameters
    ----------
    table : pandas.DataFrame
    x, y, value : str
        As in :func:`heatmap`.
    col : str
        One panel per value of this column, default ``"kernel"``.
    order : sequence, optional
        Which values of ``col`` to draw, in order; default all, sorted.
    labels : mapping, optional
        Axis labels for column names.
    titles : mapping, optional
        Panel title per value of ``col``; default ``"<col value>"``.
    cmap : str
    figsize : (float, float), optional
        Inches; default 4.6 wide per panel plus the colour bar, 4 high.

    Returns
    -------
    matplotlib.figure.Figure
        Its axes: the panels, then the colour bar. With several panels the x label is written
        once, under all of them (``fig.supxlabel``).
    """

    order = sorted(table[col].unique()) if order is None else list(order)
    what, unit, factor = _describe(value)
    means = table.groupby([col, x, y])[value].mean() * factor
    vmax = float(means.max()) if len(means) else 1.0
    width = 4.6 * len(order) + 1.0
    fig, axes = plt.subplots(
        1, len(order), figsize=figsize or (width, 4.0), sharey=True, layout="constrained"
    )
    axes = np.atleast_1d(axes)
    for ax, key in zip(axes, order, strict=True):
        heatmap(
            table[table[col] == key],
            x,
            y,
            value,
            ax=ax,
            vmax=vmax,
            cmap=cmap,
            colorbar=False,
            labels=labels,
            title=(titles or {}).get(key, f"{key}"),
        )
    for ax in axes[1:]:
        ax.set_ylabel("")
    if len(axes) > 1:
        # One x label under all the panels: a long one repeated per panel runs into its neighbour.
        size = axes[0].xaxis.label.get_fontsize()
        fig.supxlabel(axes[0].get_xlabel(), fontsize=size)
        for ax in axes:
            ax.set_xlabel("")
    bar = fig.colorbar(axes[0].collections[0], ax=list(axes), shrink=0.9)
    bar.set_label(f"{what} ({unit})" if unit else what)
    bar.outline.set_visible(False)
    return fig


def _band_legend(ax, groups, values, errorbar, band_label: str | None) -> None:
    """A one-entry legend saying what the band of :func:`curves` is, where one is drawn wide
    enough to see: the ``values`` (a column) averaged in ``groups`` (by line and x) of two rows
    or more. A band too thin to see (under 1 % of the lines' range: every run about the same
    at every point) needs no explaining."""
    spread = int(groups.size().max()) if len(values) else 0
    extent = float(values.max() - values.min()) if len(values) else 0.0
    wide = extent > 0 and bool((groups.max() - groups.min()).gt(0.01 * extent).any())
    if spread >= 2 and wide:
        label = band_label or _band_text(errorbar, spread)
        band = Patch(facecolor="#999999", alpha=0.3, edgecolor="none", label=label)
        ax.legend(handles=[band], loc="best", fontsize="x-small")


def _scales(ax, x_values, *, logx: bool, logy: bool) -> None:
    """The axes' scales of :func:`curves`: a log x with a tick at every value swept (the
    column ``x_values``, while they are few: decades alone may show none of them), written
    plainly; y from 0, or log."""
    if logx:
        ax.set_xscale("log")
        swept = np.unique(x_values.to_numpy(dtype=float))
        if len(swept) <= 12:
            ax.set_xticks(swept)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    if logy:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    else:
        ax.set_ylim(bottom=0)


def _band_text(errorbar, n: int) -> str:
    """What the band of :func:`curves` is, in words."""
    if errorbar == ("pi", 100):
        return f"shaded: lowest to highest of the {n} runs at each point"
    if errorbar in ("sd", ("sd", 1)):
        return f"shaded: ± one standard deviation of the {n} runs at each point"
    if isinstance(errorbar, tuple) and errorbar[0] == "pi":
        return f"shaded: the middle {errorbar[1]:g}% of the {n} runs at each point"
    return f"shaded: seaborn errorbar {errorbar!r} over the {n} runs at each point"


_CURVE_STYLES = (  # colours named in the palette, looked up as they are drawn
    theme.Themed(color="strong", linestyle="-", marker="o"),
    theme.Themed(color="read", linestyle="-", marker="s"),
    theme.Themed(color="miss", linestyle="--", marker="^"),
    theme.Themed(color="memslot", linestyle=":", marker="D"),
)


@strict_booleans
def curves(
    table: pd.DataFrame,
    x: str,
    y: str,
    *,
    hue: str,
    ax=None,
    styles: Mapping | None = None,
    logx: bool = True,
    logy: bool = False,
    labels: Mapping[str, str] | None = None,
    marks: Mapping[float, str] | None = None,
    title: str | None = None,
    errorbar=("pi", 100),
    band_label: str | None = None,
):
    """One measured column against one axis of a sweep, a line per value of ``hue``.

    Rows with the same ``(hue, x)`` (several seeds, say) are averaged into the line, and their
    spread is drawn as a band around it (``seaborn.lineplot``): by default from the lowest to
    the highest seed. Each line is named at its right end instead of in a legend, and differs
    from the others by colour, line style and marker, so the figure survives grey-scale
    printing. When a band wide enough to see is drawn, a one-entry legend (placed where it
    covers the fewest lines) says what it is.

    Parameters
    ----------
    table : pandas.DataFrame
    x, y : str
        Columns for the horizontal and vertical axes; known metrics get their unit.
    hue : str
        One line per value of this column (e.g. a ``label`` column made for the purpose).
    ax : matplotlib.axes.Axes, optional
    styles : mapping, optional
        ``{hue value: dict of Line2D properties}``; default greys, blue, green in turn.
    logx, logy : bool
        Logarithmic axes; default log x only.
    labels : mapping, optional
        Axis labels for column names (for ``y``, the default is the metric and its unit).
    marks : mapping, optional
        ``{x value: text}``: a thin vertical line at each, labelled at the top (a limit, a
        default, ...).
    title : str, optional
    errorbar : seaborn errorbar spec or None
        The band around each line (``seaborn.lineplot``'s ``errorbar``): default
        ``("pi", 100)``, every seed inside it; ``"sd"`` one standard deviation; None, no band.
        Bootstrapped intervals (``"ci"``) are seeded by seaborn's global RNG: avoid them for
        reproducible files.
    band_label : str, optional
        What the band is, for the legend; default said from ``errorbar`` and the number of
        rows averaged at each point ("shaded: lowest to highest of the 4 runs at each point").

    Returns
    -------
    matplotlib.axes.Axes
        Each line has gid ``"curve|<hue value>"``, its band ``"spread|<hue value>"``.
    """
    ax = ax or plt.gca()
    what, unit, factor = _describe(y)
    rows = table[[hue, x, y]].assign(**{y: table[y] * factor})
    for i, (key, line) in enumerate(rows.groupby(hue, sort=False)):
        style = (styles or {}).get(key, _CURVE_STYLES[i % len(_CURVE_STYLES)])
        style = {"markersize": 5, "linewidth": 1.8, **style}
        sns.lineplot(
            line, x=x, y=y, errorbar=errorbar, ax=ax, label=str(key), legend=False,
            gid=f"curve|{key}", err_kws={"gid": f"spread|{key}", "linewidth": 0}, **style,
        )  # fmt: skip
        end = line.groupby(x)[y].mean().sort_index()
        ax.annotate(
            str(key),
            (end.index[-1], end.iloc[-1]),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize="small",
            color=style.get("color", theme.color("text")),
        )
    if errorbar is not None:
        _band_legend(ax, rows.groupby([hue, x])[y], rows[y], errorbar, band_label)
    _scales(ax, table[x], logx=logx, logy=logy)
    for at, text in (marks or {}).items():
        ax.axvline(at, color=theme.color("faint"), linewidth=0.8, zorder=0, gid=f"mark|{at:g}")
        ax.annotate(
            text,
            (at, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -2),
            textcoords="offset points",
            va="top",
            fontsize="x-small",
            color=theme.color("muted"),
        )
    ax.set_xlabel(_label(x, labels))
    ax.set_ylabel((labels or {}).get(y, f"{what} ({unit})" if unit else what))
    ax.set_title(what if title is None else title)
    return ax
