"""``SpanBars``: horizontal bars (ranges, holds, waits) never narrower than :data:`MIN_SPAN_PT`
on screen, those that then touch merged into one and counted (``×n``), notifier hits marked
with a triangle: the one way a view draws range bars (the memslot maps, the timelines).
"""

from __future__ import annotations

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.path import Path as MplPath
from matplotlib.text import Text
from matplotlib.transforms import IdentityTransform

from . import theme

__all__ = ["MIN_SPAN_PT", "SpanBars"]

MIN_SPAN_PT = 3.0
"""The narrowest a range, hold or wait is drawn, in points (1/72 inch; 3 pt is 4 px on a
notebook screen and 8 px in a 200 dpi PNG). Drawn to scale, a 4 KiB range in a 12 TiB memslot
or a 40 ns write hold in a 3 ms window would be far below a pixel: the figure would hide the
very thing it is about."""
_MARK_PT = (7.0, 5.0)  # width and height of the triangle over each notifier hit, points
_MARK_GAP_PT = 1.0
_COUNT_CHAR_PT = 5.0  # a generous width of one character of the x-small "×n" label, points


def _rect(x: float, w: float, y0: float, h: float) -> list[tuple[float, float]]:
    return [(x, y0), (x, y0 + h), (x + w, y0 + h), (x + w, y0)]


class SpanBars(PolyCollection):
    """Horizontal bars (ranges, holds, waits) that are never narrower than ``min_pt`` on screen.

    The collection stores every bar to scale, one polygon per bar (``get_paths()``,
    ``set_verts()`` and ``set_verts_and_codes()`` work as for ``Axes.broken_barh``). Only at
    each draw, in display units so that it holds at any zoom, figure size or dpi:

    1. a bar narrower than ``min_pt`` points is widened to ``min_pt`` about its centre;
    2. bars of one band that then touch or overlap are merged into one, so overlapping hatched
       ranges keep their hatch instead of stacking into a solid block;
    3. with ``marks``, a downward triangle is drawn above each (merged) bar, so that a one-page
       notifier hit stays findable on an axis where it is a single pixel, and ``×n`` beside it
       when it stands for ``n >= 2`` bars (the 200 ``madvise`` hits of a real trace land on
       one spot and would otherwise look like one); without marks, ``counts`` writes the
       ``×n`` centred above the bar (383 one-page misses spread over a 4 GiB heap merge into a
       few wide blocks, which would otherwise read as a few wide ranges).

    What was drawn last is kept in ``drawn_spans`` (``(x, width)`` in data units),
    ``drawn_counts`` (how many stored bars each stands for), ``drawn_marks`` (how many
    triangles) and ``drawn_labels`` (the ``×n`` written: one that would run into the one
    before it is left out), for tests and for readers of the figure. Counted at each draw,
    they stay right when a dashboard moves the bars.

    Parameters
    ----------
    spans : sequence of (x, width)
        In data units, to scale (a width may be 0).
    yrange : (y, height)
        The band, data units.
    min_pt : float
        The minimum width, points.
    marks : bool
        Draw a triangle above each bar.
    counts : bool
        Without ``marks``: write ``×n`` above each bar that stands for ``n >= 2`` and is wide
        enough to hold it.
    **kwargs
        Passed to :class:`matplotlib.collections.PolyCollection` (facecolor, hatch, gid, ...).
    """

    @classmethod
    def add(cls, ax, spans, yrange, *, marks: bool = False, counts=False, **style) -> SpanBars:
        """Add bars of ``spans`` to ``ax`` (without moving its limits) and return them: the
        one way a view draws range bars (maps, timelines).

        Parameters
        ----------
        ax : matplotlib.axes.Axes
        spans : sequence of (float, float)
            ``(x, width)`` of each bar, in data units.
        yrange : (float, float)
            ``(y0, height)`` of the row, in data units.
        marks, counts : bool
            As for :class:`SpanBars`.
        **style
            Collection properties (``facecolor``, ``gid``, ``zorder``, ...).

        Returns
        -------
        SpanBars
        """
        bars = cls(spans, yrange, marks=marks, counts=counts, **style)
        ax.add_collection(bars, autolim=False)
        return bars

    def __init__(
        self, spans, yrange, *, min_pt: float = MIN_SPAN_PT, marks=False, counts=False, **kwargs
    ):
        y0, height = yrange
        super().__init__([_rect(float(x), float(w), y0, height) for x, w in spans], **kwargs)
        self.min_pt = float(min_pt)
        self.marks = bool(marks)
        self.counts = bool(counts)
        self.drawn_spans: list[tuple[float, float]] = []
        self.drawn_counts: list[int] = []
        self.drawn_marks = 0
        # (x_px, y_px, text, ha): the ×n beside a mark, or centred above an unmarked bar
        self._labels: list[tuple[float, float, str, str]] = []
        self.drawn_labels: list[str] = []  # those drawn: none runs into the one before it

    def _bars(self) -> np.ndarray:
        """(x0, x1, y0, y1) of every stored bar, compound paths split into their polygons."""
        rows = [
            (poly[:, 0].min(), poly[:, 0].max(), poly[:, 1].min(), poly[:, 1].max())
            for path in self.get_paths()
            for poly in path.to_polygons(closed_only=False)
            if len(poly)
        ]
        return np.array(rows, dtype=float).reshape(-1, 4)

    def _display_paths(self, renderer) -> list:
        bars = self._bars()
        self.drawn_spans, self.drawn_counts, self.drawn_marks, self._labels = [], [], 0, []
        self._mark_px: list[tuple[float, float]] = []  # each triangle's x extent, pixels
        if not len(bars):
            return []
        trans = self.get_transform()
        inverse = trans.inverted()
        px = renderer.points_to_pixels(1.0)
        min_px = self.min_pt * px
        mid_y = (bars[:, 2] + bars[:, 3]) / 2
        left = trans.transform(np.column_stack([bars[:, 0], mid_y]))[:, 0]
        right = trans.transform(np.column_stack([bars[:, 1], mid_y]))[:, 0]
        left, right = np.minimum(left, right), np.maximum(left, right)
        centre = (left + right) / 2
        narrow = right - left < min_px
        left = np.where(narrow, centre - min_px / 2, left)
        right = np.where(narrow, centre + min_px / 2, right)
        merged: list[list[float]] = []  # [x0_px, x1_px, y0, y1, bars] per drawn bar
        for i in np.lexsort((left, bars[:, 3], bars[:, 2])):
            band = (bars[i, 2], bars[i, 3])
            if merged and (merged[-1][2], merged[-1][3]) == band and left[i] <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], right[i])
                merged[-1][4] += 1
            else:
                merged.append([left[i], right[i], *band, 1])
        polygons = []
        mark_w, mark_h = _MARK_PT[0] * px, _MARK_PT[1] * px
        for x0_px, x1_px, y0, y1, n in merged:
            (x0, _), (x1, _) = inverse.transform([(x0_px, 0.0), (x1_px, 0.0)])
            x0, x1 = min(x0, x1), max(x0, x1)
            self.drawn_spans.append((x0, x1 - x0))
            self.drawn_counts.append(int(n))
            polygons.append(np.array([*_rect(x0, x1 - x0, y0, y1 - y0), (x0, y0)]))
            # Above the band on screen (the y axis may be inverted).
            top_px = trans.transform([((x0 + x1) / 2, y0), ((x0 + x1) / 2, y1)])[:, 1].max()
            centre_px = (x0_px + x1_px) / 2
            if self.counts and not self.marks and n >= 2:
                # Only over a bar wide enough to hold it: slivers side by side would make the
                # labels run together.
                text = f"×{n:,}"
                if x1_px - x0_px >= _COUNT_CHAR_PT * len(text) * px:
                    self._labels.append((centre_px, top_px + _MARK_GAP_PT * px, text, "center"))
            if self.marks:  # tip down onto the bar
                tip = top_px + _MARK_GAP_PT * px
                corners = [
                    (centre_px, tip),
                    (centre_px - mark_w / 2, tip + mark_h),
                    (centre_px + mark_w / 2, tip + mark_h),
                    (centre_px, tip),
                ]
                polygons.append(inverse.transform(corners))
                self._mark_px.append((centre_px - mark_w / 2, centre_px + mark_w / 2))
                self.drawn_marks += 1
                if n >= 2:
                    label = (centre_px + mark_w / 2 + px, tip + mark_h / 2, f"×{n:,}", "left")
                    self._labels.append(label)
        codes = [MplPath.MOVETO] + [MplPath.LINETO] * 3 + [MplPath.CLOSEPOLY]
        codes_tri = [MplPath.MOVETO] + [MplPath.LINETO] * 2 + [MplPath.CLOSEPOLY]
        paths = [MplPath(poly, codes if len(poly) == 5 else codes_tri) for poly in polygons]
        # One compound path: Agg rasterises a hatch once per path, not once per bar.
        return [MplPath.make_compound_path(*paths)]

    def draw(self, renderer):
        if not self.get_visible():
            return
        stored = self._paths
        try:
            self._paths = self._display_paths(renderer)
            super().draw(renderer)
        finally:
            self._paths = stored
        # Left to right; a label that would run into the one before, or onto another bar's
        # triangle, is left out (the legend still says what ×n means, and a crowd of counts
        # would read as none).
        self.drawn_labels, right = [], -np.inf
        gap = renderer.points_to_pixels(2.0)
        marks = getattr(self, "_mark_px", [])
        for x, y, text, ha in sorted(self._labels):
            va = "center" if ha == "left" else "bottom"
            label = Text(x, y, text, ha=ha, va=va, fontsize="x-small")
            edge = self.get_edgecolor()
            label.set_color(edge[0] if len(edge) else theme.color("text"))
            label.set_figure(self.figure)
            label.set_transform(IdentityTransform())  # placed in display units, at draw
            box = label.get_window_extent(renderer)
            if box.x0 < right + gap or any(a < box.x1 and box.x0 < b for a, b in marks):
                continue
            label.draw(renderer)
            self.drawn_labels.append(text)
            right = box.x1
