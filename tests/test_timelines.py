"""The timelines of kvmviz.timelines: lanes of who holds and who waits for mmu_lock, the queue
depth, and the fault retries with the notifier counters, checked on the artists themselves.

Small scenarios keep every simulation here well under a second.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from _artists import face, gids, legend_texts, min_px, screen_widths

import kvmviz as kv
from kvmviz import metrics, timelines
from kvmviz.theme import COLORS

# -- lock timeline -------------------------------------------------------------------------


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
    drawn = gids(ax, "lane-")
    faults = busy8.faults
    in_window = faults[(faults["t_request_us"] < end) & (faults["t_release_us"] > start)]
    for v, attempts in in_window.groupby("vcpu"):
        assert len(drawn[f"lane-vcpu{v}-read"].get_paths()) == len(attempts)
        assert len(drawn[f"lane-vcpu{v}-wait"].get_paths()) == int((attempts["wait_us"] > 0).sum())
    assert face(drawn["lane-vcpu0-read"]) == COLORS["read"]
    assert face(drawn["lane-notifier-write"]) == COLORS["write"]
    assert face(drawn["lane-notifier-wait"]) == COLORS["wait"]
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
    drawn = gids(ax, "lane-")
    assert not any(g.startswith("lane-vcpu") for g in drawn)
    assert {f"lane-group{i}-{s}" for i in range(8) for s in ("read", "wait")} <= set(drawn)
    assert "374 faulting vCPUs of 416" in ax.get_title(loc="left")
    assert "ms" not in ax.figure.axes[1].get_xlabel()  # a 1 ms window is labelled in µs
    timelines.lock_timeline(big416, 0, 2_000, ax=plt.subplots()[1])
    assert "(ms)" in plt.gca().get_xlabel()


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


def test_timeline_legend_lists_only_the_states_drawn(busy8):
    """v5.12 takes the lock on every callback: no "skips it" entry; v5.15 skips the misses:
    the entry is there; a window where nobody waits has no "waits" entry."""
    worst = busy8.notifiers.loc[busy8.notifiers["wait_us"].idxmax()]
    ax = timelines.lock_timeline(
        busy8, *metrics.whole_stalls(busy8, worst.t_arrive_us, worst.t_grant_us)
    )
    labels = legend_texts(ax)
    assert labels[:3] == ["fault holds mmu_lock\nfor read", "notifier holds it\nfor write",
                          "waits for it"]  # fmt: skip
    assert "callback skips it" not in labels
    storm = busy8.scenario
    v515 = kv.simulate(storm, kernel="v5.15", seed=0)
    skipped = v515.notifiers[~v515.notifiers["locked"]].iloc[0]
    ax = timelines.lock_timeline(v515, skipped.t_arrive_us - 5, skipped.t_arrive_us + 5)
    assert "callback skips it" in legend_texts(ax)
    lock = busy8.lock
    calm = _calm_window(lock)
    ax = timelines.lock_timeline(busy8, *calm)
    assert not any(t.startswith("waits") for t in legend_texts(ax))


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
    labels = legend_texts(ax)
    assert "fault holds mmu_lock\n(exclusive: spinlock)" in labels
    assert not any("read" in label for label in labels)
    assert "spinlock" in ax.get_title(loc="left")
    ax = timelines.retry_timeline(run, 0, 400)
    assert not any("for read" in label for label in legend_texts(ax))
    qrw = kv.simulate(tiny, kernel="v5.12", seed=0)
    assert "holds it\nfor read" in legend_texts(timelines.retry_timeline(qrw, 0, 400))


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
