"""The closed loop under qrwlock, as one plain-loop function that numba compiles.

Written in the subset of Python that numba's ``njit`` accepts (scalars and numpy arrays, no
objects), so the same source runs compiled when numba is installed and as ordinary Python when
it is not (about 100x slower, still exact). :mod:`kvmviz.engine` prepares the arrays and reads
the results; the model itself is described there.

Under qrwlock a reader requesting at ``t`` is granted at once unless a writer arrived at or
before ``t`` and has not left; then it enters when the most recent such writer leaves. A writer
enters once the writer before it has left and every reader inside has left. So the loop takes
the writers in arrival order and, before each, advances every vCPU through the requests it makes
before that writer arrives: the vCPUs are independent of each other between writers.
"""

from __future__ import annotations

import math

import numpy as np

from .._shared._jit import njit

# splitmix64 constants (Steele, Lea, Flood 2014): a counter-based generator, so the draws of a
# (vCPU, attempt) depend only on the seed, never on the order the engines visit them in.
# (np.uint64(...) around results keeps the plain-Python run in wrapping 64-bit arithmetic.)
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


@njit(cache=True)
def retry_hva(count, range_start, range_end, hva, seq_now, seq):
    """:func:`kvmviz.classify.mmu_notifier_retry_hva`, compiled: retry if an invalidation is
    in flight over ``hva`` or ``seq`` moved (tests/test_classify.py proves the two equal)."""
    return (count > 0 and range_start <= hva and hva < range_end) or seq_now != seq


@njit(cache=True)
def _mix(x):
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


_U11 = np.uint64(11)


@njit(cache=True)
def _bits(key, vcpu, attempt, field, trial):
    # 64 random bits: the splitmix64 output at position (vcpu, attempt, field, trial) of the
    # stream seeded by key (vCPUs below 2**24, attempts below 2**35, 4 fields, 8 trials).
    counter = (
        (np.uint64(vcpu) << np.uint64(40))
        | (np.uint64(attempt) << np.uint64(5))
        | (np.uint64(field) << np.uint64(3))
        | np.uint64(trial)
    )
    return _mix(key + counter * _GAMMA)


@njit(cache=True)
def _unit(bits):
    return np.float64(np.uint64(bits) >> _U11) * _TO_UNIT


@njit(cache=True)
def _exponential(key, vcpu, attempt, field):
    # A standard exponential by the inverse CDF. (A ziggurat was tried: on this libm a log costs
    # about 5 ns, less than the ziggurat's table lookups and branches.)
    return -math.log(1.0 - _unit(_bits(key, vcpu, attempt, field, 0)))


@njit(cache=True)
def attempt_draws(key, vcpu, attempt, guest_mean, resolve_mean, total_pages):
    """The random numbers of one fault attempt: guest run (µs), pfn resolve (µs), a standard
    exponential for the read hold, and a guest page number in ``[0, total_pages)``."""
    guest = guest_mean * _exponential(key, vcpu, attempt, 0)
    resolve = resolve_mean * _exponential(key, vcpu, attempt, 1)
    hold = _exponential(key, vcpu, attempt, 2)
    page = np.int64(_unit(_bits(key, vcpu, attempt, 3, 0)) * total_pages)
    return guest, resolve, hold, page


@njit(cache=True)
def page_hva(page, slot_first_page, slot_hva):
    """Guest page number (counted over the slots of address space 0) to its hva."""
    k = np.searchsorted(slot_first_page, page, side="right") - 1
    return slot_hva[k] + np.uint64(page - slot_first_page[k]) * np.uint64(4096)


@njit(cache=True)
def _heap_push(times, ids, size, t, i):
    # A binary min-heap on (time, callback index), in two parallel arrays.
    k = size
    times[k] = t
    ids[k] = i
    while k > 0:
        parent = (k - 1) // 2
        if times[parent] < times[k] or (times[parent] == times[k] and ids[parent] < ids[k]):
            break
        times[parent], times[k] = times[k], times[parent]
        ids[parent], ids[k] = ids[k], ids[parent]
        k = parent
    return size + 1


@njit(cache=True)
def _heap_pop(times, ids, size):
    t, i = times[0], ids[0]
    size -= 1
    times[0], ids[0] = times[size], ids[size]
    k = 0
    while True:
        left, right, best = 2 * k + 1, 2 * k + 2, k
        if left < size and (
            times[left] < times[best] or (times[left] == times[best] and ids[left] < ids[best])
        ):
            best = left
        if right < size and (
            times[right] < times[best] or (times[right] == times[best] and ids[right] < ids[best])
        ):
            best = right
        if best == k:
            break
        times[best], times[k] = times[k], times[best]
        ids[best], ids[k] = ids[k], ids[best]
        k = best
    return t, i, size


@njit(cache=True)
def run_qrwlock(
    duration, half_exit, mean_hold, retry_check, acquire,
    key, n_vcpus, guest_mean, resolve_mean, total_pages, slot_first_page, slot_hva,
    cb_locked, cb_count, cb_bump, cb_cost, cb_gap, cb_next, cb_start, cb_end,
    first_time, first_cb,
    o_vcpu, o_fault, o_retries, o_hva, o_exit, o_request, o_grant, o_release, o_retry,
    o_blocked, cb_arrive, cb_grant, cb_done,
):  # fmt: skip
    """Run the closed loop; fill the ``o_*`` arrays per attempt and ``cb_*`` per callback.

    ``o_blocked`` is the callback whose write hold the attempt waited behind (the most recent
    writer that asked before the attempt and had not yet left), or -1 when it did not wait.
    Each vCPU records its attempts into its own stretch of ``cap = len(o_vcpu) // n_vcpus``
    rows, then the stretches are closed up. Returns the number of attempts, whose rows come
    first, sorted by vCPU, then time; or -1 when a vCPU made more than ``cap`` attempts (the
    caller gives more room and runs again). The caller allocates the outputs: numpy asks the
    kernel for huge pages on large arrays, numba does not, and on a virtualised host a 4 KiB
    page fault per 512 rows costs more than the whole simulation.
    """
    m = n_vcpus
    n_cb = cb_locked.shape[0]
    inf = np.inf
    # Per-vCPU state of the attempt in progress.
    attempt = np.zeros(m, dtype=np.int64)
    fault = np.zeros(m, dtype=np.int64)
    retries = np.zeros(m, dtype=np.int64)
    hva = np.zeros(m, dtype=np.uint64)
    t_exit = np.zeros(m)
    t_snap = np.zeros(m)
    t_req = np.full(m, inf)
    hold = np.zeros(m)  # the standard-exponential hold draw of the attempt in progress
    last_release = np.full(m, -inf)
    # Per-vCPU cursors into the writer, seq-bump and step arrays: a vCPU's request, snapshot
    # and grant times only grow, so each cursor only moves forward.
    cur_w = np.zeros(m, dtype=np.int64)
    cur_snap = np.zeros(m, dtype=np.int64)
    cur_grant = np.zeros(m, dtype=np.int64)
    cur_step = np.zeros(m, dtype=np.int64)
    for v in range(m):
        guest, resolve, hold[v], page = attempt_draws(
            key, v, 0, guest_mean, resolve_mean, total_pages
        )
        t_exit[v] = guest
        t_snap[v] = t_exit[v] + half_exit
        hva[v] = page_hva(page, slot_first_page, slot_hva)
        if t_exit[v] < duration:
            t_req[v] = t_snap[v] + resolve + acquire
    # Writers that took the lock, in arrival order.
    w_arrive = np.empty(n_cb + 1)
    w_release = np.empty(n_cb + 1)
    w_cb = np.empty(n_cb + 1, dtype=np.int64)
    nw = 0
    # mmu_notifier_seq bumps, and the step function of (count, range_lo, range_hi).
    bumps = np.empty(n_cb + 1)
    nb = 0
    st_t = np.empty(n_cb + 2)
    st_v = np.zeros(n_cb + 2, dtype=np.int64)
    st_lo = np.zeros(n_cb + 2, dtype=np.uint64)
    st_hi = np.zeros(n_cb + 2, dtype=np.uint64)
    st_t[0] = -inf
    ns = 1
    count = 0
    range_lo = np.uint64(0)
    range_hi = np.uint64(0)
    # Callbacks waiting to arrive.
    heap_t = np.empty(n_cb + 1)
    heap_i = np.empty(n_cb + 1, dtype=np.int64)
    hs = 0
    for k in range(first_cb.shape[0]):
        hs = _heap_push(heap_t, heap_i, hs, first_time[k], first_cb[k])
    cap = o_vcpu.shape[0] // m if m > 0 else 0  # no faulting vCPU: only the notifiers run
    last_writer_release = -inf
    while True:
        if hs > 0:
            now, i, hs = _heap_pop(heap_t, heap_i, hs)
            until = now if cb_locked[i] else -inf
        else:
            i = -1
            now = inf
            until = inf
        # Every request made before this writer arrives (at one instant, writers go first).
        for v in range(m):
            while t_req[v] < until:
                r = t_req[v]
                g = r
                blocked = -1
                k = cur_w[v]
                while k < nw and w_arrive[k] <= r:
                    k += 1
                cur_w[v] = k
                if k > 0 and w_release[k - 1] > r:
                    g = w_release[k - 1]  # behind the most recent writer still there
                    blocked = w_cb[k - 1]
                # mmu_notifier_retry_hva(): seq moved since the snapshot, or hva in a live range.
                k = cur_snap[v]
                while k < nb and bumps[k] <= t_snap[v]:
                    k += 1
                cur_snap[v] = k
                k = max(cur_grant[v], cur_snap[v])
                while k < nb and bumps[k] <= g:
                    k += 1
                cur_grant[v] = k
                k = cur_step[v]
                while k + 1 < ns and st_t[k + 1] <= g:
                    k += 1
                cur_step[v] = k
                retry = retry_hva(st_v[k], st_lo[k], st_hi[k], hva[v], cur_grant[v], cur_snap[v])
                released = g + (retry_check if retry else mean_hold * hold[v])
                a = attempt[v]
                if a >= cap:
                    return -1
                row = v * cap + a
                o_vcpu[row] = v
                o_fault[row] = fault[v]
                o_retries[row] = retries[v]
                o_hva[row] = hva[v]
                o_exit[row] = t_exit[v]
                o_request[row] = r
                o_grant[row] = g
                o_release[row] = released
                o_retry[row] = retry
                o_blocked[row] = blocked
                last_release[v] = released
                a = attempt[v] + 1
                attempt[v] = a
                guest, resolve, hold[v], page = attempt_draws(
                    key, v, a, guest_mean, resolve_mean, total_pages
                )
                if retry:
                    t_exit[v] = released + half_exit + 0.0  # the same access faults again
                    retries[v] += 1
                else:
                    t_exit[v] = released + half_exit + guest
                    fault[v] += 1
                    retries[v] = 0
                    hva[v] = page_hva(page, slot_first_page, slot_hva)
                t_snap[v] = t_exit[v] + half_exit
                if retry or t_exit[v] < duration:
                    t_req[v] = t_snap[v] + resolve + acquire
                else:
                    t_req[v] = inf
        if i < 0:
            break
        cb_arrive[i] = now
        if not cb_locked[i]:
            done = now + cb_cost[i]
        else:
            head = max(now, last_writer_release)
            grant = head
            for v in range(m):
                if last_release[v] > grant:
                    grant = last_release[v]
            cb_grant[i] = grant
            if cb_count[i] > 0:
                # kvm_inc_notifier_count: set the range at 0 -> 1, else widen it (4a42d848db95).
                if count == 0:
                    range_lo, range_hi = cb_start[i], cb_end[i]
                else:
                    range_lo = min(range_lo, cb_start[i])
                    range_hi = max(range_hi, cb_end[i])
                count += 1
                st_t[ns], st_v[ns], st_lo[ns], st_hi[ns] = grant, count, range_lo, range_hi
                ns += 1
            done = grant + cb_cost[i]
            if cb_bump[i]:
                bumps[nb] = done  # mmu_notifier_seq++, then smp_wmb(), then count--
                nb += 1
            if cb_count[i] < 0:
                count -= 1
                st_t[ns], st_v[ns], st_lo[ns], st_hi[ns] = done, count, range_lo, range_hi
                ns += 1
            last_writer_release = done
            w_arrive[nw] = now
            w_release[nw] = done
            w_cb[nw] = i
            nw += 1
        cb_done[i] = done
        if cb_next[i] >= 0:
            hs = _heap_push(heap_t, heap_i, hs, done + cb_gap[i], cb_next[i])
    # Close up the stretches: rows sorted by vCPU, each vCPU's in time order.
    n_out = 0
    for v in range(m):
        for a in range(attempt[v]):
            row = v * cap + a
            o_vcpu[n_out] = o_vcpu[row]
            o_fault[n_out] = o_fault[row]
            o_retries[n_out] = o_retries[row]
            o_hva[n_out] = o_hva[row]
            o_exit[n_out] = o_exit[row]
            o_request[n_out] = o_request[row]
            o_grant[n_out] = o_grant[row]
            o_release[n_out] = o_release[row]
            o_retry[n_out] = o_retry[row]
            o_blocked[n_out] = o_blocked[row]
            n_out += 1
    return n_out
