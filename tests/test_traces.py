"""kvmviz.traces on the real samples of data/ (a Linux 6.18 tracefs capture, a QEMU 7.2 memslot
log) and on synthetic lines for the formats the samples do not contain.

The counts that check the parser are made here independently, with plain string operations on
the file, never with the parser's own patterns.
"""

from __future__ import annotations

import bz2
import collections
import gzip
import lzma
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _traces import DATA, LAYOUT, LINES, PHASES, TRACE, VMM_PID, shifted
from _traces import TIMESTAMP as _TS
from _traces import one_line as _one_line
from _traces import refused as _refused
from _traces import replay_cli as _cli
from _traces import write_trace as _write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kvmviz as kv
from kvmviz import classify, experiments
from kvmviz import traces as kt
from kvmviz.inputs import ftrace, tracepoint_callbacks
from kvmviz.presets import q35_512m_layout

ROOT = Path(__file__).resolve().parent.parent
QEMU = DATA / "qemu" / "q35-512m-paused.txt"
SHARED = Path("/work/shared/data")


def file_lines(path: Path) -> list[str]:
    """Lines split on "\\n" only, as the parsers count them."""
    data = path.read_bytes().decode("utf-8")
    lines = data.split("\n")
    return lines[:-1] if data.endswith("\n") else lines


def write(tmp_path: Path, text: str, name: str = "trace.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- data/: copies of the shared samples ----------------------------------------------------------
@pytest.mark.parametrize(
    "rel",
    [
        "traces/notifier-phases-linux6.18.txt",
        "traces/notifier-phases-linux6.18.layout.json",
        "traces/event-formats-linux6.18.txt",
        "qemu/q35-512m-paused.txt",
    ],
)
def test_data_files_are_unchanged_copies(rel):
    """Each sample in data/ is a byte-for-byte copy of the shared original (skipped where that is
    not mounted)."""
    assert (DATA / rel).is_file()
    if not (SHARED / rel).is_file():
        pytest.skip("the shared originals are not mounted here")
    assert (DATA / rel).read_bytes() == (SHARED / rel).read_bytes()


def test_data_readme_describes_provenance_and_recording():
    """data/README.md names the kernel, the QEMU version and the commands that recorded the
    samples."""
    text = (DATA / "README.md").read_text(encoding="utf-8")
    for needle in (
        "Linux 6.18",
        "QEMU 7.2",
        "trace-cmd record -e kvm:kvm_unmap_hva_range",
        "-d trace:kvm_set_user_memory",
    ):
        assert needle in text


# -- the real trace ------------------------------------------------------------------------------
def test_real_trace_parses_with_no_skipped_line(events):
    """The real tracefs capture parses strictly: no skipped line, no lost event, over 1000
    records."""
    assert events.attrs["skipped"] == []
    assert events.attrs["skipped_count"] == 0
    assert events.attrs["format"] == "tracefs"
    assert events.attrs["lost_events"] == 0
    assert len(events) > 1000


def test_every_line_of_the_real_trace_is_accounted_for(events):
    """The 1541 lines are records, 17 comments and stack frames, counted by the parser and again by
    plain string tests."""
    lines = file_lines(TRACE)
    counts = events.attrs["line_counts"]
    assert counts["total"] == len(lines) == 1541
    parts = ("records", "comments", "blank", "headers", "stack_frames", "lost", "skipped")
    assert sum(counts[k] for k in parts) == len(lines)
    # Independently: '#' lines, ' => ' frame lines, and the rest are records.
    comments = sum(line.startswith("#") for line in lines)
    frames = sum(line.startswith(" => ") for line in lines)
    assert counts["comments"] == comments == 17
    assert counts["stack_frames"] == frames
    assert counts["records"] == len(events) == len(lines) - comments - frames
    assert counts["blank"] == counts["headers"] == counts["lost"] == 0


def _grep_event(line: str) -> str:
    """The event of a record line, by splitting: '<task> [cpu] flags ts: event: text'."""
    after_cpu = line.split("] ", 1)[1]
    after_ts = after_cpu.split(": ", 1)[1]
    if after_ts.startswith("<stack trace>"):
        return "<stack trace>"
    return after_ts.split(":", 1)[0]


def test_event_counts_match_an_independent_count(events):
    """The per-event counts (814 unmaps, 167 age, 108 test-age, ...) equal a count made by splitting
    the lines."""
    lines = file_lines(TRACE)
    expected = collections.Counter(
        _grep_event(line)
        for line in lines
        if not line.startswith("#") and not line.startswith(" => ")
    )
    assert events.attrs["event_counts"] == dict(expected)
    assert events["event"].value_counts().to_dict() == dict(expected)
    # And a plain substring count of the main events.
    text = TRACE.read_text(encoding="utf-8")
    for event, n in {
        "kvm_unmap_hva_range": 814,
        "kvm_age_hva": 167,
        "kvm_test_age_hva": 108,
        "contention_begin": 19,
        "contention_end": 80,
        "tracing_mark_write": 15,
    }.items():
        assert text.count(f": {event}: ") == n == expected[event]


def test_line_numbers_point_at_the_records(events):
    """Every record's line number points at a file line holding its comm, pid, cpu, timestamp and
    text."""
    lines = file_lines(TRACE)
    for row in events.itertuples():
        line = lines[row.line - 1]
        assert f"{row.comm}-{row.pid} " in line
        assert f"[{row.cpu:03d}]" in line
        assert f" {row.t_s:.6f}: " in line
        if row.event != "<stack trace>":
            assert line.endswith(f"{row.event}: {row.text}")


def test_record_fields(events):
    """The fields of the first records, the hva ranges and callbacks of notifiers, the lock fields
    of contention events, by value."""
    first = events.iloc[0]
    assert tuple(first[["line", "comm", "pid", "cpu", "flags"]]) == (
        18,
        "python3",
        VMM_PID,
        1,
        "...1.",
    )
    assert first.t_s == pytest.approx(1341.111466)
    assert first.t_us == 0.0
    assert (first.event, first.mark, first.phase) == ("tracing_mark_write", "PHASE idle", "idle")
    unmap = events.iloc[1]
    assert unmap.event == "kvm_unmap_hva_range"
    assert (unmap.hva_start, unmap.hva_end) == (0x7FAFEA200000, 0x7FAFEAA00000)
    assert unmap.callback == "invalidate_range_start"
    assert unmap.t_us == pytest.approx(1341.111794e6 - 1341.111466e6, abs=1e-3)
    assert events["hva_start"].dtype == "UInt64" and events["hva_end"].dtype == "UInt64"
    # Every notifier record has its range; nothing else has one.
    notifier = events["event"].isin(list(kt.NOTIFIER_EVENTS)).to_numpy()
    assert events["callback"].notna().to_numpy().tolist() == notifier.tolist()
    assert events["hva_start"].notna().to_numpy().tolist() == notifier.tolist()
    assert (events.loc[notifier, "hva_start"] <= events.loc[notifier, "hva_end"]).all()
    mapping = events.loc[notifier].groupby("event", observed=True)["callback"].unique()
    # Every kvm_age_hva of this trace is kdamond's (DAMON), which ages with clear_young only:
    # the parser reads the callback from the task (it once reported all as clear_flush_young).
    assert {e: list(c) for e, c in mapping.items()} == {
        "kvm_unmap_hva_range": ["invalidate_range_start"],
        "kvm_age_hva": ["clear_young"],
        "kvm_test_age_hva": ["test_young"],
    }
    test_age = events[events["event"] == "kvm_test_age_hva"]
    assert ((test_age["hva_end"] - test_age["hva_start"]) == 4096).all()
    # Locks: the pointers are hashed and printed without 0x on this host.
    begin = events[events["event"] == "contention_begin"]
    assert set(begin["lock_flags"]) == {"SPIN|WRITE"}
    assert set(begin["lock"]) == {"ffff88817d705000"}
    end = events[events["event"] == "contention_end"]
    assert (end["ret"] == 0).all() and end["lock_flags"].isna().all()
    assert events.loc[~events["event"].str.startswith("contention"), "lock"].isna().all()
    # Other events are kept with their text.
    get_page = events[events["event"] == "kvm_mmu_get_page"].iloc[0]
    assert get_page.text == "sp gen 0 gfn 0 l4 8-byte q0 wux nxe ad root 0 sync new"


def test_stack_traces_carry_their_frames(events):
    """The 19 stack traces carry their frames and each follows the contention_begin of its task."""
    stacks = events[events["event"] == "<stack trace>"]
    assert len(stacks) == 19
    frames = stacks["text"].str.split("\n")
    assert frames.map(len).sum() == events.attrs["line_counts"]["stack_frames"]
    assert (frames.str[0] == "=> trace_event_raw_event_contention_begin").all()
    assert (frames.str[1] == "=> queued_write_lock_slowpath").all()
    # Each follows the contention_begin it belongs to, on the same task.
    before = events.index.get_indexer(stacks.index) - 1
    assert (events["event"].iloc[before].to_numpy() == "contention_begin").all()
    assert (events["pid"].iloc[before].to_numpy() == stacks["pid"].to_numpy()).all()


def test_phases_follow_the_marks(events):
    """Each record's phase is the last 'PHASE <name>' mark before it, checked line by line; other
    marks start no phase."""
    assert list(events["phase"].cat.categories) == PHASES
    assert events["phase"].notna().all()  # the first record is the first mark
    marks = events[events["mark"].notna()]
    assert len(marks) == 15
    lines = file_lines(TRACE)
    current = None
    for row in events.itertuples():  # forward fill, checked line by line
        line = lines[row.line - 1]
        if "tracing_mark_write: PHASE " in line:
            current = line.split("tracing_mark_write: PHASE ", 1)[1]
        assert row.phase == current
    # Non-PHASE marks are kept as marks and do not start a phase.
    assert "mprotect unpopulated-unrelated 0x7fafeb4b6000-0x7fafeb4c6000" in set(marks["mark"])


# -- the layout of the real trace (its classification: tests/test_classify.py) ----------------
def test_layout_json(layout):
    """The layout JSON of the trace gives its two memslots: slot 0 (512 pages) and slot 1 (2048
    pages)."""
    assert [(s.slot, s.base_gfn, s.npages, s.userspace_addr) for s in layout] == [
        (0, 0, 0x200, 0x7FAFEB200000),
        (1, 0x10000, 0x800, 0x7FAFEAA00000),
    ]


# -- the engine's stream ---------------------------------------------------------------------------
def test_to_stream_of_the_real_trace(classified, layout):
    """to_stream turns the trace into 814 pairs, 167 clear_young and 108 test_young events that the
    engine replays with the same hits."""
    stream = kt.to_stream(classified)
    assert list(stream.columns) == ["event", "cause", "kind", "t_us", "hva_start", "hva_end"]
    # kdamond's 167 kvm_age_hva are clear_young events (they were clear_flush_young when the
    # parser could not tell the two apart); the engine knows the kind (EVENT_KINDS).
    assert stream["kind"].value_counts().to_dict() == {
        "pair": 814,
        "clear_young": 167,
        "test_young": 108,
    }
    assert set(stream["kind"]) <= set(kv.notifiers.EVENT_KINDS)
    assert stream.attrs["age_hva"] == {
        "task:kdamond": 167,
        "task:kswapd": 0,
        "assumed: reclaim (unknown task)": 0,
    }
    assert set(stream["cause"]) == {"python3", "kdamond.0", "ksmd"}
    assert stream["t_us"].is_monotonic_increasing
    assert stream.attrs["folded_change_pte"] == stream.attrs["unpaired_change_pte"] == 0
    notifier = classified[classified["callback"].notna()]
    assert stream["hva_start"].tolist() == notifier["hva_start"].tolist()
    # The engine runs it, and its own hit test agrees with classify().
    scenario = kv.Scenario(layout=layout, n_vcpus=2, duration_us=float(stream["t_us"].max()) + 1)
    run = kv.simulate(scenario, kernel="v5.15", stream=stream)
    by_event = run.notifiers.groupby("event")["hit"].first()
    assert by_event.tolist() == notifier["hit"].astype(bool).tolist()
    locked = run.notifiers.groupby("event")["locked"].any()
    assert locked.tolist() == by_event.tolist()  # v5.15: only hits take mmu_lock


def test_to_stream_folds_change_pte_into_moves(tmp_path):
    """A kvm_set_spte_hva on the page a task just unmapped folds that pair into one move event;
    one on another page is a move of its own page."""
    path = write(
        tmp_path,
        " ksmd-37 [000] 1.000000: kvm_unmap_hva_range: mmu notifier unmap range: "
        "0x007f0000000000 -- 0x007f0000001000\n"
        " qemu-9 [001] 1.000001: kvm_age_hva: mmu notifier age hva: 0x007f0000100000 -- "
        "0x007f0000101000\n"
        " ksmd-37 [000] 1.000002: kvm_set_spte_hva: mmu notifier set pte hva: 0x007f0000000000\n"
        " ksmd-37 [000] 1.000003: kvm_unmap_hva_range: mmu notifier unmap range: "
        "0x007f0000200000 -- 0x007f0000201000\n"
        " ksmd-37 [000] 1.000004: kvm_set_spte_hva: mmu notifier set pte hva: 0x007f0000300000\n"
        " qemu-9 [001] 1.000005: kvm_test_age_hva: mmu notifier test age hva: 0x007f0000100000\n",
    )
    stream = kt.to_stream(kt.load_ftrace(path))
    assert stream["kind"].tolist() == ["move", "clear_flush_young", "pair", "move", "test_young"]
    assert stream.attrs["folded_change_pte"] == 1
    assert stream.attrs["unpaired_change_pte"] == 1
    assert stream.loc[3, "hva_start"] == 0x7F0000300000
    assert stream.loc[3, "hva_end"] == 0x7F0000301000
    assert stream["cause"].tolist() == ["ksmd", "qemu", "ksmd", "ksmd", "qemu"]
    assert stream["t_us"].tolist() == pytest.approx([0, 1, 3, 4, 5])


# -- kvm_age_hva: clear_young or clear_flush_young, told by the task ------------------------------
def _task(line: str) -> str:
    """The comm of a record line, by splitting: the text before ' [cpu]', minus '-<pid>'."""
    return line.split(" [", 1)[0].strip().rsplit("-", 1)[0]


def test_kdamond_age_hva_lines_of_the_real_trace_are_clear_young(events):
    """All 167 kvm_age_hva lines are kdamond.0's: DAMON ages with clear_young, never flushing."""
    lines = file_lines(TRACE)
    age = [line for line in lines if ": kvm_age_hva: " in line and not line.startswith("#")]
    tasks = collections.Counter(_task(line) for line in age)
    assert tasks == {"kdamond.0": 167}  # independently of the parser: string splitting
    rows = events[events["event"] == "kvm_age_hva"]
    kdamond = rows[rows["comm"].astype(str).str.startswith("kdamond")]
    assert len(kdamond) == len(rows) == 167
    assert (kdamond["callback"] == "clear_young").sum() == 167
    assert not (kdamond["callback"] == "clear_flush_young").any()
    assert (kdamond["callback_source"] == "task:kdamond").all()
    assert (events["callback"] == "clear_flush_young").sum() == 0
    assert events.attrs["age_hva"] == {
        "task:kdamond": 167,
        "task:kswapd": 0,
        "assumed: reclaim (unknown task)": 0,
    }
    # kvm_test_age_hva is test_young whoever fires it, decided by its tracepoint.
    test_age = events[events["event"] == "kvm_test_age_hva"]
    assert len(test_age) == 108 and (test_age["comm"] == "kdamond.0").all()
    assert (test_age["callback"] == "test_young").all()
    assert (test_age["callback_source"] == "tracepoint").all()
    # Every other notifier record has one callback: "tracepoint"; nothing else has a source.
    notifier = events["callback"].notna()
    assert events["callback_source"].notna().tolist() == notifier.tolist()
    sources = events.loc[notifier, "callback_source"].value_counts().to_dict()
    assert sources == {
        "tracepoint": 814 + 108,
        "task:kdamond": 167,
        "task:kswapd": 0,
        "assumed: reclaim (unknown task)": 0,
    }


AGING = (
    "# tracer: nop\n"
    "#\n"
    "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n"
    "#              | |         |   |||||     |         |\n"
    "         kswapd0-85      [001] ...1.  2000.000001: kvm_age_hva: "
    "mmu notifier age hva: 0x007fafec40d000 -- 0x007fafec40e000\n"
    "         python3-1234    [000] ...1.  2000.000002: kvm_age_hva: "
    "mmu notifier age hva: 0x007fafebca8000 -- 0x007fafebca9000\n"
    "       kdamond.0-77      [000] ...1.  2000.000003: kvm_age_hva: "
    "mmu notifier age hva: 0x007fafebcaa000 -- 0x007fafebcab000\n"
    "      khugepaged-60      [001] ...1.  2000.000004: kvm_age_hva: "
    "mmu notifier age hva: 0x007fafebcab000 -- 0x007fafebcac000\n"
    "           <...>-99      [001] ...1.  2000.000005: kvm_age_hva: "
    "mmu notifier age hva: 0x007fafebcac000 -- 0x007fafebcad000\n"
    "         kswapd0-85      [001] ...1.  2000.000006: kvm_test_age_hva: "
    "mmu notifier test age hva: 0x007fafebcad000\n"
    "         python3-1234    [000] ...1.  2000.000007: kvm_test_age_hva: "
    "mmu notifier test age hva: 0x007fafebcae000\n"
)


def test_age_hva_of_kswapd_and_other_tasks_is_clear_flush_young(tmp_path):
    """kswapd reclaims (clear_flush_young); another task is assumed to be in direct reclaim."""
    df = kt.load_ftrace(write(tmp_path, AGING))
    got = list(zip(df["comm"], df["event"], df["callback"], df["callback_source"], strict=True))
    assert got == [
        ("kswapd0", "kvm_age_hva", "clear_flush_young", "task:kswapd"),
        ("python3", "kvm_age_hva", "clear_flush_young", "assumed: reclaim (unknown task)"),
        ("kdamond.0", "kvm_age_hva", "clear_young", "task:kdamond"),
        ("khugepaged", "kvm_age_hva", "clear_flush_young", "assumed: reclaim (unknown task)"),
        ("<...>", "kvm_age_hva", "clear_flush_young", "assumed: reclaim (unknown task)"),
        ("kswapd0", "kvm_test_age_hva", "test_young", "tracepoint"),
        ("python3", "kvm_test_age_hva", "test_young", "tracepoint"),
    ]
    assert df["pid"].tolist() == [85, 1234, 77, 60, 99, 85, 1234]
    assert df.attrs["age_hva"] == {
        "task:kdamond": 1,
        "task:kswapd": 1,
        "assumed: reclaim (unknown task)": 3,
    }
    stream = kt.to_stream(df)
    assert stream["kind"].tolist() == [
        "clear_flush_young",
        "clear_flush_young",
        "clear_young",
        "clear_flush_young",
        "clear_flush_young",
        "test_young",
        "test_young",
    ]
    assert stream["cause"].tolist() == df["comm"].astype(str).tolist()
    assert stream.attrs["age_hva"] == df.attrs["age_hva"]
    layout = kv.MemslotLayout(
        [kv.Memslot(slot=0, base_gfn=0, npages=0x800, userspace_addr=0x7FAFEAA00000)]
    )
    summary = classify.phase_summary(classify.records(df, layout))
    assert summary.loc[
        classify.NO_PHASE, ["clear_flush_young", "clear_young", "test_young"]
    ].tolist() == [
        4,
        1,
        2,
    ]


@pytest.mark.parametrize(
    ("comm", "callback", "source"),
    [
        ("kdamond.0", "clear_young", "task:kdamond"),
        ("kdamond.12", "clear_young", "task:kdamond"),
        ("kswapd0", "clear_flush_young", "task:kswapd"),
        ("kswapd3", "clear_flush_young", "task:kswapd"),
        # Names the kernel does not give its threads: not trusted, so assumed.
        ("kdamond", "clear_flush_young", "assumed: reclaim (unknown task)"),
        ("kdamond.0x", "clear_flush_young", "assumed: reclaim (unknown task)"),
        ("my-kswapd0", "clear_flush_young", "assumed: reclaim (unknown task)"),
        ("khugepaged", "clear_flush_young", "assumed: reclaim (unknown task)"),
        ("CPU 0/KVM", "clear_flush_young", "assumed: reclaim (unknown task)"),
        ("<...>", "clear_flush_young", "assumed: reclaim (unknown task)"),
    ],
)
def test_age_hva_callback_table(comm, callback, source):
    """age_hva_callback tells clear_young (kdamond.N) from clear_flush_young (kswapdN, or assumed
    for any other name)."""
    assert kt.age_hva_callback(comm) == (callback, source)
    assert source in kt.CALLBACK_SOURCES
    assert callback in kv.notifiers.EVENT_KINDS  # a kind the model replays


def test_age_hva_note_counts_match_the_table(events, tmp_path):
    """The sentence says the counts of the frame's callback_source column, for each source."""
    for frame in (events, kt.load_ftrace(write(tmp_path, AGING))):
        rows = frame[frame["event"] == "kvm_age_hva"]
        by_source = rows["callback_source"].astype(str).value_counts()
        by_callback = rows.groupby("callback_source", observed=True)["callback"].unique()
        note = kt.age_hva_note(frame.attrs["age_hva"])
        m = re.fullmatch(
            r"kvm_age_hva: (\d+) lines from kdamond read as clear_young \(DAMON never "
            r"flushes\), (\d+) from kswapd as clear_flush_young \(reclaim\), (\d+) from "
            r"other tasks assumed clear_flush_young \(reclaim\)",
            note,
        )
        assert m is not None, note
        said = dict(zip(kt.CALLBACK_SOURCES[1:], map(int, m.groups()), strict=True))
        assert said == {k: int(by_source.get(k, 0)) for k in said}
        assert sum(said.values()) == len(rows)
        for source, callbacks in by_callback.items():
            assert list(callbacks) == [kt.AGE_HVA_TASKS.get(source, (None, "clear_flush_young"))[1]]
    assert kt.age_hva_note(events.attrs["age_hva"]) == (
        "kvm_age_hva: 167 lines from kdamond read as clear_young (DAMON never flushes), 0 from "
        "kswapd as clear_flush_young (reclaim), 0 from other tasks assumed clear_flush_young "
        "(reclaim)"
    )


def test_age_hva_counts_of_a_frame_without_callback_source(events):
    """A frame without the column (made by hand) is counted from event and comm, same rule."""
    counts = tracepoint_callbacks.age_hva_counts
    assert counts(events.drop(columns="callback_source")) == events.attrs["age_hva"]
    assert counts(events[["comm"]]) == dict.fromkeys(kt.CALLBACK_SOURCES[1:], 0)


# -- QEMU memslot log ------------------------------------------------------------------------------
def test_qemu_log_replays_to_the_final_layout():
    """The QEMU -trace log replays to the q35 512 MiB preset's layout, slot 0 shrunk to 0xC0000
    bytes."""
    layout = kt.load_qemu_memslots(QEMU)
    assert layout == q35_512m_layout()
    slot0 = next(s for s in layout if s.slot == 0)
    assert (slot0.base_gfn, slot0.size_bytes, slot0.userspace_addr) == (0, 0xC0000, 0x7F6FFBE00000)


def test_qemu_log_at_gives_intermediate_layouts():
    """at=k replays the first k kvm_set_user_memory lines (SMRAM alias added then deleted); a bad at
    is refused."""
    assert len(kt.load_qemu_memslots(QEMU, at=0)) == 0
    first = kt.load_qemu_memslots(QEMU, at=1)
    assert [(s.slot, s.base_gfn, s.size_bytes, s.userspace_addr) for s in first] == [
        (0, 0, 512 << 20, 0x7F6FFBE00000)
    ]
    assert {s.slot for s in kt.load_qemu_memslots(QEMU, at=3)} == {0, 1, 2}
    assert {s.slot for s in kt.load_qemu_memslots(QEMU, at=4)} == {0, 1}  # SMRAM alias deleted
    assert {s.slot for s in kt.load_qemu_memslots(QEMU, at=5)} == {1}  # slot 0 deleted...
    five = kt.load_qemu_memslots(QEMU, at=6)  # ... and re-added, smaller
    assert next(s for s in five if s.slot == 0).size_bytes == 0xC0000
    assert kt.load_qemu_memslots(QEMU, at=9) == kt.load_qemu_memslots(QEMU)
    with pytest.raises(ValueError, match="only 9 kvm_set_user_memory lines"):
        kt.load_qemu_memslots(QEMU, at=10)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="at must be"):
            kt.load_qemu_memslots(QEMU, at=bad)


def test_memslot_events_of_the_real_log():
    """memslot_events lists the 9 ioctls (3 adds, 2 deletes, 4 adds), and replaying any prefix
    agrees with at=."""
    ev = kt.memslot_events(QEMU)
    lines = file_lines(QEMU)
    expected = [i + 1 for i, line in enumerate(lines) if line.startswith("kvm_set_user_memory ")]
    assert ev["line"].tolist() == expected
    assert ev["action"].tolist() == ["add"] * 3 + ["delete"] * 2 + ["add"] * 4
    assert ev["slot"].tolist() == [0, 1, 2, 2, 0, 0, 2, 3, 4]
    assert (ev["as_id"] == 0).all() and ev["applied"].all() and ev.attrs["failed"] == 0
    assert (ev["format"] == "slot").all()
    assert ev["ua"].dtype == np.uint64 and ev.loc[0, "ua"] == 0x7F6FFBE00000
    assert ev.loc[0, "size"] == 0x20000000 and ev.loc[1, "flags"] == 2
    assert ev["guest_memfd"].isna().all() and ev["t_s"].isna().all()
    # Replaying a prefix of the events agrees with at=.
    for at in range(len(ev) + 1):
        layout = kt.load_qemu_memslots(QEMU, at=at)
        alive = {}
        for row in ev.iloc[:at].itertuples():
            if row.action == "delete":
                alive.pop((row.as_id, row.slot))
            else:
                alive[(row.as_id, row.slot)] = (row.gpa >> 12, row.size >> 12, row.ua)
        assert {(s.as_id, s.slot): (s.base_gfn, s.npages, s.userspace_addr) for s in layout} == (
            alive
        )


QEMU_SYNTHETIC = (
    "# a -trace log of a newer QEMU, with the log backend's <tid>@<seconds>: prefixes\n"
    "qemu-system-x86_64: -trace kvm_set_user_memory: some unrelated message\n"
    "4242@1700000000.000001:kvm_set_user_memory"
    " AddrSpace#0 Slot#0 flags=0x0 gpa=0x0 size=0x80000000"
    " ua=0x7f0000000000 ret=0\n"
    "4242@1700000000.000002:kvm_set_user_memory"
    " AddrSpace#1 Slot#0 flags=0x0 gpa=0x0 size=0x80000000"
    " ua=0x7f0000000000 ret=0\n"
    "4242@1700000000.000003:kvm_set_user_memory"
    " AddrSpace#0 Slot#1 flags=0x2 gpa=0x40000000 size=0x1000"
    " ua=0x7f1000000000 ret=-17\n"
    "4242@1700000000.000004:kvm_set_user_memory"
    " AddrSpace#0 Slot#2 flags=0x4 gpa=0x100000000 size=0x200000"
    " ua=0x7f2000000000 guest_memfd=12 guest_memfd_offset=0x200000 ret=0\n"
    "2024-05-01T10:00:00.123456Z kvm_set_user_memory"
    " AddrSpace#0 Slot#0 flags=0x0 gpa=0x0 size=0x0"
    " ua=0x7f0000000000 ret=0\n"
    "kvm_set_user_memory Slot#65539 flags=0x1 gpa=0x80000000 size=0x1000"
    " ua=0x7f3000000000 ret=0\n"
)


def test_qemu_other_formats(tmp_path):
    """Newer QEMU lines (AddrSpace#, guest_memfd, timestamps, as_id in the slot's high bits, failed
    ioctls) are read by value."""
    path = write(tmp_path, QEMU_SYNTHETIC, "qemu.log")
    ev = kt.memslot_events(path)
    assert ev["format"].tolist() == [
        "addrspace",
        "addrspace",
        "addrspace",
        "guest_memfd",
        "addrspace",
        "slot",
    ]
    assert ev["as_id"].tolist() == [0, 1, 0, 0, 0, 1]
    assert ev["slot"].tolist() == [0, 0, 1, 2, 0, 3]  # Slot#65539: as_id 1, slot 3
    assert ev["ret"].tolist() == [0, 0, -17, 0, 0, 0]
    assert ev["applied"].tolist() == [True, True, False, True, True, True]
    assert ev.attrs["failed"] == 1
    assert ev.loc[3, "guest_memfd"] == 12 and ev.loc[3, "guest_memfd_offset"] == 0x200000
    assert ev.loc[0, "t_s"] == pytest.approx(1700000000.000001)
    layout = kt.load_qemu_memslots(path)
    got = {(s.as_id, s.slot): (s.base_gfn, s.npages, s.userspace_addr, s.flags) for s in layout}
    assert got == {
        (1, 0): (0, 0x80000, 0x7F0000000000, 0),
        (0, 2): (0x100000, 0x200, 0x7F2000000000, 4),
        (1, 3): (0x80000, 1, 0x7F3000000000, 1),
    }
    # The failed ioctl (ret=-17) registered nothing, but counts for at=.
    assert {(s.as_id, s.slot) for s in kt.load_qemu_memslots(path, at=3)} == {(0, 0), (1, 0)}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("kvm_set_user_memory Slot#0 flags=0x0 gpa=0x0 size=0x1000 ret=0", "ua=0x<hva>"),
        ("kvm_set_user_memory Slot#0 flags=0x0 gpa=0xzz size=0x1000 ua=0x0 ret=0", "gpa=0x<gpa>"),
        ("kvm_set_user_memory", "Slot#<n>"),
        (
            "kvm_set_user_memory Slot#0 flags=0x0 gpa=0x0 size=0x1000 ua=0x1" + "0" * 16 + " ret=0",
            "64-bit",
        ),
    ],
)
def test_qemu_malformed_lines(tmp_path, line, expected):
    """A malformed kvm_set_user_memory line is refused naming file, line and what was expected;
    lenient skips it."""
    path = write(tmp_path, "# log\n" + line + "\n", "qemu.log")
    with pytest.raises(kt.TraceParseError) as err:
        kt.memslot_events(path)
    assert err.value.line == 2 and err.value.path == str(path)
    assert str(path) in str(err.value) and "line 2" in str(err.value) and expected in str(err.value)
    # Lenient: nothing but that line is no log at all; beside a good line, it is skipped.
    with pytest.raises(ValueError) as err:
        kt.memslot_events(path, lenient=True)
    assert str(err.value).startswith(
        f"{path}: all 1 kvm_set_user_memory lines are malformed (first: line 2, expected "
    )
    good = "kvm_set_user_memory Slot#0 flags=0x0 gpa=0x0 size=0x1000 ua=0x7f0000000000 ret=0"
    path = write(tmp_path, f"# log\n{line}\n{good}\n", "qemu2.log")
    with pytest.warns(kt.TraceParseWarning, match="skipped 1 malformed"):
        ev = kt.memslot_events(path, lenient=True)
    assert ev["line"].tolist() == [3] and ev.attrs["skipped_count"] == 1


def test_qemu_impossible_registrations(tmp_path):
    """A registration the kernel would refuse (overlapping gfns) is an error naming the line;
    lenient keeps slot 0 only."""
    path = write(
        tmp_path,
        "kvm_set_user_memory Slot#0 flags=0x0 gpa=0x0 size=0x2000 ua=0x7f0000000000 ret=0\n"
        "kvm_set_user_memory Slot#1 flags=0x0 gpa=0x1000 size=0x1000 ua=0x7f1000000000 ret=0\n"
        "kvm_set_user_memory Slot#5 flags=0x0 gpa=0x0 size=0x0 ua=0x7f1000000000 ret=0\n"
        "kvm_set_user_memory Slot#6 flags=0x0 gpa=0x800 size=0x1000 ua=0x7f1000000000 ret=0\n",
        "qemu.log",
    )
    with pytest.raises(
        kt.TraceParseError, match=r"line 2: expected slot 1 .*not to overlap slot 0"
    ):
        kt.load_qemu_memslots(path)
    with pytest.warns(kt.TraceParseWarning, match="skipped 3"):
        layout = kt.load_qemu_memslots(path, lenient=True)
    assert [s.slot for s in layout] == [0]


def test_layout_json_variants_and_errors(tmp_path, layout):
    """Layout JSON takes ints or hex strings, bare lists or {memslots: ...}, and refuses bad entries
    naming file and line."""
    ints = write(
        tmp_path,
        f'[{{"slot": 0, "guest_phys_addr": 0, "memory_size": {0x200000}, '
        f'"userspace_addr": {0x7FAFEB200000}}}, {{"slot": 1, "as_id": 0, "flags": 0, '
        f'"guest_phys_addr": {0x10000000}, "memory_size": "0x800000", '
        '"userspace_addr": "0x7fafeaa00000"}]',
        "ints.json",
    )
    assert kt.load_layout_json(ints) == layout
    for body, line, match in [
        ('{"memslots": [\n  {"slot": 0}\n]}', 2, "memslot #0 lacks 'guest_phys_addr'"),
        (
            '{"memslots": [{"slot": 0, "guest_phys_addr": "zz", "memory_size": 1}]}',
            1,
            "memslot #0: expected guest_phys_addr as an int or a hex string, got 'zz'",
        ),
        ('\n{"slots": []}', 2, "expected a 'memslots' list, found keys ['slots']"),
        ('{"page_size": 2097152, "memslots": []}', 1, "expected page_size 4096, got 2097152"),
        ('{"memslots": []}', 1, "expected at least one memslot, got an empty list"),
        ("not json", 1, "expected a JSON layout; not JSON: Expecting value (column 1)"),
        ('{"memslots": [\n', 2, "expected a JSON layout; not JSON: Expecting value"),
        (
            '[\n{"slot": 0, "guest_phys_addr": 0, "memory_size": 4096, "userspace_addr": 0},\n'
            '{"slot": 1, "guest_phys_addr": 4096, "memory_size": 100, "userspace_addr": 0}]',
            3,
            "memslot #1: guest_phys_addr 0x1000 and memory_size 0x64 must be multiples of 4096",
        ),
    ]:
        path = write(tmp_path, body, "bad.json")
        with pytest.raises(ValueError) as err:
            kt.load_layout_json(path)
        assert str(err.value).startswith(f"{path}, line {line}: {match}")


# -- synthetic ftrace formats -------------------------------------------------------------------
TRACE_CMD = (
    "version = 6\n"
    "CPU 0 is empty\n"
    "cpus=4\n"
    "  qemu-system-x86-4021  [001]  8123.456789: kvm_unmap_hva_range:"
    "  mmu notifier unmap range: 0x007f2c40000000 -- 0x007f2c40200000\n"
    "     CPU 12/KVM-4090    [012]  8123.456801: contention_begin:"
    "     0xffff9a3c81234000 (flags=SPIN|READ)\n"
    "     CPU 12/KVM-4090    [012]  8123.456950: contention_end:"
    "       0xffff9a3c81234000 (ret=0)\n"
    "      CPU 3/KVM-4081    [003]  8123.457010: kvm_page_fault:"
    "       vcpu 3 rip 0xffffffff81a0b2c4 address 0x00000001234a5000 error_code 0x182\n"
    "           <...>-77     [000]  8123.457011: kvm_age_hva:"
    "          mmu notifier age hva: 0x007f2c40001000 -- 0x007f2c40002000\n"
    "            bash-1234   [002]  8123.500000: print:"
    "                tracing_mark_write: PHASE warm up\n"
    "       kdamond.0-77     [000]  8123.600000: kvm_test_age_hva:"
    "     mmu notifier test age hva: 0x007f2c40003000\n"
    "            ksmd-37     [003]  8123.700000: kernel_stack:         <stack trace >\n"
    " => queued_write_lock_slowpath (ffffffff8112a0c6)\n"
    " => kvm_mmu_notifier_invalidate_range_start (ffffffff8112a0c7)\n"
)


def test_trace_cmd_report_without_latency_column(tmp_path):
    """trace-cmd report output without the latency column: every field of the 8 records, by
    value."""
    df = kt.load_ftrace(write(tmp_path, TRACE_CMD))
    assert df.attrs["format"] == "trace-cmd"
    assert df.attrs["line_counts"] == {
        "records": 8,
        "comments": 0,
        "blank": 0,
        "headers": 3,
        "stack_frames": 2,
        "lost": 0,
        "skipped": 0,
        "total": 13,
    }
    assert df["comm"].tolist() == [
        "qemu-system-x86",
        "CPU 12/KVM",
        "CPU 12/KVM",
        "CPU 3/KVM",
        "<...>",
        "bash",
        "kdamond.0",
        "ksmd",
    ]
    assert df["pid"].tolist() == [4021, 4090, 4090, 4081, 77, 1234, 77, 37]
    assert df["cpu"].tolist() == [1, 12, 12, 3, 0, 2, 0, 3]
    assert (df["flags"] == "").all()
    assert df.loc[0, "text"] == "mmu notifier unmap range: 0x007f2c40000000 -- 0x007f2c40200000"
    assert (df.loc[0, "hva_start"], df.loc[0, "hva_end"]) == (0x7F2C40000000, 0x7F2C40200000)
    assert (df.loc[1, "lock"], df.loc[1, "lock_flags"]) == ("0xffff9a3c81234000", "SPIN|READ")
    assert df.loc[2, "ret"] == 0
    fault = df.loc[3]
    assert (fault.vcpu, fault.rip, fault.address, fault.error_code) == (
        3,
        0xFFFFFFFF81A0B2C4,
        0x1234A5000,
        0x182,
    )
    assert df.loc[4, "callback"] == "clear_flush_young"
    assert (df.loc[5, "mark"], df.loc[5, "phase"]) == ("PHASE warm up", "warm up")
    assert df["phase"].isna().tolist() == [True] * 5 + [False] * 3
    assert (df.loc[6, "hva_start"], df.loc[6, "hva_end"]) == (0x7F2C40003000, 0x7F2C40004000)
    assert df.loc[7, "event"] == "kernel_stack"
    assert df.loc[7, "text"].split("\n") == [
        "=> queued_write_lock_slowpath (ffffffff8112a0c6)",
        "=> kvm_mmu_notifier_invalidate_range_start (ffffffff8112a0c7)",
    ]
    assert df["t_us"].tolist() == pytest.approx(
        [0, 12, 161, 221, 222, 43211, 143211, 243211], abs=1e-3
    )


def test_trace_cmd_report_with_latency_column_and_nanoseconds(tmp_path):
    """trace-cmd report with a latency column and nanosecond timestamps: flags, times and ret by
    value."""
    df = kt.load_ftrace(
        write(
            tmp_path,
            "cpus=2\n"
            "  CPU 0/KVM-19526 [001] d..1 8123.456801123: contention_begin: "
            "0xffff (flags=SPIN|WRITE)\n"
            "  CPU 0/KVM-19526 [001] d..1. 8123.456802123: contention_end: 0xffff (ret=-4)\n",
        )
    )
    assert df["comm"].tolist() == ["CPU 0/KVM"] * 2
    assert df["flags"].tolist() == ["d..1", "d..1."]
    assert df["t_s"].tolist() == pytest.approx([8123.456801123, 8123.456802123], abs=1e-9)
    assert df["t_us"].tolist() == pytest.approx([0.0, 1.0], abs=1e-5)
    assert df["ret"].tolist() == [pd.NA, -4]


def test_tracefs_variants(tmp_path):
    """tracefs variants (4 flag columns, tgid column, lost events, user stack traces, function
    records, CRLF) are read by value."""
    text = (
        "# tracer: nop\n"
        "#\n"
        "\n"
        # 4 flag columns (older kernels), old kvm_page_fault format
        "     CPU 0/KVM-19526 [003] .... 100.000001: kvm_page_fault: "
        "address 7fe00000 error_code 6\n"
        # a (tgid) column (options/record-tgid), a comm with dashes and digits
        "  kworker/u8:2-1-5 (    5) [000] d.h1. 100.000002: kvm_age_hva: mmu notifier age hva: "
        "0x1000 -- 0x3000\n"
        "CPU:1 [LOST 7 EVENTS]\n"
        "  sh-9 [000] ..... 100.000003: <stack trace>\n"
        " => a\n"
        " => b\n"
        "  sh-9 [000] ..... 100.000004: <user stack trace>\n"
        " => <00007f0000001234>\n"
        "  sh-9 [000] ..... 100.000005: do_syscall_64 <-entry_SYSCALL_64_after_hwframe\n"
        "  sh-9 [000] ..... 100.000006: tracing_mark_write: \r\n"
        "  sh-9 [000] ..... 100.000007: kvm_set_spte_hva: mmu notifier set pte hva: 0x7f00\r\n"
    )
    df = kt.load_ftrace(write(tmp_path, text))
    assert df["event"].tolist() == [
        "kvm_page_fault",
        "kvm_age_hva",
        "<stack trace>",
        "<user stack trace>",
        "function",
        "tracing_mark_write",
        "kvm_set_spte_hva",
    ]
    assert df.loc[0, "flags"] == "...."
    assert (df.loc[0, "address"], df.loc[0, "error_code"]) == (0x7FE00000, 6)
    assert df.loc[0, "vcpu"] is pd.NA and df.loc[0, "rip"] is pd.NA
    assert (df.loc[1, "comm"], df.loc[1, "pid"]) == ("kworker/u8:2-1", 5)
    assert df.loc[2, "text"] == "=> a\n=> b"
    assert df.loc[3, "text"] == "=> <00007f0000001234>"
    assert df.loc[4, "text"] == "do_syscall_64 <-entry_SYSCALL_64_after_hwframe"
    assert df.loc[5, "mark"] == ""
    assert (df.loc[6, "hva_start"], df.loc[6, "hva_end"]) == (0x7F00, 0x7F00 + 4096)
    assert df.attrs["lost_events"] == 7
    counts = df.attrs["line_counts"]
    assert (counts["comments"], counts["blank"], counts["lost"], counts["stack_frames"]) == (
        2,
        1,
        1,
        3,
    )
    assert counts["total"] == 14


def test_comment_only_files_give_an_empty_frame(tmp_path):
    """A header without records is a trace of nothing: 0 rows, every column, no clock."""
    df = kt.load_ftrace(write(tmp_path, "# tracer: nop\n#\n"))
    assert len(df) == 0
    assert "hva_start" in df.columns and "phase" in df.columns
    assert df.attrs["event_counts"] == {}
    assert df.attrs["clock"] is None and df.attrs["reordered"] == 0
    assert classify.records(df, q35_512m_layout())["hit"].dtype == "boolean"
    assert len(kt.to_stream(df)) == 0


@pytest.mark.parametrize("text", ["", "\n  \n\n"])
@pytest.mark.parametrize("lenient", [False, True])
def test_an_empty_file_is_not_a_trace(tmp_path, text, lenient):
    """Neither tracefs nor trace-cmd writes an empty file: refused, naming it, even lenient."""
    path = write(tmp_path, text)
    with pytest.raises(kt.TraceParseError) as err:
        kt.load_ftrace(path, lenient=lenient)
    lines = max(text.count("\n"), 1)
    assert str(err.value) == (
        f"{path}, line {lines}: expected {kt.EMPTY_TRACE}; got an empty file "
        f"({len(text)} bytes{', all blank' if text else ''})"
    )


# -- errors -------------------------------------------------------------------------------------
GOOD = "  a-1 [000] ..... 1.000000: kvm_test_age_hva: mmu notifier test age hva: 0x1000\n"


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("this is not a trace line", "a trace record '<comm>-<pid> [<cpu>]"),
        ("  a-1 [000] ..... 1.0 kvm_test_age_hva: x", "a trace record"),
        (
            "  a-1 [000] ..... 1.000001: kvm_unmap_hva_range: mmu notifier unmap range: 0x2000",
            "a kvm_unmap_hva_range payload 'mmu notifier unmap range: 0x<start> -- 0x<end>'",
        ),
        (
            "  a-1 [000] ..... 1.000001: kvm_unmap_hva_range: mmu notifier unmap range: "
            "0x2000 -- 0x1000",
            "with start <= end",
        ),
        (
            "  a-1 [000] ..... 1.000001: kvm_age_hva: mmu notifier age hva: 0xg000 -- 0x1000",
            "a kvm_age_hva payload",
        ),
        (
            "  a-1 [000] ..... 1.000001: kvm_test_age_hva: mmu notifier test age hva: 0x1"
            + "0" * 16,
            "64-bit",
        ),
        ("  a-1 [000] ..... 1.000001: kvm_page_fault: vcpu 1 address 0x1", "error_code"),
        ("  a-1 [000] ..... 1.000001: contention_begin: ffff (flags=SPIN", "(flags=<FLAG|FLAG>)"),
        ("  a-1 [000] ..... 1.000001: contention_end: ffff (ret=x)", "(ret=<int>)"),
        (" => orphan_frame", "a stack frame (' => ...') after a stack trace"),
        ("  a-99999999999 [000] ..... 1.0: x: y", "a trace record"),
        ("  a-1 [9999999999] ..... 1.0: x: y", "pid and cpu < 2**31"),
    ],
)
def test_malformed_lines_name_file_line_and_expectation(tmp_path, bad, expected):
    """A malformed line is refused naming file, line 3 and the expected form; lenient skips it and
    keeps the reason."""
    path = write(tmp_path, "# header\n" + GOOD + bad + "\n" + GOOD)
    with pytest.raises(kt.TraceParseError) as err:
        kt.load_ftrace(path)
    message = str(err.value)
    assert isinstance(err.value, ValueError)
    assert message.startswith(f"{path}, line 3: expected ")
    assert expected in message
    assert repr(bad[:120] + ("…" if len(bad) > 120 else "")) in message
    assert (err.value.path, err.value.line) == (str(path), 3)
    with pytest.warns(kt.TraceParseWarning) as caught:
        df = kt.load_ftrace(path, lenient=True)
    assert len(caught) == 1 and "skipped 1 malformed trace line " in str(caught[0].message)
    assert len(df) == 2 and df["line"].tolist() == [2, 4]
    assert df.attrs["skipped_count"] == 1
    ((line, reason),) = df.attrs["skipped"]
    assert line == 3 and expected in reason


def test_long_lines_are_truncated_in_messages(tmp_path):
    """A 500-character bad line is quoted in the error cut to 120 characters and an ellipsis."""
    bad = "x" * 500
    with pytest.raises(kt.TraceParseError) as err:
        kt.load_ftrace(write(tmp_path, bad + "\n"))
    assert err.value.text == "x" * 120 + "…"
    assert "x" * 121 not in str(err.value)


def test_undecodable_bytes_are_a_malformed_line(tmp_path):
    """Bytes that are not UTF-8 make a malformed line; a byte-order mark and non-ASCII UTF-8 are
    fine."""
    path = tmp_path / "binary.txt"
    path.write_bytes(GOOD.encode() + b"  a-1 [000] 1.0: ev: \xff\xfe bytes\n" + GOOD.encode())
    with pytest.raises(kt.TraceParseError, match=r"line 2: expected UTF-8 text \(byte 0xff") as e:
        kt.load_ftrace(path)
    assert "ev: \ufffd\ufffd bytes" in str(e.value)
    with pytest.warns(kt.TraceParseWarning):
        df = kt.load_ftrace(path, lenient=True)
    assert df["line"].tolist() == [1, 3]
    # A byte-order mark is not part of the first line.
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf# tracer: nop\n" + GOOD.encode())
    assert kt.load_ftrace(bom).attrs["line_counts"]["comments"] == 1
    # Valid UTF-8 beyond ASCII is fine (comms are arbitrary bytes in the kernel).
    ok = write(tmp_path, "  wörker-3 [000] 1.0: tracing_mark_write: PHASE é\n", "utf8.txt")
    assert kt.load_ftrace(ok)["phase"].tolist() == ["é"]


def test_lenient_keeps_at_most_100_reasons_and_the_total(tmp_path):
    """150 bad lines: one warning, the total 150, and the first 100 reasons kept."""
    path = write(tmp_path, GOOD + "garbage\n" * 150 + GOOD)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = kt.load_ftrace(path, lenient=True)
    relevant = [w for w in caught if issubclass(w.category, kt.TraceParseWarning)]
    assert len(relevant) == 1
    assert "skipped 150 malformed trace lines (first: line 2" in str(relevant[0].message)
    assert df.attrs["skipped_count"] == 150 == df.attrs["line_counts"]["skipped"]
    assert len(df.attrs["skipped"]) == 100
    assert [line for line, _ in df.attrs["skipped"]] == list(range(2, 102))
    assert len(df) == 2


# -- streaming: chunks, progress, memory ----------------------------------------------------------
def test_small_chunks_give_the_same_frame(events, monkeypatch):
    """Reading in chunks of 7 lines gives the same frame and attrs, with progress growing to the
    file size."""
    monkeypatch.setattr(ftrace, "_CHUNK", 7)  # stack traces and phases straddle chunk boundaries
    monkeypatch.setattr(ftrace, "_PROGRESS_EVERY", 5)
    seen = []
    chunked = kt.load_ftrace(TRACE, progress=lambda done, total: seen.append((done, total)))
    pd.testing.assert_frame_equal(chunked, events)
    assert chunked.attrs == events.attrs
    size = TRACE.stat().st_size
    assert len(seen) > 100
    assert all(total == size for _, total in seen)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert seen[-1] == (size, size)


def test_columns_grow_when_the_line_count_is_too_low(events, monkeypatch):
    """A line count that is too low (a growing file) still gives the same frame."""
    monkeypatch.setattr(ftrace, "_count_lines", lambda path: 1)  # e.g. a file still being written
    monkeypatch.setattr(ftrace, "_CHUNK", 100)
    pd.testing.assert_frame_equal(kt.load_ftrace(TRACE), events)


def test_count_lines(tmp_path):
    """_count_lines counts lines as the parser does, a last line without newline included."""
    for text, n in [("", 0), ("a", 1), ("a\n", 1), ("a\nb", 2), ("\n\n", 2)]:
        assert ftrace._count_lines(write(tmp_path, text)) == n
    assert ftrace._count_lines(TRACE) == len(file_lines(TRACE))
    last = write(tmp_path, GOOD + GOOD.rstrip("\n"))  # no newline at the end
    assert kt.load_ftrace(last)["line"].tolist() == [1, 2]


def test_progress_true_prints_to_stderr(capsys):
    """progress=True prints the file's percentage to stderr; a progress that is not a bool or
    callable is refused."""
    kt.load_ftrace(TRACE, progress=True)
    err = capsys.readouterr().err
    assert "notifier-phases-linux6.18.txt: 100.0%" in err and err.endswith("\n")
    with pytest.raises(TypeError, match="progress must be"):
        kt.load_ftrace(TRACE, progress="yes")


def test_keep_text_false_drops_only_the_text(events):
    """keep_text=False drops the text column only: the frame's memory less exactly that column,
    the largest one (about half of the frame)."""
    lean = kt.load_ftrace(TRACE, keep_text=False)
    assert "text" not in lean.columns
    pd.testing.assert_frame_equal(lean, events.drop(columns="text"))
    full = events.memory_usage(deep=True)
    assert lean.memory_usage(deep=True).sum() == full.sum() - full["text"]
    assert full.drop("Index").idxmax() == "text"
    assert full["text"] > 0.45 * full.sum()


def test_compact_dtypes(events):
    """String columns are categoricals, pid int32 and line int64."""
    for column in (
        "comm",
        "event",
        "flags",
        "callback",
        "callback_source",
        "lock",
        "lock_flags",
        "mark",
        "phase",
    ):
        assert isinstance(events[column].dtype, pd.CategoricalDtype), column
    assert events["pid"].dtype == np.int32 and events["line"].dtype == np.int64


def test_benchmark_quick_smoke():
    """benchmarks/traces.py --quick runs and prints a positive wall time and rate for each row."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "traces.py"), "--quick"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = re.findall(
        r"^\s+\d+\.\d+\s+([\d,]+)\s+(yes|no)\s+([\d.]+)\s+([\d,]+)", proc.stdout, re.M
    )
    assert {r[1] for r in rows} == {"yes", "no"}, proc.stdout
    for lines, _, wall, rate in rows:
        assert int(lines.replace(",", "")) > 40_000 and float(wall) > 0
        assert int(rate.replace(",", "")) > 0


# -- bad traces and layouts, as `kvmviz replay` meets them ------------------------------------
# Every case is the real trace (or layout) with a few lines edited, as a user's would be: each
# class refused in one sentence (by the parser and by the command), or read honestly.
# Every case is the real trace (or layout) with a few lines edited, as a user's would be.


def _ts(line: str) -> str:
    return _TS.search(line).group(0)


def test_replay_takes_layout_from_json_or_qemu_log():
    """load_layout reads the JSON layout and the QEMU log alike."""
    assert len(kt.load_layout(LAYOUT)) == 2
    qemu = Path(__file__).resolve().parents[1] / "data" / "qemu" / "q35-512m-paused.txt"
    assert kt.load_layout(qemu) == kv.presets.q35_512m_layout()


def test_reversed_timestamps_name_file_both_lines_and_both_times(tmp_path, capsys):
    """Two records of CPU 1 with times swapped: strict refuses at the second, lenient sorts."""
    lines = list(LINES)
    a, b = lines[18], lines[19]  # file lines 19 and 20: kvm_unmap_hva_range on CPU 1
    lines[18] = a.replace(_ts(a), _ts(b))
    lines[19] = b.replace(_ts(b), _ts(a))
    path = _write(tmp_path, lines)
    with pytest.raises(kt.TraceOrderError) as err:
        kt.load_ftrace(path)
    assert (err.value.path, err.value.line, err.value.previous_line, err.value.cpu) == (
        str(path),
        20,
        19,
        1,
    )
    assert (err.value.t_s, err.value.previous_t_s) == (1341.111794, 1341.111879)
    assert str(err.value).startswith(
        f"{path}, line 20: expected a timestamp >= 1341.111879 (that of line 19, the previous "
        "record of CPU 1: a CPU's records never go back in time); got 1341.111794, 8.5e-05 "
        "earlier, in "
    )
    with pytest.warns(kt.TraceParseWarning) as caught:
        sorted_events = kt.load_ftrace(path, lenient=True)
    assert len(caught) == 1
    assert str(caught[0].message) == (
        f"{path}: sorted 1 record whose timestamp went back in time on its CPU into time "
        "order (first: line 20, timestamp 1341.111794, earlier than 1341.111879 on line 19, "
        "CPU 1); see .attrs['reordered']"
    )
    assert sorted_events.attrs["reordered"] == 1
    assert sorted_events["line"].iloc[1:3].tolist() == [20, 19]  # sorted into time order
    assert sorted_events["t_s"].is_monotonic_increasing
    message = _refused(capsys, path)
    assert message == _one_line(err.value)
    code, out, err_text = _cli(capsys, path, LAYOUT, "--lenient")
    assert code == 0 and "sorted 1 record" in err_text
    assert "v5.15" in out


def test_cpus_may_interleave_out_of_time_order(tmp_path):
    """Records of two CPUs out of time order, each CPU in order: accepted, replayed by time."""
    lines = list(LINES)
    # File lines 23 (CPU 1, 1341.111890) and 24 (CPU 0, 1341.112157): CPU 0's first.
    assert "[001]" in lines[22] and "[000]" in lines[23]
    lines[22], lines[23] = lines[23], lines[22]
    events = kt.load_ftrace(_write(tmp_path, lines))
    assert events.attrs["reordered"] == 0  # file order kept: it is how the readers merge
    assert events["line"].is_monotonic_increasing
    layout = kt.load_layout(LAYOUT)
    swapped = kt.to_stream(classify.records(events, layout))
    original = kt.to_stream(classify.records(kv.load_ftrace(TRACE), layout))
    pd.testing.assert_frame_equal(swapped, original)


def test_an_empty_trace_is_refused_naming_it(tmp_path, capsys):
    """A 0-byte trace (a failed recording) is one line naming the file, not a table of zeros."""
    empty = _write(tmp_path, [], "empty.txt")
    empty.write_text("")
    message = _refused(capsys, empty)
    assert message == (
        f"kvmviz replay: {empty}, line 1: expected {kt.EMPTY_TRACE}; got an empty file (0 bytes)"
    )


def test_a_json_layout_is_read_whatever_its_name(tmp_path, capsys):
    """The real layout as layout.txt is JSON by its content: the same two slots, replayed."""
    txt = tmp_path / "layout.txt"
    txt.write_bytes(LAYOUT.read_bytes())
    assert kt.load_layout(txt) == kt.load_layout(LAYOUT)
    code, out, _ = _cli(capsys, TRACE, txt)
    assert code == 0 and "MemslotLayout(2 slots" in out


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("empty.txt", "", "the file is empty; expected " + kt.LAYOUT_FORMATS),
        (
            "unrelated.log",
            "qemu-system-x86_64: warning: host doesn't support requested feature\n",
            "no memslot: none of its 1 lines is a kvm_set_user_memory line; expected "
            + kt.LAYOUT_FORMATS,
        ),
        (
            "deleted.log",
            "kvm_set_user_memory Slot#0 flags=0x0 gpa=0x0 size=0x1000 ua=0x7f0000000000 ret=0\n"
            "kvm_set_user_memory Slot#0 flags=0x0 gpa=0x0 size=0x0 ua=0x7f0000000000 ret=0\n",
            "no memslot: its 2 kvm_set_user_memory lines leave no memslot (each slot deleted "
            "or failed); expected " + kt.LAYOUT_FORMATS,
        ),
        (
            "slots.txt",
            '{"memslots": []}',
            "line 1: expected at least one memslot, got an empty list",
        ),
        ("broken.txt", '{\n  "memslots": [\n', "line 3: expected a JSON layout; not JSON: "),
    ],
)
def test_a_layout_of_no_memslot_is_an_error_naming_the_file(tmp_path, capsys, name, body, message):
    """Empty, memslot-free or broken layouts: one sentence naming the file (and line)."""
    path = tmp_path / name
    path.write_text(body)
    sep = "" if message.startswith("line") else ": "
    with pytest.raises(ValueError) as err:
        kt.load_layout(path)
    assert str(err.value).startswith(f"{path}{', ' if sep == '' else sep}{message}")
    assert _refused(capsys, TRACE, path).startswith(f"kvmviz replay: {path}")


def test_the_real_command_refuses_a_reversed_trace_in_one_line(tmp_path):
    """`python -m kvmviz replay` itself: exit 2, the TraceOrderError on one line of stderr."""
    lines = list(LINES)
    lines[19] = lines[19].replace(_ts(lines[19]), "1341.000000")
    path = _write(tmp_path, lines)
    done = subprocess.run(
        [sys.executable, "-m", "kvmviz", "replay", str(path), "--layout", str(LAYOUT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith(
        f"kvmviz replay: {path}, line 20: expected a timestamp >= 1341.111794 (that of line "
        "19, the previous record of CPU 1: a CPU's records never go back in time); got "
        "1341.000000, 0.111794 earlier, in ' python3-15487 [001] ..... 1341.000000: kvm_unmap_hva"
    )


# -- exact timestamps: a trace shifted by any offset reads the same (issue 20 §5) ----------------
_TABLE_VCPUS = 4  # small: the property is about times, and each replay takes ~0.2 s


@pytest.fixture(scope="module")
def base_table(events):
    layout = kt.load_layout(LAYOUT)
    return experiments.compare_replay(events, layout, n_vcpus=_TABLE_VCPUS)[0]


def _same_records(frame: pd.DataFrame, expected: pd.DataFrame, offset_ns: int) -> None:
    """Equal frames but for the absolute times, which moved by exactly ``offset_ns``."""
    pd.testing.assert_frame_equal(
        frame.drop(columns=["t_s", "t_ns"]), expected.drop(columns=["t_s", "t_ns"])
    )
    assert frame["t_ns"].dtype == np.int64
    assert ((frame["t_ns"] - expected["t_ns"]) == offset_ns).all()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offset_us=st.one_of(
        st.integers(-1_341_111_466, 10**6),  # small offsets, down to a trace starting at 0 s
        st.integers(1_600_000_000 * 10**6, 2_000_000_000 * 10**6),  # epoch (record --date)
        st.integers(0, 9_000_000_000 * 10**6),  # any, up to year 2255
    ),
    digits=st.sampled_from([6, 9]),
)
def test_any_offset_gives_the_same_records_and_tables(
    tmp_path_factory, events, base_table, offset_us, digits
):
    """The real trace shifted by any whole number of µs, printed with 6 or 9 fraction digits:
    the same frame (but the absolute t_s, t_ns) and the same kernel table, to the bit."""
    path = _write(tmp_path_factory.mktemp("shift"), shifted(LINES, offset_us * 1000, digits))
    frame = kt.load_ftrace(path)
    _same_records(frame, events, offset_us * 1000)
    assert frame["t_ns"].iloc[0] == 1_341_111_466_000 + offset_us * 1000
    table = experiments.compare_replay(frame, kt.load_layout(LAYOUT), n_vcpus=_TABLE_VCPUS)[0]
    pd.testing.assert_frame_equal(table, base_table)


def test_the_epoch_shifted_trace_gives_the_default_table(tmp_path, events):
    """The issue's case: +1.7e9 s (trace-cmd record --date). Read as float seconds, it lost up
    to 0.19 µs per record and v5.12 retried 3467 faults instead of 3553 (64 vCPUs)."""
    layout = kt.load_layout(LAYOUT)
    path = _write(tmp_path, shifted(LINES, 1_700_000_000_123_457_000))
    frame = kt.load_ftrace(path)
    _same_records(frame, events, 1_700_000_000_123_457_000)
    table = experiments.compare_replay(frame, layout)[0]
    pd.testing.assert_frame_equal(table, experiments.compare_replay(events, layout)[0])
    # The float path, for the record: seconds near 1.7e9 are 2**-22 s = 0.24 µs apart.
    t_float = np.array(
        [
            float(line.split(": ")[0].split()[-1])
            for line in shifted([LINES[i - 1] for i in events["line"]], 1_700_000_000_123_457_000)
        ]
    )
    lost = np.abs((t_float - t_float[0]) * 1e6 - events["t_us"].to_numpy()).max()
    assert 0.05 < lost < 0.24


def test_nine_digit_timestamps_are_read_to_the_nanosecond(tmp_path):
    """trace-cmd report -t prints ns: 9 digits read exactly; more digits round to the ns;
    a timestamp beyond 2**63 ns is malformed."""
    text = (
        "cpus=1\n"
        "  bash-1 [000] 1700000000.000000001: print: tracing_mark_write: a\n"
        "  bash-1 [000] 1700000000.000000002: print: tracing_mark_write: b\n"
        "  bash-1 [000] 1700000000.0000000025: print: tracing_mark_write: c\n"
    )
    df = kt.load_ftrace(write(tmp_path, text))
    assert df["t_ns"].tolist() == [
        1_700_000_000_000_000_001,
        1_700_000_000_000_000_002,
        1_700_000_000_000_000_003,
    ]
    assert df["t_us"].tolist() == [0.0, 0.001, 0.002]
    late = write(tmp_path, "cpus=1\n  bash-1 [000] 9223372037.000000: print: x\n", "late.txt")
    with pytest.raises(
        kt.TraceParseError,
        match=r"line 2: expected a timestamp in seconds .* "
        r"below 2\*\*63 ns \(year 2262\)",
    ):
        kt.load_ftrace(late)


def test_order_is_checked_on_exact_times(tmp_path):
    """Two records of one CPU 1 ns apart at epoch scale (equal as float64 seconds): the later
    one first is refused, with both times as printed and the exact gap."""
    text = (
        "cpus=1\n"
        "  bash-1 [000] 1700000000.000000002: print: tracing_mark_write: a\n"
        "  bash-1 [000] 1700000000.000000001: print: tracing_mark_write: b\n"
    )
    assert float("1700000000.000000002") == float("1700000000.000000001")
    path = write(tmp_path, text)
    with pytest.raises(kt.TraceOrderError) as err:
        kt.load_ftrace(path)
    assert (err.value.t_ns, err.value.previous_t_ns) == (
        1_700_000_000_000_000_001,
        1_700_000_000_000_000_002,
    )
    assert "expected a timestamp >= 1700000000.000000002 (that of line 2" in str(err.value)
    assert "got 1700000000.000000001, 1e-09 earlier" in str(err.value)
    with pytest.warns(kt.TraceParseWarning, match="sorted 1 record"):
        df = kt.load_ftrace(path, lenient=True)
    assert df["mark"].tolist() == ["b", "a"]


# -- trace-cmd variants: buffer instances, the -l layout, trace.dat, compressed files -----------
def _with_instance(lines: list[str], name: str, width: int | None = None) -> list[str]:
    """trace-cmd report of `trace-cmd record -B NAME`: print_handle_file() prints "%*s: "
    (the name, right-aligned to the longest) before each record line; frames follow as is."""
    width = len(name) if width is None else width
    return [f"{name:>{width}}: {line}" if _TS.search(line) else line for line in lines]


_FIELDS = re.compile(
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+(?P<flags>\S{4,5})\s+"
    r"(?P<ts>\d+\.\d+): (?P<rest>.*)$"
)


def _latency_layout(lines: list[str]) -> list[str]:
    """The same records as trace-cmd report -l prints them: "%8.8s-%-5d %3d", the latency
    flags at once, then " %5llu.%06llu:" (trace_show_data(), data_latency_format())."""
    out = []
    for line in lines:
        m = _FIELDS.match(line)
        if m is None:
            out.append(line)
            continue
        comm = m["comm"][:8]
        out.append(
            f"{comm:>8}-{int(m['pid']):<5} {int(m['cpu']):3d}{m['flags']} {m['ts']:>12}: "
            f"{m['rest']}"
        )
    return out


def test_buffer_instance_prefix_is_not_part_of_the_comm(tmp_path, events, base_table):
    """trace-cmd record -B kvm: each record line starts with "kvm: ". Stripped and recorded in
    attrs: the same frame (kdamond's kvm_age_hva still clear_young) and the same table. It used
    to become part of the comm ("kvm:        kdamond.0"), read as reclaim."""
    prefixed = ["cpus=2", *_with_instance(LINES, "kvm")]
    path = _write(tmp_path, prefixed)
    frame = kt.load_ftrace(path)
    assert frame.attrs["instances"] == {"kvm": len(events)}
    assert frame.attrs["format"] == "trace-cmd"
    pd.testing.assert_frame_equal(
        frame.assign(line=frame["line"] - 1).drop(columns=[]), events, check_categorical=False
    )
    assert (
        frame.attrs["age_hva"]
        == events.attrs["age_hva"]
        == {
            "task:kdamond": 167,
            "task:kswapd": 0,
            "assumed: reclaim (unknown task)": 0,
        }
    )
    table = experiments.compare_replay(frame, kt.load_layout(LAYOUT), n_vcpus=_TABLE_VCPUS)[0]
    pd.testing.assert_frame_equal(table, base_table)


def test_instances_and_top_buffer_mixed(tmp_path):
    """Two buffers: the top one (blank prefix) and "kvm"; a CPU's order is per buffer, and an
    "EVENTS DROPPED" line with a prefix gives its instance to the record printed after it."""
    text = (
        "cpus=2\n"
        "       bash-1     [000]   10.000002: print: tracing_mark_write: top\n"
        "kvm:  kdamond.0-77    [000]   10.000001: kvm_age_hva: mmu notifier age hva: "
        "0x1000 -- 0x2000\n"
        "kvm: CPU:0 [3 EVENTS DROPPED]\n"
        "        kswapd0-85    [000]   10.000003: kvm_age_hva: mmu notifier age hva: "
        "0x3000 -- 0x4000\n"
        "kvm:  kdamond.0-77    [000]   10.000002: kvm_age_hva: mmu notifier age hva: "
        "0x5000 -- 0x6000\n"
    )
    path = write(tmp_path, text)
    with pytest.raises(kt.TraceOrderError) as err:
        kt.load_ftrace(path)
    assert err.value.line == 6 and err.value.previous_line == 5 and err.value.instance == "kvm"
    assert "previous record of CPU 0 of buffer instance kvm" in str(err.value)
    good = write(tmp_path, text.rsplit("kvm:  kdamond", 1)[0], "good.txt")
    df = kt.load_ftrace(good)
    assert df["comm"].tolist() == ["bash", "kdamond.0", "kswapd0"]
    assert df.attrs["instances"] == {"kvm": 2}
    assert df.attrs["lost_events"] == 3
    assert df["callback"].tolist()[1:] == ["clear_young", "clear_flush_young"]


def test_latency_layout_reads_the_same_records(tmp_path, events, base_table):
    """trace-cmd report -l: comm cut to 8 characters, no brackets around the CPU, the flags
    glued to it. The same records (comms cut), "kdamond." still DAMON's clear_young, and the
    same table; with an instance prefix too."""
    lat = _latency_layout(LINES)
    assert lat[17].startswith(" python3-15444   1...1.  1341.111466: tracing_mark_write")
    for lines, instances in ((lat, {}), (_with_instance(lat, "kvm"), {"kvm": len(events)})):
        frame = kt.load_ftrace(_write(tmp_path, lines))
        assert frame.attrs["layout"] == "latency" and frame.attrs["instances"] == instances
        assert frame["comm"].astype(str).tolist() == [c[:8] for c in events["comm"].astype(str)]
        pd.testing.assert_frame_equal(
            frame.drop(columns="comm"), events.drop(columns="comm"), check_categorical=False
        )
        assert frame.attrs["age_hva"] == events.attrs["age_hva"]
        table = experiments.compare_replay(frame, kt.load_layout(LAYOUT), n_vcpus=_TABLE_VCPUS)[0]
        pd.testing.assert_frame_equal(table, base_table)


@pytest.mark.parametrize(
    ("comm", "truncated", "expected"),
    [
        ("kdamond.", True, ("clear_young", "task:kdamond")),
        ("kdamond.", False, ("clear_flush_young", kt.AGE_HVA_ASSUMED)),
        ("kswapd12", True, ("clear_flush_young", "task:kswapd")),
        ("kworker/", True, ("clear_flush_young", kt.AGE_HVA_ASSUMED)),
        ("kdamondx", True, ("clear_flush_young", kt.AGE_HVA_ASSUMED)),
    ],
)
def test_age_hva_callback_of_a_cut_comm(comm, truncated, expected):
    """A comm cut to 8 characters stands for a task of the table when it starts its name."""
    assert kt.age_hva_callback(comm, truncated=truncated) == expected


def test_truncated_patterns_cover_the_table():
    """Every task of AGE_HVA_TASKS has a prefix pattern, which accepts each cut of its names."""
    assert list(tracepoint_callbacks._AGE_HVA_PREFIXES) == list(kt.AGE_HVA_TASKS)
    for source, name in (("task:kdamond", "kdamond.12"), ("task:kswapd", "kswapd123")):
        for cut in range(2, len(name) + 1):  # "k" alone starts both
            assert kt.age_hva_callback(name[:cut], truncated=True)[1] == source, name[:cut]


def test_a_binary_trace_dat_is_refused_saying_how_to_read_it(tmp_path, capsys):
    """trace-cmd's binary trace.dat: one sentence naming it and the trace-cmd report command."""
    path = tmp_path / "trace.dat"
    path.write_bytes(kt.TRACE_DAT_MAGIC + b"\x006\x00\x00\x00\x10\x00\x00" + bytes(range(256)))
    with pytest.raises(kt.TraceParseError) as err:
        kt.load_ftrace(path, lenient=True)
    assert str(err.value) == (
        f"{path}, line 1: expected {kt.EMPTY_TRACE}; got a binary trace-cmd data file "
        f"(trace.dat): run `trace-cmd report -i {path} > {path}.txt` and read {path}.txt"
    )
    assert _refused(capsys, path) == _one_line(err.value)
    gz = tmp_path / "trace.dat.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(kt.TraceParseError, match=r"decompress it \(gzip\), then run `trace-cmd"):
        kt.load_ftrace(gz)


_COMPRESS = {"gzip": gzip.compress, "xz": lzma.compress, "bzip2": bz2.compress}


@pytest.mark.parametrize("kind", list(_COMPRESS))
@pytest.mark.parametrize("name", ["trace.txt", "trace.txt.gz"])
def test_compressed_traces_read_as_the_text(tmp_path, events, kind, name):
    """gzip, xz and bzip2 files, told by their first bytes whatever the name: the same frame
    and line counts; progress counts the file's (compressed) bytes up to its size."""
    path = tmp_path / name
    path.write_bytes(_COMPRESS[kind](TRACE.read_bytes()))
    calls = []
    frame = kt.load_ftrace(path, progress=lambda done, total: calls.append((done, total)))
    pd.testing.assert_frame_equal(frame, events)
    assert frame.attrs["line_counts"] == events.attrs["line_counts"]
    assert frame.attrs["compression"] == kind and events.attrs["compression"] is None
    size = path.stat().st_size
    assert calls[-1] == (size, size) and all(t == size for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    # The other loaders read compressed files too.
    qemu = tmp_path / "qemu.log"
    qemu.write_bytes(_COMPRESS[kind](QEMU.read_bytes()))
    assert kt.load_qemu_memslots(qemu) == kt.load_qemu_memslots(QEMU) == kt.load_layout(qemu)
    layout = tmp_path / "layout"
    layout.write_bytes(_COMPRESS[kind](LAYOUT.read_bytes()))
    assert kt.load_layout(layout) == kt.load_layout(LAYOUT)


@pytest.mark.parametrize("kind", list(_COMPRESS))
@pytest.mark.parametrize("damage", ["cut", "flipped"])
def test_a_corrupt_compressed_trace_names_the_file(tmp_path, capsys, kind, damage):
    """A compressed file cut short or with bytes changed: a ValueError naming the file and the
    compression, never a table of the part that could be read; one line from the command."""
    data = bytearray(_COMPRESS[kind](TRACE.read_bytes()))
    if damage == "cut":
        data = data[: len(data) // 2]
    else:
        middle = len(data) // 2
        data[middle : middle + 64] = bytes(64)
    path = tmp_path / "trace.txt"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError) as err:
        kt.load_ftrace(path, lenient=True)
    assert str(err.value).startswith(f"{path}: corrupt {kind} data (")
    assert str(err.value).endswith(
        f"expected a complete {kind}-compressed file: it is damaged or was cut short"
    )
    assert _refused(capsys, path) == _one_line(err.value)


def test_a_zstd_file_is_refused_naming_the_tool(tmp_path):
    path = tmp_path / "trace.txt.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd" + bytes(32))
    with pytest.raises(ValueError, match=r"a zstd-compressed file.*decompress it first"):
        kt.load_ftrace(path)


# -- QEMU logs: a present slot cannot change its userspace address (issue 20 §5) ---------------
_QEMU_LINES = QEMU.read_text(encoding="utf-8").split("\n")[:-1]
_SLOT4 = next(i for i, line in enumerate(_QEMU_LINES, 1) if "Slot#4 " in line)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        # Slot 4 (gpa 0x100000 size 0x1ff00000 ua 0x7f6ffbf00000) again, another ua.
        ("Slot#4 flags=0x0 gpa=0x100000 size=0x1ff00000 ua=0x7f0000000000 ret=0", "ua"),
        ("Slot#4 flags=0x0 gpa=0x100000 size=0x1fe00000 ua=0x7f6ffbf00000 ret=0", "size"),
        ("Slot#4 flags=0x2 gpa=0x100000 size=0x1ff00000 ua=0x7f6ffbf00000 ret=0", "readonly"),
    ],
)
def test_a_present_slot_registered_again_differently_is_refused(tmp_path, capsys, line, problem):
    """A kvm_set_user_memory line giving a present slot another ua, size or read-only flag
    with ret=0: __kvm_set_memory_region() returns -EINVAL for that, so the log is impossible."""
    lines = [*_QEMU_LINES, f"kvm_set_user_memory {line}"]
    path = _write(tmp_path, lines, "qemu.log")
    with pytest.raises(kt.TraceParseError) as err:
        kt.load_qemu_memslots(path)
    assert err.value.line == len(lines) and err.value.path == str(path)
    assert err.value.expected == (
        f"slot 4 of address space 0, present since line {_SLOT4} (ua=0x7f6ffbf00000 "
        "size=0x1ff00000 flags=0x0), to keep its ua, size and KVM_MEM_READONLY flag, or to be "
        "deleted (size=0x0) first: __kvm_set_memory_region() returns -EINVAL for this change, "
        "never ret=0"
    )
    assert _refused(capsys, TRACE, path).startswith(f"kvmviz replay: {path}, line {len(lines)}")
    with pytest.warns(kt.TraceParseWarning, match="skipped 1"):
        assert kt.load_qemu_memslots(path, lenient=True) == kt.load_qemu_memslots(QEMU)


def test_slot_changes_the_kernel_accepts_are_replayed(tmp_path):
    """What KVM accepts: the failed ioctl (ret=-22) changes nothing, a delete then a new
    registration may change ua, a move keeps ua and size, a flags-only change (dirty logging)."""
    lines = [
        *_QEMU_LINES,
        "kvm_set_user_memory Slot#4 flags=0x0 gpa=0x100000 size=0x1ff00000 ua=0x7f00 ret=-22",
        "kvm_set_user_memory Slot#4 flags=0x1 gpa=0x100000 size=0x1ff00000 ua=0x7f6ffbf00000 ret=0",
        "kvm_set_user_memory Slot#3 flags=0x2 gpa=0xe0000 size=0x0 ua=0x7f7023020000 ret=0",
        "kvm_set_user_memory Slot#3 flags=0x0 gpa=0xe0000 size=0x20000 ua=0x7f7030000000 ret=0",
        "kvm_set_user_memory Slot#3 flags=0x0 gpa=0x40000000 size=0x20000 ua=0x7f7030000000 ret=0",
    ]
    layout = kt.load_qemu_memslots(_write(tmp_path, lines, "qemu.log"))
    slots = {s.slot: s for s in layout}
    assert (slots[4].flags, slots[4].userspace_addr) == (0x1, 0x7F6FFBF00000)
    assert (slots[3].base_gfn, slots[3].userspace_addr) == (0x40000, 0x7F7030000000)


# -- options mean what they say: booleans, and no empty result from a non-empty file ------------
@pytest.mark.parametrize("value", ["no", "False", 0, 1, None, 1.0])
@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda v: kt.load_ftrace(TRACE, lenient=v), "lenient"),
        (lambda v: kt.load_ftrace(TRACE, keep_text=v), "keep_text"),
        (lambda v: kt.load_qemu_memslots(QEMU, lenient=v), "lenient"),
        (lambda v: kt.memslot_events(QEMU, lenient=v), "lenient"),
        (lambda v: kt.load_layout(QEMU, lenient=v), "lenient"),
        (lambda v: kt.age_hva_callback("kdamond.", truncated=v), "truncated"),
    ],
)
def test_boolean_options_refuse_other_values(call, name, value):
    """ "no" used to mean True: every boolean parameter refuses what is not a bool, by name."""
    with pytest.raises(TypeError) as err:
        call(value)
    assert str(err.value) == f"{name} = {value!r}: expected True or False"


def test_numpy_booleans_are_booleans(events):
    assert kt.load_ftrace(TRACE, keep_text=np.False_).columns.tolist() == [
        c for c in events.columns if c != "text"
    ]


@pytest.mark.parametrize("loader", [kt.load_qemu_memslots, kt.memslot_events])
def test_a_json_layout_is_not_a_qemu_log(tmp_path, loader):
    """kv.load_qemu_memslots(layout.json) returned an empty layout (every notification then a
    miss): refused, naming the file, what was expected and the function that reads it."""
    with pytest.raises(ValueError) as err:
        loader(LAYOUT)
    lines = len(file_lines(LAYOUT))
    assert str(err.value) == (
        f"{LAYOUT}: none of its {lines} lines is a kvm_set_user_memory line; expected "
        f"{kt.QEMU_LOG}; it looks like a JSON layout: read it with load_layout_json() (or "
        "load_layout(), which reads both)"
    )
    with pytest.raises(ValueError, match=r"linux6.18.txt: none of its 1541 lines .*for a JSON"):
        loader(TRACE)
    empty = write(tmp_path, "\n\n", "empty.log")
    with pytest.raises(ValueError, match=r"empty.log: the file is empty \(blank lines only\)"):
        loader(empty)


def test_a_log_whose_slots_are_all_deleted_leaves_no_layout(tmp_path):
    """A log replayed to no memslot: an error (at=None); an intermediate at= may be empty."""
    path = write(
        tmp_path,
        "kvm_set_user_memory Slot#0 flags=0x0 gpa=0x0 size=0x1000 ua=0x7f0000000000 ret=0\n"
        "kvm_set_user_memory Slot#0 flags=0x0 gpa=0x0 size=0x0 ua=0x7f0000000000 ret=0\n",
        "deleted.log",
    )
    with pytest.raises(ValueError) as err:
        kt.load_qemu_memslots(path)
    assert str(err.value).startswith(
        f"{path}: no memslot: its 2 kvm_set_user_memory lines leave no memslot (each slot "
        "deleted or failed); expected a QEMU log"
    )
    assert len(kt.load_qemu_memslots(path, at=0)) == 0 and len(kt.load_qemu_memslots(path, 1))
    assert len(kt.load_qemu_memslots(path, at=2)) == 0


def test_lenient_ftrace_of_a_non_trace_is_an_error(tmp_path):
    """A JSON layout read as a trace: strict refuses line 1, lenient (every line malformed)
    refuses an empty result instead of returning a frame of nothing."""
    with pytest.raises(kt.TraceParseError, match=r", line 1: expected a trace record"):
        kt.load_ftrace(LAYOUT)
    with pytest.raises(kt.TraceParseError) as err:
        kt.load_ftrace(LAYOUT, lenient=True)
    assert str(err.value).startswith(
        f"{LAYOUT}, line 1: expected at least one trace record {kt.RECORD_SHAPE}; got no record: "
        "all "
    )
    # A header without records is still a (recorded but empty) trace: see the test above.
    assert len(kt.load_ftrace(write(tmp_path, "# tracer: nop\n#\n"), lenient=True)) == 0
