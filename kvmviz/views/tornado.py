"""How far the headline moves: :func:`kvmviz.experiments.sensitivity` as a tornado, one row per
swept parameter and one bar per kernel (:func:`tornado`), and several setups' tornados on shared
scales (:func:`tornado_grid`).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.lines import Line2D

from .._shared._checks import strict_booleans
from . import theme
from ._fit import legend_columns
from .metric_labels import METRICS, NONE_WORDS, PERCENTILES, kernel_order

__all__ = ["tornado", "tornado_grid"]


def _axis_title(metric: str) -> str:
    what, unit, _factor = METRICS.get(metric, (metric, "", 1.0))
    return f"{what} ({unit})" if unit else what


# The swept parameters (kvmviz.experiments.SENSITIVITY_PARAMETERS and others a sweep may
# take) by what they are, for the rows of a tornado: name -> (words, unit, factor from the
# Scenario's value to the unit). A parameter not here is shown by its own name.
_PARAMETER_NAMES = {
    "notifier_rate_hz": ("notifications per second", "", 1.0),
    "spurious_share": ("spurious notifications", "%", 100.0),
    "contention_in_lock_share": ("contention paid inside the lock", "%", 100.0),
    "read_hold_per_vcpu_us": ("read-lock contention per vCPU", "µs", 1.0),
    "tlb_flush_exponent": ("TLB flush cost exponent", "", 1.0),
    "n_vcpus": ("vCPUs", "", 1.0),
    "faulting_share": ("vCPUs faulting", "%", 100.0),
    "guest_run_us": ("guest time between faults", "µs", 1.0),
}


def _swept(values, parameter: str = "") -> str:
    """The range a parameter was swept over, in its unit: ``"50 – 99 %"``."""
    _words, unit, factor = _PARAMETER_NAMES.get(parameter, ("", "", 1.0))
    low, high = (round(factor * float(v), 9) for v in (min(values), max(values)))
    text = " – ".join(f"{v:,.0f}" if v.is_integer() else f"{v:.3g}" for v in (low, high))
    return f"{text} {unit}" if unit else text


def _parameter_label(parameter: str, values) -> str:
    """A tornado's row label: what the parameter is, and the range swept, on two lines."""
    words = _PARAMETER_NAMES.get(parameter, (parameter,))[0]
    return f"{words}\n{_swept(values, parameter)}"


def tornado(table, *, metrics=("brownout_mean", "stall_p99_us"), axes=None):
    """A tornado of :func:`kvmviz.experiments.sensitivity`: how far each parameter moves a
    headline number, on each kernel.

    One panel per metric, one row per parameter (labelled with the values swept); on each row
    one bar per kernel from the lowest to the highest value the metric takes over the
    parameter's range, and a dot at the default. Rows are ordered by the widest bar of the
    first metric, widest at the top. Shares are drawn in %. A kernel whose metric is 0 over a
    parameter's whole range has a bar of no length: it is said in words on its row
    ("v5.15: no fault stalled at any value", gid ``"note|<kernel>|<parameter>"``).

    Parameters
    ----------
    table : pandas.DataFrame
        The output of :func:`kvmviz.experiments.sensitivity`.
    metrics : sequence of str
        Its columns to draw, one panel each: by default the brownout (the share of the VM's
        vCPU time stalled) and the p99 stall per fault.
    axes : sequence of Axes, optional
        One per metric; default a new figure.

    Returns
    -------
    list of matplotlib.axes.Axes
    """
    if not isinstance(table, pd.DataFrame) or "parameter" not in table:
        raise TypeError("table: expected the DataFrame of kvmviz.experiments.sensitivity()")
    metrics = list(metrics)
    missing = [m for m in metrics if m not in table]
    if missing:
        raise ValueError(f"table has no column {missing[0]!r}; expected some of {list(table)}")
    parameters = list(dict.fromkeys(table["parameter"]))
    kernels = kernel_order(table["kernel"])
    if axes is None:
        fig = plt.figure(figsize=(5 * len(metrics), 0.7 + 0.55 * len(parameters) * 1.5))
        fig.set_layout_engine("constrained")
        axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    axes = list(axes)
    if len(axes) != len(metrics):
        raise ValueError(f"axes: expected {len(metrics)} Axes, one per metric")
    first = metrics[0]
    width = table.groupby("parameter")[first].agg(lambda v: v.max() - v.min())
    order = sorted(parameters, key=lambda p: (width[p], parameters.index(p)))
    for ax, metric in zip(axes, metrics, strict=True):
        _tornado_panel(ax, table, metric, order, kernels)
    labels = []
    for parameter in order:
        values = table.loc[table["parameter"] == parameter, "value"]
        labels.append(_parameter_label(parameter, values))
    axes[0].set_yticks(range(len(order)), labels, fontsize="small")
    styles = [theme.kernel_style(k) for k in kernels]
    handles = [Line2D([], [], color=s["color"], linewidth=4, label=s["label"]) for s in styles]
    handles.append(
        Line2D([], [], marker="o", linestyle="", color=theme.color("background"),
               markeredgecolor=theme.color("strong"),
               label="default")
    )  # fmt: skip
    axes[-1].legend(handles=handles, loc="lower right", fontsize="small")
    return axes


def _tornado_panel(ax, table: pd.DataFrame, metric: str, order: list, kernels: list) -> None:
    """One metric's panel of :func:`tornado`: a row per parameter (``order``, bottom up), on
    each a bar per kernel."""
    factor = METRICS.get(metric, (metric, "", 1.0))[2]
    step = 0.8 / max(len(kernels), 1)
    right = 0.0
    for y, parameter in enumerate(order):
        part = table[table["parameter"] == parameter]
        for j, kernel in enumerate(kernels):
            yy = y + (j - (len(kernels) - 1) / 2) * step
            rows = part[part["kernel"] == kernel]
            high = _tornado_bar(ax, rows, metric, factor, kernel, parameter, yy, labelled=y == 0)
            right = max(right, high)
    ax.set_xlabel(_axis_title(metric))
    # A little left of 0, so that the dot of a default at 0 is drawn whole.
    ax.set_xlim(-0.015 * (right or 1.0), None)
    ax.grid(axis="y", visible=False)


def _tornado_bar(ax, rows, metric, factor, kernel, parameter, yy, *, labelled) -> float:
    """One kernel's bar on one parameter's row, at height ``yy``: from the lowest to the highest
    value of ``metric`` over the ``rows`` swept, a dot at the default, and in words where the
    bar has no length. Returns the bar's right end."""
    style = theme.kernel_style(kernel)
    low, high = factor * rows[metric].min(), factor * rows[metric].max()
    ax.plot(
        [low, high], [yy, yy], color=style["color"], linewidth=4,
        solid_capstyle="butt", label=style.get("label", kernel) if labelled else None,
        gid=f"range|{kernel}|{parameter}",
    )  # fmt: skip
    default = rows[rows["is_default"]][metric]
    page = theme.color("background")
    if len(default):
        ax.plot(
            [factor * float(default.iloc[0])], [yy], "o", color=page,
            markeredgecolor=style["color"], markersize=5, zorder=3,
        )  # fmt: skip
    words = NONE_WORDS.get(metric)
    none = "brownout_mean" in rows and bool((rows["brownout_mean"] == 0).all())
    if metric in PERCENTILES and not none:
        words = "0 µs"  # a p99 of 0 with some stall: under 1% stalled
    if high == 0 and words:  # a bar of no length: say it
        ax.annotate(
            f"{kernel}: {words} at any value",
            (0, yy),
            xytext=(6, 0),
            textcoords="offset points",
            ha="left",
            va="center",
            fontsize="x-small",
            color=style["color"],
            gid=f"note|{kernel}|{parameter}",
        )
    return high


@strict_booleans
def tornado_grid(tables, *, fig=None, titles=None, stacked: bool = False):
    """:func:`tornado` for several sensitivity tables, one row of panels each, on shared scales.

    Each column (a metric) has one x scale fitting every row's bars, so the rows compare at a
    glance (the static setup above the volatile one, say); one legend sits under the grid.

    Parameters
    ----------
    tables : mapping of str to pandas.DataFrame
        Row label -> :func:`kvmviz.experiments.sensitivity` table, in order.
    fig : matplotlib.figure.Figure, optional
        Where to draw; default a new figure sized for the rows.
    titles : mapping of str to str, optional
        The title of each row (default its label).
    stacked : bool
        Put each table's two panels one above the other, each with its row labels (for a
        narrow figure), instead of side by side.

    Returns
    -------
    numpy.ndarray of Axes
        ``len(tables)`` rows of two panels (stacked: ``axes[i, 1]`` is under ``axes[i, 0]``).
    """
    tables = dict(tables)
    if not tables:
        raise ValueError("tables: expected at least one sensitivity table")
    n_parameters = max(table["parameter"].nunique() for table in tables.values())
    if fig is None:
        fig = plt.figure(
            figsize=(10, 1.0 + len(tables) * (0.5 + 0.5 * n_parameters)), layout="constrained"
        )
    if stacked:
        axes = fig.subplots(2 * len(tables), 1, squeeze=False)[:, 0].reshape(len(tables), 2)
        for row in axes[1:]:
            for ax, top in zip(row, axes[0], strict=True):
                ax.sharex(top)
        for row in axes:
            row[1].sharey(row[0])  # shares the row labels too: each panel shows them
    else:
        axes = fig.subplots(len(tables), 2, sharex="col", sharey="row", squeeze=False)
    for row, (label, table) in zip(axes, tables.items(), strict=True):
        tornado(table, axes=row)
        title = (titles or {}).get(label, label)
        row[0].set_title(title, loc="left", fontsize="medium")
    for column in axes.T:
        right = max(ax.dataLim.x1 for ax in column)
        column[0].set_xlim(-0.015 * right, 1.03 * right)
    legend = axes[0][1].get_legend()
    handles, labels = legend.legend_handles, [t.get_text() for t in legend.get_texts()]
    for ax in axes[:, 1]:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if not stacked:
        for ax in axes[:-1].ravel():
            ax.set_xlabel("")
    ncol = legend_columns(fig, labels, "small")
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize="small")
    return axes
