"""The memslot maps: the VMM's address space with its memslots and the notifier ranges on it,
on a compressed hva axis (:func:`memslot_map`), and the guest-physical side, where the hits land
(:func:`gfn_map`). :func:`map_parts` gives a live view the axis and the bars a map drew.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.text import Text

from .._shared._checks import strict_booleans
from .._shared._prose import size_bytes
from ..inputs.memslots import PAGE_SHIFT
from ..model import classify
from . import theme
from .address_axis import AddressAxis, spanning
from .map_labels import Declutter, axis_labels
from .span_bars import MIN_SPAN_PT, SpanBars
from .theme import HATCHES

__all__ = ["RANGE_STYLE", "MapParts", "gfn_map", "map_parts", "memslot_map"]


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
    Which one is decided when the figure is drawn (:class:`Declutter`), from the sizes on
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


def _declutter(ax) -> Declutter:
    """Keep the labels of a memslot map (slots, then the VMM's own memory, then the marks of
    cut-out gaps) from running into each other (:class:`Declutter`)."""
    order = {"slot-label": 0, "vmm-label": 1, "gap": 2}
    texts = sorted((t for t in ax.texts if t.get_gid() in order), key=lambda t: order[t.get_gid()])
    keeper = Declutter(ax, texts)
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
        ax, ax_gfn = _map_pair(layout, notifiers, ax)
        memslot_map(layout, notifiers, ax=ax, max_ranges=max_ranges, regions=regions, counts=counts)
        gfn_map(layout, notifiers, ax=ax_gfn, max_ranges=max_ranges, counts=counts)
        return ax
    ax = ax or plt.gca()
    ranges, other = None, []
    if notifiers is not None and len(notifiers):
        ranges = classify.first_callbacks(notifiers).head(max_ranges)
        other = list(zip(ranges["hva_start"], ranges["hva_end"], strict=True))
    axis = AddressAxis.of_layout(layout, other, regions)
    as_ids = sorted({s.as_id for s in layout})
    _draw_hva_slots(ax, layout, axis, as_ids)
    top = len(as_ids)
    ax.set_xlim(-0.05, axis.total + 0.05)
    legend = [] if ranges is None else _draw_ranges(ax, axis, ranges, top, counts=counts)
    axis_labels(ax, _hva_segments(ax, layout, axis, top))
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


def _map_pair(layout, notifiers, ax) -> tuple:
    """The ``(hva_ax, gfn_ax)`` of ``memslot_map(..., gfn_view=True)``: the pair given, or a
    new two-row figure sized for the layout's address spaces."""
    if ax is None:
        rows = len({s.as_id for s in layout})
        _fig, (ax, ax_gfn) = plt.subplots(
            2,
            1,
            figsize=(10, 2.2 + 1.1 * rows),
            height_ratios=[rows + (notifiers is not None), rows],
            layout="constrained",
        )
        return ax, ax_gfn
    if isinstance(ax, Axes):
        raise ValueError("gfn_view=True needs a pair of axes (hva_ax, gfn_ax) or ax=None")
    ax, ax_gfn = ax
    return ax, ax_gfn


def _lanes(layout, as_ids) -> tuple[dict, dict]:
    """``(lane_of, lanes_in)``: each slot's lane within its address space's row, and how many
    lanes each row has. Slots whose hvas overlap in one address space (QEMU's isa-bios aliases
    the top of pc.bios) are stacked in lanes within their row."""
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
    return lane_of, lanes_in


def _draw_hva_slots(ax, layout, axis: AddressAxis, as_ids: list) -> None:
    """Each memslot as a green bar on the hva axis, one row per address space, labelled with
    its slot id and size and, where there is room, its gfn range."""
    to_x = axis.x
    row_of = {as_id: i for i, as_id in enumerate(as_ids)}
    lane_of, lanes_in = _lanes(layout, as_ids)
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


def _draw_ranges(ax, axis: AddressAxis, ranges, top: int, *, counts: bool) -> list:
    """The notifier ranges on the row above the ``top`` address-space rows, one
    :class:`SpanBars` per kind, kept for :func:`map_parts`; returns the legend's
    ``(handle, label)`` entries."""
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
        if not counts or _merge_expected(ax, spans[key], axis.total + 0.1)
    ]
    _MAPS[ax] = MapParts(axis=axis, bars=bars, rows=top)
    return _range_handles(spans, counts=counts, merged=merged)


def _hva_segments(ax, layout, axis: AddressAxis, top: int) -> list[tuple[float, str]]:
    """Mark the cut-out gaps between the hva axis's segments (``//``) and name the segments
    that hold no memslot (the VMM's own memory); returns the first address of each cluster,
    ``(x, text)``, to write under the axis."""
    previous_end, labels = None, []
    for a, b, x0, width in axis.segments:
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
    return labels


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
    to_x = axis.x
    ax.set_xlim(-0.05, axis.total + 0.05)
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
        reached = _reached(layout, ranges, as_ids)
        n_wide = _draw_gfn_hits(ax, axis, reached, row_of)
        n_reached = sum(len(x) for x in reached.values())
        handles += _hit_handles(len(ranges), n_reached, n_wide, counts=counts)
    axis_labels(ax, _gfn_segments(ax, axis, len(as_ids)))
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


def _reached(layout, hits, as_ids) -> dict[int, list[tuple[int, int]]]:
    """The gfn ranges the notifier ``hits`` reach, by address space, as
    ``__kvm_handle_hva_range()`` computes them (:meth:`MemslotLayout.gfn_ranges`): an hva
    aliased in both address spaces reaches both."""
    reached: dict[int, list[tuple[int, int]]] = {as_id: [] for as_id in as_ids}
    for a, b in zip(hits["hva_start"], hits["hva_end"], strict=True):
        for gfns in layout.gfn_ranges(int(a), int(b)):
            reached[gfns.as_id].append((gfns.gfn_start, gfns.gfn_end))
    return reached


def _draw_gfn_hits(ax, axis: AddressAxis, reached: dict, row_of: dict) -> int:
    """The gfn ranges ``reached`` above each address space's slots, those spanning smaller
    ones under them; returns how many span smaller ones."""
    to_x = axis.x
    n_wide = 0
    for as_id in row_of:
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
    return n_wide


def _hit_handles(n_hits: int, n_reached: int, n_wide: int, *, counts: bool) -> list:
    """The gfn map's legend entries for what the hits reach, only where something is drawn."""
    handles = []
    if n_reached:  # the legend lists what is drawn, and no hit reaches nothing
        label = "guest frames reached by notifier hits"
        if counts:
            label = (
                f"guest frames reached by {n_hits:,} notifier "
                f"{'hit' if n_hits == 1 else 'hits'} ({n_reached:,} gfn "
                f"{'range' if n_reached == 1 else 'ranges'})"
            )
        handles.append(Patch(label=label, **RANGE_STYLE["hit"]))
    if n_wide:
        label = "gfn ranges spanning smaller ones, drawn under them"
        handles.append(Patch(label=label + (f" ({n_wide:,})" if counts else ""),
                             **RANGE_STYLE["wide"]))  # fmt: skip
    return handles


def _gfn_segments(ax, axis: AddressAxis, n_rows: int) -> list[tuple[float, str]]:
    """Mark the cut-out gaps between the gfn axis's memslots (``//``); returns the first gfn
    of each slot, ``(x, text)``, to write under the axis."""
    previous_end, labels = None, []
    for start, end, x0, _width in axis.segments:
        labels.append((x0, f"{start >> PAGE_SHIFT:#x}"))
        if previous_end is not None and previous_end != start:
            miss = theme.color("miss")
            ax.text(x0 - 0.25, n_rows / 2, "//", ha="center", va="center", color=miss, gid="gap")
        previous_end = end
    return labels


def _as_name(as_id: int) -> str:
    return "as_id 1 (SMM)" if as_id == 1 else f"as_id {as_id}"
