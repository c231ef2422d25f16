"""Animations: the ``mmu_lock`` queue, and notifier ranges landing on the memslot map.

Both are drawn from a run's tidy tables and never simulate:

* :func:`queue_frames` / :func:`draw_queue` / :func:`queue_animation`: who is inside
  ``mmu_lock`` and who waits for it (FIFO), and behind which writer each waiting fault queued
  (``run.faults["blocked_by"]``), frame by frame; one panel per kernel on the same workload,
  so the queues of v5.12 and v5.15 compare directly. :func:`story_window` chooses, by a rule,
  the window where a spurious writer holds readers back on v5.12 while the same notification
  passes by without the lock on v5.15.
* :func:`memslot_animation`: notifier ranges arriving one by one on
  :func:`kvmviz.plot.memslot_map`; a hit takes ``mmu_lock`` for write, a miss passes by without
  it where the kernel allows (the ``locked`` column of ``Run.notifiers``).

An :class:`Animation` is one fixed figure whose static part is drawn once; each frame restores
that background and draws only the moving artists (:class:`Blitter`, the one Agg blitting of the
package: the dashboard of :mod:`kvmviz.widgets` uses it too). Play one live with
:func:`kvmviz.widgets.player`, or export it with :func:`to_html` (one self-contained file) or
:func:`to_gif`; :func:`kvmviz.gallery.render_animations` writes the standard ones.

The exports are written by this module, not by matplotlib's ``HTMLWriter`` / ``to_jshtml`` and
``PillowWriter``: measured on the two standard animations (``benchmarks/animate.py``), those
redraw the whole figure for every frame and store full-colour frames, so their files are 2.4 to
2.9 times larger and take 9 to 17 times longer to write; and matplotlib's HTML player loads its
icons from a CDN (offline, its buttons are blank) and carries a random id (two exports of one
animation differ).
"""

from __future__ import annotations

import base64
import html
import io
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import PIL.Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Arc, FancyBboxPatch, Patch, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.transforms import Bbox

from .._shared._checks import strict_booleans
from .._shared._files import check_free, write_atomic
from .._shared._prose import size_bytes
from ..inputs.presets import VMM_HEAP
from ..stats import metrics
from . import plot, theme
from .theme import HATCHES, KERNEL_STYLES, Themed

__all__ = [
    "QUEUE_WINDOW_US",
    "Animation",
    "Blitter",
    "QueueState",
    "Story",
    "draw_queue",
    "memslot_animation",
    "queue_animation",
    "queue_frames",
    "set_spans",
    "story_window",
    "to_gif",
    "to_html",
]

QUEUE_WINDOW_US = 60.0
"""The default width of a queue animation's window, µs (:func:`story_window`, the gallery)."""


# ---------------------------------------------------------------------------------------------
# The queue: frame states from the run's tables
# ---------------------------------------------------------------------------------------------
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
                (behind, f"{_count(behind, noun)} wait{'s' * (behind == 1)} for it"),
                (others, f"{_count(others, 'other')} wait{'s' * (others == 1)}"),
            ]
            writers = int((waiting_writers["holder"] == "notifier").sum())
            parts.append((writers, f"{_count(writers, 'writer')} wait{'s' * (writers == 1)}"))
            return "; ".join([text, *(part for n, part in parts if n > 0)])
        if n_writers:
            head = waiting_writers.iloc[0]
            who = (
                f"writer ({head['callback']}) waits"
                if n_writers == 1
                else f"{n_writers} writers wait"
            )
            inside = self.readers_inside
            text = f"{who} for {_count(inside, 'reader')} inside" if inside else f"{who}"
            blocked = self.blocked_readers
            them = "it" if n_writers == 1 else "them"
            return f"{text}; {_count(blocked, 'new reader')} blocked behind {them}"
        waiting = len(self.waiters)
        tail = (
            f"{_count(waiting, 'other')} wait{'s' * (waiting == 1)}" if waiting else "nobody waits"
        )
        if self.readers_inside:
            n = self.readers_inside
            verb = "share" if n > 1 else "holds"
            return f"{_count(n, 'reader')} {verb} mmu_lock for read; {tail}"
        return "mmu_lock is free" + f"; {tail}" * bool(waiting)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


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


@dataclass(frozen=True)
class Story:
    """Where a queue animation tells its story (:func:`story_window`).

    Attributes
    ----------
    start_us, end_us : float
        The window, µs.
    event : int
        The notification event (``run.notifiers["event"]``, the same in every run of one
        scenario and seed).
    callback : str
        Its callback that waited for ``mmu_lock`` on the first run.
    rows : dict of str to int
        That callback's row of ``run.notifiers`` in each run, by label.
    blocked : int
        Fault attempts of the first run whose ``blocked_by`` is that callback.
    wait_us : float
        How long that callback waited for the lock on the first run.
    """

    start_us: float
    end_us: float
    event: int
    callback: str
    rows: dict
    blocked: int
    wait_us: float

    @property
    def window(self) -> tuple[float, float]:
        """``(start_us, end_us)``, for :func:`queue_animation`."""
        return self.start_us, self.end_us


def _occurrence(notifiers: pd.DataFrame) -> np.ndarray:
    """Each callback's rank among the callbacks of the same name in its event (a KSM merge
    runs two start / change_pte / end triples): with ``event`` and ``callback``, a name for a
    callback that holds in every run of one stream."""
    return notifiers.groupby(["event", "callback"], sort=False).cumcount().to_numpy()


def story_window(runs, width_us: float = QUEUE_WINDOW_US, *, lead: float = 0.25) -> Story:
    """The window in which a spurious writer holds readers back on the first run and the same
    notification passes without the lock on the others: the rule behind
    :func:`queue_animation`'s default window.

    The rule: among the first run's notifier callbacks that missed every memslot (spurious),
    took ``mmu_lock`` and waited for it, keep those that skipped the lock in every other run
    (the same event and callback: a run of one scenario and seed has the same notification
    stream on every kernel) and that arrive, in every run, less than ``(1 - 2 * lead) *
    width_us`` apart; pick the one with the most fault attempts whose ``blocked_by`` is it
    (ties: the earliest to arrive). The window is ``width_us`` wide and starts ``lead *
    width_us`` before its earliest arrival (an ``invalidate_range_end`` arrives later where
    its start waited), so every frame-maker sees it arrive: on the first run it waits with
    readers queued behind it, on the others it passes by.

    Parameters
    ----------
    runs : mapping of label to Run
        Runs of one scenario and seed, the locking kernel first (``{"v5.12": ..., "v5.15":
        ...}``); at least two.
    width_us : float
        The window's width, µs.
    lead : float
        Share of the window before the callback arrives, in [0, 0.5).

    Returns
    -------
    Story

    Raises
    ------
    ValueError
        Fewer than two runs; runs of different notification streams; or no spurious callback
        that waited on the first run and skipped the lock on the others.

    Examples
    --------
    >>> setup = kv.presets.static_setup()  # doctest: +SKIP
    >>> runs = {k: kv.simulate(setup, k) for k in ("v5.12", "v5.15")}  # doctest: +SKIP
    >>> story = kv.animate.story_window(runs)  # doctest: +SKIP
    >>> kv.animate.queue_animation(runs, *story.window)  # doctest: +SKIP
    """
    runs = dict(runs)
    if len(runs) < 2:
        raise ValueError(
            f"story_window needs two runs or more (a locking kernel first), got {len(runs)}"
        )
    width_us = float(width_us)
    if not width_us > 0:
        raise ValueError(f"width_us = {width_us!r}: expected a positive number of µs")
    if not 0 <= lead < 0.5:
        raise ValueError(f"lead = {lead!r}: expected a share of the window in [0, 0.5)")
    labels = list(runs)
    keyed = {}
    for label, run in runs.items():
        n = run.notifiers
        key = pd.MultiIndex.from_arrays(
            [n["event"].to_numpy(), n["callback"].astype(str).to_numpy(), _occurrence(n)]
        )
        keyed[label] = pd.DataFrame(
            {
                "row": np.arange(len(n)),
                "locked": n["locked"].to_numpy(dtype=bool),
                "arrive": n["t_arrive_us"].to_numpy(dtype=float),
            },
            index=key,
        )
    first_label, first = labels[0], runs[labels[0]]
    # The same stream: every event's first callback arrives at the same instant in every run.
    starts = {
        label: runs[label].notifiers.groupby("event", sort=True)["t_arrive_us"].min()
        for label in labels
    }
    for label in labels[1:]:
        if not starts[label].equals(starts[first_label]):
            raise ValueError(
                f"runs {first_label!r} and {label!r} have different notification streams: "
                "expected runs of one scenario and seed"
            )
    n = first.notifiers
    candidate = (
        n["locked"].to_numpy(dtype=bool)
        & ~n["hit"].to_numpy(dtype=bool)
        & (n["wait_us"].to_numpy(dtype=float) > 0)
    )
    table = keyed[first_label][candidate].rename(columns=lambda c: f"{c}:{first_label}")
    for label in labels[1:]:
        other = keyed[label].rename(columns=lambda c, label=label: f"{c}:{label}")
        table = table.join(other, how="inner")
        table = table[~table[f"locked:{label}"].to_numpy(dtype=bool)]
    arrivals = table[[c for c in table.columns if c.startswith("arrive")]].to_numpy()
    table = table[arrivals.max(axis=1) - arrivals.min(axis=1) < (1 - 2 * lead) * width_us]
    if table.empty:
        raise ValueError(
            f"no spurious callback waited for mmu_lock on {first_label!r} and skipped it on "
            f"{', '.join(repr(x) for x in labels[1:])}: no story to tell in these runs"
        )
    blocked_by = first.faults["blocked_by"].to_numpy()
    counts = np.bincount(blocked_by[blocked_by >= 0], minlength=len(n))
    rows = table[f"row:{first_label}"].to_numpy()
    earliest = table[[c for c in table.columns if c.startswith("arrive")]].min(axis=1).to_numpy()
    pick = np.lexsort((earliest, -counts[rows]))[0]
    event, callback, _k = table.index[pick]
    start = max(0.0, float(earliest[pick]) - lead * width_us)
    duration = min(run.scenario.duration_us for run in runs.values())
    start = max(0.0, min(start, duration - width_us))
    return Story(
        start_us=start,
        end_us=start + width_us,
        event=int(event),
        callback=str(callback),
        rows={
            first_label: int(rows[pick]),
            **{label: int(table[f"row:{label}"].to_numpy()[pick]) for label in labels[1:]},
        },
        blocked=int(counts[rows[pick]]),
        wait_us=float(n["wait_us"].to_numpy()[rows[pick]]),
    )


# ---------------------------------------------------------------------------------------------
# The queue: drawing
# ---------------------------------------------------------------------------------------------
# One panel, in data units of one slot (a square is 0.7 wide): the lock is a box of
# _BOX_COLS x _BOX_ROWS reader slots; the queue is one line of _QUEUE_SLOTS to its right, its
# head next to the box; notifier callbacks that skip the lock pass by in a lane below.
_BOX_COLS, _BOX_ROWS = 5, 3
_QUEUE_SLOTS = 23
_QUEUE_X0 = _BOX_COLS + 1.3  # centre of the head of the queue
_QUEUE_Y = _BOX_ROWS - 0.5  # centre of the queue's line (level with the box's top row)
_PASS_SLOTS = 6
_PASS_Y = 0.5
_SQUARE = 0.7  # a 0.3 gap: room for the outlines, kept apart for blitting (_Sprite)
_XLIM = (-0.5, _QUEUE_X0 + _QUEUE_SLOTS + 0.9)
_YLIM = (-1.75, 4.75)
_SHORT = {
    "invalidate_range_start": "inv. start",
    "invalidate_range_end": "inv. end",
    "change_pte": "change_pte",
    "clear_flush_young": "flush_young",
    "clear_young": "clear_young",
    "test_young": "test_young",
}
# Waiting: an orange dashed outline (a hatch would be the usual second channel, but Agg takes a
# millisecond per hatched patch, too slow for 15 frames a second with 30 squares).
_WAITING = Themed(edgecolor="wait", linestyle=(0, (2.2, 1.2)), linewidth=2.2)
_INSIDE = Themed(edgecolor="background", linestyle="-", linewidth=0.8)
_ID_STYLE = {
    "ha": "center",
    "va": "center",
    "fontsize": 7,
    "color": "white",
    "weight": "bold",
    "zorder": 4,
}
_MORE = Themed(ha="center", va="center", fontsize=8, weight="bold", color="text")


@dataclass(frozen=True)
class _QueuePlan:
    """What one panel shows at one frame, in plain Python values (cheap to apply)."""

    clock: str
    readers: tuple[str, ...]  # vCPU numbers of the readers inside, as shown
    readers_more: int
    writer: str  # label of the writer inside, "" if none
    queue: tuple[tuple[str, str, str], ...]  # (kind, square text, label) per waiter, head first
    queue_more: int
    gate: int  # queue position of the first waiting writer, -1 if none shown
    blocked: int  # fault attempts blocked by a waiting writer (their blocked_by)
    writers_waiting: int
    passing: int
    passing_text: str
    caption: str
    stats: str


def _writer_label(callback: str, event) -> str:
    """A callback named with its event, so that the same notification can be found on every
    panel."""
    return f"{_SHORT.get(callback, callback)}, event {event}"


def _passing_text(passing: pd.DataFrame) -> str:
    """What passed by: the callbacks by name while they fit (so that the event a kernel locks
    for can be found passing by on another), else how many."""
    if passing.empty:
        return ""
    names = [
        _writer_label(c, e)
        for c, e in zip(passing["callback"].astype(str), passing["event"], strict=True)
    ]
    what = " and ".join(names) if len(names) <= 2 else _count(len(names), "notifier callback")
    return f"{what} passed by without the lock (missed every memslot)"


def _queue_plan(state: QueueState) -> _QueuePlan:
    kinds = state.holders["kind"].to_numpy()
    who = state.holders["who"].to_numpy()
    readers = [str(v) for v in who[kinds == "reader"]]
    cap_inside = _BOX_COLS * _BOX_ROWS
    n_in = len(readers) if len(readers) <= cap_inside else cap_inside - 1
    writer = ""
    if (kinds == "writer").any():
        row = state.holders[kinds == "writer"].iloc[0]
        writer = f"writer\n{_SHORT.get(row['callback'], row['callback'])}\nevent {row['who']}"
    w_kind = state.waiters["kind"].to_numpy()
    w_who = state.waiters["who"].to_numpy()
    w_cb = state.waiters["callback"].astype(str).to_numpy()
    n_q = len(w_kind) if len(w_kind) <= _QUEUE_SLOTS else _QUEUE_SLOTS - 1
    # A reader's square shows its vCPU; a writer's shows W and its event (the same event on
    # every panel), its callback written above it.
    queue = tuple(
        (k, str(v), "") if k == "reader" else (k, f"W{v}", _SHORT.get(c, c))
        for k, v, c in zip(w_kind[:n_q], w_who[:n_q], w_cb[:n_q], strict=True)
    )
    head = state.head_writer
    gate = int(head["position"]) if head is not None and int(head["position"]) < n_q else -1
    return _QueuePlan(
        clock=f"t = {state.t_us:,.1f} µs",
        readers=tuple(readers[:n_in]),
        readers_more=len(readers) - n_in,
        writer=writer,
        queue=queue,
        queue_more=len(w_kind) - n_q,
        gate=gate,
        blocked=state.blocked_readers,
        writers_waiting=int((w_kind == "writer").sum()),
        passing=len(state.passing),
        passing_text=_passing_text(state.passing),
        caption=state.caption,
        stats=(
            f"notifier callbacks so far: {state.callbacks_locked} took mmu_lock, "
            f"{state.callbacks_waiting} waiting for it, {state.callbacks_skipped} skipped it"
        ),
    )


def _panel_title(kernel: str) -> str:
    return KERNEL_STYLES.get(kernel, {}).get("label", kernel)


class _Sprite:
    """Moving artists that only ever cover the static background (never each other): drawn
    once per look, then restored from the pixels kept for that look (text is what costs most
    in Agg, and the same labels come back frame after frame)."""

    def __init__(self, artists) -> None:
        self.artists = list(artists)

    def key(self) -> tuple:
        """What the artists look like now (the properties that kvmviz's animations change)."""
        return tuple(
            (a.get_visible(), a.get_text(), a.get_position(), a.get_color())
            if hasattr(a, "get_text")
            else (a.get_visible(), a.get_facecolor(), a.get_edgecolor(), a.get_linestyle())
            for a in self.artists
        )

    def bbox(self, renderer) -> Bbox | None:
        """The pixels the artists cover, or None if none: their extents, widened by half the
        widest outline (extents leave strokes out) and 2 pixels of antialiasing. The layout
        keeps these boxes apart, or one sprite's pixels would carry a neighbour's edge."""
        shown = [
            a
            for a in self.artists
            if a.get_visible() and not (hasattr(a, "get_text") and not a.get_text())
        ]
        if not shown:
            return None
        stroke = max((a.get_linewidth() for a in shown if hasattr(a, "get_hatch")), default=0)
        pad = 2 + renderer.points_to_pixels(stroke) / 2
        return Bbox.union([a.get_window_extent(renderer) for a in shown]).padded(pad)


class _QueueView:
    """The artists of one queue panel: static ones drawn once, moving ones pooled (a fixed
    number of squares and labels, shown or hidden per frame, so frames blit fast)."""

    def __init__(self, ax, title: str) -> None:
        self.ax = ax
        ax.set_xlim(*_XLIM)
        ax.set_ylim(*_YLIM)
        ax.set_aspect("equal")
        ax.set_axis_off()
        ax.set_title(title, loc="left")
        text = theme.color("text")
        ax.add_patch(
            FancyBboxPatch(
                (0, 0),
                _BOX_COLS,
                _BOX_ROWS,
                boxstyle="round,pad=0.12",
                facecolor=theme.color("box_face"),
                edgecolor=text,
                linewidth=1.6,
                zorder=1,
            )
        )
        ax.text(0, _BOX_ROWS + 0.3, "inside mmu_lock", fontsize="small", weight="bold", color=text)
        ax.text(
            _QUEUE_X0 - 0.4,
            _BOX_ROWS + 1.15,
            "waiting (FIFO): the first in line, next to the lock, goes in next",
            fontsize="small",
            weight="bold",
            color=theme.color("wait"),
        )
        ax.annotate(
            "",
            xy=(_BOX_COLS + 0.25, _QUEUE_Y),
            xytext=(_QUEUE_X0 - 0.45, _QUEUE_Y),
            arrowprops={"arrowstyle": "-|>", "color": theme.color("wait"), "lw": 1.4},
        )
        # Moving artists, pooled.
        self.clock = ax.set_title(" ", loc="right")
        self.readers = [
            self._square(c + 0.5, _BOX_ROWS - 0.5 - r)
            for r in range(_BOX_ROWS)
            for c in range(_BOX_COLS)
        ]
        self.reader_ids = [ax.text(*self._centre(p), "", **_ID_STYLE) for p in self.readers]
        self.more_inside = ax.text(_BOX_COLS - 0.5, 0.5, "", **_MORE)
        # A writer holds mmu_lock alone: one big square filling the box.
        self.writer = self._square(_BOX_COLS / 2, _BOX_ROWS / 2, size=2.2)
        self.writer.set(facecolor=theme.color("write"), **_INSIDE)
        self.writer_label = ax.text(_BOX_COLS / 2, _BOX_ROWS / 2, "", **_ID_STYLE)
        self.queue = [self._square(_QUEUE_X0 + k, _QUEUE_Y) for k in range(_QUEUE_SLOTS)]
        self.queue_ids = [ax.text(*self._centre(p), "", **_ID_STYLE) for p in self.queue]
        self.queue_labels = [
            ax.text(
                _QUEUE_X0 + k - 0.25,
                _QUEUE_Y + 0.5,
                "",
                rotation=30,
                rotation_mode="anchor",
                fontsize=7,
                color=theme.color("write"),
            )
            for k in range(_QUEUE_SLOTS)
        ]
        self.more_queue = ax.text(_QUEUE_X0 + _QUEUE_SLOTS - 1, _QUEUE_Y, "", **_MORE)
        write = theme.color("write")
        (self.gate,) = ax.plot([], [], color=write, linewidth=3.5, solid_capstyle="butt")
        (self.bracket,) = ax.plot([], [], color=write, linewidth=1.2)
        self.bracket_text = ax.text(0, 0, "", ha="center", va="top", fontsize=8, color=text)
        self.passing = [self._square(_QUEUE_X0 + k, _PASS_Y, size=0.6) for k in range(_PASS_SLOTS)]
        for patch in self.passing:
            patch.set(facecolor=theme.color("background"), edgecolor=theme.color("miss"),
                      hatch=HATCHES["miss"])  # fmt: skip
        miss = theme.color("miss")
        self.passing_text = ax.text(0, _PASS_Y, "", va="center", fontsize=8, color=miss)
        self.caption = ax.text(0, -0.55, "", va="top", fontsize="medium", color=text)
        self.stats = ax.text(0, -1.35, "", va="top", fontsize="small", color=miss)

    def _square(self, x: float, y: float, size: float = _SQUARE) -> Rectangle:
        patch = Rectangle((x - size / 2, y - size / 2), size, size, visible=False, zorder=3)
        self.ax.add_patch(patch)
        return patch

    @staticmethod
    def _centre(patch: Rectangle) -> tuple[float, float]:
        return patch.get_x() + patch.get_width() / 2, patch.get_y() + patch.get_height() / 2

    @property
    def sprites(self) -> list[list]:
        """The moving artists that never overlap one another, each with its look's key."""

        squares = [
            *zip(self.readers, self.reader_ids, strict=True),
            *zip(self.queue, self.queue_ids, strict=True),
            (self.writer, self.writer_label),
        ]
        texts = [self.clock, self.more_inside, self.more_queue, self.bracket_text]
        texts += [self.passing_text, self.caption, self.stats]
        return [
            *(list(pair) for pair in squares),
            *([t] for t in texts),
            *([p] for p in self.passing),
        ]

    @property
    def overlays(self) -> list:
        """The moving artists that may overlap others: drawn every frame, on top."""
        return [self.gate, self.bracket, *self.queue_labels]

    def update(self, plan: _QueuePlan) -> None:
        self.clock.set_text(plan.clock)
        for k, (patch, label) in enumerate(zip(self.readers, self.reader_ids, strict=True)):
            shown = k < len(plan.readers)
            patch.set_visible(shown)
            _set_id(label, plan.readers[k] if shown else "")
            if shown:
                patch.set(facecolor=theme.color("read"), **_INSIDE)
        self.more_inside.set_text(f"+{plan.readers_more}" if plan.readers_more else "")
        self.writer.set_visible(bool(plan.writer))
        self.writer_label.set_text(plan.writer)
        # The queue, its head next to the box.
        for k, (patch, label, name) in enumerate(
            zip(self.queue, self.queue_ids, self.queue_labels, strict=True)
        ):
            shown = k < len(plan.queue)
            patch.set_visible(shown)
            kind, text, above = plan.queue[k] if shown else ("", "", "")
            _set_id(label, text)
            name.set_text(above)
            if shown:
                patch.set(facecolor=theme.color("write" if kind == "writer" else "read"),
                          **_WAITING)  # fmt: skip
        self.more_queue.set_text(f"+{plan.queue_more}" if plan.queue_more else "")
        # The first waiting writer shuts the door on every reader that comes after it.
        self.gate.set_data([], [])
        self.bracket.set_data([], [])
        self.bracket_text.set_text("")
        if plan.gate >= 0:
            x_gate = _QUEUE_X0 + plan.gate + 0.5
            self.gate.set_data([x_gate, x_gate], [_QUEUE_Y - 0.7, _QUEUE_Y + 0.7])
            last = len(plan.queue) - 1
            if last > plan.gate and plan.blocked:
                x0, x1 = _QUEUE_X0 + plan.gate + 0.65, _QUEUE_X0 + last + 0.4
                y = _QUEUE_Y - 0.6
                self.bracket.set_data([x0, x0, x1, x1], [y + 0.12, y, y, y + 0.12])
                self.bracket_text.set_position(((x0 + x1) / 2, y - 0.1))
                writers = "writer" if plan.writers_waiting == 1 else "writers"
                self.bracket_text.set_text(
                    f"{_count(plan.blocked, 'reader')} blocked by the waiting {writers}"
                )
        # Callbacks that skip the lock pass by below, without queueing.
        n_pass = min(plan.passing, _PASS_SLOTS)
        for k, patch in enumerate(self.passing):
            patch.set_visible(k < n_pass)
        self.passing_text.set_position((_QUEUE_X0 + n_pass - 0.1, _PASS_Y))
        self.passing_text.set_text(plan.passing_text)
        self.caption.set_text(plan.caption)
        self.stats.set_text(plan.stats)


def _set_id(label, text: str) -> None:
    """Write a vCPU number (or W and an event number) in its square, smaller from three
    characters on (416-vCPU VMs, events past 99)."""
    label.set_text(text)
    n = len(text)
    label.set_fontsize(_ID_STYLE["fontsize"] if n < 3 else 5.5 if n == 3 else 4.5)


def _legend_handles() -> list[Patch]:
    return [
        Patch(
            facecolor=theme.color("read"),
            edgecolor=theme.color("background"),
            label="reader: vCPU fault (vCPU no.)",
        ),
        Patch(
            facecolor=theme.color("write"),
            edgecolor=theme.color("background"),
            label="writer: notifier callback (W, event)",
        ),
        Patch(facecolor=theme.color("faint"), label="waiting (dashed outline)", **_WAITING),
        Patch(
            facecolor=theme.color("background"),
            edgecolor=theme.color("miss"),
            hatch=HATCHES["miss"],
            label="callback that skips the lock",
        ),
    ]


@strict_booleans
def draw_queue(state: QueueState, *, ax=None, title: str | None = None, legend: bool = True):
    """Draw ``mmu_lock`` at one instant: holders inside the box, waiters queued outside.

    Readers (vCPU page faults) are blue squares numbered with their vCPU, writers (notifier
    callbacks) vermilion; a waiting one has an orange dashed outline. The queue runs left to
    right from its head, next to the box. The first waiting writer is marked by a bar: every
    reader behind it waits although the lock is only held for read (the qrwlock's fairness).

    Parameters
    ----------
    state : QueueState
        From :func:`queue_frames`.
    ax : matplotlib.axes.Axes, optional
    title : str, optional
        Default: the kernel's label. The time is shown on the right.
    legend : bool
        Add the key (reader, writer, waiting, skips the lock) below the axes.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.gca()
    view = _QueueView(ax, _panel_title(state.kernel) if title is None else title)
    view.update(_queue_plan(state))
    if legend:
        ax.legend(
            handles=_legend_handles(),
            loc="upper left",
            bbox_to_anchor=(0.0, 0.0),
            ncols=4,
            fontsize="small",
        )
    return ax


# ---------------------------------------------------------------------------------------------
# Blitting: a figure drawn in full once, then only what moves
# ---------------------------------------------------------------------------------------------
class Blitter:
    """A figure drawn in full once, then only its moving artists, onto the saved background
    (Agg blitting): the one blitting of the package, behind :class:`Animation` and the
    dashboard of :mod:`kvmviz.widgets`.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        Given an Agg canvas (:attr:`canvas`).
    moving : sequence of Artist, optional
        Artists redrawn at every :meth:`blit`, in this order, after the sprites; they may
        overlap anything. Extend :attr:`moving` freely until :meth:`prepare`.
    sprites : sequence of sequence of Artist, optional
        Groups of moving artists (a square and its label, a caption) that only ever cover the
        static background, never another group. Each look of a group (its text, colours,
        visibility) is drawn once, then restored from its pixels: text is what costs most in
        Agg, and the same labels come back frame after frame.

    Examples
    --------
    >>> blitter = Blitter(figure, moving=ax.get_lines())  # doctest: +SKIP
    >>> line.set_ydata(new)                               # doctest: +SKIP
    >>> blitter.blit(); blitter.png()                     # doctest: +SKIP
    """

    def __init__(self, figure: Figure, moving: Sequence = (), sprites: Sequence = ()) -> None:
        self.figure = figure
        self.canvas = FigureCanvasAgg(figure)
        self.moving = list(moving)
        self._sprites = [_Sprite(group) for group in sprites]
        self._pixels: list[dict] = [{} for _ in self._sprites]
        self._background = None

    @property
    def prepared(self) -> bool:
        """Whether the static background has been drawn and kept."""
        return self._background is not None

    def prepare(self) -> None:
        """Draw everything static once (solving the layout), freeze the layout, keep the
        pixels as the background. The moving artists are left out of it (animated)."""
        for artist in [*self.moving, *(a for s in self._sprites for a in s.artists)]:
            artist.set_animated(True)
        self.canvas.draw()
        self.figure.set_layout_engine("none")  # the layout is solved: keep it for every blit
        self._background = self.canvas.copy_from_bbox(self.figure.bbox)
        for pixels in self._pixels:  # looks kept from before a new background are stale
            pixels.clear()

    def blit(self) -> None:
        """Restore the background and draw the moving artists as they are now (preparing
        first if needed)."""
        if self._background is None:
            self.prepare()
        canvas = self.canvas
        canvas.restore_region(self._background)
        renderer = canvas.get_renderer()
        for sprite, pixels in zip(self._sprites, self._pixels, strict=True):
            key = sprite.key()
            region = pixels.get(key)
            if region is not None:
                canvas.restore_region(region)
                continue
            for artist in sprite.artists:
                artist.draw(renderer)
            bbox = sprite.bbox(renderer)
            if bbox is not None:
                pixels[key] = canvas.copy_from_bbox(bbox)
        for artist in self.moving:
            artist.draw(renderer)

    def image(self) -> PIL.Image.Image:
        """The canvas as it is now, as an RGB image (a copy)."""
        width, height = self.canvas.get_width_height()
        rgba = PIL.Image.frombuffer("RGBA", (width, height), self.canvas.buffer_rgba())
        return rgba.convert("RGB")

    def png(self, *, compress_level: int = 1) -> bytes:
        """The canvas as it is now, as RGB PNG bytes (fast compression by default: live views
        send one per update).

        Written here rather than by Pillow: rows unfiltered, deflated by zlib in one call. On
        the projector dashboard's 1,904 x 800 px figure this takes about half of Pillow's
        time (16 ms against 32), for files about a tenth larger; the pixels are the same."""
        import struct
        import zlib

        width, height = self.canvas.get_width_height()
        rgba = np.asarray(self.canvas.buffer_rgba())
        rows = np.empty((height, 1 + 3 * width), np.uint8)
        rows[:, 0] = 0  # each row's filter: none
        rows[:, 1:].reshape(height, width, 3)[...] = rgba[:, :, :3]

        def chunk(kind: bytes, data: bytes) -> bytes:
            crc = zlib.crc32(kind + data) & 0xFFFFFFFF
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

        header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
        return b"".join(
            [
                b"\x89PNG\r\n\x1a\n",
                chunk(b"IHDR", header),
                chunk(b"IDAT", zlib.compress(rows, compress_level)),
                chunk(b"IEND", b""),
            ]
        )


def set_spans(collection, spans: Iterable[tuple[float, float]], y0: float, height: float) -> None:
    """Give a ``broken_barh`` collection new ``(x, width)`` spans, from ``y0``, ``height`` high.

    All the bars become one compound path: Agg rasterises a hatch once per path (about a
    millisecond), so one path for all the bars keeps a map of many hatched misses as fast as
    one of a few. The one way the animations and the dashboard move range bars.

    Parameters
    ----------
    collection : matplotlib.collections.PolyCollection
        As ``Axes.broken_barh`` returns it.
    spans : iterable of (float, float)
        ``(x, width)`` per bar, in data units; none empties the collection.
    y0, height : float
        The row of the bars, in data units.
    """
    bars = [
        MplPath(
            [(x, y0), (x, y0 + height), (x + w, y0 + height), (x + w, y0), (x, y0)], closed=True
        )
        for x, w in spans
    ]
    if not bars:
        collection.set_verts([])
        return
    compound = MplPath.make_compound_path(*bars)
    collection.set_verts_and_codes([compound.vertices], [compound.codes])


# ---------------------------------------------------------------------------------------------
# Animations: a figure drawn once, moving artists blitted per frame
# ---------------------------------------------------------------------------------------------
class Animation:
    """Frames over one fixed figure: the static part is drawn once, each frame only the moving
    artists (:class:`Blitter`).

    Displayed as the last line of a notebook cell it shows its first frame; play it with
    :func:`kvmviz.widgets.player`, export it with :func:`to_html` or :func:`to_gif`.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        Built with every artist the animation uses.
    n_frames : int
    update : callable
        ``update(i)`` sets the moving artists to frame ``i``.
    moving : sequence of Artist
        The artists ``update`` changes; they are drawn per frame, everything else once.
    sprites : sequence of sequence of Artist, optional
        Groups of moving artists that only ever cover the static background, never another
        group; drawn before ``moving``, each look once (see :class:`Blitter`).
    fps : float
        Suggested playback speed (player, HTML, GIF).
    name : str
        A file-name-like label.
    rc : dict, optional
        matplotlib settings every frame is drawn with (default: the current ones), so the frames
        do not depend on what the caller changes in between.
    """

    def __init__(
        self,
        figure: Figure,
        n_frames: int,
        update: Callable[[int], None],
        moving: Sequence,
        *,
        sprites: Sequence[Sequence] = (),
        fps: float = 10,
        name: str = "animation",
        rc: dict | None = None,
    ) -> None:
        if int(n_frames) < 1:
            raise ValueError(f"n_frames must be >= 1, got {n_frames}")
        self.figure = figure
        self._blitter = Blitter(figure, moving, sprites)
        self.canvas = self._blitter.canvas
        self.n_frames = int(n_frames)
        self.fps = float(fps)
        self.name = name
        self._update = update
        self._rc = _snapshot_rc() if rc is None else rc
        self._progress = None
        # matplotlib is not thread-safe: one figure, one draw at a time. Every path that
        # touches the canvas (draw, image, png, and so every export) holds this lock, so a
        # caller's own thread can never interleave with another draw of the same frames.
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return self.n_frames

    def _prepare(self) -> None:
        """Add the progress bar, set frame 0 (the layout is solved for it) and draw the
        static background."""
        fig = self.figure
        # A thin bar along the bottom edge shows how far the animation has run (and keeps
        # every frame distinct, which GIF writers rely on not to merge frames).
        fig.add_artist(Line2D([0, 1], [0.004, 0.004], color="#e4e4e4", linewidth=3))
        self._progress = fig.add_artist(Line2D([0, 0], [0.004, 0.004], color="#888888", lw=3))
        self._blitter.moving.append(self._progress)
        self._update(0)
        self._blitter.prepare()

    def draw(self, i: int) -> None:
        """Draw frame ``i`` onto the canvas."""
        i = int(i)
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} out of range 0..{self.n_frames - 1}")
        with self._lock, mpl.rc_context(self._rc):
            if not self._blitter.prepared:
                self._prepare()
            self._update(i)
            self._progress.set_xdata([0, (i + 1) / self.n_frames])
            self._blitter.blit()

    def image(self, i: int) -> PIL.Image.Image:
        """Frame ``i`` as an RGB image."""
        with self._lock:  # the pixels are copied before another draw may start
            self.draw(i)
            return self._blitter.image()

    def png(self, i: int, *, compress_level: int = 1) -> bytes:
        """Frame ``i`` as PNG bytes (fast compression by default, for live playback)."""
        with self._lock:
            self.draw(i)
            return self._blitter.png(compress_level=compress_level)

    def _repr_png_(self) -> bytes:
        """The first frame: what a notebook shows for an animation (the live player is
        :func:`kvmviz.widgets.player`)."""
        return self.png(0)


def _snapshot_rc() -> dict:
    """The current matplotlib settings, without those that steer the GUI rather than a frame."""
    skip = {"backend", "backend_fallback", "interactive", "webagg.port", "webagg.address"}
    return {k: v for k, v in mpl.rcParams.items() if k not in skip}


def _themed(build: Callable[[dict], Animation], context: str = "notebook") -> Animation:
    """Build an animation under the kvmviz theme without changing the caller's settings."""
    with theme.isolated(context):  # the user's matplotlibrc does not reach the frames
        return build(_snapshot_rc())


def _default_window(runs: dict, width_us: float) -> tuple[float, float]:
    """:func:`story_window` where it finds a story, else the first run's busiest window."""
    if len(runs) >= 2:
        try:
            return story_window(runs, width_us).window
        except ValueError:
            pass
    return metrics.busiest_window(next(iter(runs.values())), width_us, whole=False)


def queue_animation(
    runs,
    start_us: float | None = None,
    end_us: float | None = None,
    n_frames: int = 120,
    *,
    fps: float = 20,
    width_us: float = QUEUE_WINDOW_US,
    figsize: tuple[float, float] | None = None,
    dpi: float = 80,
) -> Animation:
    """The ``mmu_lock`` queue over a window, one panel per run, one above the other.

    Give runs of the same scenario and seed on two kernels (``{"v5.12": run_a, "v5.15":
    run_b}``): the vCPUs fault identically until the notifiers' locking differs, and the panels
    share one scale, so the queues' lengths compare directly.

    Parameters
    ----------
    runs : Run or mapping of label to Run
        A label that is a kernel name is shown as that kernel's long label.
    start_us, end_us : float, optional
        The window, µs. Default, for two runs or more: the story's window
        (:func:`story_window`): a spurious callback that waits for ``mmu_lock`` on the first
        run, with the most faults queued behind it, passing by without the lock on the others.
        For one run, or runs with no such callback: ``width_us`` wide around the first run's
        callback that waited longest (:func:`kvmviz.metrics.busiest_window`, ``whole=False``:
        the frames span a fixed window).
    n_frames : int
    fps : float
    width_us : float
        Width of the default window, µs.
    figsize : (float, float), optional
        Inches; default 11 wide and 2.5 high per panel.
    dpi : float

    Returns
    -------
    Animation
    """
    runs = {runs.kernel: runs} if hasattr(runs, "lock") else dict(runs)
    if not runs:
        raise ValueError("queue_animation needs at least one run")
    if start_us is None or end_us is None:
        start_us, end_us = _default_window(runs, width_us)
    # A callback that skips the lock stays in view for a second of playback, long enough to
    # be seen passing by while its twin on the other panel waits.
    recent_us = max(3, round(fps)) * (float(end_us) - float(start_us)) / max(int(n_frames), 1)
    frames = [
        queue_frames(run, start_us, end_us, n_frames=n_frames, recent_us=recent_us)
        for run in runs.values()
    ]
    plans: list[list[_QueuePlan | None]] = [[None] * len(f) for f in frames]

    def build(rc):
        fig = Figure(figsize=figsize or (11, 0.6 + 2.5 * len(runs)), dpi=dpi, layout="constrained")
        axes = fig.subplots(len(runs), 1, squeeze=False)[:, 0]
        titles = [_panel_title(label) for label in runs]
        views = [_QueueView(ax, title) for ax, title in zip(axes, titles, strict=True)]
        fig.legend(handles=_legend_handles(), loc="outside upper center", ncols=4, fontsize="small")

        def update(i: int) -> None:
            for view, states, cache in zip(views, frames, plans, strict=True):
                if cache[i] is None:
                    cache[i] = _queue_plan(states[i])
                view.update(cache[i])

        name = "queue-" + "-vs-".join(str(label) for label in runs)
        return Animation(
            fig,
            len(frames[0]),
            update,
            [a for view in views for a in view.overlays],
            sprites=[s for view in views for s in view.sprites],
            fps=fps,
            name=name,
            rc=rc,
        )

    return _themed(build)


# ---------------------------------------------------------------------------------------------
# The memslot map: notifier ranges arriving one by one
# ---------------------------------------------------------------------------------------------
_WORK = {  # what KVM does under the lock for a range that hits (__kvm_handle_hva_range)
    "invalidate_range_start": "zap SPTEs + TLB flush",
    "change_pte": "zap SPTEs + TLB flush",
    "clear_flush_young": "clear Accessed\n+ TLB flush",
    "clear_young": "clear Accessed bits",
    "test_young": "test Accessed bits",
}


def _events(run, first_event: int, n_events: int) -> pd.DataFrame:
    """One row per notification event (its first callback's range and arrival), with how many
    of its callbacks took the lock and which callbacks it ran."""
    notifiers = run.notifiers.sort_values(["t_arrive_us", "event"], kind="stable")
    grouped = notifiers.groupby("event", sort=False)
    events = grouped.first()
    events["n_locked"] = grouped["locked"].sum().astype(int)
    events["n_callbacks"] = grouped.size()
    events["callbacks"] = grouped["callback"].agg(lambda c: " → ".join(_SHORT.get(x, x) for x in c))
    events = events.sort_values("t_arrive_us", kind="stable").reset_index()
    return events.iloc[first_event : first_event + n_events].reset_index(drop=True)


def _why(kernel: str, event: pd.Series, slots: str) -> str:
    """Why the event took ``mmu_lock`` or not, in a few short lines."""
    if event["hit"]:
        return f"hits {slots}:\n{_WORK.get(event['callback'], 'update SPTEs')}"
    if event["n_locked"] and kernel == "v5.12":
        return "misses, but v5.12\nlocks for every\ncallback"
    if event["n_locked"]:
        # 8931a454ae: the on_lock path of start/end "does not yet support lock elision".
        return "misses, but start/end\nstill lock on v5.13\n(8931a454ae)"
    return "misses every\nmemslot: nothing\nto do"


def memslot_animation(
    run,
    *,
    n_events: int = 24,
    frames_per_event: int = 5,
    first_event: int = 0,
    regions=(VMM_HEAP,),
    fps: float = 20,
    figsize: tuple[float, float] = (11, 4.4),
    dpi: float = 80,
) -> Animation:
    """Notifier ranges arriving one by one on the memslot map of ``run``.

    Each event's range drops onto the map: a hit is vermilion and the ``mmu_lock`` padlock
    beside the map flashes shut (taken for write); a miss is grey and hatched, and on v5.13
    (unpaired callbacks) and v5.15 (all callbacks) the padlock stays open. Earlier ranges stay
    on the map. The map itself (:func:`kvmviz.plot.memslot_map`) is drawn once.

    Parameters
    ----------
    run : Run
    n_events : int
        Notification events shown, from ``first_event`` in arrival order.
    frames_per_event : int
        Frames per event: the range falls, lands, the padlock flashes and fades.
    first_event : int
    regions : sequence of (hva_start, hva_end)
        Drawn as segments of the map even with no range on them (the VMM's heap).
    fps : float
    figsize : (float, float)
        Inches.
    dpi : float

    Returns
    -------
    Animation
    """
    if int(frames_per_event) < 1:
        raise ValueError(f"frames_per_event must be >= 1, got {frames_per_event}")
    fpe = int(frames_per_event)
    events = _events(run, int(first_event), int(n_events))
    if events.empty:
        raise ValueError(f"run has no notification events from number {first_event}")
    layout = run.scenario.layout
    kernel = run.kernel
    landing = min(2, fpe - 1)  # the frame (within an event) at which the range lands
    why = [
        _why(
            kernel,
            event,
            ", ".join(
                sorted(
                    {f"slot {g.slot}" for g in layout.gfn_ranges(event.hva_start, event.hva_end)}
                )
            ),
        )
        for _, event in events.iterrows()
    ]
    locked_before = np.concatenate([[0], np.cumsum(events["n_locked"])])
    callbacks_before = np.concatenate([[0], np.cumsum(events["n_callbacks"])])
    hits = events["hit"].to_numpy(dtype=bool)

    def build(rc):
        fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
        grid = fig.add_gridspec(1, 2, width_ratios=[6.0, 1.2])
        ax = fig.add_subplot(grid[0])
        ax_lock = fig.add_subplot(grid[1])
        shown = run.notifiers[run.notifiers["event"].isin(events["event"])]
        plot.memslot_map(layout, shown, ax=ax, regions=regions)
        fig.suptitle(
            f"Notifier ranges arriving on the memslots: {_panel_title(kernel)}",
            x=0.01,
            ha="left",
            fontsize="large",
            weight="bold",
        )
        # The map's legend moves to the figure, out of the way of the event line.
        ax.get_legend().remove()
        fig.legend(
            handles=[
                Patch(facecolor=theme.color("memslot"), label="memslot"),
                Patch(**plot.RANGE_STYLE["hit"], label="range hits a memslot"),
                Patch(**plot.RANGE_STYLE["miss"], label="range misses (spurious)"),
            ],
            loc="outside lower center",
            ncols=3,
            fontsize="small",
        )
        # The axis memslot_map drew, its bars, and the row they sit in.
        parts = plot.map_parts(ax)
        to_x = parts.axis.x
        past = {True: parts.bars["hit"], False: parts.bars["miss"]}
        top = parts.rows
        row_y = parts.notifier_row[0]
        ax.set_ylim(-0.35, top + 2.3)  # room above the notifier row for ranges to fall from
        x0 = np.array([to_x(int(a)) for a in events["hva_start"]])
        x1 = np.array([to_x(int(b)) for b in events["hva_end"]])
        # A 4 KiB range in a 12 TiB slot is far below a pixel: draw every range wide enough
        # to be seen, centred on where it is.
        width = np.maximum(x1 - x0, 0.1)
        left = (x0 + x1) / 2 - width / 2
        event_line = ax.set_title(" ", loc="left", fontsize="medium")
        current = Rectangle((0, 0), 0, 0.7, zorder=5, linewidth=0)
        ax.add_patch(current)
        (pointer,) = ax.plot([], [], marker="v", markersize=12, linestyle="", zorder=6)
        band = Rectangle((0, -0.1), 0, top + 0.1, alpha=0.45, zorder=0.5, linewidth=0)
        ax.add_patch(band)

        ax_lock.set_xlim(0, 1)
        ax_lock.set_ylim(-0.75, 1.45)
        ax_lock.set_axis_off()
        ax_lock.text(0.5, 1.3, "mmu_lock", ha="center", weight="bold", fontsize="medium")
        body = FancyBboxPatch(
            (0.22, 0.42), 0.56, 0.36, boxstyle="round,pad=0.03", linewidth=2.0, zorder=3
        )
        ax_lock.add_patch(body)
        shackle = Arc((0.5, 0.78), 0.34, 0.46, theta1=0, theta2=180, linewidth=5, zorder=2)
        ax_lock.add_patch(shackle)
        status = ax_lock.text(0.5, 0.3, "", ha="center", va="top", weight="bold", fontsize="small")
        reason = ax_lock.text(0.5, 0.1, "", ha="center", va="top", fontsize="x-small")
        tally = ax_lock.text(0.5, -0.5, "", ha="center", va="top", fontsize="x-small")

        def update(i: int) -> None:
            k, phase = divmod(i, fpe)
            event = events.iloc[k]
            hit, n_locked = bool(hits[k]), int(event["n_locked"])
            for h, collection in past.items():
                before = np.flatnonzero(hits[:k] == h)
                set_spans(collection, zip(left[before], width[before], strict=True), row_y, 0.7)
            colour = theme.color("hit" if hit else "miss")
            landed = phase >= landing
            y = row_y + (landing - phase) * 0.5
            current.set_bounds(left[k], y, width[k], 0.7)
            current.set_facecolor(colour)
            current.set_hatch(None if hit else HATCHES["miss"])
            pointer.set_data([left[k] + width[k] / 2], [y + 0.9])
            pointer.set_color(colour)
            band.set_visible(landed)
            band.set_bounds(left[k], -0.1, width[k], top + 0.2)
            band.set_facecolor(colour)
            size = size_bytes(int(event["hva_end"]) - int(event["hva_start"]))
            event_line.set_text(
                f"event {int(event['event'])} at t = {event['t_arrive_us']:,.1f} µs: "
                f"{event['callbacks']} on {size}" + (f" → {'hit' if hit else 'miss'}" * landed)
            )
            # The padlock: shut and flashing vermilion when taken, open and grey when skipped.
            flash = 1.0 - 0.6 * (phase - landing) / max(fpe - 1 - landing, 1)
            closed, lock_colour, fill, style = True, theme.color("miss"), "#eeeeee", "-"
            status.set_text("")
            reason.set_text(why[k] if landed else "")
            if landed and n_locked:
                lock_colour, fill = theme.color("write"), _mix(theme.color("write"), flash)
                status.set_text("taken for write" + (f" ({n_locked}×)" if n_locked > 1 else ""))
            elif landed:
                closed, fill, style = False, theme.color("background"), "--"
                status.set_text("not taken")
            body.set(facecolor=fill, edgecolor=lock_colour, linestyle=style)
            shackle.set(center=(0.5, 0.78 if closed else 0.9), edgecolor=lock_colour)
            status.set_color(lock_colour)
            done = k + 1 if landed else k
            taken = int(locked_before[done])
            tally.set_text(
                f"so far: taken {taken}×,\nskipped {int(callbacks_before[done]) - taken}×\n"
                f"({done} of {len(events)} events)"
            )

        return Animation(
            fig,
            len(events) * fpe,
            update,
            [*past.values(), band, current, pointer, body, shackle],
            sprites=[[text] for text in (event_line, status, reason, tally)],
            fps=fps,
            name=f"memslots-{kernel}",
            rc=rc,
        )

    return _themed(build)


def _mix(colour: str, amount: float) -> tuple:
    """``colour`` blended with white: ``amount`` 1 is the colour, 0 white."""
    rgb = np.array(mpl.colors.to_rgb(colour))
    return tuple(1 - amount * (1 - rgb))


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------
_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>@TITLE@</title>
<style>
body { font-family: "DejaVu Sans", Verdana, sans-serif; color: #222; margin: 1.5em; }
figure { margin: 0; display: inline-block; }
img { display: block; max-width: 100%; height: auto; border: 1px solid #ddd; }
.controls { display: flex; align-items: center; gap: 0.8em; margin-top: 0.5em; }
.controls input { flex: 1; }
button { min-width: 5em; }
output { font-variant-numeric: tabular-nums; color: #555; }
</style>
</head>
<body>
<figure>
<img id="frame" width="@WIDTH@" height="@HEIGHT@" alt="@TITLE@">
<div class="controls">
<button id="play" type="button">Play</button>
<input id="slider" type="range" min="0" max="@LAST@" value="0" step="1" aria-label="frame">
<output id="label"></output>
</div>
<figcaption><small>@CAPTION@</small></figcaption>
</figure>
<script>
"use strict";
const frames = [
@FRAMES@
];
(function () {
  const img = document.getElementById("frame");
  const slider = document.getElementById("slider");
  const button = document.getElementById("play");
  const label = document.getElementById("label");
  let timer = null;
  function show(i) {
    slider.value = i;
    img.src = frames[i];
    label.textContent = "frame " + (i + 1) + " / " + frames.length;
  }
  function stop() {
    clearInterval(timer);
    timer = null;
    button.textContent = "Play";
  }
  function play() {
    timer = setInterval(function () {
      show((Number(slider.value) + 1) % frames.length);
    }, @INTERVAL@);
    button.textContent = "Pause";
  }
  button.addEventListener("click", function () { if (timer) { stop(); } else { play(); } });
  slider.addEventListener("input", function () { stop(); show(Number(slider.value)); });
  show(0);
})();
</script>
</body>
</html>
"""


def _indexed_frames(animation: Animation):
    """Every frame in 256 colours, all on one palette made from the first, middle and last
    frames (median cut, no dithering: flat colours stay flat, and the same animation always
    gives the same bytes). A quarter of the size of full-colour PNGs, and what GIF needs."""
    n = len(animation)
    samples = [animation.image(i) for i in sorted({0, n // 2, n - 1})]
    width, height = samples[0].size
    sheet = PIL.Image.new("RGB", (width, height * len(samples)))
    for j, sample in enumerate(samples):
        sheet.paste(sample, (0, height * j))
    palette = sheet.quantize(256, method=PIL.Image.Quantize.MEDIANCUT, dither=PIL.Image.Dither.NONE)
    # Median cut averages its boxes, so the background would come out near-white. Pillow maps a
    # colour to the entry nearest the centre of its small box of colours: whiten that entry
    # until white maps to white (a few near-whites merge, unseen).
    white = PIL.Image.new("RGB", (1, 1), "white")
    colours = palette.getpalette()
    for _ in range(16):
        index = white.quantize(palette=palette, dither=PIL.Image.Dither.NONE).getpixel((0, 0))
        if colours[3 * index : 3 * index + 3] == [255, 255, 255]:
            break
        colours[3 * index : 3 * index + 3] = [255, 255, 255]
        palette.putpalette(colours)
    for i in range(n):
        yield animation.image(i).quantize(palette=palette, dither=PIL.Image.Dither.NONE)


@strict_booleans
def to_html(animation: Animation, path, *, force: bool = False) -> Path:
    """Write ``animation`` as one self-contained HTML file: every frame a base64 PNG on one
    256-colour palette, and a small inline player (play/pause, slider).

    No external script, style sheet or font: it works offline, from a file or an e-mail
    attachment. The same animation always gives the same bytes. The file is rendered in
    memory and written atomically (:func:`kvmviz._shared._files.write_atomic`).

    Parameters
    ----------
    animation : Animation
    path : str or Path
    force : bool
        Overwrite an existing file; otherwise raise ``FileExistsError``, before any frame is
        rendered.

    Returns
    -------
    Path
    """
    (path,) = check_free([path], force=force)
    frames = []
    for frame in _indexed_frames(animation):
        buffer = io.BytesIO()
        frame.save(buffer, format="PNG", compress_level=6)
        encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
        frames.append(f'"data:image/png;base64,{encoded}"')
    width, height = animation.canvas.get_width_height()
    title = html.escape(f"kvmviz: {animation.name}")
    text = (
        _HTML.replace("@FRAMES@", ",\n".join(frames))
        .replace("@TITLE@", title)
        .replace("@WIDTH@", str(width))
        .replace("@HEIGHT@", str(height))
        .replace("@LAST@", str(len(animation) - 1))
        .replace("@INTERVAL@", str(max(1, round(1000 / animation.fps))))
        .replace("@CAPTION@", f"{len(animation)} frames at {animation.fps:g} per second")
    )
    return write_atomic({path: text.encode("utf-8")}, force=force)[0]


@strict_booleans
def to_gif(animation: Animation, path, *, fps: float = 10, force: bool = False) -> Path:
    """Write ``animation`` as a looping GIF, one GIF frame per animation frame.

    The frames share one 256-colour palette (no dithering: flat colours stay flat, and the
    same animation always gives the same bytes); Pillow's GIF writer stores each frame as its
    difference from the one before. Rendered in memory and written atomically
    (:func:`kvmviz._shared._files.write_atomic`).

    Parameters
    ----------
    animation : Animation
    path : str or Path
    fps : float
        Frames per second (GIF stores delays in 10 ms steps).
    force : bool
        Overwrite an existing file; otherwise raise ``FileExistsError``, before any frame is
        rendered.

    Returns
    -------
    Path
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    (path,) = check_free([path], force=force)
    frames = list(_indexed_frames(animation))
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=frames[1:],
        duration=round(1000 / fps),
        loop=0,
    )
    return write_atomic({path: buffer.getvalue()}, force=force)[0]
