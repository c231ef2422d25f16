"""Lock policies for ``mmu_lock`` and an exact replay of a list of lock requests.

Three policies, each a small state machine with the same two verbs (``request``, ``release``):

``"qrwlock"``
    The kernel's fair rwlock (``kernel/locking/qrwlock.c``, docs/kernel.md §4). A reader gets in at
    once iff no writer holds *or waits*; otherwise it queues FIFO on ``wait_lock``. A writer is
    granted when it is at the head of the queue and nobody holds the lock; while it waits for the
    readers already inside it holds ``wait_lock``, so every newer reader queues behind it
    (``queued_write_lock_slowpath``). When a writer leaves, the readers at the head of the queue
    enter together, up to the next queued writer.
``"reader-pref"``
    The unfair contrast: a reader gets in unless a writer *holds*; when a writer leaves, every
    waiting reader goes before any waiting writer; writers are FIFO among themselves.
``"spinlock"``
    Every request exclusive, FIFO: the legacy shadow MMU, whose faults take ``mmu_lock`` for
    write (docs/kernel.md §4.8), or x86 before 531810caa9f4.

Hand-off is free and ties are broken deterministically: requests are ordered by arrival time,
then by index, and at one instant every release happens before any arrival.
"""

from __future__ import annotations

import heapq
from collections import deque

import numpy as np

from .._shared._checks import check_bool_array

__all__ = ["POLICIES", "LockPolicy", "grant_times", "make_lock", "queued_behind", "replay"]

POLICIES = ("qrwlock", "reader-pref", "spinlock")


class LockPolicy:
    """State of one ``mmu_lock`` under a policy.

    ``request(who, is_writer)`` returns ``True`` if the request is granted at once, else queues
    it; ``release(who, is_writer)`` returns the requests granted by that release, in grant order;
    ``contended()`` says whether anyone is queued (``rwlock_is_contended()``: somebody waits on
    ``wait_lock``, 26128cb6c7e6). ``who`` is any hashable id.
    """

    def __init__(self) -> None:
        self.readers = 0  # readers inside
        self.writer = False  # a writer inside

    def request(self, who, is_writer: bool) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def release(self, who, is_writer: bool) -> list:
        if is_writer:
            if not self.writer:
                raise RuntimeError(f"{who!r} releases a write lock nobody holds")
            self.writer = False
        else:
            if self.readers <= 0:
                raise RuntimeError(f"{who!r} releases a read lock nobody holds")
            self.readers -= 1
        return self._dispatch()

    def _dispatch(self) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def contended(self) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def _enter(self, is_writer: bool) -> None:
        if is_writer:
            self.writer = True
        else:
            self.readers += 1


class _QRWLock(LockPolicy):
    def __init__(self) -> None:
        super().__init__()
        self.queue: deque = deque()  # wait_lock's FIFO (an MCS queue on x86)
        self.queued_writers = 0

    def contended(self) -> bool:
        return bool(self.queue)

    def request(self, who, is_writer: bool) -> bool:
        if is_writer:
            # queued_write_lock fast path: cmpxchg 0 -> _QW_LOCKED; fails if anyone is around.
            if not self.writer and self.readers == 0 and not self.queue:
                self.writer = True
                return True
            self.queued_writers += 1
        elif not self.writer and self.queued_writers == 0:
            # queued_read_lock fast path: no _QW_WMASK bits (no writer holding or waiting).
            self.readers += 1
            return True
        self.queue.append((who, is_writer))
        return False

    def _dispatch(self) -> list:
        granted = []
        while self.queue and not self.writer:
            who, is_writer = self.queue[0]
            if is_writer:
                # Waits for cnts == _QW_WAITING: every reader inside has left.
                if self.readers:
                    break
                self.queue.popleft()
                self.queued_writers -= 1
                self.writer = True
                granted.append(who)
                break
            self.queue.popleft()
            self.readers += 1
            granted.append(who)
        return granted


class _ReaderPrefLock(LockPolicy):
    def __init__(self) -> None:
        super().__init__()
        self.waiting_readers: deque = deque()
        self.waiting_writers: deque = deque()

    def contended(self) -> bool:
        return bool(self.waiting_readers or self.waiting_writers)

    def request(self, who, is_writer: bool) -> bool:
        if is_writer:
            if not self.writer and self.readers == 0 and not self.waiting_writers:
                self.writer = True
                return True
            self.waiting_writers.append(who)
            return False
        if not self.writer:
            self.readers += 1
            return True
        self.waiting_readers.append(who)
        return False

    def _dispatch(self) -> list:
        granted = []
        if self.writer:
            return granted
        while self.waiting_readers:
            granted.append(self.waiting_readers.popleft())
            self.readers += 1
        if self.readers == 0 and self.waiting_writers:
            granted.append(self.waiting_writers.popleft())
            self.writer = True
        return granted


class _SpinLock(LockPolicy):
    def __init__(self) -> None:
        super().__init__()
        self.queue: deque = deque()

    def contended(self) -> bool:
        return bool(self.queue)

    def request(self, who, is_writer: bool) -> bool:
        if not self.writer and not self.queue:
            self.writer = True
            return True
        self.queue.append(who)
        return False

    def release(self, who, is_writer: bool) -> list:
        # Under a spinlock every holder is exclusive, readers included.
        return super().release(who, True)

    def _dispatch(self) -> list:
        if self.writer or not self.queue:
            return []
        self.writer = True
        return [self.queue.popleft()]


_POLICY_CLASSES = {"qrwlock": _QRWLock, "reader-pref": _ReaderPrefLock, "spinlock": _SpinLock}


def make_lock(policy: str) -> LockPolicy:
    """A fresh lock of ``policy`` (one of :data:`POLICIES`)."""
    if not isinstance(policy, str) or policy not in _POLICY_CLASSES:
        raise ValueError(f"unknown lock policy {policy!r}; expected one of {POLICIES}")
    return _POLICY_CLASSES[policy]()


def _times(values, name: str, *, minimum: float | None = None) -> np.ndarray:
    """``values`` as a 1-D float array of finite times, µs; strings, booleans, objects, NaN and
    infinity are refused by name (and, with ``minimum``, values below it), citing the first
    offending index."""
    try:
        array = np.asarray(values)
    except ValueError:  # ragged nesting
        raise TypeError(f"{name}: expected a flat sequence of numbers (µs)") from None
    if array.size and (array.dtype.kind not in "iuf"):
        raise TypeError(f"{name}: expected numbers (µs), got dtype {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a one-dimensional sequence, got shape {array.shape}")
    array = array.astype(float)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(f"{name}[{bad[0]}] = {array[bad[0]]}: expected a finite time (µs)")
    if minimum is not None:
        bad = np.flatnonzero(array < minimum)
        if bad.size:
            raise ValueError(
                f"{name}[{bad[0]}] = {array[bad[0]]:g}: expected a time >= {minimum:g} µs"
            )
    return array


def grant_times(arrival, is_writer, hold, policy: str = "qrwlock") -> np.ndarray:
    """Grant time of every request in an open-loop request list.

    (Also reachable as ``replay``, its name before ``kvmviz replay`` came to mean replaying a
    recorded kernel trace: one word, one meaning.)

    Parameters
    ----------
    arrival : array_like of float
        Time each request arrives, µs.
    is_writer : array_like of bool
        ``True`` for a write (exclusive) request; ignored under ``"spinlock"``.
    hold : array_like of float
        How long each request holds the lock once granted, µs (>= 0).
    policy : {"qrwlock", "reader-pref", "spinlock"}

    Returns
    -------
    numpy.ndarray of float
        Grant time of each request, µs, in input order. Release is ``grant + hold``.

    Examples
    --------
    A reader inside, a writer waiting for it, and a reader arriving behind the writer:

    >>> grant_times([0, 1, 2], [False, True, False], [10, 5, 1]).tolist()
    [0.0, 10.0, 15.0]
    >>> grant_times([0, 1, 2], [False, True, False], [10, 5, 1], policy="reader-pref").tolist()
    [0.0, 10.0, 2.0]
    """
    lock = make_lock(policy)  # an unknown policy is refused before the arrays are read
    arrival = _times(arrival, "arrival")
    is_writer = check_bool_array(is_writer, "is_writer")  # ["False"] is not False
    hold = _times(hold, "hold", minimum=0.0)
    if not (len(arrival) == len(is_writer) == len(hold)):
        raise ValueError(
            f"arrival, is_writer and hold differ in length: "
            f"{len(arrival)}, {len(is_writer)}, {len(hold)}"
        )
    grant = np.full(len(arrival), np.nan)
    # Event heap of (time, kind, index): kind 0 = release, 1 = arrival, so at one instant every
    # release happens before any arrival, and equal times resolve by index.
    events = [(float(t), 1, i) for i, t in enumerate(arrival)]
    heapq.heapify(events)
    while events:
        now, kind, i = heapq.heappop(events)
        if kind == 1:
            granted = [i] if lock.request(i, bool(is_writer[i])) else []
        else:
            granted = lock.release(i, bool(is_writer[i]))
        for j in granted:
            grant[j] = now
            heapq.heappush(events, (now + float(hold[j]), 0, j))
    return grant


def queued_behind(request, waited, since, release) -> np.ndarray:
    """Whom each waiting request queued behind: the one home of ``Run.faults``' ``blocked_by``.

    A reader that cannot have the lock at once waits behind the newest writer that asked for
    it at or before the reader asked and has not left (qrwlock, spinlock: writers are granted
    in the order they asked, ``queued_write_lock_slowpath``), or, under reader-pref where a
    reader only waits for the holder, behind the writer holding it. Pass the writers' request
    times as ``since`` for the first rule, their grant times for the second. Ties in ``since``
    go to the later writer (the one listed last). The engines compute the same column while
    they run (the compiled loop in numba); tests/test_engine.py proves both equal to this.

    Parameters
    ----------
    request : array_like of float
        When each reader asked, µs.
    waited : array_like of bool
        Whether it waited (was granted after it asked); the others queued behind nobody.
    since : array_like of float
        Per writer, when it asked (or, reader-pref, when it was granted), µs.
    release : array_like of float
        Per writer, when it released the lock, µs.

    Returns
    -------
    numpy.ndarray of int64
        Per reader, the index of the writer it queued behind, or -1.

    Examples
    --------
    A writer asks at 1 and holds 10-15; a reader asking at 2 waits behind it, one at 20 does not:

    >>> queued_behind([2, 20], [True, False], [1], [15]).tolist()
    [0, -1]
    """
    request = np.asarray(request, dtype=float)
    waited = np.asarray(waited, dtype=bool)
    since = np.asarray(since, dtype=float)
    release = np.asarray(release, dtype=float)
    order = np.lexsort((np.arange(len(since)), since))  # by since, then by listing
    behind = np.full(len(request), -1, dtype=np.int64)
    for k in np.flatnonzero(waited):
        there = order[(since[order] <= request[k]) & (release[order] > request[k])]
        if there.size:
            behind[k] = there[-1]
    return behind


replay = grant_times  # the name before 0.2: kept for notebooks and posts that call kv.replay
