"""A trace plan spelled as a Perfetto protobuf trace (``.pftrace``), streamed packet by packet.

A ``perfetto_trace_pb2.Trace`` is ``repeated TracePacket packet = 1``, so packets written one
after another are a valid trace. :func:`write_proto` writes the track descriptors (the VM's
process track; under it, in explicit order, a counter track per counter and a track per lane
and vCPU), then a chunk at a time the slices' ``TYPE_SLICE_BEGIN`` / ``TYPE_SLICE_END``
packets, the callbacks' ``TYPE_INSTANT`` arrivals and the counter samples. The fault
attempts' packets are spelled by the compiled byte assembler of :mod:`kvmviz.views._encode`;
the few side packets by the ``perfetto`` package's ``perfetto_trace_pb2``, imported only when
a trace is written. Flows go from a callback's wait to the waits of the faults queued behind
it. Timestamps are ns; every packet stands alone on one trusted sequence (nothing interned).
"""

from __future__ import annotations

import numpy as np

from . import _encode
from ._encode import pb_key, pb_varint
from .trace_plan import PID, Plan, callback_args, fault_modes, side_slice
from .trace_rows import (
    COUNTER_SAMPLE,
    FAULT,
    FAULT_SLICE,
    FLOW,
    HVA,
    N_COLUMNS,
    NAME,
    RECORD,
    RECORD_AS_IS,
    RETRIES,
    RETRY,
    SLICE_END,
    TRACK,
    TS,
    VALUE,
    Events,
    Faults,
    chunks,
    fault_columns,
    side_events,
)

# Ids the packets name (protobuf field numbers are spelled where they are used).
_SEQUENCE = 1  # one writer: every packet on one trusted sequence
_PROCESS_UUID = 1
_COUNTER_UUID = 10  # + counter index
_TRACK_UUID = 100  # + track index
_BEGIN, _END, _INSTANT, _COUNTER_TYPE = 1, 2, 3, 4  # perfetto's TrackEvent.Type


def _annotation(name: str, value) -> bytes:
    """A ``DebugAnnotation`` of a constant, as a ``debug_annotations`` field."""
    if isinstance(value, bool):
        body = pb_key(2, 0) + pb_varint(int(value))
    elif isinstance(value, int):
        body = pb_key(4, 0) + pb_varint(value)
    else:
        body = pb_key(6, 2) + pb_varint(len(value.encode())) + value.encode()
    body += _pb_string(10, name)
    return pb_key(4, 2) + pb_varint(len(body)) + body


def _pb_string(number: int, text: str) -> bytes:
    """A string as protobuf field ``number`` (wire type 2)."""
    data = text.encode()
    return pb_key(number, 2) + pb_varint(len(data)) + data


def _proto_programs(plan: Plan) -> _encode.Compiled:
    """The assembler's programs, by number: a fault attempt's ``TYPE_SLICE_BEGIN`` packet
    (its args, its flow if any), a slice's end, a counter sample, a record written as it is."""

    def packet(event: list) -> list:
        head = pb_key(10, 0) + pb_varint(_SEQUENCE) + pb_key(11, 2)
        fields = [("const", pb_key(8, 0)), ("varint", TS), ("const", head), ("len", event)]
        return [("const", pb_key(1, 2)), ("len", fields)]

    def integer(column: int, name: str) -> list:
        body = [("const", pb_key(4, 0)), ("varint", column), ("const", _pb_string(10, name))]
        return [("const", pb_key(4, 2)), ("len", body)]

    hva = [("const", pb_key(6, 2)), ("len", [("hex", HVA)]), ("const", _pb_string(10, "hva"))]
    slice_ = packet(
        [
            (
                "const",
                _annotation("callback", "page_fault") + _annotation("kernel", plan.run.kernel),
            ),
            *integer(FAULT, "fault"),
            *integer(RETRIES, "retries before"),
            ("choice", RETRY, [_annotation("retry", False), _annotation("retry", True)]),
            ("const", pb_key(4, 2)),
            ("len", hva),
            ("const", pb_key(9, 0) + pb_varint(_BEGIN) + pb_key(11, 0)),
            ("varint", TRACK),
            ("choice", NAME, [_pb_string(23, name) for name in fault_modes(plan)]),
            ("if", FLOW, [("const", pb_key(48, 1)), ("fixed64", FLOW)]),
        ]
    )
    end = packet([("const", pb_key(9, 0) + pb_varint(_END) + pb_key(11, 0)), ("varint", TRACK)])
    counter = packet(
        [
            ("const", pb_key(9, 0) + pb_varint(_COUNTER_TYPE) + pb_key(11, 0)),
            ("varint", TRACK),
            ("const", pb_key(30, 0)),
            ("varint", VALUE),
        ]
    )
    return _encode.compile_programs([slice_, end, counter, [("record", RECORD)]])


def _annotate(event, args: dict) -> None:
    """``args`` as the debug annotations of a ``TrackEvent``."""
    for key, value in args.items():
        note = event.debug_annotations.add()
        note.name = key
        if isinstance(value, bool):
            note.bool_value = value
        elif isinstance(value, int):
            note.int_value = value
        else:
            note.string_value = str(value)


def _framed(packet) -> bytes:
    """A ``TracePacket`` as one ``packet`` field of a ``Trace``."""
    data = packet.SerializeToString()
    return pb_key(1, 2) + pb_varint(len(data)) + data


def _proto_head(plan: Plan, pb) -> bytes:
    """The track descriptors: the process, its counter tracks, then one track per row."""

    def packet():
        p = pb.TracePacket()
        p.trusted_packet_sequence_id = _SEQUENCE
        return p

    first = packet()
    first.sequence_flags = pb.TracePacket.SEQ_INCREMENTAL_STATE_CLEARED
    process = first.track_descriptor
    process.uuid = _PROCESS_UUID
    process.process.pid = PID
    process.process.process_name = plan.title
    process.child_ordering = pb.TrackDescriptor.EXPLICIT
    packets = [first]
    rank = 0
    for k, (name, (unit, _ts, _values)) in enumerate(plan.counters.items()):
        p = packet()
        desc = p.track_descriptor
        desc.uuid, desc.parent_uuid = _COUNTER_UUID + k, _PROCESS_UUID
        desc.name = f"mmu_lock {name}"
        desc.sibling_order_rank = rank
        desc.counter.unit = pb.CounterDescriptor.UNIT_COUNT
        desc.counter.unit_name = unit
        packets.append(p)
        rank += 1
    for i, name in enumerate(plan.tracks):
        p = packet()
        desc = p.track_descriptor
        desc.uuid, desc.parent_uuid, desc.name = _TRACK_UUID + i, _PROCESS_UUID, name
        desc.sibling_order_rank = rank + i
        packets.append(p)
    return b"".join(_framed(p) for p in packets)


def _fault_columns(plan: Plan, faults: Faults, chunk: Events, cols) -> np.ndarray:
    """Fill the fault attempts' records of ``chunk`` (the track's uuid, and the flow a wait
    ends, 0 for none); returns their positions in it."""
    at = fault_columns(plan, faults, chunk, cols, first_track=_TRACK_UUID)
    rows, minor = chunk.major[at], chunk.minor[at]
    waits = minor == 0
    where = np.searchsorted(plan.flow_rows, rows)
    inside = where < plan.flow_rows.size
    has = waits & inside
    has[inside] &= plan.flow_rows[where[inside]] == rows[inside]
    cols[at, FLOW] = np.where(has, where + 1, 0)
    return at


def _proto_chunk(plan: Plan, faults: Faults, compiled, chunk: Events, pb) -> np.ndarray:
    """The bytes of one chunk's packets: the fault attempts' slices, the side slices' ends
    and the counter samples by the assembler, the side slices' begins and the instants by
    ``perfetto_trace_pb2`` (:func:`_side_packet`)."""
    programs = np.full(chunk.ts.size, RECORD_AS_IS, dtype=np.int64)
    cols = np.zeros((chunk.ts.size, N_COLUMNS), dtype=np.int64)
    cols[:, TS] = chunk.ts
    at = _fault_columns(plan, faults, chunk, cols)
    programs[at] = np.where(chunk.minor[at] % 2 == 1, SLICE_END, FAULT_SLICE)
    side_ends = np.flatnonzero((chunk.cls == 0) & chunk.end)
    programs[side_ends] = SLICE_END
    cols[side_ends, TRACK] = _TRACK_UUID + plan.s_track[chunk.major[side_ends]]
    samples = np.flatnonzero(chunk.cls == 3)
    programs[samples] = COUNTER_SAMPLE
    counters = list(plan.counters.values())
    for k in range(len(counters)):
        mine = samples[chunk.major[samples] == k]
        cols[mine, TRACK] = _COUNTER_UUID + k
        cols[mine, VALUE] = counters[k][2][chunk.minor[mine]]
    records = []
    for i in np.flatnonzero(((chunk.cls == 0) & ~chunk.end) | (chunk.cls == 2)):
        cols[i, RECORD] = len(records)
        records.append(_framed(_side_packet(plan, chunk, i, pb)))
    return _encode.assemble(compiled, programs, cols, records)


def _side_packet(plan: Plan, chunk: Events, i: int, pb):
    """The ``TracePacket`` of event ``i`` of ``chunk``: a callback's arrival (an instant) or a
    side slice's begin, with its args and the flows it starts."""
    p = pb.TracePacket()
    p.trusted_packet_sequence_id = _SEQUENCE
    p.timestamp = int(chunk.ts[i])
    event = p.track_event
    if chunk.cls[i] == 2:
        row = int(chunk.major[i])
        event.type = _INSTANT
        event.track_uuid = _TRACK_UUID + int(plan.lane_track[row])
        event.name = f"{plan.notifiers['callback'][row]} arrives"
        _annotate(event, callback_args(plan, row))
    else:
        s = int(chunk.major[i])
        name, args = side_slice(plan, s)
        event.type = _BEGIN
        event.track_uuid = _TRACK_UUID + int(plan.s_track[s])
        event.name = name
        _annotate(event, args)
        if s in plan.flows_out:
            event.flow_ids.extend(plan.flows_out[s])
    return p


def write_proto(plan: Plan, handle, chunk_rows: int) -> int:
    """Stream ``plan`` as a Perfetto protobuf trace into the binary file ``handle``.

    Parameters
    ----------
    plan : Plan
    handle : binary file object
    chunk_rows : int
        Fault attempts (plus callback events and counter samples) encoded per chunk.

    Returns
    -------
    int
        The bytes written.
    """
    from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

    head = _proto_head(plan, pb)
    handle.write(head)
    written = len(head)
    compiled = _proto_programs(plan)
    faults = Faults(plan.run)
    for chunk in chunks(plan, side_events(plan, proto=True), proto=True, chunk_rows=chunk_rows):
        data = _proto_chunk(plan, faults, compiled, chunk, pb)
        handle.write(data)
        written += data.size
    return written
