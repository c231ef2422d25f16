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
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from .kernels import CALLBACKS, KERNELS
from .memslots import PAGE_SHIFT
from .metrics import brownout as brownout_curve
from .metrics import summarize
from .theme import COLORS, HATCHES, KERNEL_STYLES, POLICY_STYLES

__all__ = [
    "brownout",
    "compare_kernels",
    "contention_table",
    "contention_text",
    "gfn_map",
    "lock_timeline",
    "memslot_map",
    "restyle",
    "retry_timeline",
    "save",
    "stall_cdf",
    "update",
]

_WAIT_FLOOR_US = 0.1  # waits below this are drawn at the floor of the log axis


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
    4 KiB ROM and 12 TiB of RAM are both visible; gaps between segments are cut out.
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
    segments = sorted(segments + clusters)
    placed, pos, prev_end = [], 0.0, None
    for a, b in segments:
        if prev_end is not None and a != prev_end:
            pos += 0.5  # a cut-out gap
        width = 1.0 + np.log2(max(b - a, 4096) / 4096) / 8
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
        spans[bool(hit)].append((x0, max(x1 - x0, 0.006)))
    return spans


def memslot_map(
    layout, notifiers=None, *, ax=None, max_ranges: int = 400, regions=(), gfn_view: bool = False
):
    """The VMM's address space with its memslots and, optionally, notifier ranges on it.

    The hva axis is compressed: each cluster of memslots and notifier ranges is drawn to its own
    scale and the (huge) gaps between clusters are cut out (``//``). Memslots are green bars,
    one row per address space, labelled with slot id and gfn range. Notifier ranges are drawn
    above: vermilion where they hit a memslot (KVM must zap, and takes ``mmu_lock``), grey and
    hatched where they miss.

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
        memslot_map(layout, notifiers, ax=ax, max_ranges=max_ranges, regions=regions)
        gfn_map(layout, notifiers, ax=ax_gfn, max_ranges=max_ranges)
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
        if x1 - x0 > 0.5:
            label = f"slot {slot.slot}\n{_size(slot.size_bytes)}"
            if x1 - x0 > 2.5 and lanes_in[slot.as_id] == 1:
                label = f"slot {slot.slot}, {_size(slot.size_bytes)}"
                label += f"\ngfn {slot.base_gfn:#x}–{slot.gfn_end:#x}"
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
    top = len(as_ids)
    if ranges is not None:
        # One collection per kind (not a patch per range): a map of 400 ranges draws at once.
        spans = _notifier_spans(to_x, ranges)
        for hit, label in ((True, "notifier hits"), (False, "notifier misses (spurious)")):
            key = "hit" if hit else "miss"
            ax.broken_barh(
                spans[hit],
                (top + 0.15, 0.7),
                facecolor=COLORS[key],
                edgecolor=COLORS[key],
                hatch=HATCHES.get(key, ""),
                linewidth=0.5,
                alpha=0.9 if hit else 0.6,
                label=label,
                gid=f"notifiers-{key}",
            )
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
                f"VMM memory\n{_size(b - a)}",
                ha="center",
                va="center",
                fontsize="x-small",
                color=COLORS["miss"],
            )
        previous_end = b
    rows = [f"as_id {a}" for a in as_ids] + (["notifiers"] if ranges is not None else [])
    ax.set_yticks(np.arange(len(rows)) + 0.5, rows)
    ax.set_ylim(-0.35, len(rows))
    ax.set_xlim(-0.05, total + 0.05)
    ax.set_xticks([])
    ax.set_xlabel("host virtual address (hva), gaps between clusters cut out")
    ax.set_title("Memslots in the VMM's address space")
    if ranges is not None:
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize="small", ncol=2)
    ax.spines["left"].set_visible(False)
    return ax


def _first_callbacks(notifiers, max_ranges: int):
    ranges = notifiers.drop_duplicates("event") if "event" in notifiers else notifiers
    return ranges.head(max_ranges)


def gfn_map(layout, notifiers=None, *, ax=None, max_ranges: int = 400):
    """The guest-physical side of a layout: each address space's memslots on the gfn axis and,
    optionally, the guest frames that notifier hits reach.

    The gfn axis is compressed like the hva axis of :func:`memslot_map`: each memslot is drawn
    to its own scale, with a width growing with the log of its size, and the gaps between
    memslots are cut out (``//``); the first gfn of each slot is written under it.
    Memslots are green bars, one row per address space (as_id 1 is x86's SMM). Above each slot,
    vermilion marks show the gfn ranges a notifier hit reaches, computed exactly as
    ``__kvm_handle_hva_range()`` does (:meth:`MemslotLayout.gfn_ranges`): an hva aliased in both
    address spaces reaches both. Misses reach no guest frame, so they do not appear here.

    Parameters
    ----------
    layout : MemslotLayout
    notifiers : pandas.DataFrame, optional
        With ``hva_start, hva_end`` and ``hit`` columns (``Run.notifiers``); the first callback
        of each event is used, at most ``max_ranges`` events (the same as :func:`memslot_map`).
    ax : matplotlib.axes.Axes, optional
    max_ranges : int

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
        if x1 - x0 > 0.7:
            label = f"slot {slot.slot}"
            if x1 - x0 > 1.6:
                label += f", {_size(slot.size_bytes)}"
            ax.text(
                (x0 + x1) / 2,
                y + 0.25,
                label,
                ha="center",
                va="center",
                fontsize="x-small",
                color="white",
                clip_on=True,
            )
    handles = [Patch(facecolor=COLORS["memslot"], label="memslot")]
    if notifiers is not None and len(notifiers):
        ranges = _first_callbacks(notifiers, max_ranges)
        ranges = ranges[ranges["hit"].to_numpy(dtype=bool)]
        spans: dict[int, list[tuple[float, float]]] = {as_id: [] for as_id in as_ids}
        for a, b in zip(ranges["hva_start"], ranges["hva_end"], strict=True):
            for reached in layout.gfn_ranges(int(a), int(b)):
                x0 = to_x(reached.gfn_start << PAGE_SHIFT)
                x1 = to_x(reached.gfn_end << PAGE_SHIFT)
                spans[reached.as_id].append((x0, max(x1 - x0, 0.006)))
        for as_id in as_ids:
            ax.broken_barh(
                spans[as_id],
                (row_of[as_id] + 0.62, 0.3),
                facecolor=COLORS["hit"],
                edgecolor=COLORS["hit"],
                linewidth=0.5,
                gid=f"gfn-hits-as{as_id}",
            )
        n_reached = sum(len(x) for x in spans.values())
        handles.append(
            Patch(
                facecolor=COLORS["hit"],
                label=f"guest frames reached by {len(ranges)} notifier hits "
                f"({n_reached} gfn ranges)",
            )
        )
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
    ax.set_xlabel("guest frame number (gfn, 4 KiB pages), gaps between memslots cut out")
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


def _spans(starts, widths, scale: float, min_width: float) -> list[tuple[float, float]]:
    return [(a * scale, max(w * scale, min_width)) for a, w in zip(starts, widths, strict=True)]


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


def _notifier_lane(ax, notifiers, start_us, end_us, y, height, scale, min_width):
    """The notifier lane of a timeline at ``y``: waits and write holds as bars, callbacks that
    skipped the lock as marks (an instant, shown if it falls in the window). Returns the
    callbacks shown."""
    arrive = notifiers["t_arrive_us"].to_numpy()
    locked = notifiers["locked"].to_numpy(dtype=bool)
    release = np.where(locked, notifiers["t_release_us"].to_numpy(), arrive)
    shown = notifiers[(arrive < end_us) & (release >= start_us)]
    taken = shown[shown["locked"].to_numpy(dtype=bool)]
    waited = taken[taken["wait_us"].to_numpy() > 0]
    ax.broken_barh(
        _spans(waited["t_arrive_us"], waited["wait_us"], scale, min_width),
        (y, height),
        gid="lane-notifier-wait",
        **_STATE_STYLE["wait"],
    )
    ax.broken_barh(
        _spans(taken["t_grant_us"], taken["hold_us"], scale, min_width),
        (y, height),
        gid="lane-notifier-write",
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

    Intervals shorter than 0.5 % of the window (a notifier's 40 ns hold, say) are drawn at that
    width, so that none disappears.

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
    min_width = 0.005 * (end_us - start_us) * scale
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
            ax_lanes.broken_barh(
                _spans(waited["t_request_us"], waited["wait_us"], scale, min_width),
                y,
                gid=f"lane-vcpu{v}-wait",
                **_STATE_STYLE["wait"],
            )
            ax_lanes.broken_barh(
                _spans(attempts["t_grant_us"], attempts["hold_us"], scale, min_width),
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

    _notifier_lane(ax_lanes, run.notifiers, start_us, end_us, 0.0, 0.8, scale, min_width)
    ax_lanes.set_yticks([0.4, *(t + height / 2 for t in ticks)], ["notifiers", *labels])
    ax_lanes.tick_params(axis="y", length=0)
    ax_lanes.set_ylim(ticks[-1] + height + 0.2 if ticks else 1.0, -0.2)
    ax_lanes.set_xlim(start_us * scale, end_us * scale)
    ax_lanes.spines["left"].set_visible(False)
    ax_lanes.set_title(title, loc="left")
    fault_mode = "write" if run.policy == "spinlock" else "read"  # the legacy MMU's lock
    handles = [
        Patch(label=f"fault holds mmu_lock\nfor {fault_mode}", **_STATE_STYLE["read"]),
        Patch(label="notifier holds it\nfor write", **_STATE_STYLE["write"]),
        Patch(label="waiting for it", **_STATE_STYLE["wait"]),
        Line2D([], [], linestyle="none", label="callback skips it", **_SKIP_MARK),
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
    umask = os.umask(0)
    os.umask(umask)
    temporaries: list[str] = []
    try:
        for target, payload in zip(targets, payloads, strict=True):
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            temporaries.append(tmp)
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a figure is for everyone
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
    min_width = 0.004 * (end_us - start_us)
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
        ax_lanes.broken_barh(
            _spans(waited["t_request_us"], waited["wait_us"], 1.0, min_width),
            (y, height),
            gid=f"lane-vcpu{v}-wait",
            **_STATE_STYLE["wait"],
        )
        ax_lanes.broken_barh(
            _spans(attempts["t_grant_us"], attempts["hold_us"], 1.0, min_width),
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

    shown = _notifier_lane(ax_lanes, run.notifiers, start_us, end_us, 0.2, height, 1.0, min_width)
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
    handles = [
        Line2D([], [], label="samples\nmmu_notifier_seq", **_SNAPSHOT_MARK),
        Line2D([], [], label="resolves the pfn\n(outside mmu_lock)", **_RESOLVE_STYLE),
        Patch(label="waits for mmu_lock", **_STATE_STYLE["wait"]),
        Patch(label="holds it for read", **_STATE_STYLE["read"]),
        Line2D([], [], label="must retry", **_RETRY_MARK),
        Patch(label="notifier holds it\nfor write", **_STATE_STYLE["write"]),
        Line2D([], [], linestyle="none", label="callback skips it", **_SKIP_MARK),
    ]
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
