"""Seeded exercises with answers you can check, the way OSTEP's simulators offer ``-c``.

The same seed gives the same problem to a whole room. Each exercise prints its question with
``?`` in place of the answer; ``check(answer)`` says whether an answer is right and why;
``reveal()`` shows the answer. The answers come from the model itself (``kernels.rule``,
``MemslotLayout.gfn_ranges``, ``rwlock.replay``), never from a hand-written key.

:data:`KINDS` names every generator with the one spelling the command line and the notebooks
share: ``quiz("grant-order", seed=2)`` is ``kvmviz quiz grant-order -s 2``, and an exercise's
:attr:`~Exercise.kind` is that same key. The oracles the chapters show beside their exercises
are here too: :func:`retry_check` and :func:`retry_table` (``mmu_notifier_retry_hva`` on a list
of callbacks or on every fault of a run) and :func:`lock_states` (``mmu_lock`` instant by
instant).

One flat module in front of small files, one idea each: :mod:`.base` (the :class:`Exercise`,
reading typed answers, and the :class:`Generator` every kind subclasses), :mod:`.render` (how
a question is written and shown), then one module per family of kinds: :mod:`.hits`,
:mod:`.operations`, :mod:`.lock_order`, :mod:`.retry`, :mod:`.costs`, :mod:`.trace_counts`,
:mod:`.queued`, :mod:`.sweeps`, :mod:`.freeze`.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import CallbackOrderExercise, Exercise, Generator, Scene, ZappedGfnsExercise
from .costs import hit_flush_hold, memslot_walk_threshold
from .freeze import FREEZE_SCENE, futile_reads, precheck_lock, zap_yields_question
from .hits import hit_or_miss, takes_lock_question, zapped_gfns
from .lock_order import grant_order, lock_states, reader_wait
from .operations import callback_order
from .queued import QUEUE_SCENE, queued_behind
from .retry import (
    RETRY_SCENE,
    RetryCase,
    mmu_notifier_retry_hva,
    munmap_on_guest,
    must_retry,
    retry_check,
    retry_table,
)
from .sweeps import (
    SWEEP_DURATION_US,
    SWEEP_MEASURE,
    SWEEP_SEEDS,
    SWEEP_SHARES,
    SWEEP_VCPUS,
    first_vcpus_above,
)
from .trace_counts import ksm_hits, trace_count, v513_locks

__all__ = [
    "FREEZE_SCENE",
    "KINDS",
    "QUEUE_SCENE",
    "RETRY_SCENE",
    "SWEEP_DURATION_US",
    "SWEEP_MEASURE",
    "SWEEP_SEEDS",
    "SWEEP_SHARES",
    "SWEEP_VCPUS",
    "CallbackOrderExercise",
    "Exercise",
    "Generator",
    "RetryCase",
    "Scene",
    "ZappedGfnsExercise",
    "callback_order",
    "first_vcpus_above",
    "futile_reads",
    "grant_order",
    "hit_flush_hold",
    "hit_or_miss",
    "ksm_hits",
    "lock_states",
    "memslot_walk_threshold",
    "mmu_notifier_retry_hva",
    "munmap_on_guest",
    "must_retry",
    "precheck_lock",
    "queued_behind",
    "quiz",
    "reader_wait",
    "retry_check",
    "retry_table",
    "takes_lock_question",
    "trace_count",
    "v513_locks",
    "zap_yields_question",
    "zapped_gfns",
]

KINDS: dict[str, Callable[..., Exercise]] = {
    "takes-lock": takes_lock_question,
    "zapped-gfns": zapped_gfns,
    "hit-or-miss": hit_or_miss,
    "callback-order": callback_order,
    "trace-count": trace_count,
    "grant-order": grant_order,
    "reader-wait": reader_wait,
    "must-retry": must_retry,
    "munmap-on-guest": munmap_on_guest,
    "walk-threshold": memslot_walk_threshold,
    "flush-hold": hit_flush_hold,
    "first-vcpus-above": first_vcpus_above,
    "ksm-hits": ksm_hits,
    "v513-locks": v513_locks,
    "queued-behind": queued_behind,
    "zap-yields": zap_yields_question,
    "precheck-lock": precheck_lock,
    "futile-reads": futile_reads,
}
"""Every exercise kind, spelled as ``kvmviz quiz`` spells it, with its generator.

In the order of the chapters; each generator is called as ``generator(seed=..., **options)``
and returns an :class:`Exercise` whose ``kind`` is its key here.
"""


def quiz(kind: str, seed: int = 0, **options) -> Exercise:
    """The exercise ``kvmviz quiz KIND -s SEED`` prints.

    Parameters
    ----------
    kind : str
        A key of :data:`KINDS`, e.g. ``"grant-order"``.
    seed : int
    **options
        The generator's options (``policy=`` for ``grant-order`` and ``reader-wait``).

    Raises
    ------
    ValueError
        An unknown kind, or an option the kind does not take, named with the choices.

    Examples
    --------
    >>> q = quiz("grant-order", 0)
    >>> q.kind, q.answer
    ('grant-order', [3, 8, 9, 9, 9, 12])
    """
    if kind not in KINDS:
        raise ValueError(f"kind = {kind!r}: expected one of {', '.join(KINDS)}")
    takes = {"grant-order": {"policy"}, "reader-wait": {"policy"}}.get(kind, set())
    unknown = sorted(set(options) - takes)
    if unknown:
        allowed = ", ".join(sorted(takes)) or "none"
        raise ValueError(f"{kind} takes no option {', '.join(unknown)} (options: {allowed})")
    return KINDS[kind](seed=seed, **options)
