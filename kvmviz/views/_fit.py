"""Fitting a figure's text to its layout: what makes a gallery figure readable at any width.

A figure of :mod:`kvmviz.gallery` is laid out for the width asked for, with the text of the
theme's context at its own size. Until the figure is laid out, nobody knows how long a label
is on screen beside the panel it belongs to, so :func:`fit_text` lays the figure out
(constrained layout, without drawing it), looks at every text where it landed, makes the
changes below and lays it out again, until nothing changes:

* an axis label longer than its axis, a panel's title wider than its panel (or, with nothing
  to its right, than the room up to the figure's edge), or a note running out of its panel is
  wrapped onto more lines (never inside a word: ``071064f14d87`` stays whole);
* a numeric axis whose tick labels run into each other gets fewer ticks; labelled categories
  (kernels) whose labels run into each other have them wrapped narrower, then set smaller
  (down to 60 % of their size); a y axis's labels wider than a third of the figure are wrapped;
* a legend wider than the figure gets fewer columns, then narrower labels; one beside its
  panel that leaves the panel less than half the figure goes under the figure; one inside its
  panel that covers the panel's notes makes room above the bars, or takes another corner, or
  goes under the figure;
* a title with a legend or notes over its panel is lifted above them; an x label with notes
  hanging under its panel (the addresses under a memslot map) goes down past them;
* a panel whose labels need more height than it has (labels stacked up its y axis, a y label
  longer than the panel, a plot lower than :data:`MIN_PLOT_IN`) makes the figure taller.

The figure's width never changes, nor the size of any text but crowded category labels.
"""

from __future__ import annotations

import itertools
import textwrap
import warnings

import matplotlib as mpl
from matplotlib.figure import Figure

__all__ = ["MIN_LINE", "MIN_PLOT_IN", "fit_text", "legend_columns"]

MIN_LINE = 12
"""Wrapping never makes lines shorter than this, characters."""
MIN_PLOT_IN = 0.8
"""The least height of a plot (one Axes), inches: lower, a curve or a bar says little."""
_SMALLEST_TICKS = 0.6  # crowded category labels shrink to at most this share of their size


def fit_text(fig: Figure, rounds: int = 10) -> None:
    """Fit the text of ``fig`` to its layout (see the module's description).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        With a constrained layout.
    rounds : int
        The most layouts made; each one after a change.
    """
    for turn in range(rounds):
        collapsed = not _lay_out(fig)
        renderer = fig._get_renderer()
        _legend_boxes.clear()
        if turn == 0 and not collapsed:
            for ax in fig.axes:
                _settle_best(ax.get_legend(), renderer)
        if collapsed:
            _unclutter(fig, renderer)
        elif not _fit_round(fig, renderer):
            return


def _lay_out(fig: Figure) -> bool:
    """Lay ``fig`` out (and make its ticks) without drawing it; whether the constrained
    layout could be applied (it is not when the panels' text leaves them no room)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        fig.draw_without_rendering()
    return not any("constrained_layout not applied" in str(w.message) for w in caught)


# The boxes of the legends in this round's layout: a legend placed "best" weighs every point
# of every line each time it is measured.
_legend_boxes: dict[int, object] = {}


def _legend_box(legend, renderer, *, fresh: bool = False):
    """The box of ``legend`` on screen in this round's layout (measured again if ``fresh``,
    after it moved)."""
    if fresh or id(legend) not in _legend_boxes:
        _legend_boxes[id(legend)] = legend.get_window_extent(renderer)
    return _legend_boxes[id(legend)]


def _settle_best(legend, renderer) -> None:
    """Keep a legend placed "best" where it was placed (the same one of the nine places):
    "best" weighs every point of every line at each layout, which the rounds repeat."""
    if legend is None or legend._loc != 0:
        return
    box = legend.get_window_extent(renderer)
    size = mpl.transforms.Bbox.from_bounds(0, 0, box.width, box.height)
    for code in range(1, len(legend.codes)):
        x0, y0 = legend._get_anchored_bbox(code, size, legend.get_bbox_to_anchor(), renderer)
        if abs(x0 - box.x0) < 0.5 and abs(y0 - box.y0) < 0.5:
            legend.set_loc(code)
            return


def _titles(ax) -> list:
    return [ax.title, ax._left_title, ax._right_title]


def _visible(text) -> bool:
    return text.get_visible() and bool(text.get_text().strip())


# --------------------------------------------------------------------------------------------
# One round.
# --------------------------------------------------------------------------------------------
def _unclutter(fig: Figure, renderer) -> None:
    """A layout that could not be made: text too big for the figure. Legends in one column
    (or under the figure), titles and x labels wrapped to most of the figure's width, notes
    to half of it, a y axis's labels to a third, and, when there was none of that to do, a
    taller figure."""
    room = 0.75 * fig.bbox.width
    changed = False
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is not None:
            if _anchor_x(legend) > 1.0:
                _legend_under_figure(fig, ax, legend)
                changed = True
            elif legend._ncols > 1:
                _relegend(ax, legend, 1)
                changed = True
            else:
                changed |= _narrow_legend(ax, legend, room, renderer)
        for text in [*_titles(ax), ax.xaxis.label]:
            changed |= _wrap_to(text, room, renderer)
        for text in ax.texts:
            changed |= _wrap_to(text, fig.bbox.width / 2, renderer)
        changed |= _wrap_y_ticks(fig, ax.yaxis, renderer)
    for legend in fig.legends:
        changed |= _fit_figure_legend(fig, legend, renderer)
    if not changed:
        fig.set_figheight(fig.get_figheight() * 1.25)


def _fit_round(fig: Figure, renderer) -> bool:
    """One look at a laid-out figure; whether anything changed."""
    boxes = {ax: ax.get_window_extent(renderer) for ax in fig.axes if ax.get_visible()}
    changed = False
    grow = 0.0  # pixels of height the figure lacks
    for ax, box in boxes.items():
        # A title may run over the panels to its right up to the first with a title of its
        # own (the figure's edge if none has).
        right = fig.bbox.x1 - 4
        beside = [
            b
            for other, b in boxes.items()
            if other is not ax
            and b.x0 >= box.x1 - 1
            and b.y0 < box.y1
            and box.y0 < b.y1
            and any(_visible(t) for t in _titles(other))
        ]
        if beside:
            right = min(b.x0 for b in beside) - 12
        for title in _titles(ax):
            start = title.get_window_extent(renderer).x0
            changed |= _wrap_to(title, max(right - start, box.width), renderer)
        changed |= _wrap_to(ax.xaxis.label, box.width, renderer)
        changed |= _wrap_to(ax.yaxis.label, box.height, renderer, vertical=True)
        changed |= _fit_notes(fig, ax, box, renderer)
        changed |= _wrap_y_ticks(fig, ax.yaxis, renderer)
        changed |= _fit_ticks(ax.xaxis, renderer) | _fit_ticks(ax.yaxis, renderer)
        changed |= _fit_legend(fig, ax, renderer)
        changed |= _lift_titles(ax, renderer)
        changed |= _clear_xlabel(ax, renderer)
        column = [b for b in boxes.values() if b.x0 < box.x1 and box.x0 < b.x1]
        share = box.height / max(sum(b.height for b in column), 1.0)
        grow = max(grow, _lacking_height(ax, renderer) / share)
    for legend in fig.legends:
        changed |= _fit_figure_legend(fig, legend, renderer)
    if grow > 0.5:
        fig.set_figheight(fig.get_figheight() + 1.05 * grow / fig.dpi)
        changed = True
    return changed


# --------------------------------------------------------------------------------------------
# Text.
# --------------------------------------------------------------------------------------------
def _wrap_to(text, room: float, renderer, *, vertical: bool = False) -> bool:
    """Wrap ``text`` (keeping its own line breaks) until it is at most ``room`` pixels long,
    or its lines :data:`MIN_LINE` characters; whether it changed."""
    if not _visible(text):
        return False
    box = text.get_window_extent(renderer)
    length = box.height if vertical else box.width
    if length <= room + 0.5:
        return False
    paragraphs = text.get_text().split("\n")
    longest = max(len(p) for p in paragraphs)
    per_line = min(max(int(longest * room / length), MIN_LINE), longest - 1)
    original = text.get_text()
    while per_line >= MIN_LINE:
        text.set_text(_fill(paragraphs, per_line))
        box = text.get_window_extent(renderer)
        if (box.height if vertical else box.width) <= room:
            break
        per_line -= max(1, per_line // 10)
    return text.get_text() != original


def _fill(paragraphs, width: int) -> str:
    return "\n".join(
        textwrap.fill(p, width, break_long_words=False, break_on_hyphens=False) or p
        for p in paragraphs
    )


def _fit_notes(fig: Figure, ax, box, renderer) -> bool:
    """Wrap the notes of ``ax`` that run out of it (or, for names written beside it, out of
    the figure)."""
    changed = False
    for text in ax.texts:
        if not _visible(text):
            continue
        extent = text.get_window_extent(renderer)
        inside = box.x0 - 2 <= extent.x0 < box.x1
        edge = box.x1 + 2 if inside else fig.bbox.x1 - 2
        if extent.x1 > edge:
            changed |= _wrap_to(text, edge - extent.x0, renderer)
    return changed


def _clear_xlabel(ax, renderer) -> bool:
    """Move the x label of ``ax`` down past the panel's notes hanging under it (the
    addresses under a memslot map); whether it moved."""
    label = ax.xaxis.label
    if not _visible(label):
        return False
    box = label.get_window_extent(renderer)
    lows = [
        t.get_window_extent(renderer).y0
        for t in ax.texts
        if _visible(t) and t.get_window_extent(renderer).overlaps(box)
    ]
    if not lows:
        return False
    ax.xaxis.labelpad += (box.y1 - min(lows)) / renderer.points_to_pixels(1.0) + 2.0
    return True


def _lift_titles(ax, renderer) -> bool:
    """Lift the titles of ``ax`` above a legend or notes over its top that they would
    cover (again at each layout, as the panel's height changes); whether they moved."""
    titles = [t for t in _titles(ax) if _visible(t)]
    if not titles:
        return False
    box = ax.get_window_extent(renderer)
    over = []
    for other in ax.figure.axes:  # a title may reach over the panel beside its own
        over += [t.get_window_extent(renderer) for t in other.texts if _visible(t)]
        legend = other.get_legend()
        if legend is not None and legend.get_visible():
            over.append(_legend_box(legend, renderer))
    spans = [t.get_window_extent(renderer) for t in titles]
    left, right = min(b.x0 for b in spans), max(b.x1 for b in spans)
    over = [b for b in over if b.y1 > box.y1 + 1 and b.x0 < right and left < b.x1]
    over = [b for b in over if b.y0 < box.y1 + 4 * (spans[0].height + 1)]  # near the top
    lifted = getattr(ax, "_kvmviz_lifted", False)
    hit = [b for b in over if any(b.overlaps(t.get_window_extent(renderer)) for t in titles)]
    if not hit and not lifted:
        return False
    # The titles' offset above the panel, points (mpl's axes.titlepad), to clear them.
    points = renderer.points_to_pixels(1.0)
    top = max([b.y1 for b in (hit or over)], default=box.y1)
    # Only ever higher: a layout with the titles higher gives the panel another height, and
    # the notes over it another place; lowering them again could go back and forth.
    current = getattr(ax, "_kvmviz_title_pad", mpl.rcParams["axes.titlepad"])
    pad = (top - box.y1) / points + 4.0
    if pad <= current + 1.0:
        return False
    ax._set_title_offset_trans(pad)
    ax._kvmviz_title_pad = pad
    ax._kvmviz_lifted = True
    return True


# --------------------------------------------------------------------------------------------
# Ticks.
# --------------------------------------------------------------------------------------------
def _drawn_ticks(axis) -> list:
    return [t for t in axis._update_ticks() if _visible(t.label1)]


def _crowded(axis, renderer) -> bool:
    horizontal = axis.axis_name == "x"
    gap = renderer.points_to_pixels(3.0 if horizontal else 1.0)
    boxes = [t.label1.get_window_extent(renderer) for t in _drawn_ticks(axis)]
    boxes.sort(key=lambda b: b.x0 if horizontal else b.y0)
    return any(
        (b.x0 < a.x1 + gap) if horizontal else (b.y0 < a.y1 + gap)
        for a, b in itertools.pairwise(boxes)
    )


def _fit_ticks(axis, renderer) -> bool:
    """Fewer ticks on a numeric axis whose tick labels run together, or narrower (then
    smaller) labels on a labelled x axis; whether it changed."""
    if not _crowded(axis, renderer):
        return False
    locator = axis.get_major_locator()
    ticks = _drawn_ticks(axis)
    if isinstance(locator, mpl.ticker.MaxNLocator):
        locator.set_params(nbins=max(2, len(ticks) // 2))
        return True
    if isinstance(locator, mpl.ticker.LogLocator):
        locator.set_params(numticks=max(2, len(ticks) // 2 + 1))
        return True
    if axis.axis_name != "x" or not isinstance(locator, mpl.ticker.FixedLocator):
        return False
    if len(ticks) < 2:
        return False
    # Labelled categories (kernels): wrap each label to the room between two ticks.
    to_px = axis.axes.transData.transform
    room = min(
        abs(to_px((b.get_loc(), 0))[0] - to_px((a.get_loc(), 0))[0])
        for a, b in itertools.pairwise(ticks)
    ) - renderer.points_to_pixels(4.0)
    changed = False
    for tick in ticks:
        changed |= _wrap_to(tick.label1, room, renderer)
    if changed:
        axis.set_ticks([t.get_loc() for t in ticks], [t.label1.get_text() for t in ticks])
        return True
    # Nothing left to wrap: smaller, as much as the widest label needs, down to
    # _SMALLEST_TICKS of the first size.
    size = ticks[0].label1.get_fontsize()
    first = getattr(axis, "_kvmviz_tick_size", size)
    widest = max(t.label1.get_window_extent(renderer).width for t in ticks)
    smaller = max(size * min(room / widest, 0.95), first * _SMALLEST_TICKS)
    if smaller >= size - 0.05:
        return False
    axis._kvmviz_tick_size = first
    axis.set_tick_params(labelsize=smaller)
    return True


def _wrap_y_ticks(fig: Figure, axis, renderer) -> bool:
    """Wrap the labels of a labelled y axis (a tornado's rows, say) that take more than a
    third of the figure's width; whether they changed."""
    if not isinstance(axis.get_major_locator(), mpl.ticker.FixedLocator):
        return False
    changed = False
    ticks = _drawn_ticks(axis)
    for tick in ticks:
        changed |= _wrap_to(tick.label1, fig.bbox.width / 3, renderer)
    if changed:  # the labels as the formatter's, or the next layout makes them anew
        axis.set_ticks([t.get_loc() for t in ticks], [t.label1.get_text() for t in ticks])
    return changed


def _lacking_height(ax, renderer) -> float:
    """Pixels the axes ``ax`` lacks in height: for its y tick labels not to run together, for
    its y label to fit along it, and for a plot of at least :data:`MIN_PLOT_IN`."""
    box = ax.get_window_extent(renderer)
    lacking = max(MIN_PLOT_IN * ax.figure.dpi - box.height, 0.0)
    label = ax.yaxis.label
    if _visible(label):
        lacking = max(lacking, label.get_window_extent(renderer).height - box.height)
    to_px = ax.transData.transform
    gap = renderer.points_to_pixels(1.0)
    worst = 1.0
    for a, b in itertools.pairwise(_drawn_ticks(ax.yaxis)):
        spacing = abs(to_px((0, b.get_loc()))[1] - to_px((0, a.get_loc()))[1])
        needed = (
            a.label1.get_window_extent(renderer).height / 2
            + b.label1.get_window_extent(renderer).height / 2
            + gap
        )
        if spacing > 0:
            worst = max(worst, needed / spacing)
    return max(lacking, box.height * (worst - 1.0))


# --------------------------------------------------------------------------------------------
# Legends.
# --------------------------------------------------------------------------------------------
def _anchor_x(legend) -> float:
    """Where a legend is anchored across its axes (0 left edge, 1 right edge)."""
    anchor = getattr(legend._bbox_to_anchor, "_bbox", None)
    return anchor.x0 if anchor is not None else 0.0


def _fit_legend(fig: Figure, ax, renderer) -> bool:
    """Fit the legend of ``ax`` to the figure; whether it changed."""
    legend = ax.get_legend()
    if legend is None or not legend.get_visible():
        return False
    box = _legend_box(legend, renderer)
    axes_box = ax.get_window_extent(renderer)
    outside = box.x0 < fig.bbox.x0 - 1 or box.x1 > fig.bbox.x1 + 1
    if outside and legend._ncols > 1:
        _relegend(ax, legend, legend._ncols - 1)
        return True
    if outside and _narrow_legend(ax, legend, fig.bbox.width - 8, renderer):
        return True
    if box.x0 >= axes_box.x1 - 1 and axes_box.width < 0.5 * fig.bbox.width:
        _legend_under_figure(fig, ax, legend)
        return True
    if legend._bbox_to_anchor is None:  # placed in its panel
        if box.width > axes_box.width - 2 or box.height > axes_box.height - 2:
            _legend_under_figure(fig, ax, legend)  # bigger than its panel
            return True
    inside = box.y1 <= axes_box.y1 + 1 and box.y0 >= axes_box.y0 - 1
    if not inside:
        return False
    if not _covers_text(ax, legend, renderer):
        return False
    # Inside the panel, over some of its text: more room at the top if bars grow from 0,
    # else another corner, else under the figure.
    low, high = ax.get_ylim()
    if low == 0 and high > 0 and not ax.yaxis_inverted() and legend._loc in (1, 2, 9):
        if high < 4 * max((p.get_height() for p in ax.patches), default=high):
            ax.set_ylim(low, high * 1.15)
            return True
    for loc in ("upper left", "lower right", "upper right", "lower left", "center right"):
        legend.set_loc(loc)
        _legend_box(legend, renderer, fresh=True)
        if not _covers_text(ax, legend, renderer):
            return True
    _legend_under_figure(fig, ax, legend)
    return True


def _covers_text(ax, legend, renderer) -> bool:
    """Whether the legend of ``ax`` covers one of its notes or labels."""
    box = _legend_box(legend, renderer)
    return any(t.get_window_extent(renderer).overlaps(box) for t in ax.texts if _visible(t))


def _legend_entries(legend):
    handles = getattr(legend, "_kvmviz_handles", legend.legend_handles)
    labels = [t.get_text() for t in legend.get_texts()]
    size = legend.get_texts()[0].get_fontsize() if labels else None
    return handles, labels, size


def _legend_under_figure(fig: Figure, ax, legend) -> None:
    """Move the legend of ``ax`` under the figure, in as many columns as fit, into the legend
    already there if there is one (an entry of the same label once)."""
    handles, labels, size = _legend_entries(legend)
    legend.remove()
    for under in list(fig.legends):
        more, also, _size = _legend_entries(under)
        keep = [(h, t) for h, t in zip(more, also, strict=True) if t not in labels]
        handles = [h for h, _t in keep] + list(handles)
        labels = [t for _h, t in keep] + labels
        under.remove()
    new = fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncol=legend_columns(fig, labels, size or "small"),
        fontsize=size,
        handler_map=legend._custom_handler_map,
        handlelength=legend.handlelength,
    )
    new._kvmviz_handles = handles


def _fit_figure_legend(fig: Figure, legend, renderer) -> bool:
    """Fewer columns, then narrower labels, for a figure legend wider than the figure."""
    box = _legend_box(legend, renderer)
    if box.x0 >= fig.bbox.x0 - 1 and box.x1 <= fig.bbox.x1 + 1:
        return False
    handles, labels, size = _legend_entries(legend)
    ncol = legend._ncols
    if ncol == 1:
        wrapped = _narrower(legend, fig.bbox.width - 8, renderer)
        if wrapped is None:
            return False
        labels = wrapped
    legend.remove()
    new = fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncol=max(ncol - 1, 1),
        fontsize=size,
        handler_map=legend._custom_handler_map,
        handlelength=legend.handlelength,
    )
    new._kvmviz_handles = handles
    return True


def _narrower(legend, room: float, renderer) -> list[str] | None:
    """The labels of a one-column legend wrapped so that it is at most ``room`` pixels wide,
    or None if they cannot be."""
    box = _legend_box(legend, renderer)
    labels = [t.get_text() for t in legend.get_texts()]
    if box.width <= room or not labels:
        return None
    longest = max(len(line) for label in labels for line in label.split("\n"))
    text_px = max(t.get_window_extent(renderer).width for t in legend.get_texts())
    per_line = max(int(longest * (text_px - (box.width - room)) / max(text_px, 1.0)), MIN_LINE)
    wrapped = [_fill(label.split("\n"), per_line) for label in labels]
    return None if wrapped == labels else wrapped


def _narrow_legend(ax, legend, room: float, renderer) -> bool:
    """Wrap the labels of a one-column legend of ``ax`` wider than ``room`` pixels; whether
    it changed."""
    wrapped = _narrower(legend, room, renderer)
    if wrapped is None:
        return False
    _relegend(ax, legend, legend._ncols, wrapped)
    return True


def _relegend(ax, legend, ncol: int, labels=None) -> None:
    """Draw the legend of ``ax`` again in ``ncol`` columns (a legend lays its box out once,
    when made), where it was, with new ``labels`` if given."""
    handles, own, size = _legend_entries(legend)
    new = ax.legend(
        handles,
        own if labels is None else labels,
        loc=legend._loc,
        # In the axes' coordinates, as given (the legend keeps it transformed to pixels).
        bbox_to_anchor=getattr(legend._bbox_to_anchor, "_bbox", None),
        ncol=ncol,
        fontsize=size,
        handler_map=legend._custom_handler_map,
        handlelength=legend.handlelength,
        labelspacing=legend.labelspacing,
    )
    new._kvmviz_handles = handles


def legend_columns(fig, labels, fontsize) -> int:
    """As many columns as fit across ``fig`` (a legend entry being its label and a handle
    of about 3 em), at least one: the legend stays inside the figure."""
    from matplotlib.font_manager import FontProperties

    size = FontProperties(size=fontsize).get_size_in_points()
    room = fig.get_figwidth() * 72 - 2 * size
    widths = [(0.6 * max(map(len, label.split("\n"))) + 3.5) * size for label in labels]
    for ncol in range(len(labels), 1, -1):
        nrows = -(-len(labels) // ncol)  # a legend fills its columns one after the other
        columns = [widths[j * nrows : (j + 1) * nrows] for j in range(ncol)]
        if sum(max(c, default=0.0) for c in columns) <= room:
            return ncol
    return 1
