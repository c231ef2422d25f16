"""``mmu_lock`` at an instant, read from a run's tables: who holds it, who waits for it (FIFO)
and behind which writer each waiting fault queued, who passed it by without taking it.

:func:`queue_frames` gives a :class:`QueueState` per frame of a window; the queue animation
(:mod:`kvmviz.animate`) and the exercises draw or ask about them. Pure pandas: nothing here
draws or simulates, and ``run.faults["blocked_by"]`` is the one home of "behind whom".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._shared._prose import plural

__all__ = ["QueueState", "queue_frames"]


@dataclass(frozen=True, eq=False)
class QueueState:
    """``mmu_lock`` at one instant: who holds it, who waits for it, who passed it by.

    Every acquisition is a row of the run's lock table (``Run.lock``'s columns ``holder, who,
    mode, callback, t_request_us, t_grant_us, t_release_us``) plus ``kind`` ("reader" for a
    hold for read, "writer" for one for write), ``row`` (its row of ``run.faults`` for a vCPU,
    of ``run.notifiers`` for a callback) and ``blocked_by`` (for a fault attempt, the callback
    it queued behind: ``run.faults["blocked_by"]``, the one home of that answer; -1 for a
    callback).

    Attributes
    ----------
    t_us : float
        The instant, µs.
    kernel : str
    holders : pandas.DataFrame
        The acquisitions with ``t_grant_us <= t_us < t_release_us``, in grant order.
    waiters : pandas.DataFrame
        The acquisitions with ``t_request_us <= t_us < t_grant_us``, in FIFO order (request
        time; at one instant a writer before a reader, as the engine orders them), plus
        ``position`` (0 is the head of the queue) and ``blocked_readers``: for a callback, the
        waiting fault attempts whose ``blocked_by`` is it; 0 for a fault.
    passing : pandas.DataFrame
        Notifier callbacks (rows of ``run.notifiers``) that arrived in the last ``recent_us``
        before ``t_us`` and did not take the lock.
    callbacks_locked : int
        Notifier callbacks that took ``mmu_lock`` by ``t_us`` (granted: ``t_grant_us <=
        t_us``).
    callbacks_waiting : int
        Notifier callbacks that asked for it and wait at ``t_us`` (not yet granted).
    callbacks_skipped : int
        Notifier callbacks arrived by ``t_us`` that skipped it.
    """

    t_us: float
    kernel: str
    holders: pd.DataFrame
    waiters: pd.DataFrame
    passing: pd.DataFrame
    callbacks_locked: int
    callbacks_waiting: int
    callbacks_skipped: int

    @property
    def readers_inside(self) -> int:
        return int((self.holders["kind"] == "reader").sum())

    @property
    def writer_inside(self) -> bool:
        return bool((self.holders["kind"] == "writer").any())

    @property
    def head_writer(self) -> pd.Series | None:
        """The first waiting writer in the queue, or ``None``."""
        writers = self.waiters[self.waiters["kind"] == "writer"]
        return None if writers.empty else writers.iloc[0]

    def _behind(self, callbacks: pd.DataFrame) -> int:
        """Waiting fault attempts whose ``blocked_by`` is one of these callbacks."""
        rows = callbacks["row"][callbacks["holder"] == "notifier"].to_numpy()
        faults = self.waiters[self.waiters["holder"] == "vcpu"]
        return int(np.isin(faults["blocked_by"].to_numpy(), rows).sum())

    @property
    def blocked_readers(self) -> int:
        """Waiting fault attempts queued behind a *waiting* writer (their ``blocked_by`` is a
        callback that has not got the lock yet): the cost of the qrwlock's fairness."""
        return self._behind(self.waiters)

    @property
    def readers_behind_holder(self) -> int:
        """Waiting fault attempts queued behind the callback *holding* the lock."""
        return self._behind(self.holders)

    @property
    def table(self) -> pd.DataFrame:
        """Holders and waiters in one tidy table, with ``place`` ("inside" / "waiting")."""
        return pd.concat(
            [self.holders.assign(place="inside"), self.waiters.assign(place="waiting")],
            ignore_index=True,
        )

    @property
    def caption(self) -> str:
        """One sentence saying what the picture shows, in the state it shows: a writer
        *holds* the lock only once granted; until then it *waits*."""
        waiting_writers = self.waiters[self.waiters["kind"] == "writer"]
        n_writers = len(waiting_writers)
        if self.writer_inside:
            writer = self.holders[self.holders["kind"] == "writer"].iloc[0]
            text = (
                f"vCPU {writer['who']}'s fault holds mmu_lock for write"  # no TDP MMU, spinlock
                if writer["holder"] == "vcpu"
                else f"writer ({writer['callback']}) holds mmu_lock alone"
            )
            behind = self.readers_behind_holder
            others = len(self.waiters) - behind - int((waiting_writers["holder"] != "vcpu").sum())
            faults = self.waiters[self.waiters["holder"] == "vcpu"]
            noun = "reader" if (faults["kind"] == "reader").all() else "fault"
            parts = [
                (behind, f"{plural(behind, noun)} wait{'s' * (behind == 1)} for it"),
                (others, f"{plural(others, 'other')} wait{'s' * (others == 1)}"),
            ]
            writers = int((waiting_writers["holder"] == "notifier").sum())
            parts.append((writers, f"{plural(writers, 'writer')} wait{'s' * (writers == 1)}"))
            return "; ".join([text, *(part for n, part in parts if n > 0)])
        if n_writers:
            head = waiting_writers.iloc[0]
            who = (
                f"writer ({head['callback']}) waits"
                if n_writers == 1
                else f"{n_writers} writers wait"
            )
            inside = self.readers_inside
            text = f"{who} for {plural(inside, 'reader')} inside" if inside else f"{who}"
            blocked = self.blocked_readers
            them = "it" if n_writers == 1 else "them"
            return f"{text}; {plural(blocked, 'new reader')} blocked behind {them}"
        waiting = len(self.waiters)
        tail = (
            f"{plural(waiting, 'other')} wait{'s' * (waiting == 1)}" if waiting else "nobody waits"
        )
        if self.readers_inside:
            n = self.readers_inside
            verb = "share" if n > 1 else "holds"
            return f"{plural(n, 'reader')} {verb} mmu_lock for read; {tail}"
        return "mmu_lock is free" + f"; {tail}" * bool(waiting)


def _acquisitions(run, start_us: float, end_us: float) -> pd.DataFrame:
    """The acquisitions of ``mmu_lock`` that can show in ``[start_us, end_us]`` (requested by
    its end, released after its start), in queue order: by request time, a writer first at a
    tie (the engine handles, at one instant, notifier arrivals before vCPU requests). The
    columns of :class:`QueueState`'s tables."""
    f, n = run.faults, run.notifiers
    f_request = f["t_request_us"].to_numpy(dtype=float)
    f_release = f["t_release_us"].to_numpy(dtype=float)
    faults = np.flatnonzero((f_request <= end_us) & (f_release > start_us))
    locked = n["locked"].to_numpy(dtype=bool)
    n_arrive = n["t_arrive_us"].to_numpy(dtype=float)
    n_release = n["t_release_us"].to_numpy(dtype=float)
    callbacks = np.flatnonzero(locked & (n_arrive <= end_us) & (n_release > start_us))
    write_faults = run.scenario.faults_write(run.policy)
    nf = len(faults)
    holder = np.repeat(np.array(["vcpu", "notifier"]), [nf, len(callbacks)])
    mode = np.where(holder == "notifier", "write", "write" if write_faults else "read")
    table = pd.DataFrame(
        {
            "holder": holder,
            "who": np.concatenate(
                [f["vcpu"].to_numpy()[faults], n["event"].to_numpy()[callbacks]]
            ).astype(np.int64),
            "mode": mode,
            "callback": np.concatenate(
                [np.full(nf, "page_fault"), n["callback"].astype(str).to_numpy()[callbacks]]
            ),
            "t_request_us": np.concatenate([f_request[faults], n_arrive[callbacks]]),
            "t_grant_us": np.concatenate(
                [
                    f["t_grant_us"].to_numpy(dtype=float)[faults],
                    n["t_grant_us"].to_numpy(dtype=float)[callbacks],
                ]
            ),
            "t_release_us": np.concatenate([f_release[faults], n_release[callbacks]]),
            "kind": np.where(mode == "write", "writer", "reader"),
            "row": np.concatenate([faults, callbacks]).astype(np.int64),
            "blocked_by": np.concatenate(
                [f["blocked_by"].to_numpy()[faults], np.full(len(callbacks), -1)]
            ).astype(np.int64),
        }
    )
    table["wait_us"] = table["t_grant_us"] - table["t_request_us"]
    table["hold_us"] = table["t_release_us"] - table["t_grant_us"]
    order = np.lexsort(
        (
            table["t_grant_us"].to_numpy(),
            table["holder"].to_numpy() == "vcpu",
            table["t_request_us"].to_numpy(),
        )
    )
    return table.iloc[order].reset_index(drop=True)


def queue_frames(
    run, start_us: float, end_us: float, *, n_frames: int = 120, recent_us: float | None = None
) -> list[QueueState]:
    """The state of ``mmu_lock`` at ``n_frames`` evenly spaced instants of ``[start_us, end_us)``.

    Parameters
    ----------
    run : Run
        Read: ``run.faults`` (with ``blocked_by``, who queued behind whom) and
        ``run.notifiers`` (the callbacks that took the lock and those that skipped it),
        ``run.kernel``.
    start_us, end_us : float
        The window, µs; frame ``i`` is at ``start_us + i * (end_us - start_us) / n_frames``.
    n_frames : int
    recent_us : float, optional
        How long a callback that skipped the lock stays in ``passing``; default three frames.

    Returns
    -------
    list of QueueState
    """
    start_us, end_us = float(start_us), float(end_us)
    if not end_us > start_us:
        raise ValueError(f"end_us ({end_us}) must be greater than start_us ({start_us})")
    if int(n_frames) < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    n_frames = int(n_frames)
    step = (end_us - start_us) / n_frames
    recent_us = 3 * step if recent_us is None else float(recent_us)
    lock = _acquisitions(run, start_us, end_us)
    request = lock["t_request_us"].to_numpy()
    grant = lock["t_grant_us"].to_numpy()
    release = lock["t_release_us"].to_numpy()
    by_grant = np.argsort(grant, kind="stable")
    is_callback = (lock["holder"] == "notifier").to_numpy()
    callback_row = np.where(is_callback, lock["row"].to_numpy(), -2)
    blocked_by = lock["blocked_by"].to_numpy()
    notifiers = run.notifiers
    locked = notifiers["locked"].to_numpy(dtype=bool)
    arrive = notifiers["t_arrive_us"].to_numpy()
    grant_locked = np.sort(notifiers["t_grant_us"].to_numpy(dtype=float)[locked])
    arrive_locked = np.sort(arrive[locked])
    arrive_skipped = np.sort(arrive[~locked])
    skipped = notifiers[~locked].sort_values("t_arrive_us", kind="stable")
    skipped_arrive = skipped["t_arrive_us"].to_numpy()
    states = []
    for t in start_us + step * np.arange(n_frames):
        inside = by_grant[(grant[by_grant] <= t) & (t < release[by_grant])]
        waiting = np.flatnonzero((request <= t) & (t < grant))  # already in FIFO order
        behind = blocked_by[waiting]
        blocked = [int((behind == callback_row[i]).sum()) if is_callback[i] else 0 for i in waiting]
        waiters = lock.iloc[waiting].assign(
            position=np.arange(len(waiting)), blocked_readers=np.array(blocked, dtype=np.int64)
        )
        lo, hi = np.searchsorted(skipped_arrive, [t - recent_us, t], side="right")
        took = int(np.searchsorted(grant_locked, t, side="right"))
        states.append(
            QueueState(
                t_us=float(t),
                kernel=run.kernel,
                holders=lock.iloc[inside],
                waiters=waiters,
                passing=skipped.iloc[lo:hi],
                callbacks_locked=took,
                callbacks_waiting=int(np.searchsorted(arrive_locked, t, side="right")) - took,
                callbacks_skipped=int(np.searchsorted(arrive_skipped, t, side="right")),
            )
        )
    return states
