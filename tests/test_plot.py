"""The static figures of kvmviz.plot: what each draws, checked on the artists themselves.

Small scenarios keep every simulation here well under a second; the sweep figures draw tables
made up by hand, so each cell and line has a value known in advance.
"""

from __future__ import annotations

import io
import os
import re
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from _artists import face, gids, legend_texts, min_px, screen_widths
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.colors import to_hex
from matplotlib.patches import Rectangle

import kvmviz as kv
from kvmviz import metrics, plot
from kvmviz._shared._prose import size_bytes
from kvmviz.address_axis import spanning
from kvmviz.presets import VMM_HEAP, large_vm_layout
from kvmviz.theme import (
    BEHIND_STYLES,
    COLORS,
    DARK_COLORS,
    DARK_KERNEL_STYLES,
    KERNEL_STYLES,
)
from kvmviz.views import metric_labels

SMALL = kv.Scenario(n_vcpus=16, duration_us=5_000, guest_run_us=20, notifier_rate_hz=5_000)
# The two setups of 8931a454ae's message at the same small size: on the static one v5.15 takes
# no lock and stalls nothing; on the volatile one it still stalls, behind hits only.
STATIC = kv.presets.static_setup(n_vcpus=16, duration_us=5_000, guest_run_us=20)
VOLATILE = kv.presets.volatile_setup(n_vcpus=16, duration_us=5_000, guest_run_us=20)


@pytest.fixture(scope="module")
def runs():
    """The small scenario on every kernel, same seed."""
    return {k: kv.simulate(SMALL, kernel=k, seed=1) for k in kv.KERNELS_2021}


@pytest.fixture(scope="module")
def static():
    """The small static setup on every kernel: v5.15 stalls nothing."""
    return {k: kv.simulate(STATIC, kernel=k, seed=1) for k in kv.KERNELS_2021}


@pytest.fixture(scope="module")
def volatile():
    """The small volatile setup on every kernel: every kernel stalls."""
    return {k: kv.simulate(VOLATILE, kernel=k, seed=1) for k in kv.KERNELS_2021}


def _visible_notes(ax) -> dict[str, str]:
    """The notes in words an axes shows now, by their gid."""
    return {
        t.get_gid(): t.get_text()
        for t in ax.texts
        if (t.get_gid() or "").startswith("note|") and t.get_visible()
    }


def _titles(ax) -> set[str]:
    return {ax.get_title(loc) for loc in ("left", "center", "right")}


# -- memslot maps ----------------------------------------------------------------------------


def _ranges(layout):
    """One range hitting slot 1 of the large VM and one in the VMM's own heap (a miss)."""
    ram = next(s for s in layout if s.slot == 1 and s.as_id == 0)
    return pd.DataFrame(
        {
            "event": [0, 1],
            "hva_start": np.array([ram.hva_start + 0x1000, VMM_HEAP[0]], dtype=np.uint64),
            "hva_end": np.array([ram.hva_start + 0x3000, VMM_HEAP[0] + 0x2000], dtype=np.uint64),
            "hit": [True, False],
        }
    )


def test_memslot_map_draws_one_bar_per_slot_and_hits_apart_from_misses():
    """One green rectangle per memslot; hits vermilion and misses grey, in their own
    collections (the dashboard finds them by gid)."""
    layout = large_vm_layout()
    fig, ax = plt.subplots()
    plot.memslot_map(layout, _ranges(layout), ax=ax)
    assert len(fig.axes) == 1
    slots = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_gid()]
    assert len(slots) == len(layout)
    assert {to_hex(p.get_facecolor()) for p in slots} == {COLORS["memslot"]}
    spans = gids(ax, "notifiers-")
    assert set(spans) == {"notifiers-hit", "notifiers-hit-wide", "notifiers-miss"}
    assert len(spans["notifiers-hit-wide"].get_paths()) == 0  # no hit spans another
    assert len(spans["notifiers-hit"].get_paths()) == 1
    assert len(spans["notifiers-miss"].get_paths()) == 1
    assert face(spans["notifiers-hit"]) == COLORS["hit"]
    # Misses: a grey hatch on a pale, opaque ground (overlaps do not darken into solid grey).
    assert face(spans["notifiers-miss"]) == COLORS["miss_face"]
    assert to_hex(spans["notifiers-miss"].get_edgecolor()[0]) == COLORS["miss"]
    assert spans["notifiers-miss"].get_alpha() is None
    assert spans["notifiers-miss"].get_hatch()  # grey-scale printing: hatched misses
    assert "hva" in ax.get_xlabel()


def test_gfn_view_draws_the_guest_physical_side_below():
    """With gfn_view the figure gets a second axes: the slots on the gfn axis, and each hit
    where its guest frames land; an SMM alias makes one hit reach both address spaces."""
    layout = large_vm_layout(smm=True)
    ax = plot.memslot_map(layout, _ranges(layout), gfn_view=True)
    hva_ax, gfn_ax = ax.figure.axes
    assert hva_ax is ax
    bars = [p for p in gfn_ax.patches if (p.get_gid() or "").startswith("gfn-memslot-")]
    assert len(bars) == len(layout)
    hits = gids(gfn_ax, "gfn-hits-")
    assert set(hits) == {"gfn-hits-as0", "gfn-hits-as1"}
    # The hit covers 2 pages of slot 1, aliased in as_id 0 and 1: one gfn range in each.
    assert [len(hits[g].get_paths()) for g in ("gfn-hits-as0", "gfn-hits-as1")] == [1, 1]
    assert face(hits["gfn-hits-as0"]) == COLORS["hit"]
    assert [t.get_text() for t in gfn_ax.get_yticklabels()] == ["as_id 0", "as_id 1 (SMM)"]
    assert "gfn" in gfn_ax.get_xlabel() and "4 KiB" in gfn_ax.get_xlabel()


def test_gfn_view_needs_two_axes():
    """gfn_view with one Axes is refused; with a pair, both are drawn on."""
    _fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="pair of axes"):
        plot.memslot_map(large_vm_layout(), ax=ax, gfn_view=True)
    _fig, axes = plt.subplots(2, 1)
    plot.memslot_map(large_vm_layout(), ax=axes, gfn_view=True)
    assert all(a.patches for a in axes)


def test_gfn_map_counts_every_gfn_range_of_a_run(runs):
    """Every hit of the run is drawn once per gfn range it reaches."""
    run = runs["v5.12"]
    _fig, ax = plt.subplots()
    plot.gfn_map(SMALL.layout, run.notifiers, ax=ax)
    events = run.notifiers.drop_duplicates("event")
    hits = events[events["hit"]]
    expected = sum(len(SMALL.layout.gfn_ranges(int(a), int(b))) for a, b in zip(
        hits["hva_start"], hits["hva_end"], strict=True
    ))  # fmt: skip
    drawn = sum(len(c.get_paths()) for c in gids(ax, "gfn-hits-").values())
    assert drawn == expected


# -- kernels side by side ---------------------------------------------------------------------


def test_kernel_bars_from_table_or_runs(volatile):
    """The per-kernel table (kv.metrics.kernel_table) and a {kernel: Run} mapping draw the
    same bars: by default the p99 stall per fault, each bar labelled in µs."""
    table = kv.metrics.kernel_table(volatile)
    _fig, (left, right) = plt.subplots(1, 2)
    plot.kernel_bars(table, ax=left)
    plot.kernel_bars(volatile, ax=right)
    for ax in (left, right):
        bars = [p for p in ax.patches if (p.get_gid() or "").startswith("bar|")]
        assert [b.get_gid() for b in bars] == [f"bar|{k}" for k in kv.KERNELS_2021]
        assert [to_hex(b.get_facecolor()) for b in bars] == [
            KERNEL_STYLES[k]["color"] for k in kv.KERNELS_2021
        ]
        np.testing.assert_allclose([b.get_height() for b in bars], table["stall_p99_us"])
        assert (table["stall_p99_us"] > 0).all()
        assert ax.get_ylabel() == "µs" and "p99 stall per fault" in _titles(ax)
        assert [t.get_text()[-3:] for t in ax.texts] == [" µs"] * 3
    assert [t.get_text().split("\n")[0] for t in left.get_xticklabels()] == list(kv.KERNELS_2021)


def test_kernel_bars_say_in_words_where_a_kernel_stalls_nothing(static):
    """On the static setup v5.15 stalls nothing: in place of its (empty) bar the brownout and
    p99 panels say "no fault stalled"; a count at 0 (locks taken) stays a number. A p99 of 0
    where some faults did stall (v5.12 and v5.13 here, under 1 % of their faults) says that
    instead, never "no fault stalled"."""
    table = kv.metrics.kernel_table(static)
    assert table.loc["v5.15", ["brownout_mean", "stall_p99_us", "lock_taken"]].eq(0).all()
    ax = plot.kernel_bars(table, metric="brownout_mean", ax=plt.subplots()[1])
    assert _visible_notes(ax) == {"note|v5.15": "no fault\nstalled"}
    assert (table.loc[["v5.12", "v5.13"], "stalled_share"] > 0).all()
    assert (table.loc[["v5.12", "v5.13"], "stall_p99_us"] == 0).all()
    ax = plot.kernel_bars(table, metric="stall_p99_us", ax=plt.subplots()[1])
    few = "0 µs: under\n1% of faults\nstalled"
    assert _visible_notes(ax) == {
        "note|v5.12": few, "note|v5.13": few, "note|v5.15": "no fault\nstalled"
    }  # fmt: skip
    ax = plot.kernel_bars(table, metric="lock_taken", ax=plt.subplots()[1])
    assert _visible_notes(ax) == {} and "0" in [t.get_text() for t in ax.texts]


def test_kernel_bars_on_shared_axes_fit_the_tallest_bar_of_all():
    """Figure 5.4: two panels sharing y, the right one's bars shorter. The limit fits the
    tallest bar of both (drawing the right panel last used to cut the left one's bars, and
    push their labels into the title); every value label is inside its axes."""
    left = pd.DataFrame({"faults_retried": [7_047, 7_049, 7_047]}, index=list(kv.KERNELS_2021))
    right = pd.DataFrame({"faults_retried": [6_186, 6_197, 0]}, index=list(kv.KERNELS_2021))
    fig, axes = plt.subplots(1, 2, sharey=True)
    for ax, table in zip(axes, (left, right), strict=True):
        plot.kernel_bars(table, ax=ax, metric="faults_retried")
    assert axes[0].get_ylim() == axes[1].get_ylim() == pytest.approx((0, 7_049 * 1.15))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in axes:
        box = ax.get_window_extent(renderer)
        for text in ax.texts:
            label = text.get_window_extent(renderer)
            assert box.y0 <= label.y0 and label.y1 <= box.y1, text.get_text()


def test_kernel_bars_draw_shares_in_percent(volatile):
    """A share (brownout_mean: the share of the VM's vCPU time stalled) is drawn in %, each
    bar labelled with a %; an unknown metric is refused."""
    ax = plot.kernel_bars(volatile, metric="brownout_mean", ax=plt.subplots()[1])
    heights = [p.get_height() for p in ax.patches]
    expected = [100 * kv.summarize(volatile[k])["brownout_mean"] for k in kv.KERNELS_2021]
    np.testing.assert_allclose(heights, expected)
    assert ax.get_ylabel() == "%" and all(t.get_text().endswith("%") for t in ax.texts)
    assert "share of the VM's vCPU time stalled" in _titles(ax)
    with pytest.raises(KeyError, match="no metric"):
        plot.kernel_bars(volatile, metric="p42")


# -- stall CDF, brownout and the dashboard's in-place update ---------------------------------
def _fake_run(waits, kernel="v5.12"):
    """The one table stall_cdf(per="attempt") reads: the waits of a run's fault attempts."""
    return SimpleNamespace(kernel=kernel, faults=pd.DataFrame({"wait_us": waits}))


def test_attempt_cdf_steps_to_each_wait_and_starts_with_the_attempts_that_never_waited():
    """Waits 0, 0, 1 and 3 µs, one per attempt: the curve is 0.5 at the floor (0.1 µs, the
    two that never waited), 0.75 from 1 µs and 1 from 3 µs, on a log axis labelled in µs."""
    ax = plot.stall_cdf(
        {"v5.12": _fake_run([3.0, 0.0, 1.0, 0.0])}, ax=plt.subplots()[1], per="attempt"
    )
    (line,) = ax.get_lines()
    assert line.get_gid() == "wait-cdf|v5.12" and line.get_drawstyle() == "steps-post"
    np.testing.assert_allclose(line.get_xdata(), [0.1, 0.1, 0.1, 1.0, 3.0])
    np.testing.assert_allclose(line.get_ydata(), [0.0, 0.25, 0.5, 0.75, 1.0])
    x, y = line.get_xdata(), line.get_ydata()
    at = {t: y[np.searchsorted(x, t, "right") - 1] for t in (0.1, 0.5, 1.0, 2.0, 3.0)}
    assert at == {0.1: 0.5, 0.5: 0.5, 1.0: 0.75, 2.0: 0.75, 3.0: 1.0}
    assert ax.get_xscale() == "log" and ax.get_xlim() == pytest.approx((0.08, 10.0))
    assert ax.get_ylim() == (0, 1.02)
    assert ax.get_xlabel().startswith("mmu_lock wait per fault attempt\n(µs")
    assert ax.get_ylabel() == "share of fault attempts"
    assert to_hex(line.get_color()) == KERNEL_STYLES["v5.12"]["color"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["v5.12 (always lock)"]
    assert _visible_notes(ax) == {}  # some attempts waited
    with pytest.raises(ValueError, match="per = 'vcpu'"):
        plot.stall_cdf({"v5.12": _fake_run([1.0])}, per="vcpu")


def test_fault_cdf_draws_each_faults_whole_stall(volatile):
    """By default one point per fault: its stall from kv.metrics.fault_stalls (its waits plus
    its retried attempts), not the waits of its attempts; the x axis says so, in µs."""
    run = volatile["v5.13"]
    stalls = metrics.fault_stalls(run)["stall_us"].to_numpy()
    assert metrics.fault_stalls(run)["retried_us"].sum() > 0  # retries count in the stall
    ax = plot.stall_cdf({"v5.13": run}, ax=plt.subplots()[1])
    (line,) = ax.get_lines()
    assert line.get_gid() == "cdf|v5.13"
    x, y = line.get_xdata(), line.get_ydata()
    assert x[-1] == pytest.approx(stalls.max()) and y[-1] == 1.0
    never = np.mean(stalls == 0)  # the height at the floor: the faults that never stalled
    assert y[np.searchsorted(x, 0.1, "right") - 1] == pytest.approx(never, abs=1 / len(stalls))
    assert ax.get_xlabel().startswith("stall per fault: mmu_lock waits + retried attempts\n(µs")
    assert ax.get_ylabel() == "share of faults" and "Fault stalls" in _titles(ax)


def test_stall_cdf_draws_a_million_attempts_with_at_most_2001_points():
    """10^6 waits (0..999,999 µs) are drawn through at most 2,001 points, the floor point
    first; the shape is kept: the last point is the longest wait at share 1, the median sits
    at half."""
    waits = np.arange(1_000_000, dtype=float)
    ax = plot.stall_cdf({"v5.15": _fake_run(waits, "v5.15")}, ax=plt.subplots()[1], per="attempt")
    x, y = ax.get_lines()[0].get_data()
    assert len(x) == 2_001
    assert (x[0], y[0]) == (0.1, 0.0) and (x[-1], y[-1]) == (999_999.0, 1.0)
    assert y[np.searchsorted(x, 500_000.0)] == pytest.approx(0.5, abs=1e-3)


def test_a_run_without_stalls_is_said_in_words():
    """No attempt at all, or none that waited: one step at the floor, and the note "v5.12: no
    fault attempt waited" beside it, in the kernel's colour (a line up the left edge reads as
    missing data). A wait of 0.05 µs is drawn at the floor too, but it is a wait: no note."""
    ax = plot.stall_cdf({"v5.12": _fake_run([])}, ax=plt.subplots()[1], per="attempt")
    assert ax.get_lines()[0].get_xydata().tolist() == [[0.1, 0.0]]
    assert _visible_notes(ax) == {"note|v5.12": "v5.12: no fault attempt waited"}
    ax = plot.stall_cdf({"v5.12": _fake_run([0.0, 0.0])}, ax=plt.subplots()[1], per="attempt")
    (note,) = [t for t in ax.texts if t.get_visible()]
    assert to_hex(note.get_color()) == KERNEL_STYLES["v5.12"]["color"]
    ax = plot.stall_cdf({"v5.12": _fake_run([0.0, 0.05])}, ax=plt.subplots()[1], per="attempt")
    assert _visible_notes(ax) == {}


def test_the_static_setup_says_v515_stalls_nothing_in_every_stall_figure(static):
    """On the static setup v5.15 takes no lock: the CDF, the brownout curve and the split say
    so in words, once each, and say nothing of the kernels that did stall."""
    _fig, (cdf, curve, split) = plt.subplots(1, 3)
    plot.stall_cdf(static, ax=cdf)
    plot.brownout_curve(static, ax=curve)
    plot.stall_split(static, ax=split)
    assert _visible_notes(cdf) == {"note|v5.15": "v5.15: no fault stalled"}
    assert _visible_notes(curve) == {"note|v5.15": "v5.15: no vCPU stalled"}
    assert _visible_notes(split) == {"note|v5.15": "no fault\nstalled"}
    line = next(x for x in curve.get_lines() if x.get_gid() == "brownout|v5.15")
    assert not line.get_ydata().any()  # the flat line the note explains


def test_update_shows_and_hides_the_notes_as_the_runs_change(static, volatile):
    """The dashboard's fast path: plot.update moving from the static to the volatile runs
    hides v5.15's notes (it stalls there), and moving back shows them again, on the same
    artists; restyle fades a note with its kernel."""
    _fig, (cdf, curve, split) = plt.subplots(1, 3)
    plot.stall_cdf(static, ax=cdf)
    plot.brownout_curve(static, ax=curve)
    plot.stall_split(static, ax=split)
    notes = {ax: ax.texts[:] for ax in (cdf, curve, split)}
    for ax in (cdf, curve, split):
        plot.update(ax, volatile, highlight="v5.15")
        assert _visible_notes(ax) == {}
    for ax in (cdf, curve, split):
        plot.update(ax, static, highlight="v5.12")
        assert "note|v5.15" in _visible_notes(ax)
        assert list(ax.texts) == notes[ax]  # the same artists
    note = next(t for t in cdf.texts if t.get_gid() == "note|v5.15")
    assert note.get_alpha() == 0.45  # v5.12 highlighted: v5.15 faint, its note too
    plot.restyle(cdf, highlight="v5.15")
    assert note.get_alpha() == 1.0


def test_notes_stack_from_the_corner_in_the_order_of_the_runs():
    """Two runs with no stall: their notes are one under the other from the top left, the
    first run's on top; with one, it takes the top place, whichever run it is."""
    runs = {"v5.12": _fake_run([0.0]), "v5.13": _fake_run([1.0]), "v5.15": _fake_run([0.0])}
    ax = plot.stall_cdf(runs, ax=plt.subplots()[1], per="attempt")
    notes = {t.get_gid(): t.xy[1] for t in ax.texts if t.get_visible()}
    assert notes == {"note|v5.12": pytest.approx(0.97), "note|v5.15": pytest.approx(0.89)}
    plot.update(ax, {"v5.12": _fake_run([2.0])})
    notes = {t.get_gid(): t.xy[1] for t in ax.texts if t.get_visible()}
    assert notes == {"note|v5.15": pytest.approx(0.97)}


def test_update_gives_the_same_lines_new_data_and_the_highlight(runs):
    """plot.update reuses the line artists and leaves them with exactly what a fresh draw of
    the new runs gives; the highlighted kernel is bold (2.6) and the others faint (1.2, alpha
    0.45), in the legend too. A label missing from the runs keeps its line."""
    other = {k: kv.simulate(SMALL.replace(spurious_share=0.5), kernel=k, seed=1) for k in runs}
    _fig, (ax, fresh) = plt.subplots(1, 2)
    plot.stall_cdf(runs, ax=ax)
    before = list(ax.get_lines())
    kept = before[0].get_xydata().copy()
    plot.update(ax, {k: other[k] for k in ("v5.13", "v5.15")}, highlight="v5.15")
    assert ax.get_lines() == before  # the same artists
    np.testing.assert_array_equal(before[0].get_xydata(), kept)  # v5.12 not in the new runs
    plot.stall_cdf(other, ax=fresh, highlight="v5.15")
    for updated, drawn in list(zip(ax.get_lines(), fresh.get_lines(), strict=True))[1:]:
        np.testing.assert_array_equal(updated.get_xydata(), drawn.get_xydata())
    assert [line.get_linewidth() for line in ax.get_lines()] == [1.2, 1.2, 2.6]
    assert [line.get_alpha() for line in ax.get_lines()] == [0.45, 0.45, 1.0]
    assert [h.get_linewidth() for h in ax.get_legend().get_lines()] == [1.2, 1.2, 2.6]
    plot.restyle(ax, highlight=None)
    assert [line.get_linewidth() for line in ax.get_lines()] == [1.8, 1.8, 1.8]


def test_update_moves_the_brownout_lines_to_the_new_runs(runs):
    """On a brownout axes, update sets each line to metrics.brownout of the new run: time in
    ms, the share of the VM's vCPUs stalled in %."""
    other = {k: kv.simulate(SMALL.replace(n_vcpus=8), kernel=k, seed=2) for k in runs}
    ax = plot.brownout_curve(runs, ax=plt.subplots()[1])
    plot.update(ax, other)
    curve = metrics.brownout(other["v5.13"])
    line = next(x for x in ax.get_lines() if x.get_gid() == "brownout|v5.13")
    np.testing.assert_allclose(line.get_xdata(), curve["t_us"] / 1000)
    np.testing.assert_allclose(line.get_ydata(), 100 * curve["stalled_share"])


def test_stall_views_label_their_axes_with_units(runs):
    """The CDF's x axis is in µs; the brownout's y in % of the VM's vCPUs, its x in ms, from
    0 to 100 %."""
    _fig, (a, b) = plt.subplots(1, 2)
    plot.stall_cdf(runs, ax=a)
    plot.brownout_curve(runs, ax=b)
    assert "µs" in a.get_xlabel()
    assert b.get_ylabel() == "share of the VM's vCPUs stalled (%)"
    assert b.get_xlabel() == "simulated time (ms)" and b.get_ylim() == (0, 100)
    assert [line.get_gid() for line in b.get_lines()] == [f"brownout|{k}" for k in kv.KERNELS_2021]


def test_the_legend_of_a_cdf_covers_no_line(static):
    """Figure 3.2's legend ran through a curve: it is placed where it covers the fewest lines
    (here, none of the drawn points falls inside it)."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    plot.stall_cdf(static, ax=ax)
    fig.canvas.draw()
    box = ax.get_legend().get_window_extent()
    for line in ax.get_lines():
        points = line.get_transform().transform(line.get_xydata())
        inside = (
            (points[:, 0] > box.x0) & (points[:, 0] < box.x1)
            & (points[:, 1] > box.y0) & (points[:, 1] < box.y1)
        )  # fmt: skip
        assert not inside.any(), line.get_gid()


def test_live_artists_are_what_update_changes(static):
    """plot.live_artists lists the lines, the notes, the split's bars and labels and the
    legend: everything a blitting view must redraw after update."""
    _fig, (cdf, split) = plt.subplots(1, 2)
    plot.stall_cdf(static, ax=cdf)
    plot.stall_split(static, ax=split)
    live = plot.live_artists(cdf)
    assert set(cdf.get_lines()) | {cdf.get_legend()} <= set(live)
    assert {t.get_gid() for t in live if t in cdf.texts} == {f"note|{k}" for k in kv.KERNELS_2021}
    live = plot.live_artists(split)
    assert {p.get_gid() for p in split.patches} <= {a.get_gid() for a in live}
    assert split.get_legend() in live


# -- sweeps: heatmaps and curves -------------------------------------------------------------
def _texts(ax):
    return [t.get_text() for t in ax.texts]


def _sweep_table():
    """Two kernels x 2 vCPU counts x 2 spurious shares x 2 seeds, with made-up measurements:
    p99 = vCPUs x share (x 1.5 on v5.12) + seed, brownout = p99 / 1000."""
    rows = []
    for kernel, scale in (("v5.12", 1.5), ("v5.15", 1.0)):
        for n in (8, 16):
            for share in (0.5, 1.0):
                for seed in (0, 1):
                    p99 = scale * n * share + seed
                    rows.append((kernel, n, share, seed, p99, p99 / 1000))
    columns = ["kernel", "n_vcpus", "spurious_share", "seed", "stall_p99_us", "brownout_mean"]
    return pd.DataFrame(rows, columns=columns)


def test_heatmap_writes_each_cell_averaged_over_seeds_dark_on_light_and_white_on_dark():
    """v5.12's cells are the mean of two seeds (p99 = 1.5 x vCPUs x share + 0.5): 6.5, 12.5,
    12.5 and 24.5 µs, written as "6.5", "12", "12", "24" (two significant digits under 10,
    whole numbers above). seaborn picks the text colour from the cell's luminance: near-black
    (#262626) on the light cells, white on the darkest; the scale starts at 0."""
    table = _sweep_table()
    v512 = table[table.kernel == "v5.12"]
    fig, ax = plt.subplots()
    plot.heatmap(v512, "spurious_share", "n_vcpus", "stall_p99_us", ax=ax)
    cells = {(t.get_position(), t.get_text(), to_hex(t.get_color())) for t in ax.texts}
    # seaborn puts the first row at the top (y = 0.5): the larger vCPU count, 16.
    assert cells == {
        ((0.5, 0.5), "12", "#262626"),
        ((1.5, 0.5), "24", "#ffffff"),
        ((0.5, 1.5), "6.5", "#262626"),
        ((1.5, 1.5), "12", "#262626"),
    }
    mesh = ax.collections[0]
    np.testing.assert_allclose(mesh.get_array().reshape(2, 2), [[12.5, 24.5], [6.5, 12.5]])
    assert mesh.get_clim() == (0.0, 24.5)
    assert to_hex(mesh.cmap(1.0)) == to_hex(plt.get_cmap("YlOrBr")(1.0))
    # y grows upwards on screen: the 8-vCPU row is below the 16-vCPU row.
    ticks = {t.get_text(): t.get_position()[1] for t in ax.get_yticklabels()}
    assert set(ticks) == {"8", "16"}
    screen = {k: ax.transData.transform((0, y))[1] for k, y in ticks.items()}
    assert screen["8"] < screen["16"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "1"]
    assert ax.get_xlabel() == "spurious_share" and ax.get_ylabel() == "n_vcpus"
    assert fig.axes[-1].get_ylabel() == "p99 stall per fault (µs)"  # the colour bar


def test_heatmap_shows_shares_in_percent_with_the_given_labels_and_scale():
    """A share (brownout_mean) is drawn in %: 0.0065 is "0.7", 0.0245 is "2.5"; vmax and the
    axis labels are as given, and colorbar=False draws no colour bar."""
    table = _sweep_table()
    ax = plot.heatmap(
        table[table.kernel == "v5.12"], "spurious_share", "n_vcpus", "brownout_mean",
        ax=plt.subplots()[1], vmax=10, labels={"n_vcpus": "vCPUs"}, colorbar=False,
    )  # fmt: skip
    assert sorted(_texts(ax)) == ["0.7", "1.2", "1.2", "2.5"]
    assert ax.collections[0].get_clim() == (0.0, 10.0)
    assert ax.get_ylabel() == "vCPUs"
    assert len(ax.figure.axes) == 1


def test_heatmap_leaves_a_missing_cell_blank():
    """A point with no measurement is masked: no text in its cell."""
    frame = pd.DataFrame({"a": [1, 2, 1], "b": [10, 10, 20], "stall_p99_us": [1.0, 2.0, 3.0]})
    ax = plot.heatmap(frame, "a", "b", "stall_p99_us", ax=plt.subplots()[1], colorbar=False)
    assert sorted(_texts(ax)) == ["1", "2", "3"]


def test_heatmaps_share_one_colour_scale():
    """One panel per kernel in the order asked, on one scale up to the largest cell of any
    (v5.12's 24.5 µs), one colour bar, and one x label under the row of panels."""
    fig = plot.heatmaps(
        _sweep_table(), "spurious_share", "n_vcpus", "stall_p99_us",
        order=["v5.12", "v5.15"], titles={"v5.12": "before"},
    )  # fmt: skip
    panels, colorbar = fig.axes[:2], fig.axes[2]
    # Where a title sits follows the theme (kv.set_theme puts it on the left): read any of them.
    titles = [ax.get_title("center") or ax.get_title("left") for ax in panels]
    assert titles == ["before", "v5.15"]
    assert [ax.collections[0].get_clim() for ax in panels] == [(0.0, 24.5), (0.0, 24.5)]
    assert sorted(_texts(panels[1])) == ["16", "4.5", "8.5", "8.5"]
    assert colorbar.get_ylabel() == "p99 stall per fault (µs)"
    assert [ax.get_xlabel() for ax in panels] == ["", ""]
    assert fig.get_supxlabel() == "spurious_share"
    assert panels[0].get_ylabel() == "n_vcpus" and panels[1].get_ylabel() == ""


def test_curves_average_the_seeds_and_band_their_spread():
    """Two seeds at each x: the line is their mean and the band runs from the lower to the
    higher seed (x=10: 1 and 3 µs; x=100: 2 and 6 µs); a hue with one seed has a line and no
    band. Each line is named at its right end, the marks are drawn, the axes labelled, and
    the log x axis has a tick at each value swept."""
    frame = pd.DataFrame(
        {
            "n": [10, 10, 100, 100, 10, 100],
            "how": ["linear"] * 4 + ["tree"] * 2,
            "stall_p99_us": [1.0, 3.0, 2.0, 6.0, 1.0, 1.0],
        }
    )
    ax = plot.curves(
        frame, "n", "stall_p99_us", hue="how", ax=plt.subplots()[1],
        styles={"tree": {"color": "#0173b2", "linestyle": "--", "marker": "s"}},
        marks={50: "old limit"},
    )  # fmt: skip
    lines = {line.get_gid(): line for line in ax.lines}
    assert set(lines) == {"curve|linear", "curve|tree", "mark|50"}
    np.testing.assert_allclose(lines["curve|linear"].get_xydata(), [[10, 2.0], [100, 4.0]])
    np.testing.assert_allclose(lines["curve|tree"].get_xydata(), [[10, 1.0], [100, 1.0]])
    tree = lines["curve|tree"]
    assert (tree.get_color(), tree.get_linestyle(), tree.get_marker()) == ("#0173b2", "--", "s")
    assert to_hex(lines["curve|linear"].get_color()) == "#333333"  # the first default style
    bands = {c.get_gid(): c for c in ax.collections}
    assert set(bands) == {"spread|linear", "spread|tree"}
    band = bands["spread|linear"].get_paths()[0].vertices
    bounds = {
        x: (band[band[:, 0] == x, 1].min(), band[band[:, 0] == x, 1].max()) for x in (10, 100)
    }
    assert bounds == {10: (1.0, 3.0), 100: (2.0, 6.0)}
    assert all(len(p.vertices) == 0 for p in bands["spread|tree"].get_paths())
    assert _texts(ax) == ["linear", "tree", "old limit"]
    assert ax.get_xscale() == "log" and ax.get_ylim()[0] == 0
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "100"]  # every x swept
    assert ax.get_xlabel() == "n" and ax.get_ylabel() == "p99 stall per fault (µs)"
    # The lines are named at their ends; the one legend entry says what the band is.
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "shaded: lowest to highest of the 2 runs at each point"
    ]


def test_curves_without_a_band_and_in_percent():
    """errorbar=None draws the lines alone; a share is drawn in % (0.25 -> 25)."""
    frame = pd.DataFrame({"n": [1, 1, 2, 2], "k": ["a"] * 4, "brownout_mean": [0.2, 0.3, 0.4, 0.6]})
    ax = plot.curves(frame, "n", "brownout_mean", hue="k", ax=plt.subplots()[1], logx=False,
                     errorbar=None)  # fmt: skip
    assert len(ax.collections) == 0  # no band
    assert ax.get_legend() is None  # nothing to explain: the lines are named at their ends
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [25.0, 50.0])
    assert ax.get_xscale() == "linear"
    assert ax.get_ylabel() == "share of the VM's vCPU time stalled (%)"


def test_the_band_of_curves_is_explained_in_a_legend():
    """Figure 6.4b's bands were unexplained: one legend entry says what they are, from the
    errorbar and the rows averaged, or as given; with one row per point, no band, no legend."""
    frame = pd.DataFrame({"n": [1, 1, 1, 2, 2, 2], "k": ["a"] * 6, "stall_p99_us": range(6)})
    ax = plot.curves(frame, "n", "stall_p99_us", hue="k", ax=plt.subplots()[1], errorbar="sd")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "shaded: ± one standard deviation of the 3 runs at each point"
    ]
    ax = plot.curves(frame, "n", "stall_p99_us", hue="k", ax=plt.subplots()[1],
                     band_label="shaded: seeds 0-2")  # fmt: skip
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["shaded: seeds 0-2"]
    same = frame.assign(stall_p99_us=1.0)  # every run alike: a band of no width
    ax = plot.curves(same, "n", "stall_p99_us", hue="k", ax=plt.subplots()[1])
    assert ax.get_legend() is None
    one = frame.drop_duplicates("n")
    assert plot.curves(one, "n", "stall_p99_us", hue="k", ax=plt.subplots()[1]).get_legend() is None


# -- saving -----------------------------------------------------------------------------------


def test_save_refuses_to_overwrite_and_writes_nothing(tmp_path):
    """An existing target stops save before it writes anything (and a bad format too);
    force=True overwrites, leaving no temporary file behind."""
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    (tmp_path / "f.png").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match=r"f\.png"):
        plot.save(fig, tmp_path / "f", formats=("svg", "png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]
    assert (tmp_path / "f.png").read_bytes() == b"mine"
    with pytest.raises(ValueError, match="formats"):
        plot.save(fig, tmp_path / "g", formats=("svg", "jpeg"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]
    written = plot.save(fig, tmp_path / "f", formats=("svg", "png"), force=True)
    assert written == [tmp_path / "f.svg", tmp_path / "f.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "f.svg"]  # no temporaries


def test_save_writes_readable_reproducible_files(tmp_path):
    """Saving one figure twice gives the same bytes (no date), a well-formed SVG, and
    files with the umask's permissions."""
    kv.set_theme("paper")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    a = plot.save(fig, tmp_path / "a", formats=("svg",))[0]
    b = plot.save(fig, tmp_path / "b", formats=("svg",))[0]
    assert a.read_bytes() == b.read_bytes()
    assert b"<dc:date>" not in a.read_bytes()
    ET.parse(a)
    umask = os.umask(0)
    os.umask(umask)
    assert a.stat().st_mode & 0o777 == 0o666 & ~umask


# -- clean files for a blog (issue 19 §2): text as text, the page baked in or left out ----------
def _line_figure():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [1, 0], label="v5.12")
    ax.set_title("a title")
    ax.set_xlabel("simulated time (µs)")
    return fig


def _corner(png) -> tuple:
    """The RGBA (0-255) of a PNG's top-left pixel."""
    return tuple(round(float(v) * 255) for v in plt.imread(png)[0, 0])


def test_saved_svg_keeps_its_text_as_text(tmp_path):
    """Under kv.set_theme an SVG's words are <text> elements in DejaVu Sans (selectable,
    searchable), not glyph outlines; the same figure saved twice gives the same bytes."""
    with matplotlib.rc_context():
        kv.set_theme("paper")
        fig = _line_figure()
        a = plot.save(fig, tmp_path / "a", formats=("svg",))[0]
        b = plot.save(fig, tmp_path / "b", formats=("svg",))[0]
    svg = a.read_bytes()
    assert svg == b.read_bytes()
    texts = [e for e in ET.fromstring(svg).iter() if e.tag.endswith("}text")]
    assert "".join(t.text or "" for t in texts).count("a title") == 1
    assert "simulated time (µs)" in [t.text for t in texts]
    assert b'<path id="DejaVuSans-' not in svg
    assert b"font-family: 'DejaVu Sans'" in svg
    with matplotlib.rc_context({"svg.fonttype": "path"}):  # the check can fail: paths are seen
        c = plot.save(fig, tmp_path / "c", formats=("svg",))[0].read_bytes()
    assert b'<path id="DejaVuSans-' in c and b"<text" not in c


@pytest.mark.parametrize("style", ["light", "dark"])
def test_save_bakes_the_styles_page_in_whatever_savefig_facecolor_says(tmp_path, style):
    """By default the figure's page is in the file: white for light, near black for dark, even
    with savefig.facecolor set to red afterwards (plot.save does not read it)."""
    with matplotlib.rc_context():
        kv.set_theme("paper", style=style)
        fig = _line_figure()
        matplotlib.rcParams["savefig.facecolor"] = "red"
        png, svg = plot.save(fig, tmp_path / "f", formats=("png", "svg"))
    page = kv.theme.BACKGROUND if style == "light" else kv.theme.DARK_BACKGROUND
    r, g, b = (int(page[i : i + 2], 16) for i in (1, 3, 5))
    assert _corner(png) == (r, g, b, 255)
    assert f'style="fill: {page}"'.encode() in svg.read_bytes()


def test_save_transparent_leaves_the_page_out(tmp_path):
    """transparent=True: the PNG's corner is see-through and the SVG's figure and axes
    backgrounds are unfilled, in either style."""
    for style in ("light", "dark"):
        with matplotlib.rc_context():
            kv.set_theme("paper", style=style)
            fig = _line_figure()
            png, svg = plot.save(fig, tmp_path / style, formats=("png", "svg"), transparent=True)
        assert _corner(png)[3] < 255
        root = ET.fromstring(svg.read_bytes())
        backgrounds = [
            g.find("{http://www.w3.org/2000/svg}path").get("style")
            for g in root.iter("{http://www.w3.org/2000/svg}g")
            if g.get("id") in ("patch_1", "patch_2")
        ]
        assert backgrounds == ["fill: none", "fill: none"]
        opaque = plot.save(fig, tmp_path / f"{style}-opaque", formats=("png",))[0]
        assert _corner(opaque)[3] == 255


def _svg_boxes(svg: bytes, tag: str) -> list[tuple[float, float, float, float]]:
    """(x0, y0, x1, y1) of an SVG's images (``tag="image"``) or of the paths of its legend
    handles hatched with a pattern (``tag="pattern-path"``), in the SVG's units."""
    root = ET.fromstring(svg)
    boxes = []
    for element in root.iter():
        if tag == "image" and element.tag.endswith("}image"):
            x, y = float(element.get("x")), float(element.get("y"))
            w, h = float(element.get("width")), float(element.get("height"))
            boxes.append((x, -y, x + w, h - y))  # drawn flipped: scale(1 -1) translate(0 -h)
        elif tag == "pattern-path" and element.tag.endswith("}path"):
            if "url(#h" in (element.get("style") or ""):
                words = re.sub("[MLz]", " ", element.get("d")).split()
                xy = np.array([float(v) for v in words]).reshape(-1, 2)
                boxes.append((*xy.min(axis=0), *xy.max(axis=0)))
    return boxes


def test_save_embeds_dense_and_dotted_artists_as_images_in_place(tmp_path):
    """plot.save rasterises, in SVG only, a line of more than DENSE_VERTICES points and any
    patch hatched with dots (matplotlib writes each dot as a curve: ~150 KB a pattern), the
    one in the legend too, each where the vector one would be (within a point); a short line
    stays vector, the PNG is the same bytes either way, and the artists are left as they
    were."""
    from matplotlib.patches import Patch

    with matplotlib.rc_context():
        kv.set_theme("paper")
        fig, ax = plt.subplots(figsize=(4, 3))
        t = np.linspace(0, 1, plot.DENSE_VERTICES + 1)
        (dense,) = ax.plot(t, np.sin(40 * t))
        (short,) = ax.plot([0, 1], [0, 1])
        dotted = Patch(facecolor=kv.theme.COLORS["wait"], edgecolor="white", hatch="...")
        ax.legend(handles=[dotted], labels=["waits"], loc="upper left")
        handle = ax.get_legend().legend_handles[0]
        plain = io.BytesIO()
        fig.savefig(plain, format="svg", metadata={"Date": None})
        png_before = plot.save(fig, tmp_path / "before", formats=("png",))[0].read_bytes()
        svg, png = plot.save(fig, tmp_path / "f", formats=("svg", "png"))
        data = svg.read_bytes()
    assert b"<pattern" in plain.getvalue() and b"<pattern" not in data
    assert len(data) < len(plain.getvalue()) / 3
    images = _svg_boxes(data, "image")
    assert len(images) == 2  # the dense line, the legend's handle
    [vector] = _svg_boxes(plain.getvalue(), "pattern-path")
    assert any(np.allclose(box, vector, atol=1.0) for box in images), (images, vector)
    assert data.count(b"<text") >= 5  # ticks, the legend: text stays text
    assert png.read_bytes() == png_before
    assert not any(a.get_rasterized() for a in (dense, short, handle))
    assert _svg_boxes(plain.getvalue(), "image") == []


@pytest.mark.slow
def test_no_gallery_svg_exceeds_300_kb(tmp_path):
    """Every gallery figure, saved by plot.save under the paper theme, is an SVG of at most
    300 KB whose text is <text> (lock-timeline-416-vcpus was 1.2 MB with text as paths and
    every lane as vectors); the 416-vCPU timeline gets there by embedding its lanes as
    images."""
    sizes = {}
    with matplotlib.rc_context():
        kv.set_theme("paper")
        for name in kv.gallery.FIGURES:
            fig = kv.gallery.render(name)
            [svg] = plot.save(fig, tmp_path / name, formats=("svg",))
            plt.close(fig)
            data = svg.read_bytes()
            sizes[name] = len(data)
            assert b"<text" in data and b'<path id="DejaVuSans-' not in data, name
            if name == "lock-timeline-416-vcpus":
                assert data.count(b"<image") >= 1
    assert max(sizes.values()) <= 300 * 1024, sizes


def _svg(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(fig)
    return buffer.getvalue()


def test_same_seed_gives_the_same_svg_bytes():
    """With kv.set_theme (svg.hashsalt "kvmviz"), two simulations with the same seed draw
    byte-identical SVGs of the stall CDF and brownout; so do the seaborn-drawn heatmap and
    curves of one table. Another seed draws other bytes."""
    kv.set_theme("paper")
    assert matplotlib.rcParams["svg.hashsalt"] == "kvmviz"

    def stalls(seed) -> bytes:
        runs = {k: kv.simulate(SMALL, kernel=k, seed=seed) for k in kv.KERNELS_2021}
        fig, (a, b) = plt.subplots(1, 2)
        plot.stall_cdf(runs, ax=a)
        plot.brownout_curve(runs, ax=b)
        return _svg(fig)

    first = stalls(3)
    assert stalls(3) == first
    assert stalls(4) != first

    def sweep() -> bytes:
        table = _sweep_table()
        fig = plot.heatmaps(table, "spurious_share", "n_vcpus", "stall_p99_us")
        _fig, ax = plt.subplots()
        plot.curves(table, "n_vcpus", "stall_p99_us", hue="kernel", ax=ax)
        return _svg(fig) + _svg(ax.figure)

    assert sweep() == sweep()


# -- figures that say what they mean (issue 8, §6) ----------------------------------------------


def _pages(layout, slot, first_page: int, pages: int, *, hit=True) -> tuple:
    ram = next(s for s in layout if s.slot == slot and s.as_id == 0)
    start = ram.hva_start + first_page * 4096
    return start, start + pages * 4096, hit


def _frame(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["hva_start", "hva_end", "hit"])
    return frame.astype({"hva_start": np.uint64, "hva_end": np.uint64, "hit": bool})


def test_a_two_page_hit_in_12_tib_is_drawn_at_least_min_span_wide_at_any_size():
    """To scale, two pages of a 12 TiB slot are ~1e-9 of the axis; on screen the hit is at
    least MIN_SPAN_PT wide (on the hva and the gfn map), before and after the figure is
    resized and zoomed, with a triangle over it."""
    layout = large_vm_layout()
    ranges = _frame([_pages(layout, 1, 5, 2)])
    ax = plot.memslot_map(layout, ranges, gfn_view=True)
    hva_ax, gfn_ax = ax.figure.axes
    hit = gids(hva_ax, "notifiers-")["notifiers-hit"]
    gfn_hit = gids(gfn_ax, "gfn-hits-")["gfn-hits-as0"]
    stored = hit.get_paths()[0].vertices[:, 0]
    assert np.ptp(stored) < 1e-6  # stored to scale
    for size, dpi in (((10, 3), 100), ((4, 2), 72), ((16, 5), 200)):
        ax.figure.set_size_inches(*size)
        ax.figure.set_dpi(dpi)
        ax.figure.canvas.draw()
        for axes, bars in ((hva_ax, hit), (gfn_ax, gfn_hit)):
            widths = screen_widths(axes, bars)
            assert len(widths) == 1
            assert widths[0] >= min_px(ax.figure) - 1e-6
        assert hit.drawn_marks == 1
    left, right = hva_ax.get_xlim()
    hva_ax.set_xlim(left - 50, right + 50)  # zoomed out: the range is smaller still
    ax.figure.canvas.draw()
    assert screen_widths(hva_ax, hit)[0] >= min_px(ax.figure) - 1e-6


def test_coinciding_hits_draw_one_triangle_labelled_with_their_count():
    """200 hits on one page (as relevant_madv in the real trace) are one bar and one
    triangle on screen, labelled ×200; the stored bars stay one per hit."""
    layout = large_vm_layout()
    ranges = _frame([_pages(layout, 1, 5, 1)] * 200 + [_pages(layout, 5, 9, 1)])
    _fig, ax = plt.subplots()
    plot.memslot_map(layout, ranges, ax=ax)
    ax.figure.canvas.draw()
    hit = gids(ax, "notifiers-")["notifiers-hit"]
    assert len(hit.get_paths()) == 201
    assert sorted(hit.drawn_counts) == [1, 200]
    assert hit.drawn_marks == 2
    assert [text for _x, _y, text, _ha in hit._labels] == ["×200"]
    assert legend_texts(ax) == ["hits (201; ×n: n merged)"]


def test_overlapping_misses_merge_into_one_hatched_bar():
    """Fifty overlapping misses are drawn as one hatched bar (not fifty stacked hatches that
    turn solid grey), opaque, in the colours of the legend entry."""
    layout = large_vm_layout()
    start = VMM_HEAP[0]
    rows = [(start + i * 0x1000, start + i * 0x1000 + 0x8000, False) for i in range(50)]
    _fig, ax = plt.subplots()
    plot.memslot_map(layout, _frame(rows), ax=ax, regions=[VMM_HEAP])
    ax.figure.canvas.draw()
    miss = gids(ax, "notifiers-")["notifiers-miss"]
    assert len(miss.get_paths()) == 50
    assert miss.drawn_counts == [50] and miss.drawn_marks == 0
    handle = ax.get_legend().legend_handles[0]
    assert to_hex(handle.get_facecolor()) == face(miss) == COLORS["miss_face"]
    assert handle.get_hatch() == miss.get_hatch() == "////"
    assert legend_texts(ax) == ["misses, spurious (50; ×n: n merged)"]
    assert miss._labels == []  # a bar this narrow has no room for its ×50


def test_misses_spread_over_the_heap_merge_into_blocks_that_say_their_count():
    """Figure 2.3: 400 one-page misses spread over the VMM's 4 GiB heap, each widened to
    MIN_SPAN_PT, run together into a few wide hatched blocks. Each block says how many misses
    it stands for (×n centred over it), the counts adding up to 400, and the legend says what
    ×n means."""
    layout = large_vm_layout()
    step = (VMM_HEAP[1] - VMM_HEAP[0]) // 400
    rows = [(VMM_HEAP[0] + i * step, VMM_HEAP[0] + i * step + 0x1000, False) for i in range(400)]
    fig, ax = plt.subplots(figsize=(11, 2.4))
    plot.memslot_map(layout, _frame(rows), ax=ax, regions=[VMM_HEAP])
    fig.canvas.draw()
    miss = gids(ax, "notifiers-")["notifiers-miss"]
    assert sum(miss.drawn_counts) == 400 and len(miss.drawn_counts) < 400
    labels = [(text, ha) for _x, _y, text, ha in miss._labels]
    assert labels and {ha for _t, ha in labels} == {"center"}
    counts = [int(text[1:].replace(",", "")) for text, _ha in labels]
    assert set(counts) <= {n for n in miss.drawn_counts if n >= 2}
    assert max(counts) == max(miss.drawn_counts)  # the widest block is labelled
    assert legend_texts(ax) == ["misses, spurious (400; ×n: n merged)"]


def test_map_legends_list_only_the_kinds_of_range_drawn():
    """Misses only: no hit entry (and no gfn-hit entry below); hits only: no miss entry;
    counts=False (a dashboard that moves the bars) lists both kinds, without numbers."""
    layout = large_vm_layout()
    misses = _frame([(VMM_HEAP[0], VMM_HEAP[0] + 0x1000, False)] * 3)
    hits = _frame([_pages(layout, 1, 0, 1)])
    ax = plot.memslot_map(layout, misses, gfn_view=True)
    assert legend_texts(ax) == ["misses, spurious (3; ×n: n merged)"]
    assert legend_texts(ax.figure.axes[1]) == ["memslot"]
    _fig, ax = plt.subplots()
    plot.memslot_map(layout, hits, ax=ax, counts=False)
    assert legend_texts(ax) == ["hits (×n: n merged)", "misses, spurious (×n: n merged)"]
    _fig, ax = plt.subplots()
    plot.memslot_map(layout, hits, ax=ax)
    assert legend_texts(ax) == ["hits (1)"]
    _fig, ax = plt.subplots()
    plot.memslot_map(layout, ax=ax)
    assert ax.get_legend() is None


def test_every_slot_says_its_size():
    """The widths grow with the log of size, so every slot carries its size in a label (the
    axis label says so), on the hva and the gfn map."""
    layout = large_vm_layout()
    ax = plot.memslot_map(layout, gfn_view=True)
    for axes in ax.figure.axes:
        texts = " ".join(t.get_text() for t in axes.texts)
        for slot in layout:
            assert f"slot {slot.slot}" in texts and size_bytes(slot.size_bytes) in texts
        assert "log of size" in axes.get_xlabel()


def test_stall_by_kernel_draws_the_distribution_beside_the_split_and_the_writers(volatile):
    """Two axes: a per-fault CDF line per kernel, and each kernel's brownout split by what its
    faults waited behind, with the writers' mean wait written under it, both equal to
    summarize()'s."""
    ax = plot.stall_by_kernel(volatile)
    cdf, split = ax.figure.axes
    assert cdf is ax
    assert [line.get_gid() for line in cdf.get_lines()] == [f"cdf|{k}" for k in kv.KERNELS_2021]
    drawn = {p.get_gid(): p.get_height() for p in split.patches}
    for kernel, run in volatile.items():
        summary = kv.summarize(run)
        for part in ("miss", "hit"):
            assert drawn[f"split|{kernel}|{part}"] == pytest.approx(
                100 * summary[f"brownout_{part}"]
            )
    ticks = [t.get_text() for t in split.get_xticklabels()]
    for tick, kernel in zip(ticks, kv.KERNELS_2021, strict=True):
        wait = kv.summarize(volatile[kernel])["writer_wait_mean_us"]
        assert (
            tick.startswith(kernel)
            and f"writers wait\n{metric_labels.value_label(wait, 'µs')}" in tick
        )
    _fig, pair = plt.subplots(1, 2)
    assert plot.stall_by_kernel(volatile, ax=pair, highlight="v5.15") is pair[0]
    with pytest.raises(ValueError, match="pair"):
        plot.stall_by_kernel(volatile, ax=pair[0])
    with pytest.raises(ValueError, match="empty"):
        plot.stall_by_kernel({})


def test_stall_by_kernel_says_when_no_callback_took_the_lock(static):
    """On the static setup v5.15's callbacks never lock: under its bar, no writers' wait of
    "0 µs" (no writer waited because none wrote), but the reason."""
    ax = plot.stall_by_kernel(static)
    ticks = [t.get_text() for t in ax.figure.axes[1].get_xticklabels()]
    assert ticks[2] == "v5.15\n071064f14d87\nno callback\ntook the lock"
    assert "writers wait" in ticks[0]


# -- the brownout split by what the faults waited behind ---------------------------------------
def _split(ax) -> dict:
    """{(kernel, part): height} of the parts drawn (visible) by stall_split."""
    return {
        tuple(p.get_gid().split("|")[1:]): p.get_height()
        for p in ax.patches
        if p.get_gid().startswith("split|") and p.get_visible()
    }


def test_stall_split_stacks_the_parts_of_each_kernels_brownout(volatile):
    """Each kernel's bar is its brownout in %, stacked from the part behind misses (grey,
    hatched), then hits (vermilion); on the volatile setup v5.15's miss part is 0, said in
    words at the foot of its bar, while its hit part stays. Each part is labelled with its
    value; the total is written on top; the legend lists the parts drawn."""
    table = kv.metrics.kernel_table(volatile)
    ax = plot.stall_split(table, ax=plt.subplots()[1])
    drawn = _split(ax)
    assert set(drawn) == {(k, p) for k in kv.KERNELS_2021 for p in ("miss", "hit")} - {
        ("v5.15", "miss")
    }
    for (kernel, part), height in drawn.items():
        assert height == pytest.approx(100 * table.loc[kernel, f"brownout_{part}"])
    for kernel in kv.KERNELS_2021:
        hit = next(p for p in ax.patches if p.get_gid() == f"split|{kernel}|hit")
        miss = 100 * table.loc[kernel, "brownout_miss"]
        assert hit.get_y() == pytest.approx(miss)  # stacked on the miss part
        assert hit.get_y() + hit.get_height() == pytest.approx(
            100 * table.loc[kernel, "brownout_mean"]
        )
    patch = next(p for p in ax.patches if p.get_gid() == "split|v5.12|miss")
    assert to_hex(patch.get_facecolor()) == BEHIND_STYLES["miss"]["color"] == COLORS["miss"]
    assert patch.get_hatch() == "////"
    hit = next(p for p in ax.patches if p.get_gid() == "split|v5.12|hit")
    assert to_hex(hit.get_facecolor()) == COLORS["hit"]
    labels = {t.get_gid(): t.get_text() for t in ax.texts if t.get_visible()}
    assert labels["split-label|v5.15|miss"] == "misses: 0%"
    assert labels["split-label|v5.12|hit"] == metric_labels.value_label(
        100 * table.loc["v5.12", "brownout_hit"], "%"
    )
    assert labels["split-total|v5.13"] == metric_labels.value_label(
        100 * table.loc["v5.13", "brownout_mean"], "%"
    )
    assert "split-label|v5.15|hit" not in labels  # one part: its value is the total's
    assert legend_texts(ax) == ["behind misses (spurious)", "behind hits (guest memory)"]
    assert ax.get_ylabel() == "share of the VM's vCPU time stalled (%)"


def test_stall_split_draws_the_part_behind_faults_only_where_there_is_one():
    """Under the shadow MMU faults write-lock, so some stall is owed to other faults alone:
    that part is drawn (blue, cross-hatched) and in the legend; with the TDP MMU it is not."""
    shadow = {
        k: kv.simulate(VOLATILE.replace(tdp_mmu=False), kernel=k, seed=1) for k in kv.KERNELS_2021
    }
    ax = plot.stall_split(shadow, ax=plt.subplots()[1])
    faults = {k: h for (k, part), h in _split(ax).items() if part == "fault"}
    assert set(faults) == set(kv.KERNELS_2021) and min(faults.values()) > 0
    patch = next(p for p in ax.patches if p.get_gid() == "split|v5.12|fault")
    assert to_hex(patch.get_facecolor()) == COLORS["read"] and patch.get_hatch() == "xx"
    assert legend_texts(ax)[-1] == "behind other faults only"


def test_stall_split_follows_new_runs_and_the_highlight(static, volatile):
    """plot.update gives the same bars the volatile runs' parts; back on the static runs the
    hit parts vanish, the legend drops them and v5.15 says it stalls nothing. The highlighted
    kernel is drawn in full, the others faint."""
    ax = plot.stall_split(static, ax=plt.subplots()[1], highlight="v5.15")
    bars = ax.patches[:]
    plot.update(ax, volatile, highlight="v5.13")
    assert list(ax.patches) == bars
    table = kv.metrics.kernel_table(volatile)
    for (kernel, part), height in _split(ax).items():
        assert height == pytest.approx(100 * table.loc[kernel, f"brownout_{part}"])
    assert {p.get_gid(): p.get_alpha() for p in bars if p.get_gid().endswith("|hit")} == {
        "split|v5.12|hit": 0.45, "split|v5.13|hit": 1.0, "split|v5.15|hit": 0.45
    }  # fmt: skip
    plot.update(ax, static)
    assert {part for _k, part in _split(ax)} == {"miss"}
    assert legend_texts(ax) == ["behind misses (spurious)"]
    assert _visible_notes(ax) == {"note|v5.15": "no fault\nstalled"}
    with pytest.raises(KeyError, match="brownout_mean"):
        plot.stall_split(pd.DataFrame({"x": [1]}, index=["v5.12"]))


# -- the tornado of kvmviz.experiments.sensitivity ---------------------------------------------
def _sensitivity_table() -> pd.DataFrame:
    """Two parameters on three kernels, made up: v5.15 stalls nothing over rate_hz's range."""
    rows = []
    for parameter, values in (("rate_hz", (1.0, 2.0)), ("share", (0.5, 1.0))):
        for value in values:
            for k, kernel in enumerate(kv.KERNELS_2021):
                brownout = 0.0 if kernel == "v5.15" and parameter == "rate_hz" else value / (k + 1)
                rows.append((parameter, value, value == 1.0, kernel, brownout / 10, 100 * brownout))
    columns = ["parameter", "value", "is_default", "kernel", "brownout_mean", "stall_p99_us"]
    return pd.DataFrame(rows, columns=columns)


def test_tornado_draws_the_brownout_in_percent_and_says_where_a_bar_has_no_length():
    """The brownout panel first, in % of the VM's vCPU time, then the p99 stall per fault;
    each bar spans its rows' range; v5.15's rate_hz bars have no length, so its row says "no
    fault stalled at any value" in both panels."""
    table = _sensitivity_table()
    brownout, p99 = plot.tornado(table)
    assert brownout.get_xlabel() == "share of the VM's vCPU time stalled (%)"
    assert p99.get_xlabel() == "p99 stall per fault (µs)"
    lines = {line.get_gid(): line.get_xdata() for line in brownout.lines if line.get_gid()}
    np.testing.assert_allclose(lines["range|v5.12|rate_hz"], [10.0, 20.0])  # 0.1-0.2, in %
    np.testing.assert_allclose(lines["range|v5.13|share"], [2.5, 5.0])
    for ax in (brownout, p99):
        assert _visible_notes(ax) == {"note|v5.15|rate_hz": "v5.15: no fault stalled at any value"}
    # Rows by the widest brownout bar, widest at the top: rate_hz (0.1) above share (0.05).
    labels = [t.get_text().split("\n")[0] for t in brownout.get_yticklabels()]
    assert labels == ["share", "rate_hz"]


def test_curves_tick_every_value_swept_on_a_log_axis():
    """64, 208 and 416 vCPUs fall between decades: each gets its own labelled tick."""
    frame = pd.DataFrame(
        {"n_vcpus": [64, 208, 416], "k": ["a"] * 3, "stall_p99_us": [1.0, 2.0, 3.0]}
    )
    ax = plot.curves(frame, "n_vcpus", "stall_p99_us", hue="k", ax=plt.subplots()[1])
    ax.figure.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["64", "208", "416"]


# -- figures of issue 18 §8: small hits over large ones, addresses that never run together ---
def test_small_hits_stay_visible_over_a_hit_that_spans_them():
    """Figure 2.2: one 2 MiB hit (a huge-page split) under 64 single-page hits (KSM) at its
    start. The 2 MiB hit is drawn apart, pale with a vermilion outline, under the small ones
    (solid, with their mark), so that the 256 KiB of small hits stay visible; the legend says
    what the pale bar is. The gfn map does the same."""
    layout = large_vm_layout()
    rows = [_pages(layout, 1, 0, 512)] + [_pages(layout, 1, i, 1) for i in range(64)]
    ax = plot.memslot_map(layout, _frame(rows), gfn_view=True)
    hva_ax, gfn_ax = ax.figure.axes
    spans = gids(hva_ax, "notifiers-")
    wide, hits = spans["notifiers-hit-wide"], spans["notifiers-hit"]
    assert (len(wide.get_paths()), len(hits.get_paths())) == (1, 64)
    assert face(wide) == COLORS["hit_face"] and to_hex(wide.get_edgecolor()[0]) == COLORS["hit"]
    assert wide.get_zorder() < hits.get_zorder()
    assert not wide.marks and hits.marks  # the small hits' triangle marks the spot
    assert legend_texts(hva_ax) == [
        "hits (64; ×n: n merged)",
        "hits spanning smaller hits, under them (1)",
    ]
    gfn = gids(gfn_ax, "gfn-hits-")
    assert (len(gfn["gfn-hits-wide-as0"].get_paths()), len(gfn["gfn-hits-as0"].get_paths())) == (
        1,
        64,
    )
    assert "gfn ranges spanning smaller ones, drawn under them (1)" in legend_texts(gfn_ax)


@given(
    st.lists(
        st.tuples(st.integers(0, 40), st.integers(1, 12)).map(lambda t: (t[0], t[0] + t[1])),
        max_size=30,
    )
)
def test_spanning_is_strict_containment_of_a_smaller_range(ranges):
    """address_axis.spanning (O(n log n)) against the brute force: a range spans another when it
    contains it and is larger; identical ranges span nothing."""
    starts = np.array([a for a, _b in ranges], dtype=np.int64)
    ends = np.array([b for _a, b in ranges], dtype=np.int64)
    expected = [any(a <= c and d <= b and d - c < b - a for c, d in ranges) for a, b in ranges]
    assert spanning(starts, ends).tolist() == expected


def test_addresses_under_a_memslot_map_never_run_together():
    """Figure 4.1: the 12 TiB VM at the chapter's size (11 x 2.8 in). The addresses under the
    segments are drawn in order; one that would touch the one before moves a line down (or is
    left out): no two drawn ones overlap. At a wider size every one fits on the first line."""
    scenario = kv.Scenario()
    run = kv.simulate(scenario.replace(duration_us=2_000), kernel="v5.12", seed=0)
    for size, all_on_one_line in (((11, 2.8), False), ((40, 2.8), True)):
        with matplotlib.rc_context():
            kv.set_theme("notebook")
            fig, ax = plt.subplots(figsize=size, layout="constrained")
            plot.memslot_map(scenario.layout, run.notifiers, ax=ax, regions=[VMM_HEAP])
            fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        labels = [t for t in ax.texts if t.get_gid() == "axis-label"]
        shown = [t for t in labels if t.get_visible()]
        boxes = [t.get_window_extent(renderer) for t in shown]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert not a.overlaps(b), (a, b)
        assert len(shown) >= len(labels) - 1
        assert all(t.xyann == (0.0, 0.0) for t in shown) == all_on_one_line
        plt.close(fig)


def test_counts_beside_crowded_marks_never_run_together():
    """Forty pairs of coinciding hits spread over the 8 TiB slot, a few points apart on screen:
    each pair is one bar with a triangle, and its ×2 would run into the next triangle. Only the
    counts with room are written."""
    layout = large_vm_layout()
    step = next(s for s in layout if s.slot == 1).npages // 40
    rows = [_pages(layout, 1, step * i, 1) for i in range(40) for _ in range(2)]
    _fig, ax = plt.subplots(figsize=(30, 2))
    plot.memslot_map(layout, _frame(rows), ax=ax)
    ax.figure.canvas.draw()
    hit = gids(ax, "notifiers-")["notifiers-hit"]
    candidates = [text for _x, _y, text, _ha in hit._labels]
    assert len(candidates) == hit.drawn_marks and set(candidates) == {"×2"}
    assert len(hit.drawn_labels) < len(candidates)


def test_tornado_grid_puts_setups_on_shared_scales():
    """tornado_grid draws one row of tornado panels per table, each column on one x scale that
    fits every row's bars, and one legend for the figure."""
    import kvmviz as kv

    rng = np.random.default_rng(0)
    rows = []
    for setup, scale in (("a", 1.0), ("b", 5.0)):
        for parameter in ("notifier_rate_hz", "spurious_share"):
            for value in (0.0, 1.0):
                for kernel in kv.KERNELS_2021:
                    rows.append(
                        {
                            "setup": setup,
                            "parameter": parameter,
                            "value": value,
                            "is_default": value == 1.0,
                            "kernel": kernel,
                            "brownout_mean": scale * 0.1 * rng.random(),
                            "stall_p99_us": scale * 100 * rng.random(),
                        }
                    )
    table = pd.DataFrame(rows)
    tables = {s: t.drop(columns="setup") for s, t in table.groupby("setup")}
    axes = kv.plot.tornado_grid(tables)
    assert axes.shape == (2, 2)
    for column, metric, unit in ((0, "brownout_mean", 100.0), (1, "stall_p99_us", 1.0)):
        left, right = axes[0, column].get_xlim()
        assert axes[1, column].get_xlim() == (left, right)
        assert right >= unit * table[metric].max()
    assert len(axes[0, 0].figure.legends) == 1
    assert all(ax.get_legend() is None for ax in axes[:, 1])


def test_kernels_are_ordered_by_release_and_named_with_their_counters():
    """metric_labels.kernel_order: any releases, in any spelling, oldest first (v6.8 after v5.15
    and before v6.18, whatever the string order says), other labels after them as given;
    counter_names: the counters' names of each release (renamed in v6.0, 20ec3ebd707c), the
    2021 names for a label that is no release."""
    index = ["v6.18", "reader-pref", "v5.12", "6.8", "v6.7", "v5.15", "mine"]
    assert metric_labels.kernel_order(index) == [
        "v5.12", "v5.15", "v6.7", "6.8", "v6.18", "reader-pref", "mine"
    ]  # fmt: skip
    assert metric_labels.kernel_order(list(kv.KERNELS)[::-1]) == list(kv.KERNELS)
    assert metric_labels.counter_names("v5.19") == ("mmu_notifier_seq", "mmu_notifier_count")
    assert metric_labels.counter_names("6.0") == (
        "mmu_invalidate_seq",
        "mmu_invalidate_in_progress",
    )
    assert metric_labels.counter_names("qrwlock") == ("mmu_notifier_seq", "mmu_notifier_count")
    for kernel in kv.KERNELS:
        f = kv.kernels.features(kernel)
        assert metric_labels.counter_names(kernel) == (f.seq_name, f.count_name)


def test_every_milestone_has_its_style_and_tick():
    """Every milestone of kv.KERNELS has a colour, a line style and a label on both pages, the
    label's first word its name; the v6 milestones' colours are none of the 2021 kernels' and
    none of the semantic colours (read, write, wait, memslot, miss), so a v6 line is never
    read as a fault, a notifier, a wait or a memslot; their ticks name them."""
    semantic = ("read", "write", "wait", "memslot", "miss")
    for styles, colours in ((KERNEL_STYLES, COLORS), (DARK_KERNEL_STYLES, DARK_COLORS)):
        assert list(styles) == list(kv.KERNELS)
        taken = {colours[n] for n in semantic} | {styles[k]["color"] for k in kv.KERNELS_2021}
        v6 = [styles[k]["color"] for k in kv.KERNELS if k not in kv.KERNELS_2021]
        assert len(set(v6)) == len(v6) and not set(v6) & taken, v6
        for kernel, style in styles.items():
            assert style["label"].split(" ")[0] == kernel
    ticks = {k: metric_labels.kernel_tick(k) for k in kv.KERNELS}
    assert ticks["v6.8"] == "v6.8\nd02c357e5bfa" and ticks["v6.18"].startswith("v6.18\n")


def test_a_part_at_zero_on_top_of_a_bar_leaves_room_for_the_total():
    """A part one kernel stalls behind and another does not is said to be 0 on the other's
    bar; where that part stacks on top (the pre-check's stalls behind other faults on v6.8,
    beside v5.12's bar), the total is written above the words, not over them."""
    table = pd.DataFrame(
        {
            "brownout_mean": [0.362965, 0.268170],
            "brownout_miss": [0.164372, 0.0],
            "brownout_hit": [0.198594, 0.256466],
            "brownout_fault": [0.0, 0.011703],
        },
        index=["v5.12", "v6.8"],
    )
    ax = plot.stall_split(table, ax=plt.subplots(figsize=(4, 4))[1])
    texts = {t.get_gid(): t for t in ax.texts if t.get_visible()}
    zero, total = texts["split-label|v5.12|fault"], texts["split-total|v5.12"]
    assert zero.get_text() == "faults: 0%" and total.get_text() == "36.3%"
    renderer = ax.figure.canvas.get_renderer()
    ax.figure.draw(renderer)
    below, above = zero.get_window_extent(renderer), total.get_window_extent(renderer)
    assert above.y0 >= below.y1 - 0.5, (below, above)
    assert texts["split-label|v6.8|miss"].get_text() == "misses: 0%"  # at the foot, as ever
