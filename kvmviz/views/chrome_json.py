"""A trace plan spelled in the Chrome JSON Trace Event Format (``.json``), streamed.

:func:`write_json` writes the opening (the process's and each track's ``M`` metadata), then
the ``X`` slices a chunk at a time (the fault attempts' spelled by the compiled byte assembler
of :mod:`kvmviz.views._encode`, the few side slices by :func:`json.dumps`), the callbacks'
``i`` instants, the ``C`` counter samples and the closing ``otherData``. Timestamps are µs, as
the format says. It has no flows: the format's flow events bind to slices by timestamp only.
"""

from __future__ import annotations

import json

import numpy as np

from . import _encode
from .trace_plan import PID, Plan, callback_args, fault_modes, ns, side_slice
from .trace_rows import (
    COUNTER,
    COUNTER_SAMPLE,
    DUR,
    FAULT,
    FAULT_SLICE,
    HVA,
    N_COLUMNS,
    NAME,
    RECORD,
    RECORD_AS_IS,
    RETRIES,
    RETRY,
    TRACK,
    TS,
    VALUE,
    Events,
    Faults,
    chunks,
    fault_columns,
    side_events,
)


def _dumps(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _json_programs(plan: Plan) -> _encode.Compiled:
    """The assembler's programs, by number: a fault attempt's ``X`` slice, (no slice end),
    a counter sample, a record written as it is."""
    kernel = _dumps(plan.run.kernel)
    slice_ = [
        ("const", b',{"ph":"X","pid":%d,"tid":' % PID),
        ("dec", TRACK),
        ("const", b',"ts":'),
        ("usec", TS),
        ("const", b',"dur":'),
        ("usec", DUR),
        ("const", b',"name":'),
        ("choice", NAME, [_dumps(name) for name in fault_modes(plan)]),
        (
            "const",
            b',"cat":"mmu_lock","args":{"callback":"page_fault","kernel":%s,"fault":' % kernel,
        ),
        ("dec", FAULT),
        ("const", b',"retries before":'),
        ("dec", RETRIES),
        ("const", b',"retry":'),
        ("choice", RETRY, [b"false", b"true"]),
        ("const", b',"hva":"'),
        ("hex", HVA),
        ("const", b'"}}'),
    ]
    counter = [
        ("const", b',{"ph":"C","pid":%d,"ts":' % PID),
        ("usec", TS),
        ("const", b',"name":"mmu_lock","args":{'),
        ("choice", COUNTER, [_dumps(name) for name in plan.counters]),
        ("const", b":"),
        ("dec", VALUE),
        ("const", b"}}"),
    ]
    return _encode.compile_programs([slice_, [], counter, [("record", RECORD)]])


def _fault_columns(plan: Plan, faults: Faults, chunk: Events, cols) -> np.ndarray:
    """Fill the fault attempts' records of ``chunk`` (tid = track from the top, from 1, and
    the slice's duration); returns their positions in it."""
    at = fault_columns(plan, faults, chunk, cols, first_track=1)
    rows, minor = chunk.major[at], chunk.minor[at]
    request = ns(faults.request[rows])
    grant = ns(faults.grant[rows])
    release = ns(faults.release[rows])
    cols[at, DUR] = np.where(minor == 0, grant - request, release - grant)
    return at


def _json_chunk(plan: Plan, faults: Faults, compiled, chunk: Events) -> np.ndarray:
    """The bytes of one chunk's slices: the fault attempts' and the side slices' begins."""
    programs = np.full(chunk.ts.size, RECORD_AS_IS, dtype=np.int64)
    cols = np.zeros((chunk.ts.size, N_COLUMNS), dtype=np.int64)
    programs[_fault_columns(plan, faults, chunk, cols)] = FAULT_SLICE
    records = []
    for i in np.flatnonzero(chunk.cls == 0):
        s = int(chunk.major[i])
        name, args = side_slice(plan, s)
        start, end = int(plan.s_start[s]), int(plan.s_end[s])
        event = {
            "ph": "X",
            "pid": PID,
            "tid": int(plan.s_track[s]) + 1,
            "ts": start / 1000,
            "dur": (end - start) / 1000,
            "name": name,
            "cat": "mmu_lock",
            "args": args,
        }
        cols[i, RECORD] = len(records)
        records.append(b"," + _dumps(event))
    return _encode.assemble(compiled, programs, cols, records)


def write_json(plan: Plan, handle, chunk_rows: int) -> int:
    """Stream ``plan`` as a Chrome JSON trace into the binary file ``handle``.

    Parameters
    ----------
    plan : Plan
    handle : binary file object
    chunk_rows : int
        Fault attempts (and instants, counter samples) encoded per chunk.

    Returns
    -------
    int
        The bytes written.
    """
    written = 0

    def put(data) -> None:
        nonlocal written
        handle.write(data)
        written += len(data)

    head = [{"ph": "M", "pid": PID, "tid": 0, "name": "process_name", "args": {"name": plan.title}}]
    for i, name in enumerate(plan.tracks, start=1):
        head.append(
            {"ph": "M", "pid": PID, "tid": i, "name": "thread_name", "args": {"name": name}}
        )
        head.append(
            {
                "ph": "M",
                "pid": PID,
                "tid": i,
                "name": "thread_sort_index",
                "args": {"sort_index": i},
            }
        )
    put(b'{"traceEvents":[' + b",".join(_dumps(e) for e in head))
    compiled = _json_programs(plan)
    faults = Faults(plan.run)
    for chunk in chunks(plan, side_events(plan, proto=False), proto=False, chunk_rows=chunk_rows):
        put(_json_chunk(plan, faults, compiled, chunk))
    for rows in range(0, plan.arrive.size, chunk_rows):
        events = []
        for row in range(rows, min(rows + chunk_rows, plan.arrive.size)):
            event = {
                "ph": "i",
                "s": "t",
                "pid": PID,
                "tid": int(plan.lane_track[row]) + 1,
                "ts": int(plan.arrive[row]) / 1000,
                "name": f"{plan.notifiers['callback'][row]} arrives",
                "cat": "notifier",
                "args": callback_args(plan, row),
            }
            events.append(b"," + _dumps(event))
        put(b"".join(events))
    for k, (_unit, ts, values) in enumerate(plan.counters.values()):
        for i in range(0, ts.size, chunk_rows):
            t = ts[i : i + chunk_rows]
            cols = np.zeros((t.size, N_COLUMNS), dtype=np.int64)
            cols[:, TS], cols[:, COUNTER], cols[:, VALUE] = t, k, values[i : i + chunk_rows]
            put(_encode.assemble(compiled, np.full(t.size, COUNTER_SAMPLE), cols))
    other = {"kvmviz": plan.title, "time unit": "ts and dur in µs"}
    put(b'],"otherData":' + _dumps(other) + b"}")
    return written
