"""The three ``mmu_lock`` policies of :mod:`kvmviz.rwlock`, checked against a second implementation.

``reference_replay`` below is written from the module docstring's rules only. Where
:func:`kvmviz.rwlock.replay` pops events from a heap and lets each policy object keep its own
queues, the reference steps through distinct instants, keeps one list of waiters in
(arrival, index) order, and asks a per-policy "who may enter now" rule until nothing changes.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmviz.rwlock import POLICIES, grant_times, make_lock, queued_behind, replay

SETTINGS = settings(max_examples=200, deadline=None)


# -- the reference implementation ----------------------------------------------------------------
def _admit(policy, waiting, holders, exclusive):
    """Waiters (in FIFO order) that may enter right now, given who holds the lock."""
    writer_inside = any(exclusive[h] for h in holders)
    if policy == "spinlock":
        return waiting[:1] if not holders else []
    if policy == "qrwlock":
        # One FIFO: the head enters if compatible; readers behind a reader follow it in,
        # a writer at the head needs the lock empty and stops the batch.
        admitted = []
        for w in waiting:
            if exclusive[w]:
                if not holders and not admitted:
                    admitted.append(w)
                break
            if writer_inside:
                break
            admitted.append(w)
        return admitted
    # reader-pref: every waiting reader unless a writer is inside; a writer (FIFO among
    # writers) only when nobody is inside and no reader is waiting to go first.
    if writer_inside:
        return []
    readers = [w for w in waiting if not exclusive[w]]
    if readers:
        return readers
    writers = [w for w in waiting if exclusive[w]]
    return writers[:1] if not holders else []


def reference_replay(arrival, is_writer, hold, policy):
    """Grant times by stepping over instants: releases, then arrivals one by one, to a fixpoint."""
    n = len(arrival)
    exclusive = [policy == "spinlock" or bool(w) for w in is_writer]
    by_arrival = sorted(range(n), key=lambda i: (arrival[i], i))
    grant = [math.nan] * n
    releases_at = {}  # holder -> release time
    waiting = []  # FIFO, (arrival, index) order by construction
    nxt = 0

    def settle(now):
        # Release everything due, let waiters in, and repeat: zero holds release on the spot.
        while True:
            for h in [h for h, t in releases_at.items() if t <= now]:
                del releases_at[h]
            admitted = _admit(policy, waiting, set(releases_at), exclusive)
            if not admitted:
                return
            for a in admitted:
                waiting.remove(a)
                grant[a] = now
                releases_at[a] = now + hold[a]

    while nxt < n or releases_at:
        candidates = list(releases_at.values())
        if nxt < n:
            candidates.append(arrival[by_arrival[nxt]])
        now = min(candidates)
        settle(now)  # at one instant, every release happens before any arrival
        while nxt < n and arrival[by_arrival[nxt]] == now:
            waiting.append(by_arrival[nxt])
            nxt += 1
            settle(now)
    return grant


# -- strategies ----------------------------------------------------------------------------------
_REQUEST = st.tuples(
    st.integers(0, 12),  # arrival: a small range, so ties are frequent
    st.booleans(),  # is_writer
    st.sampled_from((0, 0, 1, 1, 2, 3, 4, 7, 0.5, 2.5)),  # hold, zero included
)
# Lengths drawn uniformly from 0..40 (plain st.lists would favour very short lists).
REQUESTS = st.integers(0, 40).flatmap(lambda n: st.lists(_REQUEST, min_size=n, max_size=n))


def columns(requests):
    """Split a list of (arrival, is_writer, hold) into three lists."""
    return (
        [float(r[0]) for r in requests],
        [r[1] for r in requests],
        [float(r[2]) for r in requests],
    )


def overlaps(a0, a1, b0, b1):
    """Strict overlap of half-open intervals [a0, a1) and [b0, b1)."""
    return a0 < b1 and b0 < a1


# -- the reference itself ------------------------------------------------------------------------
def test_reference_reproduces_the_docstring_example():
    """The hand-written reference agrees with the module docstring's worked example."""
    args = [0, 1, 2], [False, True, False], [10, 5, 1]
    assert reference_replay(*args, "qrwlock") == [0, 10, 15]
    assert reference_replay(*args, "reader-pref") == [0, 10, 2]


# -- exact small examples ------------------------------------------------------------------------
def test_docstring_example():
    """Reader inside, writer waiting, later reader: qrwlock queues it, reader-pref lets it in."""
    args = [0, 1, 2], [False, True, False], [10, 5, 1]
    assert grant_times(*args).tolist() == [0.0, 10.0, 15.0]
    assert grant_times(*args, policy="qrwlock").tolist() == [0.0, 10.0, 15.0]
    assert grant_times(*args, policy="reader-pref").tolist() == [0.0, 10.0, 2.0]
    assert grant_times(*args, policy="spinlock").tolist() == [0.0, 10.0, 15.0]


def test_writer_waits_for_the_last_of_three_readers():
    """A writer arriving among 3 readers (leaving at 4, 9, 8) gets in at 9, when the last leaves."""
    arrival = [0, 1, 2, 3, 5]
    is_writer = [False, False, False, True, False]
    hold = [4, 8, 6, 5, 1]
    # qrwlock: the reader at 5 queues behind the waiting writer and enters at its release (14).
    assert grant_times(arrival, is_writer, hold, "qrwlock").tolist() == [0, 1, 2, 9, 14]
    # reader-pref: the reader at 5 walks in; the writer still waits for the last reader (9).
    assert grant_times(arrival, is_writer, hold, "reader-pref").tolist() == [0, 1, 2, 9, 5]
    # spinlock: one at a time in arrival order: 0-4, 4-12, 12-18, 18-23, 23-24.
    assert grant_times(arrival, is_writer, hold, "spinlock").tolist() == [0, 4, 12, 18, 23]


def test_readers_between_two_writers_enter_together():
    """qrwlock admits the readers queued between two writers as one batch at the first's release."""
    arrival = [0, 1, 2, 3, 4]
    is_writer = [True, False, False, True, False]
    hold = [10, 3, 5, 4, 2]
    # R1, R2 enter together at 10; W3 waits for both (15); R4, behind W3, enters at 19.
    assert grant_times(arrival, is_writer, hold, "qrwlock").tolist() == [0, 10, 10, 15, 19]
    # reader-pref: all three waiting readers go at 10, before W3; W3 waits for R2 (15).
    assert grant_times(arrival, is_writer, hold, "reader-pref").tolist() == [0, 10, 10, 15, 10]
    assert grant_times(arrival, is_writer, hold, "spinlock").tolist() == [0, 10, 13, 18, 22]


def test_reader_pref_starves_a_writer_with_overlapping_readers():
    """Under reader-pref a relay of overlapping readers keeps a writer out; qrwlock lets it in."""
    arrival = [0, 1, 2, 4, 6]
    is_writer = [False, True, False, False, False]
    hold = [3, 1, 3, 3, 3]
    # Readers hold [0,3), [2,5), [4,7), [6,9): never zero readers until 9.
    assert grant_times(arrival, is_writer, hold, "reader-pref").tolist() == [0, 9, 2, 4, 6]
    # qrwlock: R2 queues behind W1; W1 runs [3,4); R2 enters at 4 with R3 arriving at 4.
    assert grant_times(arrival, is_writer, hold, "qrwlock").tolist() == [0, 3, 4, 4, 6]
    assert grant_times(arrival, is_writer, hold, "spinlock").tolist() == [0, 3, 4, 7, 10]


def test_same_instant_ties_break_by_index():
    """Arrivals at the same time are served in index order: a writer first blocks the reader."""
    writer_first = grant_times([0, 2, 2], [False, True, False], [4, 1, 1], "qrwlock")
    assert writer_first.tolist() == [0, 4, 5]
    reader_first = grant_times([0, 2, 2], [False, False, True], [4, 1, 1], "qrwlock")
    assert reader_first.tolist() == [0, 2, 4]


def test_release_happens_before_arrival_at_the_same_instant():
    """A writer arriving exactly when the holder leaves gets the lock at that instant."""
    assert grant_times([0, 5], [True, True], [5, 1], "qrwlock").tolist() == [0, 5]
    assert grant_times([0, 5], [True, False], [5, 1], "reader-pref").tolist() == [0, 5]
    assert grant_times([0, 5], [False, False], [5, 1], "spinlock").tolist() == [0, 5]
    # A reader arriving at 5 while a writer is queued behind a reader that leaves at 5:
    # the release hands the lock to the writer first, so the reader waits for it.
    assert grant_times([0, 1, 5], [False, True, False], [5, 2, 1], "qrwlock").tolist() == [0, 5, 7]


def test_zero_hold_hands_off_instantly():
    """A zero-length hold releases at its grant instant, so the next waiter enters then too."""
    assert grant_times([0, 0, 0], [True, True, False], [0, 0, 0], "qrwlock").tolist() == [0, 0, 0]
    assert grant_times([0, 1, 2], [False, True, False], [5, 0, 1], "qrwlock").tolist() == [0, 5, 5]
    assert grant_times([0, 0, 0], [True, True, True], [0, 0, 3], "spinlock").tolist() == [0, 0, 0]
    got = grant_times([0, 1, 1], [True, False, True], [2, 0, 1], "reader-pref")
    assert got.tolist() == [0, 2, 2]


def test_input_order_need_not_follow_arrival():
    """Requests may be listed in any order; grants come back in input order."""
    assert grant_times([3, 0], [True, True], [2, 4], "qrwlock").tolist() == [4, 0]
    assert grant_times([3, 0], [False, True], [2, 4], "reader-pref").tolist() == [4, 0]


def test_spinlock_ignores_is_writer():
    """Under spinlock two readers are as exclusive as two writers."""
    assert grant_times([0, 0], [False, False], [2, 2], "spinlock").tolist() == [0, 2]
    assert grant_times([0, 0], [False, False], [2, 2], "qrwlock").tolist() == [0, 0]


def test_fractional_times():
    """Times are floats (µs): holds of 0.5 and 2.25 add up exactly."""
    got = grant_times([0.0, 0.25, 0.5], [True, True, False], [0.5, 2.25, 1.0], "qrwlock")
    assert got.dtype == np.float64
    assert got.tolist() == [0.0, 0.5, 2.75]


def test_empty_request_list():
    """No requests, no grants: an empty float array."""
    for policy in POLICIES:
        got = grant_times([], [], [], policy)
        assert got.shape == (0,)
        assert got.dtype == np.float64


def test_policies_constant():
    """The three policy names, in the documented order."""
    assert POLICIES == ("qrwlock", "reader-pref", "spinlock")


def test_make_lock_fast_paths():
    """make_lock gives a fresh lock whose first request is granted at once, under every policy."""
    for policy in POLICIES:
        lock = make_lock(policy)
        assert lock.request("a", True) is True
        assert lock.request("b", False) is False
        assert lock.release("a", True) == ["b"]


# -- errors --------------------------------------------------------------------------------------
def test_mismatched_lengths_are_rejected():
    """arrival, is_writer and hold must be parallel; the message gives the three lengths."""
    with pytest.raises(ValueError, match=r"differ in length: 2, 1, 2"):
        grant_times([0, 1], [True], [1, 1])
    with pytest.raises(ValueError, match=r"differ in length: 1, 1, 3"):
        grant_times([0], [True], [1, 1, 1])


def test_negative_hold_is_rejected():
    """A lock cannot be held for negative time."""
    with pytest.raises(ValueError, match=r"hold\[1\] = -0\.5: expected a time >= 0 µs"):
        grant_times([0, 1], [True, False], [1, -0.5])


def test_unknown_policy_is_rejected():
    """An unknown policy name is an error that lists the valid names."""
    with pytest.raises(ValueError, match=r"unknown lock policy 'mcs'") as info:
        grant_times([0], [True], [1], policy="mcs")
    for name in POLICIES:
        assert name in str(info.value)
    with pytest.raises(ValueError, match=r"unknown lock policy"):
        make_lock("rwsem")


# -- properties ----------------------------------------------------------------------------------
@SETTINGS
@given(REQUESTS)
def test_replay_matches_the_reference(requests):
    """For every policy, grant_times() gives exactly the grants of the independent reference."""
    arrival, is_writer, hold = columns(requests)
    for policy in POLICIES:
        got = grant_times(arrival, is_writer, hold, policy)
        assert got.tolist() == reference_replay(arrival, is_writer, hold, policy), policy


@SETTINGS
@given(REQUESTS)
def test_replay_invariants(requests):
    """Grants never precede arrival and a writer's hold never overlaps anyone else's."""
    arrival, is_writer, hold = columns(requests)
    n = len(requests)
    for policy in POLICIES:
        grant = grant_times(arrival, is_writer, hold, policy).tolist()
        exclusive = [policy == "spinlock" or w for w in is_writer]
        for i in range(n):
            assert math.isfinite(grant[i])
            assert grant[i] >= arrival[i]
        for i in range(n):
            if not exclusive[i] or hold[i] == 0:
                continue
            for j in range(n):
                if j != i and hold[j] > 0:
                    assert not overlaps(
                        grant[i], grant[i] + hold[i], grant[j], grant[j] + hold[j]
                    ), (policy, i, j)


@SETTINGS
@given(REQUESTS)
def test_qrwlock_readers_never_overtake_a_waiting_writer(requests):
    """qrwlock is fair: a reader arriving behind a waiting writer enters only after it leaves."""
    arrival, is_writer, hold = columns(requests)
    grant = grant_times(arrival, is_writer, hold, "qrwlock").tolist()
    for w in range(len(requests)):
        if not is_writer[w]:
            continue
        for r in range(len(requests)):
            if is_writer[r] or (arrival[w], w) > (arrival[r], r):
                continue
            if grant[w] > arrival[r]:  # the writer was still waiting when the reader came
                assert grant[r] >= grant[w] + hold[w], (w, r)


@SETTINGS
@given(REQUESTS)
def test_reader_pref_readers_wait_only_for_a_writer_inside(requests):
    """Under reader-pref a reader waits only while a writer holds, and enters when it leaves."""
    arrival, is_writer, hold = columns(requests)
    grant = grant_times(arrival, is_writer, hold, "reader-pref").tolist()
    writers = [w for w in range(len(requests)) if is_writer[w] and hold[w] > 0]
    for r in range(len(requests)):
        if is_writer[r] or grant[r] == arrival[r]:
            continue
        inside = [
            w for w in writers if overlaps(grant[w], grant[w] + hold[w], arrival[r], grant[r])
        ]
        assert inside, r
        # Stronger: the writer holding at the reader's arrival releases exactly at its grant.
        assert any(grant[w] <= arrival[r] < grant[w] + hold[w] == grant[r] for w in writers), r


@SETTINGS
@given(REQUESTS)
def test_spinlock_is_one_fifo_queue(requests):
    """Under spinlock grants follow (arrival, index) order and each waits for the previous one."""
    arrival, is_writer, hold = columns(requests)
    grant = grant_times(arrival, is_writer, hold, "spinlock").tolist()
    order = sorted(range(len(requests)), key=lambda i: (arrival[i], i))
    free_at = -math.inf
    for i in order:
        assert grant[i] == max(arrival[i], free_at)
        free_at = grant[i] + hold[i]
    for a, b in itertools.pairwise(order):
        assert grant[a] <= grant[b]
        assert grant[a] + hold[a] <= grant[b]


@pytest.mark.parametrize(
    ("arrival", "is_writer", "hold", "error", "message"),
    [
        ([0, 1], ["False", "True"], [1, 1], TypeError, "is_writer: expected booleans"),
        ([0, 1], [0, 1], [1, 1], TypeError, "is_writer: expected booleans"),
        (["0", "1"], [False, True], [1, 1], TypeError, "arrival: expected numbers"),
        (np.array([0, 1]), np.array([False, True]), np.array([1.0, 1.0]), None, None),
        ([0, 1], [False, True], [1], ValueError, "differ in length"),
        ([0, float("nan")], [False, True], [1, 1], ValueError, r"arrival\[1\] = nan: .*finite"),
        ([0, 1], [False, True], [1, -1], ValueError, r"hold\[1\] = -1: expected a time >= 0"),
        ([0, float("inf")], [False, True], [1, 1], ValueError, r"arrival\[1\] = inf"),
        ([0, 1], [False, True], [float("inf"), 1], ValueError, r"hold\[0\] = inf"),
        ([0, 1], [False, True], [True, False], TypeError, "hold: expected numbers"),
        ([0, 1], [False, True], [1, None], TypeError, "hold: expected numbers"),
        ([0, 1j], [False, True], [1, 1], TypeError, "arrival: expected numbers"),
        ([0, [1]], [False, True], [1, 1], TypeError, "arrival: expected a flat sequence"),
        ([[0, 1]], [False, True], [1, 1], ValueError, r"arrival: .*got shape \(1, 2\)"),
        (0, False, 1, ValueError, r"one-dimensional"),
        ([0, 1], [[False], [True]], [1, 1], ValueError, r"is_writer: .*shape \(2, 1\)"),
        ([0, 1], "FT", [1, 1], TypeError, "is_writer: expected booleans"),
        ([0, 1], [None, True], [1, 1], TypeError, "is_writer: expected booleans"),
    ],
)
def test_replay_refuses_what_it_cannot_mean(arrival, is_writer, hold, error, message):
    """["False"] is not False: the writer flags must be booleans, the times numbers, the three
    lists one length, the times finite and the holds non-negative."""
    if error is None:
        assert grant_times(arrival, is_writer, hold).tolist() == [0.0, 1.0]
        return
    with pytest.raises(error, match=message):
        grant_times(arrival, is_writer, hold)


@pytest.mark.parametrize("policy", ["fair", "", None, ["qrwlock"], "QRWLOCK"])
def test_a_policy_is_one_of_three_names(policy):
    """Anything but the three names is refused, listing them; a list is not a name (it used to
    end in "unhashable type")."""
    with pytest.raises(ValueError, match=r"unknown lock policy .*expected one of"):
        grant_times([0], [False], [1], policy=policy)
    with pytest.raises(ValueError, match=r"unknown lock policy"):
        make_lock(policy)


def test_numpy_inputs_give_the_same_grants_as_lists():
    """Integer arrival arrays, float32 holds and numpy bools are the same requests as lists."""
    lists = grant_times([0, 1, 2], [False, True, False], [10, 5, 1])
    arrays = grant_times(
        np.array([0, 1, 2], np.int32),
        np.array([False, True, False]),
        np.array([10, 5, 1], np.float32),
    )
    assert lists.tolist() == arrays.tolist() == [0.0, 10.0, 15.0]


def test_replay_is_the_old_name_of_grant_times():
    """``kv.replay`` (the name before ``kvmviz replay`` meant a kernel trace) is the very
    function ``kv.grant_times``, so notebooks and posts that call it keep working."""
    import kvmviz as kv

    assert replay is grant_times
    assert kv.replay is kv.grant_times is grant_times
    assert kv.replay([0, 1, 2], [False, True, False], [10, 5, 1]).tolist() == [0.0, 10.0, 15.0]


@SETTINGS
@given(
    st.lists(st.tuples(st.integers(0, 20), st.booleans()), max_size=8),
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 10)), max_size=6),
)
def test_queued_behind_is_the_newest_writer_there(readers, writers):
    """``queued_behind`` against a brute force: each waiting reader names the writer with the
    greatest (since, index) among those with since <= request < release; -1 when none is
    there or the reader did not wait."""
    request = [float(a) for a, _ in readers]
    waited = [w for _, w in readers]
    since = [float(a) for a, _ in writers]
    release = [float(a + d) for a, d in writers]
    got = queued_behind(request, waited, since, release).tolist()
    want = []
    for a, w in zip(request, waited, strict=True):
        there = [(since[k], k) for k in range(len(since)) if since[k] <= a < release[k]]
        want.append(max(there)[1] if w and there else -1)
    assert got == want


def test_queued_behind_hand_worked():
    """Two writers there at 5 (asked at 1 and 3): the reader is behind the newer; at a tie in
    ``since`` the later-listed writer wins; a writer that left at 5 holds nobody at 5."""
    assert queued_behind([5], [True], [1, 3], [9, 9]).tolist() == [1]
    assert queued_behind([5], [True], [3, 3], [9, 9]).tolist() == [1]
    assert queued_behind([5], [True], [1], [5]).tolist() == [-1]
    assert queued_behind([5], [False], [1], [9]).tolist() == [-1]
