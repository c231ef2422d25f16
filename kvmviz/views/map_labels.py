"""Texts of a figure that never run into each other, whatever its size: each decided when the
figure is drawn, from the sizes on screen. :class:`Declutter` gives each text the first of its
places where it touches nothing (or hides it); :class:`AxisLabels` writes labels along an axis,
moving one a line down, or leaving it out, rather than letting two run together. The memslot
maps' labels (:mod:`kvmviz.plot`) are laid out by them.
"""

from __future__ import annotations

import numpy as np
from matplotlib.artist import Artist

__all__ = ["AxisLabels", "Declutter", "axis_labels"]


class Declutter(Artist):
    """Texts inside an axes that never run into each other, whatever the figure's size.

    At each draw, before they are drawn, each text (in order) takes the first of its places
    (``text._kvmviz_places``: text, xy, va, font size, colour, and optionally ``within``, a
    data rectangle it must fit in) where it touches no text placed before it, nor any other
    visible text of the axes, and stays inside the figure; where none does, it is not
    drawn. What was drawn is kept in ``shown`` (the texts) for tests.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes the texts belong to (add the artist to it).
    texts : sequence of matplotlib.text.Annotation
        In the order they take their places.
    pad_pt : float
        The least gap between two texts, points.
    """

    def __init__(self, ax, texts, *, pad_pt: float = 2.0) -> None:
        super().__init__()
        self.texts = list(texts)
        self.pad_pt = pad_pt
        self.shown: list[str] = []
        # After the addresses under the axis (AxisLabels, 0.01 below the texts), before
        # the texts themselves.
        self.set_zorder(min((t.get_zorder() for t in self.texts), default=3.0) - 0.005)
        self._ax = ax

    def draw(self, renderer) -> None:
        pad = renderer.points_to_pixels(self.pad_pt)
        mine = {id(t) for t in self.texts}
        placed = [
            t.get_window_extent(renderer)
            for t in self._ax.texts
            if id(t) not in mine and t.get_visible() and t.get_text().strip()
        ]
        figure = self._ax.figure.bbox
        self.shown = []
        for text in self.texts:
            text.set_visible(True)
            for place in getattr(text, "_kvmviz_places", [{}]):
                _apply_place(text, place)
                box = text.get_window_extent(renderer)
                if "within" in place:
                    x0, x1, y0, y1 = place["within"]
                    (a, b), (c, d) = self._ax.transData.transform([(x0, y0), (x1, y1)])
                    inner = (min(a, c) + pad, max(a, c) - pad, min(b, d), max(b, d))
                    if not (inner[0] <= box.x0 and box.x1 <= inner[1]):
                        continue
                    if not (inner[2] <= box.y0 and box.y1 <= inner[3]):
                        continue
                axes = self._ax.bbox
                inside = axes.x0 - pad <= box.x0 and box.x1 <= axes.x1 + pad
                inside = inside and figure.y0 <= box.y0 and box.y1 <= figure.y1
                clear = all(
                    box.x1 + pad <= other.x0
                    or other.x1 + pad <= box.x0
                    or box.y1 + pad <= other.y0
                    or other.y1 + pad <= box.y0
                    for other in placed
                )
                if inside and clear:
                    placed.append(box)
                    self.shown.append(text.get_text())
                    break
            else:
                text.set_visible(False)


def _apply_place(text, place: dict) -> None:
    if "text" in place:
        text.set_text(place["text"])
    if "xy" in place:
        text.xy = place["xy"]
    for key, setter in (("va", text.set_va), ("fontsize", text.set_fontsize)):
        if key in place:
            setter(place[key])
    if "color" in place:
        text.set_color(place["color"])


class AxisLabels(Artist):
    """Labels along an axis that never run together, whatever the figure's size.

    The labels are annotations of the axes (an address under each segment of a compressed
    axis). At each draw, before they are drawn, each one that would touch the label before
    it moves one line down; if it would touch there too it is not drawn. One that would end
    past the axis's right end is moved left to end there. What was drawn is kept in
    ``shown`` (the texts) for tests.

    Parameters
    ----------
    texts : sequence of matplotlib.text.Annotation
        Left to right.
    line_pt : float
        The height of a line, points (at least the text's).
    pad_pt : float
        The least gap between two labels on a line, points.
    """

    def __init__(self, texts, *, line_pt: float = 7.5, pad_pt: float = 3.0) -> None:
        super().__init__()
        self.texts = list(texts)
        self.line_pt, self.pad_pt = line_pt, pad_pt
        self.shown: list[str] = []
        self.set_zorder(min((t.get_zorder() for t in self.texts), default=3.0) - 0.01)
        self.reserve = None  # a blank on the second line, so that a layout makes room for it

    def draw(self, renderer) -> None:
        px = renderer.points_to_pixels(1.0)
        right = [-np.inf, -np.inf]  # the right end of the last label on each line, pixels
        self.shown = []
        edge = self.texts[0].axes.bbox.x1 if self.texts else np.inf
        # A line at least as tall as the text (its font may be larger than 7.5 pt).
        step = max([self.line_pt] + [t.get_fontsize() * 1.1 for t in self.texts[:1]])
        if self.reserve is not None:
            self.reserve.xyann = (0.0, -step)
        for text in self.texts:
            text.set_visible(True)
            for line in (0, 1):
                text.xyann = (0.0, -line * step)
                box = text.get_window_extent(renderer)
                if box.x1 > edge:  # past the axis's end: ended there instead
                    text.xyann = ((edge - box.x1) / px, -line * step)
                    box = text.get_window_extent(renderer)
                if box.x0 >= right[line] + self.pad_pt * px:
                    right[line] = box.x1
                    self.shown.append(text.get_text())
                    break
            else:
                text.set_visible(False)


def axis_labels(ax, labels) -> AxisLabels:
    """``labels`` written under the axes' content at y = -0.06 (data), in order, never
    running together (:class:`AxisLabels`).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    labels : sequence of (float, str)
        ``(x, text)``, x in data units.

    Returns
    -------
    AxisLabels
        Added to ``ax``.
    """
    style = {"textcoords": "offset points", "ha": "left", "va": "top", "fontsize": "xx-small"}
    texts = [
        ax.annotate(text, (x, -0.06), xytext=(0, 0), gid="axis-label", **style)
        for x, text in labels
    ]
    keeper = AxisLabels(texts)
    if texts:
        keeper.reserve = ax.annotate(" ", (labels[0][0], -0.06), xytext=(0, -7.5), **style)
    ax.add_artist(keeper)
    return keeper
