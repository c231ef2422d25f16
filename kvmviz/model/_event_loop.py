"""The event-driven engine under qrwlock with read-locking faults, as one loop numba compiles.

A line-by-line port of :class:`kvmviz.engine`'s ``_EventRun`` for the ``"qrwlock"`` policy and
the TDP MMU (faults take ``mmu_lock`` for read), with today's rules: the lockless pre-check
(d02c357e5bfa, v6.8: a fault on an address being invalidated spins without the lock, parked
until the counters change) and the zap that yields a contended lock
(``tdp_mmu_iter_cond_resched()`` -> ``cond_resched_rwlock_write()``). The model is described
there; this file only makes it fast. Written in the subset of Python that numba's ``njit``
accepts, so without numba the same source runs as plain Python (slowly, still exact).

The Python engine and this loop give identical tables (tests/test_engine_events_compiled.py):

* the same events in the same order: a binary heap on ``(time, kind, tick)``, the kinds ordered
  release (and yield) < a callback arrives < a vCPU requests < a pre-check, and ``tick`` the push
  count, so ties go to the event pushed first. Every push of the Python engine happens here in
  the same order, the releases a yield makes stale included (they are popped and skipped);
* the same floating-point arithmetic, operand for operand;
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

FLOAT_COLUMNS = ("t_exit_us", "t_request_us", "t_grant_us", "t_release_us", "t_snapshot_us")
"""The columns of :func:`run_events`' float rows, in order."""
INT_COLUMNS = ("vcpu", "fault", "retries", "hva", "retry", "blocked_by", "spins")
"""The columns of its int rows (``hva`` as its 64 bits), in order."""


@njit(cache=True)
def _push(ht, hkey, hcode, hs, t, kind, who, x):
    """Push event ``(t, kind)`` about ``who`` ``x``; ``hs`` is ``[size, next tick]``. Returns
    the event's tick. The caller makes sure there is room."""
    tick = hs[1]
    hs[1] = tick + 1
    key = (kind << _KIND_SHIFT) | tick
    code = x * 8 + who
    k = hs[0]
    hs[0] = k + 1
    while k > 0:
        parent = (k - 1) >> 1
        pt = ht[parent]
        if pt < t or (pt == t and hkey[parent] < key):
            break
        ht[k], hkey[k], hcode[k] = pt, hkey[parent], hcode[parent]
        k = parent
    ht[k], hkey[k], hcode[k] = t, key, code
    return tick


@njit(cache=True)
def _pop(ht, hkey, hcode, hs):
    """The first event: ``(time, key, code)``."""
    t, key, code = ht[0], hkey[0], hcode[0]
    n = hs[0] - 1
    hs[0] = n
    if n > 0:
        lt, lk, lc = ht[n], hkey[n], hcode[n]
        k = 0
        while True:
            c = 2 * k + 1
            if c >= n:
                break
            if c + 1 < n and (ht[c + 1] < ht[c] or (ht[c + 1] == ht[c] and hkey[c + 1] < hkey[c])):
                c += 1
            if ht[c] < lt or (ht[c] == lt and hkey[c] < lk):
                ht[k], hkey[k], hcode[k] = ht[c], hkey[c], hcode[c]
                k = c
            else:
                break
        ht[k], hkey[k], hcode[k] = lt, lk, lc
    return t, key, code


@njit(cache=True)
def _contention(
    now, i, cb_loop, yield_at, loop_start, loop_left, valid, step, flush_us, ht, hkey, hcode, hs
):
    """``_EventRun.contention``: somebody queued at ``now`` while callback ``i`` (or nobody,
    -1) holds the lock; a yielding zap plans its yield at its next SPTE, after one step at
    least, unless its loop ends first."""
    if i < 0 or cb_loop[i] <= 0 or not math.isnan(yield_at[i]):
        return
    start = loop_start[i]
    k = max(1.0, np.ceil((now - start) / step)) if step > 0 else 1.0
    t = start + k * step
    if t >= start + loop_left[i]:
        return
    yield_at[i] = t
    valid[i] = _push(ht, hkey, hcode, hs, t + flush_us, _RELEASE, _YIELD, i)


@njit(cache=True)
def _grown(a, rows):
    """``a`` copied into a larger array of ``rows`` rows."""
    shape = (rows,) + a.shape[1:]
    b = np.empty(shape, dtype=a.dtype)
    b[: a.shape[0]] = a
    return b


@njit(cache=True)
def run_events(
    duration, half_exit, vmexit, mean_hold, retry_check, acquire, precheck,
    key, n_vcpus, guest_mean, resolve_mean, total_pages, slot_first_page, slot_hva,
    cb_locked, cb_count, cb_bump, cb_flush, cb_cost, cb_loop, cb_post, cb_gap, cb_next,
    cb_start, cb_end, step, flush_us, first_time, first_cb, max_rows,
    rows_f, rows_i, cb_arrive, cb_grant, cb_done, cb_release, cb_held, cb_yields,
):  # fmt: skip
    """Run the event-driven closed loop; fill one row per fault attempt and the ``cb_*`` arrays.

    The rows come in the order the attempts release ``mmu_lock`` (the Python engine's order):
    ``rows_f`` holds :data:`FLOAT_COLUMNS`, ``rows_i`` :data:`INT_COLUMNS`; they are grown
    (copied) when full, so the caller passes arrays sized to its estimate (numpy asks the
    kernel for huge pages on large arrays, numba does not).

    Returns ``(n_rows, rows_f, rows_i, n_holds, holds_f, holds_i, n_bumps, bumps, count,
    range_start, range_end)``: ``n_rows`` is -1 once the run outgrew ``max_rows`` attempts;
    ``holds_f`` (request, grant, release) and ``holds_i`` (callback, yielded, flushed) are the
    write holds of the zaps that yielded, one per hold; ``bumps`` the times
    ``mmu_notifier_seq`` moved; the last three the final ``mmu_notifier_count`` and range.
    """
    m = n_vcpus
    n_cb = cb_locked.shape[0]
    # Per-vCPU state of the attempt in progress.
    attempt = np.zeros(m, dtype=np.int64)
    fault = np.zeros(m, dtype=np.int64)
    retries = np.zeros(m, dtype=np.int64)
    hva = np.zeros(m, dtype=np.uint64)
    t_exit = np.zeros(m)
    t_snap = np.zeros(m)
    t_req = np.zeros(m)
    t_grant = np.zeros(m)
    is_retry = np.zeros(m, dtype=np.bool_)
    hold_draw = np.zeros(m)  # the standard-exponential hold draw of the attempt in progress
    blocked = np.full(m, -1, dtype=np.int64)
    spins = np.zeros(m, dtype=np.int64)
    resolve = np.zeros(m)
    park_v = np.empty(m, dtype=np.int64)  # parked on a range in flight, in the order they parked
    park_t = np.empty(m)
    n_park = 0
    # Per-callback state of the yielding zaps.
    loop_left = cb_loop.copy()
    loop_start = np.zeros(n_cb)
    yield_at = np.full(n_cb, np.nan)
    valid = np.full(n_cb, -1, dtype=np.int64)
    seg_request = np.zeros(n_cb)
    seg_grant = np.zeros(n_cb)
    asked = np.empty(n_cb + 1, dtype=np.int64)  # callbacks that asked, in order
    n_asked = 0
    holding = -1
    # The qrwlock: readers inside, a writer inside, wait_lock's FIFO queue (a ring).
    readers = 0
    writer = False
    queued_writers = 0
    q_cap = m + n_cb + 1
    queue = np.empty(q_cap, dtype=np.int64)
    q_head = 0
    q_len = 0
    granted = np.empty(q_cap, dtype=np.int64)
    # mmu_notifier_count, its range, and the times mmu_notifier_seq moved.
    count = 0
    range_lo = np.uint64(0)
    range_hi = np.uint64(0)
    bumps = np.empty(n_cb + 1)
    nb = 0
    # Records.
    n_rows = 0
    holds_f = np.empty((16, 3))
    holds_i = np.empty((16, 3), dtype=np.int64)
    n_holds = 0
    # The event heap: time, kind << 58 | tick, payload; hs = [size, next tick].
    h_cap = 2 * m + first_cb.shape[0] + 64
    ht = np.empty(h_cap)
    hkey = np.empty(h_cap, dtype=np.int64)
    hcode = np.empty(h_cap, dtype=np.int64)
    hs = np.zeros(2, dtype=np.int64)

    # Every vCPU's first fault, then every event's first callback (_EventRun.run).
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
        if precheck:
            _push(ht, hkey, hcode, hs, t_snap[v], _CHECK, _SNAPSHOT, v)
        else:
            _push(ht, hkey, hcode, hs, t_req[v], _REQUEST, _READER, v)
    for k in range(first_cb.shape[0]):
        _push(ht, hkey, hcode, hs, first_time[k], _ARRIVE, _WRITER, first_cb[k])

    while hs[0] > 0:
        if hs[0] + m + 8 > ht.shape[0]:  # one event pushes at most m + 5
            ht = _grown(ht, 2 * ht.shape[0])
            hkey = _grown(hkey, 2 * hkey.shape[0])
            hcode = _grown(hcode, 2 * hcode.shape[0])
        now, hk, code = _pop(ht, hkey, hcode, hs)
        kind = hk >> _KIND_SHIFT
        tick = hk & _TICK_MASK
        who = code & 7
        x = code >> 3
        ng = 0  # requests granted, to grant in order (grant_all)
        post = 0  # then: 1 next_attempt(x), 2 zap x asks again, 3 next_callback(x, now)
        if kind == _REQUEST:  # request(): a vCPU asks for the lock
            if not writer and queued_writers == 0:  # queued_read_lock fast path
                readers += 1
                blocked[x] = -1
                granted[0] = 2 * x
                ng = 1
            else:
                queue[(q_head + q_len) % q_cap] = 2 * x
                q_len += 1
                blocked[x] = asked[n_asked - 1] if n_asked > 0 else -1
                _contention(
                    now, holding, cb_loop, yield_at, loop_start, loop_left, valid, step,
                    flush_us, ht, hkey, hcode, hs,
                )  # fmt: skip
                continue
        elif kind == _ARRIVE:  # arrive(): a callback runs
            cb_arrive[x] = now
            if not cb_locked[x]:
                t_done = now + cb_cost[x]  # next_callback(x, now + cost)
                cb_done[x] = t_done
                if cb_next[x] >= 0:
                    _push(ht, hkey, hcode, hs, t_done + cb_gap[x], _ARRIVE, _WRITER, cb_next[x])
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
                queue[(q_head + q_len) % q_cap] = 2 * x + 1
                q_len += 1
                _contention(
                    now, holding, cb_loop, yield_at, loop_start, loop_left, valid, step,
                    flush_us, ht, hkey, hcode, hs,
                )  # fmt: skip
                continue
        elif kind == _CHECK:  # check(): mmu_invalidate_retry_gfn_unsafe() (d02c357e5bfa)
            h = hva[x]
            if count != 0 and range_lo <= h and h < range_hi:
                park_v[n_park] = x  # spins until the range changes
                park_t[n_park] = now
                n_park += 1
            elif who == _SNAPSHOT:
                _push(ht, hkey, hcode, hs, t_snap[x] + resolve[x], _CHECK, _RESOLVED, x)
            elif np.searchsorted(bumps[:nb], t_snap[x], side="right") != nb:
                spins[x] += 1  # seq moved: spin(x, now + vmexit)
                t_snap[x] = now + vmexit
                _push(ht, hkey, hcode, hs, t_snap[x], _CHECK, _SNAPSHOT, x)
            else:
                t_req[x] = now + acquire
                _push(ht, hkey, hcode, hs, t_req[x], _REQUEST, _READER, x)
            continue
        elif who == _READER:  # release_reader(): record the attempt, let go
            if n_rows == rows_f.shape[0]:
                rows_f = _grown(rows_f, 2 * n_rows + 16)
                rows_i = _grown(rows_i, 2 * n_rows + 16)
            rows_f[n_rows, 0] = t_exit[x]
            rows_f[n_rows, 1] = t_req[x]
            rows_f[n_rows, 2] = t_grant[x]
            rows_f[n_rows, 3] = now
            rows_f[n_rows, 4] = t_snap[x]
            rows_i[n_rows, 0] = x
            rows_i[n_rows, 1] = fault[x]
            rows_i[n_rows, 2] = retries[x]
            rows_i[n_rows, 3] = np.int64(hva[x])
            rows_i[n_rows, 4] = is_retry[x]
            rows_i[n_rows, 5] = blocked[x]
            rows_i[n_rows, 6] = spins[x]
            n_rows += 1
            if n_rows > max_rows:
                n_rows = -1  # the run outgrew its row limit
                break
            readers -= 1
            post = 1
        else:  # a callback's write hold ends: a yield or its release
            if cb_loop[x] > 0 and tick != valid[x]:
                continue  # a release a yield has replaced
            if n_holds == holds_f.shape[0]:
                holds_f = _grown(holds_f, 2 * n_holds)
                holds_i = _grown(holds_i, 2 * n_holds)
            if who == _YIELD:  # yield_lock(): cond_resched_rwlock_write()
                loop_left[x] -= yield_at[x] - loop_start[x]
                cb_yields[x] += 1
                cb_held[x] += now - seg_grant[x]
                holds_f[n_holds, 0] = seg_request[x]
                holds_f[n_holds, 1] = seg_grant[x]
                holds_f[n_holds, 2] = now
                holds_i[n_holds, 0] = x
                holds_i[n_holds, 1] = 1
                holds_i[n_holds, 2] = 1
                n_holds += 1
                post = 2
            else:  # release_writer()
                if cb_yields[x]:
                    cb_held[x] += now - seg_grant[x]
                    cb_release[x] = now
                    holds_f[n_holds, 0] = seg_request[x]
                    holds_f[n_holds, 1] = seg_grant[x]
                    holds_f[n_holds, 2] = now
                    holds_i[n_holds, 0] = x
                    holds_i[n_holds, 1] = 0
                    holds_i[n_holds, 2] = cb_flush[x]
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
                    _push(ht, hkey, hcode, hs, t_snap[v], _CHECK, _SNAPSHOT, v)
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
                    q_head = (q_head + 1) % q_cap
                    q_len -= 1
                    queued_writers -= 1
                    writer = True
                    granted[ng] = c
                    ng += 1
                    break
                q_head = (q_head + 1) % q_cap
                q_len -= 1
                readers += 1
                granted[ng] = c
                ng += 1
        while True:
            for g in range(ng):  # grant_all()
                y = granted[g] >> 1
                if granted[g] & 1 == 0:  # grant_reader(): mmu_notifier_retry_hva()
                    t_grant[y] = now
                    seq = np.searchsorted(bumps[:nb], t_snap[y], side="right")
                    h = hva[y]
                    retry = (count != 0 and range_lo <= h and h < range_hi) or nb != seq
                    is_retry[y] = retry
                    hold = retry_check if retry else mean_hold * hold_draw[y]
                    _push(ht, hkey, hcode, hs, now + hold, _RELEASE, _READER, y)
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
                    _push(ht, hkey, hcode, hs, now + cb_cost[y], _RELEASE, _WRITER, y)
                    continue
                pre = cb_cost[y] - cb_loop[y] - cb_post[y] if first else 0.0
                seg_grant[y] = now
                loop_start[y] = now + pre
                end = loop_start[y] + loop_left[y] + cb_post[y]
                valid[y] = _push(ht, hkey, hcode, hs, end, _RELEASE, _WRITER, y)
                yield_at[y] = np.nan
                if q_len > 0:  # rwlock_is_contended()
                    _contention(
                        now, holding, cb_loop, yield_at, loop_start, loop_left, valid, step,
                        flush_us, ht, hkey, hcode, hs,
                    )  # fmt: skip
            ng = 0
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
                    _push(ht, hkey, hcode, hs, t_snap[x], _CHECK, _SNAPSHOT, x)
                else:
                    _push(ht, hkey, hcode, hs, t_req[x], _REQUEST, _READER, x)
            elif post == 2:  # the zap asks for the lock again
                post = 0
                seg_request[x] = now
                if not writer and readers == 0 and q_len == 0:
                    writer = True
                    granted[0] = 2 * x + 1
                    ng = 1
                    continue
                queued_writers += 1
                queue[(q_head + q_len) % q_cap] = 2 * x + 1
                q_len += 1
                _contention(
                    now, holding, cb_loop, yield_at, loop_start, loop_left, valid, step,
                    flush_us, ht, hkey, hcode, hs,
                )  # fmt: skip
            elif post == 3:  # next_callback(x, now)
                cb_done[x] = now
                if cb_next[x] >= 0:
                    _push(ht, hkey, hcode, hs, now + cb_gap[x], _ARRIVE, _WRITER, cb_next[x])
            break
    return n_rows, rows_f, rows_i, n_holds, holds_f, holds_i, nb, bumps, count, range_lo, range_hi
