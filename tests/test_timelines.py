"""The timelines of kvmviz.timelines: lanes of who holds and who waits for mmu_lock, the queue
depth, and the fault retries with the notifier counters, checked on the artists themselves.

Small scenarios keep every simulation here well under a second.
"""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from _artists import face, gids, legend_texts, min_px, screen_widths
from matplotlib.colors import to_hex

import kvmviz as kv
from kvmviz import metrics, timelines
from kvmviz.engine import scripted_run
from kvmviz.theme import COLORS

# -- lock timeline -------------------------------------------------------------------------


def _retry_stretches(run) -> list[tuple[int, float, float]]:
    """Brute force, attempt by attempt: ``(vcpu, grant, next request)`` of every attempt that
    retried (to its release when it was the vCPU's last)."""
    out = []
    for _v, attempts in run.faults.groupby("vcpu", sort=True):
        attempts = attempts.sort_values("t_request_us")
        rows = list(attempts.itertuples())
        for k, a in enumerate(rows):
            if a.retry:
                until = rows[k + 1].t_request_us if k + 1 < len(rows) else a.t_release_us
                out.append((int(a.vcpu), a.t_grant_us, until))
    return out


def test_lock_timeline_one_lane_per_vcpu(busy8):
    """At 8 vCPUs: a lane each plus the notifier lane, blue holds, dotted orange waits, and
    cross-hatched pale blue retries from the grant to the next request of the vCPU (the
    attempts that let go at once); the queue depth in its own axes below."""
    worst = busy8.notifiers.loc[busy8.notifiers["wait_us"].idxmax()]
    start, end = worst["t_arrive_us"] - 20, worst["t_arrive_us"] + 40
    ax = timelines.lock_timeline(busy8, start, end)
    lanes, queue = ax.figure.axes
    assert lanes is ax
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["notifiers", *(f"vCPU {v}" for v in range(8))]
    drawn = gids(ax, "lane-")
    stretches = _retry_stretches(busy8)
    faults = busy8.faults
    in_window = faults[(faults["t_request_us"] < end) & (faults["t_release_us"] > start)]
    retried = 0
    for v, attempts in in_window.groupby("vcpu"):
        held = attempts[~attempts["retry"]]
        assert len(drawn[f"lane-vcpu{v}-read"].get_paths()) == len(held)
        assert len(drawn[f"lane-vcpu{v}-wait"].get_paths()) == int((attempts["wait_us"] > 0).sum())
        mine = sorted((g, u) for w, g, u in stretches if w == v and g < end and u > start)
        bars = drawn[f"lane-vcpu{v}-retry"]
        got = sorted((p.vertices[0, 0], p.vertices[2, 0]) for p in bars.get_paths())
        np.testing.assert_allclose(got, mine)
        retried += len(mine)
    assert retried >= 3
    assert face(drawn["lane-vcpu0-read"]) == COLORS["read"]
    assert face(drawn["lane-vcpu0-retry"]) == "#aad0e5"
    assert drawn["lane-vcpu0-retry"].get_hatch() == "xxx"
    assert face(drawn["lane-notifier-write"]) == COLORS["write"]
    assert face(drawn["lane-notifier-wait"]) == COLORS["wait"]
    assert drawn["lane-notifier-wait"].get_hatch() == "..."
    assert len(drawn["lane-notifier-wait"].get_paths()) >= 1  # the worst writer did wait
    assert ax.get_xlabel() == "" and "µs" in queue.get_xlabel()
    assert "waiting" in queue.get_ylabel()


def test_the_notifier_lane_marks_where_each_callback_asks(busy8):
    """A triangle where each callback that takes the lock arrives in the window (its wait,
    then its hold, start there), none for the callbacks that skip it; named in the legend."""
    start, end = 1_000.0, 2_000.0
    ax = timelines.lock_timeline(busy8, start, end)
    asks = gids(ax, "lane-notifier-asks")["lane-notifier-asks"]
    n = busy8.notifiers
    arriving = n[n["locked"] & (n["t_arrive_us"] >= start) & (n["t_arrive_us"] < end)]
    assert len(arriving) >= 3
    np.testing.assert_allclose(np.sort(asks.get_xdata()), np.sort(arriving["t_arrive_us"]))
    assert asks.get_marker() == ">"
    assert "callback asks for it" in legend_texts(ax)


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
    drawn = gids(ax, "lane-")
    assert not any(g.startswith("lane-vcpu") for g in drawn)
    states = ("read", "retry", "wait")
    assert {f"lane-group{i}-{s}" for i in range(8) for s in states} <= set(drawn)
    assert "374 faulting vCPUs of 416" in ax.get_title(loc="left")
    assert "holding / retrying / waiting" in ax.get_title(loc="left")
    assert "ms" not in ax.figure.axes[1].get_xlabel()  # a 1 ms window is labelled in µs
    timelines.lock_timeline(big416, 0, 2_000, ax=plt.subplots()[1])
    assert "(ms)" in plt.gca().get_xlabel()


def _area(collection) -> float:
    """The area a fill_between covers, in data units (shoelace over its polygons)."""
    total = 0.0
    for path in collection.get_paths():
        for poly in path.to_polygons():
            x, y = poly[:, 0], poly[:, 1]
            total += abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2
    return total


@pytest.fixture(scope="module")
def static512():
    """Figure 4.3's run: the static setup (416 vCPUs, every notification spurious), v5.12."""
    return kv.simulate(kv.presets.static_setup(), "v5.12", seed=0)


def test_grouped_lanes_are_the_shares_of_holding_retrying_and_waiting(static512):
    """Each grouped lane's three areas are, over the window, the lane's vCPU time holding (the
    attempts that stuck), retrying (grant to next request, brute force attempt by attempt) and
    waiting, over its vCPUs, times the lane's height: nothing double-counted, none lost."""
    run = static512
    first = run.notifiers[run.notifiers["locked"]].iloc[0]
    start, end = metrics.whole_stalls(run, first.t_arrive_us - 150, first.t_release_us + 400)
    ax = timelines.lock_timeline(run, start, end)
    drawn = gids(ax, "lane-group")
    bounds = np.linspace(0, run.scenario.n_faulting, 9).round().astype(int)
    f = run.faults
    stretches = _retry_stretches(run)
    lost = {"retry": 0.0}  # vCPU µs retrying, all lanes
    for lane, (a, b) in enumerate(itertools.pairwise(bounds)):
        mine = f[(f["vcpu"] >= a) & (f["vcpu"] < b)]
        held = mine[~mine["retry"]]
        expected = {
            "read": (held["t_grant_us"].clip(start, end), held["t_release_us"].clip(start, end)),
            "wait": (mine["t_request_us"].clip(start, end), mine["t_grant_us"].clip(start, end)),
        }
        for state, (lo, hi) in expected.items():
            want = 1.3 * float((hi - lo).sum()) / (b - a)
            assert _area(drawn[f"lane-group{lane}-{state}"]) == pytest.approx(want, rel=1e-6)
        retry = sum(
            min(u, end) - max(g, start)
            for v, g, u in stretches
            if a <= v < b and g < end and u > start
        )
        assert _area(drawn[f"lane-group{lane}-retry"]) == pytest.approx(1.3 * retry / (b - a))
        lost["retry"] += retry
    # Some 16.6 ms of vCPU time retrying in the window: hundreds of faults, 35 µs each.
    assert lost["retry"] > 10_000
    assert any(t.startswith("fault retries: granted") for t in legend_texts(ax))


def test_after_the_writers_leave_the_lanes_show_the_readers_retrying(static512):
    """Figure 4.3's moment: when the third writer of the chain leaves, the faults it lets in
    are granted and retry at once; in the 30 µs after, every lane is more retrying than
    anything else (it used to go blank: their holds last a tenth of a µs)."""
    run = static512
    n = run.notifiers[run.notifiers["locked"]]
    # Event 0's end and event 1's start leave 0.14 µs apart: the chain's last two writers.
    released = float(n["t_release_us"].iloc[1])
    f = run.faults
    granted = f[(f["t_grant_us"] >= released) & (f["t_grant_us"] < released + 1.0)]
    assert len(granted) > 100 and granted["retry"].mean() > 0.9
    start, end = released, released + 30.0
    ax = timelines.lock_timeline(run, start, end)
    drawn = gids(ax, "lane-group")
    for lane in range(8):
        areas = {s: _area(drawn[f"lane-group{lane}-{s}"]) for s in ("read", "retry", "wait")}
        assert areas["retry"] > areas["read"] + areas["wait"], (lane, areas)


def test_lock_timeline_checks_its_window(busy8):
    """An empty window is refused; with one axes given, only the lanes are drawn (no queue-depth
    axes), and the x axis of a 100 µs window is labelled in µs."""
    with pytest.raises(ValueError, match="after"):
        timelines.lock_timeline(busy8, 10, 10)
    ax = timelines.lock_timeline(busy8, 0, 100, ax=plt.subplots()[1])  # lanes only
    assert len(ax.figure.axes) == 1 and "µs" in ax.get_xlabel()


def test_a_40_ns_write_hold_is_min_span_wide_in_a_2_ms_window(big416):
    """The notifier lane's write holds (tens of ns) are at least MIN_SPAN_PT wide on screen
    in a 2 ms window of the 416-vCPU VM."""
    ax = timelines.lock_timeline(big416, 0, 2_000)
    ax.figure.canvas.draw()
    write = gids(ax, "lane-notifier-")["lane-notifier-write"]
    widths = screen_widths(ax, write)
    assert len(widths) >= 1
    assert widths.min() >= min_px(ax.figure) - 1e-6


def test_timeline_legend_lists_only_the_states_drawn(busy8, calm8):
    """v5.12 takes the lock on every callback: no "skips it" entry; v5.15 skips the misses:
    the entry is there; a window where nobody waits has no "waits" entry; a scene where no
    fault retries has no "retries" entry; the entries keep one order."""
    worst = busy8.notifiers.loc[busy8.notifiers["wait_us"].idxmax()]
    ax = timelines.lock_timeline(
        busy8, *metrics.whole_stalls(busy8, worst.t_arrive_us, worst.t_grant_us)
    )
    labels = legend_texts(ax)
    assert labels[:5] == [
        "fault holds mmu_lock\nfor read",
        "fault retries: granted, found\nthe range in flight or seq moved,\n"
        "let go at once, faults again",
        "notifier holds it\nfor write",
        "waits for it",
        "callback asks for it",
    ]
    assert "callback skips it" not in labels
    storm = busy8.scenario
    v515 = kv.simulate(storm, kernel="v5.15", seed=0)
    skipped = v515.notifiers[~v515.notifiers["locked"]].iloc[0]
    ax = timelines.lock_timeline(v515, skipped.t_arrive_us - 5, skipped.t_arrive_us + 5)
    assert "callback skips it" in legend_texts(ax)
    ax = timelines.lock_timeline(busy8, *calm8)
    assert not any(t.startswith("waits") for t in legend_texts(ax))
    scene = scripted_run([0, 1, 3], [False, True, False], [6, 2, 3])
    labels = legend_texts(timelines.lock_timeline(scene, 0, 12))
    assert not any(t.startswith("fault retries") for t in labels)
    assert labels[:4] == ["fault holds mmu_lock\nfor read", "notifier holds it\nfor write",
                          "waits for it", "callback asks for it"]  # fmt: skip


def test_holds_under_a_spinlock_are_never_labelled_for_read():
    """Under the spinlock policy every holder is exclusive: neither timeline calls a fault's
    hold "for read", and the lock timeline's title says spinlock."""
    tiny = kv.Scenario(n_vcpus=3, faulting_share=1.0, guest_run_us=10, duration_us=400)
    run = kv.simulate(tiny, kernel="v5.12", policy="spinlock", seed=0)
    ax = timelines.lock_timeline(run, 0, 400)
    labels = legend_texts(ax)
    assert "fault holds mmu_lock\n(exclusive: spinlock)" in labels
    assert not any("read" in label for label in labels)
    assert "spinlock" in ax.get_title(loc="left")
    ax = timelines.retry_timeline(run, 0, 400)
    assert not any("for read" in label for label in legend_texts(ax))
    qrw = kv.simulate(tiny, kernel="v5.12", seed=0)
    assert "holds it\nfor read" in legend_texts(timelines.retry_timeline(qrw, 0, 400))


def test_lock_timeline_marks_notifier_arrivals(busy8):
    """With arrivals, one dotted line and one triangle per notification event arriving in the
    window (its first callback), vermilion for a hit, grey for a miss, each named in the
    legend; without (the default), none: the figure is the one drawn before the option."""
    run = kv.simulate(busy8.scenario.replace(spurious_share=0.5), kernel="v5.12", seed=0)
    start, end = 0.0, 1_500.0
    events = run.notifiers.drop_duplicates("event")
    arriving = events[(events["t_arrive_us"] >= start) & (events["t_arrive_us"] < end)]
    hits = arriving[arriving["hit"]]
    misses = arriving[~arriving["hit"]]
    assert len(hits) >= 1 and len(misses) >= 1
    ax = timelines.lock_timeline(run, start, end, arrivals=True)
    drawn = gids(ax, "arrivals-")
    for key, expected in (("hit", hits), ("miss", misses)):
        segments = drawn[f"arrivals-{key}"].get_segments()
        np.testing.assert_allclose(sorted(s[0, 0] for s in segments), expected["t_arrive_us"])
        assert all(s[0, 1] == -0.2 and s[1, 1] == ax.get_ylim()[0] for s in segments)
        np.testing.assert_allclose(
            drawn[f"arrivals-{key}-mark"].get_xdata(), [s[0, 0] for s in segments]
        )
    assert to_hex(drawn["arrivals-hit"].get_color()[0]) == COLORS["hit"]
    assert to_hex(drawn["arrivals-miss"].get_color()[0]) == COLORS["miss"]
    labels = legend_texts(ax)
    assert labels[-2:] == ["notification arrives\n(hits guest memory)",
                           "notification arrives\n(misses: spurious)"]  # fmt: skip
    plain = timelines.lock_timeline(run, start, end)
    assert not gids(plain, "arrivals-")
    assert not any(label.startswith("notification") for label in legend_texts(plain))


def test_lock_timeline_moves_in_place(busy8):
    """A LockTimeline redraws another window or kernel into the same axes: the x limits are
    the window's, the lanes' artists those a fresh lock_timeline draws for it, the axes and
    their lane labels the same objects; windows outside the run, empty ones and a run of
    another VM are refused, naming what was expected."""
    timeline = timelines.LockTimeline(busy8, 100.0, 400.0)
    lanes, queue = timeline.lanes, timeline.queue
    assert timeline.xlim_us() == (100.0, 400.0)
    v515 = kv.simulate(busy8.scenario, kernel="v5.15", seed=0)
    for run, window in ((busy8, (1_000.0, 1_200.0)), (v515, (1_000.0, 1_200.0)),
                        (v515, (0.0, 3_000.0))):  # fmt: skip
        moving = timeline.show(run, *window)
        assert (timeline.lanes, timeline.queue) == (lanes, queue)
        assert timeline.window == window and timeline.run is run
        assert timeline.xlim_us() == window
        scale = 1e-3 if window[1] - window[0] >= 2_000 else 1.0
        assert lanes.get_xlim() == (window[0] * scale, window[1] * scale)
        assert queue.get_xlim() == lanes.get_xlim()
        fresh = timelines.lock_timeline(run, *window, arrivals=True)
        got, want = gids(lanes), gids(fresh)
        assert got.keys() == want.keys()
        for gid, artist in want.items():
            assert _size(got[gid]) == _size(artist), gid
        assert legend_texts(lanes) == legend_texts(fresh)
        assert lanes.get_title(loc="left") == fresh.get_title(loc="left")
        assert lanes.get_legend() in moving and lanes.xaxis in moving and queue.yaxis in moving
        assert [t.get_text() for t in lanes.get_yticklabels()] == [
            "notifiers",
            *(f"vCPU {v}" for v in range(8)),
        ]
    assert "v5.15" in lanes.get_title(loc="left")
    with pytest.raises(ValueError, match="expected end_us after start_us"):
        timeline.show(start_us=500, end_us=500)
    with pytest.raises(
        ValueError, match="outside the run: expected 0 <= start_us < end_us <= 3000"
    ):
        timeline.show(start_us=-1, end_us=10)
    with pytest.raises(ValueError, match="outside the run"):
        timeline.show(start_us=2_900, end_us=3_100)
    with pytest.raises(ValueError, match="two numbers"):
        timeline.show(start_us="soon", end_us=10)
    other = kv.simulate(busy8.scenario.replace(n_vcpus=4, duration_us=500), "v5.12", seed=0)
    with pytest.raises(ValueError, match="expected a run with the lanes drawn, 8 vCPUs"):
        timeline.show(other, 0, 100)
    assert timeline.window == (0.0, 3_000.0)  # a refused window leaves the drawing as it was
    with pytest.raises(ValueError, match="pair of Axes"):
        timelines.LockTimeline(busy8, 0, 100, ax=plt.subplots()[1])


def _size(artist) -> int:
    """How many bars, polygons or points an artist holds."""
    return len(artist.get_paths()) if hasattr(artist, "get_paths") else len(artist.get_xdata())


def test_check_window_names_what_it_expects():
    """A window is two numbers, the end after the start, both inside the run."""
    assert timelines.check_window(0, 10, 20.0) == (0.0, 10.0)
    assert timelines.check_window(5, 20, 20.0) == (5.0, 20.0)
    for bad, message in (((3, 3), "after"), ((4, 2), "after"), ((-0.5, 2), "outside the run"),
                         ((0, 20.5), "outside the run"), ((None, 2), "two numbers")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            timelines.check_window(*bad, 20.0)


# -- retry timeline ------------------------------------------------------------------------


def test_retry_timeline_marks_each_snapshot_and_retry():
    """One dot per fault attempt where it samples mmu_notifier_seq (at Run.faults'
    t_snapshot_us), one cross per attempt sent back by mmu_notifier_retry_hva(), and the counters
    below as steps; more vCPUs than lanes are refused."""
    tiny = kv.Scenario(n_vcpus=3, faulting_share=1.0, guest_run_us=10, duration_us=400)
    run = kv.simulate(tiny, kernel="v5.12", seed=0)
    ax = timelines.retry_timeline(run, 0, 400)
    lanes, counters = ax.figure.axes
    faults = run.faults
    shown = faults[(faults["t_snapshot_us"] < 400) & (faults["t_release_us"] > 0)]
    dots = [line for line in lanes.get_lines() if line.get_marker() == "o"]
    assert sum(len(line.get_xdata()) for line in dots) == len(shown)
    np.testing.assert_allclose(
        np.sort(np.concatenate([line.get_xdata() for line in dots])),
        np.sort(shown["t_snapshot_us"].to_numpy()),
    )
    crosses = {line.get_gid(): line for line in lanes.get_lines() if line.get_marker() == "X"}
    assert sum(len(line.get_xdata()) for line in crosses.values()) == int(shown["retry"].sum())
    assert {line.get_gid() for line in counters.get_lines()} == {"counter-seq", "counter-count"}
    assert counters.get_xlabel() == "simulated time (µs)"
    assert [t.get_text() for t in lanes.get_yticklabels()] == [
        "notifiers", "vCPU 0", "vCPU 1", "vCPU 2"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="do not fit in 2 lanes"):
        timelines.retry_timeline(run, 0, 400, max_lanes=2)


def test_the_counters_carry_the_names_of_the_runs_kernel():
    """The retry timeline names the counters as the run's kernel does: mmu_notifier_seq and
    mmu_notifier_count up to v5.19, mmu_invalidate_seq and mmu_invalidate_in_progress from
    v6.0 (20ec3ebd707c), in the legend and at the counters' right end."""
    tiny = kv.Scenario(n_vcpus=3, faulting_share=1.0, guest_run_us=10, duration_us=400)
    for kernel, seq, count in (
        ("v5.15", "mmu_notifier_seq", "mmu_notifier_count"),
        ("v6.7", "mmu_invalidate_seq", "mmu_invalidate_in_progress"),
    ):
        ax = timelines.retry_timeline(kv.simulate(tiny, kernel=kernel, seed=0), 0, 400)
        counters = ax.figure.axes[1]
        assert {t.get_text() for t in counters.texts} >= {seq, count}, kernel
        assert f"samples\n{seq}" in legend_texts(ax), kernel
        other = "mmu_invalidate" if kernel == "v5.15" else "mmu_notifier"
        assert not any(other in t.get_text() for t in counters.texts), kernel


# -- the freeze timeline (chapter 08) ---------------------------------------------------------
@pytest.fixture(scope="module")
def small_freeze():
    """The exercises' small freeze on v6.7 (the zap yields, futile reads) and v6.8 (spins)."""
    return {k: kv.simulate(kv.exercises.FREEZE_SCENE, k, seed=1) for k in ("v6.7", "v6.8")}


def test_freeze_timeline_draws_each_write_hold_and_yield(small_freeze):
    """The zap lane has one bar per write hold of ``run.write_holds`` in the window, and a
    triangle at the release of each hold that ended in a yield; the legend counts the yields,
    the futile reads and (on v6.8) the spins of the window."""
    run = small_freeze["v6.7"]
    start, end = timelines.freeze_window(run)
    ax = timelines.freeze_timeline(run)
    holds = run.write_holds
    shown = holds[(holds.t_request_us < end) & (holds.t_release_us >= start)]
    bars = gids(ax, "lane-zap-write")["lane-zap-write"]
    assert len(bars.get_paths()) == len(shown) > 2
    yields = gids(ax, "zap-yields")["zap-yields"]
    expected = shown.t_release_us[shown.yielded].to_numpy()
    np.testing.assert_allclose(yields.get_xdata(), expected[expected <= end])
    futile = int(run.faults.retry.sum())
    texts = legend_texts(ax)
    assert any(t.endswith(f"{len(expected):,} times") for t in texts), texts
    assert any(t.endswith(f"faults again: {futile:,}") for t in texts), texts
    assert not any("spins" in t for t in texts)  # v6.7 has no pre-check


def test_freeze_timeline_marks_futile_reads_and_spins_per_vcpu(small_freeze):
    """Each vCPU lane: one retry bar per futile read of that vCPU, drawn from its grant; on
    v6.8 one spin bar per attempt that retried without the lock, from its first exit to its
    last sample of seq."""
    for kernel, run in small_freeze.items():
        ax = timelines.freeze_timeline(run)
        _start, end = timelines.freeze_window(run)
        f = run.faults
        for v in range(run.scenario.n_vcpus):
            mine = f[(f.vcpu == v) & (f.t_request_us < end)]
            retry = gids(ax, f"lane-vcpu{v}-retry")[f"lane-vcpu{v}-retry"]
            futile = mine[mine.retry]
            starts = sorted(p.vertices[:, 0].min() for p in retry.get_paths())
            assert starts == pytest.approx(sorted(futile.t_grant_us * 1.0))  # µs: a 1-µs scale
            spin = gids(ax, f"lane-vcpu{v}-spin")[f"lane-vcpu{v}-spin"]
            spun = mine[mine.spins > 0]
            assert len(spin.get_paths()) == len(spun)
            if kernel == "v6.7":
                assert spun.empty
        if kernel == "v6.8":
            assert (f.spins > 0).any()
            assert any("spins without the lock" in t for t in legend_texts(ax))


def test_freeze_window_is_the_longest_zap_padded(small_freeze):
    """The window runs from a little before the longest invalidate_range_start asks for the
    lock to a little after its last release; a run with no zap is refused by name."""
    run = small_freeze["v6.7"]
    n = run.notifiers
    zap = n[(n.callback == "invalidate_range_start") & n.locked].iloc[0]
    start, end = timelines.freeze_window(run)
    assert start < zap.t_arrive_us < zap.t_release_us < end
    assert end - zap.t_release_us == pytest.approx(0.08 * (zap.t_release_us - zap.t_arrive_us))
    quiet = kv.simulate(kv.exercises.FREEZE_SCENE.replace(numa_scan_period_ms=0.0), "v6.7")
    with pytest.raises(ValueError, match="no invalidate_range_start that took mmu_lock"):
        timelines.freeze_window(quiet)
