"""Reading a drawn figure back, for the tests of the views (test_plot, test_timelines).

Every artist the views draw carries a ``gid``; these helpers find artists by it and measure
what a reader would see on screen.
"""

from __future__ import annotations

import numpy as np
from matplotlib.colors import to_hex

from kvmviz import plot


def gids(ax, prefix: str = "") -> dict:
    """The collections, patches and lines of ``ax`` whose gid starts with ``prefix``, by gid."""
    artists = [*ax.collections, *ax.patches, *ax.lines]
    return {a.get_gid(): a for a in artists if (a.get_gid() or "").startswith(prefix)}


def face(artist) -> str:
    """An artist's (first) face colour, as ``#rrggbb``."""
    colour = artist.get_facecolor()
    return to_hex(colour[0] if colour.ndim == 2 else colour)


def min_px(fig) -> float:
    """:data:`kvmviz.plot.MIN_SPAN_PT` in the figure's pixels."""
    return plot.MIN_SPAN_PT * fig.dpi / 72


def screen_widths(ax, bars) -> np.ndarray:
    """The on-screen width, in pixels, of every bar a SpanBars drew at its last draw."""
    if not bars.drawn_spans:
        return np.empty(0)
    x = np.array(bars.drawn_spans)
    y = np.zeros(len(x))
    left = ax.transData.transform(np.column_stack([x[:, 0], y]))[:, 0]
    right = ax.transData.transform(np.column_stack([x[:, 0] + x[:, 1], y]))[:, 0]
    return right - left


def legend_texts(ax) -> list[str]:
    """The labels of ``ax``'s legend, in order (none without a legend)."""
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]
