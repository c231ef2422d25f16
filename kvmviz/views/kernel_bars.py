"""One metric for each kernel, side by side: a bar per kernel, its value written on it
(:func:`kernel_bars`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from . import theme
from .metric_labels import (
    METRICS,
    as_kernel_table,
    kernel_order,
    kernel_tick,
    value_label,
    zero_note,
    zero_words,
)

__all__ = ["kernel_bars"]


def kernel_bars(table_or_runs, *, ax=None, metric: str = "stall_p99_us"):
    """One metric for each kernel, side by side: a bar per kernel, its value written on it.

    Parameters
    ----------
    table_or_runs : pandas.DataFrame or mapping of kernel to Run
        The table of :func:`kvmviz.compare_kernels` (one row per kernel, indexed by kernel),
        or runs of the same scenario on each kernel (summarised with
        :func:`kvmviz.summarize`).
    ax : matplotlib.axes.Axes, optional
    metric : str
        A column of the table: ``"stall_p99_us"``, ``"brownout_mean"`` (drawn in %),
        ``"lock_taken"``, ... Shares are drawn as percentages.

    Returns
    -------
    matplotlib.axes.Axes

    Notes
    -----
    Bars take the kernel colours of :data:`kvmviz.theme.KERNEL_STYLES` (greys, and blue for
    the kernel with both fixes); each bar is named under it, so no legend is needed. The title
    says what is measured, the y axis its unit. A stall metric at exactly 0 is written in words
    where its bar would stand ("no fault stalled", gid ``"note|<kernel>"``). On axes sharing
    their y axis (panels side by side), the limit fits the tallest bar of all of them.
    """
    table = as_kernel_table(table_or_runs)
    if metric not in table.columns:
        raise KeyError(f"no metric {metric!r}; expected one of {list(table.columns)}")
    ax = ax or plt.gca()
    what, unit, factor = METRICS.get(metric, (metric, "", 1.0))
    order = kernel_order(table.index)
    values = table.loc[order, metric].astype(float).to_numpy() * factor
    for i, (kernel, value) in enumerate(zip(order, values, strict=True)):
        style = theme.kernel_style(kernel)
        ax.bar(i, value, width=0.62, color=style["color"], gid=f"bar|{kernel}")
        words = zero_words(metric, table.loc[kernel]) if value == 0 else None
        if words:
            zero_note(ax, i, words, gid=f"note|{kernel}")
            continue
        ax.annotate(
            value_label(value, unit),
            (i, value),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize="small",
            color=theme.color("text"),
        )
    ax.set_xticks(range(len(order)), [kernel_tick(k) for k in order], fontsize="small")
    ax.tick_params(axis="x", length=0)
    ax.set_xlim(-0.6, len(order) - 0.4)
    # Panels sharing y (Figure 5.4's two streams): the limit must fit the tallest bar of any,
    # or the last panel drawn would cut the others' bars and push their labels into a title.
    heights = [
        p.get_height()
        for other in ax.get_shared_y_axes().get_siblings(ax)
        for p in other.patches
        if (p.get_gid() or "").startswith("bar|")
    ]
    top = max([h for h in heights if np.isfinite(h)], default=0.0)
    ax.set_ylim(0, top * 1.15 if top > 0 else 1.0)
    ax.set_ylabel(unit or "value")
    ax.set_title(what)
    return ax
