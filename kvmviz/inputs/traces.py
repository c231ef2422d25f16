"""Read real traces: tracefs / ``trace-cmd report`` text and QEMU's memslot log.

A trace recorded on a KVM host (docs/kernel.md §5) says which hva ranges the MMU notifiers reported,
when, from which task, and whether ``mmu_lock`` was contended; QEMU's ``kvm_set_user_memory``
log (docs/kernel.md §6.1) says where the memslots were. With both, every notifier range can be
classified as a hit or a miss with the model's own hit test, summarised per phase of the
experiment, and replayed through the engine as a notification stream:

>>> events = load_ftrace("data/traces/notifier-phases-linux6.18.txt")   # doctest: +SKIP
>>> layout = load_layout_json("data/traces/notifier-phases-linux6.18.layout.json")  # doctest: +SKIP
>>> kv.classify.phase_summary(kv.classify.records(events, layout))       # doctest: +SKIP

The parsers stream: a file is read line by line, never whole, into columns preallocated from
its line count and filled a chunk of records at a time, so the memory used is the frame's plus
a constant (``keep_text=False`` drops the raw payloads, the bulk of the frame;
``benchmarks/traces.py`` measures it). A line that is neither a record nor a known header is an
error naming the file, the line and what was expected, unless ``lenient=True``.

This module is the flat public face of the readers; each idea lives in a file of its own
(docs/architecture.md): ``ftrace.py`` (the trace text parser, with ``ftrace_payloads.py``,
``ftrace_columns.py`` and ``cpu_order.py``), ``tracepoint_callbacks.py`` (which callback a
notifier line stands for), ``qemu_log.py``, ``layout_json.py``, ``trace_streams.py``, and
what they share: ``trace_files.py``, ``trace_errors.py``, ``timestamps.py``.
"""

from __future__ import annotations

# The names "X as X" were public here before the split without being in __all__: still importable.
from .cpu_order import TraceOrderError
from .ftrace import EMPTY_TRACE as EMPTY_TRACE
from .ftrace import RECORD_SHAPE as RECORD_SHAPE
from .ftrace import TRACE_DAT_MAGIC as TRACE_DAT_MAGIC
from .ftrace import load_ftrace
from .layout_json import MAX_LAYOUT_BYTES as MAX_LAYOUT_BYTES
from .layout_json import load_layout_json
from .qemu_log import KVM_MEM_READONLY as KVM_MEM_READONLY
from .qemu_log import LAYOUT_FORMATS as LAYOUT_FORMATS
from .qemu_log import QEMU_LOG as QEMU_LOG
from .qemu_log import QEMU_SHAPE as QEMU_SHAPE
from .qemu_log import load_layout, load_qemu_memslots, memslot_events
from .trace_errors import TraceParseError, TraceParseWarning
from .trace_files import MAX_LINE as MAX_LINE
from .trace_streams import MAX_GAP_US, replay_stream, to_stream
from .tracepoint_callbacks import (
    AGE_HVA_ASSUMED,
    AGE_HVA_TASKS,
    CALLBACK_SOURCES,
    NOTIFIER_EVENTS,
    age_hva_callback,
    age_hva_note,
)
from .tracepoint_callbacks import LATENCY_COMM_WIDTH as LATENCY_COMM_WIDTH

__all__ = [
    "AGE_HVA_ASSUMED",
    "AGE_HVA_TASKS",
    "CALLBACK_SOURCES",
    "MAX_GAP_US",
    "NOTIFIER_EVENTS",
    "TraceOrderError",
    "TraceParseError",
    "TraceParseWarning",
    "age_hva_callback",
    "age_hva_note",
    "load_ftrace",
    "load_layout",
    "load_layout_json",
    "load_qemu_memslots",
    "memslot_events",
    "replay_stream",
    "to_stream",
]
