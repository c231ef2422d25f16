"""The metrics of a run, on hand-built tables, and the per-kernel table every front end prints.

A reader-preferring lock makes the readers' stall vanish by starving the writers: the numbers
below show why the per-kernel table (``summarize``, ``compare_kernels``, ``kvmviz simulate``,
the toggle dashboard) must carry the writers' wait beside the readers' stall.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kvmviz as kv
from kvmviz import cli, metrics
from kvmviz.experiments import compare_kernels
from kvmviz.metrics import (
    KERNEL_TABLE_COLUMNS,
    brownout,
    notifier_counters,
    stall_stats,
    summarize,
)
from kvmviz.run import Run

# A small seeded VM on v5.12: every notification takes mmu_lock for write (about 50 of them).
SMALL = kv.Scenario(n_vcpus=64, duration_us=20_000.0)


def _run(faults: dict, notifiers: dict, *, n_vcpus: int = 2, duration_us: float = 1000.0):
    """A Run with hand-written tables: only the columns the metrics read."""
    scenario = kv.Scenario(n_vcpus=n_vcpus, duration_us=duration_us)
    return Run(scenario, "v5.12", "qrwlock", 0, pd.DataFrame(faults), pd.DataFrame(notifiers))


# Two vCPUs, three faults, four attempts. vCPU 0 faults once and never waits. vCPU 1's first
# fault exits at 90, asks at 100, waits 30 µs behind callback 0 (a miss), then finds callback
# 1's invalidation in flight and retries: that attempt is lost from 90 to 140 (20 µs besides its
# wait). Its second attempt installs at 160. Its next fault waits 10 µs behind callback 1 (a
# hit). Three callbacks: two take mmu_lock after waiting 4 and 8 µs, one skips it.
FAULTS = {
    "vcpu": [0, 1, 1, 1],
    "fault": [0, 0, 0, 1],
    "t_exit_us": [0.0, 90.0, 140.0, 190.0],
    "t_request_us": [2.0, 100.0, 150.0, 200.0],
    "t_grant_us": [2.0, 130.0, 150.0, 210.0],
    "t_release_us": [3.0, 131.0, 160.0, 215.0],
    "wait_us": [0.0, 30.0, 0.0, 10.0],
    "retries": [0, 0, 1, 0],
    "retry": [False, True, False, False],
    "blocked_by": [-1, 0, -1, 1],
    "retried_by": [-1, 1, -1, -1],
}
NOTIFIERS = {
    "locked": [True, True, False],
    "wait_us": [4.0, 8.0, 0.0],
    "hit": [False, True, False],
    "cause": ["vmm_self", "migration", "vmm_aging"],
}


def test_wait_stats_of_a_hand_built_run():
    """Per attempt: mean, median, p99 (numpy's linear interpolation), max, the share that
    waited, the sum."""
    stats = metrics.wait_stats(_run(FAULTS, NOTIFIERS))
    assert stats.to_dict() == pytest.approx(
        {
            "wait_mean_us": 10.0,
            "wait_p50_us": 5.0,
            "wait_p99_us": 10.0 + 0.97 * 20.0,  # between the 3rd (10) and 4th (30) of 4 waits
            "wait_max_us": 30.0,
            "waited_share": 0.5,
            "wait_total_ms": 0.04,
        }
    )


def test_fault_stalls_split_each_fault_into_wait_retries_and_work():
    """Each fault from its first exit to its install: the waits, the retried attempt (exit to
    next exit, less its wait) and the work of the attempt that installed."""
    table = metrics.fault_stalls(_run(FAULTS, NOTIFIERS))
    assert table[["vcpu", "fault", "attempts"]].values.tolist() == [[0, 0, 1], [1, 0, 2], [1, 1, 1]]
    assert table["latency_us"].tolist() == [3.0, 70.0, 25.0]
    assert table["wait_us"].tolist() == [0.0, 30.0, 10.0]
    assert table["retried_us"].tolist() == [0.0, 20.0, 0.0]
    assert table["work_us"].tolist() == [3.0, 20.0, 15.0]
    assert table["stall_miss_us"].tolist() == [0.0, 30.0, 0.0]
    assert table["stall_hit_us"].tolist() == [0.0, 20.0, 10.0]
    parts = table["wait_us"] + table["retried_us"] + table["work_us"]
    assert parts.tolist() == table["latency_us"].tolist()


def test_stall_stats_of_a_hand_built_run():
    """Per fault (stalls 0, 50 and 10 µs): mean, median, p99, max, the share that stalled."""
    stats = stall_stats(_run(FAULTS, NOTIFIERS))
    assert stats.to_dict() == pytest.approx(
        {
            "stall_mean_us": 20.0,
            "stall_p50_us": 10.0,
            "stall_p99_us": 10.0 + 0.98 * 40.0,
            "stall_max_us": 50.0,
            "stalled_share": 2 / 3,
            "stall_total_ms": 0.06,
            "latency_mean_us": 98 / 3,
            "latency_p99_us": 25.0 + 0.98 * 45.0,
        }
    )


def test_stall_split_owes_each_piece_to_its_callback():
    """30 µs behind the miss (the wait), 30 µs to the hit (its retry and a wait): of 2 vCPUs
    over 1 ms, 1.5 % of the vCPU time each, summing to the brownout."""
    run = _run(FAULTS, NOTIFIERS)
    split = metrics.stall_split(run)
    assert split[["behind", "cause"]].values.tolist() == [
        ["miss", "vmm_self"],
        ["hit", "migration"],
    ]
    assert split["brownout"].tolist() == pytest.approx([0.015, 0.015])
    assert split["stall_ms"].tolist() == pytest.approx([0.03, 0.03])
    assert split["faults"].tolist() == [1, 2]
    s = summarize(run)
    assert s["brownout_mean"] == pytest.approx(split["brownout"].sum())
    assert (s["brownout_miss"], s["brownout_hit"], s["brownout_fault"]) == pytest.approx(
        (0.015, 0.015, 0.0)
    )


def test_stall_stats_of_a_run_without_faults_is_all_zero():
    """No fault attempt: every statistic is 0, not NaN."""
    empty = {k: [] for k in FAULTS}
    stats = stall_stats(_run(empty, NOTIFIERS))
    assert set(stats.to_dict().values()) == {0.0}
    assert set(metrics.wait_stats(_run(empty, NOTIFIERS)).to_dict().values()) == {0.0}


def test_brownout_integrates_each_stalled_interval_over_its_bins():
    """One vCPU of 2 waits from 100 to 600 µs: 150, 250 and 100 µs fall in the first three
    250 µs bins, so the shares are 150/500, 250/500, 100/500 and 0."""
    faults = {k: [v[0]] for k, v in FAULTS.items()}
    faults.update(t_request_us=[100.0], t_grant_us=[600.0], t_release_us=[601.0])
    faults.update(wait_us=[500.0], blocked_by=[0])
    curve = brownout(_run(faults, NOTIFIERS), bin_us=250.0)
    assert curve["t_us"].tolist() == [0.0, 250.0, 500.0, 750.0]
    assert curve["stalled_share"].tolist() == pytest.approx([0.3, 0.5, 0.2, 0.0])
    # The default: 200 bins over the duration, and the same vCPU time in total.
    fine = brownout(_run(faults, NOTIFIERS))
    assert len(fine) == 200
    assert fine["stalled_share"].sum() * 5.0 * 2 == pytest.approx(500.0)
    assert brownout(_run(faults, NOTIFIERS), behind="hit")["stalled_share"].sum() == 0.0
    with pytest.raises(ValueError, match="behind"):
        brownout(_run(faults, NOTIFIERS), behind="nobody")


def test_brownout_refuses_a_bin_that_is_not_positive():
    """A zero-width bin is refused by name."""
    with pytest.raises(ValueError, match="bin_us must be > 0"):
        brownout(_run(FAULTS, NOTIFIERS), bin_us=0.0)


def test_summarize_of_a_hand_built_run():
    """Faults are counted whole; the writers' wait is over the callbacks that took the lock."""
    s = summarize(_run(FAULTS, NOTIFIERS))
    assert s.name == "v5.12 qrwlock"
    assert {k: s[k] for k in ("faults", "faults_retried", "notifier_callbacks")} == {
        "faults": 3,
        "faults_retried": 1,
        "notifier_callbacks": 3,
    }
    assert (s["lock_taken"], s["lock_avoided"]) == (2, 1)
    assert (s["writer_wait_mean_us"], s["writer_wait_max_us"]) == (6.0, 8.0)  # not 4.0: 0 skipped
    assert s["wait_p99_us"] == pytest.approx(29.4)
    assert s["stall_p99_us"] == pytest.approx(49.2)
    assert set(KERNEL_TABLE_COLUMNS) <= set(s.index)


def test_summarize_when_no_callback_took_the_lock_says_zero_writer_wait():
    """No callback took the lock: the writers waited 0 µs, not NaN."""
    s = summarize(_run(FAULTS, {**NOTIFIERS, "locked": [False] * 3, "wait_us": [0.0] * 3}))
    assert (s["writer_wait_mean_us"], s["writer_wait_max_us"], s["lock_taken"]) == (0.0, 0.0, 0)


@settings(max_examples=25, deadline=None)
@given(
    n_vcpus=st.integers(1, 24),
    spurious=st.floats(0, 1),
    kernel=st.sampled_from(kv.kernels.KERNELS_2021),
    policy=st.sampled_from(kv.POLICIES),
    tdp_mmu=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_stall_pieces_of_a_vcpu_never_overlap_and_add_up(
    n_vcpus, spurious, kernel, policy, tdp_mmu, seed
):
    """On any run: a vCPU's stall pieces are disjoint and lie inside its faults; each fault's
    latency is its waits, retries and work; the parts owed to misses, hits and faults make up
    the stall; the brownout's parts make up the brownout; v5.15 owes nothing to a miss."""
    scenario = kv.Scenario(
        n_vcpus=n_vcpus,
        duration_us=1_500.0,
        guest_run_us=20.0,
        notifier_rate_hz=20_000.0,
        spurious_share=spurious,
        tdp_mmu=tdp_mmu,
    )
    run = kv.simulate(scenario, kernel, policy, seed=seed)
    pieces = metrics.stall_pieces(run)
    for _, mine in pieces.groupby("vcpu"):
        start, end = mine["t_start_us"].to_numpy(), mine["t_end_us"].to_numpy()
        order = np.argsort(start)
        assert (start[order][1:] >= end[order][:-1] - 1e-9).all()
    stalls = metrics.fault_stalls(run, pieces)
    parts = stalls["wait_us"] + stalls["retried_us"] + stalls["work_us"]
    np.testing.assert_allclose(parts, stalls["latency_us"])
    assert (stalls["work_us"] > -1e-9).all()
    behind = stalls[["stall_miss_us", "stall_hit_us", "stall_fault_us"]].sum(axis=1)
    np.testing.assert_allclose(behind, stalls["stall_us"], atol=1e-9)
    s = summarize(run)
    assert s["brownout_mean"] == pytest.approx(
        s["brownout_miss"] + s["brownout_hit"] + s["brownout_fault"], abs=1e-12
    )
    if kernel == "v5.15":
        assert s["brownout_miss"] == 0.0
    if not scenario.faults_write(policy):
        assert s["brownout_fault"] == 0.0


@pytest.fixture(scope="module")
def by_policy() -> dict:
    return {p: summarize(kv.simulate(SMALL, "v5.12", p, seed=0)) for p in kv.POLICIES}


def test_reader_pref_hides_the_stall_in_the_writers_wait(by_policy):
    """Under reader-pref the faults' p99 wait collapses (0 µs here) while the notifiers wait
    longer, on average and at worst, than under the fair qrwlock: the writers starve."""
    fair, unfair = by_policy["qrwlock"], by_policy["reader-pref"]
    assert unfair["wait_p99_us"] < fair["wait_p99_us"]
    assert unfair["wait_p99_us"] == 0.0 and fair["wait_p99_us"] > 10.0
    assert unfair["writer_wait_mean_us"] > 1.5 * fair["writer_wait_mean_us"]
    assert unfair["writer_wait_max_us"] > fair["writer_wait_max_us"]
    # The same notifications took the lock under both: only who waited changed.
    assert unfair["lock_taken"] == fair["lock_taken"] == by_policy["spinlock"]["lock_taken"]


def test_compare_kernels_carries_the_writers_wait_for_every_kernel():
    """compare_kernels has every column of KERNEL_TABLE_COLUMNS for each kernel, and
    fewer callbacks take the lock from v5.12 to v5.15."""
    table = compare_kernels(SMALL, policy="reader-pref", seed=0)
    assert table.index.tolist() == list(kv.kernels.KERNELS_2021)
    assert list(table[list(KERNEL_TABLE_COLUMNS)].columns) == list(KERNEL_TABLE_COLUMNS)
    # v5.12 locks on every callback, so its writers wait; v5.15 locks only on the few hits.
    assert table.loc["v5.12", "writer_wait_max_us"] > 0
    assert table["lock_taken"].tolist() == sorted(table["lock_taken"], reverse=True)


def test_kernel_table_ranks_by_the_whole_fault_and_keeps_the_writers_wait():
    """The brownout and its parts owed to misses and hits come first, then the per-fault
    stall, then the writers' mean and max wait right after it."""
    columns = list(KERNEL_TABLE_COLUMNS)
    assert columns[:3] == ["brownout_mean", "brownout_miss", "brownout_hit"]
    assert columns.index("writer_wait_mean_us") == columns.index("stall_mean_us") + 1


def test_cli_simulate_prints_the_writers_wait(capsys):
    """`kvmviz simulate` prints exactly the columns of KERNEL_TABLE_COLUMNS."""
    assert cli.main(["simulate", "--vcpus", "64", "--policy", "reader-pref", "-s", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if "brownout_mean" in line)
    assert header.split() == list(KERNEL_TABLE_COLUMNS)


# -- kvmviz.metrics: notifier_counters ----------------------------------------------------------
def test_counters_stay_balanced_and_v515_misses_change_nothing():
    """count never goes below 0 and ends at 0, seq only grows; on v5.15 misses change
    nothing, on v5.12 every end of a miss bumps seq."""
    scenario = kv.Scenario(n_vcpus=8, duration_us=5_000, notifier_rate_hz=10_000)
    for kernel in kv.kernels.KERNELS_2021:
        counters = notifier_counters(kv.simulate(scenario, kernel, seed=1))
        assert (counters["count"] >= 0).all()
        assert counters["count"].iloc[-1] == 0
        assert counters["seq"].is_monotonic_increasing
    misses = scenario.replace(spurious_share=1.0, spurious_pair_share=1.0)
    assert notifier_counters(kv.simulate(misses, "v5.15", seed=1)).empty
    v512 = kv.simulate(misses, "v5.12", seed=1)
    ends = (v512.notifiers["callback"] == "invalidate_range_end").sum()
    assert notifier_counters(v512)["seq"].iloc[-1] == ends


# -- windows, coverage and the perf table, on simulated runs ------------------------------------
PLOT_SMALL = kv.Scenario(n_vcpus=16, duration_us=5_000, guest_run_us=20, notifier_rate_hz=5_000)


@pytest.fixture(scope="module")
def runs():
    """A small fault storm on every kernel, same seed."""
    return {k: kv.simulate(PLOT_SMALL, kernel=k, seed=1) for k in kv.kernels.KERNELS_2021}


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
    """Under the spinlock policy every contended acquisition is of type `spinlock`."""
    busy = kv.Scenario(n_vcpus=4, duration_us=3_000, guest_run_us=5, notifier_rate_hz=5_000)
    run = kv.simulate(busy, "v5.12", policy="spinlock")
    table = metrics.contention_table(run)
    assert set(table["type"]) == {"spinlock"} and len(table) >= 2
    assert {tuple(k) for k in table[["type", "caller"]].to_numpy()} == set(_independent_groups(run))


def test_contention_text_is_laid_out_as_perf_prints_it(runs):
    """The header and columns of `perf lock contention`: one line per (type, caller)."""
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


def test_whole_stalls_keeps_a_calm_window_and_refuses_an_empty_one(busy8, calm8):
    """A window that cuts no stall comes back unchanged; an empty or mistyped one is refused."""
    calm = calm8
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


def test_queue_depth_by_holder_splits_the_waiters(busy8):
    """``holder="vcpu"`` counts the faults waiting (the vCPUs stalled), ``"notifier"`` the
    callbacks; at every step the two add up to the whole queue, and a fault-only count never
    exceeds the vCPUs."""
    import kvmviz as kv

    end = busy8.scenario.duration_us
    t, total = kv.metrics.queue_depth(busy8, 0.0, end)
    parts = [kv.metrics.queue_depth(busy8, 0.0, end, holder=h) for h in ("vcpu", "notifier")]
    probe = (t[:-1] + t[1:]) / 2  # inside each step of the whole queue
    at = [v[np.searchsorted(tt, probe, "right") - 1] for tt, v in parts]
    assert np.array_equal(at[0] + at[1], total[np.searchsorted(t, probe, "right") - 1])
    assert at[0].max() > 0 and at[1].max() > 0
    assert at[0].max() <= busy8.scenario.n_vcpus
    with pytest.raises(ValueError, match="holder must be None, 'vcpu' or 'notifier'"):
        kv.metrics.queue_depth(busy8, 0.0, end, holder="vCPU")
