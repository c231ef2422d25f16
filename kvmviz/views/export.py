"""A Run as a trace kernel people open in their own viewer: Chrome JSON and Perfetto protobuf.

:func:`to_perfetto` writes a :class:`~kvmviz.Run` (simulated or replayed) as a file that
https://ui.perfetto.dev opens, by its suffix:

``.json``
    The Chrome JSON Trace Event Format (also read by Trace Compass and ``chrome://tracing``):
    one process for the VM, one named thread per vCPU and per notifier lane (``M``
    ``thread_name`` events), ``X`` slices, ``i`` instants where a callback arrives, ``C``
    counters. Timestamps are µs, as the format says.
``.pftrace``
    A Perfetto protobuf trace (``perfetto_trace_pb2.Trace``, as the ``perfetto`` package's
    ``TraceProtoBuilder`` writes it): the same tracks, slices and instants, counter tracks
    with units, and *flows* from each callback waiting for ``mmu_lock`` to the faults queued
    behind it (``run.faults["blocked_by"]``: the qrwlock's fairness, which the JSON format
    cannot draw). Timestamps are ns.

What the tracks carry (both formats, one track per row, top to bottom):

- ``notifiers N``: one slice per notifier callback, named after it (``invalidate_range_start``
  ...), from its arrival to its return, with ``waiting for mmu_lock (write)`` and ``holding
  mmu_lock (write)`` nested in it when the kernel's rule made it take the lock
  (:func:`kvmviz.kernels.rule`, whose source line is in the slice's args) and an instant at its
  arrival. Callbacks that overlap in time go to further lanes, so that slices on one track
  always nest. A zap that yielded ``mmu_lock`` (``run.write_holds``, chapter 08) has one
  ``holding mmu_lock (write)`` slice per write hold (``write hold: 3 of 12``, ``flushed``) and
  between two of them a ``yielded mmu_lock (contended: flush, readers in, asks again)`` slice
  whose args count the readers granted in it and the futile ones among them; its flows leave
  the stretch (wait, hold or yield) in which each fault asked for the lock.
- ``invalidations N``: each ``invalidate_range_start`` ... ``invalidate_range_end`` pair, the
  window in which ``mmu_notifier_count`` is raised on the kernels whose start raised it (faults
  on the range retry, :func:`kvmviz.exercises.mmu_notifier_retry_hva`).
- ``vCPU N``: each fault attempt's ``waiting for mmu_lock (read)`` and ``holding mmu_lock
  (read)`` (``write`` without the TDP MMU or under the spinlock policy,
  :meth:`kvmviz.Scenario.faults_write`); ``retry`` in the args says the attempt found an
  invalidation under the lock and faults again.
- Counters: ``mmu_lock queue depth`` (acquisitions waiting for ``mmu_lock``) and ``mmu_lock
  vCPUs stalled`` (vCPUs waiting for it), as :func:`kvmviz.metrics.queue_depth` counts them.

The module reads a Run's tables and nothing else: it never simulates.

How it is written: a stream, a chunk at a time
----------------------------------------------
:func:`write` (which :func:`to_perfetto` and :func:`encode` call) never holds the whole trace.
It walks the run in time, a chunk of about :data:`CHUNK_ROWS` fault attempts at a time (the
fault table is sorted by vCPU then time, so each vCPU keeps a cursor), sorts the chunk's
events as the format wants them, spells them with the column-wise byte assembler of
:mod:`kvmviz.views._encode` (compiled by numba) and writes them out. A protobuf ``Trace`` is
``repeated TracePacket packet = 1``, so packets written one after another are a valid trace;
the JSON is its opening, the events, then its closing. Beyond the Run, memory is the chunk
(:data:`CHUNK_BYTES` at most, whatever the run's length) plus tables that grow with the
callbacks and with the acquisitions that waited (the counters and flows), not with the fault
attempts: :func:`memory` estimates it, :func:`estimate` the file's size, both before any work.

This module holds the public functions; the work is in small modules beside it, one idea each:
``trace_plan.py`` (what the trace holds: tracks, side slices, flows, counters, the window,
:func:`lanes`), ``trace_rows.py`` (the fault attempts streamed a chunk of time at a time, as
sorted events and the assembler's columns), ``chrome_json.py`` (the ``.json`` spelling) and
``perfetto_proto.py`` (the ``.pftrace`` spelling).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from .._shared._checks import check_bool, check_int, check_number
from .._shared._files import check_free, open_atomic
from .chrome_json import write_json
from .perfetto_proto import write_proto
from .trace_plan import PID as PID
from .trace_plan import cut_window, plan_trace
from .trace_plan import lanes as lanes

__all__ = [
    "CHUNK_BYTES",
    "CHUNK_ROWS",
    "FORMATS",
    "TRACE_FORMATS",
    "WAIT_SHARE",
    "chrome_trace",
    "encode",
    "estimate",
    "memory",
    "perfetto_trace",
    "to_perfetto",
    "write",
]

TRACE_FORMATS = (".json", ".pftrace")  # a Perfetto trace's file formats, by suffix
FORMATS = TRACE_FORMATS  # the name before figures and the gallery had formats of their own
"""The suffixes :func:`to_perfetto` writes."""

CHUNK_ROWS = 16_384
"""Fault attempts (plus callback events and counter samples) encoded per chunk."""

CHUNK_BYTES = 48 * 2**20
"""The most memory one chunk takes while it is encoded (its events, their columns, their
bytes), whatever the length of the run: the streaming export's working budget."""

_WRITERS = {".json": write_json, ".pftrace": write_proto}  # by suffix, as TRACE_FORMATS


# --------------------------------------------------------------------------------------------
# The public functions.
# --------------------------------------------------------------------------------------------
def _check_run(run) -> None:
    from ..model.run import Run

    if not isinstance(run, Run):
        raise TypeError(f"run must be a kvmviz.Run, got {type(run).__name__}")


def _format(suffix) -> str:
    if not isinstance(suffix, str) or suffix.lower() not in TRACE_FORMATS:
        raise ValueError(
            f"unknown trace format {suffix!r}; expected one of {', '.join(TRACE_FORMATS)}"
        )
    return suffix.lower()


def write(run, handle, suffix: str, *, window=None) -> int:
    """Stream ``run`` as a trace in the format ``suffix`` into the binary file ``handle``.

    The trace is encoded and written a chunk at a time (see the module's description), so
    memory does not grow with the length of the run beyond the Run itself: :func:`memory`.

    Parameters
    ----------
    run : Run
    handle : binary file object
        Anything with a ``write(bytes)`` method (an open file, :class:`io.BytesIO`, a pipe).
    suffix : {".json", ".pftrace"}
        The format (:data:`TRACE_FORMATS`).
    window : (float, float), optional
        Only the fault attempts and callbacks that overlap ``[start_us, end_us)``, each whole;
        a window that holds none is a ``ValueError`` naming it and the run's span.

    Returns
    -------
    int
        The bytes written.

    Examples
    --------
    >>> with open("v5.12.pftrace", "wb") as handle:  # doctest: +SKIP
    ...     export.write(run, handle, ".pftrace")
    178000000
    """
    _check_run(run)
    suffix = _format(suffix)
    plan = plan_trace(run, window)
    return _WRITERS[suffix](plan, handle, CHUNK_ROWS)


def encode(run, suffix: str, *, window=None) -> bytes:
    """A Run as the bytes of a trace file: ``".json"`` or ``".pftrace"`` (:data:`TRACE_FORMATS`),
    the whole run or the ``window`` of :func:`write`.

    Parameters
    ----------
    run : Run
    suffix : {".json", ".pftrace"}
    window : (float, float), optional

    Returns
    -------
    bytes
        What :func:`write` writes: the whole file in memory (use :func:`write` or
        :func:`to_perfetto` for a long run).
    """
    buffer = io.BytesIO()
    write(run, buffer, suffix, window=window)
    return buffer.getvalue()


def chrome_trace(run, *, window=None) -> dict:
    """A Run in the Chrome JSON Trace Event Format, as a ``dict`` ready for :func:`json.dump`.

    ``traceEvents`` holds, in this order: ``M`` metadata (``process_name``, then
    ``thread_name`` and ``thread_sort_index`` of each track, tid = row from the top, from 1),
    ``X`` slices (``ts`` and ``dur`` in µs, ``args`` as in the module's description; sorted
    by start, then depth), ``i`` instants (thread scope) for the callbacks' arrivals, and
    ``C`` counters (name ``mmu_lock``, one key each: ``queue depth``, ``vCPUs stalled``, which
    Perfetto shows as the tracks ``mmu_lock queue depth`` and ``mmu_lock vCPUs stalled``; a
    sample at each change). ``otherData`` names the run. No flows: the format's flow events
    bind to slices by timestamp only; the ``.pftrace`` carries them.

    Parameters
    ----------
    run : Run
    window : (float, float), optional
        Only the fault attempts and callbacks that overlap ``[start_us, end_us)``, each whole.

    Returns
    -------
    dict
        ``json.loads`` of what :func:`write` writes for ``".json"``.
    """
    return json.loads(encode(run, ".json", window=window))


def perfetto_trace(run, *, window=None) -> bytes:
    """A Run as a serialized Perfetto protobuf trace (``perfetto_trace_pb2.Trace``).

    One process track for the VM; under it, in this order (``child_ordering`` explicit), a
    counter track per counter (``UNIT_COUNT``, ``unit_name`` saying what is counted) and one
    named track per notifier lane, invalidation lane and vCPU. Slices are ``TYPE_SLICE_BEGIN``
    / ``TYPE_SLICE_END`` pairs with the args as debug annotations on the begin; arrivals are
    ``TYPE_INSTANT``. Each flow starts on a callback's ``waiting for mmu_lock (write)`` begin
    (``flow_ids``) and ends on the ``waiting for mmu_lock`` begin of each fault attempt whose
    ``run.faults["blocked_by"]`` is that callback (``terminating_flow_ids``). Timestamps are
    ns of simulated time, from 0; packets are in time order, ends before begins at one
    instant. Nothing is interned: every packet stands alone.

    Parameters
    ----------
    run : Run
    window : (float, float), optional
        As for :func:`chrome_trace`.

    Returns
    -------
    bytes
    """
    return encode(run, ".pftrace", window=window)


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in TRACE_FORMATS:
        raise ValueError(
            f"{path}: cannot tell the trace format from the suffix {path.suffix or '(none)'!r}; "
            f"expected one of {', '.join(TRACE_FORMATS)}"
        )
    return suffix


def to_perfetto(run, path, *, window=None, force: bool = False) -> Path:
    """Write ``run`` as a trace Perfetto opens, in the format of ``path``'s suffix.

    Parameters
    ----------
    run : Run
        A simulated run (:func:`kvmviz.simulate`) or a replayed one
        (:func:`kvmviz.experiments.replay_trace`).
    path : str or Path
        Ending in ``.json`` (Chrome JSON Trace Event Format) or ``.pftrace`` (Perfetto
        protobuf); see the module's description for what each carries.
    window : (float, float), optional
        Export only the fault attempts and callbacks that overlap ``[start_us, end_us)`` of
        simulated time, each whole (say :func:`kvmviz.metrics.busiest_window`); default the
        whole run. A window that holds none of them is refused (``ValueError`` naming the
        window and the run's span). A replayed trace at 64 vCPUs is a million fault attempts,
        some 200 MB (:func:`estimate`).
    force : bool
        Replace an existing file. Without it an existing file is refused (``FileExistsError``)
        before any work. Only ``True`` and ``False`` are booleans (``TypeError`` otherwise).
        The file is streamed to a temporary file beside ``path`` and moved into place when
        complete: a failure or an interrupt leaves nothing behind.

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> run = kv.simulate(kv.Scenario(n_vcpus=8), "v5.12")  # doctest: +SKIP
    >>> kv.to_perfetto(run, "v5.12.pftrace")  # doctest: +SKIP
    PosixPath('v5.12.pftrace')
    """
    _check_run(run)
    force = check_bool(force, "force")
    path = Path(path)
    suffix = _suffix(path)
    cut_window(run, window)  # a bad or empty window is refused before any work
    check_free([path], force=force)
    plan = plan_trace(run, window)
    with open_atomic(path, force=force) as handle:
        _WRITERS[suffix](plan, handle, CHUNK_ROWS)
    return path


# --------------------------------------------------------------------------------------------
# What an export costs, before any work.
# --------------------------------------------------------------------------------------------
# Bytes per record, measured on simulated and replayed runs (see tests/test_export.py): the
# file's opening and closing, a track, a fault attempt (its hold), a fault attempt that waited
# (its wait slice and the ~2 counter samples it moves), a callback (its slice, instant, wait,
# hold and its share of an invalidation window).
_SIZES = {
    ".json": {"head": 400, "track": 160, "attempt": 226, "wait": 382, "callback": 1070},
    ".pftrace": {"head": 200, "track": 28, "attempt": 168, "wait": 204, "callback": 830},
}
WAIT_SHARE = 0.1
"""The share of fault attempts that wait for ``mmu_lock`` :func:`estimate` assumes by default
(the bundled replay: 0.2%; the default 416-vCPU run: 5% on v5.15, 36% on v5.12 at 2 ms)."""


def _share(value) -> float:
    share = check_number(value, "wait_share", minimum=0)
    if share > 1:
        raise ValueError(f"wait_share = {value!r}: expected a share between 0 and 1")
    return share


def estimate(
    n_fault_attempts: int,
    n_callbacks: int,
    suffix: str,
    *,
    n_vcpus: int = 0,
    wait_share: float = WAIT_SHARE,
) -> int:
    """The size of the trace file of a run, in bytes, before the run exists.

    From the counts :func:`kvmviz.engine.estimate` gives (``Work.attempts``,
    ``Work.callbacks``), or a Run's ``len(run.faults)`` and ``len(run.notifiers)``. Within
    ±25% of the file written for runs where up to a fifth of the attempts wait (the default
    ``wait_share``); given the run's own share of waiting attempts, within ±10%.

    Parameters
    ----------
    n_fault_attempts, n_callbacks : int
        Rows of ``run.faults`` and ``run.notifiers``.
    suffix : {".json", ".pftrace"}
    n_vcpus : int, optional
        vCPU tracks (a few dozen bytes each).
    wait_share : float, optional
        Share of the attempts that waited for ``mmu_lock`` (each adds a slice and counter
        samples); 1.0 gives an upper bound.

    Returns
    -------
    int
        Bytes.

    Examples
    --------
    >>> estimate(1_000_000, 2_000, ".pftrace")
    190060312
    """
    size = _SIZES[_format(suffix)]
    attempts = check_int(n_fault_attempts, "n_fault_attempts", minimum=0)
    callbacks = check_int(n_callbacks, "n_callbacks", minimum=0)
    vcpus = check_int(n_vcpus, "n_vcpus", minimum=0)
    share = _share(wait_share)
    total = size["head"] + size["track"] * (vcpus + 4)
    total += attempts * (size["attempt"] + share * size["wait"]) + callbacks * size["callback"]
    return round(total)


def memory(n_fault_attempts: int, n_callbacks: int, *, wait_share: float = 1.0) -> int:
    """The memory :func:`write` needs beyond the Run, in bytes: an upper bound.

    The chunk (:data:`CHUNK_BYTES`, whatever the run's length) plus the tables that grow with
    the callbacks (their slices and events, ~600 B each) and with the attempts that waited
    (counter samples and flows, ~400 B each). A ``window`` adds a copy of the rows it keeps.
    One export at a time: writing several kernels or formats one after the other needs no
    more.

    Parameters
    ----------
    n_fault_attempts, n_callbacks : int
    wait_share : float, optional
        Share of the attempts that wait; the default 1.0 bounds every run.

    Returns
    -------
    int
        Bytes.
    """
    attempts = check_int(n_fault_attempts, "n_fault_attempts", minimum=0)
    callbacks = check_int(n_callbacks, "n_callbacks", minimum=0)
    share = _share(wait_share)
    return int(CHUNK_BYTES + 600 * callbacks + 400 * share * attempts)
