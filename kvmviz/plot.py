"""Static figures, each ``f(data, *, ax=None) -> Axes``, drawn from a run's tidy tables.

None of them simulates: pass :class:`~kvmviz.engine.Run` objects (or a ``{kernel: Run}``
mapping) made elsewhere. Call :func:`kvmviz.set_theme` first for the house look.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, NullFormatter

from .metrics import brownout as brownout_curve
from .theme import COLORS, HATCHES, KERNEL_STYLES

__all__ = ["brownout", "memslot_map", "restyle", "save", "stall_cdf", "update"]

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
    base = dict(KERNEL_STYLES.get(label, {"color": COLORS["read"], "linestyle": "-"}))
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
    segments = sorted(segments + merge(outside, cluster_gap))
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


def memslot_map(layout, notifiers=None, *, ax=None, max_ranges: int = 400, regions=()):
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
    regions : sequence of (hva_start, hva_end), optional
        Other stretches of the address space to draw as segments even with no range on them
        (e.g. :data:`kvmviz.presets.VMM_HEAP`), so that the axis does not depend on the ranges.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
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
        ax.add_patch(
            Rectangle(
                (x0, y),
                max(x1 - x0, 0.004),
                height,
                facecolor=COLORS["memslot"],
                edgecolor="white",
                linewidth=0.8,
            )
        )
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
    previous_end = None
    for a, b, x0, width in placed:
        if previous_end != a:
            ax.text(x0, -0.08, f"{a:#x}", ha="left", va="top", fontsize="xx-small")
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


def save(fig, path, *, formats=("svg", "png"), force: bool = False) -> list[Path]:
    """Write ``fig`` as ``path`` + each format, atomically and reproducibly.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or Path
        Destination without suffix (a suffix is replaced).
    formats : sequence of {"svg", "png", "pdf"}
    force : bool
        Overwrite existing files; otherwise an existing file raises ``FileExistsError``.

    Returns
    -------
    list of Path
    """
    base = Path(path)
    targets = [base.with_suffix("." + f) for f in formats]
    if not force:
        existing = [str(t) for t in targets if t.exists()]
        if existing:
            raise FileExistsError(f"refusing to overwrite {', '.join(existing)} (pass force=True)")
    written = []
    for target, fmt in zip(targets, formats, strict=True):
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        metadata = (
            {"Date": None} if fmt == "svg" else ({"CreationDate": None} if fmt == "pdf" else {})
        )
        fig.savefig(buffer, format=fmt, metadata=metadata)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(buffer.getvalue())
        os.replace(tmp, target)
        written.append(target)
    return written
