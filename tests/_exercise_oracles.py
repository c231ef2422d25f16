"""The exercises' oracles: each answer computed again from the kernel's text, sharing no code
with the package.

* the lock: a code-level transcription of ``kernel/locking/qrwlock.c`` (a ``cnts`` word with
  reader bias from bit 9, ``_QW_WAITING`` 0x100, ``_QW_LOCKED`` 0xff, and a FIFO ``wait_lock``,
  each request stepping through ``queued_read_lock`` / ``queued_write_lock`` and their slow
  paths on integer time), plus a reader-preferring lock and a spinlock (docs/kernel.md §4);
* ``mmu_notifier_retry_hva``: each callback's effect on ``mmu_notifier_count`` /
  ``mmu_notifier_seq`` as the v5.12, v5.13 and v5.15 code does it, with a page-by-page hit
  test (docs/kernel.md §1.2, §3.1, §3.2);
* the callbacks an mm operation fires, as a table of the mm functions (docs/kernel.md §1.2,
  §1.6), and the words a question names each operation by;
* which callbacks lock on a miss, and how many times each kernel walks the memslots.

tests/test_exercises.py computes each kind's answer with these from the parameters the
exercise asked about (its ``scene``).
"""

from __future__ import annotations

from hypothesis import strategies as st

from kvmviz.inputs.presets import VMM_HEAP, q35_512m_layout

PAGE = 4096
LAYOUT = q35_512m_layout()
START, END = "invalidate_range_start", "invalidate_range_end"


# -- the lock oracle: kernel/locking/qrwlock.c, a reader-preferring lock, a spinlock ----------
_QW_LOCKED, _QW_WAITING, _QR_BIAS = 0xFF, 0x100, 0x200
_QW_WMASK = 0x1FF


def _qrwlock_oracle(arrival, is_writer, hold) -> list[int]:
    """Grant times from the qrwlock code paths, stepped one µs at a time."""
    n = len(arrival)
    order = sorted(range(n), key=lambda i: (arrival[i], i))
    cnts = 0
    wait_lock: list[int] = []  # FIFO of requests holding (head) or queued on wait_lock
    state = dict.fromkeys(range(n), "new")
    grant: list[int | None] = [None] * n
    release: dict[int, int] = {}
    t = 0
    while None in grant or release:
        # Releases first (queued_read_unlock / queued_write_unlock).
        for i in [i for i, r in release.items() if r == t]:
            cnts -= _QW_LOCKED if is_writer[i] else _QR_BIAS
            del release[i]
            state[i] = "done"
        cnts = _spin(wait_lock, state, cnts, grant, release, hold, is_writer, t)
        # Arrivals, in order: the fast paths.
        for i in (i for i in order if arrival[i] == t):
            if is_writer[i]:
                if cnts == 0:  # queued_write_lock: cmpxchg 0 -> _QW_LOCKED
                    cnts = _QW_LOCKED
                    state[i] = "inside"
                else:
                    wait_lock.append(i)
                    state[i] = "queued"
            else:
                cnts += _QR_BIAS  # queued_read_lock: add the bias, look at the writer bits
                if cnts & _QW_WMASK == 0:
                    state[i] = "inside"
                else:
                    cnts -= _QR_BIAS  # slow path: back out, queue on wait_lock
                    wait_lock.append(i)
                    state[i] = "queued"
            if state[i] == "inside":
                grant[i] = t
                release[i] = t + hold[i]
            # Whoever is at the head of wait_lock spins; let every spin run to a fixpoint.
            cnts = _spin(wait_lock, state, cnts, grant, release, hold, is_writer, t)
        cnts = _spin(wait_lock, state, cnts, grant, release, hold, is_writer, t)
        t += 1
        assert t < 10_000
    return grant


def _spin(wait_lock, state, cnts, grant, release, hold, is_writer, t) -> int:
    progress = True
    while progress and wait_lock:
        progress = False
        head = wait_lock[0]
        if state[head] == "queued":  # it now owns wait_lock
            if is_writer[head]:
                state[head] = "writer-head"
            else:
                cnts += _QR_BIAS  # queued_read_lock_slowpath: re-add the bias, then spin
                state[head] = "reader-spin"
        if state[head] == "reader-spin":
            # Spin while _QW_LOCKED is set.
            if cnts & 0xFF == 0:
                state[head] = "inside"
                grant[head], release[head] = t, t + hold[head]
                wait_lock.pop(0)  # release wait_lock: the next in line becomes head
                progress = True
        elif state[head] == "writer-head":
            # queued_write_lock_slowpath: got wait_lock; lock if free, else set _QW_WAITING.
            if cnts == 0:
                cnts = _QW_LOCKED
            else:
                cnts |= _QW_WAITING
                state[head] = "writer-waiting"
                continue
            state[head] = "inside"
            grant[head], release[head] = t, t + hold[head]
            wait_lock.pop(0)
            progress = True
        elif state[head] == "writer-waiting":
            if cnts == _QW_WAITING:  # every reader has left
                cnts = _QW_LOCKED
                state[head] = "inside"
                grant[head], release[head] = t, t + hold[head]
                wait_lock.pop(0)
                progress = True
    return cnts


def _reader_pref_oracle(arrival, is_writer, hold) -> list[int]:
    """Readers enter unless a writer holds; a writer enters when nobody is inside."""
    n = len(arrival)
    grant: list[int | None] = [None] * n
    waiting_readers: list[int] = []
    waiting_writers: list[int] = []
    t = 0
    while None in grant:
        inside = [i for i in range(n) if grant[i] is not None and grant[i] + hold[i] > t]
        writer_in = any(is_writer[i] for i in inside)
        if not writer_in:
            for i in waiting_readers:
                grant[i] = t
            inside += waiting_readers
            waiting_readers = []
            if not inside and waiting_writers:
                w = waiting_writers.pop(0)
                grant[w] = t
                inside, writer_in = [w], True
        for i in sorted((i for i in range(n) if arrival[i] == t), key=lambda i: i):
            if not is_writer[i]:
                if writer_in:
                    waiting_readers.append(i)
                else:
                    grant[i] = t
                    inside.append(i)
            elif not inside and not waiting_writers:
                grant[i], writer_in = t, True
                inside.append(i)
            else:
                waiting_writers.append(i)
        t += 1
    return grant


def _spinlock_oracle(arrival, is_writer, hold) -> list[int]:
    """One holder at a time, first come first served."""
    free_at, grant = 0, [0] * len(arrival)
    for i in sorted(range(len(arrival)), key=lambda i: (arrival[i], i)):
        grant[i] = max(free_at, arrival[i])
        free_at = grant[i] + hold[i]
    return grant


def lock_oracle(arrival, is_writer, hold, policy) -> list[int]:
    """Grant times of each request under ``policy``, from the oracles above."""
    return {
        "qrwlock": _qrwlock_oracle,
        "reader-pref": _reader_pref_oracle,
        "spinlock": _spinlock_oracle,
    }[policy](list(arrival), list(is_writer), list(hold))


requests = st.integers(1, 9).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 15), min_size=n, max_size=n),
        st.lists(st.booleans(), min_size=n, max_size=n),
        st.lists(st.integers(1, 8), min_size=n, max_size=n),
    )
)


# -- the retry oracle: mmu_notifier_retry_hva() after the callbacks, from the kernel text ------
def page_hits(layout, start: int, end: int) -> bool:
    """Brute force: does any page of [start, end) lie in a memslot?"""
    pages = range(start // PAGE, (end + PAGE - 1) // PAGE)
    return any(s.hva_start // PAGE <= p < s.hva_end // PAGE for p in pages for s in layout)


# The releases that still register change_pte, typed out: v5.12 to v6.9 (f3b65bbaed7c, v6.10).
WITH_CHANGE_PTE = {f"v5.{m}" for m in range(12, 20)} | {f"v6.{m}" for m in range(10)}


def retry_oracle(kernel: str, layout, hva: int, seq0: int, calls) -> bool:
    """mmu_notifier_retry_hva() after the callbacks, transcribed from the kernel."""
    count, seq, lo, hi = 0, seq0, None, None
    for callback, start, end in calls:
        hit = page_hits(layout, start, end)
        # The on_lock path (count/seq) runs always before 071064f14d87 (v5.15), on a hit after.
        on_lock = kernel in ("v5.12", "v5.13", "v5.14") or hit
        if callback == START and on_lock:  # kvm_inc_notifier_count
            lo, hi = (start, end) if count == 0 else (min(lo, start), max(hi, end))
            count += 1
        elif callback == END and on_lock:  # kvm_dec_notifier_count: seq++, smp_wmb(), count--
            seq += 1
            count -= 1
        elif callback == "change_pte" and kernel == "v5.12":  # until c13fda237f08
            seq += 1
    return (count != 0 and lo <= hva < hi) or seq != seq0


RAM = max(LAYOUT, key=lambda s: s.npages)
FAULT_HVA = RAM.hva_start + 1000 * PAGE


@st.composite
def callback_streams(draw):
    """Well-formed notifier streams: events, sometimes nested, sometimes cut short."""
    places = st.sampled_from(
        [FAULT_HVA - 2 * PAGE, FAULT_HVA, RAM.hva_start, RAM.hva_end - 4 * PAGE, VMM_HEAP[0]]
    )
    order: list = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["pair", "move", "clear_young", "test_young"]))
        start = draw(places)
        npages = draw(st.integers(1, 4)) if kind in ("pair", "clear_young") else 1
        end = start + npages * PAGE
        if kind == "pair":
            event = [(START, start, end), (END, start, end)]
        elif kind == "move":
            event = [(START, start, end), ("change_pte", start, end), (END, start, end)]
        else:
            event = [(kind, start, end)]
        if order and order[-1][0] == END and len(event) > 1 and draw(st.booleans()):
            order[len(order) - 1 : len(order) - 1] = event
        else:
            order.extend(event)
    cut = draw(st.integers(1, len(order)))
    return order[:cut]


# -- the callback-order oracle: what the kernel's mm code fires for each operation -------------
# The operation (the generator's name for it) -> what the kernel fires (set_pte_at_notify
# callers give change_pte).
CALLBACKS_OF = {
    "munmap": (START, END),
    "madvise": (START, END),
    "migration": (START, END),
    "ksm": (START, "change_pte", END),
    "cow": (START, "change_pte", END),
    "reclaim": ("clear_flush_young",),
    "page_idle": ("clear_young",),
    "khugepaged": ("test_young",),
}
# The words that name each operation in its question: one phrase per operation, in no other.
PHRASES = {
    "munmap": "`munmap`s",
    "madvise": "MADV_DONTNEED",
    "migration": "NUMA balancing migrates",
    "ksm": "`replace_page()`",
    "cow": "copy-on-write",
    "reclaim": "Page reclaim",
    "page_idle": "page_idle/bitmap",
    "khugepaged": "khugepaged",
}


def overlaps(a: tuple, b: tuple) -> bool:
    """Whether two half-open ranges share a byte."""
    return max(a[0], b[0]) < min(a[1], b[1])


# docs/kernel.md §1.2/§2: which callbacks take mmu_lock, by kernel, on a miss (every kernel on
# a hit):
# all on v5.12; on v5.13 (8931a454aea0) only the start/end pair; none on v5.15 (071064f14d87).
LOCKS_ON_MISS = {
    "v5.12": {
        "invalidate_range_start",
        "invalidate_range_end",
        "change_pte",
        "clear_flush_young",
        "clear_young",
        "test_young",
    },
    "v5.13": {"invalidate_range_start", "invalidate_range_end"},
    "v5.15": set(),
}
# How many times each kernel walks the memslots under the lock (3039bcc74498 merged v5.12's two).
WALKS = {"v5.12": 2, "v5.13": 1, "v5.15": 1}


# -- the 2024 freeze (chapter 08): whether a zap yields, whether a fault reaches mmu_lock -------
def _release(kernel: str) -> tuple[int, int]:
    major, minor = kernel.lstrip("v").split(".")[:2]
    return int(major), int(minor)


def zap_yields_oracle(kernel: str, preempt: str, dynamic: bool) -> bool:
    """tdp_mmu_iter_cond_resched() -> rwlock_needbreak(), transcribed release by release.

    A notifier's zap may yield only from e1eed5847b09 (v5.13: can_yield = range->may_block).
    include/linux/spinlock.h: ``rwlock_needbreak()`` is ``rwlock_is_contended()`` under
    ``#ifdef CONFIG_PREEMPTION`` (a09a689a5341), which CONFIG_PREEMPT and every
    CONFIG_PREEMPT_DYNAMIC build select; from c793a62823d1 (v6.11) it first asks
    ``preempt_model_preemptible()``: true only for the full (or RT) model.
    """
    if _release(kernel) < (5, 13):
        return False
    config_preemption = dynamic or preempt == "full"
    if _release(kernel) >= (6, 11):
        return config_preemption and preempt == "full"
    return config_preemption


def precheck_oracle(
    kernel: str, in_progress: int, lo: int, hi: int, gfn: int, seq_now: int, seq: int
) -> bool:
    """Whether a fault goes on to take mmu_lock after resolving its pfn (x86
    kvm_faultin_pfn()): before d02c357e5bfa (v6.8) always; from it, unless
    mmu_invalidate_retry_gfn_unsafe() says retry: an invalidation in progress whose gfn range
    [lo, hi) holds the gfn, or a seq that moved since the fault sampled it."""
    if _release(kernel) < (6, 8):
        return True
    retry = (in_progress != 0 and lo <= gfn < hi) or seq_now != seq
    return not retry
