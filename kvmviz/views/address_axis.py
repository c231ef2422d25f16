"""The compressed address axis of the memslot maps, one object the views share.

A VM's memslots and the ranges notifiers touch are scattered over a 2^47-byte address space: a
4 KiB ROM beside 12 TiB of RAM, VMM heap terabytes away. :class:`AddressAxis` cuts that space
into the segments worth drawing and maps an address to an x coordinate.
:func:`kvmviz.plot.memslot_map` draws on one; the memslot animation
(:func:`kvmviz.animate.memslot_animation`) and the toggle dashboard
(:class:`kvmviz.widgets.ToggleDashboard`) place their moving ranges on the same axis, and the
notifier row's place (:meth:`AddressAxis.notifier_row`) is defined here once, so that no view
copies another's numbers or finds another's artists by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["NOTIFIER_ROW", "AddressAxis", "spanning"]

# Where the notifier ranges' row sits above the memslot rows, in data units: its bottom this
# far above the last address space's row, and this high (room above it for the hit marks).
NOTIFIER_ROW = (0.15, 0.6)


@dataclass(frozen=True)
class AddressAxis:
    """Segments of an address space laid side by side, each linear inside.

    Every memslot (overlapping slots, such as SMM aliases, merged) is a segment; ranges outside
    every slot are grouped into segments of their own when less than ``cluster_gap`` apart.
    Each segment is drawn linearly inside, with a width growing with the log of its size, so a
    4 KiB ROM and 12 TiB of RAM are both visible; gaps between segments are cut out (half a
    unit each). A segment outside every slot starts half as wide as a slot's: VMM memory that
    only a spurious notification touches should not outweigh the memslots the map is about.

    Attributes
    ----------
    segments : tuple of (int, int, float, float)
        ``(start, end, x0, width)`` of each segment, in address order.
    total : float
        The x extent of all segments and gaps.
    """

    segments: tuple[tuple[int, int, float, float], ...]
    total: float

    @classmethod
    def of(
        cls,
        slot_intervals: Iterable[tuple[int, int]],
        other_intervals: Iterable[tuple[int, int]] = (),
        cluster_gap: int = 1 << 30,
    ) -> AddressAxis:
        """The axis of memslots ``slot_intervals`` and other ranges ``other_intervals``.

        Parameters
        ----------
        slot_intervals : iterable of (int, int)
            ``[start, end)`` of each memslot, in bytes (hva, or gpa for a gfn map).
        other_intervals : iterable of (int, int)
            Notifier ranges and other regions (the VMM's heap) to give room to.
        cluster_gap : int
            Ranges outside every slot closer than this share a segment.

        Returns
        -------
        AddressAxis
        """
        slot_intervals = list(slot_intervals)
        other_intervals = list(other_intervals)

        others = [(int(a), int(b)) for a, b in other_intervals]

        def overlaps(r, segments) -> bool:
            return any(r[0] < hi and lo < r[1] for lo, hi in segments)

        # A range that crosses a slot's end widens that slot's segment (overlap merge, no
        # gap), and a range crossing the widened part widens it again, until none does: a
        # range is either inside one segment or outside all of them, never across an edge.
        segments = _merge([(int(a), int(b)) for a, b in slot_intervals])
        while True:
            widened = _merge(
                [tuple(x) for x in segments] + [r for r in others if overlaps(r, segments)]
            )
            if widened == segments:
                break
            segments = widened
        outside = [r for r in others if not overlaps(r, segments)]
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

        return cls(tuple(placed), pos)

    @classmethod
    def of_layout(cls, layout, ranges: Iterable[tuple[int, int]] = (), regions=()) -> AddressAxis:
        """The hva axis of :func:`kvmviz.plot.memslot_map` for ``layout``, with room for the
        notifier ``ranges`` and other ``regions`` (``(hva_start, hva_end)`` each)."""
        slots = [(s.hva_start, s.hva_end) for s in layout]
        return cls.of(slots, [*ranges, *regions])

    def x(self, address: int) -> float:
        """The x coordinate of ``address``.

        Raises
        ------
        ValueError
            If the address lies in no segment.
        """
        for a, b, x0, width in self.segments:
            if a <= address <= b:
                return x0 + width * (address - a) / max(b - a, 1)
        raise ValueError(f"hva {address:#x} is outside every drawn segment")

    __call__ = x

    def spans(self, ranges) -> dict[str, list[tuple[float, float]]]:
        """``(x, width)`` of each range on the axis, by kind: ``"hit"``, ``"wide"`` (a hit
        that spans smaller hits: drawn pale, under them) and ``"miss"``.

        Parameters
        ----------
        ranges : pandas.DataFrame
            With ``hva_start``, ``hva_end`` and ``hit`` columns (one row per notification:
            :func:`kvmviz.classify.first_callbacks`).

        Returns
        -------
        dict of str to list of (float, float)
        """
        out: dict[str, list[tuple[float, float]]] = {"hit": [], "wide": [], "miss": []}
        starts = ranges["hva_start"].to_numpy()
        ends = ranges["hva_end"].to_numpy()
        hit = ranges["hit"].to_numpy(dtype=bool)
        wide = np.zeros(len(ranges), dtype=bool)
        wide[hit] = spanning(starts[hit], ends[hit])
        for a, b, is_hit, is_wide in zip(starts, ends, hit, wide, strict=True):
            x0, x1 = self.x(int(a)), self.x(int(b))
            kind = ("wide" if is_wide else "hit") if is_hit else "miss"
            out[kind].append((x0, x1 - x0))  # to scale: SpanBars widens it on screen
        return out

    @staticmethod
    def notifier_row(rows: int) -> tuple[float, float]:
        """``(y0, height)`` of the notifier ranges' row above ``rows`` address-space rows."""
        return rows + NOTIFIER_ROW[0], NOTIFIER_ROW[1]


def spanning(starts: Sequence[int], ends: Sequence[int]) -> np.ndarray:
    """Which ranges ``[start, end)`` strictly contain a smaller one of the others.

    O(n log n): with the distinct ranges sorted by start, then end descending, a range
    contains a smaller one exactly when some range after it ends at or before its end."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if starts.size < 2:
        return np.zeros(starts.size, dtype=bool)
    pairs, inverse = np.unique(np.column_stack([starts, -ends]), axis=0, return_inverse=True)
    unique_ends = -pairs[:, 1]
    after = np.append(np.minimum.accumulate(unique_ends[::-1])[::-1][1:], np.iinfo(np.int64).max)
    return (after <= unique_ends)[inverse.reshape(-1)]


def _merge(intervals, gap=0):
    """Sorted intervals, those closer than ``gap`` (overlapping, with 0) merged."""
    out: list[list[int]] = []
    for a, b in sorted(intervals):
        if out and a < out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out
