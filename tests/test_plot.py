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
from matplotlib.colors import to_hex
from matplotlib.patches import Rectangle

import kvmviz as kv
from kvmviz import plot
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
    assert _face(spans["notifiers-miss"]) == COLORS["miss"]
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
    ax = plot.lock_timeline(busy8, start, end)
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
    plot.lock_timeline(busy8, start, end, ax=axes)
    x, y = axes[1].get_lines()[0].get_data()
    lock = busy8.lock
    for t in np.random.default_rng(0).uniform(start, end, 200):
        waiting = int(((lock["t_request_us"] <= t) & (t < lock["t_grant_us"])).sum())
        assert y[np.searchsorted(x, t, "right") - 1] == waiting


def test_lock_timeline_groups_416_vcpus(big416):
    """Beyond max_lanes the faulting vCPUs are grouped: 8 lanes of shares, not 416 lanes."""
    ax = plot.lock_timeline(big416, 500, 1_500)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "notifiers" and len(labels) == 1 + 8
    assert labels[1] == "vCPUs 0–46" and labels[-1] == "vCPUs 327–373"  # 374 of 416 fault
    drawn = _gids(ax, "lane-")
    assert not any(g.startswith("lane-vcpu") for g in drawn)
    assert {f"lane-group{i}-{s}" for i in range(8) for s in ("read", "wait")} <= set(drawn)
    assert "374 faulting vCPUs of 416" in ax.get_title(loc="left")
    assert "ms" not in ax.figure.axes[1].get_xlabel()  # a 1 ms window is labelled in µs
    plot.lock_timeline(big416, 0, 2_000, ax=plt.subplots()[1])
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
    np.testing.assert_allclose(plot._busy_time(starts, ends, edges), expected, atol=0.05)


def test_lock_timeline_checks_its_window(busy8):
    with pytest.raises(ValueError, match="after"):
        plot.lock_timeline(busy8, 10, 10)
    ax = plot.lock_timeline(busy8, 0, 100, ax=plt.subplots()[1])  # lanes only
    assert len(ax.figure.axes) == 1 and "µs" in ax.get_xlabel()


# -- kernels side by side ---------------------------------------------------------------------
def test_compare_kernels_bars_from_table_or_runs(runs):
    """The table of kv.compare_kernels and a {kernel: Run} mapping draw the same bars."""
    table = kv.compare_kernels(SMALL, seed=1, simulate=lambda s, k, p, seed: runs[k])
    _fig, (left, right) = plt.subplots(1, 2)
    plot.compare_kernels(table, ax=left)
    plot.compare_kernels(runs, ax=right)
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
    ax = plot.compare_kernels(runs, metric="brownout_mean", ax=plt.subplots()[1])
    heights = [p.get_height() for p in ax.patches]
    expected = [100 * kv.summarize(runs[k])["brownout_mean"] for k in kv.KERNELS]
    np.testing.assert_allclose(heights, expected)
    assert ax.get_ylabel() == "%" and all(t.get_text().endswith("%") for t in ax.texts)
    with pytest.raises(KeyError, match="no metric"):
        plot.compare_kernels(runs, metric="p42")


def test_existing_views_label_their_units(runs):
    _fig, (a, b) = plt.subplots(1, 2)
    plot.stall_cdf(runs, ax=a)
    plot.brownout(runs, ax=b)
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
    table = contention = plot.contention_table(run)
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
    table = plot.contention_table(run)
    assert set(table["type"]) == {"spinlock"} and len(table) >= 2
    assert {tuple(k) for k in table[["type", "caller"]].to_numpy()} == set(_independent_groups(run))


def test_contention_text_is_laid_out_as_perf_prints_it(runs):
    text = plot.contention_text(runs["v5.12"])
    lines = text.splitlines()
    assert lines[0] == (" contended   total wait     max wait     avg wait         type   caller")
    assert lines[1] == ""
    table = plot.contention_table(runs["v5.12"])
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
    assert plot._perf_time(ns) == printed


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
