"""A trace's MMU notifications as the engine's event stream, for a replay.

:func:`to_stream` turns the notifier records of :func:`kvmviz.traces.load_ftrace` into the
events of :data:`kvmviz.notifiers.EVENT_KINDS` (the choices a trace that shows only some
callbacks asks for are in its docstring); :func:`replay_stream` cuts its idle gaps, so that a
replay covers at most :data:`MAX_GAP_US` per notification.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._shared._checks import check_number
from .notifiers import stream_from_callbacks
from .tracepoint_callbacks import NOTIFIER_EVENTS, age_hva_counts

__all__ = ["MAX_GAP_US", "replay_stream", "to_stream"]


def _require(frame: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: the frame lacks columns {missing}; {_HINT[what]}")


_HINT = {"to_stream": "pass the frame of load_ftrace() or kvmviz.classify.records()"}


def _stream_events(rows: pd.DataFrame):
    """``(events, (folded, unpaired, empty))``: the events of the notifier records ``rows`` (in
    time order), ``t_us, kind, hva_start, hva_end, cause``, times shifted to start at 0 if
    some is negative; and the counts of change_pte records folded into a pair, change_pte
    records that became moves of their own, and empty ranges dropped (the choices of
    :func:`to_stream`)."""
    callbacks = rows["callback"].astype(str).tolist()
    starts = rows["hva_start"].to_numpy(dtype=np.uint64).tolist()
    ends = rows["hva_end"].to_numpy(dtype=np.uint64).tolist()
    times = rows["t_us"].to_numpy(dtype=float).tolist()
    comms = rows["comm"].astype(str).tolist()
    pids = rows["pid"].to_numpy().tolist()
    # The aging callbacks are event kinds of their own (kvmviz.notifiers.EVENT_KINDS).
    kind_of = {cb: cb for cb in ("clear_flush_young", "clear_young", "test_young")}
    out_t, out_kind, out_s, out_e, out_cause = [], [], [], [], []
    last_pair: dict[int, int] = {}
    folded = unpaired = empty = 0
    for cb, s, e, t, comm, pid in zip(callbacks, starts, ends, times, comms, pids, strict=True):
        if cb == "change_pte":
            j = last_pair.get(pid)
            if j is not None and out_s[j] <= s and e <= out_e[j]:
                out_kind[j] = "move"
                folded += 1
                continue
            unpaired += 1
            kind = "move"
        elif s >= e:
            empty += 1
            continue
        elif cb == "invalidate_range_start":
            kind = "pair"
            last_pair[pid] = len(out_t)
        else:
            kind = kind_of[cb]
        out_t.append(t)
        out_kind.append(kind)
        out_s.append(s)
        out_e.append(e)
        out_cause.append(comm)
    t = np.array(out_t, dtype=float)
    if len(t) and t.min() < 0:
        t = t - t.min()
    events = pd.DataFrame(
        {
            "t_us": t,
            "kind": out_kind,
            "hva_start": np.array(out_s, dtype=np.uint64),
            "hva_end": np.array(out_e, dtype=np.uint64),
            "cause": out_cause,
        }
    )
    return events, (folded, unpaired, empty)


def to_stream(classified: pd.DataFrame) -> pd.DataFrame:
    """The trace's MMU notifications as the engine's event stream.

    Notifier records become events of :data:`kvmviz.notifiers.EVENT_KINDS` (checked and put in
    the generator's form by :func:`kvmviz.notifiers.stream_from_callbacks`), with ``cause`` the
    task that caused them (``comm``) and ``t_us`` the record's time since the first record.
    The choices, since a trace shows only some callbacks:

    * ``kvm_unmap_hva_range`` is an ``invalidate_range_start`` whose end is not traced (there
      is no tracepoint for ``invalidate_range_end``): a ``"pair"`` on its range.
    * ``kvm_set_spte_hva`` (``change_pte``, up to v6.9) always sits inside a start/end bracket
      (6bdb913f0a70): it is folded into the latest ``kvm_unmap_hva_range`` of the same task when
      its page lies within that range, which turns the pair into a ``"move"``. One with no such
      range before it (a truncated trace) becomes a ``"move"`` of its own page; both cases are
      counted in ``attrs["folded_change_pte"]`` and ``attrs["unpaired_change_pte"]``.
    * ``kvm_age_hva`` becomes the kind of its ``callback`` column, which :func:`load_ftrace`
      decided by task (:func:`age_hva_callback`): ``"clear_young"`` for DAMON's ``kdamond.N``,
      ``"clear_flush_young"`` for ``kswapdN`` and, assumed (direct reclaim), for any other
      task; ``attrs["age_hva"]`` counts them by ``callback_source``. ``kvm_test_age_hva`` is
      ``"test_young"`` on one page.
    * Empty ranges (start == end) are dropped (``attrs["empty_dropped"]``): no callback
      reaches a memslot with them.
    * Records are taken in time order (a stable sort on ``t_us``: records of different CPUs
      may interleave out of order in the file, see :func:`load_ftrace`); if some ``t_us`` is
      negative, times are shifted to start at 0.

    Parameters
    ----------
    classified : pandas.DataFrame
        The frame of :func:`load_ftrace` or :func:`kvmviz.classify.records`.

    Returns
    -------
    pandas.DataFrame
        ``event, cause, kind, t_us, hva_start, hva_end``, as :func:`kvmviz.simulate` accepts
        for ``stream=``. ``attrs``: ``folded_change_pte``, ``unpaired_change_pte``,
        ``empty_dropped`` and ``age_hva`` (the ``kvm_age_hva`` records of ``classified``, empty
        ranges included, by ``callback_source``, as in :func:`load_ftrace`).

    Raises
    ------
    ValueError
        If a notifier record has no time in µs: a trace recorded with a raw clock
        (``attrs["clock"] == "raw"``, see :func:`load_ftrace`), naming the file and line.
    """
    _require(classified, ("callback", "hva_start", "hva_end", "t_us", "comm", "pid"), "to_stream")
    notifier = classified["callback"].notna().to_numpy()
    rows = classified.loc[notifier]
    t_all = rows["t_us"].to_numpy(dtype=float)
    if not np.isfinite(t_all).all():
        raise ValueError(_raw_clock_message(classified, rows))
    rows = rows.iloc[np.argsort(t_all, kind="stable")]
    events, (folded, unpaired, empty) = _stream_events(rows)
    stream = stream_from_callbacks(events)
    stream.attrs.update(
        folded_change_pte=folded,
        unpaired_change_pte=unpaired,
        empty_dropped=empty,
        age_hva=age_hva_counts(classified),
    )
    return stream


MAX_GAP_US = 1e6
"""Idle gaps between two notifications longer than this (1 s) are cut to it by
:func:`kvmviz.experiments.replay_trace`."""


def _raw_clock_message(frame: pd.DataFrame, rows: pd.DataFrame) -> str:
    bad = rows.loc[~np.isfinite(rows["t_us"].to_numpy(dtype=float))]
    where = frame.attrs.get("path", "the trace")
    line = f", line {int(bad['line'].iloc[0])}" if "line" in bad.columns else ""
    value = f" {bad['t_s'].iloc[0]:.0f}" if "t_s" in bad.columns else ""
    return (
        f"{where}{line}: expected a timestamp in seconds ('<s>.<fraction>'); got the raw clock "
        f"count{value}: the trace was recorded with a clock that does not count nanoseconds "
        "(trace_clock counter, uptime or x86-tsc), so its records have no time to replay; "
        "record again after `echo global > trace_clock` (trace-cmd record -C global)"
    )


def _nothing_to_replay(events: pd.DataFrame) -> str:
    """Why a trace gives no notification to replay, with the counts of what it holds."""
    where = events.attrs.get("path", "the trace")
    counts = events.attrs.get("line_counts", {})
    lines = f" in {counts['total']} lines" if "total" in counts else ""
    notifiers = int(events["callback"].notna().sum())
    if notifiers:
        return (
            f"{where}: nothing to replay: its {notifiers} MMU-notifier records all have empty "
            "hva ranges (start == end), which reach no memslot"
        )
    seen = events.attrs.get("event_counts")
    if seen is None:
        seen = events["event"].astype(str).value_counts(sort=False).to_dict()
    listed = ", ".join(f"{name} {n}" for name, n in list(seen.items())[:6])
    more = f" and {len(seen) - 6} more events" if len(seen) > 6 else ""
    return (
        f"{where}: nothing to replay: {len(events)} records{lines}"
        + (f" ({listed}{more})" if seen else "")
        + f", none of them an MMU-notifier event ({', '.join(NOTIFIER_EVENTS)})"
    )


def replay_stream(events: pd.DataFrame, *, max_gap_us: float = MAX_GAP_US) -> pd.DataFrame:
    """The notification stream :func:`kvmviz.experiments.replay_trace` runs: :func:`to_stream`, with
    idle time cut.

    A replay simulates every µs of the stream's span for every vCPU, so its memory grows with
    the span: a trace with a 100,000 s pause would need terabytes. Nothing happens on
    ``mmu_lock`` in a long pause but uncontended faults (a notifier's holds last µs to ms and
    the faults it stalled drain soon after), so every gap between two notifications longer
    than ``max_gap_us`` is cut to ``max_gap_us``, and so is the gap from the trace's first
    record to the first notification: the replay then covers at most ``max_gap_us`` per
    notification, whatever the span. (Raw clock counts, ``trace_clock=counter`` or
    ``x86-tsc``, have no µs at all and are refused by :func:`to_stream`.)

    Times are rounded to the nanosecond, the finest a trace prints, and cut in integers, so a
    trace gives the same stream whatever the length of the gaps that were cut.

    Parameters
    ----------
    events : pandas.DataFrame
        The frame of :func:`load_ftrace` or :func:`kvmviz.classify.records`.
    max_gap_us : float
        The longest gap kept, µs (> 0; default :data:`MAX_GAP_US`, 1 s: the sample trace has
        no longer gap, so it replays as recorded).

    Returns
    -------
    pandas.DataFrame
        As :func:`to_stream` (its ``attrs`` too), ``t_us`` cut; ``attrs`` gains ``span_us``
        (of the notifications, from the trace's first record), ``idle_removed_us``,
        ``gaps_shortened`` and ``max_gap_us``.

    Raises
    ------
    ValueError
        ``"nothing to replay"``, naming the file and counting the records and events it holds,
        when the trace has no MMU-notifier record (a header-only trace, or one recorded
        without the ``kvm:`` notifier events) or only empty ranges; from :func:`to_stream`
        for a raw clock.
    """
    max_gap_us = check_number(max_gap_us, "max_gap_us")
    if max_gap_us <= 0:
        raise ValueError(f"max_gap_us = {max_gap_us!r}: expected a number of µs > 0")
    stream = to_stream(events)
    if not len(stream):
        raise ValueError(_nothing_to_replay(events))
    t_ns = np.rint(stream["t_us"].to_numpy(dtype=float) * 1e3).astype(np.int64)
    gaps = np.diff(t_ns, prepend=0)
    cut = np.maximum(gaps - round(max_gap_us * 1e3), 0)
    stream["t_us"] = (t_ns - np.cumsum(cut)) / 1e3
    stream.attrs.update(
        span_us=float(t_ns[-1]) / 1e3,
        idle_removed_us=float(cut.sum()) / 1e3,
        gaps_shortened=int(np.count_nonzero(cut)),
        max_gap_us=max_gap_us,
    )
    return stream
