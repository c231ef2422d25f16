"""The memslot maps' address axis: one object the map, the animation and the dashboard share."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kvmviz as kv
from kvmviz import plot
from kvmviz.address_axis import NOTIFIER_ROW, AddressAxis

PAGE = 4096
intervals = st.lists(
    st.tuples(st.integers(0, 2**40), st.integers(1, 2**34)).map(lambda p: (p[0], p[0] + p[1])),
    min_size=1,
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(slots=intervals, others=st.lists(intervals.map(lambda x: x[0]), max_size=6))
def test_the_axis_keeps_address_order_and_holds_every_interval(slots, others):
    """Segments are disjoint and in address order, laid left to right from 0 to ``total``;
    every slot and range lies inside one segment; ``x`` grows with the address."""
    axis = AddressAxis.of(slots, others)
    starts = [a for a, _b, _x, _w in axis.segments]
    assert starts == sorted(starts)
    for (_a0, b0, x0, w0), (a1, _b1, x1, _w1) in zip(
        axis.segments, axis.segments[1:], strict=False
    ):
        assert b0 <= a1  # disjoint
        assert x1 >= x0 + w0  # laid out left to right, a gap (0.5) where addresses jump
        assert x1 == pytest.approx(x0 + w0 + (0.5 if a1 != b0 else 0.0))
    last = axis.segments[-1]
    assert axis.total == pytest.approx(last[2] + last[3])
    for a, b in [*slots, *others]:
        assert any(s <= a and b <= e for s, e, _x, _w in axis.segments)
        # the segment's end lands on total up to rounding (width * n / n may be 1 ulp over)
        assert 0.0 <= axis.x(a) <= axis.x(b) <= axis.total * (1 + 1e-12)


def test_a_small_slot_and_a_huge_one_are_both_visible():
    """Width grows with the log of the size: a 4 KiB ROM is one unit, 12 TiB of RAM about five
    and a half; VMM memory outside every slot starts at half a unit."""
    rom, ram, heap = (0, PAGE), (2**40, 2**40 + 12 * 2**40), (2**46, 2**46 + PAGE)
    axis = AddressAxis.of([rom, ram], [heap])
    widths = {(a, b): w for a, b, _x, w in axis.segments}
    assert widths[rom] == 1.0
    assert widths[ram] == pytest.approx(1.0 + np.log2(12 * 2**40 / PAGE) / 8)
    assert widths[heap] == 0.5


def test_an_address_outside_every_segment_is_refused():
    axis = AddressAxis.of([(0, PAGE)])
    with pytest.raises(ValueError, match="outside every drawn segment"):
        axis.x(2**30)


def test_spans_sort_ranges_by_kind():
    """A miss, a hit, and a hit spanning that hit: ``spans`` files them under miss, hit and
    wide, at the x the axis gives."""
    slot = (2**30, 2**31)
    axis = AddressAxis.of([slot], [(2**33, 2**33 + PAGE)])
    ranges = pd.DataFrame(
        {
            "hva_start": [2**33, 2**30 + PAGE, 2**30],
            "hva_end": [2**33 + PAGE, 2**30 + 2 * PAGE, 2**30 + 2**21],
            "hit": [False, True, True],
        }
    )
    spans = axis.spans(ranges)
    assert [len(spans[k]) for k in ("miss", "hit", "wide")] == [1, 1, 1]
    x0 = axis.x(2**30 + PAGE)
    assert spans["hit"][0] == pytest.approx((x0, axis.x(2**30 + 2 * PAGE) - x0))


def test_the_map_gives_its_axis_bars_and_row_to_whoever_moves_them():
    """``plot.map_parts`` hands over the axis memslot_map drew on (the same segments as one
    built from the same layout and ranges), its notifier bars by kind, and the row they sit in
    (``NOTIFIER_ROW`` above the address spaces); an axes without such a map is refused."""
    run = kv.simulate(kv.Scenario(n_vcpus=4, duration_us=2_000), "v5.13", seed=0)
    _fig, ax = plt.subplots()
    try:
        plot.memslot_map(run.scenario.layout, run.notifiers, ax=ax)
        parts = plot.map_parts(ax)
        ranges = kv.classify.first_callbacks(run.notifiers)
        pairs = list(zip(ranges["hva_start"], ranges["hva_end"], strict=True))
        assert parts.axis == AddressAxis.of_layout(run.scenario.layout, pairs)
        assert set(parts.bars) == {"hit", "wide", "miss"}
        assert all(bars in ax.collections for bars in parts.bars.values())
        rows = len({s.as_id for s in run.scenario.layout})
        assert parts.rows == rows
        assert parts.notifier_row == (rows + NOTIFIER_ROW[0], NOTIFIER_ROW[1])
        _fig, other = plt.subplots()
        with pytest.raises(ValueError, match="no memslot map"):
            plot.map_parts(other)
    finally:
        plt.close("all")
