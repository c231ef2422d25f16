"""Which MMU-notifier callback a ``kvm:`` notifier tracepoint line stands for.

Each notifier tracepoint fires in one callback (:data:`NOTIFIER_EVENTS`) but ``kvm_age_hva``,
which fires in both ``clear_flush_young`` and ``clear_young``: the task that fired it tells
which (:func:`age_hva_callback`; the kernel sources are in the comment above
:data:`AGE_HVA_TASKS`). :func:`kvmviz.traces.load_ftrace` writes the decision in its
``callback`` and ``callback_source`` columns, :func:`age_hva_counts` counts the records by how
it was made, and :func:`age_hva_note` says it in a sentence.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .._shared._checks import check_bool

__all__ = [
    "AGE_HVA_ASSUMED",
    "AGE_HVA_TASKS",
    "CALLBACK_SOURCES",
    "LATENCY_COMM_WIDTH",
    "NOTIFIER_CALLBACKS",
    "NOTIFIER_EVENTS",
    "age_hva_callback",
    "age_hva_counts",
    "age_hva_note",
]

# -- which aging callback a kvm_age_hva line stands for ------------------------------------------
# trace_kvm_age_hva(start, end) is the first statement of both kvm_mmu_notifier_clear_flush_young()
# and kvm_mmu_notifier_clear_young() (virt/kvm/kvm_main.c), so the line alone does not say which
# callback ran; trace_kvm_test_age_hva(address) fires only in kvm_mmu_notifier_test_young(). The
# task that fired the line (its comm) does tell, because each aging path of the primary MMU runs
# in a known context and calls one notifier (torvalds/linux, read for Linux 6.18):
#
# * DAMON runs in its kdamond.N kernel threads (kthread_run(kdamond_fn, ctx, "kdamond.%d", ...),
#   mm/damon/core.c). It ages with clear_young only: damon_ptep_mkold() calls
#   mmu_notifier_clear_young() and damon_pmdp_mkold() pmdp_clear_young_notify()
#   (mm/damon/ops-common.c), reached from damon_mkold_pmd_entry() for virtual address spaces
#   (mm/damon/vaddr.c; hugetlb: damon_hugetlb_mkold() -> mmu_notifier_clear_young()) and from
#   damon_folio_mkold() for physical ones. It checks with test_young: damon_young_pmd_entry()
#   (mm/damon/vaddr.c) and damon_folio_young_one() (mm/damon/ops-common.c) call
#   mmu_notifier_test_young(). Neither flushes a TLB. Its DAMOS_PAGEOUT action goes through
#   reclaim_pages() -> reclaim_folio_list(), which calls shrink_folio_list() with
#   ignore_references = true (mm/vmscan.c): no folio_referenced(), so no clear_flush_young.
#   (Only an allocation of kdamond's own entering direct reclaim could fire one from it.)
# * Reclaim (the kswapdN threads, kthread_run(kswapd, pgdat, "kswapd%d", nid) in mm/vmscan.c; and
#   direct reclaim, in whatever task is allocating): shrink_folio_list() ->
#   folio_check_references() -> folio_referenced() -> folio_referenced_one() (mm/rmap.c) ->
#   ptep_clear_flush_young_notify() / pmdp_clear_flush_young_notify(): clear_flush_young, which
#   flushes when an SPTE was young. With the multi-gen LRU enabled (lru_gen_enabled()),
#   folio_referenced_one() hands PTE-mapped folios to lru_gen_look_around() instead, which uses
#   ptep_clear_young_notify() (mm/vmscan.c, since "mm: multi-gen LRU: use
#   {ptep,pmdp}_clear_young_notify()", 2024): clear_young. A trace does not say which LRU the host
#   ran, so kswapd lines are read as the classic LRU's clear_flush_young.
# * khugepaged only tests: __collapse_huge_page_isolate() and hpage_collapse_scan_pmd()
#   (mm/khugepaged.c) call mmu_notifier_test_young(). A kvm_age_hva from khugepaged would be
#   direct reclaim in its context (allocating a huge page), so it is read as any other task.
# * Any other task: direct reclaim (clear_flush_young, as kswapd), or idle page tracking, which
#   runs in the task writing /sys/kernel/mm/page_idle/bitmap (page_idle_clear_pte_refs_one() ->
#   mmu_notifier_clear_young() / pmdp_clear_young_notify(), mm/page_idle.c): read as reclaim,
#   the common case, and marked as assumed.
#
# One table, used by load_ftrace() (the callback column), to_stream() and the replay notes:
# callback_source -> (pattern the whole comm must match, the callback it means).
AGE_HVA_TASKS = {
    "task:kdamond": (r"kdamond\.\d+", "clear_young"),
    "task:kswapd": (r"kswapd\d+", "clear_flush_young"),
}
AGE_HVA_ASSUMED = "assumed: reclaim (unknown task)"  # any other comm, "<...>" included
_AGE_HVA_DEFAULT = "clear_flush_young"  # the callback assumed for it
_AGE_HVA_PATTERNS = tuple(
    (re.compile(pattern), callback, source) for source, (pattern, callback) in AGE_HVA_TASKS.items()
)
# trace-cmd report -l prints the comm as "%8.8s" (trace_show_data() in tracecmd/trace-read.c),
# cutting "kdamond.0" to "kdamond.": an 8-character comm there may be the start of a longer one.
# Each pattern here matches every prefix of the names of AGE_HVA_TASKS (same keys, same order).
_AGE_HVA_PREFIXES = {
    "task:kdamond": r"k(?:d(?:a(?:m(?:o(?:n(?:d(?:\.\d*)?)?)?)?)?)?)?",
    "task:kswapd": r"k(?:s(?:w(?:a(?:p(?:d\d*)?)?)?)?)?",
}
_AGE_HVA_PREFIX_PATTERNS = tuple(
    (re.compile(_AGE_HVA_PREFIXES[source]), callback, source)
    for source, (_, callback) in AGE_HVA_TASKS.items()
)
LATENCY_COMM_WIDTH = 8  # "%8.8s": the longest comm the -l layout prints
# How the callback of a notifier record was decided: by its tracepoint (one callback each), or,
# for kvm_age_hva, by its task (AGE_HVA_TASKS) or by assumption.
CALLBACK_SOURCES = ("tracepoint", *AGE_HVA_TASKS, AGE_HVA_ASSUMED)


def age_hva_callback(comm, *, truncated: bool = False) -> tuple[str, str]:
    """The MMU-notifier callback a ``kvm_age_hva`` record of task ``comm`` stands for.

    ``kvm_age_hva`` fires in both ``clear_flush_young`` and ``clear_young``; the task that fired
    it tells them apart (the sources are in the comment above :data:`AGE_HVA_TASKS`): DAMON's
    ``kdamond.N`` threads age with ``clear_young`` only, ``kswapdN`` reclaims with
    ``clear_flush_young`` (the classic LRU; the multi-gen LRU would use ``clear_young``). Any
    other task, ``khugepaged`` and the unknown ``<...>`` included, is assumed to be in direct
    reclaim (``clear_flush_young``); it could also be writing the idle-page bitmap
    (``clear_young``).

    Parameters
    ----------
    comm : str
        The task name as the trace prints it (``"kdamond.0"``, ``"kswapd0"``, ``"python3"``).
    truncated : bool, default False
        ``comm`` may be the start of a longer name: ``trace-cmd report -l`` prints at most 8
        characters (``"kdamond."`` for ``kdamond.0``). A truncated comm stands for a task of
        the table when it is the start of such a task's name.

    Returns
    -------
    tuple of str
        ``(callback, callback_source)``: ``("clear_young", "task:kdamond")``,
        ``("clear_flush_young", "task:kswapd")`` or
        ``("clear_flush_young", "assumed: reclaim (unknown task)")``.

    Examples
    --------
    >>> age_hva_callback("kdamond.0")
    ('clear_young', 'task:kdamond')
    >>> age_hva_callback("python3")
    ('clear_flush_young', 'assumed: reclaim (unknown task)')
    >>> age_hva_callback("kdamond.", truncated=True)
    ('clear_young', 'task:kdamond')
    """
    comm = str(comm)
    truncated = check_bool(truncated, "truncated")
    for pattern, callback, source in _AGE_HVA_PREFIX_PATTERNS if truncated else _AGE_HVA_PATTERNS:
        if pattern.fullmatch(comm):
            return callback, source
    return _AGE_HVA_DEFAULT, AGE_HVA_ASSUMED


# The kvm: tracepoint each MMU-notifier callback fires (docs/kernel.md §5.1). kvm_age_hva fires for
# clear_young and clear_flush_young: its callback is decided by the task (age_hva_callback());
# the entry here is the one assumed for a task the table does not know.
NOTIFIER_EVENTS = {
    "kvm_unmap_hva_range": "invalidate_range_start",
    "kvm_set_spte_hva": "change_pte",
    "kvm_age_hva": _AGE_HVA_DEFAULT,
    "kvm_test_age_hva": "test_young",
}
# The callbacks a notifier record may stand for: the categories of the callback column of
# load_ftrace(), in this order.
NOTIFIER_CALLBACKS = (
    "invalidate_range_start",
    "change_pte",
    "clear_flush_young",
    "clear_young",
    "test_young",
)


def age_hva_counts(frame: pd.DataFrame) -> dict[str, int]:
    """The kvm_age_hva records of ``frame`` by ``callback_source`` (zeros included).

    From the column :func:`kvmviz.traces.load_ftrace` writes; a frame without it (made by
    hand) is counted from its ``event`` and ``comm`` columns with :func:`age_hva_callback`,
    the same rule.

    Parameters
    ----------
    frame : pandas.DataFrame
        Records of a trace: the frame of :func:`kvmviz.traces.load_ftrace` or of
        :func:`kvmviz.classify.records`.

    Returns
    -------
    dict
        ``{"task:kdamond": n, "task:kswapd": n, "assumed: reclaim (unknown task)": n}``; zeros
        for a frame with neither ``callback_source`` nor ``event`` and ``comm``.
    """
    counts = dict.fromkeys(CALLBACK_SOURCES[1:], 0)
    if "callback_source" in frame.columns:
        values = frame["callback_source"].astype(object).to_numpy()
    elif "event" in frame.columns and "comm" in frame.columns:
        aging = (frame["event"].astype(str) == "kvm_age_hva").to_numpy()
        comms = frame["comm"].astype(str).to_numpy()[aging]
        values = np.array([age_hva_callback(c)[1] for c in comms], dtype=object)
    else:
        return counts
    for source, n in pd.Series(values, dtype=object).value_counts().items():
        if source in counts:
            counts[source] = int(n)
    return counts


def age_hva_note(counts: dict) -> str:
    """One sentence on how the ``kvm_age_hva`` records were read, with their counts.

    Parameters
    ----------
    counts : dict
        ``attrs["age_hva"]`` of :func:`kvmviz.traces.load_ftrace`,
        :func:`kvmviz.traces.to_stream`, or
        ``run.notifiers.attrs["replay"]["age_hva"]`` of :func:`kvmviz.experiments.replay_trace`.

    Returns
    -------
    str
        ``"kvm_age_hva: 167 lines from kdamond read as clear_young (DAMON never flushes), 0
        from kswapd as clear_flush_young (reclaim), 0 from other tasks assumed
        clear_flush_young (reclaim)"``, with the counts given.
    """
    n = {source: int(counts.get(source, 0)) for source in CALLBACK_SOURCES[1:]}
    kdamond, kswapd = (AGE_HVA_TASKS[k][1] for k in ("task:kdamond", "task:kswapd"))
    return (
        f"kvm_age_hva: {n['task:kdamond']} lines from kdamond read as {kdamond} (DAMON never "
        f"flushes), {n['task:kswapd']} from kswapd as {kswapd} (reclaim), "
        f"{n[AGE_HVA_ASSUMED]} from other tasks assumed {_AGE_HVA_DEFAULT} (reclaim)"
    )
