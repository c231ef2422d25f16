"""A run's record: the tidy tables one simulation (or one scripted scene) leaves behind.

A :class:`Run` is plain data: the scenario and labels it ran with, one row per fault attempt
(``faults``), one per notifier callback (``notifiers``), and every acquisition of ``mmu_lock``
derived from the two (``lock``). Times are µs. Nothing here simulates or draws: the engine
(:mod:`kvmviz.engine`) fills a Run in, the metrics (:mod:`kvmviz.metrics`) read it, the views
draw it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..inputs.kernels import CALLBACKS

if TYPE_CHECKING:
    from ..inputs.scenario import Scenario

__all__ = ["Run", "lock_table"]


@dataclass(frozen=True, eq=False)
class Run:
    """The result of one simulation: tidy tables, times in µs.

    Attributes
    ----------
    scenario : Scenario
    kernel : str
    policy : str
    seed : int
    faults : pandas.DataFrame
        One row per fault *attempt* (an EPT violation that reached ``mmu_lock``): ``vcpu,
        fault`` (the vCPU's fault number: ``(vcpu, fault)`` names a fault), ``retries``
        (retries this fault had before this attempt), ``hva, t_exit_us,
        t_request_us, t_grant_us, t_release_us, wait_us, hold_us, t_snapshot_us`` (when the
        attempt read ``mmu_notifier_seq``, before resolving the pfn), ``retry`` (this attempt
        found an invalidation and must fault again), ``blocked_by`` and ``retried_by`` (rows of
        ``notifiers``, -1 for none: see below). Sorted by vCPU, then time.

        ``blocked_by`` is who the attempt queued behind, the one home of that answer (the
        timelines, the animations, the Perfetto flows and the exercises read it). Under the
        fair ``"qrwlock"`` a fault that cannot read-lock at once waits for the *newest*
        callback that asked for ``mmu_lock`` before it and has not yet released it (that
        writer's ``_QW_WAITING`` closed the door: ``queued_read_lock_slowpath``), and is
        granted when that writer releases. Where faults take the lock for write (the shadow
        MMU, ``Scenario(tdp_mmu=False)``, and the ``"spinlock"`` policy) everyone queues
        FIFO: the newest callback ahead of the fault in the queue, or -1 if only other faults
        were ahead. Under ``"reader-pref"`` a reader waits only for the callback *holding*
        the lock. -1 when the attempt did not wait.

        ``retried_by`` is the callback that made a retrying attempt retry
        (:func:`kvmviz.engine.retry_causes`): the invalidation in flight over its hva, else
        the first callback that bumped ``mmu_notifier_seq`` after its snapshot.
        ``spins`` counts the lockless retries of a pre-check kernel (d02c357e5bfa, v6.8) the
        attempt made before it reached the lock: it faulted first at ``t_exit_us``, found its
        address being invalidated (or seq moved) and faulted again ``spins`` times without
        touching ``mmu_lock``; ``t_snapshot_us`` is its last sample. 0 before v6.8.
    notifiers : pandas.DataFrame
        One row per callback: ``event, cause, callback, hva_start, hva_end, hit, locked,
        t_arrive_us, t_grant_us, t_release_us, wait_us, hold_us`` (NaN grant and zero wait/hold
        when the callback did not take the lock), ``t_done_us``, ``yields`` (how often a zap
        gave ``mmu_lock`` up to a queued vCPU). For a zap that yielded, ``t_grant_us`` is its
        first grant, ``t_release_us`` its last release and ``hold_us`` the time it held the
        lock in all (less than the span between them).
    write_holds : pandas.DataFrame
        One row per write hold of ``mmu_lock`` by a callback: ``notifier`` (its row in
        ``notifiers``), ``event, callback, t_request_us, t_grant_us, t_release_us``,
        ``yielded`` (the hold ended in a yield) and ``flushed`` (it flushed remote TLBs before
        letting go). One per locked callback, and one per stretch between yields for a zap
        that yielded. Built from ``notifiers`` when not given (``None`` for a hand-made
        ``notifiers`` frame without the columns it needs).
    lock : pandas.DataFrame
        Every acquisition of ``mmu_lock``: ``holder`` ("vcpu" / "notifier"), ``who`` (vCPU or
        event), ``mode`` ("read" / "write"), ``callback`` ("page_fault" or the notifier
        callback), ``t_request_us, t_grant_us, t_release_us, wait_us, hold_us``; sorted by
        grant time. Built from the two tables above on first use.
    """

    scenario: Scenario
    kernel: str
    policy: str
    seed: int
    faults: pd.DataFrame
    notifiers: pd.DataFrame
    write_holds: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        needed = {"event", "callback", "locked", "t_arrive_us", "t_grant_us", "t_release_us"}
        if self.write_holds is None and needed <= set(self.notifiers.columns):
            n = self.notifiers
            locked = np.flatnonzero(n["locked"].to_numpy(dtype=bool))
            flushed = (
                n["flushed"].to_numpy(dtype=bool) if "flushed" in n else np.zeros(len(n), bool)
            )
            holds = pd.DataFrame(
                {
                    "notifier": locked.astype(np.int64),
                    "event": n["event"].to_numpy()[locked],
                    "callback": n["callback"].to_numpy()[locked],
                    "t_request_us": n["t_arrive_us"].to_numpy(dtype=float)[locked],
                    "t_grant_us": n["t_grant_us"].to_numpy(dtype=float)[locked],
                    "t_release_us": n["t_release_us"].to_numpy(dtype=float)[locked],
                    "yielded": np.zeros(len(locked), dtype=bool),
                    "flushed": flushed[locked],
                }
            )
            order = np.argsort(holds["t_grant_us"].to_numpy(), kind="stable")
            object.__setattr__(self, "write_holds", holds.iloc[order].reset_index(drop=True))

    @cached_property
    def lock(self) -> pd.DataFrame:
        """Every acquisition of ``mmu_lock``, faults and notifiers, sorted by grant time."""
        return lock_table(
            self.faults,
            self.notifiers,
            self.policy,
            write_faults=self.scenario.faults_write(self.policy),
            holds=self.write_holds,
        )

    def summary(self) -> pd.Series:
        """Headline numbers of the run (see :func:`kvmviz.metrics.summarize`)."""
        from ..stats.metrics import summarize

        return summarize(self)


def lock_table(
    faults: pd.DataFrame,
    notifiers: pd.DataFrame,
    policy: str,
    *,
    write_faults: bool | None = None,
    holds: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every acquisition of ``mmu_lock`` (faults and notifiers), sorted by grant time.

    ``write_faults`` says whether the faults took it for write (default: only under
    ``"spinlock"``; a :class:`Run` passes :meth:`Scenario.faults_write`). ``holds`` (a run's
    ``write_holds``) gives one acquisition per hold of a zap that yielded; without it, one per
    locked callback."""
    if holds is not None and bool(holds["yielded"].any()):
        w = holds.rename(columns={"t_request_us": "t_arrive_us"})
    else:
        w = notifiers[notifiers["locked"].to_numpy()]
    nr, nw = len(faults), len(w)
    holder = np.concatenate([np.zeros(nr, dtype=np.int8), np.ones(nw, dtype=np.int8)])
    if write_faults is None:
        write_faults = policy == "spinlock"
    fault_mode = 1 if write_faults else 0
    mode = np.concatenate([np.full(nr, fault_mode, dtype=np.int8), np.ones(nw, dtype=np.int8)])
    callbacks = ["page_fault", *CALLBACKS]
    cb_code = pd.Categorical(w["callback"], categories=callbacks).codes
    callback = np.concatenate([np.zeros(nr, dtype=np.int8), cb_code.astype(np.int8)])
    cols = {
        "who": np.concatenate([faults["vcpu"].to_numpy(), w["event"].to_numpy()]),
        "t_request_us": np.concatenate([faults["t_request_us"], w["t_arrive_us"]]),
        "t_grant_us": np.concatenate([faults["t_grant_us"], w["t_grant_us"]]),
        "t_release_us": np.concatenate([faults["t_release_us"], w["t_release_us"]]),
    }
    order = np.lexsort((holder, cols["t_grant_us"]))
    frame = pd.DataFrame(
        {
            "holder": pd.Categorical.from_codes(holder[order], ["vcpu", "notifier"]),
            "who": cols["who"][order],
            "mode": pd.Categorical.from_codes(mode[order], ["read", "write"]),
            "callback": pd.Categorical.from_codes(callback[order], callbacks),
            "t_request_us": cols["t_request_us"][order],
            "t_grant_us": cols["t_grant_us"][order],
            "t_release_us": cols["t_release_us"][order],
        }
    )
    frame["wait_us"] = frame["t_grant_us"] - frame["t_request_us"]
    frame["hold_us"] = frame["t_release_us"] - frame["t_grant_us"]
    return frame
