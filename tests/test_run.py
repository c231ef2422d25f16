"""kvmviz.run: a Run is plain data, and ``lock_table`` derives every acquisition of mmu_lock.

The tests build a Run by hand: two vCPUs fault, three notifier callbacks arrive, one of which
does not take the lock. ``lock_table`` keeps the faults and the callbacks that took the lock,
sorted by grant time (a fault before a notifier granted at the same instant), with the wait and
hold each one had, the notifiers always in write mode.
"""

from __future__ import annotations

import pandas as pd
import pytest

import kvmviz as kv
from kvmviz.metrics import summarize
from kvmviz.run import Run, lock_table

# vCPU 0 faults at 0 (granted at once) and at 30 (granted at 40); vCPU 1 at 5, granted at 20.
FAULTS = pd.DataFrame(
    {
        "vcpu": [0, 0, 1],
        "fault": [0, 1, 0],
        "retries": [0, 0, 0],
        "t_exit_us": [-1.0, 29.0, 4.0],
        "t_request_us": [0.0, 30.0, 5.0],
        "t_grant_us": [0.0, 40.0, 20.0],
        "t_release_us": [2.0, 41.0, 22.0],
        "wait_us": [0.0, 10.0, 15.0],
        "hold_us": [2.0, 1.0, 2.0],
        "retry": [False, False, False],
        "blocked_by": [-1, 2, 0],  # whom each waited behind (by hand: rows of NOTIFIERS)
        "retried_by": [-1, -1, -1],
    }
)
# Event 0's start (arrives at 1, granted at 10, held 10 µs), its end skips the lock; event 1's
# clear_flush_young arrives at 35 and is granted at 40, the same instant as vCPU 0's fault.
NOTIFIERS = pd.DataFrame(
    {
        "event": [0, 0, 1],
        "callback": ["invalidate_range_start", "invalidate_range_end", "clear_flush_young"],
        "hit": [True, False, True],
        "cause": ["migration", "migration", "guest_aging"],
        "locked": [True, False, True],
        "t_arrive_us": [1.0, 25.0, 35.0],
        "t_grant_us": [10.0, float("nan"), 40.0],
        "t_release_us": [20.0, float("nan"), 45.0],
        "wait_us": [9.0, 0.0, 5.0],
        "hold_us": [10.0, 0.0, 5.0],
    }
)


def _run(policy: str = "qrwlock", **scenario) -> Run:
    return Run(kv.Scenario(n_vcpus=2, **scenario), "v5.12", policy, 0, FAULTS, NOTIFIERS)


def test_the_lock_table_is_sorted_by_grant_a_fault_first_at_a_tie():
    """Five acquisitions (the end that skipped the lock is not one), by grant time; at 40 µs
    vCPU 0's fault comes before event 1's callback."""
    lock = lock_table(FAULTS, NOTIFIERS, "qrwlock")
    assert lock["t_grant_us"].tolist() == [0.0, 10.0, 20.0, 40.0, 40.0]
    assert lock["holder"].tolist() == ["vcpu", "notifier", "vcpu", "vcpu", "notifier"]
    assert lock["who"].tolist() == [0, 0, 1, 0, 1]
    assert lock["callback"].tolist() == [
        "page_fault",
        "invalidate_range_start",
        "page_fault",
        "page_fault",
        "clear_flush_young",
    ]


def test_wait_and_hold_are_grant_minus_request_and_release_minus_grant():
    """A notifier's request is its arrival: event 0 waited 10 - 1 = 9 µs and held 10 µs."""
    lock = lock_table(FAULTS, NOTIFIERS, "qrwlock")
    assert lock["t_request_us"].tolist() == [0.0, 1.0, 5.0, 30.0, 35.0]
    assert lock["wait_us"].tolist() == [0.0, 9.0, 15.0, 10.0, 5.0]
    assert lock["hold_us"].tolist() == [2.0, 10.0, 2.0, 1.0, 5.0]
    assert list(lock.columns) == [
        "holder",
        "who",
        "mode",
        "callback",
        "t_request_us",
        "t_grant_us",
        "t_release_us",
        "wait_us",
        "hold_us",
    ]


@pytest.mark.parametrize(
    ("policy", "write_faults", "fault_mode"),
    [
        ("qrwlock", None, "read"),
        ("reader-pref", None, "read"),
        ("spinlock", None, "write"),
        ("qrwlock", True, "write"),
    ],
)
def test_notifiers_take_it_for_write_faults_by_policy(policy, write_faults, fault_mode):
    """Notifier rows are always write mode; faults read-lock under an rwlock, write-lock under
    the spinlock or when told (write_faults=True, the shadow MMU)."""
    lock = lock_table(FAULTS, NOTIFIERS, policy, write_faults=write_faults)
    modes = lock.groupby("holder", observed=True)["mode"].unique()
    assert list(modes["notifier"]) == ["write"]
    assert list(modes["vcpu"]) == [fault_mode]


def test_a_runs_lock_follows_its_scenario_and_is_built_once():
    """Run.lock is lock_table with the scenario's fault mode: read under the TDP MMU, write
    without it (tdp_mmu=False); it is computed once and kept."""
    tdp = _run()
    assert set(tdp.lock.loc[tdp.lock["holder"] == "vcpu", "mode"]) == {"read"}
    assert tdp.lock is tdp.lock
    shadow = _run(tdp_mmu=False)
    assert set(shadow.lock.loc[shadow.lock["holder"] == "vcpu", "mode"]) == {"write"}
    pd.testing.assert_frame_equal(tdp.lock, lock_table(FAULTS, NOTIFIERS, "qrwlock"))


def test_summary_is_the_metrics_summary():
    """Run.summary() is kvmviz.metrics.summarize(run): 3 faults, 2 of 3 callbacks locked."""
    run = _run()
    summary = run.summary()
    pd.testing.assert_series_equal(summary, summarize(run))
    assert (summary["faults"], summary["lock_taken"]) == (3, 2)


def test_a_run_is_plain_data():
    """A Run holds what it was given, and refuses to be changed."""
    run = _run("spinlock")
    assert (run.kernel, run.policy, run.seed, run.scenario.n_vcpus) == ("v5.12", "spinlock", 0, 2)
    assert run.faults is FAULTS and run.notifiers is NOTIFIERS
    with pytest.raises(AttributeError):
        run.kernel = "v5.15"
