"""Static figures, each ``f(data, *, ax=None) -> Axes``, drawn from a run's tidy tables.

None of them simulates: pass :class:`~kvmviz.Run` objects (or a ``{kernel: Run}`` mapping)
made elsewhere, or the tables of :mod:`kvmviz.metrics` and :mod:`kvmviz.experiments`. The lock
and retry timelines live in :mod:`kvmviz.timelines`. Call :func:`kvmviz.set_theme` first for
the house look; :func:`save` writes a figure as SVG and PNG, atomically.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, NullFormatter
from matplotlib.transforms import IdentityTransform

from . import classify, metrics
from ._files import check_free, write_atomic
from .kernels import KERNELS
from .memslots import PAGE_SHIFT
from .metrics import kernel_table
from .theme import COLORS, HATCHES, KERNEL_STYLES, POLICY_STYLES

__all__ = [
    "FORMATS",
    "MIN_SPAN_PT",
    "SpanBars",
    "brownout_curve",
    "curves",
    "gfn_map",
    "heatmap",
    "heatmaps",
    "kernel_bars",
    "memslot_map",
    "restyle",
    "save",
    "stall_by_kernel",
    "stall_cdf",
    "tornado",
    "update",
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
    curve = metrics.brownout(run, bin_us=bin_us)
    return curve["t_us"].to_numpy() / 1000, 100 * curve["stalled_share"].to_numpy()


def update(ax, runs, *, highlight: str | None = None):
    """Give the lines of an axes drawn by :func:`stall_cdf` or :func:`brownout_curve` new
    runs' data and the highlight, reusing every artist: the dashboard's hot path.

    Each line is found by its gid (``"cdf|<label>"`` or ``"brownout|<label>"``) and given the
    points a new draw would give it; lines whose label is not in ``runs`` are left as they are.
    In place, updating and blitting the three kernels' lines is about five times faster than
    drawing new ones with ``seaborn.ecdfplot`` (``benchmarks/plot.py``).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Drawn by :func:`stall_cdf` or :func:`brownout_curve`.
    runs : Run, sequence of Run, or mapping of label to Run
    highlight : str, optional
        As in :func:`restyle`.

    Returns
    -------
    matplotlib.axes.Axes
    """
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
    :func:`brownout_curve`, without drawing anything new.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    highlight : str or None
        The label drawn bold (the others faint); None, every line alike.

    Returns
    -------
    matplotlib.axes.Axes
    """
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


def brownout_curve(runs, *, ax=None, bin_us: float | None = None, highlight: str | None = None):
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
        ranges = classify.first_callbacks(notifiers).head(max_ranges)
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
        ranges = classify.first_callbacks(notifiers).head(max_ranges)
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


def kernel_bars(table_or_runs, *, ax=None, metric: str = "p99_us"):
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
    table = (
        table_or_runs if isinstance(table_or_runs, pd.DataFrame) else kernel_table(table_or_runs)
    )
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

    Left, :func:`stall_cdf` of every run; right, :func:`kernel_bars` of ``metric`` (the
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
    table = kernel_table(runs)
    kernel_bars(table, ax=ax_bars, metric=metric)
    order = [k for k in KERNELS if k in table.index] + [k for k in table.index if k not in KERNELS]
    labels = []
    for kernel in order:
        wait = float(table.loc[kernel, "writer_wait_mean_us"])
        labels.append(f"{_kernel_tick(kernel)}\nwriters wait\n{_value_label(wait, 'µs')}")
    ax_bars.set_xticks(range(len(order)), labels, fontsize="small")
    return ax_cdf


# --------------------------------------------------------------------------------------------
# How far the headline moves: kvmviz.experiments.sensitivity as a tornado.
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


def tornado(table, *, metrics=("p99_us", "brownout_mean"), axes=None):
    """A tornado of :func:`kvmviz.experiments.sensitivity`: how far each parameter moves a
    headline number, on each kernel.

    One panel per metric, one row per parameter (labelled with the values swept); on each row
    one bar per kernel from the lowest to the highest value the metric takes over the
    parameter's range, and a dot at the default. Rows are ordered by the widest bar.

    Parameters
    ----------
    table : pandas.DataFrame
        The output of :func:`kvmviz.experiments.sensitivity`.
    metrics : sequence of str
        Its columns to draw, one panel each.
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
# Sweeps: heatmaps and curves of kvmviz.experiments.grid tables.
# --------------------------------------------------------------------------------------------
_HEATMAP_CMAP = "YlOrBr"  # ColorBrewer sequential, colour-blind safe; orange means stalled


def _describe(value: str) -> tuple[str, str, float]:
    """(what, unit, factor) of a measured column."""
    extra = {
        "writer_hold_mean_us": ("mean mmu_lock write hold", "µs", 1.0),
        "writer_hold_max_us": ("longest mmu_lock write hold", "µs", 1.0),
        "spurious_event_hold_us": ("mmu_lock write hold per spurious event", "µs", 1.0),
    }
    return {**_METRICS, **extra}.get(value, (value, "", 1.0))


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
        The column to colour by. Known metrics (``"p99_us"``, ``"brownout_mean"``, ...) get
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
    cells = table.pivot_table(index=y, columns=x, values=value, aggfunc="mean") * factor
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
        linecolor="white",
        cbar=colorbar,
        cbar_kws={"shrink": 0.9, "label": f"{what} ({unit})" if unit else what},
        xticklabels=[f"{c:g}" for c in cells.columns],
        yticklabels=[f"{r:g}" for r in cells.index],
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


_CURVE_STYLES = (
    {"color": "#333333", "linestyle": "-", "marker": "o"},
    {"color": "#0173b2", "linestyle": "-", "marker": "s"},
    {"color": "#949494", "linestyle": "--", "marker": "^"},
    {"color": "#029e73", "linestyle": ":", "marker": "D"},
)


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
):
    """One measured column against one axis of a sweep, a line per value of ``hue``.

    Rows with the same ``(hue, x)`` (several seeds, say) are averaged into the line, and their
    spread is drawn as a band around it (``seaborn.lineplot``): by default from the lowest to
    the highest seed. Each line is named at its right end instead of in a legend, and differs
    from the others by colour, line style and marker, so the figure survives grey-scale
    printing.

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
            color=style.get("color", "#222222"),
        )
    if logx:
        ax.set_xscale("log")
        swept = np.unique(table[x].to_numpy(dtype=float))
        if len(swept) <= 12:  # a tick at every value swept: decades alone may show none of them
            ax.set_xticks(swept)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    if logy:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    else:
        ax.set_ylim(bottom=0)
    for at, text in (marks or {}).items():
        ax.axvline(at, color="#bbbbbb", linewidth=0.8, zorder=0, gid=f"mark|{at:g}")
        ax.annotate(
            text,
            (at, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -2),
            textcoords="offset points",
            va="top",
            fontsize="x-small",
            color="#555555",
        )
    ax.set_xlabel(_label(x, labels))
    ax.set_ylabel((labels or {}).get(y, f"{what} ({unit})" if unit else what))
    ax.set_title(what if title is None else title)
    return ax


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
    check_free(targets, force=force)
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
    write_atomic({t: rendered[fmt] for t, fmt in zip(targets, formats, strict=True)}, force=force)
    return targets
