"""Questions counted in a real trace (chapters 02 and 07): how many notifications of a window
hit a memslot (``trace-count``), how many records of one callback of the ``ksm`` phase hit or
miss (``ksm-hits``), how many callbacks would have locked on v5.13 (``v513-locks``); with the
loader of the trace the repository ships (``data/traces``)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from .._shared._checks import check_seed
from ..inputs.kernels import CALLBACKS, rule
from ..inputs.memslots import MemslotLayout
from ..model.classify import callbacks
from .base import Exercise, Generator, Scene

__all__ = ["ksm_hits", "trace_count", "v513_locks"]

_DATA = Path(__file__).resolve().parent.parent.parent / "data"
_TRACE = _DATA / "traces" / "notifier-phases-linux6.18.txt"
_TRACE_LAYOUT = _DATA / "traces" / "notifier-phases-linux6.18.layout.json"


@functools.lru_cache(maxsize=1)
def _shipped_records() -> pd.DataFrame:
    """Chapters 02 and 07's trace, classified: ``data/traces`` of the kvmviz repository."""
    from ..inputs.traces import load_ftrace, load_layout
    from ..model.classify import records

    if not _TRACE.exists():
        raise FileNotFoundError(
            f"{_TRACE}: trace-count, ksm-hits and v513-locks ask about the trace in "
            "data/traces/ of the kvmviz repository, which this installation lacks; pass "
            "classified= (kvmviz.classify.records of your own trace)"
        )
    return records(load_ftrace(_TRACE), load_layout(_TRACE_LAYOUT))


def _trace_text(shipped: bool) -> str:
    """Which trace a question counts in: the repository's, by its files, or the caller's."""
    if not shipped:
        return "the trace you classified (`classified=`)"
    root = _DATA.parent
    return (
        f"the trace `{_TRACE.relative_to(root)}` (memslots: `{_TRACE_LAYOUT.relative_to(root)}`; "
        "`kv.classify.records(kv.load_ftrace(trace), kv.traces.load_layout(memslots))`)"
    )


_WINDOW = 30  # notifications in one trace-count window


def _mixed_windows(notifier: pd.DataFrame) -> list[tuple[str, int]]:
    """Every window :func:`trace_count` asks about: ``(phase, first row in the phase)``.

    Thirty consecutive notifications of one phase with more than thirty, holding both hits and
    misses: never a whole phase (whose counts chapter 02's tables print), never all hits or all
    misses (a run that a table of one task or one callback could give away).
    """
    windows = []
    for phase, rows in notifier.groupby("phase", observed=True, sort=False):
        hit = rows["hit"].to_numpy(dtype=np.int64)
        if len(hit) <= _WINDOW:
            continue
        sums = np.convolve(hit, np.ones(_WINDOW, dtype=np.int64), mode="valid")
        windows += [(str(phase), int(i)) for i in np.flatnonzero((sums > 0) & (sums < _WINDOW))]
    return windows


@functools.lru_cache(maxsize=1)
def _shipped_layout() -> MemslotLayout:
    """The memslots of chapter 02's trace (``data/traces``)."""
    from ..inputs.traces import load_layout

    _shipped_records()  # says what is missing if the repository's data is not there
    return load_layout(_TRACE_LAYOUT)


def _notifier_records(classified: pd.DataFrame) -> pd.DataFrame:
    if "hit" not in classified.columns:
        raise ValueError(
            "classified: the frame has no hit column; pass kvmviz.classify.records(events, "
            "layout) of kvmviz.load_ftrace(...)"
        )
    return classified[classified["callback"].notna()]


def _ksm_cases(rows: pd.DataFrame) -> list[tuple[str, str | None, bool, int]]:
    """Every question :func:`ksm_hits` asks of a ``ksm`` phase: ``(callback, task or None,
    count the hits?, answer)``.

    One callback's records (every task, or one task's when that is not all of them), their
    hits or their misses; never a count of 0 (a callback that never hits asks nothing), never
    the phase's hits or misses of every callback, nor a count equal to them (chapter 02's and
    chapter 07's phase tables print those).
    """
    phase_hit = rows["hit"].to_numpy(dtype=bool)
    printed = {True: int(phase_hit.sum()), False: int((~phase_hit).sum())}
    cases = []
    for callback in CALLBACKS:
        mine = rows[rows["callback"] == callback]
        if mine.empty:
            continue
        tasks = sorted({str(c) for c in mine["comm"]}) if "comm" in mine.columns else []
        selections: list[tuple[str | None, pd.DataFrame]] = [(None, mine)]
        if len(tasks) > 1:
            selections += [(task, mine[mine["comm"].astype(str) == task]) for task in tasks]
        for task, selected in selections:
            hit = selected["hit"].to_numpy(dtype=bool)
            for count_hits in (True, False):
                answer = int(hit.sum() if count_hits else (~hit).sum())
                if answer and answer != printed[count_hits]:
                    cases.append((callback, task, count_hits, answer))
    return cases


_V513 = "v5.13"


def _v513_plans(classified: pd.DataFrame, layout: MemslotLayout) -> dict:
    """The callbacks a replay on v5.13 runs, for the whole trace (key ``None``) and for each
    phase (its notifications alone): :func:`kvmviz.classify.callbacks` of
    :func:`kvmviz.traces.to_stream`."""
    from ..inputs.traces import to_stream

    plans = {None: callbacks(to_stream(classified), layout, _V513)}
    if "phase" in classified.columns:
        notifier = _notifier_records(classified)
        for phase in pd.unique(notifier["phase"].dropna()):
            rows = notifier[notifier["phase"] == phase]
            if (rows["hva_start"] != rows["hva_end"]).any():  # empty ranges are dropped
                plans[str(phase)] = callbacks(to_stream(rows), layout, _V513)
    return plans


def _classified(classified: pd.DataFrame | None) -> tuple[bool, pd.DataFrame]:
    """Whether the question counts in the shipped trace, and the classified records."""
    shipped = classified is None
    return shipped, _shipped_records() if shipped else classified


class TraceCount(Generator):
    """``trace-count``: the scene is ``shipped`` (the repository's trace, or ``classified=``),
    ``phase`` and ``window``, the notifier records asked about (``window.line`` from ``lo`` to
    ``hi``)."""

    kind, salt = "trace-count", "trace_count"

    def scene(self, seed: int, classified: pd.DataFrame | None = None) -> Scene:
        check_seed(seed)
        shipped, classified = _classified(classified)
        notifier = _notifier_records(classified)
        windows = _mixed_windows(notifier)
        if not windows:
            raise ValueError(
                f"no phase of the trace has {_WINDOW} consecutive notifications with both hits "
                "and misses"
            )
        phase, first = windows[self.case(seed, len(windows))]
        rows = notifier[notifier["phase"] == phase]
        window = rows.iloc[first : first + _WINDOW]
        lo, hi = int(window["line"].iloc[0]), int(window["line"].iloc[-1])
        return Scene(shipped=shipped, phase=phase, window=window, lo=lo, hi=hi)

    def answer(self, scene: Scene) -> int:
        return int(scene.window["hit"].sum())

    def question(self, scene: Scene) -> str:
        return (
            f"In {_trace_text(scene.shipped)}: between lines {scene.lo} and {scene.hi} (both "
            f"included), the host sent {len(scene.window)} notifications. How many of them hit a "
            "memslot? (a number: filter `classified` on its `line` column)"
        )

    def explain(self, scene: Scene, answer: int) -> str:
        return (
            f"{answer} of the {len(scene.window)}: "
            f"`notifier[notifier.line.between({scene.lo}, {scene.hi})].hit.sum()` "
            "(kvmviz.classify.records ran the hit test on every line)."
        )


_TRACE_COUNT = TraceCount()


class KsmHits(Generator):
    """``ksm-hits``: the scene is ``shipped``, ``callback``, ``task`` (``None`` for every
    task), ``count_hits`` (hits, or misses) and ``records``, the ``ksm`` phase's records of
    that callback (and task)."""

    kind, salt = "ksm-hits", "ksm_hits"

    def scene(self, seed: int, classified: pd.DataFrame | None = None) -> Scene:
        check_seed(seed)
        shipped, classified = _classified(classified)
        notifier = _notifier_records(classified)
        phases = [str(p) for p in pd.unique(notifier["phase"].dropna())]
        if "ksm" not in phases:
            raise ValueError(
                "the trace has no notifier record in a phase named ksm (PHASE ksm, "
                f"data/README.md); its phases: {', '.join(phases) or 'none'}"
            )
        rows = notifier[notifier["phase"] == "ksm"]
        cases = _ksm_cases(rows)
        which, task, count_hits, _ = cases[self.case(seed, len(cases))]
        mine = rows[rows["callback"] == which]
        if task is not None:
            mine = mine[mine["comm"].astype(str) == task]
        return Scene(
            shipped=shipped, callback=which, task=task, count_hits=count_hits, records=mine
        )

    def answer(self, scene: Scene) -> int:
        hit = scene.records["hit"].to_numpy(dtype=bool)
        return int(hit.sum() if scene.count_hits else (~hit).sum())

    @staticmethod
    def _asked(scene: Scene) -> tuple[str, str]:
        """What is counted: the records (of the task), and the verb."""
        task = scene.task
        records = f"`{scene.callback}` records" + ("" if task is None else f" of the task `{task}`")
        return records, "hit a memslot" if scene.count_hits else "miss every memslot"

    def question(self, scene: Scene) -> str:
        records, verb = self._asked(scene)
        return (
            f"In the `ksm` phase of {_trace_text(scene.shipped)}, how many {records} {verb}? (a "
            "number: count them "
            "from `classified`, the frame of `kv.classify.records`; the task is its `comm` column)"
        )

    def explain(self, scene: Scene, answer: int) -> str:
        records, verb = self._asked(scene)
        hit = scene.records["hit"].to_numpy(dtype=bool)
        return (
            f"{answer} of the phase's {len(scene.records)} {records} {verb}: "
            f"{int(hit.sum())} overlap a memslot, {int((~hit).sum())} overlap none "
            "(kvmviz.classify.records ran the hit test of __kvm_handle_hva_range on each)."
        )


_KSM_HITS = KsmHits()


class V513Locks(Generator):
    """``v513-locks``: the scene is ``shipped``, ``phase`` (``None`` for the whole trace),
    ``callback`` (``None`` for every callback), ``plan`` (:func:`kvmviz.classify.callbacks` of
    the phase on v5.13) and ``rows``, the callbacks of ``plan`` asked about."""

    kind, salt = "v513-locks", "v513_locks"

    def scene(
        self,
        seed: int,
        classified: pd.DataFrame | None = None,
        layout: MemslotLayout | None = None,
    ) -> Scene:
        check_seed(seed)
        if (classified is None) != (layout is None):
            raise ValueError("pass classified= and layout= together (the memslots of the trace)")
        shipped = classified is None
        if shipped:
            classified, layout = _shipped_records(), _shipped_layout()
        _notifier_records(classified)
        plans = _v513_plans(classified, layout)
        cases = []
        for phase, plan in plans.items():
            for which in [None, *(c for c in CALLBACKS if (plan["callback"] == c).any())]:
                rows = plan if which is None else plan[plan["callback"] == which]
                # Some lock and some do not: a count of all (pairs only) or none (aging misses
                # only) is a yes/no question in disguise, its total printed in the question.
                if (phase, which) != (None, None) and 0 < rows["locked"].sum() < len(rows):
                    cases.append((phase, which))
        if not cases:
            raise ValueError(
                "no phase or callback of the trace has callbacks that lock on v5.13 beside some "
                "that do not"
            )
        phase, which = cases[self.case(seed, len(cases))]
        plan = plans[phase]
        rows = plan if which is None else plan[plan["callback"] == which]
        return Scene(shipped=shipped, phase=phase, callback=which, plan=plan, rows=rows)

    def answer(self, scene: Scene) -> int:
        return int(scene.rows["locked"].sum())

    def question(self, scene: Scene) -> str:
        phase, rows = scene.phase, scene.rows
        what = "callbacks" if scene.callback is None else f"`{scene.callback}` callbacks"
        where = "the notifications" if phase is None else f"the `{phase}` phase's notifications"
        return (
            f"Replayed on **{_V513}**, {where} of {_trace_text(scene.shipped)} run "
            f"{len(scene.plan)} callbacks (each `kvm_unmap_hva_range` is an "
            "`invalidate_range_start` and its "
            f"`invalidate_range_end`). How many of these {len(rows)} {what} would have taken "
            "`mmu_lock`? (a number: count from `classified`, the frame of `kv.classify.records`"
            + ("" if phase is None else ", whose `phase` column names the phase")
            + ")"
        )

    def explain(self, scene: Scene, answer: int) -> str:
        parts = []
        for callback, group in scene.rows.groupby("callback", sort=False):
            hits = int(group["hit"].sum())
            locked = int(group["locked"].sum())
            parts.append(
                f"`{callback}`: {locked} of {len(group)} ({hits} hit; on a miss "
                f"{rule(_V513, callback, False).source})"
            )
        return (
            f"{answer} of the {len(scene.rows)}: on v5.13 every start/end pair locks, hit or miss "
            "(8931a454aea0 left the on_lock path alone), the other callbacks only on a hit "
            f"(kvmviz.classify.callbacks). {'; '.join(parts)}."
        )


_V513_LOCKS = V513Locks()


def trace_count(seed: int = 0, classified: pd.DataFrame | None = None) -> Exercise:
    """How many notifications between two lines of a trace hit a memslot? Answer: an ``int``.

    A window of 30 consecutive notifications inside one phase of the trace that has more than
    30, holding both hits and misses (:func:`_mixed_windows`): never a whole phase, whose
    counts chapter 02's tables print, nor a run of one kind. Seeds ``0 .. n - 1`` ask the ``n``
    windows once each, in a fixed shuffled order (seed ``s`` asks what ``s % n`` asks; 154 on
    chapter 02's trace). The answer is the sum of the ``hit`` column
    :func:`kvmviz.classify.records` computes over the window.

    The exercise's :attr:`~Exercise.scene` holds what :class:`TraceCount` names.

    Parameters
    ----------
    seed : int
    classified : pandas.DataFrame, optional
        :func:`kvmviz.classify.records` of a trace; default chapter 02's trace
        (``data/traces/notifier-phases-linux6.18.txt`` with its layout).
    """
    return _TRACE_COUNT(seed, classified=classified)


def ksm_hits(seed: int = 0, classified: pd.DataFrame | None = None) -> Exercise:
    """In a trace's ``ksm`` phase, how many records of one callback hit (or miss) a memslot?

    Chapter 07's first exercise. Answer: an ``int``. The cases (:func:`_ksm_cases`): one
    callback the phase shows, all its records or one task's, counting hits or misses, never a
    count of 0 and never the phase's totals, which the per-phase tables print. They are few:
    seeds ``0 .. n - 1`` ask each once, in a fixed shuffled order, and seed ``s`` asks what
    ``s % n`` asks (6 on chapter 07's trace). The answer is the ``hit`` column
    :func:`kvmviz.classify.records` computed, the hit test of ``__kvm_handle_hva_range``
    (:meth:`MemslotLayout.hit_mask`).

    The exercise's :attr:`~Exercise.scene` holds what :class:`KsmHits` names.

    Parameters
    ----------
    seed : int
    classified : pandas.DataFrame, optional
        :func:`kvmviz.classify.records` of a trace with a ``PHASE ksm`` mark (the phases of
        ``data/README.md``); default chapter 07's trace
        (``data/traces/notifier-phases-linux6.18.txt`` with its layout).

    Examples
    --------
    >>> q = ksm_hits(seed=1)
    >>> q.check(q.answer)[0]
    True
    """
    return _KSM_HITS(seed, classified=classified)


def v513_locks(
    seed: int = 0,
    classified: pd.DataFrame | None = None,
    layout: MemslotLayout | None = None,
) -> Exercise:
    """On v5.13, how many of a trace's callbacks would have taken ``mmu_lock``? An ``int``.

    Chapter 07's second exercise. The trace's notifications become the engine's stream
    (:func:`kvmviz.traces.to_stream`: a ``kvm_unmap_hva_range`` is a start/end pair); the seed
    draws which callbacks are asked about: those of one phase (all of them, or one callback's),
    or one callback's over the whole trace, where some lock and some do not (a selection of
    start/end pairs only, which all lock, or of aging misses only, which none do, gives its
    answer away with its size). Never every callback of the whole trace: the per-kernel table
    of a replay prints that count (``lock_taken``). The cases are few: seeds ``0 .. n - 1``
    ask each once, in a fixed shuffled order, and seed ``s`` asks what ``s % n`` asks (5 on
    chapter 07's trace). The answer is the ``locked`` column of
    :func:`kvmviz.classify.callbacks` on v5.13: every start/end pair locks, hit or miss
    (8931a454aea0 left the ``on_lock`` path alone), the other callbacks only on a hit. The
    same callbacks a replay on v5.13 runs (:func:`kvmviz.experiments.compare_replay`), without
    simulating.

    The exercise's :attr:`~Exercise.scene` holds what :class:`V513Locks` names.

    Parameters
    ----------
    seed : int
    classified : pandas.DataFrame, optional
        :func:`kvmviz.classify.records` of a trace, with ``layout``; default chapter 07's
        trace (``data/traces/notifier-phases-linux6.18.txt``).
    layout : MemslotLayout, optional
        The memslots the trace was classified with; pass it with ``classified``.

    Examples
    --------
    >>> q = v513_locks(seed=0)
    >>> q.check(q.answer)[0]
    True
    """
    return _V513_LOCKS(seed, classified=classified, layout=layout)
