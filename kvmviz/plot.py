"""Static figures, each ``f(data, *, ax=None) -> Axes``, drawn from a run's tidy tables.

None of them simulates: pass :class:`~kvmviz.engine.Run` objects (or a ``{kernel: Run}``
mapping) made elsewhere. Call :func:`kvmviz.set_theme` first for the house look.
"""

from __future__ import annotations

import io
import itertools
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter
from matplotlib.transforms import IdentityTransform

from ._checks import check_number
from ._files import umask
from .kernels import CALLBACKS, KERNELS
from .memslots import PAGE_SHIFT
from .metrics import brownout as brownout_curve
from .metrics import summarize
from .theme import COLORS, HATCHES, KERNEL_STYLES, POLICY_STYLES

__all__ = [
    "MIN_SPAN_PT",
    "SpanBars",
    "brownout",
    "busiest_window",
    "compare_kernels",
    "contention_table",
    "contention_text",
    "gfn_map",
    "lock_timeline",
    "memslot_map",
    "restyle",
    "retry_timeline",
    "save",
    "stall_by_kernel",
    "stall_cdf",
    "update",
    "whole_stalls",
]

_WAIT_FLOOR_US = 0.1  # waits below this are drawn at the floor of the log axis

MIN_SPAN_PT = 3.0
"""The narrowest a range, hold or wait is drawn, in points (1/72 inch; 3 pt is 4 px on a
notebook screen and 8 px in a 200 dpi PNG). Drawn to scale, a 4 KiB range in a 12 TiB memslot
or a 40 ns write hold in a 3 ms window would be far below a pixel: the figure would hide the
very thing it is about."""
_MARK_PT = (7.0, 5.0)  # width and height of the triangle over each notifier hit, points
_MARK_GAP_PT = 1.0


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
       one spot and would otherwise look like one).

    What was drawn last is kept in ``drawn_spans`` (``(x, width)`` in data units),
    ``drawn_counts`` (how many stored bars each stands for) and ``drawn_marks`` (how many
    triangles), for tests and for readers of the figure. Counted at each draw, they stay right
    when a dashboard moves the bars.

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
    **kwargs
        Passed to :class:`matplotlib.collections.PolyCollection` (facecolor, hatch, gid, ...).
    """

    def __init__(self, spans, yrange, *, min_pt: float = MIN_SPAN_PT, marks=False, **kwargs):
        y0, height = yrange
        super().__init__([_rect(float(x), float(w), y0, height) for x, w in spans], **kwargs)
        self.min_pt = float(min_pt)
        self.marks = bool(marks)
        self.drawn_spans: list[tuple[float, float]] = []
        self.drawn_counts: list[int] = []
        self.drawn_marks = 0
        self._labels: list[tuple[float, float, str]] = []  # (x_px, y_px, text) beside marks

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
            if self.marks:
                # Above the band on screen (the y axis may be inverted): tip down onto the bar.
                top_px = trans.transform([((x0 + x1) / 2, y0), ((x0 + x1) / 2, y1)])[:, 1].max()
                tip = top_px + _MARK_GAP_PT * px
                centre_px = (x0_px + x1_px) / 2
                corners = [
                    (centre_px, tip),
                    (centre_px - mark_w / 2, tip + mark_h),
                    (centre_px + mark_w / 2, tip + mark_h),
                    (centre_px, tip),
                ]
                polygons.append(inverse.transform(corners))
                self.drawn_marks += 1
                if n >= 2:
                    self._labels.append((centre_px + mark_w / 2 + px, tip + mark_h / 2, f"×{n:,}"))
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
        for x, y, text in self._labels:
            label = Text(x, y, text, ha="left", va="center", fontsize="x-small")
            label.set_color(self.get_edgecolor()[0] if len(self.get_edgecolor()) else "black")
            label.set_figure(self.figure)
            label.set_transform(IdentityTransform())  # placed in display units, at draw
            label.draw(renderer)


def _span_bars(ax, spans, yrange, *, marks: bool = False, **style) -> SpanBars:
    """Add a :class:`SpanBars` to ``ax`` (without moving its limits) and return it."""
    bars = SpanBars(spans, yrange, marks=marks, **style)
    ax.add_collection(bars, autolim=False)
    return bars


def _runs(runs) -> dict:
    """Accept a Run, a sequence of Runs or a {label: Run} mapping."""
    if isinstance(runs, Mapping):
        return dict(runs)
    if hasattr(runs, "faults"):
        return {runs.kernel: runs}
    return {run.kernel: run for run in runs}


def _cdf_points(run):
    wait = np.sort(np.maximum(run.faults["wait_us"].to_numpy(), _WAIT_FLOOR_US))
    if wait.size == 0:
        return np.array([_WAIT_FLOOR_US]), np.array([0.0])
    share = np.arange(1, wait.size + 1) / wait.size
    # Keep the curve's shape with at most ~2,000 points (a 10^6-row run draws instantly).
    keep = np.unique(np.linspace(0, wait.size - 1, min(wait.size, 2000)).astype(int))
    return (
        np.concatenate([[_WAIT_FLOOR_US], wait[keep]]),
        np.concatenate([[0.0], share[keep]]),
    )


def _brownout_points(run, bin_us=None):
    curve = brownout_curve(run, bin_us=bin_us)
    return curve["t_us"].to_numpy() / 1000, 100 * curve["stalled_share"].to_numpy()


def update(ax, runs, *, highlight: str | None = None):
    """Give the lines of an axes drawn by :func:`stall_cdf` or :func:`brownout` new runs'
    data and the highlight, reusing every artist (much faster than drawing anew)."""
    runs = _runs(runs)
    top = _WAIT_FLOOR_US
    for line in ax.get_lines():
        kind, _, label = (line.get_gid() or "").partition("|")
        if label not in runs:
            continue
        if kind == "cdf":
            x, y = _cdf_points(runs[label])
            top = max(top, x[-1])
        else:
            x, y = _brownout_points(runs[label])
        line.set_data(x, y)
    if ax.get_xscale() == "log":
        ax.set_xlim(_WAIT_FLOOR_US * 0.8, max(top * 1.5, 10.0))
    else:
        ax.relim()
        ax.autoscale_view(scaley=False)
    return restyle(ax, highlight=highlight)


def restyle(ax, *, highlight: str | None):
    """Re-apply the highlight to the lines of an axes drawn by :func:`stall_cdf` or
    :func:`brownout`, without drawing anything new."""
    for line in ax.get_lines():
        label = (line.get_gid() or "").partition("|")[2]
        if not label:
            continue
        style = _style(label, highlight)
        line.set_linewidth(style.get("linewidth", 1.8))
        line.set_alpha(style.get("alpha", 1.0))
    legend = ax.get_legend()
    if legend is not None:
        for handle, line in zip(legend.get_lines(), ax.get_lines(), strict=False):
            handle.set_linewidth(line.get_linewidth())
            handle.set_alpha(line.get_alpha())
    return ax


def _style(label: str, highlight: str | None) -> dict:
    fallback = {"color": COLORS["read"], "linestyle": "-"}
    base = dict(KERNEL_STYLES.get(label) or POLICY_STYLES.get(label) or fallback)
    base.setdefault("label", label)
    if highlight is not None:
        if label == highlight:
            base["linewidth"] = 2.6
        else:
            base["alpha"] = 0.45
            base["linewidth"] = 1.2
    return base


def stall_cdf(runs, *, ax=None, highlight: str | None = None):
    """Cumulative distribution of how long fault attempts waited for ``mmu_lock``.

    Parameters
    ----------
    runs : Run, sequence of Run, or mapping of label to Run
    ax : matplotlib.axes.Axes, optional
    highlight : str, optional
        Label (kernel) to draw bold, the others faint.

    Returns
    -------
    matplotlib.axes.Axes

    Notes
    -----
    The x axis is logarithmic; attempts that did not wait at all sit at its left edge
    (0.1 µs), so the height of the curve there is the share of attempts that never stalled.
    """
    ax = ax or plt.gca()
    top = _WAIT_FLOOR_US
    for label, run in _runs(runs).items():
        x, y = _cdf_points(run)
        ax.step(x, y, where="post", gid=f"cdf|{label}", **_style(label, highlight))
        top = max(top, x[-1])
    ax.set_xscale("log")
    # Plain numbers (0.1, 1, 10, ...) read faster than 10^n and skip mathtext's parser.
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(_WAIT_FLOOR_US * 0.8, max(top * 1.5, 10.0))
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("mmu_lock wait per fault attempt (µs, log scale; no wait at left edge)")
    ax.set_ylabel("share of fault attempts")
    ax.set_title("vCPU fault stalls")
    ax.legend(loc="lower right")
    return ax


def brownout(runs, *, ax=None, bin_us: float | None = None, highlight: str | None = None):
    """Share of the VM's vCPUs stalled on ``mmu_lock`` over time, one line per run.

    Parameters
    ----------
    runs : Run, sequence of Run, or mapping of label to Run
    ax : matplotlib.axes.Axes, optional
    bin_us : float, optional
        Averaging window, µs (default: 200 windows over the run).
    highlight : str, optional
        Label (kernel) to draw bold, the others faint.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = ax or plt.gca()
    for label, run in _runs(runs).items():
        x, y = _brownout_points(run, bin_us)
        ax.step(x, y, where="post", gid=f"brownout|{label}", **_style(label, highlight))
    ax.set_ylim(0, 100)
    ax.set_xlabel("simulated time (ms)")
    ax.set_ylabel("vCPUs stalled on mmu_lock (%)")
    ax.set_title("Brownout")
    return ax


def _segments(slot_intervals, other_intervals, cluster_gap: int = 1 << 30):
    """Cut the 2^47-byte hva axis into the segments worth drawing.

    Every memslot (overlapping slots, such as SMM aliases, merged) is a segment; ranges outside
    every slot are grouped into segments of their own when less than ``cluster_gap`` apart.
    Each segment is drawn linearly inside, with a width growing with the log of its size, so a
    4 KiB ROM and 12 TiB of RAM are both visible; gaps between segments are cut out. A segment
    outside every slot starts half as wide as a slot's: VMM memory that only a spurious
    notification touches should not outweigh the memslots the map is about.
    """

    def merge(intervals, gap=0):
        out: list[list[int]] = []
        for a, b in sorted(intervals):
            if out and a < out[-1][1] + gap:
                out[-1][1] = max(out[-1][1], b)
            else:
                out.append([a, b])
        return out

    slots = merge([(int(a), int(b)) for a, b in slot_intervals])
    outside = [
        (int(a), int(b))
        for a, b in other_intervals
        if not any(int(a) < hi and lo < int(b) for lo, hi in slots)
    ]
    inside = [
        (int(a), int(b))
        for a, b in other_intervals
        if any(int(a) < hi and lo < int(b) for lo, hi in slots)
    ]
    # A range that crosses a slot's end widens that slot's segment (overlap merge, no gap).
    segments = merge([tuple(x) for x in slots] + inside)
    # Ranges outside every slot cluster when close, but a cluster never reaches across a slot.
    clusters: list[list[int]] = []
    for a, b in sorted(outside):
        if clusters and a < clusters[-1][1] + cluster_gap:
            end = clusters[-1][1]
            if not any(end <= lo < a or end < hi <= a for lo, hi in segments):
                clusters[-1][1] = max(end, b)
                continue
        clusters.append([a, b])
    outside_slots = {(a, b) for a, b in clusters}
    segments = sorted(segments + clusters)
    placed, pos, prev_end = [], 0.0, None
    for a, b in segments:
        if prev_end is not None and a != prev_end:
            pos += 0.5  # a cut-out gap
        base = 0.5 if (a, b) in outside_slots else 1.0
        width = base + np.log2(max(b - a, 4096) / 4096) / 8
        placed.append((a, b, pos, width))
        pos += width
        prev_end = b

    def to_x(hva: int) -> float:
        for a, b, x0, width in placed:
            if a <= hva <= b:
                return x0 + width * (hva - a) / max(b - a, 1)
        raise ValueError(f"hva {hva:#x} is outside every drawn segment")

    return to_x, placed, pos


def _slot_bar(ax, x0: float, x1: float, y: float, height: float, *, gid: str) -> None:
    """One memslot as a green bar, at least visible however narrow."""
    ax.add_patch(
        Rectangle(
            (x0, y),
            max(x1 - x0, 0.004),
            height,
            facecolor=COLORS["memslot"],
            edgecolor="white",
            linewidth=0.8,
            gid=gid,
        )
    )


def _slot_label(ax, x0, x1, y, height, label: str, *, room: float) -> None:
    """A memslot's label: inside its bar, in white, when the bar is wider than ``room``;
    otherwise its size alone under the bar, in the slot's green (a narrow bar must still say
    how big it is)."""
    if x1 - x0 > room:
        ax.text(
            (x0 + x1) / 2,
            y + height / 2,
            label,
            ha="center",
            va="center",
            fontsize="x-small",
            color="white",
            clip_on=True,
        )
    else:
        ax.text(
            (x0 + x1) / 2,
            y,
            label.replace(", ", "\n").split("\ngfn")[0],
            ha="center",
            va="top",
            fontsize="xx-small",
            color=COLORS["memslot"],
            clip_on=True,
        )


def _size(nbytes: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            return f"{nbytes / (1 << shift):.3g} {unit}"
    return f"{nbytes} B"


def _notifier_spans(to_x, ranges) -> dict[bool, list[tuple[float, float]]]:
    """(x, width) of each notifier range on the compressed axis, hits and misses apart."""
    spans: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for a, b, hit in zip(ranges["hva_start"], ranges["hva_end"], ranges["hit"], strict=True):
        x0, x1 = to_x(int(a)), to_x(int(b))
        spans[bool(hit)].append((x0, x1 - x0))  # to scale: SpanBars widens it on screen
    return spans


# How each kind of notifier range is drawn: a hit is solid vermilion with a triangle above it
# (it takes mmu_lock and is the story of the maps, however small), a miss a light grey hatch
# on a pale ground, opaque so that overlapping misses look like one miss, not a darker one.
_RANGE_STYLE = {
    "hit": {"facecolor": COLORS["hit"], "edgecolor": COLORS["hit"], "linewidth": 0.5},
    "miss": {
        "facecolor": COLORS["miss_face"],
        "edgecolor": COLORS["miss"],
        "hatch": HATCHES["miss"],
        "linewidth": 0.5,
    },
}


def _range_handles(n_hits: int, n_misses: int, *, counts: bool, what: str = "notifier") -> list:
    """Legend entries for the kinds of range drawn, and only those, with their counts; without
    counts (a live map whose bars will move), both kinds, which either run may draw."""
    handles = []
    if n_hits or not counts:
        label = f"{what} hits" + (f" ({n_hits:,})" if counts else "")
        mark = Line2D([], [], marker="v", markersize=6, color=COLORS["hit"], linestyle="none")
        handles.append(((Patch(**_RANGE_STYLE["hit"]), mark), label))
    if n_misses or not counts:
        label = f"{what} misses (spurious)" + (f" ({n_misses:,})" if counts else "")
        handles.append((Patch(**_RANGE_STYLE["miss"]), label))
    return handles


_COMPRESSED_AXIS = (
    "{axis}: widths grow with the log of size (labels give sizes), gaps between {gaps} cut out"
)


def memslot_map(
    layout,
    notifiers=None,
    *,
    ax=None,
    max_ranges: int = 400,
    regions=(),
    gfn_view: bool = False,
    counts: bool = True,
):
    """The VMM's address space with its memslots and, optionally, notifier ranges on it.

    The hva axis is compressed: each cluster of memslots and notifier ranges is drawn to its own
    scale and the (huge) gaps between clusters are cut out (``//``). Memslots are green bars,
    one row per address space, each labelled with its slot id and size (the widths grow with
    the log of the size, so they cannot show it themselves) and, where there is room, its gfn
    range. Notifier ranges are drawn above: vermilion, with a triangle over each, where they
    hit a memslot (KVM must zap, and takes ``mmu_lock``); grey and hatched where they miss.
    Every range is at least :data:`MIN_SPAN_PT` wide on screen (:class:`SpanBars`), so a
    one-page hit in a 12 TiB slot is as visible as a miss that fills a segment, and
    overlapping misses keep their hatch. The legend lists only the kinds of range drawn.

    Parameters
    ----------
    layout : MemslotLayout
    notifiers : pandas.DataFrame, optional
        With ``hva_start, hva_end`` and ``hit`` columns (``Run.notifiers``); one range per
        event is drawn (its first callback), at most ``max_ranges``.
    ax : matplotlib.axes.Axes, optional
        With ``gfn_view=True``: a pair ``(hva_ax, gfn_ax)``, or None for a new figure.
    max_ranges : int
        Draw at most this many notifier ranges (the first ones in time).
    regions : sequence of (hva_start, hva_end), optional
        Other stretches of the address space to draw as segments even with no range on them
        (e.g. :data:`kvmviz.presets.VMM_HEAP`), so that the axis does not depend on the ranges.
    gfn_view : bool
        Also draw the guest-physical side below the hva map (:func:`gfn_map`): where in each
        address space the notifier hits land. With ``ax=None`` this makes a new two-row figure.
    counts : bool
        Give the number of hits and misses drawn in the legend, which lists only the kinds
        drawn. Pass False when the ranges will be replaced later (a dashboard moving the bars
        of one map): the legend then lists both kinds, without counts, so that nothing stale
        stays on screen. The ``×n`` beside stacked hits is counted at each draw either way.

    Returns
    -------
    matplotlib.axes.Axes
        The hva map (with ``gfn_view``, the gfn map is the next axes of the figure).

    See Also
    --------
    gfn_map : the same layout and notifier hits on the guest-physical axis.
    """
    if gfn_view:
        if ax is None:
            rows = len({s.as_id for s in layout})
            _fig, (ax, ax_gfn) = plt.subplots(
                2,
                1,
                figsize=(10, 2.2 + 1.1 * rows),
                height_ratios=[rows + (notifiers is not None), rows],
                layout="constrained",
            )
        elif isinstance(ax, Axes):
            raise ValueError("gfn_view=True needs a pair of axes (hva_ax, gfn_ax) or ax=None")
        else:
            ax, ax_gfn = ax
        memslot_map(layout, notifiers, ax=ax, max_ranges=max_ranges, regions=regions, counts=counts)
        gfn_map(layout, notifiers, ax=ax_gfn, max_ranges=max_ranges, counts=counts)
        return ax
    ax = ax or plt.gca()
    ranges, other = None, []
    if notifiers is not None and len(notifiers):
        ranges = notifiers.drop_duplicates("event") if "event" in notifiers else notifiers
        ranges = ranges.head(max_ranges)
        other = list(zip(ranges["hva_start"], ranges["hva_end"], strict=True))
    to_x, placed, total = _segments([(s.hva_start, s.hva_end) for s in layout], [*other, *regions])
    as_ids = sorted({s.as_id for s in layout})
    row_of = {as_id: i for i, as_id in enumerate(as_ids)}
    # Slots whose hvas overlap in one address space (QEMU's isa-bios aliases the top of
    # pc.bios) are stacked in lanes within their row.
    lane_of, lanes_in = {}, {}
    for as_id in as_ids:
        ends: list[int] = []
        for slot in sorted((x for x in layout if x.as_id == as_id), key=lambda x: x.hva_start):
            lane = next((i for i, end in enumerate(ends) if end <= slot.hva_start), len(ends))
            if lane < len(ends):
                ends[lane] = slot.hva_end
            else:
                ends.append(slot.hva_end)
            lane_of[slot] = lane
        lanes_in[as_id] = max(len(ends), 1)
    for slot in layout:
        x0, x1 = to_x(slot.hva_start), to_x(slot.hva_end)
        height = 0.8 / lanes_in[slot.as_id]
        y = row_of[slot.as_id] + 0.1 + lane_of[slot] * height
        _slot_bar(ax, x0, x1, y, height, gid=f"memslot-as{slot.as_id}-slot{slot.slot}")
        label = f"slot {slot.slot}\n{_size(slot.size_bytes)}"
        if x1 - x0 > 2.5 and lanes_in[slot.as_id] == 1:
            label = f"slot {slot.slot}, {_size(slot.size_bytes)}"
            label += f"\ngfn {slot.base_gfn:#x}–{slot.gfn_end:#x}"
        _slot_label(ax, x0, x1, y, height, label, room=0.5)
    top = len(as_ids)
    legend = []
    if ranges is not None:
        # One collection per kind (not a patch per range): a map of 400 ranges draws at once.
        # Misses first, so that a hit next to a miss is drawn over it.
        spans = _notifier_spans(to_x, ranges)
        for hit in (False, True):
            key = "hit" if hit else "miss"
            _span_bars(
                ax,
                spans[hit],
                (top + 0.15, 0.6),
                marks=hit,
                gid=f"notifiers-{key}",
                zorder=2.1 if hit else 2.0,
                **_RANGE_STYLE[key],
            )
        legend = _range_handles(len(spans[True]), len(spans[False]), counts=counts)
    previous_end, last_label = None, -np.inf
    for a, b, x0, width in placed:
        if previous_end != a:
            if x0 - last_label >= 1.4:  # room for a 14-digit address
                ax.text(x0, -0.08, f"{a:#x}", ha="left", va="top", fontsize="xx-small")
                last_label = x0
            if previous_end is not None:
                ax.text(x0 - 0.25, top / 2, "//", ha="center", va="center", color=COLORS["miss"])
        if not any(s.hva_start <= a < s.hva_end for s in layout):
            ax.text(
                x0 + width / 2,
                top - 0.5,
                f"{'VMM memory' if width > 0.9 else 'VMM'}\n{_size(b - a)}",
                ha="center",
                va="center",
                fontsize="x-small",
                color=COLORS["miss"],
            )
        previous_end = b
    rows = [f"as_id {a}" for a in as_ids] + (["notifiers"] if ranges is not None else [])
    ax.set_yticks(np.arange(len(rows)) + 0.5, rows)
    ax.set_ylim(-0.35, len(rows) + 0.1)  # room for the triangles over the hits
    ax.set_xlim(-0.05, total + 0.05)
    ax.set_xticks([])
    ax.set_xlabel(_COMPRESSED_AXIS.format(axis="host virtual address (hva)", gaps="clusters"))
    ax.set_title("Memslots in the VMM's address space")
    if legend:
        handles, labels = zip(*legend, strict=True)
        ax.legend(
            handles,
            labels,
            handler_map={tuple: HandlerTuple(ndivide=None)},
            loc="lower right",
            bbox_to_anchor=(1.0, 1.0),
            fontsize="small",
            ncol=2,
        )
    ax.spines["left"].set_visible(False)
    return ax


def _first_callbacks(notifiers, max_ranges: int):
    ranges = notifiers.drop_duplicates("event") if "event" in notifiers else notifiers
    return ranges.head(max_ranges)


def gfn_map(layout, notifiers=None, *, ax=None, max_ranges: int = 400, counts: bool = True):
    """The guest-physical side of a layout: each address space's memslots on the gfn axis and,
    optionally, the guest frames that notifier hits reach.

    The gfn axis is compressed like the hva axis of :func:`memslot_map`: each memslot is drawn
    to its own scale, with a width growing with the log of its size, and the gaps between
    memslots are cut out (``//``); the first gfn of each slot is written under it.
    Memslots are green bars, one row per address space (as_id 1 is x86's SMM), each labelled
    with its slot id and size. Above each slot, vermilion marks show the gfn ranges a notifier
    hit reaches, computed exactly as ``__kvm_handle_hva_range()`` does
    (:meth:`MemslotLayout.gfn_ranges`): an hva aliased in both address spaces reaches both.
    Each mark is at least :data:`MIN_SPAN_PT` wide on screen. Misses reach no guest frame, so
    they do not appear here.

    Parameters
    ----------
    layout : MemslotLayout
    notifiers : pandas.DataFrame, optional
        With ``hva_start, hva_end`` and ``hit`` columns (``Run.notifiers``); the first callback
        of each event is used, at most ``max_ranges`` events (the same as :func:`memslot_map`).
    ax : matplotlib.axes.Axes, optional
    max_ranges : int
    counts : bool
        Give the number of hits and of gfn ranges they reach in the legend.

    Returns
    -------
    matplotlib.axes.Axes

    See Also
    --------
    memslot_map : the hva side; ``memslot_map(..., gfn_view=True)`` draws both.
    """
    ax = ax or plt.gca()
    # The axis is built from byte addresses (gpa) so that segment widths match the hva map's.
    to_x, placed, total = _segments(
        [(s.base_gfn << PAGE_SHIFT, s.gfn_end << PAGE_SHIFT) for s in layout], []
    )
    as_ids = sorted({s.as_id for s in layout})
    row_of = {as_id: i for i, as_id in enumerate(as_ids)}
    for slot in layout:
        x0, x1 = to_x(slot.base_gfn << PAGE_SHIFT), to_x(slot.gfn_end << PAGE_SHIFT)
        y = row_of[slot.as_id] + 0.08
        _slot_bar(ax, x0, x1, y, 0.5, gid=f"gfn-memslot-as{slot.as_id}-slot{slot.slot}")
        sep = ", " if x1 - x0 > 1.6 else "\n"
        _slot_label(ax, x0, x1, y, 0.5, f"slot {slot.slot}{sep}{_size(slot.size_bytes)}", room=0.7)
    handles = [Patch(facecolor=COLORS["memslot"], label="memslot")]
    if notifiers is not None and len(notifiers):
        ranges = _first_callbacks(notifiers, max_ranges)
        ranges = ranges[ranges["hit"].to_numpy(dtype=bool)]
        spans: dict[int, list[tuple[float, float]]] = {as_id: [] for as_id in as_ids}
        for a, b in zip(ranges["hva_start"], ranges["hva_end"], strict=True):
            for reached in layout.gfn_ranges(int(a), int(b)):
                x0 = to_x(reached.gfn_start << PAGE_SHIFT)
                x1 = to_x(reached.gfn_end << PAGE_SHIFT)
                spans[reached.as_id].append((x0, x1 - x0))  # to scale: SpanBars widens it
        for as_id in as_ids:
            _span_bars(
                ax,
                spans[as_id],
                (row_of[as_id] + 0.62, 0.3),
                gid=f"gfn-hits-as{as_id}",
                **_RANGE_STYLE["hit"],
            )
        n_reached = sum(len(x) for x in spans.values())
        if n_reached:  # the legend lists what is drawn, and no hit reaches nothing
            label = "guest frames reached by notifier hits"
            if counts:
                label = (
                    f"guest frames reached by {len(ranges):,} notifier "
                    f"{'hit' if len(ranges) == 1 else 'hits'} ({n_reached:,} gfn "
                    f"{'range' if n_reached == 1 else 'ranges'})"
                )
            handles.append(Patch(label=label, **_RANGE_STYLE["hit"]))
    previous_end = None
    for start, end, x0, _width in placed:
        ax.text(x0, -0.06, f"{start >> PAGE_SHIFT:#x}", ha="left", va="top", fontsize="xx-small")
        if previous_end is not None and previous_end != start:
            ax.text(
                x0 - 0.25, len(as_ids) / 2, "//", ha="center", va="center", color=COLORS["miss"]
            )
        previous_end = end
    ax.set_yticks(np.arange(len(as_ids)) + 0.5, [_as_name(a) for a in as_ids])
    ax.set_ylim(-0.3, len(as_ids))
    ax.set_xlim(-0.05, total + 0.05)
    ax.set_xticks([])
    ax.set_xlabel(
        _COMPRESSED_AXIS.format(axis="guest frame number (gfn, 4 KiB pages)", gaps="memslots")
    )
    ax.set_title("Memslots in guest-physical memory")
    ax.legend(
        handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize="small", ncol=2
    )
    ax.spines["left"].set_visible(False)
    return ax


def _as_name(as_id: int) -> str:
    return "as_id 1 (SMM)" if as_id == 1 else f"as_id {as_id}"


# --------------------------------------------------------------------------------------------
# The lock timeline.
# --------------------------------------------------------------------------------------------
def _busy_time(starts, ends, edges) -> np.ndarray:
    """Per bin of ``edges``, the time covered by the intervals ``[starts, ends)``, summed."""
    starts = np.sort(np.clip(starts, edges[0], edges[-1]))
    ends = np.sort(np.clip(ends, edges[0], edges[-1]))
    cum_s = np.concatenate([[0.0], np.cumsum(starts)])
    cum_e = np.concatenate([[0.0], np.cumsum(ends)])
    n_s = np.searchsorted(starts, edges, "right")
    n_e = np.searchsorted(ends, edges, "right")
    # F(x) = sum of overlaps of the intervals with (-inf, x): piecewise linear in x.
    covered = (n_s * edges - cum_s[n_s]) - (n_e * edges - cum_e[n_e])
    return np.diff(covered)


def _queue_depth(run, start_us: float, end_us: float):
    """(t_us, waiting): how many acquisitions of ``mmu_lock`` wait at each instant, as steps."""
    lock = run.lock
    waited = lock["wait_us"].to_numpy() > 0
    requests = lock["t_request_us"].to_numpy()[waited]
    grants = lock["t_grant_us"].to_numpy()[waited]
    times = np.concatenate([requests, grants])
    delta = np.concatenate([np.ones(requests.size), -np.ones(grants.size)])
    order = np.lexsort((delta, times))  # at one instant, grants before requests
    times, depth = times[order], np.cumsum(delta[order])
    first = np.searchsorted(times, start_us, "right")
    last = np.searchsorted(times, end_us, "left")
    before = depth[first - 1] if first > 0 else 0.0
    t = np.concatenate([[start_us], times[first:last], [end_us]])
    waiting = np.concatenate([[before], depth[first:last], [depth[last - 1] if last > 0 else 0]])
    return t, waiting


def _spans(starts, widths, scale: float) -> list[tuple[float, float]]:
    """(x, width) of intervals, to scale: :class:`SpanBars` gives them a width on screen."""
    return [(a * scale, w * scale) for a, w in zip(starts, widths, strict=True)]


_STATE_STYLE = {
    "read": {"facecolor": COLORS["read"], "edgecolor": COLORS["read"], "linewidth": 0},
    "write": {"facecolor": COLORS["write"], "edgecolor": COLORS["write"], "linewidth": 0},
    # The hatch takes the edge colour: white dots on orange stay visible in grey scale.
    "wait": {
        "facecolor": COLORS["wait"],
        "edgecolor": "white",
        "linewidth": 0,
        "hatch": HATCHES["wait"],
    },
}
_SKIP_MARK = {"marker": "|", "markersize": 9, "markeredgewidth": 1.5, "color": COLORS["miss"]}


def _notifier_lane(ax, notifiers, start_us, end_us, y, height, scale):
    """The notifier lane of a timeline at ``y``: waits and write holds as bars, callbacks that
    skipped the lock as marks (an instant, shown if it falls in the window). Bars are to scale
    but at least :data:`MIN_SPAN_PT` wide on screen (a 40 ns write hold in a 3 ms window is
    the point of the lane). Returns the callbacks shown."""
    arrive = notifiers["t_arrive_us"].to_numpy()
    locked = notifiers["locked"].to_numpy(dtype=bool)
    release = np.where(locked, notifiers["t_release_us"].to_numpy(), arrive)
    shown = notifiers[(arrive < end_us) & (release >= start_us)]
    taken = shown[shown["locked"].to_numpy(dtype=bool)]
    waited = taken[taken["wait_us"].to_numpy() > 0]
    _span_bars(
        ax,
        _spans(waited["t_arrive_us"], waited["wait_us"], scale),
        (y, height),
        gid="lane-notifier-wait",
        **_STATE_STYLE["wait"],
    )
    _span_bars(
        ax,
        _spans(taken["t_grant_us"], taken["hold_us"], scale),
        (y, height),
        gid="lane-notifier-write",
        zorder=2.1,  # a write hold right after its wait is drawn over the wait's widened end
        **_STATE_STYLE["write"],
    )
    skipped = shown[~shown["locked"].to_numpy(dtype=bool)]
    ax.plot(
        skipped["t_arrive_us"].to_numpy() * scale,
        np.full(len(skipped), y + height / 2),
        linestyle="none",
        gid="lane-notifier-skipped",
        **_SKIP_MARK,
    )
    return shown


def _contention_episodes(run) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the maximal stretches of time in which someone waits for
    ``mmu_lock``: the union of every acquisition's ``[t_request_us, t_grant_us)`` that waited,
    faults and callbacks alike, overlapping or touching intervals merged. Sorted, disjoint."""
    lock = run.lock
    waited = lock["wait_us"].to_numpy() > 0
    request = lock["t_request_us"].to_numpy()[waited]
    grant = lock["t_grant_us"].to_numpy()[waited]
    if request.size == 0:
        return np.empty(0), np.empty(0)
    order = np.argsort(request, kind="stable")
    request, grant = request[order], grant[order]
    reach = np.maximum.accumulate(grant)
    first = np.flatnonzero(np.concatenate([[True], request[1:] > reach[:-1]]))
    return request[first], np.maximum.reduceat(grant, first)


def whole_stalls(run, start_us: float, end_us: float) -> tuple[float, float]:
    """Widen a timeline window so that no stall is cut off at either edge.

    A stall is any acquisition of ``mmu_lock`` that waited (a fault or a notifier callback,
    from ``t_request_us`` to ``t_grant_us`` in ``run.lock``). The window is widened to the
    bounds of every contention episode it overlaps (a maximal stretch of time in which someone
    waits, overlapping waits merged), so every stall that overlaps the window is shown whole,
    and so is every stall that overlaps the widened one: its edges fall where nobody waits.

    Parameters
    ----------
    run : Run
    start_us, end_us : float
        The window, µs of simulated time; ``end_us`` after ``start_us``.

    Returns
    -------
    (start_us, end_us) : tuple of float
        Never narrower than the window given; the same window if it cuts no stall. An edge
        that had to move gets a margin of calm (2 % of the window, less if the next episode
        is closer) so that the last stall is seen to end.

    Examples
    --------
    >>> kv.plot.lock_timeline(run, *kv.plot.whole_stalls(run, 1_000, 1_400))  # doctest: +SKIP
    """
    start_us = check_number(start_us, "start_us")
    end_us = check_number(end_us, "end_us")
    if not end_us > start_us:
        raise ValueError(f"end_us must be after start_us, got [{start_us:g}, {end_us:g})")
    starts, ends = _contention_episodes(run)
    cut = (starts < end_us) & (ends > start_us)
    if not cut.any():
        return start_us, end_us
    new_start = min(start_us, float(starts[cut].min()))
    new_end = max(end_us, float(ends[cut].max()))
    # A widened edge would sit exactly where the last stall ends, which reads as a cut: leave
    # 2 % of the window of calm beyond it, but never so much that the margin cuts the next
    # episode (nor before t = 0).
    margin = 0.02 * (new_end - new_start)
    if new_start < start_us:
        before = ends[ends <= new_start]
        floor = float(before.max()) if before.size else 0.0
        new_start = max(new_start - margin, floor, min(0.0, new_start))
    if new_end > end_us:
        after = starts[starts >= new_end]
        ceiling = float(after.min()) if after.size else np.inf
        new_end = min(new_end + margin, ceiling)
    return new_start, new_end


def busiest_window(run, width_us: float, *, lead: float = 0.25) -> tuple[float, float]:
    """A timeline window around the notifier callback that waited longest for ``mmu_lock``,
    widened to show whole stalls.

    The window starts ``lead * width_us`` before that callback arrives (at 0 at the earliest)
    and is ``width_us`` wide; then :func:`whole_stalls` widens it to the bounds of the
    contention episodes it would cut, so the long wait and every stall around it are shown from
    start to end. With no callback that took the lock, the acquisition that waited longest is
    used; with no wait at all, the run's first ``width_us``.

    Parameters
    ----------
    run : Run
    width_us : float
        The width asked for, µs (the window returned may be wider, never narrower).
    lead : float
        Share of ``width_us`` shown before the callback arrives, in [0, 1].

    Returns
    -------
    (start_us, end_us) : tuple of float

    Examples
    --------
    >>> kv.plot.lock_timeline(run, *kv.plot.busiest_window(run, 3_000))  # doctest: +SKIP
    """
    width_us = check_number(width_us, "width_us")
    if not width_us > 0:
        raise ValueError(f"width_us = {width_us!r}: expected a positive number of µs")
    lead = check_number(lead, "lead", minimum=0.0)
    if lead > 1:
        raise ValueError(f"lead = {lead!r}: expected a share of the window, in [0, 1]")
    notifiers = run.notifiers
    taken = notifiers[notifiers["locked"].to_numpy(dtype=bool)]
    if len(taken):
        when = float(taken["t_arrive_us"].to_numpy()[np.argmax(taken["wait_us"].to_numpy())])
    elif len(run.lock) and (run.lock["wait_us"].to_numpy() > 0).any():
        lock = run.lock
        when = float(lock["t_request_us"].to_numpy()[np.argmax(lock["wait_us"].to_numpy())])
    else:
        return 0.0, width_us
    start = max(0.0, when - lead * width_us)
    return whole_stalls(run, start, start + width_us)


def _drawn_states(faults, notifiers, start_us: float, end_us: float) -> set[str]:
    """Which states a timeline's window shows: ``"read"`` (a fault holding), ``"wait"``
    (anyone waiting), ``"write"`` (a callback holding), ``"skip"`` (a callback skipping), so
    that its legend lists those and no others."""

    def overlaps(a, b) -> np.ndarray:
        return (a.to_numpy() < end_us) & (b.to_numpy() > start_us)

    drawn = set()
    if overlaps(faults["t_grant_us"], faults["t_release_us"]).any():
        drawn.add("read")
    fault_waits = overlaps(faults["t_request_us"], faults["t_grant_us"])
    locked = notifiers["locked"].to_numpy(dtype=bool)
    arrive = notifiers["t_arrive_us"].to_numpy()
    notifier_waits = locked & overlaps(notifiers["t_arrive_us"], notifiers["t_grant_us"])
    if (fault_waits & (faults["wait_us"].to_numpy() > 0)).any() or (
        notifier_waits & (notifiers["wait_us"].to_numpy() > 0)
    ).any():
        drawn.add("wait")
    if (locked & overlaps(notifiers["t_grant_us"], notifiers["t_release_us"])).any():
        drawn.add("write")
    if (~locked & (arrive >= start_us) & (arrive < end_us)).any():
        drawn.add("skip")
    return drawn


def _state_handles(
    drawn: set[str], run, *, fault: str, notifier: str, wait: str = "waits for it"
) -> dict:
    """Legend entries for the states drawn. Under the ``"spinlock"`` policy (x86 before
    531810caa9f4) every holder is exclusive, and without the TDP MMU faults take ``mmu_lock``
    for write (:meth:`Scenario.faults_write`): a fault's hold is then not called a read."""
    if run.policy == "spinlock":
        mode = "\n(exclusive: spinlock)"
    elif run.scenario.faults_write(run.policy):
        mode = "\nfor write (no TDP MMU)"
    else:
        mode = "\nfor read"
    entries = {
        "read": Patch(label=f"{fault}{mode}", **_STATE_STYLE["read"]),
        "write": Patch(label=f"{notifier} holds it\nfor write", **_STATE_STYLE["write"]),
        "wait": Patch(label=wait, **_STATE_STYLE["wait"]),
        "skip": Line2D([], [], linestyle="none", label="callback skips it", **_SKIP_MARK),
    }
    return {kind: entries[kind] for kind in ("read", "write", "wait", "skip") if kind in drawn}


def lock_timeline(
    run, start_us: float, end_us: float, *, ax=None, max_lanes: int = 32, groups: int = 8
):
    """Who holds and who waits for ``mmu_lock`` from ``start_us`` to ``end_us``.

    One lane per vCPU: empty (white) while it is not on the lock (running in the guest,
    exiting, resolving the pfn), orange with dots while it waits for ``mmu_lock``, blue while it
    holds it for read. Above them one lane for the notifier callbacks: orange while a callback
    waits, vermilion while it holds the lock for write, and a grey tick where a callback
    skipped the lock (the kernel's rule let it, :func:`kvmviz.takes_lock`). Below, in a second
    axes, the queue depth: how many acquisitions (faults and callbacks) wait at each instant.

    Every interval is at least :data:`MIN_SPAN_PT` wide on screen (a notifier's 40 ns hold in a
    3 ms window, say), so that none disappears; the legend lists only the states drawn.
    Choose windows with :func:`busiest_window` or :func:`whole_stalls` so that no stall is cut
    off at an edge.

    With more vCPUs than ``max_lanes``, lanes would be thinner than a line: the vCPUs that take
    faults are then split into ``groups`` lanes of consecutive vCPUs, and each lane shows, over
    300 time bins, the share of its vCPUs holding the lock (blue, from the bottom of the lane)
    and waiting for it (orange, stacked above). A lane full of orange means every vCPU of the
    group is stalled. The vCPUs that never fault (``Scenario.faulting_share``) are left out of
    the groups and counted in the title.

    Parameters
    ----------
    run : Run
    start_us, end_us : float
        The window, µs of simulated time. Windows of 2 ms or more are labelled in ms.
    ax : matplotlib.axes.Axes or pair of Axes, optional
        ``None``: a new figure with the lanes above the queue depth (``fig.axes == [lanes,
        queue]``, sharing x). A pair ``(lanes_ax, queue_ax)``: draw into them. A single Axes:
        the lanes only, without the queue depth.
    max_lanes : int
        Most vCPUs to draw one lane each.
    groups : int
        Lanes to group the faulting vCPUs into, beyond ``max_lanes`` vCPUs.

    Returns
    -------
    matplotlib.axes.Axes
        The axes of the lanes.

    Examples
    --------
    >>> run = kv.simulate(kv.Scenario(n_vcpus=8), kernel="v5.12")  # doctest: +SKIP
    >>> kv.plot.lock_timeline(run, 1_000, 1_400)  # doctest: +SKIP
    """
    start_us, end_us = float(start_us), float(end_us)
    if not end_us > start_us:
        raise ValueError(f"end_us must be after start_us, got [{start_us}, {end_us})")
    if max_lanes < 1 or groups < 1:
        raise ValueError(f"max_lanes and groups must be >= 1, got {max_lanes} and {groups}")
    if ax is None:
        _fig, (ax_lanes, ax_queue) = plt.subplots(
            2, 1, sharex=True, figsize=(10, 5), height_ratios=[3, 1], layout="constrained"
        )
    elif isinstance(ax, Axes):
        ax_lanes, ax_queue = ax, None
    else:
        ax_lanes, ax_queue = ax
    scale, unit = (1e-3, "ms") if end_us - start_us >= 2000 else (1.0, "µs")
    height = 0.8

    faults = run.faults
    in_window = (faults["t_request_us"].to_numpy() < end_us) & (
        faults["t_release_us"].to_numpy() > start_us
    )
    window = faults[in_window]
    n_vcpus = run.scenario.n_vcpus
    title = f"mmu_lock on {run.kernel}, {n_vcpus} vCPUs"
    if n_vcpus <= max_lanes:
        lane_y = 1.4 + np.arange(n_vcpus)  # rows from the top: notifiers, a gap, the vCPUs
        by_vcpu = dict(tuple(window.groupby("vcpu", sort=True)))
        for v in range(n_vcpus):
            attempts = by_vcpu.get(v)
            if attempts is None:
                continue
            waited = attempts[attempts["wait_us"].to_numpy() > 0]
            y = (lane_y[v], height)
            _span_bars(
                ax_lanes,
                _spans(waited["t_request_us"], waited["wait_us"], scale),
                y,
                gid=f"lane-vcpu{v}-wait",
                **_STATE_STYLE["wait"],
            )
            _span_bars(
                ax_lanes,
                _spans(attempts["t_grant_us"], attempts["hold_us"], scale),
                y,
                gid=f"lane-vcpu{v}-read",
                **_STATE_STYLE["read"],
            )
        ticks, labels = list(lane_y), [f"vCPU {v}" for v in range(n_vcpus)]
    else:
        faulting = run.scenario.n_faulting
        bounds = np.linspace(0, faulting, min(groups, max(faulting, 1)) + 1).round().astype(int)
        lane_y = 1.4 + 1.5 * np.arange(len(bounds) - 1)  # taller lanes: each is a small chart
        height = 1.3
        edges = np.linspace(start_us, end_us, 301)
        x = edges * scale
        vcpu = window["vcpu"].to_numpy()
        requests = window["t_request_us"].to_numpy()
        grants = window["t_grant_us"].to_numpy()
        releases = window["t_release_us"].to_numpy()
        for lane, (first, stop) in enumerate(itertools.pairwise(bounds)):
            mine = (vcpu >= first) & (vcpu < stop)
            norm = np.diff(edges) * max(stop - first, 1)
            holding = _busy_time(grants[mine], releases[mine], edges) / norm
            waiting = _busy_time(requests[mine], grants[mine], edges) / norm
            bottom = lane_y[lane] + height  # y grows downwards (the axis is inverted)
            hold_top = bottom - height * np.append(holding, holding[-1])
            wait_top = hold_top - height * np.append(waiting, waiting[-1])
            ax_lanes.fill_between(
                x,
                bottom,
                hold_top,
                step="post",
                gid=f"lane-group{lane}-read",
                **_STATE_STYLE["read"],
            )
            ax_lanes.fill_between(
                x,
                hold_top,
                wait_top,
                step="post",
                gid=f"lane-group{lane}-wait",
                **_STATE_STYLE["wait"],
            )
            ax_lanes.axhline(bottom, color="#cccccc", linewidth=0.5, zorder=0)
        ticks = list(lane_y)
        labels = [f"vCPUs {a}–{b - 1}" for a, b in itertools.pairwise(bounds)]
        title = (
            f"mmu_lock on {run.kernel}: the {faulting} faulting vCPUs of {n_vcpus}, "
            f"in {len(ticks)} lanes (share of each lane's vCPUs holding / waiting)"
        )

    shown = _notifier_lane(ax_lanes, run.notifiers, start_us, end_us, 0.0, 0.8, scale)
    drawn = _drawn_states(window, shown, start_us, end_us)
    ax_lanes.set_yticks([0.4, *(t + height / 2 for t in ticks)], ["notifiers", *labels])
    ax_lanes.tick_params(axis="y", length=0)
    ax_lanes.set_ylim(ticks[-1] + height + 0.2 if ticks else 1.0, -0.2)
    ax_lanes.set_xlim(start_us * scale, end_us * scale)
    ax_lanes.spines["left"].set_visible(False)
    if run.policy == "spinlock":
        title += " (spinlock: every holder exclusive)"
    elif run.scenario.faults_write(run.policy):
        title += " (no TDP MMU: faults take it for write)"
    ax_lanes.set_title(title, loc="left")
    handles = [
        *_state_handles(drawn, run, fault="fault holds mmu_lock", notifier="notifier").values(),
        Patch(facecolor="white", edgecolor="#bbbbbb", label="not on the lock\n(in the guest)"),
    ]
    ax_lanes.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize="small",
        handlelength=1.4,
        labelspacing=0.9,
    )
    time_label = f"simulated time ({unit})"
    if ax_queue is None:
        ax_lanes.set_xlabel(time_label)
        return ax_lanes
    t, waiting = _queue_depth(run, start_us, end_us)
    ax_queue.fill_between(
        t * scale, waiting, step="post", gid="queue-depth", **_STATE_STYLE["wait"]
    )
    ax_queue.step(t * scale, waiting, where="post", color=COLORS["wait"], linewidth=0.8)
    ax_queue.set_ylim(0, max(1.0, float(waiting.max()) * 1.1))
    ax_queue.yaxis.set_major_locator(MaxNLocator(nbins=3, integer=True))
    ax_queue.set_xlim(start_us * scale, end_us * scale)
    ax_queue.set_ylabel("waiting\n(acquisitions)")
    ax_queue.set_xlabel(time_label)
    ax_lanes.tick_params(axis="x", labelbottom=False)
    return ax_lanes


# --------------------------------------------------------------------------------------------
# Kernels side by side.
# --------------------------------------------------------------------------------------------
# metric -> (what it measures, unit, factor from the table's value to the unit)
_METRICS = {
    "p99_us": ("p99 fault stall", "µs", 1.0),
    "p50_us": ("median fault stall", "µs", 1.0),
    "mean_us": ("mean fault stall", "µs", 1.0),
    "max_us": ("longest fault stall", "µs", 1.0),
    "stalled_share": ("fault attempts that waited", "%", 100.0),
    "total_ms": ("vCPU time lost waiting", "ms", 1.0),
    "brownout_mean": ("vCPU time stalled on mmu_lock", "%", 100.0),
    "brownout_peak": ("peak share of vCPUs stalled", "%", 100.0),
    "faults": ("faults resolved", "faults", 1.0),
    "faults_retried": ("fault attempts retried", "attempts", 1.0),
    "notifier_callbacks": ("notifier callbacks", "callbacks", 1.0),
    "lock_taken": ("callbacks taking mmu_lock", "callbacks", 1.0),
    "lock_avoided": ("callbacks skipping mmu_lock", "callbacks", 1.0),
    "writer_wait_mean_us": ("mean notifier wait for mmu_lock", "µs", 1.0),
}


def _kernel_table(table_or_runs) -> pd.DataFrame:
    if isinstance(table_or_runs, pd.DataFrame):
        return table_or_runs
    runs = _runs(table_or_runs)
    frame = pd.DataFrame([summarize(run) for run in runs.values()])
    frame.index = pd.Index(list(runs), name="kernel")
    return frame


def _value_label(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.1f}%"
    if abs(value) >= 100 or float(value).is_integer():
        text = f"{value:,.0f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}" if unit in ("µs", "ms") else text


def _kernel_tick(kernel: str) -> str:
    """``"v5.13 (8931a454ae)"`` -> ``"v5.13\n8931a454ae"``."""
    label = KERNEL_STYLES.get(kernel, {"label": kernel})["label"]
    version, _, note = label.partition(" (")
    return f"{version}\n{note.rstrip(')')}" if note else version


def compare_kernels(table_or_runs, *, ax=None, metric: str = "p99_us"):
    """One metric for each kernel, side by side: a bar per kernel, its value written on it.

    Parameters
    ----------
    table_or_runs : pandas.DataFrame or mapping of kernel to Run
        The table of :func:`kvmviz.compare_kernels` (one row per kernel, indexed by kernel),
        or runs of the same scenario on each kernel (summarised with
        :func:`kvmviz.summarize`).
    ax : matplotlib.axes.Axes, optional
    metric : str
        A column of the table: ``"p99_us"``, ``"brownout_mean"`` (drawn in %),
        ``"lock_taken"``, ... Shares are drawn as percentages.

    Returns
    -------
    matplotlib.axes.Axes

    Notes
    -----
    Bars take the kernel colours of :data:`kvmviz.theme.KERNEL_STYLES` (greys, and blue for
    the kernel with both fixes); each bar is named under it, so no legend is needed. The title
    says what is measured, the y axis its unit.
    """
    table = _kernel_table(table_or_runs)
    if metric not in table.columns:
        raise KeyError(f"no metric {metric!r}; expected one of {list(table.columns)}")
    ax = ax or plt.gca()
    what, unit, factor = _METRICS.get(metric, (metric, "", 1.0))
    order = [k for k in KERNELS if k in table.index] + [k for k in table.index if k not in KERNELS]
    values = table.loc[order, metric].astype(float).to_numpy() * factor
    top = max(float(np.nanmax(values)) if len(values) else 0.0, 1e-12)
    for i, (kernel, value) in enumerate(zip(order, values, strict=True)):
        style = KERNEL_STYLES.get(kernel, {"color": COLORS["read"]})
        ax.bar(i, value, width=0.62, color=style["color"], gid=f"bar|{kernel}")
        ax.text(
            i,
            value + 0.02 * top,
            _value_label(value, unit),
            ha="center",
            va="bottom",
            fontsize="small",
            color=COLORS["text"],
        )
    ax.set_xticks(range(len(order)), [_kernel_tick(k) for k in order], fontsize="small")
    ax.tick_params(axis="x", length=0)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_ylim(0, top * 1.15)
    ax.set_ylabel(unit or "value")
    ax.set_title(what)
    return ax


def stall_by_kernel(runs, *, ax=None, metric: str = "p99_us", highlight: str | None = None):
    """The fault stalls of each kernel in one static figure: their distribution and one number.

    Left, :func:`stall_cdf` of every run; right, :func:`compare_kernels` of ``metric`` (the
    p99 fault stall by default), with the notifier callbacks' mean wait for ``mmu_lock``
    written under each bar: the readers' stall beside the writers' wait
    (:data:`kvmviz.metrics.KERNEL_TABLE_COLUMNS`), so a kernel or lock policy that moves the
    waiting onto the writers cannot look like a win.

    Parameters
    ----------
    runs : mapping of kernel to Run, or sequence of Run
        Runs of one scenario and seed on each kernel (``{k: kv.simulate(scenario, kernel=k,
        seed=0) for k in kv.KERNELS}``).
    ax : pair of Axes, optional
        ``(cdf_ax, bars_ax)``; default a new figure with the two side by side
        (``fig.axes == [cdf_ax, bars_ax]``).
    metric : str
        The column of :func:`kvmviz.summarize` drawn as bars (``"p99_us"``, ``"mean_us"``,
        ``"brownout_mean"``, ...).
    highlight : str, optional
        Kernel to draw bold in the distribution, the others faint.

    Returns
    -------
    matplotlib.axes.Axes
        The distribution's axes (``ax.figure`` is the figure).

    Examples
    --------
    >>> runs = {k: kv.simulate(kv.Scenario(), kernel=k) for k in kv.KERNELS}  # doctest: +SKIP
    >>> kv.plot.stall_by_kernel(runs)  # doctest: +SKIP
    """
    runs = _runs(runs)
    if not runs:
        raise ValueError("runs is empty: expected one Run per kernel")
    if ax is None:
        fig = plt.figure(figsize=(10, 3.8), layout="constrained")
        ax_cdf, ax_bars = fig.subplots(1, 2, width_ratios=[1.6, 1])
    elif isinstance(ax, Axes):
        raise ValueError("stall_by_kernel draws two panels: pass a pair (cdf_ax, bars_ax)")
    else:
        ax_cdf, ax_bars = ax
    stall_cdf(runs, ax=ax_cdf, highlight=highlight)
    table = _kernel_table(runs)
    compare_kernels(table, ax=ax_bars, metric=metric)
    order = [k for k in KERNELS if k in table.index] + [k for k in table.index if k not in KERNELS]
    labels = []
    for kernel in order:
        wait = float(table.loc[kernel, "writer_wait_mean_us"])
        labels.append(f"{_kernel_tick(kernel)}\nwriters wait\n{_value_label(wait, 'µs')}")
    ax_bars.set_xticks(range(len(order)), labels, fontsize="small")
    return ax_cdf


# --------------------------------------------------------------------------------------------
# How far the headline moves: kvmviz.uncertainty.sensitivity as a tornado.
# --------------------------------------------------------------------------------------------
_SENSITIVITY_UNITS = {
    "p99_us": "p99 fault stall (µs)",
    "mean_us": "mean fault stall (µs)",
    "brownout_mean": "mean share of faulting vCPUs stalled",
    "writer_wait_mean_us": "notifiers' mean wait for mmu_lock (µs)",
}


def _swept(values) -> str:
    values = sorted(values)
    return f"{values[0]:g} – {values[-1]:g}"


def sensitivity(table, *, metrics=("p99_us", "brownout_mean"), axes=None):
    """A tornado of :func:`kvmviz.uncertainty.sensitivity`: how far each parameter moves a
    headline number, on each kernel.

    One panel per metric, one row per parameter (labelled with the values swept); on each row
    one bar per kernel from the lowest to the highest value the metric takes over the
    parameter's range, and a dot at the default. Rows are ordered by the widest bar.

    Parameters
    ----------
    table : pandas.DataFrame
        The output of :func:`kvmviz.uncertainty.sensitivity`.
    metrics : sequence of str
        Its columns to draw, one panel each.
    axes : sequence of Axes, optional
        One per metric; default a new figure.

    Returns
    -------
    list of matplotlib.axes.Axes
    """
    if not isinstance(table, pd.DataFrame) or "parameter" not in table:
        raise TypeError("table: expected the DataFrame of kvmviz.uncertainty.sensitivity()")
    metrics = list(metrics)
    missing = [m for m in metrics if m not in table]
    if missing:
        raise ValueError(f"table has no column {missing[0]!r}; expected some of {list(table)}")
    parameters = list(dict.fromkeys(table["parameter"]))
    kernels = [k for k in KERNELS if k in set(table["kernel"])]
    if axes is None:
        fig = plt.figure(figsize=(5 * len(metrics), 0.7 + 0.55 * len(parameters) * 1.5))
        fig.set_layout_engine("constrained")
        axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    axes = list(axes)
    if len(axes) != len(metrics):
        raise ValueError(f"axes: expected {len(metrics)} Axes, one per metric")
    first = metrics[0]
    width = table.groupby("parameter")[first].agg(lambda v: v.max() - v.min())
    order = sorted(parameters, key=lambda p: width[p])
    step = 0.8 / max(len(kernels), 1)
    for ax, metric in zip(axes, metrics, strict=True):
        for y, parameter in enumerate(order):
            part = table[table["parameter"] == parameter]
            for j, kernel in enumerate(kernels):
                rows = part[part["kernel"] == kernel]
                style = KERNEL_STYLES.get(kernel, {"color": "#333333"})
                yy = y + (j - (len(kernels) - 1) / 2) * step
                low, high = rows[metric].min(), rows[metric].max()
                ax.plot(
                    [low, high], [yy, yy], color=style["color"], linewidth=4,
                    solid_capstyle="butt", label=style.get("label", kernel) if y == 0 else None,
                )  # fmt: skip
                default = rows[rows["is_default"]][metric]
                if len(default):
                    ax.plot(
                        [float(default.iloc[0])], [yy], "o", color="white",
                        markeredgecolor=style["color"], markersize=5, zorder=3,
                    )  # fmt: skip
        ax.set_xlabel(_SENSITIVITY_UNITS.get(metric, metric))
        ax.set_xlim(left=0)
        ax.grid(axis="y", visible=False)
    labels = []
    for parameter in order:
        values = table.loc[table["parameter"] == parameter, "value"]
        labels.append(f"{parameter}\n{_swept(values)}")
    axes[0].set_yticks(range(len(order)), labels, fontsize="small")
    handles = [
        Line2D(
            [], [], color=KERNEL_STYLES[k]["color"], linewidth=4, label=KERNEL_STYLES[k]["label"]
        )
        for k in kernels
        if k in KERNEL_STYLES
    ]
    handles.append(
        Line2D([], [], marker="o", linestyle="", color="white", markeredgecolor="#333333",
               label="default")
    )  # fmt: skip
    axes[-1].legend(handles=handles, loc="lower right", fontsize="small")
    return axes


# --------------------------------------------------------------------------------------------
# perf lock contention.
# --------------------------------------------------------------------------------------------
# Where each acquisition takes mmu_lock, as perf would name the caller: the fault path
# (direct_page_fault, arch/x86/kvm/mmu/mmu.c) and the MMU-notifier callbacks of
# virt/kvm/kvm_main.c, into which __kvm_handle_hva_range() is inlined (__always_inline).
_CALLERS = {
    "page_fault": "direct_page_fault",
    **{cb: f"kvm_mmu_notifier_{cb}" for cb in CALLBACKS},
}
_CONTENTION_COLUMNS = ["contended", "total_wait_us", "max_wait_us", "avg_wait_us", "type", "caller"]


def contention_table(run) -> pd.DataFrame:
    """``mmu_lock`` contention of a run by lock type and caller, as ``perf lock contention``.

    Parameters
    ----------
    run : Run

    Returns
    -------
    pandas.DataFrame
        One row per (type, caller) whose acquisitions ever waited: ``contended`` (acquisitions
        that waited longer than 0), ``total_wait_us``, ``max_wait_us``, ``avg_wait_us`` (total
        over contended, as perf), ``type`` (``rwlock:R`` for faults and ``rwlock:W`` for
        notifier callbacks; ``spinlock`` under the ``"spinlock"`` policy) and ``caller``
        (``direct_page_fault``, ``kvm_mmu_notifier_invalidate_range_start``, ...). Sorted by
        total wait, longest first (perf's default ``-k wait_total``).

    See Also
    --------
    contention_text : the same table as perf prints it.
    """
    lock = run.lock
    waited = lock[lock["wait_us"].to_numpy() > 0]
    if run.policy == "spinlock":
        lock_type = np.full(len(waited), "spinlock", dtype=object)
    else:
        lock_type = np.where(waited["mode"].to_numpy() == "read", "rwlock:R", "rwlock:W")
    frame = pd.DataFrame(
        {
            "type": lock_type,
            "caller": waited["callback"].astype(str).map(_CALLERS).to_numpy(),
            "wait_us": waited["wait_us"].to_numpy(),
        }
    )
    table = frame.groupby(["type", "caller"], sort=True).agg(
        contended=("wait_us", "size"),
        total_wait_us=("wait_us", "sum"),
        max_wait_us=("wait_us", "max"),
    )
    table["avg_wait_us"] = table["total_wait_us"] / table["contended"]
    table = table.reset_index().sort_values(
        ["total_wait_us", "caller"], ascending=[False, True], kind="stable"
    )
    table["contended"] = table["contended"].astype(np.int64)
    return table[_CONTENTION_COLUMNS].reset_index(drop=True)


def _perf_time(ns: int, width: int = 12) -> str:
    """A duration as perf's ``lock_stat_key_print_time()`` prints it (tools/perf)."""
    for base, unit in ((3600e9, "h "), (60e9, "m "), (1e9, "s "), (1e6, "ms"), (1e3, "us")):
        if ns >= base:
            return f"{ns / base:{width - 3}.2f} {unit}"
    return f"{ns:{width - 3}d} ns"


def contention_text(run) -> str:
    """:func:`contention_table` as ``perf lock contention`` prints it on a terminal.

    The default fields and layout of ``perf lock contention`` (tools/perf/builtin-lock.c):
    ``contended``, ``total wait``, ``max wait``, ``avg wait``, then ``type`` and ``caller``;
    times in ns, µs ("us"), ms or s with two decimals; the average is the integer division of
    the total by the contended count, in ns. Callers have no ``+0x..`` offset: the model has
    no code addresses.

    Returns
    -------
    str

    Examples
    --------
    >>> print(kv.plot.contention_text(run))  # doctest: +SKIP
     contended   total wait     max wait     avg wait         type   caller
    <BLANKLINE>
          8469       3.53 s       1.52 ms    417.20 us     rwlock:R   direct_page_fault
    ...
    """
    table = contention_table(run)
    lines = [
        f"{'contended':>10} {'total wait':>12} {'max wait':>12} {'avg wait':>12}   "
        f"{'type':>10}   caller",
        "",
    ]
    for row in table.itertuples(index=False):
        total_ns = round(row.total_wait_us * 1000)
        max_ns = round(row.max_wait_us * 1000)
        avg_ns = total_ns // row.contended
        lines.append(
            f"{row.contended:10d} {_perf_time(total_ns)} {_perf_time(max_ns)} "
            f"{_perf_time(avg_ns)}   {row.type:>10}   {row.caller}"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Saving.
# --------------------------------------------------------------------------------------------
FORMATS = ("svg", "png", "pdf")
"""The file formats :func:`save` writes."""


def save(fig, path, *, formats=("svg", "png"), force: bool = False) -> list[Path]:
    """Write ``fig`` as ``path`` + each format, atomically and reproducibly.

    Every format is rendered in memory first, then written to a temporary file next to its
    target and renamed over it, so a failure (a bad format, a full disk) leaves no partial or
    half-written file behind. SVG and PDF carry no date, so the same figure gives the same
    bytes (with :func:`kvmviz.set_theme`, which fixes ``svg.hashsalt``).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or Path
        Destination without suffix (a suffix is replaced).
    formats : sequence of {"svg", "png", "pdf"}
    force : bool
        Overwrite existing files; otherwise, if any target exists, raise ``FileExistsError``
        before writing anything.

    Returns
    -------
    list of Path
        The files written, in the order of ``formats``.
    """
    formats = tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats must be among {FORMATS}, got {formats!r}")
    base = Path(path)
    targets = [base.with_suffix("." + f) for f in formats]
    if not force:
        existing = [str(t) for t in targets if t.exists()]
        if existing:
            raise FileExistsError(f"refusing to overwrite {', '.join(existing)} (pass force=True)")
    rendered = {}
    # Always in the order of FORMATS, SVG first: a figure already drawn by Agg lays its text out
    # a hair differently, so the SVG's bytes would otherwise depend on the formats asked for.
    for fmt in sorted(set(formats), key=FORMATS.index):
        buffer = io.BytesIO()
        metadata = (
            {"Date": None} if fmt == "svg" else ({"CreationDate": None} if fmt == "pdf" else {})
        )
        fig.savefig(buffer, format=fmt, metadata=metadata)
        rendered[fmt] = buffer.getvalue()
    payloads = [rendered[fmt] for fmt in formats]
    base.parent.mkdir(parents=True, exist_ok=True)
    mask = umask()
    temporaries: list[str] = []
    try:
        for target, payload in zip(targets, payloads, strict=True):
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            temporaries.append(tmp)
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
            os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; a figure is for everyone
        for tmp, target in zip(temporaries, targets, strict=True):
            os.replace(tmp, target)
    finally:
        for tmp in temporaries:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return targets


# --------------------------------------------------------------------------------------------
# Fault retries: the seq snapshot, the check, the counters.
# --------------------------------------------------------------------------------------------
_SHORT_CALLBACK = {
    "invalidate_range_start": "start",
    "invalidate_range_end": "end",
    "change_pte": "change_pte",
    "clear_flush_young": "clear_flush_young",
    "clear_young": "clear_young",
    "test_young": "test_young",
}
_RESOLVE_STYLE = {"color": COLORS["read"], "linewidth": 1.2, "alpha": 0.55}
_SNAPSHOT_MARK = {"marker": "o", "markersize": 5, "color": COLORS["text"], "linestyle": "none"}
_RETRY_MARK = {
    "marker": "X",
    "markersize": 9,
    "color": COLORS["write"],
    "markeredgecolor": "white",
    "linestyle": "none",
}


def retry_timeline(run, start_us: float, end_us: float, *, ax=None, max_lanes: int = 12):
    """Each fault's race with the notifiers: seq snapshot, pfn, check, and retries.

    One lane per vCPU. A dot where the fault samples ``mmu_notifier_seq`` (half a VM exit after
    the EPT violation), a thin blue line while it resolves the pfn outside ``mmu_lock``, orange
    with dots while it waits for the lock, blue while it holds it for read; a vermilion cross
    where ``mmu_notifier_retry_hva()`` sent it back to the guest to fault again (an attempt with
    ``retry`` set in ``run.faults``). Above the vCPUs, the notifier callbacks as in
    :func:`lock_timeline`, each named. Below, in a second axes, ``mmu_notifier_seq`` and
    ``mmu_notifier_count`` over time (:func:`kvmviz.metrics.notifier_counters`).

    Parameters
    ----------
    run : Run
        A run with at most ``max_lanes`` vCPUs (use :func:`lock_timeline` for big ones).
    start_us, end_us : float
        The window, µs of simulated time.
    ax : pair of Axes, optional
        ``(lanes_ax, counters_ax)``; default a new figure with the two, sharing x.
    max_lanes : int

    Returns
    -------
    matplotlib.axes.Axes
        The axes of the lanes.

    Examples
    --------
    >>> run = kv.simulate(kv.Scenario(n_vcpus=3, duration_us=50), kernel="v5.12")  # doctest: +SKIP
    >>> kv.plot.retry_timeline(run, 0, 50)  # doctest: +SKIP
    """
    from .metrics import notifier_counters

    start_us, end_us = float(start_us), float(end_us)
    if not end_us > start_us:
        raise ValueError(f"end_us must be after start_us, got [{start_us}, {end_us})")
    n_vcpus = run.scenario.n_vcpus
    if n_vcpus > max_lanes:
        raise ValueError(
            f"{n_vcpus} vCPUs do not fit in {max_lanes} lanes; draw a smaller run, or use "
            "kvmviz.plot.lock_timeline, which groups vCPUs"
        )
    if ax is None:
        _fig, (ax_lanes, ax_count) = plt.subplots(
            2, 1, sharex=True, figsize=(10, 4.8), height_ratios=[3, 1.4], layout="constrained"
        )
    else:
        ax_lanes, ax_count = ax
    height = 0.6

    faults = run.faults
    t_snap = faults["t_exit_us"].to_numpy() + run.scenario.vmexit_us / 2
    keep = (t_snap < end_us) & (faults["t_release_us"].to_numpy() > start_us)
    window = faults[keep].assign(t_snap_us=t_snap[keep])
    lane_y = 1.5 + np.arange(n_vcpus)
    for v, attempts in window.groupby("vcpu", sort=True):
        y = lane_y[int(v)]
        mid = y + height / 2
        ax_lanes.hlines(
            np.full(len(attempts), mid),
            attempts["t_snap_us"],
            attempts["t_request_us"],
            gid=f"lane-vcpu{v}-resolve",
            **_RESOLVE_STYLE,
        )
        ax_lanes.plot(attempts["t_snap_us"], np.full(len(attempts), mid), **_SNAPSHOT_MARK)
        waited = attempts[attempts["wait_us"].to_numpy() > 0]
        _span_bars(
            ax_lanes,
            _spans(waited["t_request_us"], waited["wait_us"], 1.0),
            (y, height),
            gid=f"lane-vcpu{v}-wait",
            **_STATE_STYLE["wait"],
        )
        _span_bars(
            ax_lanes,
            _spans(attempts["t_grant_us"], attempts["hold_us"], 1.0),
            (y, height),
            gid=f"lane-vcpu{v}-read",
            **_STATE_STYLE["read"],
        )
        retried = attempts[attempts["retry"].to_numpy(dtype=bool)]
        ax_lanes.plot(
            retried["t_release_us"],
            np.full(len(retried), mid),
            gid=f"lane-vcpu{v}-retry",
            **_RETRY_MARK,
        )

    shown = _notifier_lane(ax_lanes, run.notifiers, start_us, end_us, 0.2, height, 1.0)
    events = list(shown.groupby("event", sort=False))
    if len(events) <= 6:  # name each event's callbacks while there is room
        for _event, callbacks in events:
            names = " → ".join(_SHORT_CALLBACK[c] for c in callbacks["callback"])
            ax_lanes.annotate(
                f"{names} ({'hit' if callbacks['hit'].iloc[0] else 'miss'})",
                (callbacks["t_arrive_us"].iloc[0], 0.2),
                xytext=(-3, 3),
                textcoords="offset points",
                ha="left",
                va="bottom",
                fontsize="x-small",
                color=COLORS["text"],
            )
    ax_lanes.set_yticks(
        [0.2 + height / 2, *(y + height / 2 for y in lane_y)],
        ["notifiers", *(f"vCPU {v}" for v in range(n_vcpus))],
    )
    ax_lanes.tick_params(axis="y", length=0)
    ax_lanes.set_ylim(lane_y[-1] + height + 0.3, -0.9)
    ax_lanes.set_xlim(start_us, end_us)
    ax_lanes.spines["left"].set_visible(False)
    ax_lanes.set_title(f"Fault retries on {run.kernel}, {n_vcpus} vCPUs", loc="left")
    drawn = _drawn_states(window, shown, start_us, end_us)
    states = _state_handles(
        drawn, run, fault="holds it", notifier="notifier", wait="waits for mmu_lock"
    )
    handles = []
    if len(window):
        handles += [
            Line2D([], [], label="samples\nmmu_notifier_seq", **_SNAPSHOT_MARK),
            Line2D([], [], label="resolves the pfn\n(outside mmu_lock)", **_RESOLVE_STYLE),
        ]
    handles += [states[kind] for kind in ("wait", "read") if kind in states]
    if window["retry"].to_numpy(dtype=bool).any():
        handles.append(Line2D([], [], label="must retry", **_RETRY_MARK))
    handles += [states[kind] for kind in ("write", "skip") if kind in states]
    ax_lanes.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize="small",
        handlelength=1.4,
        labelspacing=0.8,
    )

    counters = notifier_counters(run)

    def value_at(name: str, when: float) -> int:
        earlier = counters.loc[counters["t_us"].to_numpy() <= when, name]
        return int(earlier.iloc[-1]) if len(earlier) else 0

    t_change = counters["t_us"].to_numpy()
    changes = counters[(t_change > start_us) & (t_change <= end_us)]
    t = np.concatenate([[start_us], changes["t_us"].to_numpy(), [end_us]])
    top = 1
    for name, style, offset in (
        ("seq", {"color": COLORS["text"], "linestyle": "-"}, 5),
        ("count", {"color": COLORS["write"], "linestyle": "--"}, -5),
    ):
        values = np.concatenate(
            [[value_at(name, start_us)], changes[name].to_numpy(), [value_at(name, end_us)]]
        )
        top = max(top, int(values.max()))
        ax_count.step(t, values, where="post", linewidth=1.8, gid=f"counter-{name}", **style)
        ax_count.annotate(
            f"mmu_notifier_{name}",
            (end_us, values[-1]),
            xytext=(4, offset),
            textcoords="offset points",
            va="center",
            fontsize="small",
            color=style["color"],
            annotation_clip=False,
        )
    ax_count.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=3))
    ax_count.set_ylim(-0.3, top + 0.5)
    ax_count.set_xlim(start_us, end_us)
    ax_count.set_ylabel("value (count)")
    ax_count.set_xlabel("simulated time (µs)")
    ax_lanes.tick_params(axis="x", labelbottom=False)
    return ax_lanes
