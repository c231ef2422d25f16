"""The static figures of kvmviz.plot: what each draws, checked on the artists themselves.

Small scenarios keep every simulation here well under a second.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.colors import to_hex
from matplotlib.patches import Rectangle

import kvmviz as kv
from kvmviz import metrics, plot, timelines
from kvmviz.presets import VMM_HEAP, large_vm_layout
from kvmviz.theme import COLORS, KERNEL_STYLES

SMALL = kv.Scenario(n_vcpus=16, duration_us=5_000, guest_run_us=20, notifier_rate_hz=5_000)


@pytest.fixture(scope="module")
def runs():
    """The small scenario on every kernel, same seed."""
    return {k: kv.simulate(SMALL, kernel=k, seed=1) for k in kv.KERNELS}


@pytest.fixture(scope="module")
def busy8():
    """Eight vCPUs in a fault storm on v5.12: writers wait and readers queue behind them."""
    storm = kv.Scenario(
        n_vcpus=8, faulting_share=1.0, guest_run_us=10, notifier_rate_hz=5_000, duration_us=3_000
    )
    return kv.simulate(storm, kernel="v5.12", seed=0)


@pytest.fixture(scope="module")
def big416():
    """The 416-vCPU VM for 2 ms: too many vCPUs for one lane each."""
    return kv.simulate(kv.Scenario(duration_us=2_000), kernel="v5.12", seed=0)


def _gids(ax, prefix=""):
    artists = [*ax.collections, *ax.patches, *ax.lines]
    return {a.get_gid(): a for a in artists if (a.get_gid() or "").startswith(prefix)}


def _titles(ax) -> set[str]:
    return {ax.get_title(loc) for loc in ("left", "center", "right")}


def _face(artist) -> str:
    return to_hex(
        artist.get_facecolor()[0] if artist.get_facecolor().ndim == 2 else artist.get_facecolor()
    )


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
    spans = _gids(ax, "notifiers-")
    assert set(spans) == {"notifiers-hit", "notifiers-miss"}
    assert len(spans["notifiers-hit"].get_paths()) == 1
    assert len(spans["notifiers-miss"].get_paths()) == 1
    assert _face(spans["notifiers-hit"]) == COLORS["hit"]
    # Misses: a grey hatch on a pale, opaque ground (overlaps do not darken into solid grey).
    assert _face(spans["notifiers-miss"]) == COLORS["miss_face"]
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
    hits = _gids(gfn_ax, "gfn-hits-")
    assert set(hits) == {"gfn-hits-as0", "gfn-hits-as1"}
    # The hit covers 2 pages of slot 1, aliased in as_id 0 and 1: one gfn range in each.
    assert [len(hits[g].get_paths()) for g in ("gfn-hits-as0", "gfn-hits-as1")] == [1, 1]
    assert _face(hits["gfn-hits-as0"]) == COLORS["hit"]
    assert [t.get_text() for t in gfn_ax.get_yticklabels()] == ["as_id 0", "as_id 1 (SMM)"]
    assert "gfn" in gfn_ax.get_xlabel() and "4 KiB" in gfn_ax.get_xlabel()


def test_gfn_view_needs_two_axes():
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
    drawn = sum(len(c.get_paths()) for c in _gids(ax, "gfn-hits-").values())
    assert drawn == expected


# -- lock timeline -----------------------------------------------------------------------------
def test_lock_timeline_one_lane_per_vcpu(busy8):
    """At 8 vCPUs: a lane each plus the notifier lane, blue holds and dotted orange waits,
    and the queue depth in its own axes below."""
    worst = busy8.notifiers.loc[busy8.notifiers["wait_us"].idxmax()]
    start, end = worst["t_arrive_us"] - 20, worst["t_arrive_us"] + 40
    ax = timelines.lock_timeline(busy8, start, end)
    lanes, queue = ax.figure.axes
    assert lanes is ax
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["notifiers", *(f"vCPU {v}" for v in range(8))]
    drawn = _gids(ax, "lane-")
    faults = busy8.faults
    in_window = faults[(faults["t_request_us"] < end) & (faults["t_release_us"] > start)]
    for v, attempts in in_window.groupby("vcpu"):
        assert len(drawn[f"lane-vcpu{v}-read"].get_paths()) == len(attempts)
        assert len(drawn[f"lane-vcpu{v}-wait"].get_paths()) == int((attempts["wait_us"] > 0).sum())
    assert _face(drawn["lane-vcpu0-read"]) == COLORS["read"]
    assert _face(drawn["lane-notifier-write"]) == COLORS["write"]
    assert _face(drawn["lane-notifier-wait"]) == COLORS["wait"]
    assert drawn["lane-notifier-wait"].get_hatch() == "..."
    assert len(drawn["lane-notifier-wait"].get_paths()) >= 1  # the worst writer did wait
    assert ax.get_xlabel() == "" and "µs" in queue.get_xlabel()
    assert "waiting" in queue.get_ylabel()


def test_queue_depth_counts_the_waiters(busy8):
    """The queue-depth steps equal a brute-force count of acquisitions waiting at t."""
    start, end = 500.0, 1_900.0  # under 2 ms: the axis is in µs
    _fig, axes = plt.subplots(2, 1)
    timelines.lock_timeline(busy8, start, end, ax=axes)
    x, y = axes[1].get_lines()[0].get_data()
    lock = busy8.lock
    for t in np.random.default_rng(0).uniform(start, end, 200):
        waiting = int(((lock["t_request_us"] <= t) & (t < lock["t_grant_us"])).sum())
        assert y[np.searchsorted(x, t, "right") - 1] == waiting


def test_lock_timeline_groups_416_vcpus(big416):
    """Beyond max_lanes the faulting vCPUs are grouped: 8 lanes of shares, not 416 lanes."""
    ax = timelines.lock_timeline(big416, 500, 1_500)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "notifiers" and len(labels) == 1 + 8
    assert labels[1] == "vCPUs 0–46" and labels[-1] == "vCPUs 327–373"  # 374 of 416 fault
    drawn = _gids(ax, "lane-")
    assert not any(g.startswith("lane-vcpu") for g in drawn)
    assert {f"lane-group{i}-{s}" for i in range(8) for s in ("read", "wait")} <= set(drawn)
    assert "374 faulting vCPUs of 416" in ax.get_title(loc="left")
    assert "ms" not in ax.figure.axes[1].get_xlabel()  # a 1 ms window is labelled in µs
    timelines.lock_timeline(big416, 0, 2_000, ax=plt.subplots()[1])
    assert "(ms)" in plt.gca().get_xlabel()


def test_busy_time_integrates_intervals_exactly():
    """The per-bin busy time equals a fine numerical integration of the intervals."""
    rng = np.random.default_rng(3)
    starts = rng.uniform(0, 100, 50)
    ends = starts + rng.exponential(10, 50)
    edges = np.linspace(10, 90, 9)
    fine = np.linspace(10, 90, 80_001)
    mid = (fine[1:] + fine[:-1]) / 2
    covered = ((starts[:, None] <= mid) & (mid < ends[:, None])).sum(axis=0) * np.diff(fine)
    expected = np.add.reduceat(covered, np.searchsorted(mid, edges[:-1]))
    np.testing.assert_allclose(metrics.coverage(starts, ends, edges), expected, atol=0.05)


def test_lock_timeline_checks_its_window(busy8):
    with pytest.raises(ValueError, match="after"):
        timelines.lock_timeline(busy8, 10, 10)
    ax = timelines.lock_timeline(busy8, 0, 100, ax=plt.subplots()[1])  # lanes only
    assert len(ax.figure.axes) == 1 and "µs" in ax.get_xlabel()


# -- kernels side by side ---------------------------------------------------------------------
def test_compare_kernels_bars_from_table_or_runs(runs):
    """The per-kernel table (kv.metrics.kernel_table) and a {kernel: Run} mapping draw the
    same bars."""
    table = kv.metrics.kernel_table(runs)
    _fig, (left, right) = plt.subplots(1, 2)
    plot.kernel_bars(table, ax=left)
    plot.kernel_bars(runs, ax=right)
    for ax in (left, right):
        bars = [p for p in ax.patches if (p.get_gid() or "").startswith("bar|")]
        assert [b.get_gid() for b in bars] == [f"bar|{k}" for k in kv.KERNELS]
        assert [to_hex(b.get_facecolor()) for b in bars] == [
            KERNEL_STYLES[k]["color"] for k in kv.KERNELS
        ]
        np.testing.assert_allclose([b.get_height() for b in bars], table["p99_us"])
        assert ax.get_ylabel() == "µs" and "p99 fault stall" in _titles(ax)
        assert all(t.get_text().endswith(" µs") for t in ax.texts)
    assert [t.get_text().split("\n")[0] for t in left.get_xticklabels()] == list(kv.KERNELS)


def test_compare_kernels_draws_shares_in_percent(runs):
    ax = plot.kernel_bars(runs, metric="brownout_mean", ax=plt.subplots()[1])
    heights = [p.get_height() for p in ax.patches]
    expected = [100 * kv.summarize(runs[k])["brownout_mean"] for k in kv.KERNELS]
    np.testing.assert_allclose(heights, expected)
    assert ax.get_ylabel() == "%" and all(t.get_text().endswith("%") for t in ax.texts)
    with pytest.raises(KeyError, match="no metric"):
        plot.kernel_bars(runs, metric="p42")


def test_existing_views_label_their_units(runs):
    _fig, (a, b) = plt.subplots(1, 2)
    plot.stall_cdf(runs, ax=a)
    plot.brownout_curve(runs, ax=b)
    assert "µs" in a.get_xlabel() and "(%)" in b.get_ylabel() and "(ms)" in b.get_xlabel()


# -- perf lock contention ---------------------------------------------------------------------
def _independent_groups(run):
    """(type, caller) -> [contended, total_us, max_us], from run.lock row by row."""
    names = {"page_fault": "direct_page_fault"}
    groups: dict = {}
    for row in run.lock.itertuples():
        if not row.wait_us > 0:
            continue
        kind = (
            "spinlock"
            if run.policy == "spinlock"
            else f"rwlock:{'R' if row.mode == 'read' else 'W'}"
        )
        caller = names.get(row.callback, f"kvm_mmu_notifier_{row.callback}")
        entry = groups.setdefault((kind, caller), [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += row.wait_us
        entry[2] = max(entry[2], row.wait_us)
    return groups


@pytest.mark.parametrize("kernel", ["v5.12", "v5.15"])
def test_contention_table_matches_the_lock_table(runs, kernel):
    """Counts and waits per (type, caller) equal sums over run.lock, longest total first."""
    run = runs[kernel]
    table = contention = metrics.contention_table(run)
    assert list(table.columns) == [
        "contended", "total_wait_us", "max_wait_us", "avg_wait_us", "type", "caller"
    ]  # fmt: skip
    expected = _independent_groups(run)
    assert {(r.type, r.caller) for r in table.itertuples()} == set(expected)
    for row in contention.itertuples():
        contended, total, longest = expected[row.type, row.caller]
        assert row.contended == contended
        assert row.total_wait_us == pytest.approx(total)
        assert row.max_wait_us == pytest.approx(longest)
        assert row.avg_wait_us == pytest.approx(total / contended)
    assert table["total_wait_us"].is_monotonic_decreasing
    faults = table[table["caller"] == "direct_page_fault"].iloc[0]
    assert faults["type"] == "rwlock:R"
    assert faults["contended"] == int((run.faults["wait_us"] > 0).sum())


def test_contention_under_a_spinlock_is_one_lock_type():
    busy = kv.Scenario(n_vcpus=4, duration_us=3_000, guest_run_us=5, notifier_rate_hz=5_000)
    run = kv.simulate(busy, "v5.12", policy="spinlock")
    table = metrics.contention_table(run)
    assert set(table["type"]) == {"spinlock"} and len(table) >= 2
    assert {tuple(k) for k in table[["type", "caller"]].to_numpy()} == set(_independent_groups(run))


def test_contention_text_is_laid_out_as_perf_prints_it(runs):
    text = metrics.contention_text(runs["v5.12"])
    lines = text.splitlines()
    assert lines[0] == (" contended   total wait     max wait     avg wait         type   caller")
    assert lines[1] == ""
    table = metrics.contention_table(runs["v5.12"])
    assert len(lines) == 2 + len(table)
    first = lines[2]
    assert first[:10].strip() == str(table["contended"].iloc[0])
    assert first.endswith(f"   {table['type'].iloc[0]:>10}   {table['caller'].iloc[0]}")


@pytest.mark.parametrize(
    ("ns", "printed"),
    [
        (999, "      999 ns"),
        (1_500, "     1.50 us"),
        (417_204, "   417.20 us"),
        (8_610_000, "     8.61 ms"),
        (3_533_288_000, "     3.53 s "),
    ],
)
def test_perf_time_units(ns, printed):
    """As tools/perf's lock_stat_key_print_time(): 12 wide, two decimals, ns/us/ms/s."""
    assert metrics._perf_time(ns) == printed


# -- saving -----------------------------------------------------------------------------------
def test_save_refuses_to_overwrite_and_writes_nothing(tmp_path):
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


# -- figures that say what they mean (issue 8, §6) ----------------------------------------------
def _min_px(fig) -> float:
    """MIN_SPAN_PT in the figure's pixels."""
    return plot.MIN_SPAN_PT * fig.dpi / 72


def _screen_widths(ax, bars) -> np.ndarray:
    """The on-screen width, in pixels, of every bar a SpanBars drew at its last draw."""
    if not bars.drawn_spans:
        return np.empty(0)
    x = np.array(bars.drawn_spans)
    y = np.zeros(len(x))
    left = ax.transData.transform(np.column_stack([x[:, 0], y]))[:, 0]
    right = ax.transData.transform(np.column_stack([x[:, 0] + x[:, 1], y]))[:, 0]
    return right - left


def _legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


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
    hit = _gids(hva_ax, "notifiers-")["notifiers-hit"]
    gfn_hit = _gids(gfn_ax, "gfn-hits-")["gfn-hits-as0"]
    stored = hit.get_paths()[0].vertices[:, 0]
    assert np.ptp(stored) < 1e-6  # stored to scale
    for size, dpi in (((10, 3), 100), ((4, 2), 72), ((16, 5), 200)):
        ax.figure.set_size_inches(*size)
        ax.figure.set_dpi(dpi)
        ax.figure.canvas.draw()
        for axes, bars in ((hva_ax, hit), (gfn_ax, gfn_hit)):
            widths = _screen_widths(axes, bars)
            assert len(widths) == 1
            assert widths[0] >= _min_px(ax.figure) - 1e-6
        assert hit.drawn_marks == 1
    left, right = hva_ax.get_xlim()
    hva_ax.set_xlim(left - 50, right + 50)  # zoomed out: the range is smaller still
    ax.figure.canvas.draw()
    assert _screen_widths(hva_ax, hit)[0] >= _min_px(ax.figure) - 1e-6


def test_coinciding_hits_draw_one_triangle_labelled_with_their_count():
    """200 hits on one page (as relevant_madv in the real trace) are one bar and one
    triangle on screen, labelled ×200; the stored bars stay one per hit."""
    layout = large_vm_layout()
    ranges = _frame([_pages(layout, 1, 5, 1)] * 200 + [_pages(layout, 5, 9, 1)])
    _fig, ax = plt.subplots()
    plot.memslot_map(layout, ranges, ax=ax)
    ax.figure.canvas.draw()
    hit = _gids(ax, "notifiers-")["notifiers-hit"]
    assert len(hit.get_paths()) == 201
    assert sorted(hit.drawn_counts) == [1, 200]
    assert hit.drawn_marks == 2
    assert [text for _x, _y, text in hit._labels] == ["×200"]
    assert _legend_texts(ax) == ["notifier hits (201)"]


def test_overlapping_misses_merge_into_one_hatched_bar():
    """Fifty overlapping misses are drawn as one hatched bar (not fifty stacked hatches that
    turn solid grey), opaque, in the colours of the legend entry."""
    layout = large_vm_layout()
    start = VMM_HEAP[0]
    rows = [(start + i * 0x1000, start + i * 0x1000 + 0x8000, False) for i in range(50)]
    _fig, ax = plt.subplots()
    plot.memslot_map(layout, _frame(rows), ax=ax, regions=[VMM_HEAP])
    ax.figure.canvas.draw()
    miss = _gids(ax, "notifiers-")["notifiers-miss"]
    assert len(miss.get_paths()) == 50
    assert miss.drawn_counts == [50] and miss.drawn_marks == 0
    handle = ax.get_legend().legend_handles[0]
    assert to_hex(handle.get_facecolor()) == _face(miss) == COLORS["miss_face"]
    assert handle.get_hatch() == miss.get_hatch() == "////"
    assert _legend_texts(ax) == ["notifier misses (spurious) (50)"]


def test_map_legends_list_only_the_kinds_of_range_drawn():
    """Misses only: no hit entry (and no gfn-hit entry below); hits only: no miss entry;
    counts=False (a dashboard that moves the bars) lists both kinds, without numbers."""
    layout = large_vm_layout()
    misses = _frame([(VMM_HEAP[0], VMM_HEAP[0] + 0x1000, False)] * 3)
    hits = _frame([_pages(layout, 1, 0, 1)])
    ax = plot.memslot_map(layout, misses, gfn_view=True)
    assert _legend_texts(ax) == ["notifier misses (spurious) (3)"]
    assert _legend_texts(ax.figure.axes[1]) == ["memslot"]
    _fig, ax = plt.subplots()
    plot.memslot_map(layout, hits, ax=ax, counts=False)
    assert _legend_texts(ax) == ["notifier hits", "notifier misses (spurious)"]
    _fig, ax = plt.subplots()
    plot.memslot_map(layout, hits, ax=ax)
    assert _legend_texts(ax) == ["notifier hits (1)"]
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
            assert f"slot {slot.slot}" in texts and plot._size(slot.size_bytes) in texts
        assert "log of size" in axes.get_xlabel()


def test_a_40_ns_write_hold_is_min_span_wide_in_a_2_ms_window(big416):
    """The notifier lane's write holds (tens of ns) are at least MIN_SPAN_PT wide on screen
    in a 2 ms window of the 416-vCPU VM."""
    ax = timelines.lock_timeline(big416, 0, 2_000)
    ax.figure.canvas.draw()
    write = _gids(ax, "lane-notifier-")["lane-notifier-write"]
    widths = _screen_widths(ax, write)
    assert len(widths) >= 1
    assert widths.min() >= _min_px(ax.figure) - 1e-6


def test_timeline_legend_lists_only_the_states_drawn(busy8):
    """v5.12 takes the lock on every callback: no "skips it" entry; v5.15 skips the misses:
    the entry is there; a window where nobody waits has no "waits" entry."""
    worst = busy8.notifiers.loc[busy8.notifiers["wait_us"].idxmax()]
    ax = timelines.lock_timeline(
        busy8, *metrics.whole_stalls(busy8, worst.t_arrive_us, worst.t_grant_us)
    )
    labels = _legend_texts(ax)
    assert labels[:3] == ["fault holds mmu_lock\nfor read", "notifier holds it\nfor write",
                          "waits for it"]  # fmt: skip
    assert "callback skips it" not in labels
    storm = busy8.scenario
    v515 = kv.simulate(storm, kernel="v5.15", seed=0)
    skipped = v515.notifiers[~v515.notifiers["locked"]].iloc[0]
    ax = timelines.lock_timeline(v515, skipped.t_arrive_us - 5, skipped.t_arrive_us + 5)
    assert "callback skips it" in _legend_texts(ax)
    lock = busy8.lock
    calm = _calm_window(lock)
    ax = timelines.lock_timeline(busy8, *calm)
    assert not any(t.startswith("waits") for t in _legend_texts(ax))


def _calm_window(lock) -> tuple[float, float]:
    """A 2 µs window in which no acquisition waits."""
    waited = lock[lock["wait_us"] > 0]
    for t in np.arange(0.0, 3_000.0, 2.0):
        if not ((waited["t_request_us"] < t + 2) & (waited["t_grant_us"] > t)).any():
            return t, t + 2
    raise AssertionError("no calm window")


def test_holds_under_a_spinlock_are_never_labelled_for_read():
    """Under the spinlock policy every holder is exclusive: neither timeline calls a fault's
    hold "for read", and the lock timeline's title says spinlock."""
    tiny = kv.Scenario(n_vcpus=3, faulting_share=1.0, guest_run_us=10, duration_us=400)
    run = kv.simulate(tiny, kernel="v5.12", policy="spinlock", seed=0)
    ax = timelines.lock_timeline(run, 0, 400)
    labels = _legend_texts(ax)
    assert "fault holds mmu_lock\n(exclusive: spinlock)" in labels
    assert not any("read" in label for label in labels)
    assert "spinlock" in ax.get_title(loc="left")
    ax = timelines.retry_timeline(run, 0, 400)
    assert not any("for read" in label for label in _legend_texts(ax))
    qrw = kv.simulate(tiny, kernel="v5.12", seed=0)
    assert "holds it\nfor read" in _legend_texts(timelines.retry_timeline(qrw, 0, 400))


def _stalls_whole(run, start, end) -> bool:
    lock = run.lock
    waited = lock[lock["wait_us"] > 0]
    overlapping = waited[(waited["t_request_us"] < end) & (waited["t_grant_us"] > start)]
    return bool(
        (overlapping["t_request_us"] >= start).all() and (overlapping["t_grant_us"] <= end).all()
    )


@settings(max_examples=40, deadline=None)
@given(start=st.floats(0, 1_900), width=st.floats(0.5, 400))
def test_whole_stalls_covers_every_stall_it_overlaps(big416, start, width):
    """Any window, widened by whole_stalls, contains it and cuts no stall: every wait that
    overlaps the widened window begins and ends inside it."""
    new_start, new_end = metrics.whole_stalls(big416, start, start + width)
    assert new_start <= start and new_end >= start + width
    assert _stalls_whole(big416, new_start, new_end)


def test_whole_stalls_keeps_a_calm_window_and_refuses_an_empty_one(busy8):
    calm = _calm_window(busy8.lock)
    assert metrics.whole_stalls(busy8, *calm) == calm
    with pytest.raises(ValueError, match="end_us must be after start_us"):
        metrics.whole_stalls(busy8, 10, 10)
    with pytest.raises(TypeError, match="start_us"):
        metrics.whole_stalls(busy8, "10", 20)


def test_busiest_window_shows_the_longest_writer_wait_whole(busy8, big416):
    """The window holds the longest notifier wait from its request to its grant, is at least
    as wide as asked, and cuts no stall."""
    for run, width in ((busy8, 60.0), (big416, 1_000.0)):
        start, end = metrics.busiest_window(run, width)
        taken = run.notifiers[run.notifiers["locked"]]
        worst = taken.loc[taken["wait_us"].idxmax()]
        assert start <= worst.t_arrive_us and worst.t_grant_us <= end
        assert end - start >= width
        assert _stalls_whole(run, start, end)
    with pytest.raises(ValueError, match="width_us"):
        metrics.busiest_window(busy8, 0)


def test_stall_by_kernel_draws_the_distribution_beside_the_readers_and_writers_numbers(runs):
    """Two axes: a CDF line per kernel, and a bar per kernel of the p99 stall with the
    writers' mean wait written under it, both equal to summarize()'s."""
    ax = plot.stall_by_kernel(runs)
    cdf, bars = ax.figure.axes
    assert cdf is ax
    assert [line.get_gid() for line in cdf.get_lines()] == [f"cdf|{k}" for k in kv.KERNELS]
    drawn = {p.get_gid(): p.get_height() for p in bars.patches if p.get_gid()}
    for kernel, run in runs.items():
        summary = kv.summarize(run)
        assert drawn[f"bar|{kernel}"] == pytest.approx(summary["p99_us"])
    ticks = [t.get_text() for t in bars.get_xticklabels()]
    for tick, kernel in zip(ticks, kv.KERNELS, strict=True):
        wait = kv.summarize(runs[kernel])["writer_wait_mean_us"]
        assert tick.startswith(kernel) and f"writers wait\n{plot._value_label(wait, 'µs')}" in tick
    _fig, pair = plt.subplots(1, 2)
    assert plot.stall_by_kernel(runs, ax=pair, metric="mean_us") is pair[0]
    with pytest.raises(ValueError, match="pair"):
        plot.stall_by_kernel(runs, ax=pair[0])
    with pytest.raises(ValueError, match="empty"):
        plot.stall_by_kernel({})
