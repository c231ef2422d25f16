"""Classification, the first stage of the flow: which callbacks a notification runs, which of
them hit a memslot, and what the kernel's rules make each one do.

Given a notification stream (:mod:`kvmviz.notifiers`, or a real trace through
:func:`kvmviz.traces.to_stream`), a :class:`~kvmviz.MemslotLayout` and a kernel,
:func:`callbacks` expands every event into its callbacks (:data:`kvmviz.notifiers.EVENT_KINDS`),
tests each range against the memslots (:meth:`MemslotLayout.hit_mask`, as
``__kvm_handle_hva_range`` does) and looks up its rule (:func:`kvmviz.kernels.rule`): whether it
takes ``mmu_lock``, how it moves ``mmu_notifier_count`` and ``seq``, whether it may flush;
:func:`walk_costs` says how long each callback's memslot walk lasts on that kernel. This is
the one place the rules are applied: the engine, the trace tools, the figures and the exercises
call it. :class:`Counters` is the one reference of the count/seq state machine
(``kvm_inc_notifier_count`` / ``kvm_dec_notifier_count``, 4a42d848db95) that the event engine
and :func:`kvmviz.metrics.notifier_counters` share; the compiled loop
(:mod:`kvmviz.model._closed_loop`) carries its own copy in numba, proven equal by
tests/test_engine.py.

For real trace records, :func:`records` adds the hit and the gfn ranges to the frame of
:func:`kvmviz.traces.load_ftrace`, and :func:`phase_summary` counts them per phase.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from .._shared._checks import strict_booleans
from ..inputs.kernels import CALLBACKS, at_least, callbacks_on, resolve, rule
from ..inputs.memslots import PAGE_SIZE, MemslotLayout
from ..inputs.notifiers import EVENT_KINDS

__all__ = [
    "NO_PHASE",
    "SINGLE_HVA",
    "Counters",
    "callbacks",
    "event_hits",
    "first_callbacks",
    "mmu_notifier_retry_hva",
    "phase_summary",
    "records",
    "walk_costs",
]

SINGLE_HVA = frozenset({"change_pte", "test_young"})
"""The callbacks that carry one hva, not a range: they reach one page (docs/kernel.md §2)."""

# The callbacks a trace can show: invalidate_range_end has no tracepoint (docs/kernel.md §5).
_TRACED_CALLBACKS = tuple(c for c in CALLBACKS if c != "invalidate_range_end")
_MAX_PER_EVENT = max(len(seq) for seq in EVENT_KINDS.values())


@functools.cache
def _rule_arrays(kernel: str) -> tuple[np.ndarray, ...]:
    """The rule of every (callback, hit) pair on the canonical release ``kernel``, as four
    read-only arrays indexed ``[code, hit]``: takes the lock, count delta, bumps seq, flushes
    on ret. A callback the release does not register (``change_pte`` from v6.10) keeps
    zeros: :func:`_event_table` never yields its code there."""
    locked = np.zeros((len(CALLBACKS), 2), dtype=bool)
    delta = np.zeros((len(CALLBACKS), 2), dtype=np.int64)
    bump = np.zeros((len(CALLBACKS), 2), dtype=bool)
    flush = np.zeros((len(CALLBACKS), 2), dtype=bool)
    for cb in callbacks_on(kernel):
        c = CALLBACKS.index(cb)
        for h in (0, 1):  # integer indices: a bool index would be a mask
            r = rule(kernel, cb, bool(h))
            locked[c, h], delta[c, h], bump[c, h] = r.takes_lock, r.count_delta, r.bumps_seq
            flush[c, h] = r.flush_on_ret
    for table in (locked, delta, bump, flush):
        table.flags.writeable = False  # shared by every call: the cache's one copy
    return locked, delta, bump, flush


@functools.cache
def _event_table(kernel: str) -> tuple[np.ndarray, np.ndarray]:
    """The callbacks each event kind of :data:`EVENT_KINDS` runs on the canonical release
    ``kernel``: ``(table, lengths)``, ``table[kind, position]`` an index into
    :data:`CALLBACKS` (-1 past the kind's end), kinds in :data:`EVENT_KINDS` order.

    From v6.10 KVM registers no ``change_pte`` (f3b65bbaed7c): the ``set_pte_at_notify()``
    bracket of a COW or a KSM merge still fires start and end around the new PTE (the mm
    keeps them, 6bdb913f0a70), so such an event is a plain start/end pair, twice for a merge.
    """
    registered = set(callbacks_on(kernel))
    kinds = list(EVENT_KINDS)
    table = np.full((len(kinds), _MAX_PER_EVENT), -1, dtype=np.int64)
    lengths = np.zeros(len(kinds), dtype=np.int64)
    for k, kind in enumerate(kinds):
        run = [CALLBACKS.index(cb) for cb in EVENT_KINDS[kind] if cb in registered]
        table[k, : len(run)] = run
        lengths[k] = len(run)
    table.flags.writeable = False
    lengths.flags.writeable = False
    return table, lengths


def callbacks(stream: pd.DataFrame, layout: MemslotLayout, kernel: str) -> pd.DataFrame:
    """Every callback of a notification stream, its hit and its rule on ``kernel``.

    Parameters
    ----------
    stream : pandas.DataFrame
        ``event, kind, hva_start, hva_end`` (and any other columns), one row per notification
        event, as :func:`kvmviz.notifiers.generate_stream` gives; ``kind`` among
        :data:`kvmviz.notifiers.EVENT_KINDS`.
    layout : MemslotLayout
    kernel : str
        A release from v5.12 to v6.18 (:func:`kvmviz.kernels.resolve`: ``"v6.12"``,
        ``"6.12"``), e.g. one of :data:`kvmviz.KERNELS`.

    Returns
    -------
    pandas.DataFrame
        One row per callback, events in the stream's order and each event's callbacks in the
        order it runs them on ``kernel`` (from v6.10, which has no ``change_pte``, a
        ``"move"`` is a plain start/end pair and a ``"ksm_merge"`` two of them): ``event,
        row`` (the event's row in ``stream``), ``position`` (0 for the event's first callback),
        ``last`` (the event's last callback), ``code`` (index into :data:`kvmviz.CALLBACKS`),
        ``callback, hva_start, hva_end`` (one page for :data:`SINGLE_HVA`), ``hit`` (the range
        touches a memslot), ``locked`` (takes ``mmu_lock`` for write), ``count_delta`` (+1, 0,
        -1 on ``mmu_notifier_count``), ``bumps_seq`` and ``flush_on_ret`` (may flush remote
        TLBs if its handler returns true: :attr:`kvmviz.kernels.Rule.flush_on_ret`, false for
        x86 ``clear_flush_young`` from v6.13 and for all aging from v6.15).

    Examples
    --------
    >>> import kvmviz as kv
    >>> stream = pd.DataFrame({"event": [0], "kind": ["pair"], "hva_start": [0],
    ...                        "hva_end": [4096]})
    >>> layout = kv.MemslotLayout([kv.Memslot(0, 0, 16, 1 << 30)])
    >>> callbacks(stream, layout, "v5.13")[["callback", "hit", "locked"]].values.tolist()
    [['invalidate_range_start', False, True], ['invalidate_range_end', False, True]]
    >>> move = stream.assign(kind="move")
    >>> callbacks(move, layout, "6.18")["callback"].tolist()  # no change_pte from v6.10
    ['invalidate_range_start', 'invalidate_range_end']
    """
    kernel = resolve(kernel)
    kinds = list(EVENT_KINDS)
    unknown = sorted(set(pd.unique(stream["kind"].astype(object))) - set(kinds), key=str)
    if unknown:
        raise ValueError(f"event kinds must be among {kinds}, got {unknown}")
    kind_code = pd.Categorical(stream["kind"], categories=kinds).codes.astype(np.int64)
    # The callback at each (kind, position in the event) on this release, as an index into
    # CALLBACKS, and the number each kind runs.
    table, lengths = _event_table(kernel)
    seq_len = lengths[kind_code]
    n = int(seq_len.sum())
    first = (np.cumsum(seq_len) - seq_len).astype(np.int64)
    owner = np.repeat(np.arange(len(stream)), seq_len)
    position = np.arange(n) - first[owner]
    code = table[kind_code[owner], position]
    start = stream["hva_start"].to_numpy(dtype=np.uint64)[owner]
    single = np.isin(code, [CALLBACKS.index(c) for c in SINGLE_HVA])
    end = np.where(
        single, start + np.uint64(PAGE_SIZE), stream["hva_end"].to_numpy(np.uint64)[owner]
    )
    hit = layout.hit_mask(start, end)
    locked, delta, bump, flush = _rule_arrays(kernel)
    h = hit.astype(np.int64)
    return pd.DataFrame(
        {
            "event": stream["event"].to_numpy(dtype=np.int64)[owner],
            "row": owner,
            "position": position,
            "last": position + 1 == seq_len[owner],
            "code": code,
            "callback": np.array(CALLBACKS, dtype=object)[code],
            "hva_start": start,
            "hva_end": end,
            "hit": hit,
            "locked": locked[code, h],
            "count_delta": delta[code, h],
            "bumps_seq": bump[code, h],
            "flush_on_ret": flush[code, h],
        }
    )


@strict_booleans
def walk_costs(code, kernel: str, *, memslot_walk_us: float, tdp_mmu: bool) -> np.ndarray:
    """How long each callback walks the memslots on ``kernel``, µs: part of its hold when it
    takes ``mmu_lock``, its whole time outside the lock when it skips it.

    ``__kvm_handle_hva_range`` finds the memslots a range touches with one walk
    (``memslot_walk_us``, :attr:`kvmviz.Scenario.memslot_walk_us`), with two exceptions:

    - v5.12 x86 with the TDP MMU walked the memslots twice, for the rmaps and again per TDP
      root (``kvm_unmap_hva_range`` + ``kvm_tdp_mmu_zap_hva_range``; removed by
      3039bcc74498 in v5.13), for every callback but ``invalidate_range_end``;
    - before v5.15 (v5.12, v5.13 and v5.14), ``invalidate_range_end`` never walks: v5.12's
      takes the lock and counts, and v5.13's ``on_lock`` path has a null handler, which never
      walks (f922bd9bf33b); 071064f14d87 (v5.15) made it walk to find its first hit.

    Parameters
    ----------
    code : array_like of int
        Each callback's index into :data:`kvmviz.CALLBACKS` (the ``code`` column of
        :func:`callbacks`).
    kernel : str
        A release from v5.12 to v6.18 (:func:`kvmviz.kernels.resolve`).
    memslot_walk_us : float
        The cost of one walk, µs.
    tdp_mmu : bool
        Whether the TDP MMU is enabled (``kvm.tdp_mmu``).

    Returns
    -------
    numpy.ndarray
        One float per callback, in the order of ``code``.

    Examples
    --------
    >>> code = [CALLBACKS.index("invalidate_range_start"), CALLBACKS.index("invalidate_range_end")]
    >>> walk_costs(code, "v5.12", memslot_walk_us=1.5, tdp_mmu=True).tolist()
    [3.0, 0.0]
    >>> walk_costs(code, "5.14", memslot_walk_us=1.5, tdp_mmu=True).tolist()
    [1.5, 0.0]
    >>> walk_costs(code, "v5.15", memslot_walk_us=1.5, tdp_mmu=True).tolist()
    [1.5, 1.5]
    """
    kernel = resolve(kernel)
    code = np.asarray(code)
    n = len(code)
    walk = np.full(n, float(memslot_walk_us))  # linear up to v5.16, interval tree from ed922739c919
    end = CALLBACKS.index("invalidate_range_end")
    if kernel == "v5.12" and tdp_mmu:
        # v5.12 x86 walked the memslots twice, for the rmaps and again per TDP root
        # (kvm_unmap_hva_range + kvm_tdp_mmu_zap_hva_range, the second walk only when the
        # TDP MMU is enabled; removed by 3039bcc74498).
        walk[code != end] *= 2
    if not at_least(kernel, "v5.15"):
        walk[code == end] = 0.0  # the on_lock path with a null handler never walks (f922bd9bf33b)
    return walk


def event_hits(stream: pd.DataFrame, layout: MemslotLayout) -> np.ndarray:
    """Whether each notification event of ``stream`` hits guest memory: the hit of its first
    callback (the range every callback of an event carries; one page for :data:`SINGLE_HVA`).

    The hit does not depend on the kernel, only which callbacks then take ``mmu_lock`` does
    (:func:`callbacks`). The memslot maps colour each event by it.

    Returns
    -------
    numpy.ndarray
        One bool per row of ``stream``, in its order.
    """
    one_page = [kind for kind, seq in EVENT_KINDS.items() if seq[0] in SINGLE_HVA]
    single = stream["kind"].isin(one_page).to_numpy()
    start = stream["hva_start"].to_numpy(dtype=np.uint64)
    end = np.where(single, start + np.uint64(PAGE_SIZE), stream["hva_end"].to_numpy(np.uint64))
    return layout.hit_mask(start, end)


def first_callbacks(notifiers: pd.DataFrame) -> pd.DataFrame:
    """One row per notification event: its first callback (its range, arrival and hit).

    The views draw one range per event, not one per callback (a pair's start and end carry the
    same range). A frame without an ``event`` column (a stream of single callbacks) is returned
    as it is.
    """
    if "event" not in notifiers:
        return notifiers
    return notifiers.drop_duplicates("event")


class Counters:
    """``mmu_notifier_count``, its range and ``mmu_notifier_seq``, as the callbacks move them.

    The reference state machine (docs/kernel.md §3.1): a callback with ``count_delta > 0`` bumps
    ``count`` when it is granted the lock and sets the range to its own when ``count`` goes
    0 -> 1, else widens it to the union (``kvm_inc_notifier_count``, 4a42d848db95); at release,
    a callback that ``bumps_seq`` increments ``seq`` (then ``smp_wmb()``), then one with
    ``count_delta < 0`` decrements ``count``.

    Examples
    --------
    >>> c = Counters()
    >>> c.grant(1, 0x1000, 0x2000); c.grant(1, 0x5000, 0x6000)
    >>> (c.count, hex(c.range_start), hex(c.range_end))
    (2, '0x1000', '0x6000')
    >>> c.release(True, -1); (c.count, c.seq)
    (1, 1)
    """

    __slots__ = ("count", "range_end", "range_start", "seq")

    def __init__(self) -> None:
        self.count = 0
        self.seq = 0
        self.range_start = 0
        self.range_end = 0

    def grant(self, count_delta: int, hva_start: int, hva_end: int) -> None:
        """A callback was granted ``mmu_lock``."""
        if count_delta > 0:
            if self.count == 0:
                self.range_start, self.range_end = hva_start, hva_end
            else:
                self.range_start = min(self.range_start, hva_start)
                self.range_end = max(self.range_end, hva_end)
            self.count += 1

    def release(self, bumps_seq: bool, count_delta: int) -> None:
        """A callback is about to drop ``mmu_lock``."""
        if bumps_seq:
            self.seq += 1  # mmu_notifier_seq++, then smp_wmb(), then count--
        if count_delta < 0:
            self.count -= 1


def _require(frame: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: the frame lacks columns {missing}; {_HINT[what]}")


_HINT = {
    "records": "pass the frame of kvmviz.traces.load_ftrace()",
    "phase_summary": "pass the frame of records(load_ftrace(...), layout)",
}


def records(trace: pd.DataFrame, layout: MemslotLayout) -> pd.DataFrame:
    """Mark each MMU-notifier record as a hit or a miss of the memslots.

    Parameters
    ----------
    trace : pandas.DataFrame
        The records of a kernel trace: the frame of :func:`kvmviz.traces.load_ftrace`.
    layout : MemslotLayout
        The VM's memslots (:func:`kvmviz.traces.load_layout_json`,
        :func:`kvmviz.load_qemu_memslots`).

    Returns
    -------
    pandas.DataFrame
        A copy with two columns added: ``hit`` (nullable boolean: whether the record's hva
        range overlaps a memslot, by :meth:`MemslotLayout.hit_mask`, the condition under which
        the kernel takes ``mmu_lock`` since 8931a454ae; ``<NA>`` for records that are not
        notifiers) and ``gfn_ranges`` (the :class:`~kvmviz.GfnRange` list of
        :meth:`MemslotLayout.gfn_ranges` for notifier records, empty for a miss; ``None``
        otherwise).
    """
    _require(trace, ("hva_start", "hva_end", "callback"), "records")
    if not isinstance(layout, MemslotLayout):
        raise TypeError(f"layout must be a MemslotLayout, got {type(layout).__name__}")
    out = trace.copy(deep=False)
    notifier = trace["callback"].notna().to_numpy()
    starts = trace["hva_start"].to_numpy(dtype=np.uint64, na_value=0)[notifier]
    ends = trace["hva_end"].to_numpy(dtype=np.uint64, na_value=0)[notifier]
    hit = layout.hit_mask(starts, ends)
    hit_values = np.zeros(len(trace), dtype=bool)
    hit_values[notifier] = hit
    hit_col = pd.arrays.BooleanArray(hit_values, ~notifier)
    ranges = np.full(len(trace), None, dtype=object)
    cache: dict[tuple[int, int], list] = {}
    rows = np.flatnonzero(notifier)
    for row, s, e, h in zip(rows, starts.tolist(), ends.tolist(), hit.tolist(), strict=True):
        if not h:
            ranges[row] = []
            continue
        key = (s, e)
        if key not in cache:
            cache[key] = layout.gfn_ranges(s, e)
        ranges[row] = list(cache[key])
    out["hit"] = hit_col
    out["gfn_ranges"] = ranges
    return out


NO_PHASE = "(none)"


def phase_summary(classified: pd.DataFrame) -> pd.DataFrame:
    """What happened in each phase of the experiment (``PHASE <name>`` marks), in order.

    Parameters
    ----------
    classified : pandas.DataFrame
        The frame of :func:`records`.

    Returns
    -------
    pandas.DataFrame
        Indexed by phase, in order of appearance (``"(none)"`` first for records before the
        first mark, if any). Columns: ``start_us`` and ``duration_us`` (from the phase's first
        record to the next phase's), ``records``; ``notifiers`` and one count per callback
        (``invalidate_range_start``, ``change_pte``, ``clear_flush_young``, ``clear_young``,
        ``test_young``; the ``kvm_age_hva`` records split by task, see
        :func:`kvmviz.traces.load_ftrace`);
        ``hits`` and ``misses`` of the notifier records; ``contention_begin`` and one
        ``contention_begin[<flags>]`` column per flags string seen (``SPIN|WRITE``: a writer
        waited for an rwlock, such as ``mmu_lock``); ``contention_end``; ``page_faults``
        (``kvm_page_fault`` records).
    """
    _require(
        classified, ("event", "callback", "hit", "phase", "t_us", "lock_flags"), "phase_summary"
    )
    phase = classified["phase"]
    if not isinstance(phase.dtype, pd.CategoricalDtype):
        phase = phase.astype("category")
    names = [str(c) for c in phase.cat.categories]
    codes = phase.cat.codes.to_numpy().astype(np.int64)
    has_none = bool((codes < 0).any())
    labels = ([NO_PHASE] if has_none else []) + names
    key = codes + (1 if has_none else 0)
    # Order of appearance (categories come from load_ftrace in that order; re-derive anyway).
    order = list(dict.fromkeys(key.tolist()))
    n = len(labels)

    def count(mask) -> np.ndarray:
        return np.bincount(key[np.asarray(mask, dtype=bool)], minlength=n)

    event = classified["event"].astype(str).to_numpy()
    callback = classified["callback"]
    notifier = callback.notna().to_numpy()
    hit = classified["hit"].fillna(False).to_numpy(dtype=bool)
    t_us = classified["t_us"].to_numpy(dtype=float)
    out = {
        "start_us": np.full(n, np.nan),
        "records": np.bincount(key, minlength=n),
        "notifiers": count(notifier),
    }
    first = {}
    for i, k in enumerate(key.tolist()):
        first.setdefault(k, i)
    for k, i in first.items():
        out["start_us"][k] = t_us[i]
    for name in _TRACED_CALLBACKS:
        out[name] = count((callback == name).to_numpy())
    out["hits"] = count(notifier & hit)
    out["misses"] = count(notifier & ~hit)
    begin = event == "contention_begin"
    out["contention_begin"] = count(begin)
    flags = classified["lock_flags"].astype(object).to_numpy()
    for value in dict.fromkeys(flags[begin].tolist()):
        if pd.isna(value):
            continue
        out[f"contention_begin[{value}]"] = count(begin & (flags == value))
    out["contention_end"] = count(event == "contention_end")
    out["page_faults"] = count(event == "kvm_page_fault")
    summary = pd.DataFrame(out, index=pd.Index(labels, name="phase")).iloc[order]
    starts = summary["start_us"].to_numpy()
    ends = np.append(starts[1:], t_us.max() if len(t_us) else np.nan)
    summary.insert(1, "duration_us", ends - starts)
    return summary


def mmu_notifier_retry_hva(count, range_start, range_end, hva, seq_now, seq):
    """Must a fault that sampled ``seq`` retry, given the counters when it checks?

    ``mmu_notifier_retry_hva(kvm, mmu_seq, hva)`` of ``include/linux/kvm_host.h``
    (4a42d848db95), called under ``mmu_lock`` before installing the SPTE: retry if
    ``mmu_notifier_count`` is not 0 **and** ``range_start <= hva < range_end``, or if
    ``mmu_notifier_seq`` moved since the sample (docs/kernel.md §3.2). Scalars or numpy arrays
    (element by element); with Python ints, a plain ``bool`` (the event engine's case).

    The one statement of the rule: the event engine (:mod:`kvmviz.engine`) calls it at each
    grant, the exercises' oracles on lists and runs, and the compiled loop's twin
    (``kvmviz.model._closed_loop.retry_hva``) is proven equal to it by tests/test_classify.py.

    Examples
    --------
    >>> bool(mmu_notifier_retry_hva(1, 0x1000, 0x2000, 0x1800, 7, 7))  # in the range
    True
    >>> bool(mmu_notifier_retry_hva(1, 0x1000, 0x2000, 0x2000, 7, 7))  # half-open: outside
    False
    >>> bool(mmu_notifier_retry_hva(0, 0, 0, 0x1800, 8, 7))  # seq moved
    True
    """
    scalars = (count, range_start, range_end, hva, seq_now, seq)
    if all(isinstance(x, int) for x in scalars):
        return (count != 0 and range_start <= hva < range_end) or seq_now != seq
    count = np.asarray(count)
    hva = np.asarray(hva, dtype=np.uint64)
    in_range = (count != 0) & (np.asarray(range_start, dtype=np.uint64) <= hva)
    in_range &= hva < np.asarray(range_end, dtype=np.uint64)
    return in_range | (np.asarray(seq_now) != np.asarray(seq))
