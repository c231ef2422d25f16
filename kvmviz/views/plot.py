"""Static figures, each ``f(data, *, ax=None) -> Axes``, drawn from a run's tidy tables.

None of them simulates: pass :class:`~kvmviz.Run` objects (or a ``{kernel: Run}`` mapping)
made elsewhere, or the tables of :mod:`kvmviz.metrics` and :mod:`kvmviz.experiments`. The lock
and retry timelines live in :mod:`kvmviz.timelines`. Call :func:`kvmviz.set_theme` first for
the house look; :func:`save` writes a figure as SVG and PNG, atomically.
"""

from __future__ import annotations

import contextlib
import io
import textwrap
import warnings
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, NullFormatter
from matplotlib.transforms import IdentityTransform

from .._shared._checks import strict_booleans
from .._shared._files import check_free, write_atomic
from .._shared._prose import size_bytes
from ..inputs.kernels import KERNELS
from ..inputs.memslots import PAGE_SHIFT
from ..model import classify
from ..stats import metrics
from ..stats.metrics import BEHIND, kernel_table
from . import theme
from ._fit import legend_columns
from .address_axis import AddressAxis, spanning
from .theme import HATCHES, KERNEL_STYLES, POLICY_STYLES

__all__ = [
    "FORMATS",
    "MIN_SPAN_PT",
    "RANGE_STYLE",
    "MapParts",
    "SpanBars",
    "brownout_curve",
    "brownout_points",
    "curves",
    "gfn_map",
    "heatmap",
    "heatmaps",
    "kernel_bars",
    "live_artists",
    "map_parts",
    "memslot_map",
    "precompute",
    "restyle",
    "save",
    "stall_by_kernel",
    "stall_cdf",
    "stall_split",
    "tornado",
    "tornado_grid",
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


def _runs(runs) -> dict:
    """Accept a Run, a sequence of Runs or a {label: Run} mapping."""
    if isinstance(runs, Mapping):
        return dict(runs)
    if hasattr(runs, "faults"):
        return {runs.kernel: runs}
    return {run.kernel: run for run in runs}


# What each per-run distribution is called on the axes: per fault (the stall the vCPU feels,
# what kernels are ranked by) or per attempt (the lock's own wait, chapter 03).
_PER = {
    "fault": {
        "gid": "cdf",
        "xlabel": "stall per fault: mmu_lock waits + retried attempts\n"
        "(µs, log scale; faults that never stalled at the left edge)",
        "ylabel": "share of faults",
        "title": "Fault stalls",
        "none": "no fault stalled",
    },
    "attempt": {
        "gid": "wait-cdf",
        "xlabel": "mmu_lock wait per fault attempt\n"
        "(µs, log scale; attempts that never waited at the left edge)",
        "ylabel": "share of fault attempts",
        "title": "Waits for mmu_lock",
        "none": "no fault attempt waited",
    },
}
_CDF_KIND = {spec["gid"]: per for per, spec in _PER.items()}
_BROWNOUT_NONE = "no vCPU stalled"
_NOTE_STEP = 0.08  # axes fraction between two CDF notes (one per run with no stall)
_NOTE_STEP_PT = 11.0  # points between two brownout notes


# What the views derive from a run (its stall pieces, the points of its lines), remembered
# while the run lives: a Run is never changed once made, and a live view (the dashboard)
# flipping back to runs it has drawn before should not compute them again.
_DERIVED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _derived(run, key, compute):
    """``compute()``, remembered for ``run`` under ``key``."""
    try:
        memo = _DERIVED.setdefault(run, {})
    except TypeError:  # not weakly referenceable or hashable (a stand-in in a test): no memo
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def _pieces(run):
    return _derived(run, "pieces", lambda: metrics.stall_pieces(run))


def _stall_values(run, per: str) -> np.ndarray:
    """The values a CDF of ``per`` draws: each fault's stall (waits plus retried attempts,
    :func:`kvmviz.metrics.fault_stalls`), or each attempt's wait for ``mmu_lock``."""
    if per == "attempt":
        return run.faults["wait_us"].to_numpy()
    return metrics.fault_stalls(run, _pieces(run))["stall_us"].to_numpy()


def _run_cdf(run, per: str) -> tuple[np.ndarray, np.ndarray]:
    return _derived(run, ("cdf", per), lambda: _cdf_points(_stall_values(run, per)))


def _stalled(run, per: str) -> bool:
    """Whether any fault of ``run`` stalled at all (``per="attempt"``: any attempt waited)."""
    return _derived(run, ("stalled", per), lambda: bool((_stall_values(run, per) > 0).any()))


def _cdf_points(values) -> tuple[np.ndarray, np.ndarray]:
    """The steps of the empirical CDF of ``values`` (µs): those at or below the floor of the
    log axis drawn at the floor, at most ~2,000 points."""
    values = np.sort(np.maximum(np.asarray(values, dtype=float), _WAIT_FLOOR_US))
    if values.size == 0:
        return np.array([_WAIT_FLOOR_US]), np.array([0.0])
    share = np.arange(1, values.size + 1) / values.size
    # Keep the curve's shape with at most ~2,000 points (a 10^6-row run draws instantly).
    keep = np.unique(np.linspace(0, values.size - 1, min(values.size, 2000)).astype(int))
    return (
        np.concatenate([[_WAIT_FLOOR_US], values[keep]]),
        np.concatenate([[0.0], share[keep]]),
    )


def brownout_points(run, bin_us=None) -> tuple[np.ndarray, np.ndarray]:
    """The points of ``run``'s brownout curve as :func:`brownout_curve` draws them: time (ms)
    and the share of the VM's vCPUs stalled (%), per bin; remembered while the run lives.

    Parameters
    ----------
    run : Run
    bin_us : float, optional
        The bin width, µs (default: :func:`kvmviz.metrics.brownout`'s).

    Returns
    -------
    (t_ms, stalled_pct) : tuple of numpy.ndarray
    """

    def compute():
        curve = metrics.brownout(run, bin_us=bin_us, pieces=_pieces(run))
        return curve["t_us"].to_numpy() / 1000, 100 * curve["stalled_share"].to_numpy()

    return _derived(run, ("brownout", bin_us), compute)


def precompute(run) -> None:
    """Compute ahead what the stall views draw of ``run`` (its stall pieces, its per-fault and
    per-attempt CDFs, its brownout curve), kept while the run lives: a live view warming the
    runs a learner may flip to next (:class:`kvmviz.widgets.ToggleDashboard`), so that
    :func:`update` then only moves artists.

    Parameters
    ----------
    run : Run
    """
    for per in _PER:
        _run_cdf(run, per)
    brownout_points(run)


def _check_per(per: str) -> str:
    if per not in _PER:
        raise ValueError(f"per = {per!r}: expected 'fault' or 'attempt'")
    return per


def _notes(ax) -> dict:
    """The "no stall" notes of an axes, by label."""
    return {
        t.get_gid().partition("|")[2]: t
        for t in ax.texts
        if (t.get_gid() or "").startswith("note|")
    }


def _stack_notes(ax) -> None:
    """Stack the visible "no stall" notes of a CDF or brownout axes from their corner, in the
    order of the runs: a CDF's top left, beside the left edge where such a run's line stands;
    a brownout's bottom left, just above the axis where such a run's line lies. Notes hidden
    (their run stalled, or not among the ``shown`` of :func:`restyle`) take no place."""
    cdf = any((line.get_gid() or "").partition("|")[0] in _CDF_KIND for line in ax.get_lines())
    shown = [note for note in _notes(ax).values() if note.get_visible()]
    for k, note in enumerate(shown):
        if cdf:
            note.xy = (_WAIT_FLOOR_US, 0.97 - _NOTE_STEP * k)
        else:
            note.xyann = (0.0, 3.0 + _NOTE_STEP_PT * k)


def _add_note(ax, label: str, text: str, *, xy, xycoords, offset_pt, ha="left", va="top"):
    """A run's "no stall" note, in words, in its colour; drawn only while its run has none."""
    style = _style(label, None)
    return ax.annotate(
        f"{label}: {text}",
        xy=xy,
        xycoords=xycoords,
        xytext=offset_pt,
        textcoords="offset points",
        ha=ha,
        va=va,
        fontsize="small",
        color=style["color"],
        bbox={"boxstyle": "round,pad=0.15", "facecolor": theme.color("note_face"),
              "edgecolor": "none", "alpha": 0.85},
        gid=f"note|{label}",
        visible=False,
    )  # fmt: skip


def update(
    ax,
    runs,
    *,
    highlight: str | None = None,
    table: pd.DataFrame | None = None,
    shown=None,
):
    """Give the artists of an axes drawn by :func:`stall_cdf`, :func:`brownout_curve` or
    :func:`stall_split` new runs' data and the highlight, reusing every artist: the
    dashboard's hot path.

    Each line is found by its gid (``"cdf|<label>"``, ``"wait-cdf|<label>"`` or
    ``"brownout|<label>"``) and given the points a new draw would give it; lines whose label
    is not in ``runs`` are left as they are. Each run's note ("v5.15: no fault stalled",
    gid ``"note|<label>"``) is shown exactly while its run has no stall at all, so that a
    line flat at zero is never taken for missing data. The bars of :func:`stall_split` get
    the new heights and labels. In place, updating and blitting the three kernels' lines is
    about five times faster than drawing new ones with ``seaborn.ecdfplot``
    (``benchmarks/plot.py``). Every run gets its new data, shown or not, so that a later
    :func:`restyle` may show any of them.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Drawn by :func:`stall_cdf`, :func:`brownout_curve` or :func:`stall_split`.
    runs : Run, sequence of Run, or mapping of label to Run
    highlight : str, optional
        As in :func:`restyle`.
    table : pandas.DataFrame, optional
        :func:`kvmviz.metrics.kernel_table` of ``runs``, if already computed (the bars of
        :func:`stall_split` are drawn from it).
    shown : collection of str, optional
        As in :func:`restyle`: the labels drawn, the others hidden (default every one).

    Returns
    -------
    matplotlib.axes.Axes
    """
    runs = _runs(runs)
    notes = _notes(ax)
    top, moved = _WAIT_FLOOR_US, False
    for line in ax.get_lines():
        kind, _, label = (line.get_gid() or "").partition("|")
        if label not in runs or kind not in (*_CDF_KIND, "brownout"):
            continue
        if kind in _CDF_KIND:
            x, y = _run_cdf(runs[label], _CDF_KIND[kind])
            top = max(top, x[-1])
            stalled = _stalled(runs[label], _CDF_KIND[kind])
        else:
            x, y = brownout_points(runs[label])
            stalled = bool((y > 0).any())
        line.set_data(x, y)
        moved = True
        if label in notes:
            notes[label].set_visible(not stalled)
            notes[label]._kvmviz_by_data = not stalled
    _stack_notes(ax)
    if moved:
        if ax.get_xscale() == "log":
            ax.set_xlim(_WAIT_FLOOR_US * 0.8, max(top * 1.5, 10.0))
        else:
            ax.relim()
            ax.autoscale_view(scaley=False)
    if any((p.get_gid() or "").startswith("split|") for p in ax.patches):
        _fill_split(ax, kernel_table(runs) if table is None else table)
        for artist in _split_artists(ax):  # what the new values show, before `shown` hides
            artist._kvmviz_by_data = artist.get_visible()
    return restyle(ax, highlight=highlight, shown=shown)


def restyle(ax, *, highlight: str | None, shown=None):
    """Re-apply the highlight, and which runs are shown, to an axes drawn by
    :func:`stall_cdf`, :func:`brownout_curve` or :func:`stall_split`, without drawing
    anything new.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    highlight : str or None
        The label drawn bold (the others faint); None, every line alike.
    shown : collection of str, optional
        The labels (kernels) to draw; the lines, notes, bars, bar labels and legend entries
        of every other label are hidden (kept, with their data, for a later call to show).
        The bars of :func:`stall_split` then close up, one slot per label shown, in their
        order, each named under its bar: its x ticks and limits change, so a view that blits
        redraws ``ax.xaxis`` too. The legend of a CDF or brownout axes is made again with
        the lines shown (at the same place, in the same font). Beside the highlight, the
        other labels shown are drawn thin but not faint: the reference. None (default):
        every label, as drawn.

    Returns
    -------
    matplotlib.axes.Axes
    """
    shown = None if shown is None else set(shown)

    def drawn(label: str) -> bool:
        return shown is None or label in shown

    lines = {}
    for line in ax.get_lines():
        kind, _, label = (line.get_gid() or "").partition("|")
        if not label:
            continue
        style = _style(label, highlight)
        line.set_linewidth(style.get("linewidth", 1.8))
        alpha = style.get("alpha", 1.0)
        line.set_alpha(alpha if shown is None or label == highlight else max(alpha, 0.8))
        if kind in (*_CDF_KIND, "brownout"):
            line.set_visible(drawn(label))
            lines[line.get_label()] = line
    split = _split_artists(ax)  # (its notes are shown below, with its bars)
    for label, note in _notes(ax).items():
        alpha = _style(label, highlight).get("alpha", 1.0)
        note.set_alpha(alpha if shown is None or label == highlight else max(alpha, 0.8))
        if not split:
            note.set_visible(_by_data(note) and drawn(label))
    for artist in split:
        kind, _, rest = artist.get_gid().partition("|")
        kernel = rest.split("|")[0]
        if kind != "note":
            alpha = 1.0 if highlight in (None, kernel) else (0.45 if shown is None else 0.75)
            artist.set_alpha(alpha)
        artist.set_visible(_by_data(artist) and drawn(kernel))
    if split:
        _close_up(ax, shown)
    else:
        _stack_notes(ax)
    legend = ax.get_legend()
    if legend is not None and lines:
        visible = [line for line in lines.values() if line.get_visible()]
        if [t.get_text() for t in legend.get_texts()] != [line.get_label() for line in visible]:
            legend.remove()
            anchor = legend.get_bbox_to_anchor().transformed(ax.transAxes.inverted())
            ncols = getattr(legend, "_kvmviz_ncols", legend._ncols)  # as asked, not as fitted
            legend = ax.legend(
                handles=visible,
                loc=legend._loc,
                bbox_to_anchor=anchor.bounds,
                borderaxespad=legend.borderaxespad,
                prop=legend.prop,
                ncols=ncols,
                frameon=legend.get_frame_on(),
            )
            legend._kvmviz_ncols = ncols
        for handle, text in zip(legend.get_lines(), legend.get_texts(), strict=False):
            line = lines.get(text.get_text())
            if line is not None:
                handle.set_linewidth(line.get_linewidth())
                handle.set_alpha(line.get_alpha())
    return ax


def live_artists(ax) -> list:
    """Every artist of ``ax`` that :func:`update` and :func:`restyle` may change: the runs'
    lines, their notes, the bars of :func:`stall_split` and their labels, and the legend. A
    live view redraws these alone over a saved background (:class:`kvmviz.animate.Blitter`).
    A view passing ``shown`` to a :func:`stall_split` axes also redraws its ``ax.xaxis``
    (the bars close up and are named again); a view that changes the limits, its axes.

    Parameters
    ----------
    ax : matplotlib.axes.Axes

    Returns
    -------
    list of matplotlib.artist.Artist
    """
    live = ("cdf|", "wait-cdf|", "brownout|", "note|", "split")
    artists = [
        a for a in [*ax.patches, *ax.get_lines(), *ax.texts] if (a.get_gid() or "").startswith(live)
    ]
    legend = ax.get_legend()
    return artists + ([legend] if legend is not None else [])


def _split_artists(ax) -> list:
    """The bars of :func:`stall_split` on ``ax``, their labels, totals and notes (none on
    other axes)."""
    if not any((p.get_gid() or "").startswith("split|") for p in ax.patches):
        return []
    kinds = ("split|", "split-label|", "split-total|", "note|")
    return [a for a in [*ax.patches, *ax.texts] if (a.get_gid() or "").startswith(kinds)]


def _by_data(artist) -> bool:
    """Whether ``artist`` (a note, a bar or its label) is drawn by its run's data alone,
    before :func:`restyle`'s ``shown`` hides it: as it was when first asked, then as
    :func:`update` last set it."""
    if not hasattr(artist, "_kvmviz_by_data"):
        artist._kvmviz_by_data = artist.get_visible()
    return artist._kvmviz_by_data


def _close_up(ax, shown) -> None:
    """Put the bars of :func:`stall_split` of the kernels ``shown`` (None: all) side by side,
    one slot each in their order, named under them; the x limits fit as many slots (at least
    two, so that one bar is not drawn twice as wide)."""
    bars = [p.get_gid() for p in ax.patches if (p.get_gid() or "").startswith("split|")]
    kernels = list(dict.fromkeys(gid.split("|")[1] for gid in bars))
    visible = [k for k in kernels if shown is None or k in shown]
    slot = {kernel: j for j, kernel in enumerate(visible)}
    for artist in _split_artists(ax):
        kind, _, rest = artist.get_gid().partition("|")
        j = slot.get(rest.split("|")[0])
        if j is None:
            continue
        if kind == "split":
            artist.set_x(j - _SPLIT_WIDTH / 2)
        elif kind == "split-label" and artist.get_horizontalalignment() == "left":
            artist.xy = (j + _SPLIT_WIDTH / 2, artist.xy[1])
        else:
            artist.xy = (j, artist.xy[1])
    labels = [_kernel_tick(k) for k in visible]
    ticks = ax.get_xticklabels()
    if [t.get_text() for t in ticks] != labels:
        size = {"fontsize": ticks[0].get_fontsize()} if ticks else {}
        ax.set_xticks(range(len(visible)), labels, **size)
    centre, half = (len(visible) - 1) / 2, max(len(visible), 2) / 2 + 0.1
    ax.set_xlim(centre - half, centre + half)


def _style(label: str, highlight: str | None) -> dict:
    """A run's line style, for the current page: its kernel's, its policy's, or the faults'
    colour (:mod:`kvmviz.theme`'s accessors)."""
    base = theme.policy_style(label) if label in POLICY_STYLES else theme.kernel_style(label)
    base.setdefault("label", label)
    if highlight is not None:
        if label == highlight:
            base["linewidth"] = 2.6
        else:
            base["alpha"] = 0.45
            base["linewidth"] = 1.2
    return base


def stall_cdf(runs, *, ax=None, highlight: str | None = None, per: str = "fault"):
    """Cumulative distribution of the fault stalls, one line per run.

    By default one value per *fault*: everything it lost to ``mmu_lock`` from its first exit
    to the install that sticks, its waits plus the attempts it had to retry
    (:func:`kvmviz.metrics.fault_stalls`), so that a kernel cannot look better by turning
    waits into retries. ``per="attempt"`` draws each attempt's wait for the lock instead,
    the lock's own view (chapter 03).

    Parameters
    ----------
    runs : Run, sequence of Run, or mapping of label to Run
    ax : matplotlib.axes.Axes, optional
    highlight : str, optional
        Label (kernel) to draw bold, the others faint.
    per : {"fault", "attempt"}
        One value per fault (its stall) or per fault attempt (its wait).

    Returns
    -------
    matplotlib.axes.Axes
        Each line has gid ``"cdf|<label>"`` (``"wait-cdf|<label>"`` per attempt).

    Notes
    -----
    The x axis is logarithmic; faults that never stalled sit at its left edge (0.1 µs), so the
    height of the curve there is the share that never stalled. A run with no stall at all is
    a line straight up that edge, which reads as missing data: it is named in words beside it
    ("v5.15: no fault stalled"). The legend is placed where it covers the fewest lines.
    """
    per = _check_per(per)
    spec = _PER[per]
    ax = ax or plt.gca()
    top = _WAIT_FLOOR_US
    for j, (label, run) in enumerate(_runs(runs).items()):
        x, y = _run_cdf(run, per)
        ax.step(x, y, where="post", gid=f"{spec['gid']}|{label}", **_style(label, highlight))
        top = max(top, x[-1])
        note = _add_note(
            ax,
            label,
            spec["none"],
            xy=(_WAIT_FLOOR_US, 0.97 - _NOTE_STEP * j),
            xycoords=("data", "axes fraction"),
            offset_pt=(5, 0),
        )
        note.set_visible(not _stalled(run, per))
    ax.set_xscale("log")
    # Plain numbers (0.1, 1, 10, ...) read faster than 10^n and skip mathtext's parser.
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(_WAIT_FLOOR_US * 0.8, max(top * 1.5, 10.0))
    ax.set_ylim(0, 1.02)
    _stack_notes(ax)
    ax.set_xlabel(spec["xlabel"])
    ax.set_ylabel(spec["ylabel"])
    ax.set_title(spec["title"])
    ax.legend(loc="best")
    return restyle(ax, highlight=highlight)


def brownout_curve(runs, *, ax=None, bin_us: float | None = None, highlight: str | None = None):
    """The brownout over time: the share of the VM's vCPUs stalled on ``mmu_lock``, one line
    per run (:func:`kvmviz.metrics.brownout`).

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
        Each line has gid ``"brownout|<label>"``; a run that never stalls is named in words
        just above the time axis ("v5.15: no vCPU stalled", gid ``"note|<label>"``).
    """
    ax = ax or plt.gca()
    for j, (label, run) in enumerate(_runs(runs).items()):
        x, y = brownout_points(run, bin_us)
        ax.step(x, y, where="post", gid=f"brownout|{label}", **_style(label, highlight))
        note = _add_note(
            ax,
            label,
            _BROWNOUT_NONE,
            xy=(0.01, 0.0),
            xycoords=("axes fraction", "data"),
            offset_pt=(0, 3 + _NOTE_STEP_PT * j),
            va="bottom",
        )
        note.set_visible(not bool((y > 0).any()))
    _stack_notes(ax)
    ax.set_ylim(0, 100)
    ax.set_xlabel("simulated time (ms)")
    ax.set_ylabel("share of the VM's vCPUs stalled (%)")
    ax.set_title("Brownout")
    return restyle(ax, highlight=highlight)


def _slot_bar(ax, x0: float, x1: float, y: float, height: float, *, gid: str) -> None:
    """One memslot as a green bar, at least visible however narrow."""
    ax.add_patch(
        Rectangle(
            (x0, y),
            max(x1 - x0, 0.004),
            height,
            facecolor=theme.color("memslot"),
            edgecolor=theme.color("background"),
            linewidth=0.8,
            gid=gid,
        )
    )


def _slot_label(ax, x0, x1, y, height, label: str, *, room: float) -> Text:
    """A memslot's label: inside its bar, in white, when it fits there; otherwise its size
    alone under the bar, in the slot's green (a narrow bar must still say how big it is).
    Which one is decided when the figure is drawn (:class:`_Declutter`), from the sizes on
    screen; ``room`` (data units) is the guess used until then."""
    inside = {
        "text": label,
        "xy": ((x0 + x1) / 2, y + height / 2),
        "va": "center",
        "fontsize": "x-small",
        "color": "white",
        "within": (x0, x1, y, y + height),
    }
    under = {
        "text": label.replace(", ", "\n").split("\ngfn")[0],
        "xy": ((x0 + x1) / 2, y),
        "va": "top",
        "fontsize": "xx-small",
        "color": theme.color("memslot"),
    }
    first = inside if x1 - x0 > room else under
    text = ax.annotate(
        first["text"],
        first["xy"],
        xytext=(0, 0),
        textcoords="offset points",
        ha="center",
        va=first["va"],
        fontsize=first["fontsize"],
        color=first["color"],
        annotation_clip=True,
        gid="slot-label",
    )
    text._kvmviz_places = [inside, under]
    return text


class _Declutter(Artist):
    """Texts inside an axes that never run into each other, whatever the figure's size.

    At each draw, before they are drawn, each text (in order) takes the first of its places
    (``text._kvmviz_places``: text, xy, va, font size, colour, and optionally ``within``, a
    data rectangle it must fit in) where it touches no text placed before it, nor any other
    visible text of the axes, and stays inside the figure; where none does, it is not
    drawn. What was drawn is kept in ``shown`` (the texts) for tests."""

    def __init__(self, ax, texts, *, pad_pt: float = 2.0) -> None:
        super().__init__()
        self.texts = list(texts)
        self.pad_pt = pad_pt
        self.shown: list[str] = []
        # After the addresses under the axis (_AxisLabels, 0.01 below the texts), before
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


# How each kind of notifier range is drawn: a hit is solid vermilion with a triangle above it
# (it takes mmu_lock and is the story of the maps, however small), a miss a light grey hatch
# on a pale ground, opaque so that overlapping misses look like one miss, not a darker one. A
# hit that spans smaller hits (a 2 MiB THP split over single KSM pages) is drawn under them,
# pale with a vermilion outline, so that the small ones stay visible on top of it.
RANGE_STYLE = {  # the colours are names of the palette, looked up as they are drawn
    "hit": theme.Themed(facecolor="hit", edgecolor="hit", linewidth=0.5),
    "wide": theme.Themed(facecolor="hit_face", edgecolor="hit", linewidth=1.0),
    "miss": theme.Themed(
        facecolor="miss_face", edgecolor="miss", hatch=HATCHES["miss"], linewidth=0.5
    ),
}


@dataclass(frozen=True)
class MapParts:
    """What :func:`memslot_map` drew that a live view moves: the hva axis it placed the ranges
    on, the notifier bars of each kind (``"hit"``, ``"wide"``, ``"miss"``) and the number of
    address-space rows under them. Ask for it with :func:`map_parts`.

    Attributes
    ----------
    axis : AddressAxis
    bars : dict of str to SpanBars
    rows : int
    """

    axis: AddressAxis
    bars: dict
    rows: int

    @property
    def notifier_row(self) -> tuple[float, float]:
        """``(y0, height)`` of the notifier bars."""
        return self.axis.notifier_row(self.rows)


_MAPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def map_parts(ax) -> MapParts:
    """The parts of the memslot map drawn on ``ax`` with notifier ranges (:class:`MapParts`).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        An axes :func:`memslot_map` drew on, with ``notifiers``.

    Returns
    -------
    MapParts

    Raises
    ------
    ValueError
        If no memslot map with notifier ranges was drawn on ``ax``.
    """
    try:
        return _MAPS[ax]
    except KeyError:
        raise ValueError(
            "no memslot map with notifier ranges was drawn on this axes: draw one with "
            "memslot_map(layout, notifiers, ax=ax)"
        ) from None


_ZORDER = {"miss": 2.0, "wide": 2.05, "hit": 2.1}  # small hits over wide ones over misses
_MERGED = "×n: n merged"  # what the ×n beside a bar means, added to its kind's legend entry


def _range_handles(spans: dict, *, counts: bool, merged=()) -> list:
    """Legend entries for the kinds of range drawn, and only those, with their counts; without
    counts (a live map whose bars will move), hits and misses, which either run may draw. The
    kinds in ``merged`` (some of their ranges drawn as one bar, ``×n`` beside it) say so. The
    row is labelled "notifiers": the entries need not repeat it."""
    n = {kind: len(spans.get(kind, ())) for kind in ("hit", "wide", "miss")}

    def label(text: str, kind: str) -> str:
        parts = [f"{n[kind]:,}"] if counts else []
        parts += [_MERGED] if kind in merged else []
        return f"{text} ({'; '.join(parts)})" if parts else text

    handles = []
    if n["hit"] or not counts:
        mark = Line2D([], [], marker="v", markersize=6, color=theme.color("hit"), linestyle="none")
        handles.append(((Patch(**RANGE_STYLE["hit"]), mark), label("hits", "hit")))
    if n["wide"]:
        text = "hits spanning smaller hits, under them"
        handles.append((Patch(**RANGE_STYLE["wide"]), label(text, "wide")))
    if n["miss"] or not counts:
        handles.append((Patch(**RANGE_STYLE["miss"]), label("misses, spurious", "miss")))
    return handles


def _merge_expected(ax, spans: list[tuple[float, float]], width: float) -> bool:
    """Whether two of ``spans`` (x, width, data units) will be drawn as one at the axes' size
    now: each widened to :data:`MIN_SPAN_PT` as :class:`SpanBars` does, then touching."""
    if len(spans) < 2:
        return False
    inches = ax.get_position().width * ax.figure.get_figwidth()
    min_w = MIN_SPAN_PT / 72 * width / max(inches, 1e-9)
    x = np.array(spans, dtype=float)
    centre = x[:, 0] + x[:, 1] / 2
    half = np.maximum(np.abs(x[:, 1]), min_w) / 2
    order = np.argsort(centre - half)
    left, right = (centre - half)[order], np.maximum.accumulate((centre + half)[order])
    return bool((left[1:] <= right[:-1]).any())


class _AxisLabels(Artist):
    """Labels along an axis that never run together, whatever the figure's size.

    The labels are annotations of the axes (an address under each segment of a compressed
    axis). At each draw, before they are drawn, each one that would touch the label before
    it moves one line down; if it would touch there too it is not drawn. One that would end
    past the axis's right end is moved left to end there. What was drawn is kept in
    ``shown`` (the texts) for tests."""

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


def _declutter(ax) -> _Declutter:
    """Keep the labels of a memslot map (slots, then the VMM's own memory, then the marks of
    cut-out gaps) from running into each other (:class:`_Declutter`)."""
    order = {"slot-label": 0, "vmm-label": 1, "gap": 2}
    texts = sorted((t for t in ax.texts if t.get_gid() in order), key=lambda t: order[t.get_gid()])
    keeper = _Declutter(ax, texts)
    ax.add_artist(keeper)
    return keeper


def _axis_labels(ax, labels) -> _AxisLabels:
    """``labels`` ((x, text) in data x) written under the axes' content at y = -0.06 (data),
    in order, never running together (:class:`_AxisLabels`)."""
    style = {"textcoords": "offset points", "ha": "left", "va": "top", "fontsize": "xx-small"}
    texts = [
        ax.annotate(text, (x, -0.06), xytext=(0, 0), gid="axis-label", **style)
        for x, text in labels
    ]
    keeper = _AxisLabels(texts)
    if texts:
        keeper.reserve = ax.annotate(" ", (labels[0][0], -0.06), xytext=(0, -7.5), **style)
    ax.add_artist(keeper)
    return keeper


_COMPRESSED_AXIS = (
    "{axis}: widths grow with the log of size (labels give sizes), gaps between {gaps} cut out"
)


@strict_booleans
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
    range; the first hva of each segment is written under it (a label that would run into the
    one before moves a line down, or is left out). Notifier ranges are drawn above:
    vermilion, with a triangle over each, where they hit a memslot (KVM must zap, and takes
    ``mmu_lock``); grey and hatched where they miss. A hit that spans smaller hits is drawn
    under them, pale with a vermilion outline, so that 256 KiB of single-page KSM hits stay
    visible over the 2 MiB range of a huge-page split. Every range is at least
    :data:`MIN_SPAN_PT` wide on screen (:class:`SpanBars`), so a one-page hit in a 12 TiB
    slot is as visible as a miss that fills a segment; ranges of one kind that then touch are
    drawn as one bar, with ``×n`` beside it. The legend lists only the kinds of range drawn,
    and what ``×n`` means when some are merged.

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
        stays on screen. The ``×n`` beside merged ranges is counted at each draw either way.

    Returns
    -------
    matplotlib.axes.Axes
        The hva map (with ``gfn_view``, the gfn map is the next axes of the figure). The
        range bars have gids ``"notifiers-hit"``, ``"notifiers-hit-wide"`` and
        ``"notifiers-miss"``.

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
    axis = AddressAxis.of_layout(layout, other, regions)
    to_x, placed, total = axis.x, axis.segments, axis.total
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
        label = f"slot {slot.slot}\n{size_bytes(slot.size_bytes)}"
        if x1 - x0 > 2.5 and lanes_in[slot.as_id] == 1:
            label = f"slot {slot.slot}, {size_bytes(slot.size_bytes)}"
            label += f"\ngfn {slot.base_gfn:#x}–{slot.gfn_end:#x}"
        _slot_label(ax, x0, x1, y, height, label, room=0.5)
    top = len(as_ids)
    ax.set_xlim(-0.05, total + 0.05)
    legend = []
    if ranges is not None:
        # One collection per kind (not a patch per range): a map of 400 ranges draws at once.
        # Misses first, then the wide hits, so that a small hit is drawn over both.
        spans = axis.spans(ranges)
        bars = {}
        for key in ("miss", "wide", "hit"):
            bars[key] = SpanBars.add(
                ax,
                spans[key],
                axis.notifier_row(top),
                marks=key == "hit",  # a wide hit always has a smaller one, and its mark, on it
                counts=True,
                gid="notifiers-hit-wide" if key == "wide" else f"notifiers-{key}",
                zorder=_ZORDER[key],
                **RANGE_STYLE[key],
            )
        merged = [
            key
            for key in ("hit", "wide", "miss")
            if not counts or _merge_expected(ax, spans[key], total + 0.1)
        ]
        legend = _range_handles(spans, counts=counts, merged=merged)
        _MAPS[ax] = MapParts(axis=axis, bars=bars, rows=top)
    previous_end, labels = None, []
    for a, b, x0, width in placed:
        if previous_end != a:
            labels.append((x0, f"{a:#x}"))
            if previous_end is not None:
                miss = theme.color("miss")
                ax.text(x0 - 0.25, top / 2, "//", ha="center", va="center", color=miss, gid="gap")
        if not any(s.hva_start <= a < s.hva_end for s in layout):
            vmm = ax.text(
                x0 + width / 2,
                top - 0.5,
                f"{'VMM memory' if width > 0.9 else 'VMM'}\n{size_bytes(b - a)}",
                ha="center",
                va="center",
                fontsize="x-small",
                color=theme.color("miss"),
                gid="vmm-label",
            )
            vmm._kvmviz_places = [
                {"text": f"VMM memory\n{size_bytes(b - a)}"},
                {"text": f"VMM\n{size_bytes(b - a)}"},
            ]
        previous_end = b
    _axis_labels(ax, labels)
    _declutter(ax)
    rows = [f"as_id {a}" for a in as_ids] + (["notifiers"] if ranges is not None else [])
    ax.set_yticks(np.arange(len(rows)) + 0.5, rows)
    ax.set_ylim(-0.35, len(rows) + 0.1)  # room for the triangles over the hits
    ax.set_xticks([])
    ax.set_xlabel(_COMPRESSED_AXIS.format(axis="host virtual address (hva)", gaps="clusters"))
    ax.set_title("Memslots in the VMM's address space")
    if legend:
        handles, labels = zip(*legend, strict=True)
        legend = ax.legend(
            handles,
            labels,
            handler_map={tuple: HandlerTuple(ndivide=None)},
            loc="lower right",
            bbox_to_anchor=(1.0, 1.0),
            fontsize="small",
            ncol=2,
        )
        legend._kvmviz_handles = handles  # the tuples, to lay the legend out again
    ax.spines["left"].set_visible(False)
    return ax


@strict_booleans
def gfn_map(layout, notifiers=None, *, ax=None, max_ranges: int = 400, counts: bool = True):
    """The guest-physical side of a layout: each address space's memslots on the gfn axis and,
    optionally, the guest frames that notifier hits reach.

    The gfn axis is compressed like the hva axis of :func:`memslot_map`: each memslot is drawn
    to its own scale, with a width growing with the log of its size, and the gaps between
    memslots are cut out (``//``); the first gfn of each slot is written under it (never two
    running together). Memslots are green bars, one row per address space (as_id 1 is x86's
    SMM), each labelled with its slot id and size. Above each slot, vermilion marks show the
    gfn ranges a notifier hit reaches, computed exactly as ``__kvm_handle_hva_range()`` does
    (:meth:`MemslotLayout.gfn_ranges`): an hva aliased in both address spaces reaches both.
    Each mark is at least :data:`MIN_SPAN_PT` wide on screen; a gfn range that spans smaller
    ones is drawn under them, pale with a vermilion outline. Misses reach no guest frame, so
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
    axis = AddressAxis.of([(s.base_gfn << PAGE_SHIFT, s.gfn_end << PAGE_SHIFT) for s in layout])
    to_x, placed, total = axis.x, axis.segments, axis.total
    ax.set_xlim(-0.05, total + 0.05)
    as_ids = sorted({s.as_id for s in layout})
    row_of = {as_id: i for i, as_id in enumerate(as_ids)}
    for slot in layout:
        x0, x1 = to_x(slot.base_gfn << PAGE_SHIFT), to_x(slot.gfn_end << PAGE_SHIFT)
        y = row_of[slot.as_id] + 0.08
        _slot_bar(ax, x0, x1, y, 0.5, gid=f"gfn-memslot-as{slot.as_id}-slot{slot.slot}")
        sep = ", " if x1 - x0 > 1.6 else "\n"
        _slot_label(
            ax, x0, x1, y, 0.5, f"slot {slot.slot}{sep}{size_bytes(slot.size_bytes)}", room=0.7
        )
    handles = [Patch(facecolor=theme.color("memslot"), label="memslot")]
    if notifiers is not None and len(notifiers):
        ranges = classify.first_callbacks(notifiers).head(max_ranges)
        ranges = ranges[ranges["hit"].to_numpy(dtype=bool)]
        reached: dict[int, list[tuple[int, int]]] = {as_id: [] for as_id in as_ids}
        for a, b in zip(ranges["hva_start"], ranges["hva_end"], strict=True):
            for gfns in layout.gfn_ranges(int(a), int(b)):
                reached[gfns.as_id].append((gfns.gfn_start, gfns.gfn_end))
        n_wide = 0
        for as_id in as_ids:
            pairs = np.array(reached[as_id], dtype=np.int64).reshape(-1, 2)
            wide = spanning(pairs[:, 0], pairs[:, 1])
            n_wide += int(wide.sum())
            for key, which in (("wide", wide), ("hit", ~wide)):
                if key == "wide" and not which.any():
                    continue
                spans = [
                    (to_x(g0 << PAGE_SHIFT), to_x(g1 << PAGE_SHIFT) - to_x(g0 << PAGE_SHIFT))
                    for g0, g1 in pairs[which]
                ]  # to scale: SpanBars widens them
                SpanBars.add(
                    ax,
                    spans,
                    (row_of[as_id] + 0.62, 0.3),
                    gid=f"gfn-hits-wide-as{as_id}" if key == "wide" else f"gfn-hits-as{as_id}",
                    zorder=_ZORDER[key],
                    **RANGE_STYLE[key],
                )
        n_reached = sum(len(x) for x in reached.values())
        if n_reached:  # the legend lists what is drawn, and no hit reaches nothing
            label = "guest frames reached by notifier hits"
            if counts:
                label = (
                    f"guest frames reached by {len(ranges):,} notifier "
                    f"{'hit' if len(ranges) == 1 else 'hits'} ({n_reached:,} gfn "
                    f"{'range' if n_reached == 1 else 'ranges'})"
                )
            handles.append(Patch(label=label, **RANGE_STYLE["hit"]))
        if n_wide:
            label = "gfn ranges spanning smaller ones, drawn under them"
            handles.append(Patch(label=label + (f" ({n_wide:,})" if counts else ""),
                                 **RANGE_STYLE["wide"]))  # fmt: skip
    previous_end, labels = None, []
    for start, end, x0, _width in placed:
        labels.append((x0, f"{start >> PAGE_SHIFT:#x}"))
        if previous_end is not None and previous_end != start:
            miss = theme.color("miss")
            ax.text(
                x0 - 0.25, len(as_ids) / 2, "//", ha="center", va="center", color=miss, gid="gap"
            )
        previous_end = end
    _axis_labels(ax, labels)
    _declutter(ax)
    ax.set_yticks(np.arange(len(as_ids)) + 0.5, [_as_name(a) for a in as_ids])
    ax.set_ylim(-0.3, len(as_ids))
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
# metric -> (what it measures, unit, factor from the table's value to the unit). The brownout
# is the share of the VM's vCPU time stalled (kvmviz.metrics.brownout): its one meaning.
_METRICS = {
    "brownout_mean": ("share of the VM's vCPU time stalled", "%", 100.0),
    "brownout_miss": ("vCPU time stalled behind misses", "%", 100.0),
    "brownout_hit": ("vCPU time stalled behind hits", "%", 100.0),
    "brownout_fault": ("vCPU time stalled behind other faults only", "%", 100.0),
    "brownout_peak": ("peak share of the VM's vCPUs stalled", "%", 100.0),
    "stall_p99_us": ("p99 stall per fault", "µs", 1.0),
    "stall_p50_us": ("median stall per fault", "µs", 1.0),
    "stall_mean_us": ("mean stall per fault", "µs", 1.0),
    "stall_max_us": ("longest stall of a fault", "µs", 1.0),
    "stalled_share": ("faults that stalled", "%", 100.0),
    "stall_total_ms": ("vCPU time lost to mmu_lock", "ms", 1.0),
    "latency_mean_us": ("mean fault latency, first exit to install", "µs", 1.0),
    "latency_p99_us": ("p99 fault latency, first exit to install", "µs", 1.0),
    "wait_p99_us": ("p99 mmu_lock wait per fault attempt", "µs", 1.0),
    "wait_p50_us": ("median mmu_lock wait per fault attempt", "µs", 1.0),
    "wait_mean_us": ("mean mmu_lock wait per fault attempt", "µs", 1.0),
    "wait_max_us": ("longest mmu_lock wait of a fault attempt", "µs", 1.0),
    "waited_share": ("fault attempts that waited", "%", 100.0),
    "wait_total_ms": ("vCPU time waiting for mmu_lock", "ms", 1.0),
    "faults": ("faults resolved", "faults", 1.0),
    "faults_retried": ("fault attempts retried", "attempts", 1.0),
    "notifier_callbacks": ("notifier callbacks", "callbacks", 1.0),
    "lock_taken": ("callbacks taking mmu_lock", "callbacks", 1.0),
    "lock_avoided": ("callbacks skipping mmu_lock", "callbacks", 1.0),
    "writer_wait_mean_us": ("mean notifier wait for mmu_lock", "µs", 1.0),
    "writer_wait_max_us": ("longest notifier wait for mmu_lock", "µs", 1.0),
}
# What a stall metric at exactly 0 means, in words: a bar of height 0 or a line flat on the
# axis reads as missing data, so the figures write this instead. Each is 0 exactly when no
# fault (attempt, notifier) stalled, except the percentiles: see _zero_words.
_NONE_WORDS = {
    **dict.fromkeys(
        ["brownout_mean", "brownout_peak", "stalled_share", "stall_total_ms"]
        + [f"stall_{s}_us" for s in ("p99", "p50", "mean", "max")],
        "no fault stalled",
    ),
    "brownout_miss": "no stall behind a miss",
    "brownout_hit": "no stall behind a hit",
    "brownout_fault": "no stall behind faults",
    **dict.fromkeys(
        ["waited_share", "wait_total_ms"] + [f"wait_{s}_us" for s in ("p99", "p50", "mean", "max")],
        "no fault attempt waited",
    ),
    "writer_wait_mean_us": "no notifier waited",
    "writer_wait_max_us": "no notifier waited",
}
# A percentile at 0 says only that few stalled; which share is 0 when none did.
_PERCENTILES = {
    "stall_p99_us": ("stalled_share", "0 µs: under 1% of faults stalled"),
    "stall_p50_us": ("stalled_share", "0 µs: under half the faults stalled"),
    "wait_p99_us": ("waited_share", "0 µs: under 1% of attempts waited"),
    "wait_p50_us": ("waited_share", "0 µs: under half the attempts waited"),
}


def _zero_words(metric: str, row) -> str | None:
    """What ``metric`` at exactly 0 means for the table row ``row``, in words (None: a plain
    number says it, as for a count)."""
    if metric in _PERCENTILES:
        share, few = _PERCENTILES[metric]
        if share in row and float(row[share]) > 0:
            return few
    return _NONE_WORDS.get(metric)


def _value_label(value: float, unit: str) -> str:
    if unit == "%":
        return "<0.1%" if 0 < value < 0.05 else f"{value:.1f}%"
    if abs(value) >= 100 or float(value).is_integer():
        text = f"{value:,.0f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}" if unit in ("µs", "ms") else text


def _kernel_tick(kernel: str) -> str:
    """``"v5.13 (8931a454ae)"`` -> ``"v5.13\n8931a454ae"``."""
    label = theme.kernel_style(kernel)["label"]
    version, _, note = label.partition(" (")
    return f"{version}\n{note.rstrip(')')}" if note else version


def _table(table_or_runs) -> pd.DataFrame:
    """A per-kernel table (:func:`kvmviz.metrics.kernel_table`), made from runs if needed."""
    if isinstance(table_or_runs, pd.DataFrame):
        return table_or_runs
    return kernel_table(table_or_runs)


def _kernel_order(index) -> list:
    """The kernels of a table in release order, then any other labels as given."""
    return [k for k in KERNELS if k in index] + [k for k in index if k not in KERNELS]


def _zero_note(ax, x: float, text: str, *, gid: str, color=None):
    """A note in words where a bar of height 0 would stand, on lines of at most 12 characters."""
    return ax.annotate(
        "\n".join(textwrap.wrap(text, 12)),
        (x, 0),
        xytext=(0, 3),
        textcoords="offset points",
        ha="center",
        va="bottom",
        fontsize="small",
        color=color or theme.color("text"),
        gid=gid,
    )


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
    table = _table(table_or_runs)
    if metric not in table.columns:
        raise KeyError(f"no metric {metric!r}; expected one of {list(table.columns)}")
    ax = ax or plt.gca()
    what, unit, factor = _METRICS.get(metric, (metric, "", 1.0))
    order = _kernel_order(table.index)
    values = table.loc[order, metric].astype(float).to_numpy() * factor
    for i, (kernel, value) in enumerate(zip(order, values, strict=True)):
        style = theme.kernel_style(kernel)
        ax.bar(i, value, width=0.62, color=style["color"], gid=f"bar|{kernel}")
        words = _zero_words(metric, table.loc[kernel]) if value == 0 else None
        if words:
            _zero_note(ax, i, words, gid=f"note|{kernel}")
            continue
        ax.annotate(
            _value_label(value, unit),
            (i, value),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize="small",
            color=theme.color("text"),
        )
    ax.set_xticks(range(len(order)), [_kernel_tick(k) for k in order], fontsize="small")
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


def _split_style(part: str) -> dict:
    style = theme.behind_style(part)
    return {
        "facecolor": style["color"],
        "hatch": style["hatch"],
        "edgecolor": theme.color("background"),
        "linewidth": 0.8,
    }


_SPLIT_WIDTH = 0.62
_PART_NAMES = {"miss": "misses", "hit": "hits", "fault": "faults"}
_SPLIT_HEADROOM = 1.65  # the y limit over the tallest bar: room for its total and the legend


def stall_split(table_or_runs, *, ax=None, highlight: str | None = None):
    """Each kernel's brownout split by what the stalled faults waited behind, as stacked bars.

    One bar per kernel: the share of the VM's vCPU time stalled (``brownout_mean``, written
    on top), made of the part owed to notifications that missed every memslot (grey,
    hatched: what 8931a454ae and 071064f14d87 remove), to notifications that hit guest
    memory (vermilion: a zap no kernel can skip) and, where faults take ``mmu_lock`` for
    write, to other faults only (blue, cross-hatched; drawn only when not zero). Each part
    is labelled with its value. On the volatile setup this is the figure where the part
    behind misses goes to zero on v5.15 while the part behind hits stays.

    Parameters
    ----------
    table_or_runs : pandas.DataFrame or mapping of kernel to Run
        :func:`kvmviz.metrics.kernel_table` (with ``brownout_mean``, ``brownout_miss``,
        ``brownout_hit``, ``brownout_fault``), or runs of one scenario on each kernel. A
        table with the columns ``brownout_low`` and ``brownout_high`` (the total's range,
        over seeds say, as :func:`kvmviz.experiments.headline` names them) has the range
        drawn through the top of each bar, a line with caps, the total written above it;
        ``table.attrs["range_label"]`` names it in the legend.
    ax : matplotlib.axes.Axes, optional
    highlight : str, optional
        Kernel drawn in full, the others faint.

    Returns
    -------
    matplotlib.axes.Axes
        The parts have gids ``"split|<kernel>|<part>"`` (part in :data:`kvmviz.metrics.BEHIND`),
        their labels ``"split-label|<kernel>|<part>"``, the totals ``"split-total|<kernel>"``,
        the ranges ``"split-range|<kernel>"``; a kernel with no stall at all has the note "no
        fault stalled" (``"note|<kernel>"``) where its bar would stand. :func:`update` moves
        them all to new runs (a table without the range columns hides the ranges).
    """
    table = _table(table_or_runs)
    needed = ["brownout_mean", *(f"brownout_{part}" for part in BEHIND)]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise KeyError(f"table has no column {missing[0]!r}: expected kvmviz.metrics.kernel_table")
    ax = ax or plt.gca()
    order = _kernel_order(table.index)
    for i, kernel in enumerate(order):
        for part in BEHIND:
            ax.add_patch(
                Rectangle((i - _SPLIT_WIDTH / 2, 0), _SPLIT_WIDTH, 0.0,
                          gid=f"split|{kernel}|{part}", **_split_style(part))
            )  # fmt: skip
            ax.annotate(
                "", (i, 0), xytext=(0, 0), textcoords="offset points", ha="center",
                va="center", fontsize="x-small", color=theme.color("text"),
                bbox={"boxstyle": "round,pad=0.15", "facecolor": theme.color("note_face"),
                      "edgecolor": "none",
                      "alpha": 0.85},
                gid=f"split-label|{kernel}|{part}",
            )  # fmt: skip
        ax.annotate(
            "", (i, 0), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
            fontsize="small", fontweight="bold", color=theme.color("text"),
            gid=f"split-total|{kernel}",
        )  # fmt: skip
        ax.plot(
            [i, i], [0.0, 0.0], color=theme.color("text"), linewidth=1.2, marker="_",
            markersize=7, markeredgewidth=1.2, visible=False, gid=f"split-range|{kernel}",
        )  # fmt: skip
        color = theme.kernel_style(kernel)["color"]
        _zero_note(ax, i, _NONE_WORDS["brownout_mean"], gid=f"note|{kernel}", color=color)
    totals = 100 * table.loc[order, "brownout_mean"].astype(float).to_numpy()
    if "brownout_high" in table.columns:
        totals = np.maximum(totals, 100 * table.loc[order, "brownout_high"].astype(float))
    top = float(np.nanmax(totals)) if len(totals) else 0.0
    ax.set_ylim(0, top * _SPLIT_HEADROOM if top > 0 else 1.0)
    ax.set_xticks(range(len(order)), [_kernel_tick(k) for k in order], fontsize="small")
    ax.tick_params(axis="x", length=0)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_ylabel("share of the VM's vCPU time stalled (%)")
    ax.set_title("Brownout, by what the faults waited behind")
    _fill_split(ax, table)
    return restyle(ax, highlight=highlight)


def _fill_split(ax, table: pd.DataFrame) -> None:
    """Give the bars of :func:`stall_split` the values of ``table``: heights, labels, totals,
    the notes of kernels with no stall, and a legend of the parts drawn."""
    patches = {p.get_gid(): p for p in ax.patches if (p.get_gid() or "").startswith("split|")}
    texts = {t.get_gid(): t for t in ax.texts if (t.get_gid() or "").startswith(("split", "note|"))}
    kernels = list(dict.fromkeys(gid.split("|")[1] for gid in patches))
    low, high = ax.get_ylim()
    # A part too thin for its label inside has it beside the bar, right of it.
    room = 0.06 * (high - low)
    values = {
        (kernel, part): 100 * float(table.loc[kernel, f"brownout_{part}"])
        if kernel in table.index
        else 0.0
        for kernel in kernels
        for part in BEHIND
    }
    drawn = [part for part in BEHIND if any(values[k, part] > 0 for k in kernels)]
    ranges = {
        line.get_gid(): line
        for line in ax.get_lines()
        if (line.get_gid() or "").startswith("split-range|")
    }
    spans = ("low", "high")
    has_range = all(f"brownout_{e}" in table.columns for e in spans)
    for i, kernel in enumerate(kernels):
        total = 100 * float(table.loc[kernel, "brownout_mean"]) if kernel in table.index else 0.0
        parts = [part for part in BEHIND if values[kernel, part] > 0]
        bottom = 0.0
        for part in BEHIND:
            value = values[kernel, part]
            bar, label = patches[f"split|{kernel}|{part}"], texts[f"split-label|{kernel}|{part}"]
            bar.set_y(bottom)
            bar.set_height(value)
            bar.set_visible(value > 0)
            # A part the figure shows for another kernel and not this one is said to be 0 in
            # words at the foot of the bar (v5.15's misses on the volatile setup); a bar of one
            # part has its value written once, on top.
            zero = value == 0 and part in drawn and total > 0
            label.set_visible(zero or (value > 0 and len(parts) > 1))
            if zero:
                label.set_text(f"{_PART_NAMES[part]}: 0%")
                label.xy = (i, bottom)
                label.set_horizontalalignment("center")
                label.xyann = (0.0, 7.0)
            elif value > 0:
                label.set_text(_value_label(value, "%"))
                label.xy = (i, bottom + value / 2)
                if value >= room:
                    label.set_horizontalalignment("center")
                    label.xyann = (0.0, 0.0)
                else:
                    label.set_horizontalalignment("left")
                    label.xy = (i + _SPLIT_WIDTH / 2, bottom + value / 2)
                    label.xyann = (3.0, 0.0)
            bottom += value
        # The total's range (over seeds, say) as a bar with caps through the top of the
        # stack, the total written above whichever is higher.
        span = ranges.get(f"split-range|{kernel}")
        if span is not None:
            shown = has_range and kernel in table.index and total > 0
            if shown:
                low_, high_ = (100 * float(table.loc[kernel, f"brownout_{e}"]) for e in spans)
                span.set_data([i, i], [low_, high_])
                bottom = max(bottom, high_)
            span.set_visible(shown)
        texts[f"split-total|{kernel}"].set_text(_value_label(total, "%"))
        texts[f"split-total|{kernel}"].xy = (i, bottom)
        texts[f"split-total|{kernel}"].set_visible(total > 0)
        texts[f"note|{kernel}"].set_visible(kernel in table.index and total == 0)
    handles = [
        Patch(label=theme.behind_style(part)["label"], **_split_style(part))
        for part in BEHIND
        if part in drawn
    ]
    if any(line.get_visible() for line in ranges.values()):
        handles.append(
            Line2D([], [], color=theme.color("text"), marker="|", linestyle="none",
                   markersize=9, markeredgewidth=1.2,
                   label=table.attrs.get("range_label", "range of the total"))
        )  # fmt: skip
    legend = ax.get_legend()
    if legend is not None:
        legend.remove()
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize="x-small")


def stall_by_kernel(runs, *, ax=None, highlight: str | None = None):
    """The fault stalls of each kernel in one static figure: their distribution, and the
    brownout split by what the faults waited behind.

    Left, :func:`stall_cdf` of every run, one value per fault (waits plus retried attempts);
    right, :func:`stall_split`: each kernel's share of the VM's vCPU time stalled, in parts
    behind misses, hits and other faults, with the notifier callbacks' mean wait for
    ``mmu_lock`` written under each bar: the readers' stall beside the writers' wait
    (:data:`kvmviz.metrics.KERNEL_TABLE_COLUMNS`), so a kernel or lock policy that moves the
    waiting onto the writers cannot look like a win.

    Parameters
    ----------
    runs : mapping of kernel to Run, or sequence of Run
        Runs of one scenario and seed on each kernel (``{k: kv.simulate(scenario, kernel=k,
        seed=0) for k in kv.KERNELS}``).
    ax : pair of Axes, optional
        ``(cdf_ax, split_ax)``; default a new figure with the two side by side
        (``fig.axes == [cdf_ax, split_ax]``).
    highlight : str, optional
        Kernel to draw bold, the others faint.

    Returns
    -------
    matplotlib.axes.Axes
        The distribution's axes (``ax.figure`` is the figure).

    Examples
    --------
    >>> static = kv.presets.static_setup()
    >>> runs = {k: kv.simulate(static, kernel=k) for k in kv.KERNELS}  # doctest: +SKIP
    >>> kv.plot.stall_by_kernel(runs)  # doctest: +SKIP
    """
    runs = _runs(runs)
    if not runs:
        raise ValueError("runs is empty: expected one Run per kernel")
    if ax is None:
        fig = plt.figure(figsize=(10, 3.8), layout="constrained")
        ax_cdf, ax_split = fig.subplots(1, 2, width_ratios=[1.5, 1])
    elif isinstance(ax, Axes):
        raise ValueError("stall_by_kernel draws two panels: pass a pair (cdf_ax, split_ax)")
    else:
        ax_cdf, ax_split = ax
    stall_cdf(runs, ax=ax_cdf, highlight=highlight)
    table = kernel_table(runs)
    stall_split(table, ax=ax_split, highlight=highlight)
    order = _kernel_order(table.index)
    labels = []
    for kernel in order:
        wait = float(table.loc[kernel, "writer_wait_mean_us"])
        writers = f"writers wait\n{_value_label(wait, 'µs')}"
        if int(table.loc[kernel, "lock_taken"]) == 0:
            writers = "no callback\ntook the lock"
        labels.append(f"{_kernel_tick(kernel)}\n{writers}")
    ax_split.set_xticks(range(len(order)), labels, fontsize="small")
    return ax_cdf


# --------------------------------------------------------------------------------------------
# How far the headline moves: kvmviz.experiments.sensitivity as a tornado.
# --------------------------------------------------------------------------------------------
def _axis_title(metric: str) -> str:
    what, unit, _factor = _METRICS.get(metric, (metric, "", 1.0))
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
    order = sorted(parameters, key=lambda p: (width[p], parameters.index(p)))
    step = 0.8 / max(len(kernels), 1)
    for ax, metric in zip(axes, metrics, strict=True):
        factor = _METRICS.get(metric, (metric, "", 1.0))[2]
        right = 0.0
        for y, parameter in enumerate(order):
            part = table[table["parameter"] == parameter]
            for j, kernel in enumerate(kernels):
                rows = part[part["kernel"] == kernel]
                style = theme.kernel_style(kernel)
                yy = y + (j - (len(kernels) - 1) / 2) * step
                low, high = factor * rows[metric].min(), factor * rows[metric].max()
                right = max(right, high)
                ax.plot(
                    [low, high], [yy, yy], color=style["color"], linewidth=4,
                    solid_capstyle="butt", label=style.get("label", kernel) if y == 0 else None,
                    gid=f"range|{kernel}|{parameter}",
                )  # fmt: skip
                default = rows[rows["is_default"]][metric]
                page = theme.color("background")
                if len(default):
                    ax.plot(
                        [factor * float(default.iloc[0])], [yy], "o", color=page,
                        markeredgecolor=style["color"], markersize=5, zorder=3,
                    )  # fmt: skip
                words = _NONE_WORDS.get(metric)
                none = "brownout_mean" in rows and bool((rows["brownout_mean"] == 0).all())
                if metric in _PERCENTILES and not none:
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
        ax.set_xlabel(_axis_title(metric))
        # A little left of 0, so that the dot of a default at 0 is drawn whole.
        ax.set_xlim(-0.015 * (right or 1.0), None)
        ax.grid(axis="y", visible=False)
    labels = []
    for parameter in order:
        values = table.loc[table["parameter"] == parameter, "value"]
        labels.append(_parameter_label(parameter, values))
    axes[0].set_yticks(range(len(order)), labels, fontsize="small")
    styles = [theme.kernel_style(k) for k in kernels if k in KERNEL_STYLES]
    handles = [Line2D([], [], color=s["color"], linewidth=4, label=s["label"]) for s in styles]
    handles.append(
        Line2D([], [], marker="o", linestyle="", color=theme.color("background"),
               markeredgecolor=theme.color("strong"),
               label="default")
    )  # fmt: skip
    axes[-1].legend(handles=handles, loc="lower right", fontsize="small")
    return axes


# --------------------------------------------------------------------------------------------
# Sweeps: heatmaps and curves of kvmviz.experiments.grid tables.
# --------------------------------------------------------------------------------------------
_HEATMAP_CMAP = "YlOrBr"  # ColorBrewer sequential, colour-blind safe; orange means stalled


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
        linecolor=theme.color("background"),
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
    groups = rows.groupby([hue, x])[y]
    spread = int(groups.size().max()) if len(rows) else 0
    # A band too thin to see (under 1 % of the lines' range: every run about the same at every
    # point) needs no explaining.
    extent = float(rows[y].max() - rows[y].min()) if len(rows) else 0.0
    wide = extent > 0 and bool((groups.max() - groups.min()).gt(0.01 * extent).any())
    if errorbar is not None and spread >= 2 and wide:
        label = band_label or _band_text(errorbar, spread)
        band = Patch(facecolor="#999999", alpha=0.3, edgecolor="none", label=label)
        ax.legend(handles=[band], loc="best", fontsize="x-small")
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


# --------------------------------------------------------------------------------------------
# Saving.
# --------------------------------------------------------------------------------------------
FORMATS = ("svg", "png", "pdf")
"""The file formats :func:`save` writes."""

DENSE_VERTICES = 1_000
"""An artist with more vertices than this (a lane of a long timeline, thousands of notifier
ranges, a step line of a long run) is embedded in SVG and PDF files by :func:`save` as an
image at ``savefig.dpi``; so is one hatched with dots (the waits' ``"..."``: matplotlib writes
every dot of such a hatch as a curve, about 150 KB of SVG per colour). Everything else, text
above all, stays vector."""


@strict_booleans
def save(
    fig, path, *, formats=("svg", "png"), force: bool = False, transparent: bool = False
) -> list[Path]:
    """Write ``fig`` as ``path`` + each format, atomically and reproducibly.

    Every format is rendered in memory first, then written to a temporary file next to its
    target and renamed over it, so a failure (a bad format, a full disk) leaves no partial or
    half-written file behind. SVG and PDF carry no date, so the same figure gives the same
    bytes (with :func:`kvmviz.set_theme`, which fixes ``svg.hashsalt``).

    Under :func:`kvmviz.set_theme` (or its style sheets) SVG text stays text (``<text>``
    elements in DejaVu Sans, which a blog's reader can select, search and translate). In SVG
    and PDF, dense artists (more than :data:`DENSE_VERTICES` vertices: the lanes of a long
    timeline, thousands of notifier ranges) are embedded as images at ``savefig.dpi`` while
    the rest stays vector, so that the files stay small; PNG is drawn as it always is.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or Path
        Destination without suffix (a suffix is replaced).
    formats : sequence of {"svg", "png", "pdf"}
    force : bool
        Overwrite existing files; otherwise, if any target exists, raise ``FileExistsError``
        before writing anything.
    transparent : bool
        Leave the page out (the figure's and the axes' backgrounds), for a page of one's own
        colour. By default the figure's background (white in the light style, near black in
        the dark one; :data:`kvmviz.theme.BACKGROUND` if the figure has none) is baked in,
        whatever ``savefig.facecolor`` says. The boxes behind notes stay opaque either way.

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
        with _rasterized(fig, fmt in ("svg", "pdf")):
            fig.savefig(buffer, format=fmt, metadata=metadata, **_background(fig, transparent))
        rendered[fmt] = buffer.getvalue()
    write_atomic({t: rendered[fmt] for t, fmt in zip(targets, formats, strict=True)}, force=force)
    return targets


def _vertex_count(artist) -> int:
    """How many points an artist draws: a line's, a collection's paths' (or offsets')."""
    from matplotlib.collections import Collection

    if isinstance(artist, Line2D):
        return len(artist.get_xdata(orig=False))
    if isinstance(artist, Collection):
        paths = sum(len(path.vertices) for path in artist.get_paths())
        return max(paths, len(artist.get_offsets()))
    return 0


def _dense_artists(fig) -> list:
    """The visible artists of ``fig`` not rasterised yet that are costly as vectors: lines and
    collections with more than :data:`DENSE_VERTICES` vertices, and any hatched with dots."""
    from matplotlib.collections import Collection

    def dense(artist) -> bool:
        if not isinstance(artist, (Line2D, Collection, Patch)):
            return False
        if not artist.get_visible() or artist.get_rasterized():
            return False
        dotted = not isinstance(artist, Line2D) and any(
            dot in (artist.get_hatch() or "") for dot in ".oO*"
        )
        return dotted or _vertex_count(artist) > DENSE_VERTICES

    return fig.findobj(dense)


@contextlib.contextmanager
def _rasterized(fig, vector: bool):
    """Rasterise :func:`_dense_artists` while a vector file is written, then restore them.

    An artist inside a legend (an offset box) is drawn in the vector renderer's 72-dpi
    pixels even while matplotlib rasterises it at ``savefig.dpi`` (matplotlib 3.11), which
    would shrink it towards the corner; its transform is scaled up by the ratio meanwhile."""
    from matplotlib.offsetbox import DrawingArea
    from matplotlib.transforms import Affine2D

    dense = _dense_artists(fig) if vector else []
    boxed = {id(a) for box in fig.findobj(DrawingArea) for a in box.get_children()}
    dpi = plt.rcParams["savefig.dpi"]
    scale = Affine2D().scale((fig.dpi if dpi == "figure" else float(dpi)) / 72)
    moved = {id(a): Artist.get_transform(a) for a in dense if id(a) in boxed}
    try:
        for artist in dense:
            with warnings.catch_warnings():
                # SpanBars.draw is not marked as rasterisable, but the PolyCollection.draw it
                # calls is: the bars are rasterised, their "×n" labels stay text.
                warnings.filterwarnings("ignore", "Rasterization of", UserWarning)
                artist.set_rasterized(True)
            if id(artist) in moved:
                artist.set_transform(moved[id(artist)] + scale)
        yield dense
    finally:
        for artist in dense:
            artist.set_rasterized(False)
            if id(artist) in moved:
                artist.set_transform(moved[id(artist)])


def _background(fig, transparent: bool) -> dict:
    """The savefig arguments that bake the figure's page in, or leave every page out."""
    if transparent:
        return {"transparent": True}
    face = fig.get_facecolor()
    if face[3] == 0:  # a figure without a page: the light style's
        face = theme.BACKGROUND
    return {"transparent": False, "facecolor": face, "edgecolor": face}
