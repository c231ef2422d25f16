"""The event-driven engine under qrwlock with read-locking faults, as one loop numba compiles.

A line-by-line port of :class:`kvmviz.engine`'s ``_EventRun`` for the ``"qrwlock"`` policy and
the TDP MMU (faults take ``mmu_lock`` for read), with today's rules: the lockless pre-check
(d02c357e5bfa, v6.8: a fault on an address being invalidated spins without the lock, parked
until the counters change) and the zap that yields a contended lock
(``tdp_mmu_iter_cond_resched()`` -> ``cond_resched_rwlock_write()``). The model is described
there; this file only makes it fast. :func:`run_events` sets the state up in numpy and hands
it to :func:`_advance`, the event loop, written in the subset of Python that numba's ``njit``
accepts: without numba the same source runs as plain Python (slowly, still exact). No array
the loop uses is replaced while it runs, and it calls no function with an array: either would
make numba count references at every event, which costs more than the event itself.

The Python engine and this loop give identical tables (tests/test_engine_events_compiled.py):

* the same events in the same order: a binary heap on ``(time, kind, tick)``, the kinds ordered
  release (and yield) < a callback arrives < a vCPU requests < a pre-check, and ``tick`` the push
  count, so ties go to the event pushed first. Every push of the Python engine takes its tick
  here in the same order, the releases a yield makes stale included (they are popped and
  skipped); the events one event pushes join the heap together before the next pop (written
  out at each push, four lines: a call would pass arrays);
* the same floating-point arithmetic, operand for operand, and the same rules:
  ``classify.mmu_notifier_retry_hva()`` at each grant (``count != 0`` as there) and
  ``mmu_invalidate_retry_gfn_unsafe()`` at each pre-check, written out;
* the same lock: ``_QRWLock``'s FIFO ``wait_lock`` queue, its fast paths and its hand-off
  (the readers at the head enter together, a writer alone once the readers inside have left).

Event payloads are packed into one int: ``x * 8 + who``, ``x`` the vCPU or callback and ``who``
one of the ``_READER ... _RESOLVED`` codes below; a queued request is ``2 * x + is_writer``.
"""

from __future__ import annotations

import math

import numpy as np

from .._shared._jit import njit
from ._closed_loop import attempt_draws, page_hva

# The event kinds, as the Python engine numbers them: at one instant releases (and yields),
# then callbacks arriving, then vCPUs requesting, then pre-checks.
_RELEASE, _ARRIVE, _REQUEST, _CHECK = 0, 1, 2, 3
# Whom an event concerns: a vCPU's read hold, a callback's write hold, a zap's yield, a
# pre-check after sampling seq and one after resolving the pfn.
_READER, _WRITER, _YIELD, _SNAPSHOT, _RESOLVED = 0, 1, 2, 3, 4
_KIND_SHIFT = 58  # heap key: kind << 58 | tick
_TICK_MASK = (1 << _KIND_SHIFT) - 1
# Why _advance stopped: the run is over, it outgrew its row limit, or a buffer needs room.
_DONE, _OVERRUN, _HEAP_FULL, _ROWS_FULL, _HOLDS_FULL = 0, 1, 2, 3, 4
# The scalars of the state between two calls of _advance (the array ``scalars``).
_READERS, _WRITER_IN, _QUEUED_WRITERS, _Q_HEAD, _Q_LEN, _N_PARK, _N_ASKED = 0, 1, 2, 3, 4, 5, 6
_HOLDING, _COUNT, _N_BUMPS, _N_ROWS, _N_HOLDS, _HEAP_N, _NEXT_TICK, _N_NEW = range(7, 15)
_HEAP_ROOM = 64  # the heap's first room beyond the first events and one per vCPU


def _grown(a: np.ndarray, size: int) -> np.ndarray:
    """``a`` copied into a larger array of ``size`` elements."""
    b = np.empty(size, dtype=a.dtype)
    b[: len(a)] = a
    return b


def _restretched(a: np.ndarray, filled: np.ndarray, cap: int, new_cap: int) -> np.ndarray:
    """``a``, one stretch of ``cap`` rows per vCPU of which ``filled[v]`` are used, copied into
    stretches of ``new_cap`` rows."""
    b = np.empty(len(filled) * new_cap, dtype=a.dtype)
    for v, n in enumerate(filled.tolist()):
        b[v * new_cap : v * new_cap + n] = a[v * cap : v * cap + n]
    return b


def _closed_up(a: np.ndarray, filled: np.ndarray, cap: int) -> np.ndarray:
    """The used rows of ``a``'s stretches moved to its start, one after the other (in place:
    each moves to or before where it was); returns them."""
    n = 0
    for v, k in enumerate(filled.tolist()):
        a[n : n + k] = a[v * cap : v * cap + k]
        n += k
    return a[:n]


def run_events(
    duration, half_exit, vmexit, mean_hold, retry_check, acquire, precheck,
    key, n_vcpus, guest_mean, resolve_mean, total_pages, slot_first_page, slot_hva,
    cb_locked, cb_count, cb_bump, cb_flush, cb_cost, cb_loop, cb_post, cb_gap, cb_next,
    cb_start, cb_end, step, flush_us, first_time, first_cb, max_rows,
    o_vcpu, o_fault, o_retries, o_hva, o_exit, o_request, o_grant, o_release, o_retry,
    o_blocked, o_snapshot, o_spins,
    cb_arrive, cb_grant, cb_done, cb_release, cb_held, cb_yields,
):  # fmt: skip
    """Run the event-driven closed loop; fill one row per fault attempt and the ``cb_*`` arrays.

    The state is allocated here (numpy), the first events pushed as ``_EventRun.run`` pushes
    them, then the compiled :func:`_advance` runs the events; when a buffer is full it stops,
    the buffer grows here, and it goes on.

    The ``o_*`` arrays are the columns of ``Run.faults`` the engine fills (``t_snapshot_us``
    and ``spins`` included). Each vCPU records its attempts into its own stretch of ``cap =
    len(o_vcpu) // n_vcpus`` rows; when a vCPU needs more, every stretch grows (a copy); at the
    end the stretches are closed up, so the rows come sorted by vCPU, then time, as the Python
    engine sorts them. The caller allocates the columns to its estimate.

    Returns ``(n_rows, columns, n_holds, holds_f, holds_i, n_bumps, bumps, count, range_start,
    range_end)``: ``n_rows`` is -1 once the run outgrew ``max_rows`` attempts; ``columns`` the
    used rows of the ``o_*`` columns, in order; ``holds_f`` (request, grant, release) and
    ``holds_i`` (callback, yielded, flushed) the write holds of the zaps that yielded, three
    values per hold, one after the other; ``bumps`` the times ``mmu_notifier_seq`` moved; the
    last three the final ``mmu_notifier_count`` and range.
    """
    m = n_vcpus
    n_cb = len(cb_locked)
    # Per-vCPU state of the attempt in progress; the vCPUs parked on a range in flight, in
    # the order they parked.
    attempt = np.zeros(m, dtype=np.int64)
    hold_draw = np.zeros(m)  # the standard-exponential hold draw of the attempt in progress
    hva = np.zeros(m, dtype=np.uint64)
    t_exit = np.zeros(m)
    t_snap = np.zeros(m)
    t_req = np.zeros(m)
    resolve = np.zeros(m)
    vcpus = (
        attempt, np.zeros(m, dtype=np.int64), np.zeros(m, dtype=np.int64), hva, t_exit, t_snap,
        t_req, np.zeros(m), np.zeros(m, dtype=np.bool_), hold_draw,
        np.full(m, -1, dtype=np.int64), np.zeros(m, dtype=np.int64), resolve,
        np.empty(m, dtype=np.int64), np.empty(m),
    )  # fmt: skip
    # Per-callback state of the yielding zaps, and the callbacks that asked, in order.
    zaps = (
        cb_loop.copy(), np.zeros(n_cb), np.full(n_cb, np.nan), np.full(n_cb, -1, dtype=np.int64),
        np.zeros(n_cb), np.zeros(n_cb), np.empty(n_cb + 1, dtype=np.int64),
    )  # fmt: skip
    # wait_lock's FIFO queue (a ring), the requests one hand-off grants, the seq bumps.
    queue = np.empty(m + n_cb + 1, dtype=np.int64)
    granted = np.empty(m + n_cb + 1, dtype=np.int64)
    bumps = np.empty(n_cb + 1)
    scalars = np.zeros(15, dtype=np.int64)
    scalars[_HOLDING] = -1
    ranges = np.zeros(2, dtype=np.uint64)  # the range of mmu_notifier_count
    holds_f = np.empty(48)
    holds_i = np.empty(48, dtype=np.int64)
    # The event heap (time, kind << 58 | tick, payload), and the events pushed since the last
    # pop, which join it before the next (the first ones: every vCPU's first fault, then
    # every event's first callback, as _EventRun.run pushes them).
    n_first = m + len(first_cb)
    h_cap = n_first + m + _HEAP_ROOM
    ht = np.empty(h_cap)
    hkey = np.empty(h_cap, dtype=np.int64)
    hcode = np.empty(h_cap, dtype=np.int64)
    new_t = np.empty(n_first + 8)
    new_key = np.empty(n_first + 8, dtype=np.int64)
    new_code = np.empty(n_first + 8, dtype=np.int64)
    n_new = 0
    for v in range(m):
        guest, res, hold_draw[v], page = attempt_draws(
            key, v, 0, guest_mean, resolve_mean, total_pages
        )
        t_exit[v] = guest
        if t_exit[v] >= duration:
            continue
        t_snap[v] = t_exit[v] + half_exit
        t_req[v] = t_snap[v] + res + acquire
        hva[v] = page_hva(page, slot_first_page, slot_hva)
        resolve[v] = res
        kind, t, who = (_CHECK, t_snap[v], _SNAPSHOT) if precheck else (_REQUEST, t_req[v], _READER)
        new_t[n_new], new_key[n_new], new_code[n_new] = t, kind << _KIND_SHIFT | n_new, v * 8 + who
        n_new += 1
    for t, i in zip(first_time.tolist(), first_cb.tolist(), strict=True):
        new_t[n_new], new_key[n_new] = t, _ARRIVE << _KIND_SHIFT | n_new
        new_code[n_new] = i * 8 + _WRITER
        n_new += 1
    scalars[_N_NEW] = n_new
    scalars[_NEXT_TICK] = n_new

    params = (
        float(duration), float(half_exit), float(vmexit), float(mean_hold), float(retry_check),
        float(acquire), bool(precheck), np.uint64(key), float(guest_mean), float(resolve_mean),
        int(total_pages), float(step), float(flush_us), int(max_rows),
    )  # fmt: skip
    callbacks = (
        cb_locked, cb_count, cb_bump, cb_flush, cb_cost, cb_loop, cb_post, cb_gap, cb_next,
        cb_start, cb_end, cb_arrive, cb_grant, cb_done, cb_release, cb_held, cb_yields,
    )  # fmt: skip
    out = [
        o_vcpu, o_fault, o_retries, o_hva, o_exit, o_request, o_grant, o_release, o_retry,
        o_blocked, o_snapshot, o_spins,
    ]  # fmt: skip
    cap = len(o_vcpu) // m if m > 0 else 0
    while True:
        status = _advance(
            params, slot_first_page, slot_hva, callbacks, vcpus, zaps, queue, granted, bumps,
            scalars, ranges, ht, hkey, hcode, new_t, new_key, new_code, cap, tuple(out),
            holds_f, holds_i,
        )  # fmt: skip
        if status == _HEAP_FULL:
            ht, hkey, hcode = (_grown(a, 2 * len(a)) for a in (ht, hkey, hcode))
        elif status == _HOLDS_FULL:
            holds_f, holds_i = (_grown(a, 2 * len(a)) for a in (holds_f, holds_i))
        elif status == _ROWS_FULL:  # more room for every vCPU
            out = [_restretched(a, attempt, cap, 2 * cap + 16) for a in out]
            cap = 2 * cap + 16
        else:
            break
    n_rows = int(scalars[_N_ROWS]) if status == _DONE else -1
    # Close up the stretches: rows sorted by vCPU, each vCPU's in time order.
    columns = tuple(_closed_up(a, attempt, cap) for a in out) if n_rows >= 0 else ()
    return (
        n_rows, columns, int(scalars[_N_HOLDS]), holds_f, holds_i, int(scalars[_N_BUMPS]),
        bumps, int(scalars[_COUNT]), ranges[0], ranges[1],
    )  # fmt: skip


@njit(cache=True)
def _advance(
    params, slot_first_page, slot_hva, callbacks, vcpus, zaps, queue, granted, bumps,
    scalars, ranges, ht, hkey, hcode, new_t, new_key, new_code, cap, out, holds_f, holds_i,
):  # fmt: skip
    """The events in order (``_EventRun.run``'s loop), until none is left, the row limit is
    passed, or a buffer has no room for the next event (the caller grows it and calls again).
    Returns why it stopped: ``_DONE``, ``_OVERRUN``, ``_HEAP_FULL``, ``_ROWS_FULL`` or
    ``_HOLDS_FULL``."""
    (
        duration, half_exit, vmexit, mean_hold, retry_check, acquire, precheck, key,
        guest_mean, resolve_mean, total_pages, step, flush_us, max_rows,
    ) = params  # fmt: skip
    (
        cb_locked, cb_count, cb_bump, cb_flush, cb_cost, cb_loop, cb_post, cb_gap, cb_next,
        cb_start, cb_end, cb_arrive, cb_grant, cb_done, cb_release, cb_held, cb_yields,
    ) = callbacks  # fmt: skip
    (
        attempt, fault, retries, hva, t_exit, t_snap, t_req, t_grant, is_retry, hold_draw,
        blocked, spins, resolve, park_v, park_t,
    ) = vcpus  # fmt: skip
    loop_left, loop_start, yield_at, valid, seg_request, seg_grant, asked = zaps
    (
        o_vcpu, o_fault, o_retries, o_hva, o_exit, o_request, o_grant, o_release, o_retry,
        o_blocked, o_snapshot, o_spins,
    ) = out  # fmt: skip
    m = attempt.shape[0]
    readers = scalars[_READERS]
    writer = scalars[_WRITER_IN] != 0
    queued_writers = scalars[_QUEUED_WRITERS]
    q_head = scalars[_Q_HEAD]
    q_len = scalars[_Q_LEN]
    n_park = scalars[_N_PARK]
    n_asked = scalars[_N_ASKED]
    holding = scalars[_HOLDING]
    count = scalars[_COUNT]
    nb = scalars[_N_BUMPS]
    n_rows = scalars[_N_ROWS]
    n_holds = scalars[_N_HOLDS]
    range_lo = ranges[0]
    range_hi = ranges[1]
    n_heap = scalars[_HEAP_N]
    tick = scalars[_NEXT_TICK]  # the next event's
    n_new = scalars[_N_NEW]
    status = _DONE
    while True:
        # The events pushed since the last pop join the heap (a binary min-heap on (time,
        # kind << 58 | tick); the ticks are unique, so the order is total).
        for e in range(n_new):
            t, key_e, code_e = new_t[e], new_key[e], new_code[e]
            k = n_heap
            n_heap += 1
            while k > 0:
                parent = (k - 1) >> 1
                pt = ht[parent]
                if pt < t or (pt == t and hkey[parent] < key_e):
                    break
                ht[k], hkey[k], hcode[k] = pt, hkey[parent], hcode[parent]
                k = parent
            ht[k], hkey[k], hcode[k] = t, key_e, code_e
        n_new = 0
        if n_heap == 0:
            break
        # Room for what the next event may add: m + 5 events, a row, a write hold.
        if n_heap + m + 8 > ht.shape[0]:
            status = _HEAP_FULL
            break
        if 3 * n_holds == holds_f.shape[0]:
            status = _HOLDS_FULL
            break
        if hkey[0] >> _KIND_SHIFT == _RELEASE and hcode[0] & 7 == _READER:
            if attempt[hcode[0] >> 3] == cap:
                status = _ROWS_FULL
                break
        # Pop the first event.
        now, hk, code = ht[0], hkey[0], hcode[0]
        n_heap -= 1
        if n_heap > 0:
            lt, lk, lc = ht[n_heap], hkey[n_heap], hcode[n_heap]
            k = 0
            while True:
                c = 2 * k + 1
                if c >= n_heap:
                    break
                if c + 1 < n_heap and (
                    ht[c + 1] < ht[c] or (ht[c + 1] == ht[c] and hkey[c + 1] < hkey[c])
                ):
                    c += 1
                if ht[c] < lt or (ht[c] == lt and hkey[c] < lk):
                    ht[k], hkey[k], hcode[k] = ht[c], hkey[c], hcode[c]
                    k = c
                else:
                    break
            ht[k], hkey[k], hcode[k] = lt, lk, lc
        kind = hk >> _KIND_SHIFT
        who = code & 7
        x = code >> 3
        ng = 0  # requests granted, to grant in order (grant_all)
        contended = False  # then contention(now)
        post = 0  # then: 1 next_attempt(x), 2 zap x asks again, 3 next_callback(x, now)
        if kind == _REQUEST:  # request(): a vCPU asks for the lock
            if not writer and queued_writers == 0:  # queued_read_lock fast path
                readers += 1
                blocked[x] = -1
                granted[0] = 2 * x
                ng = 1
            else:
                queue[(q_head + q_len) % queue.shape[0]] = 2 * x
                q_len += 1
                blocked[x] = asked[n_asked - 1] if n_asked > 0 else -1
                contended = True
        elif kind == _ARRIVE:  # arrive(): a callback runs
            cb_arrive[x] = now
            if not cb_locked[x]:
                t_done = now + cb_cost[x]  # next_callback(x, now + cost)
                cb_done[x] = t_done
                if cb_next[x] >= 0:
                    new_t[n_new], new_key[n_new] = t_done + cb_gap[x], _ARRIVE << _KIND_SHIFT | tick
                    new_code[n_new] = cb_next[x] * 8 + _WRITER
                    n_new += 1
                    tick += 1
                continue
            asked[n_asked] = x
            n_asked += 1
            seg_request[x] = now
            if not writer and readers == 0 and q_len == 0:  # queued_write_lock fast path
                writer = True
                granted[0] = 2 * x + 1
                ng = 1
            else:
                queued_writers += 1
                queue[(q_head + q_len) % queue.shape[0]] = 2 * x + 1
                q_len += 1
                contended = True
        elif kind == _CHECK:  # check(): mmu_invalidate_retry_gfn_unsafe() (d02c357e5bfa)
            h = hva[x]
            if count != 0 and range_lo <= h and h < range_hi:
                park_v[n_park] = x  # spins until the range changes
                park_t[n_park] = now
                n_park += 1
            else:
                if who == _SNAPSHOT:
                    new_t[n_new], new_key[n_new] = (
                        t_snap[x] + resolve[x],
                        _CHECK << _KIND_SHIFT | tick,
                    )
                    new_code[n_new] = x * 8 + _RESOLVED
                elif nb > 0 and bumps[nb - 1] > t_snap[x]:
                    spins[x] += 1  # seq moved: spin(x, now + vmexit)
                    t_snap[x] = now + vmexit
                    new_t[n_new], new_key[n_new] = t_snap[x], _CHECK << _KIND_SHIFT | tick
                    new_code[n_new] = x * 8 + _SNAPSHOT
                else:
                    t_req[x] = now + acquire
                    new_t[n_new], new_key[n_new] = t_req[x], _REQUEST << _KIND_SHIFT | tick
                    new_code[n_new] = x * 8 + _READER
                n_new += 1
                tick += 1
            continue
        elif who == _READER:  # release_reader(): record the attempt, let go
            row = x * cap + attempt[x]
            o_vcpu[row] = x
            o_fault[row] = fault[x]
            o_retries[row] = retries[x]
            o_hva[row] = hva[x]
            o_exit[row] = t_exit[x]
            o_request[row] = t_req[x]
            o_grant[row] = t_grant[x]
            o_release[row] = now
            o_retry[row] = is_retry[x]
            o_blocked[row] = blocked[x]
            o_snapshot[row] = t_snap[x]
            o_spins[row] = spins[x]
            n_rows += 1
            if n_rows > max_rows:
                status = _OVERRUN  # the run outgrew its row limit
                break
            readers -= 1
            post = 1
        else:  # a callback's write hold ends: a yield or its release
            if cb_loop[x] > 0 and hk & _TICK_MASK != valid[x]:
                continue  # a release a yield has replaced
            if who == _YIELD:  # yield_lock(): cond_resched_rwlock_write()
                loop_left[x] -= yield_at[x] - loop_start[x]
                cb_yields[x] += 1
                cb_held[x] += now - seg_grant[x]
                holds_f[3 * n_holds + 0] = seg_request[x]
                holds_f[3 * n_holds + 1] = seg_grant[x]
                holds_f[3 * n_holds + 2] = now
                holds_i[3 * n_holds + 0] = x
                holds_i[3 * n_holds + 1] = 1
                holds_i[3 * n_holds + 2] = 1
                n_holds += 1
                post = 2
            else:  # release_writer()
                if cb_loop[x] > 0:  # a zap that may yield: its release as it happened
                    cb_held[x] += now - seg_grant[x]
                    cb_release[x] = now
                if cb_yields[x]:
                    holds_f[3 * n_holds + 0] = seg_request[x]
                    holds_f[3 * n_holds + 1] = seg_grant[x]
                    holds_f[3 * n_holds + 2] = now
                    holds_i[3 * n_holds + 0] = x
                    holds_i[3 * n_holds + 1] = 0
                    holds_i[3 * n_holds + 2] = cb_flush[x]
                    n_holds += 1
                post = 3
            holding = -1
            # asked.remove(x), and a yielding zap asks anew: the newest writer that asked.
            k = 0
            while asked[k] != x:
                k += 1
            while k + 1 < n_asked:
                asked[k] = asked[k + 1]
                k += 1
            if post == 2:
                asked[n_asked - 1] = x
            else:
                n_asked -= 1
                # on_writer_release: seq++ (then smp_wmb()), then count--.
                if cb_bump[x]:
                    bumps[nb] = now
                    nb += 1
                if cb_count[x] < 0:
                    count -= 1
                # wake(): every parked vCPU checks again at its next spin.
                for p in range(n_park):
                    v = park_v[p]
                    t_park = park_t[p]
                    k_f = max(1.0, np.ceil((now - t_park) / vmexit)) if vmexit > 0 else 1.0
                    spins[v] += np.int64(k_f) - 1
                    spins[v] += 1  # spin(v, t_park + k * vmexit)
                    t_snap[v] = t_park + k_f * vmexit
                    new_t[n_new], new_key[n_new] = t_snap[v], _CHECK << _KIND_SHIFT | tick
                    new_code[n_new] = v * 8 + _SNAPSHOT
                    n_new += 1
                    tick += 1
                n_park = 0
            writer = False
        # The lock hands off (_QRWLock._dispatch): the readers at the head of the queue
        # together, up to a writer, which enters alone once every reader has left.
        if kind == _RELEASE:
            while q_len > 0 and not writer:
                c = queue[q_head]
                if c & 1:
                    if readers > 0:
                        break
                    q_head = (q_head + 1) % queue.shape[0]
                    q_len -= 1
                    queued_writers -= 1
                    writer = True
                    granted[ng] = c
                    ng += 1
                    break
                q_head = (q_head + 1) % queue.shape[0]
                q_len -= 1
                readers += 1
                granted[ng] = c
                ng += 1
        while True:
            for g in range(ng):  # grant_all()
                y = granted[g] >> 1
                if granted[g] & 1 == 0:  # grant_reader(): mmu_notifier_retry_hva()
                    t_grant[y] = now
                    h = hva[y]
                    # seq moved since the snapshot: a bump after it (bumps come in time order)
                    moved = nb > 0 and bumps[nb - 1] > t_snap[y]
                    retry = (count != 0 and range_lo <= h and h < range_hi) or moved
                    is_retry[y] = retry
                    hold = retry_check if retry else mean_hold * hold_draw[y]
                    new_t[n_new], new_key[n_new] = now + hold, _RELEASE << _KIND_SHIFT | tick
                    new_code[n_new] = y * 8 + _READER
                    n_new += 1
                    tick += 1
                    continue
                holding = y  # grant_writer()
                first = math.isnan(cb_grant[y])
                if first:
                    cb_grant[y] = now
                    if cb_count[y] > 0:  # kvm_inc_notifier_count (4a42d848db95)
                        if count == 0:
                            range_lo, range_hi = cb_start[y], cb_end[y]
                        else:
                            range_lo = min(range_lo, cb_start[y])
                            range_hi = max(range_hi, cb_end[y])
                        count += 1
                if cb_loop[y] <= 0:
                    end = now + cb_cost[y]
                else:
                    pre = cb_cost[y] - cb_loop[y] - cb_post[y] if first else 0.0
                    seg_grant[y] = now
                    loop_start[y] = now + pre
                    end = loop_start[y] + loop_left[y] + cb_post[y]
                    valid[y] = tick
                    yield_at[y] = np.nan
                    contended = q_len > 0  # rwlock_is_contended(): the last one granted
                new_t[n_new], new_key[n_new] = end, _RELEASE << _KIND_SHIFT | tick
                new_code[n_new] = y * 8 + _WRITER
                n_new += 1
                tick += 1
            ng = 0
            i = holding
            if contended and i >= 0 and cb_loop[i] > 0 and math.isnan(yield_at[i]):
                # contention(): the zap holding the lock yields at its next SPTE, after one
                # step at least (it never yields twice at one gfn), unless its loop ends first.
                contended = False
                start = loop_start[i]
                k_f = max(1.0, np.ceil((now - start) / step)) if step > 0 else 1.0
                t = start + k_f * step
                if t < start + loop_left[i]:
                    yield_at[i] = t  # flush what it zapped, then write_unlock
                    new_t[n_new], new_key[n_new] = t + flush_us, _RELEASE << _KIND_SHIFT | tick
                    new_code[n_new] = i * 8 + _YIELD
                    valid[i] = tick
                    n_new += 1
                    tick += 1
            contended = False
            if post == 1:  # next_attempt(): the same access again, or a new fault
                a = attempt[x] + 1
                attempt[x] = a
                guest, res, hold_draw[x], page = attempt_draws(
                    key, x, a, guest_mean, resolve_mean, total_pages
                )
                if is_retry[x]:
                    t_exit[x] = now + half_exit
                    retries[x] += 1
                else:
                    t_exit[x] = now + half_exit + guest
                    if t_exit[x] >= duration:
                        break
                    fault[x] += 1
                    retries[x] = 0
                    hva[x] = page_hva(page, slot_first_page, slot_hva)
                spins[x] = 0
                resolve[x] = res
                t_snap[x] = t_exit[x] + half_exit
                t_req[x] = t_snap[x] + res + acquire
                if precheck:  # fault_in()
                    new_t[n_new], new_key[n_new] = t_snap[x], _CHECK << _KIND_SHIFT | tick
                    new_code[n_new] = x * 8 + _SNAPSHOT
                else:
                    new_t[n_new], new_key[n_new] = t_req[x], _REQUEST << _KIND_SHIFT | tick
                    new_code[n_new] = x * 8 + _READER
                n_new += 1
                tick += 1
            elif post == 2:  # the zap asks for the lock again
                post = 0
                seg_request[x] = now
                if not writer and readers == 0 and q_len == 0:
                    writer = True
                    granted[0] = 2 * x + 1
                    ng = 1
                    continue
                queued_writers += 1
                queue[(q_head + q_len) % queue.shape[0]] = 2 * x + 1
                q_len += 1
                contended = True
                continue
            elif post == 3:  # next_callback(x, now)
                cb_done[x] = now
                if cb_next[x] >= 0:
                    new_t[n_new], new_key[n_new] = now + cb_gap[x], _ARRIVE << _KIND_SHIFT | tick
                    new_code[n_new] = cb_next[x] * 8 + _WRITER
                    n_new += 1
                    tick += 1
            break
    scalars[_READERS] = readers
    scalars[_WRITER_IN] = writer
    scalars[_QUEUED_WRITERS] = queued_writers
    scalars[_Q_HEAD] = q_head
    scalars[_Q_LEN] = q_len
    scalars[_N_PARK] = n_park
    scalars[_N_ASKED] = n_asked
    scalars[_HOLDING] = holding
    scalars[_COUNT] = count
    scalars[_N_BUMPS] = nb
    scalars[_N_ROWS] = n_rows
    scalars[_N_HOLDS] = n_holds
    ranges[0] = range_lo
    ranges[1] = range_hi
    scalars[_HEAP_N] = n_heap
    scalars[_NEXT_TICK] = tick
    scalars[_N_NEW] = n_new
    return status
