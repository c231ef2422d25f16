"""The Perfetto exports, read back as a viewer would and compared with the Run's own tables.

The JSON is loaded with :mod:`json`; the ``.pftrace`` is parsed with the ``perfetto`` package's
own ``perfetto_trace_pb2`` and its slices rebuilt from their begin / end events, as the
trace processor does. Then every lock acquisition of ``run.lock`` must be a slice with its
start and duration, every vCPU a named track, and the counters must step as a brute-force
count of the waiters says.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from _export_reference import chrome_trace as reference_chrome_trace
from _export_reference import perfetto_trace as reference_perfetto_trace
from hypothesis import given, settings
from hypothesis import strategies as st
from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

import kvmviz as kv
from kvmviz import experiments, export
from kvmviz.views import _encode, trace_plan


def ns(us) -> np.ndarray:
    return np.rint(np.asarray(us, dtype=float) * 1000).astype(np.int64)


# -- reading the files back -------------------------------------------------------------------
def json_slices(payload: dict) -> tuple[dict, pd.DataFrame]:
    """Thread names by tid, and the ``X`` slices with their track name, in integer ns."""
    names = {
        e["tid"]: e["args"]["name"]
        for e in payload["traceEvents"]
        if e["ph"] == "M" and e["name"] == "thread_name"
    }
    rows = [
        (names[e["tid"]], e["name"], e["ts"], e["dur"], e["args"])
        for e in payload["traceEvents"]
        if e["ph"] == "X"
    ]
    frame = pd.DataFrame(rows, columns=["track", "name", "ts", "dur", "args"])
    frame["start"] = ns(frame["ts"])
    frame["end"] = ns(frame["ts"] + frame["dur"])
    return names, frame


def proto_slices(data: bytes):
    """Track names by uuid, counter tracks, the slices rebuilt from begin/end pairs (with their
    args and flows) and the instants, from a ``.pftrace``."""
    trace = pb.Trace.FromString(data)
    tracks, counters, open_, slices, instants, samples = {}, {}, {}, [], [], {}
    last_ts = 0
    for packet in trace.packet:
        assert packet.trusted_packet_sequence_id == 1
        if packet.HasField("track_descriptor"):
            desc = packet.track_descriptor
            if desc.HasField("counter"):
                counters[desc.uuid] = (desc.name, desc.counter.unit, desc.counter.unit_name)
            elif desc.HasField("process"):
                tracks[desc.uuid] = desc.process.process_name
            else:
                tracks[desc.uuid] = desc.name
            continue
        event = packet.track_event
        assert packet.timestamp >= last_ts, "packets out of time order"
        last_ts = packet.timestamp
        args = {
            a.name: (
                a.bool_value
                if a.HasField("bool_value")
                else a.int_value
                if a.HasField("int_value")
                else a.string_value
            )
            for a in event.debug_annotations
        }
        if event.type == pb.TrackEvent.TYPE_SLICE_BEGIN:
            open_.setdefault(event.track_uuid, []).append(
                [
                    tracks[event.track_uuid],
                    event.name,
                    packet.timestamp,
                    None,
                    args,
                    list(event.flow_ids),
                    list(event.terminating_flow_ids),
                    len(open_.get(event.track_uuid, [])),
                ]
            )
        elif event.type == pb.TrackEvent.TYPE_SLICE_END:
            row = open_[event.track_uuid].pop()
            row[3] = packet.timestamp
            slices.append(row)
        elif event.type == pb.TrackEvent.TYPE_INSTANT:
            instants.append((tracks[event.track_uuid], event.name, packet.timestamp, args))
        elif event.type == pb.TrackEvent.TYPE_COUNTER:
            samples.setdefault(event.track_uuid, []).append((packet.timestamp, event.counter_value))
    assert all(not stack for stack in open_.values()), "a slice was never ended"
    frame = pd.DataFrame(
        slices,
        columns=["track", "name", "start", "end", "args", "flows_out", "flows_in", "depth"],
    )
    return tracks, counters, frame, instants, samples


def acquisitions(run) -> pd.DataFrame:
    """``run.lock`` as the exports must show it: (track, start, end) of every hold, in ns."""
    lock = run.lock
    track = np.where(
        lock["holder"] == "vcpu",
        "vCPU " + lock["who"].astype(str),
        "notifier",
    )
    frame = pd.DataFrame(
        {"track": track, "start": ns(lock["t_grant_us"]), "end": ns(lock["t_release_us"])}
    )
    return frame.sort_values(["track", "start", "end"], ignore_index=True)


def holds_of(slices: pd.DataFrame) -> pd.DataFrame:
    holds = slices[slices["name"].str.startswith("holding mmu_lock")].copy()
    holds["track"] = np.where(holds["track"].str.startswith("vCPU"), holds["track"], "notifier")
    return holds[["track", "start", "end"]].sort_values(
        ["track", "start", "end"], ignore_index=True
    )


def assert_nested(slices: pd.DataFrame) -> None:
    """On each track, any two slices are disjoint or one holds the other (no partial overlap)."""
    for track, group in slices.groupby("track"):
        stack: list[int] = []
        for start, end in sorted(
            zip(group["start"], group["end"], strict=True), key=lambda s: (s[0], -s[1])
        ):
            while stack and stack[-1] <= start:
                stack.pop()
            assert not stack or end <= stack[-1], f"{track}: [{start}, {end}) overlaps its parent"
            stack.append(end)


def waiting_at(run, t_ns: int, holder=None) -> int:
    """Brute force: acquisitions that requested before ``t`` and were granted after it."""
    lock = run.lock
    if holder is not None:
        lock = lock[lock["holder"] == holder]
    request, grant = ns(lock["t_request_us"]), ns(lock["t_grant_us"])
    return int(((request <= t_ns) & (grant > t_ns)).sum())


@pytest.fixture(scope="module")
def replayed(classified, layout):
    """The bundled real trace's notifications replayed against eight modelled vCPUs."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", experiments.ReplayWarning)
        return experiments.replay_trace(classified, layout, "v5.12", n_vcpus=8)


@pytest.fixture(scope="module")
def runs(busy8, big416, replayed):
    return {"busy8": busy8, "big416": big416, "replayed": replayed}


# -- the JSON ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["busy8", "big416", "replayed"])
def test_json_carries_every_acquisition_as_a_slice(runs, name, tmp_path):
    """Every acquisition of ``mmu_lock`` in ``run.lock`` is one ``holding mmu_lock`` slice on
    its vCPU's track (or a notifier lane), starting at the grant and lasting the hold."""
    run = runs[name]
    path = kv.to_perfetto(run, tmp_path / "run.json")
    names, slices = json_slices(json.loads(path.read_text(encoding="utf-8")))
    assert path.name == "run.json"
    pd.testing.assert_frame_equal(holds_of(slices), acquisitions(run))
    assert sorted(n for n in names.values() if n.startswith("vCPU")) == sorted(
        f"vCPU {v}" for v in range(run.scenario.n_vcpus)
    )
    assert_nested(slices)


def test_json_waits_callbacks_instants_and_args(busy8):
    """Each wait of a fault is a ``waiting for mmu_lock (read)`` slice from request to grant;
    each callback a slice named after it with its hit, kernel and rule in the args, and an
    arrival instant; retry attempts say so in their args."""
    payload = export.chrome_trace(busy8)
    _names, slices = json_slices(payload)
    f = busy8.faults
    waited = ns(f["t_grant_us"]) > ns(f["t_request_us"])
    waits = slices[slices["name"] == "waiting for mmu_lock (read)"]
    assert len(waits) == int(waited.sum()) > 0
    assert sorted(waits["start"]) == sorted(ns(f["t_request_us"])[waited])
    holds = slices[slices["name"] == "holding mmu_lock (read)"]
    assert sum(a["retry"] for a in holds["args"]) == int(f["retry"].sum()) > 0
    n = busy8.notifiers
    callbacks = slices[slices["name"].isin(kv.CALLBACKS)]
    assert len(callbacks) == len(n)
    assert sorted(callbacks["start"]) == sorted(ns(n["t_arrive_us"]))
    assert {a["kernel"] for a in callbacks["args"]} == {"v5.12"}
    assert sum(a["hit"] == "hit" for a in callbacks["args"]) == int(n["hit"].sum())
    assert all("531810caa9f4" in a["rule"] for a in callbacks["args"])
    instants = [e for e in payload["traceEvents"] if e["ph"] == "i"]
    assert sorted(ns([e["ts"] for e in instants])) == sorted(ns(n["t_arrive_us"]))
    assert {e["s"] for e in instants} == {"t"}


def test_json_counters_step_as_the_waiters(busy8):
    """The ``queue depth`` and ``vCPUs stalled`` counters equal, at every sample and between,
    a brute-force count of the acquisitions (faults only, for the second) waiting."""
    payload = export.chrome_trace(busy8)
    counters: dict[str, list] = {}
    for e in payload["traceEvents"]:
        if e["ph"] == "C":
            assert e["name"] == "mmu_lock"
            ((key, value),) = e["args"].items()
            counters.setdefault(key, []).append((round(e["ts"] * 1000), value))
    assert set(counters) == {"queue depth", "vCPUs stalled"}
    for name, holder in (("queue depth", None), ("vCPUs stalled", "vcpu")):
        samples = counters[name]
        assert max(v for _t, v in samples) > 0
        for (t, value), (t_next, _v) in zip(samples, [*samples[1:], (None, None)], strict=True):
            assert value == waiting_at(busy8, t, holder), (name, t)
            if t_next is not None and t_next - t > 1:
                assert value == waiting_at(busy8, (t + t_next) // 2, holder), (name, t)


def test_json_timestamps_are_microseconds(busy8):
    """``ts`` and ``dur`` are µs, as the format says: the last release is at the run's end."""
    payload = export.chrome_trace(busy8)
    end = max(e["ts"] + e.get("dur", 0) for e in payload["traceEvents"] if e["ph"] == "X")
    assert end == pytest.approx(busy8.faults["t_release_us"].max(), abs=1e-3)
    assert "VM: 8 vCPUs, v5.12" in payload["otherData"]["kvmviz"]


# -- the protobuf ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["busy8", "big416", "replayed"])
def test_pftrace_carries_every_acquisition_as_a_slice(runs, name, tmp_path):
    """Parsed with perfetto's own protos: the same acquisitions, named tracks per vCPU under
    one process, and counter tracks counting with a unit."""
    run = runs[name]
    path = kv.to_perfetto(run, tmp_path / "run.pftrace")
    tracks, counters, slices, instants, samples = proto_slices(path.read_bytes())
    pd.testing.assert_frame_equal(holds_of(slices), acquisitions(run))
    names = set(tracks.values())
    assert {f"vCPU {v}" for v in range(run.scenario.n_vcpus)} <= names
    assert any(n.startswith("VM: ") for n in names)
    assert {c[0] for c in counters.values()} == {"mmu_lock queue depth", "mmu_lock vCPUs stalled"}
    assert {c[2] for c in counters.values()} == {"acquisitions waiting", "vCPUs waiting"}
    assert {c[1] for c in counters.values()} == {pb.CounterDescriptor.UNIT_COUNT}
    assert all(samples[uuid] for uuid in counters)
    assert len(instants) == len(run.notifiers)
    assert_nested(slices)


def test_pftrace_and_json_hold_the_same_slices(busy8):
    """The two formats are two spellings of one trace: same slices, same tracks."""
    _n, from_json = json_slices(export.chrome_trace(busy8))
    _t, _c, from_proto, _i, _s = proto_slices(export.perfetto_trace(busy8))
    key = ["track", "name", "start", "end"]
    pd.testing.assert_frame_equal(
        from_json[key].sort_values(key, ignore_index=True),
        from_proto[key].sort_values(key, ignore_index=True),
    )


def queued_behind(run) -> set[tuple]:
    """Brute force over the callbacks, independent of ``run.faults["blocked_by"]``: for each
    fault attempt that waited (in ns, as the exports round), the callback it queued behind under
    the qrwlock, the newest that asked for ``mmu_lock`` at or before the attempt's request and
    had not released it (the later row at a tie), when that callback itself waited (only a
    wait has a slice for a flow to leave). As ``(event, callback, vcpu, fault, retries)``."""
    n = run.notifiers
    locked = n["locked"].to_numpy(dtype=bool)
    arrive = ns(n["t_arrive_us"])
    grant = ns(n["t_grant_us"].fillna(0))
    release = ns(n["t_release_us"].fillna(0))
    out = set()
    f = run.faults
    request, f_grant = ns(f["t_request_us"]), ns(f["t_grant_us"])
    for i in np.flatnonzero(f_grant > request):
        ahead = [k for k in range(len(n)) if locked[k] and arrive[k] <= request[i] < release[k]]
        if not ahead:
            continue
        k = max(ahead, key=lambda k: (arrive[k], k))
        if grant[k] > arrive[k]:
            out.add(
                (
                    int(n["event"].iloc[k]),
                    str(n["callback"].iloc[k]),
                    int(f["vcpu"].iloc[i]),
                    int(f["fault"].iloc[i]),
                    int(f["retries"].iloc[i]),
                )
            )
    return out


def flows_of(slices: pd.DataFrame) -> set[tuple]:
    """The flows of a parsed ``.pftrace`` as ``(event, callback, vcpu, fault, retries)``, each
    checked to leave a callback's write wait and end on a fault attempt's wait."""
    out = {fid: i for i, ids in zip(slices.index, slices["flows_out"], strict=True) for fid in ids}
    into = {fid: i for i, ids in zip(slices.index, slices["flows_in"], strict=True) for fid in ids}
    assert set(out) == set(into)
    assert sum(map(len, slices["flows_in"])) == len(into)  # each flow ends once
    pairs = set()
    for fid, src in out.items():
        source, target = slices.loc[src], slices.loc[into[fid]]
        assert source["name"] == "waiting for mmu_lock (write)"
        assert source["track"].startswith("notifiers")
        assert target["name"] == "waiting for mmu_lock (read)"
        assert target["track"].startswith("vCPU")
        assert source["start"] <= target["start"]
        a, b = source["args"], target["args"]
        vcpu = int(target["track"].removeprefix("vCPU "))
        pairs.add((a["event"], a["callback"], vcpu, b["fault"], b["retries before"]))
    assert len(pairs) == len(out)
    return pairs


def test_pftrace_flows_go_from_a_waiting_callback_to_the_faults_behind_it(busy8):
    """Each flow leaves a callback's ``waiting for mmu_lock (write)`` and ends on the wait of a
    fault attempt that queued behind it: exactly the pairs a brute force over the callbacks
    finds (the newest callback that asked before the fault and had not released it)."""
    _tracks, _c, slices, _i, _s = proto_slices(export.perfetto_trace(busy8))
    expected = queued_behind(busy8)
    assert len(expected) > 10
    assert flows_of(slices) == expected


def test_pftrace_flows_in_a_window_name_the_callbacks_kept(big416):
    """A window keeps the flows whose callback and fault attempt are both in it: the pairs of
    the brute force over the window's own callbacks and attempts (``blocked_by`` names rows of
    the whole run, renumbered for the rows kept)."""
    start, end = 1_300.0, 2_000.0  # the first three callbacks are gone: rows renumbered
    _tracks, _c, slices, _i, _s = proto_slices(export.perfetto_trace(big416, window=(start, end)))
    cut, _title = trace_plan.cut_window(big416, (start, end))
    assert cut.notifiers["event"].iloc[0] != big416.notifiers["event"].iloc[0]
    expected = queued_behind(cut)
    assert len(expected) > 10
    assert flows_of(slices) == expected


def test_pftrace_sequence_is_self_contained(busy8):
    """One trusted sequence, cleared at its first packet (nothing interned), the process track
    declared before any event and its children in explicit order."""
    trace = pb.Trace.FromString(export.perfetto_trace(busy8))
    first = trace.packet[0]
    assert first.sequence_flags == pb.TracePacket.SEQ_INCREMENTAL_STATE_CLEARED
    assert first.track_descriptor.child_ordering == pb.TrackDescriptor.EXPLICIT
    ranks = [
        p.track_descriptor.sibling_order_rank
        for p in trace.packet
        if p.HasField("track_descriptor") and p.track_descriptor.parent_uuid
    ]
    assert ranks == sorted(ranks) == list(range(len(ranks)))


# -- lanes ----------------------------------------------------------------------------------
intervals = st.lists(
    st.tuples(st.integers(0, 50), st.integers(0, 20)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=40,
)


@given(intervals)
def test_lanes_never_overlap_and_are_as_few_as_possible(spans):
    """Against brute force: two intervals share a lane only if one ends where or before the
    other starts, and the lanes are as few as the largest set of pairwise overlapping
    intervals (a clique: the intervals holding one instant, or strictly around an empty one)."""
    starts = np.array([s for s, _ in spans], dtype=np.int64)
    ends = np.array([e for _, e in spans], dtype=np.int64)
    lane = export.lanes(starts, ends)
    for i in range(len(spans)):
        for j in range(i):
            if lane[i] == lane[j]:
                assert ends[i] <= starts[j] or ends[j] <= starts[i], (spans[i], spans[j])
    cliques = [0]
    for t in starts.tolist():
        cliques.append(int(((starts <= t) & (ends > t)).sum()))
        if ((starts == t) & (ends == t)).any():
            cliques.append(int(((starts < t) & (ends > t)).sum()) + 1)
    assert (int(lane.max()) + 1 if len(spans) else 0) == max(cliques)


def test_overlapping_callbacks_go_to_separate_lanes(big416):
    """A callback that arrives while another is still on the lock is drawn on another lane, so
    that slices on one track nest; no lane is left empty."""
    _names, slices = json_slices(export.chrome_trace(big416))
    lanes_used = {t for t in slices["track"] if t.startswith("notifiers")}
    assert lanes_used == {"notifiers 0", "notifiers 1"}


# -- writing ------------------------------------------------------------------------------------
def test_refuses_to_overwrite_unless_forced(busy8, tmp_path):
    """An existing file is refused before any work and left as it was; ``force`` replaces it."""
    path = tmp_path / "mine.json"
    path.write_text("my notes", encoding="utf-8")
    with pytest.raises(FileExistsError, match=r"mine\.json.*force=True"):
        kv.to_perfetto(busy8, path)
    assert path.read_text(encoding="utf-8") == "my notes"
    kv.to_perfetto(busy8, path, force=True)
    assert json.loads(path.read_text(encoding="utf-8"))["traceEvents"]
    assert os.listdir(tmp_path) == ["mine.json"]  # no temporary left behind


@pytest.mark.parametrize("name", ["run.txt", "run", "run.perfetto-trace"])
def test_an_unknown_suffix_is_refused_with_the_choices(busy8, tmp_path, name):
    """The format comes from the suffix: another suffix names the file and what is expected,
    and nothing is written."""
    with pytest.raises(ValueError, match=r"expected one of \.json, \.pftrace") as error:
        kv.to_perfetto(busy8, tmp_path / name)
    assert name in str(error.value)
    assert os.listdir(tmp_path) == []


def test_only_a_run_is_exported(tmp_path):
    """Anything but a Run is a TypeError naming what it got."""
    with pytest.raises(TypeError, match=r"kvmviz\.Run, got DataFrame"):
        kv.to_perfetto(pd.DataFrame(), tmp_path / "x.json")


@pytest.mark.parametrize("suffix", export.FORMATS)
def test_a_failed_write_leaves_nothing(busy8, tmp_path, monkeypatch, suffix):
    """If encoding fails halfway, after some chunks were already streamed to disk, no file
    (and no temporary) is left."""
    calls = []
    assemble = _encode.assemble

    def boom(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("disk on fire")
        return assemble(*args, **kwargs)

    monkeypatch.setattr(export, "CHUNK_ROWS", 50)
    monkeypatch.setattr(_encode, "assemble", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        kv.to_perfetto(busy8, tmp_path / f"x{suffix}")
    assert len(calls) == 3  # two chunks were written before the failure
    assert os.listdir(tmp_path) == []


def test_replayed_runs_are_named_as_such(replayed):
    """A replayed trace's process says so, and its callbacks keep their real causes."""
    payload = export.chrome_trace(replayed)
    title = payload["otherData"]["kvmviz"]
    assert "replayed trace" in title and "8 vCPUs" in title
    _names, slices = json_slices(payload)
    causes = {a["cause"] for a in slices[slices["name"].isin(kv.CALLBACKS)]["args"]}
    assert causes == set(replayed.notifiers["cause"].astype(str))


# -- a window of a long run ----------------------------------------------------------------------
def test_a_window_keeps_what_overlaps_it_whole(big416):
    """``window=`` keeps exactly the acquisitions that overlap it (each whole), says so in the
    process name, and its counters still equal the brute-force count inside the window."""
    start, end = 500.0, 900.0
    payload = export.chrome_trace(big416, window=(start, end))
    _names, slices = json_slices(payload)
    lock = big416.lock
    overlapping = lock[(lock["t_request_us"] < end) & (lock["t_release_us"] >= start)]
    holds = slices[slices["name"].str.startswith("holding")]
    assert len(holds) == len(overlapping) < len(lock)
    assert "window 0.5-0.9 ms" in payload["otherData"]["kvmviz"]
    samples = [
        (round(e["ts"] * 1000), e["args"]["queue depth"])
        for e in payload["traceEvents"]
        if e["ph"] == "C" and "queue depth" in e["args"]
    ]
    inside = [(t, v) for t, v in samples if start * 1000 <= t < end * 1000]
    assert inside and all(v == waiting_at(big416, t) for t, v in inside)


@pytest.mark.parametrize(
    ("window", "fragment"),
    [((900, 500), "0 <= start_us < end_us"), ((-1, 5), "0 <= start_us"), ("soon", "two numbers")],
)
def test_a_bad_window_is_refused_before_any_work(busy8, tmp_path, window, fragment):
    """A window that is not two increasing, non-negative numbers is a ValueError naming it."""
    with pytest.raises(ValueError, match=fragment):
        kv.to_perfetto(busy8, tmp_path / "x.json", window=window)
    assert os.listdir(tmp_path) == []


# -- the same trace as the reference (tests/_export_reference.py) --------------------------------
# The streaming writer must write what the export wrote before it streamed (kept as the oracle,
# which builds every slice as a tuple, the JSON as one dict and the protobuf with
# TraceProtoBuilder). Compared as a viewer reads them: the JSON with json.loads (the same
# events in the same order, ts and dur the same floats), the protobuf parsed packet by packet
# (the same packets, fields and order: no reordering, no interning).
def assert_same_trace(run, window=None) -> None:
    new_json = export.encode(run, ".json", window=window)
    assert json.loads(new_json) == reference_chrome_trace(run, window=window)
    new_proto = pb.Trace.FromString(export.encode(run, ".pftrace", window=window)).packet
    old_proto = pb.Trace.FromString(reference_perfetto_trace(run, window=window)).packet
    assert len(new_proto) == len(old_proto)
    for i, (new, old) in enumerate(zip(new_proto, old_proto, strict=True)):
        assert new == old, f"packet {i}: {new} != {old}"


def simulated(kernel="v5.12", policy="qrwlock", seed=0, **scenario):
    return kv.simulate(kv.Scenario(**scenario), kernel, policy, seed=seed)


SIMULATED = {
    "v5.12 default 1 ms": dict(kernel="v5.12", duration_us=1_000),
    "v5.13 default 1 ms": dict(kernel="v5.13", duration_us=1_000, seed=1),
    "v5.15 default 1 ms": dict(kernel="v5.15", duration_us=1_000, seed=2),
    "shadow MMU v5.13": dict(kernel="v5.13", n_vcpus=16, tdp_mmu=False, duration_us=3_000),
    "spinlock v5.12": dict(kernel="v5.12", policy="spinlock", n_vcpus=16, duration_us=3_000),
    "reader-pref v5.12": dict(kernel="v5.12", policy="reader-pref", n_vcpus=16, duration_us=3_000),
    "no fault, callbacks": dict(
        n_vcpus=1, faulting_share=0.0, duration_us=500, notifier_rate_hz=2e4
    ),
    "one notification": dict(n_vcpus=2, duration_us=20),
    "nothing at all": dict(n_vcpus=1, duration_us=40, notifier_rate_hz=0),
}


@pytest.mark.parametrize("chunk_rows", [export.CHUNK_ROWS, 7])
@pytest.mark.parametrize("name", list(SIMULATED))
def test_same_trace_as_the_reference_simulated(name, chunk_rows, monkeypatch):
    """Every kernel, the shadow MMU (faults write-lock), the spinlock and reader-pref
    policies, and runs with no fault or nothing at all; in one chunk and in chunks of 7 rows,
    whose boundaries must not show."""
    monkeypatch.setattr(export, "CHUNK_ROWS", chunk_rows)
    assert_same_trace(simulated(**SIMULATED[name]))


@pytest.mark.parametrize("chunk_rows", [export.CHUNK_ROWS, 100])
def test_same_trace_as_the_reference_busy_and_wide(busy8, big416, chunk_rows, monkeypatch):
    """The fault storm (flows, nested waits) and 416 vCPUs (many granted at one instant: ties
    broken as the reference breaks them)."""
    monkeypatch.setattr(export, "CHUNK_ROWS", chunk_rows)
    assert_same_trace(busy8)
    assert_same_trace(big416)


@pytest.mark.parametrize(
    "window", [(500.0, 900.0), (1_300.0, 2_000.0), (0.0, 1e9), (1_999.0, 2_500.0)]
)
def test_same_trace_as_the_reference_windowed(big416, window, monkeypatch):
    """A window keeps what overlaps it, renumbers the flows' callbacks, and says so."""
    monkeypatch.setattr(export, "CHUNK_ROWS", 64)
    assert_same_trace(big416, window=window)


def test_same_trace_as_the_reference_replayed(replayed, monkeypatch):
    """The bundled real trace replayed against 8 vCPUs (130,000 attempts, 1,903 callbacks), in
    chunks small enough to cut through its bursts, and a window of it."""
    monkeypatch.setattr(export, "CHUNK_ROWS", 4096)
    assert_same_trace(replayed)
    lo = float(replayed.notifiers["t_arrive_us"].iloc[len(replayed.notifiers) // 2])
    assert_same_trace(replayed, window=(lo, lo + 50_000))


def test_same_trace_when_the_faults_are_not_sorted_by_vcpu(busy8):
    """A Run built by hand whose fault rows are in no order: one chunk, the same trace."""
    shuffled = busy8.faults.sample(frac=1.0, random_state=0).reset_index(drop=True)
    run = dataclasses.replace(busy8, faults=shuffled)
    assert_same_trace(run)


@given(
    st.integers(1, 12),
    st.floats(50, 3_000),
    st.sampled_from(kv.KERNELS),
    st.sampled_from(["qrwlock", "reader-pref", "spinlock"]),
    st.booleans(),
    st.floats(0, 20_000),
    st.integers(0, 2**16),
    st.integers(1, 60),
)
@settings(max_examples=40, deadline=None)
def test_same_trace_as_the_reference_on_random_runs(
    n_vcpus, duration_us, kernel, policy, tdp_mmu, rate, seed, chunk_rows
):
    """Small random scenarios and seeds, random chunk sizes: the reference's trace."""
    run = simulated(
        kernel,
        policy,
        seed,
        n_vcpus=n_vcpus,
        duration_us=duration_us,
        tdp_mmu=tdp_mmu,
        notifier_rate_hz=rate,
        faulting_share=1.0,
        guest_run_us=10,
    )
    previous = export.CHUNK_ROWS
    export.CHUNK_ROWS = chunk_rows
    try:
        assert_same_trace(run)
    finally:
        export.CHUNK_ROWS = previous


@given(st.integers(-(10**15), 10**15))
def test_microseconds_are_spelled_as_python_prints_them(ns):
    """The assembler's µs are ``repr(ns / 1000)``, what json.dumps writes for the float."""
    assert _encode.usec_text(ns) == repr(ns / 1000)
    compiled = _encode.compile_programs([[("usec", 0), ("const", b" "), ("dec", 0)]])
    out = _encode.assemble(compiled, np.zeros(1), np.array([[ns]])).tobytes()
    assert out == f"{ns / 1000!r} {ns}".encode()


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=20))
def test_assembler_varints_and_hex_as_protobuf_and_python(values):
    """Varints (ten bytes for a negative int64), fixed64, nested lengths and hex, against
    protobuf's own encoder and Python's ``f"{v:#x}"``."""
    compiled = _encode.compile_programs(
        [[("len", [("const", b"\x20"), ("varint", 0), ("const", b"\x52\x01k")]), ("hex", 0)]]
    )
    cols = np.array(values, dtype=np.int64).reshape(-1, 1)
    out = _encode.assemble(compiled, np.zeros(len(values)), cols).tobytes()
    expected = b""
    for v in values:
        note = pb.DebugAnnotation(int_value=v, name="k").SerializeToString()
        expected += _encode.pb_varint(len(note)) + note + f"{v % 2**64:#x}".encode()
    assert out == expected


def test_assembler_runs_without_numba(busy8, monkeypatch):
    """The loop is plain Python numba compiles: run as Python, it writes the same bytes."""
    if not hasattr(_encode._fill, "py_func"):
        pytest.skip("numba is not installed: the Python loop is what every test runs")
    monkeypatch.setattr(_encode, "_fill", _encode._fill.py_func)
    monkeypatch.setattr(_encode, "_sizes", _encode._sizes.py_func)
    run = dataclasses.replace(busy8, faults=busy8.faults.iloc[:300])
    assert json.loads(export.encode(run, ".json")) == reference_chrome_trace(run)
    assert export.encode(run, ".pftrace") == reference_perfetto_trace(run)


# -- streaming: memory bounded by the chunk, not the run ----------------------------------------
def peak_of_export(run, suffix) -> int:
    class Discard:
        def write(self, data) -> None:
            pass

    tracemalloc.start()
    try:
        export.write(run, Discard(), suffix)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("suffix", export.FORMATS)
def test_memory_does_not_grow_with_the_run(suffix, monkeypatch):
    """A run four times as long (four times the attempts) exports with the same peak memory
    beyond the Run: the chunk, not the run. Measured with tracemalloc (numpy reports to it)."""
    monkeypatch.setattr(export, "CHUNK_ROWS", 2_000)
    scenario = dict(n_vcpus=64, notifier_rate_hz=200, kernel="v5.15")
    short, long = (
        simulated(duration_us=80_000, **scenario),
        simulated(duration_us=320_000, **scenario),
    )
    assert len(long.faults) > 3.5 * len(short.faults) > 3.5 * 20_000
    export.encode(short, suffix)  # numba's functions loaded
    small, large = peak_of_export(short, suffix), peak_of_export(long, suffix)
    assert large < 1.25 * small + 2**20, (small, large)
    assert large < export.memory(len(long.faults), len(long.notifiers))


def test_memory_of_the_replay_is_the_chunk(replayed):
    """The bundled replay's export needs less than the chunk budget beyond the Run."""
    for suffix in export.FORMATS:
        assert peak_of_export(replayed, suffix) < export.CHUNK_BYTES


def test_write_returns_the_bytes_it_wrote(busy8):
    """``write`` streams into any binary handle and says how much it wrote."""
    import io

    for suffix in export.FORMATS:
        buffer = io.BytesIO()
        assert export.write(busy8, buffer, suffix) == len(buffer.getvalue()) > 0
        assert buffer.getvalue() == export.encode(busy8, suffix)


# -- size estimates, before any work ------------------------------------------------------------
def wait_share(run) -> float:
    f = run.faults
    return float((ns(f["t_grant_us"]) > ns(f["t_request_us"])).mean())


@pytest.mark.parametrize("name", ["busy8", "big416", "replayed", "v5.15 default", "volatile"])
def test_estimate_is_within_a_quarter_of_the_file(runs, name):
    """:func:`export.estimate` from the counts alone is within ±25% of the file written, for
    runs where up to a fifth of the attempts wait; with the run's own share of waits, within
    ±10% of every run; with ``wait_share=1`` never below it."""
    from kvmviz.presets import volatile_setup

    extra = {
        "v5.15 default": lambda: simulated("v5.15", duration_us=5_000),
        "volatile": lambda: kv.simulate(volatile_setup(n_vcpus=64, duration_us=10_000), "v5.12"),
    }
    run = runs[name] if name in runs else extra[name]()
    share = wait_share(run)
    counts = (len(run.faults), len(run.notifiers))
    for suffix in export.FORMATS:
        size = len(export.encode(run, suffix))
        guess = export.estimate(*counts, suffix, n_vcpus=run.scenario.n_vcpus)
        if share <= 0.2:
            assert 0.75 * size <= guess <= 1.25 * size, (suffix, share, size, guess)
        exact = export.estimate(*counts, suffix, n_vcpus=run.scenario.n_vcpus, wait_share=share)
        assert 0.9 * size <= exact <= 1.1 * size, (suffix, share, size, exact)
        assert export.estimate(*counts, suffix, n_vcpus=run.scenario.n_vcpus, wait_share=1) >= size


def test_estimate_refuses_what_is_not_a_count():
    with pytest.raises(ValueError, match="unknown trace format"):
        export.estimate(1, 1, ".csv")
    with pytest.raises(TypeError, match="n_fault_attempts"):
        export.estimate(1.5, 1, ".json")
    with pytest.raises(ValueError, match="wait_share"):
        export.estimate(1, 1, ".json", wait_share=2)
    assert export.estimate(0, 0, ".json") < export.estimate(1, 0, ".json")


# -- options mean what they say ------------------------------------------------------------------
@pytest.mark.parametrize("window", [(5_000.0, 6_000.0), (3_010.0, 3_011.0)])
def test_a_window_that_misses_the_run_is_refused(busy8, tmp_path, window):
    """A window after the run holds no attempt and no callback: a ValueError naming the window
    and the run's span, nothing written (it used to write a trace of metadata only)."""
    end = max(busy8.faults["t_release_us"].max(), busy8.notifiers["t_done_us"].max())
    assert window[0] > end
    with pytest.raises(ValueError, match=r"window \(.*\) µs holds no fault attempt") as error:
        kv.to_perfetto(busy8, tmp_path / "x.json", window=window)
    assert f"{window[0]:g}" in str(error.value)
    assert f"{end:g} µs" in str(error.value)  # the run's span
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="holds no fault attempt"):
        export.encode(busy8, ".pftrace", window=window)


@pytest.mark.parametrize("force", ["no", "False", 0, 1, None])
def test_force_must_be_a_boolean(busy8, tmp_path, force):
    """``force="no"`` used to overwrite: anything but True/False is a TypeError, and the
    existing file is left as it was."""
    path = tmp_path / "mine.JSON"
    path.write_text("my notes", encoding="utf-8")
    with pytest.raises(TypeError, match="force"):
        kv.to_perfetto(busy8, path, force=force)
    assert path.read_text(encoding="utf-8") == "my notes"


# -- a zap that yielded (chapter 08) -----------------------------------------------------------
@pytest.fixture(scope="module")
def yielded():
    """The exercises' small freeze on v6.7: one zap that yields mmu_lock many times."""
    run = kv.simulate(kv.exercises.FREEZE_SCENE, "v6.7", seed=1)
    assert run.write_holds["yielded"].sum() > 5
    return run


def _zap_stretches(run) -> pd.DataFrame:
    """Brute force from ``run.write_holds``: the zap's holds and, between two, its yields, with
    the readers granted during each yield and how many of those retried."""
    holds = run.write_holds[run.write_holds["callback"] == "invalidate_range_start"]
    f = run.faults
    rows = []
    for k, h in enumerate(holds.itertuples()):
        rows.append(("holding mmu_lock (write)", ns(h.t_grant_us), ns(h.t_release_us), None, None))
        if h.yielded:
            nxt = holds.iloc[k + 1]
            lo, hi = h.t_release_us, nxt.t_grant_us
            inside = (f.t_grant_us >= lo) & (f.t_grant_us < hi)
            rows.append(
                (trace_plan.YIELD_SLICE, ns(lo), ns(hi), int(inside.sum()),
                 int((inside & f.retry).sum()))
            )  # fmt: skip
    return pd.DataFrame(rows, columns=["name", "start", "end", "readers", "futile"])


@pytest.mark.parametrize("suffix", export.FORMATS)
def test_a_yielded_zap_is_a_slice_per_write_hold_and_per_yield(yielded, suffix):
    """Every write hold of the zap is a ``holding mmu_lock (write)`` slice and every gap between
    two a ``yielded mmu_lock`` slice, nested in the callback's slice; each yield's args count
    the readers granted in it and the futile ones among them; every acquisition of
    ``run.lock`` is still one hold slice, and no slice overlaps its parent."""
    if suffix == ".json":
        _names, slices = json_slices(export.chrome_trace(yielded))
    else:
        _tracks, _c, slices, _i, _s = proto_slices(export.perfetto_trace(yielded))
    pd.testing.assert_frame_equal(holds_of(slices), acquisitions(yielded))
    assert_nested(slices)
    expected = _zap_stretches(yielded)
    zap = slices[slices["name"].isin(expected["name"]) & slices["track"].str.startswith("notif")]
    zap = zap[[a["callback"] == "invalidate_range_start" for a in zap["args"]]]
    zap = zap.sort_values("start", ignore_index=True)
    assert zap["name"].tolist() == expected["name"].tolist()
    assert zap["start"].tolist() == expected["start"].tolist()
    assert zap["end"].tolist() == expected["end"].tolist()
    gaps = zap["name"] == trace_plan.YIELD_SLICE
    assert [a["readers let in"] for a in zap.loc[gaps, "args"]] == expected["readers"].dropna(
    ).astype(int).tolist()  # fmt: skip
    futile = [a["futile reads let in"] for a in zap.loc[gaps, "args"]]
    assert futile == expected["futile"].dropna().astype(int).tolist() and sum(futile) > 0
    k = len(zap) - int(gaps.sum())
    assert [a["write hold"] for a in zap.loc[~gaps, "args"]] == [f"{j} of {k}" for j in
                                                                 range(1, k + 1)]  # fmt: skip
    assert all(a["flushed"] for a in zap.loc[~gaps, "args"][:-1])


def test_a_yielded_zap_flows_from_the_stretch_each_fault_queued_behind(yielded):
    """In the .pftrace each fault attempt that queued behind the zap (``blocked_by``) gets one
    flow, from the zap's slice (its wait, a write hold or a yield) in which the fault asked for
    the lock: the latest of them to start at or before the fault's request."""
    _tracks, _c, slices, _i, _s = proto_slices(export.perfetto_trace(yielded))
    n = yielded.notifiers
    row = int(np.flatnonzero((n["callback"] == "invalidate_range_start").to_numpy())[0])
    f = yielded.faults
    behind = f[(f["blocked_by"] == row) & (ns(f["t_grant_us"]) > ns(f["t_request_us"]))]
    out = {fid: i for i, ids in zip(slices.index, slices["flows_out"], strict=True) for fid in ids}
    into = {fid: i for i, ids in zip(slices.index, slices["flows_in"], strict=True) for fid in ids}
    assert set(out) == set(into) and len(out) == len(behind) > 10
    zap = slices[
        slices["track"].str.startswith("notif")
        & (slices["depth"] == 1)
        & np.array([a.get("callback") == "invalidate_range_start" for a in slices["args"]])
    ].sort_values("start")
    starts = zap["start"].to_numpy()
    for fid, src in out.items():
        target = slices.loc[into[fid]]
        assert target["name"] == "waiting for mmu_lock (read)"
        asked = target["start"]
        expected = zap.index[np.searchsorted(starts, asked, side="right") - 1]
        assert src == expected, (slices.loc[src, "name"], asked)
    names = set(slices.loc[list(out.values()), "name"])
    assert trace_plan.YIELD_SLICE in names or "holding mmu_lock (write)" in names
