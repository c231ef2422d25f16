"""What-if replay of the real trace: the recorded notifications drive the engine."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import kvmviz as kv
from kvmviz import classify, experiments, traces
from kvmviz.cli import main

DATA = Path(__file__).resolve().parents[1] / "data" / "traces"
TRACE = DATA / "notifier-phases-linux6.18.txt"
LAYOUT = DATA / "notifier-phases-linux6.18.layout.json"


@pytest.fixture(scope="module")
def recorded():
    events = kv.load_ftrace(TRACE)
    layout = traces.load_layout(LAYOUT)
    return classify.records(events, layout), layout


@pytest.fixture(scope="module")
def compared(recorded):
    classified, layout = recorded
    return experiments.compare_replay(classified, layout, n_vcpus=16, seed=0)


def test_replay_uses_the_recorded_notifications(recorded, compared):
    """Every recorded notifier event arrives at its recorded time with its recorded range."""
    classified, _ = recorded
    stream = traces.to_stream(classified)
    run = compared[1]["v5.15"]
    first = run.notifiers.drop_duplicates("event").sort_values("event")
    np.testing.assert_allclose(first.t_arrive_us.to_numpy(), stream.t_us.to_numpy())
    assert first.hva_start.tolist() == stream.hva_start.tolist()


def test_lock_taken_falls_kernel_by_kernel(recorded, compared):
    """v5.12 locks for every callback, v5.13 skips the unpaired misses, v5.15 every miss."""
    table, runs = compared
    n = runs["v5.12"].notifiers
    unpaired_misses = (~n.hit & ~n.callback.str.startswith("invalidate_range")).sum()
    assert table.loc["v5.12", "lock_avoided"] == 0
    assert table.loc["v5.13", "lock_avoided"] == unpaired_misses
    assert table.loc["v5.15", "lock_avoided"] == (~n.hit).sum()
    assert table.loc["v5.15", "lock_taken"] == n.hit.sum()


def test_replay_takes_layout_from_json_or_qemu_log():
    """load_layout reads the JSON layout and the QEMU log alike."""
    assert len(traces.load_layout(LAYOUT)) == 2
    qemu = Path(__file__).resolve().parents[1] / "data" / "qemu" / "q35-512m-paused.txt"
    assert traces.load_layout(qemu) == kv.presets.q35_512m_layout()


# -- bad traces and layouts: each class refused in one sentence, or replayed honestly ------------
# Every case is the real trace (or layout) with a few lines edited, as a user's would be.
LINES = TRACE.read_text(encoding="utf-8").split("\n")[:-1]
_TS = re.compile(r"(?<=\s)(\d+)\.(\d{6})(?=: )")


def _ts(line: str) -> str:
    return _TS.search(line).group(0)


def _shift(line: str, seconds: int) -> str:
    """``line`` with its timestamp moved by whole seconds, in decimal (no float rounding)."""
    m = _TS.search(line)
    return f"{line[: m.start()]}{int(m[1]) + seconds}.{m[2]}{line[m.end() :]}"


def _write(tmp_path: Path, lines: list[str], name: str = "trace.txt") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _cli(capsys, trace, layout=LAYOUT, *extra) -> tuple[int, str, str]:
    code = main(["replay", str(trace), "--layout", str(layout), "--vcpus", "2", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(error: Exception) -> str:
    """How the CLI prints an error: on one line, runs of blanks collapsed."""
    return "kvmviz replay: " + " ".join(str(error).split())


def _refused(capsys, trace, layout=LAYOUT, *extra) -> str:
    """The CLI's one line on stderr, exit status 2 and no table."""
    code, out, err = _cli(capsys, trace, layout, *extra)
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert "mean_us" not in out
    return err.strip()


def test_reversed_timestamps_name_file_both_lines_and_both_times(tmp_path, capsys):
    """Two records of CPU 1 with times swapped: strict refuses at the second, lenient sorts."""
    lines = list(LINES)
    a, b = lines[18], lines[19]  # file lines 19 and 20: kvm_unmap_hva_range on CPU 1
    lines[18] = a.replace(_ts(a), _ts(b))
    lines[19] = b.replace(_ts(b), _ts(a))
    path = _write(tmp_path, lines)
    with pytest.raises(traces.TraceOrderError) as err:
        traces.load_ftrace(path)
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
    with pytest.warns(traces.TraceParseWarning) as caught:
        sorted_events = traces.load_ftrace(path, lenient=True)
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
    events = traces.load_ftrace(_write(tmp_path, lines))
    assert events.attrs["reordered"] == 0  # file order kept: it is how the readers merge
    assert events["line"].is_monotonic_increasing
    layout = traces.load_layout(LAYOUT)
    swapped = traces.to_stream(classify.records(events, layout))
    original = traces.to_stream(classify.records(kv.load_ftrace(TRACE), layout))
    pd.testing.assert_frame_equal(swapped, original)


def test_the_real_trace_replays_as_recorded(compared):
    """No gap of the sample is 1 s long: nothing is cut, and the note says so."""
    table, runs = compared
    info = table.attrs["replay"]
    assert info["idle_removed_us"] == 0.0 and info["gaps_shortened"] == 0
    assert info["span_us"] == pytest.approx(1344.928729e6 - 1341.111466e6, abs=1e-3)
    assert info["replayed_us"] == pytest.approx(info["span_us"] + 1000.0)
    assert runs["v5.15"].scenario.duration_us == info["replayed_us"]
    # And how the aging lines were read: all 167 kvm_age_hva are kdamond's, clear_young (the
    # note is new since the callback is told by task; before, they were all clear_flush_young).
    assert table.attrs["notes"] == [
        "replayed all 3.81726 s of notifications (no idle gap longer than 1 s)",
        "kvm_age_hva: 167 lines from kdamond read as clear_young (DAMON never flushes), 0 from "
        "kswapd as clear_flush_young (reclaim), 0 from other tasks assumed clear_flush_young "
        "(reclaim)",
    ]
    assert info["age_hva"] == {
        "task:kdamond": 167,
        "task:kswapd": 0,
        "assumed: reclaim (unknown task)": 0,
    }


def test_the_aging_note_counts_what_was_replayed(recorded, compared):
    """The note's counts are those of the trace's kvm_age_hva records, and of the events the
    engine ran: kdamond's aging replays as clear_young (no flush), never clear_flush_young."""
    classified, _ = recorded
    table, runs = compared
    aging = classified[classified["event"] == "kvm_age_hva"]
    by_task = aging["comm"].astype(str).value_counts().to_dict()
    assert by_task == {"kdamond.0": 167}
    note = table.attrs["notes"][-1]
    numbers = [int(n) for n in re.findall(r"(\d+) (?:lines )?from", note)]
    assert numbers == [167, 0, 0] == list(table.attrs["replay"]["age_hva"].values())
    for run in runs.values():
        events = run.notifiers.drop_duplicates("event")
        assert (events["callback"] == "clear_young").sum() == 167
        assert (events["callback"] == "clear_flush_young").sum() == 0
        assert (events["callback"] == "test_young").sum() == 108


def test_a_100000_s_gap_is_cut_and_the_table_is_that_of_the_trace_without_it(tmp_path, capsys):
    """1e5 s added before line 1448: the replay equals the original's, and says what it cut.

    Both traces are replayed with gaps cut to 0.1 s; the gap before line 1448 was 0.515 s, so
    it is cut to 0.1 s with or without the extra 1e5 s: the streams, and so every statistic,
    are the same, and the idle time removed differs by exactly 1e5 s.
    """
    lines = [
        _shift(line, 100_000) if i >= 1447 and _TS.search(line) else line
        for i, line in enumerate(LINES)
    ]
    path = _write(tmp_path, lines)
    gapped = traces.load_ftrace(path)
    assert gapped["t_s"].max() == pytest.approx(101344.928863)
    layout = traces.load_layout(LAYOUT)
    kwargs = {"n_vcpus": 4, "seed": 3, "max_gap_us": 1e5}
    with pytest.warns(experiments.ReplayWarning) as caught:
        table, runs = experiments.compare_replay(gapped, layout, **kwargs)
    with pytest.warns(experiments.ReplayWarning):
        expected, expected_runs = experiments.compare_replay(
            kv.load_ftrace(TRACE), layout, **kwargs
        )
    assert [str(w.message) for w in caught] == [
        f"{path}: idle time removed: 100002 s of the 100004 s span (9 gaps between "
        "notifications cut to 0.1 s); the statistics cover the 1.33077 s replayed, without "
        "the uncontended faults of the idle time"
    ]
    pd.testing.assert_frame_equal(table, expected)
    pd.testing.assert_frame_equal(runs["v5.12"].faults, expected_runs["v5.12"].faults)
    info, base = table.attrs["replay"], expected.attrs["replay"]
    assert info["idle_removed_us"] - base["idle_removed_us"] == 1e11
    assert info["gaps_shortened"] == base["gaps_shortened"]
    assert info["replayed_us"] == base["replayed_us"] == 1330769.0
    # With the default 1 s the replay still covers seconds, not the 27.8 hours of the span.
    run = experiments.replay_trace(gapped, layout, n_vcpus=2)
    assert run.notifiers.attrs["replay"] == {
        "span_us": 100003817263.0,
        "idle_removed_us": 1e11 + 514931 - 1e6,  # the gap was 0.514931 s + 1e5 s, now 1 s
        "gaps_shortened": 1,
        "max_gap_us": 1e6,
        "replayed_us": 4303332.0,
        "age_hva": {"task:kdamond": 167, "task:kswapd": 0, "assumed: reclaim (unknown task)": 0},
    }
    assert run.scenario.duration_us == 4303332.0
    code, out, err = _cli(capsys, path)
    assert code == 0 and "v5.15" in out
    (warning,) = err.strip().splitlines()
    assert warning == (
        f"kvmviz replay: warning: {path}: idle time removed: 99999.5 s of the 100004 s span (1 "
        "gap between notifications cut to 1 s); the statistics cover the 4.30333 s replayed, "
        "without the uncontended faults of the idle time"
    )


def test_a_raw_counter_clock_is_refused_by_replay(tmp_path, capsys):
    """trace_clock=counter prints counts, not seconds: parsed, but there is no time to replay."""
    lines, n = [], 0
    for line in LINES:
        if _TS.search(line):
            n += 1
            line = _TS.sub(str(10**15 + n), line, count=1)  # x86-tsc-sized numbers
        lines.append(line)
    path = _write(tmp_path, lines)
    events = traces.load_ftrace(path)
    assert events.attrs["clock"] == "raw"
    assert events["t_s"].iloc[0] == 10**15 + 1 and events["t_us"].isna().all()
    layout = traces.load_layout(LAYOUT)
    with pytest.raises(ValueError) as err:
        experiments.replay_trace(events, layout)
    assert str(err.value).startswith(
        f"{path}, line 19: expected a timestamp in seconds ('<s>.<fraction>'); got the raw "
        "clock count 1000000000000002: "
    )
    assert "echo global > trace_clock" in str(err.value)
    assert _refused(capsys, path) == _one_line(err.value)
    # One line of another clock in a trace of seconds is malformed, naming both lines.
    mixed = list(LINES)
    mixed[20] = _TS.sub("1341111885", mixed[20], count=1)
    with pytest.raises(traces.TraceParseError) as err:
        traces.load_ftrace(_write(tmp_path, mixed, "mixed.txt"))
    assert err.value.line == 21
    assert err.value.expected == "a timestamp in seconds ('<s>.<fraction>'), as on line 18"


def test_header_only_and_notifier_free_traces_have_nothing_to_replay(tmp_path, capsys):
    """No MMU-notifier record: replay refuses, counting what the trace holds instead."""
    layout = traces.load_layout(LAYOUT)
    header = _write(tmp_path, LINES[:17], "header.txt")
    with pytest.raises(ValueError) as err:
        experiments.replay_trace(traces.load_ftrace(header), layout)
    assert str(err.value) == (
        f"{header}: nothing to replay: 0 records in 17 lines, none of them an MMU-notifier "
        "event (kvm_unmap_hva_range, kvm_set_spte_hva, kvm_age_hva, kvm_test_age_hva)"
    )
    assert _refused(capsys, header) == _one_line(err.value)
    notifiers = ("kvm_unmap_hva_range:", "kvm_age_hva:", "kvm_test_age_hva:")
    kept = [line for line in LINES if not any(f" {e} " in line for e in notifiers)]
    quiet = _write(tmp_path, kept, "quiet.txt")
    events = traces.load_ftrace(quiet)
    with pytest.raises(ValueError) as err:
        experiments.compare_replay(events, layout)
    assert str(err.value) == (
        f"{quiet}: nothing to replay: 166 records in {len(kept)} lines (tracing_mark_write 15, "
        "kvm_mmu_get_page 1, contention_end 80, contention_begin 19, <stack trace> 19, "
        "ksm_start_scan 16 and 1 more events), none of them an MMU-notifier event "
        "(kvm_unmap_hva_range, kvm_set_spte_hva, kvm_age_hva, kvm_test_age_hva)"
    )
    assert 1255 - 814 - 167 - 108 == 166
    assert _refused(capsys, quiet) == _one_line(err.value)


def test_an_empty_trace_is_refused_naming_it(tmp_path, capsys):
    """A 0-byte trace (a failed recording) is one line naming the file, not a table of zeros."""
    empty = _write(tmp_path, [], "empty.txt")
    empty.write_text("")
    message = _refused(capsys, empty)
    assert message == (
        f"kvmviz replay: {empty}, line 1: expected {traces.EMPTY_TRACE}; got an empty file "
        "(0 bytes)"
    )


def test_a_json_layout_is_read_whatever_its_name(tmp_path, capsys):
    """The real layout as layout.txt is JSON by its content: the same two slots, replayed."""
    txt = tmp_path / "layout.txt"
    txt.write_bytes(LAYOUT.read_bytes())
    assert traces.load_layout(txt) == traces.load_layout(LAYOUT)
    code, out, _ = _cli(capsys, TRACE, txt)
    assert code == 0 and "MemslotLayout(2 slots" in out


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("empty.txt", "", "the file is empty; expected " + traces.LAYOUT_FORMATS),
        (
            "unrelated.log",
            "qemu-system-x86_64: warning: host doesn't support requested feature\n",
            "no memslot: none of its 1 lines is a kvm_set_user_memory line; expected "
            + traces.LAYOUT_FORMATS,
        ),
        (
            "deleted.log",
            "kvm_set_user_memory Slot#0 flags=0x0 gpa=0x0 size=0x1000 ua=0x7f0000000000 ret=0\n"
            "kvm_set_user_memory Slot#0 flags=0x0 gpa=0x0 size=0x0 ua=0x7f0000000000 ret=0\n",
            "no memslot: its 2 kvm_set_user_memory lines leave no memslot (each slot deleted "
            "or failed); expected " + traces.LAYOUT_FORMATS,
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
        traces.load_layout(path)
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
        "1341.0, 0.111794 earlier, in ' python3-15487 [001] ..... 1341.000000: kvm_unmap_hva"
    )
