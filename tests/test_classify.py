"""kvmviz.classify: which callbacks a notification runs, which hit a memslot, what each does.

``callbacks`` expands a notification stream into its callbacks and applies the kernel's rules
to each; it is checked here against a brute-force oracle written from the kernel's text: a
callback hits when its hva range overlaps a memslot's (``__kvm_handle_hva_range`` clips the range
to each slot and skips the empty ones), the single-hva callbacks (``change_pte``,
``test_young``) reach one page, and the rule is ``kernels.rule(kernel, callback, hit)``.
``Counters`` is the count/seq state machine of ``kvm_inc_notifier_count`` /
``kvm_dec_notifier_count``, checked against a model that recomputes the state from the whole
history. ``records`` and ``phase_summary`` are checked on the real Linux 6.18 trace of data/.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _traces import PHASES, VMM_PID
from hypothesis import given, settings
from hypothesis import strategies as st

import kvmviz as kv
from kvmviz import classify
from kvmviz import traces as kt
from kvmviz.kernels import CALLBACKS, KERNELS, RELEASES, rule
from kvmviz.memslots import PAGE_SIZE, GfnRange
from kvmviz.notifiers import EVENT_KINDS

START, END = "invalidate_range_start", "invalidate_range_end"


# -- callbacks: the brute-force oracle ------------------------------------------------------------
def oracle_callbacks(events, layout, kernel):
    """Each event's callbacks in order, with hit and rule, by hand: one row per callback. From
    v6.10 there is no change_pte (f3b65bbaed7c): its events run the rest of their sequence."""
    rows = []
    for event, kind, start, end in events:
        sequence = _sequence(kind, kernel)
        for position, callback in enumerate(sequence):
            lo, hi = (
                (start, start + PAGE_SIZE)
                if callback in ("change_pte", "test_young")
                else (
                    start,
                    end,
                )
            )
            # __kvm_handle_hva_range: clip [lo, hi) to the slot's hvas, skip it if empty.
            hit = any(
                max(lo, s.userspace_addr) < min(hi, s.userspace_addr + s.npages * PAGE_SIZE)
                for s in layout
            )
            r = rule(kernel, callback, hit)
            rows.append(
                {
                    "event": event,
                    "position": position,
                    "last": position == len(sequence) - 1,
                    "callback": callback,
                    "hva_start": lo,
                    "hva_end": hi,
                    "hit": hit,
                    "locked": r.takes_lock,
                    "count_delta": r.count_delta,
                    "bumps_seq": r.bumps_seq,
                    "flush_on_ret": r.flush_on_ret,
                }
            )
    return rows


# The releases that still register change_pte, typed out: v5.12 to v6.9.
_WITH_CHANGE_PTE = {f"v5.{m}" for m in range(12, 20)} | {f"v6.{m}" for m in range(10)}


def _sequence(kind, kernel):
    """The callbacks an event of ``kind`` runs on ``kernel``, from EVENT_KINDS by hand."""
    return [cb for cb in EVENT_KINDS[kind] if cb != "change_pte" or kernel in _WITH_CHANGE_PTE]


PAGES = 64  # a small hva space, so that ranges hit and miss alike


@st.composite
def layouts(draw):
    """0 to 4 memslots in both address spaces, gfns apart, hvas anywhere (they may alias)."""
    slots = []
    for i in range(draw(st.integers(0, 4))):
        slots.append(
            kv.Memslot(
                slot=i,
                base_gfn=i * PAGES,
                npages=draw(st.integers(1, 16)),
                userspace_addr=draw(st.integers(0, PAGES)) * PAGE_SIZE,
                as_id=draw(st.integers(0, 1)),
            )
        )
    return kv.MemslotLayout(slots)


@st.composite
def streams(draw):
    """1 to 12 events of any kind on page-aligned ranges of 1 to 16 pages, with unique ids
    in no particular order."""
    n = draw(st.integers(1, 12))
    ids = draw(st.lists(st.integers(0, 10_000), min_size=n, max_size=n, unique=True))
    events = []
    for event in ids:
        kind = draw(st.sampled_from(sorted(EVENT_KINDS)))
        start = draw(st.integers(0, PAGES + 16)) * PAGE_SIZE
        events.append((event, kind, start, start + draw(st.integers(1, 16)) * PAGE_SIZE))
    return events


def _frame(events):
    return pd.DataFrame(
        {
            "event": [e[0] for e in events],
            "kind": [e[1] for e in events],
            "hva_start": np.array([e[2] for e in events], dtype=np.uint64),
            "hva_end": np.array([e[3] for e in events], dtype=np.uint64),
        }
    )


@settings(max_examples=300, deadline=None)
@given(events=streams(), layout=layouts(), kernel=st.sampled_from(RELEASES))
def test_callbacks_agree_with_the_brute_force_oracle(events, layout, kernel):
    """For random streams and layouts on any release, every callback's range, hit and rule is
    the oracle's: hit is any memslot overlap computed by hand, locked/count/seq/flush_on_ret are
    kernels.rule's, and from v6.10 no event runs change_pte."""
    got = classify.callbacks(_frame(events), layout, kernel)
    expected = pd.DataFrame(oracle_callbacks(events, layout, kernel))
    columns = list(expected.columns)
    assert got[columns].astype(object).to_dict("records") == expected.astype(object).to_dict(
        "records"
    )


@settings(max_examples=100, deadline=None)
@given(events=streams(), layout=layouts(), kernel=st.sampled_from(RELEASES))
def test_callbacks_keep_the_stream_order_and_name_each_row(events, layout, kernel):
    """Events come out in the stream's order (not sorted by id), each as its kind's callback
    sequence on the release; ``row`` points back at the event's row, ``code`` indexes
    CALLBACKS, ``position`` counts from 0 within each event and ``last`` marks its end."""
    got = classify.callbacks(_frame(events), layout, kernel)
    expected_events = [e for e, kind, _, _ in events for _ in _sequence(kind, kernel)]
    assert got["event"].tolist() == expected_events
    assert got["row"].tolist() == [
        i for i, (_, kind, _, _) in enumerate(events) for _ in _sequence(kind, kernel)
    ]
    assert [CALLBACKS[c] for c in got["code"]] == got["callback"].tolist()
    assert len(got) == sum(len(_sequence(kind, kernel)) for _, kind, _, _ in events)
    assert got["position"].tolist() == [
        j for _, kind, _, _ in events for j in range(len(_sequence(kind, kernel)))
    ]
    assert got["last"].tolist() == [
        j == len(_sequence(kind, kernel)) - 1
        for _, kind, _, _ in events
        for j in range(len(_sequence(kind, kernel)))
    ]


@settings(max_examples=100, deadline=None)
@given(events=streams(), layout=layouts())
def test_single_hva_callbacks_reach_one_page(events, layout):
    """change_pte and test_young carry one hva: their range is one page from the event's start,
    whatever the event's own range; every other callback carries the event's range."""
    got = classify.callbacks(_frame(events), layout, "v5.15")
    single = got["callback"].isin(["change_pte", "test_young"])
    width = (got["hva_end"] - got["hva_start"]).astype(np.int64)
    assert (width[single] == PAGE_SIZE).all()
    ends = {e: end for e, _, _, end in events}
    assert (got.loc[~single, "hva_end"] == got.loc[~single, "event"].map(ends)).all()
    assert classify.SINGLE_HVA == {"change_pte", "test_young"}


def test_callbacks_of_a_spurious_pair_and_a_hit_ksm_merge_by_hand():
    """A pair on the VMM's heap misses: it locks on v5.13 (the on_lock path) but not on v5.15.
    A KSM merge on guest RAM is two start/change_pte/end triples, all hits, locked on both."""
    layout = kv.MemslotLayout([kv.Memslot(0, 0, 16, 0x10000)])
    stream = _frame([(7, "pair", 0x1000, 0x3000), (3, "ksm_merge", 0x10000, 0x11000)])
    v513 = classify.callbacks(stream, layout, "v5.13")
    v515 = classify.callbacks(stream, layout, "v5.15")
    assert v513["callback"].tolist()[:2] == [START, END]
    assert v513["callback"].tolist()[2:] == [START, "change_pte", END] * 2
    assert v513["event"].tolist() == [7, 7, 3, 3, 3, 3, 3, 3]
    assert v513["hit"].tolist() == [False, False] + [True] * 6
    assert v513["locked"].tolist() == [True] * 8
    assert v515["locked"].tolist() == [False, False] + [True] * 6
    assert v515["count_delta"].tolist() == [0, 0, 1, 0, -1, 1, 0, -1]
    assert v515["bumps_seq"].tolist() == [False, False, False, False, True, False, False, True]
    assert v515["flush_on_ret"].tolist() == [True, False] + [True, True, False] * 2
    assert v515["last"].tolist() == [False, True] + [False] * 5 + [True]


def test_a_ksm_merge_on_v6_18_runs_no_change_pte():
    """From v6.10 (f3b65bbaed7c) a KSM merge is two plain start/end pairs and a COW ("move")
    one: the same counters and locks as a pair, positions and ``last`` counted without the
    missing callback; v6.9 still runs the triples."""
    layout = kv.MemslotLayout([kv.Memslot(0, 0, 16, 0x10000)])
    stream = _frame([(3, "ksm_merge", 0x10000, 0x11000), (4, "move", 0x10000, 0x11000)])
    v618 = classify.callbacks(stream, layout, "v6.18")
    assert "change_pte" not in set(v618["callback"])
    assert v618["callback"].tolist() == [START, END, START, END, START, END]
    assert v618["event"].tolist() == [3, 3, 3, 3, 4, 4]
    assert v618["position"].tolist() == [0, 1, 2, 3, 0, 1]
    assert v618["last"].tolist() == [False, False, False, True, False, True]
    assert v618["locked"].tolist() == [True] * 6
    assert v618["count_delta"].tolist() == [1, -1, 1, -1, 1, -1]
    assert v618["bumps_seq"].tolist() == [False, True, False, True, False, True]
    assert v618["flush_on_ret"].tolist() == [True, False] * 3
    assert classify.callbacks(stream, layout, "6.10")["callback"].tolist() == [START, END] * 3
    v69 = classify.callbacks(stream, layout, "6.9")
    assert v69["callback"].tolist() == [START, "change_pte", END] * 3
    assert v69["last"].tolist() == [False] * 5 + [True, False, False, True]


@pytest.mark.parametrize(
    ("kernel", "flushes"),
    [
        # clear_flush_young flushes (flush_on_ret) up to v6.12; b9883ee40d7e (v6.13) stops
        # it on x86; from v6.15 (aa34b811650c) no aging callback takes the lock at all.
        ("v5.12", True),
        ("v5.15", True),
        ("v6.12", True),
        ("v6.13", False),
        ("v6.14", False),
        ("v6.15", False),
        ("v6.18", False),
    ],
)
def test_clear_flush_young_flushes_by_release(kernel, flushes):
    """flush_on_ret comes from the release's rule, not from one table: a hit clear_flush_young
    flushes until v6.13; start always may, end and the other aging calls never."""
    layout = kv.MemslotLayout([kv.Memslot(0, 0, 16, 0x10000)])
    stream = _frame([(0, "clear_flush_young", 0x10000, 0x11000), (1, "pair", 0x10000, 0x11000)])
    got = classify.callbacks(stream, layout, kernel)
    assert got["flush_on_ret"].tolist() == [flushes, True, False]
    locks = kernel not in ("v6.15", "v6.18")
    assert got["locked"].tolist() == [locks, True, True]


def test_callbacks_take_any_spelling_of_a_release():
    """The release spelled "6.18", "v6.18" or as a uname -r of 6.18 gives the same frame."""
    layout = kv.MemslotLayout([kv.Memslot(0, 0, 16, 0x10000)])
    stream = _frame([(0, "ksm_merge", 0x10000, 0x11000), (1, "clear_young", 0, PAGE_SIZE)])
    want = classify.callbacks(stream, layout, "v6.18")
    for spelling in ("6.18", "6.18.2", "6.18.0-1-pve"):
        pd.testing.assert_frame_equal(classify.callbacks(stream, layout, spelling), want)


def test_callbacks_refuse_an_unknown_kernel_or_kind():
    """An unknown or out-of-range release, or an unknown event kind, is refused, naming what
    is expected (the range of releases)."""
    layout = kv.MemslotLayout([])
    with pytest.raises(ValueError, match=r"'v6\.19' is outside .* v5\.12 to v6\.18"):
        classify.callbacks(_frame([(0, "pair", 0, PAGE_SIZE)]), layout, "v6.19")
    with pytest.raises(ValueError, match=r"unknown kernel 'linux'.*v5\.12 to v6\.18"):
        classify.callbacks(_frame([(0, "pair", 0, PAGE_SIZE)]), layout, "linux")
    with pytest.raises(ValueError, match="event kinds must be among"):
        classify.callbacks(_frame([(0, "munmap", 0, PAGE_SIZE)]), layout, "v5.12")


def test_first_callbacks_keep_one_row_per_event():
    """first_callbacks keeps each event's first callback (a pair's start); a frame without an
    event column is returned as it is."""
    layout = kv.MemslotLayout([kv.Memslot(0, 0, 16, 0x10000)])
    stream = _frame([(7, "pair", 0x1000, 0x3000), (3, "ksm_merge", 0x10000, 0x11000)])
    first = classify.first_callbacks(classify.callbacks(stream, layout, "v5.12"))
    assert first["event"].tolist() == [7, 3]
    assert first["callback"].tolist() == [START, START]
    assert first["hit"].tolist() == [False, True]
    plain = pd.DataFrame({"callback": ["clear_young"]})
    assert classify.first_callbacks(plain) is plain


# -- Counters: grant/release sequences against a model of the whole history ------------------------
def counters_model(history):
    """count, seq and the range, recomputed from the whole history of (op, ...) steps: count is
    the +1 grants less the -1 releases, seq the releases that bump it, the range the union of the
    +1 grants since the last one that found count at 0."""
    count = sum(1 for h in history if h[0] == "grant" and h[1] > 0) - sum(
        1 for h in history if h[0] == "release" and h[2] < 0
    )
    seq = sum(1 for h in history if h[0] == "release" and h[1])
    ranges, running = [], 0
    for h in history:
        if h[0] == "grant" and h[1] > 0:
            if running == 0:
                ranges = []
            ranges.append((h[2], h[3]))
            running += 1
        elif h[0] == "release" and h[2] < 0:
            running -= 1
    lo = min((r[0] for r in ranges), default=0)
    hi = max((r[1] for r in ranges), default=0)
    return count, seq, lo, hi


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_counters_follow_the_model_of_the_whole_history(data):
    """After any valid sequence of grants and releases (never more ends than starts), Counters
    holds the count, seq and range the whole-history model computes."""
    c, history, open_starts = classify.Counters(), [], 0
    for _ in range(data.draw(st.integers(0, 30))):
        if open_starts and data.draw(st.booleans()):
            step = ("release", data.draw(st.booleans()), -1)
            open_starts -= 1
        elif data.draw(st.booleans()):
            lo = data.draw(st.integers(0, 100)) * PAGE_SIZE
            step = ("grant", 1, lo, lo + data.draw(st.integers(1, 8)) * PAGE_SIZE)
            open_starts += 1
        else:  # a callback that moves no count (change_pte, aging), released with or without seq++
            step = data.draw(st.sampled_from([("grant", 0, 0, PAGE_SIZE), ("release", True, 0)]))
        history.append(step)
        if step[0] == "grant":
            c.grant(step[1], step[2], step[3])
        else:
            c.release(step[1], step[2])
        assert (c.count, c.seq, c.range_start, c.range_end) == counters_model(history)


def test_counters_by_hand_two_overlapping_invalidations():
    """Two starts widen the range to their union; each end bumps seq before dropping count; a
    start after count went back to 0 sets a fresh range."""
    c = classify.Counters()
    assert (c.count, c.seq, c.range_start, c.range_end) == (0, 0, 0, 0)
    c.grant(1, 0x1000, 0x2000)
    c.grant(1, 0x5000, 0x6000)
    assert (c.count, c.range_start, c.range_end) == (2, 0x1000, 0x6000)
    c.grant(0, 0x9000, 0xA000)  # change_pte: no count, no range
    assert (c.count, c.range_start, c.range_end) == (2, 0x1000, 0x6000)
    c.release(True, -1)
    assert (c.count, c.seq) == (1, 1)
    c.release(True, -1)
    assert (c.count, c.seq) == (0, 2)
    assert (c.range_start, c.range_end) == (0x1000, 0x6000)  # left as it was
    c.grant(1, 0x9000, 0xA000)
    assert (c.count, c.seq, c.range_start, c.range_end) == (1, 2, 0x9000, 0xA000)


# -- records and phase_summary on the real trace ------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "trace.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_records_columns(events, classified):
    """records() adds a nullable hit and the gfn ranges to notifier records only, leaving the input
    as it was: the relevant madvise reaches 16 gfns of slot 1."""
    assert classified["hit"].dtype == "boolean"
    notifier = classified["callback"].notna()
    assert classified.loc[~notifier, "hit"].isna().all()
    assert classified.loc[notifier, "hit"].notna().all()
    assert classified.loc[~notifier, "gfn_ranges"].isna().all()
    hits = classified[classified["hit"].fillna(False)]
    misses = classified[notifier & ~classified["hit"].fillna(False)]
    assert (misses["gfn_ranges"].map(len) == 0).all()
    assert (hits["gfn_ranges"].map(len) > 0).all()
    assert "hit" not in events.columns  # the input is not modified
    # The madvise of the relevant phase: 16 pages at the start of slot 1.
    row = classified[(classified["phase"] == "relevant_madv") & (classified["pid"] == VMM_PID)]
    row = row[row["event"] == "kvm_unmap_hva_range"].iloc[0]
    assert row.gfn_ranges == [GfnRange(as_id=0, slot=1, gfn_start=0x10000, gfn_end=0x10010)]


def _unmaps(classified, phase):
    rows = classified[(classified["phase"] == phase)]
    return rows[rows["event"] == "kvm_unmap_hva_range"]


@pytest.mark.parametrize("phase", ["spurious_munmap", "spurious_madv"])
def test_spurious_phases_are_all_misses(classified, phase):
    """The VMM's ~200 munmaps and madvises of its own memory all miss the memslots."""
    unmaps = _unmaps(classified, phase)
    assert 190 <= len(unmaps) <= 210  # "about 200"
    assert not unmaps["hit"].any()
    assert (unmaps["pid"] == VMM_PID).all()


def test_relevant_madv_hits(classified):
    """The 200 madvises of guest memory all hit; the only 3 misses are the vCPU thread's stack
    teardown after them."""
    unmaps = _unmaps(classified, "relevant_madv")
    vmm = unmaps[unmaps["pid"] == VMM_PID]
    assert len(vmm) == 200 and vmm["hit"].all()
    # The only misses: the vCPU thread tearing down its stack as it exits, after the madvises.
    others = unmaps[unmaps["pid"] != VMM_PID]
    assert len(others) == 3 and not others["hit"].any()
    assert others["line"].min() > vmm["line"].max()


def test_write_contention_only_where_notifiers_hit(classified):
    """The 19 writers waiting for mmu_lock are all in relevant_madv; the spurious phases have
    none."""
    begin = classified[classified["event"] == "contention_begin"]
    write = begin[begin["lock_flags"].astype(str).str.contains("WRITE")]
    by_phase = write["phase"].value_counts()
    assert by_phase["relevant_madv"] == 19
    for phase in ("idle", "spurious_munmap", "spurious_madv"):
        assert by_phase[phase] == 0


def test_phase_summary(classified):
    """phase_summary counts each phase's records, callbacks, hits and misses and contention, and its
    totals are the frame's."""
    summary = classify.phase_summary(classified)
    assert list(summary.index) == PHASES
    assert summary.index.name == "phase"
    s = summary.loc
    assert s["spurious_munmap", "invalidate_range_start"] == 200
    assert s["spurious_munmap", "misses"] == 200 and s["spurious_munmap", "hits"] == 0
    assert s["spurious_madv", "misses"] == 200 and s["spurious_madv", "hits"] == 0
    assert s["relevant_madv", "hits"] == 200 and s["relevant_madv", "misses"] == 3
    assert s["relevant_madv", "contention_begin[SPIN|WRITE]"] == 19
    assert summary["contention_begin[SPIN|WRITE]"].drop("relevant_madv").eq(0).all()
    assert 185 <= s["ksm", "hits"] <= 200  # ~192 single-page hits
    # kdamond's aging: clear_young (DAMON never flushes) and test_young; no clear_flush_young.
    assert (s["aging", "clear_young"], s["aging", "test_young"]) == (127, 96)
    assert summary["clear_young"].sum() == 167 and summary["clear_flush_young"].eq(0).all()
    assert s["aging", "misses"] > 10 * s["aging", "hits"]  # mostly misses
    assert summary["change_pte"].eq(0).all() and summary["page_faults"].eq(0).all()
    # Totals agree with the frame.
    assert summary["records"].sum() == len(classified)
    assert summary["notifiers"].sum() == classified["callback"].notna().sum()
    assert (summary["hits"] + summary["misses"]).tolist() == summary["notifiers"].tolist()
    callbacks = [
        "invalidate_range_start",
        "change_pte",
        "clear_flush_young",
        "clear_young",
        "test_young",
    ]
    assert summary[callbacks].sum(axis=1).tolist() == summary["notifiers"].tolist()
    assert summary["contention_end"].sum() == 80
    assert summary["start_us"].is_monotonic_increasing
    assert (summary["duration_us"] >= 0).all()
    assert s["idle", "start_us"] == 0.0


def test_phase_summary_needs_classify(events):
    """phase_summary of a frame records() did not mark is refused, pointing at records."""
    with pytest.raises(ValueError, match=r"lacks columns \['hit'\].*records"):
        classify.phase_summary(events)


def test_phase_summary_records_before_the_first_mark(tmp_path):
    """Records before the first PHASE mark are counted under '(none)', first, with their own
    duration."""
    path = write(
        tmp_path,
        " a-1 [000] 1.000000: kvm_test_age_hva: mmu notifier test age hva: 0x1000\n"
        " a-1 [000] 2.000000: tracing_mark_write: PHASE one\n"
        " a-1 [000] 3.000000: kvm_test_age_hva: mmu notifier test age hva: 0x9000\n",
    )
    layout = kv.MemslotLayout([kv.Memslot(slot=0, base_gfn=0, npages=4, userspace_addr=0x8000)])
    summary = classify.phase_summary(classify.records(kt.load_ftrace(path), layout))
    assert list(summary.index) == ["(none)", "one"]
    assert summary["test_young"].tolist() == [1, 1]
    assert summary["hits"].tolist() == [0, 1]
    assert summary["duration_us"].tolist() == [1e6, 1e6]


def test_event_hits_is_the_hit_of_each_events_first_callback():
    """One bool per event, the hit of its first callback: a pair on guest memory hits, one on
    the VMM's heap misses, and a test_young reaches one page only (so a range that would
    reach the slot from below misses)."""
    layout = kv.MemslotLayout([kv.Memslot(0, 0, 16, 1 << 30)])
    page = 4096
    stream = pd.DataFrame(
        {
            "event": [0, 1, 2, 3],
            "kind": ["pair", "pair", "test_young", "clear_young"],
            "hva_start": np.array([1 << 30, 1 << 20, (1 << 30) - page, (1 << 30) - page], "u8"),
            "hva_end": np.array(
                [(1 << 30) + page, 2 << 20, (1 << 30) + page, (1 << 30) + page], "u8"
            ),
        }
    )
    assert classify.event_hits(stream, layout).tolist() == [True, False, False, True]
    by_callbacks = classify.first_callbacks(classify.callbacks(stream, layout, "v5.15"))["hit"]
    assert by_callbacks.tolist() == [True, False, False, True]


# -- the retry rule: one statement, a compiled twin -----------------------------------------------
retry_inputs = st.tuples(
    st.integers(0, 3),  # mmu_notifier_count
    st.integers(0, 2**20),  # range_start
    st.integers(0, 2**20),  # range_end
    st.integers(0, 2**20),  # the fault's hva
    st.integers(0, 5),  # seq when checked
    st.integers(0, 5),  # seq when sampled
)


@settings(max_examples=300, deadline=None)
@given(st.lists(retry_inputs, min_size=1, max_size=30))
def test_the_retry_rule_is_one_rule_in_python_numpy_and_the_compiled_loop(cases):
    """``mmu_notifier_retry_hva`` (kvm_host.h, 4a42d848db95): retry iff an invalidation is in
    flight (count != 0) over the hva, half-open, or seq moved. The scalar path, the array path
    and the compiled loop's twin all agree with that sentence, case by case."""
    from kvmviz.model._closed_loop import retry_hva

    expected = [(n != 0 and lo <= hva < hi) or now != seq for n, lo, hi, hva, now, seq in cases]
    scalar = [classify.mmu_notifier_retry_hva(*case) for case in cases]
    assert scalar == expected
    assert all(type(x) is bool for x in scalar)
    columns = [np.array(column) for column in zip(*cases, strict=True)]
    assert classify.mmu_notifier_retry_hva(*columns).tolist() == expected
    assert [bool(retry_hva(*case)) for case in cases] == expected
    plain = getattr(retry_hva, "py_func", retry_hva)  # the same source, not compiled
    assert [bool(plain(*case)) for case in cases] == expected


# -- the memslot walk: how long each callback walks, per kernel -----------------------------------
def oracle_walk(callback, kernel, one_walk, tdp_mmu):
    """One callback's walk, from the kernel's text: none for the end before v5.15 (v5.12's
    counts under the lock; v5.13's and v5.14's on_lock path has a null handler, f922bd9bf33b),
    two on v5.12 with the TDP MMU (rmaps, then per TDP root, until 3039bcc74498), else one."""
    if callback == END and kernel in ("v5.12", "v5.13", "v5.14"):
        return 0.0
    if kernel == "v5.12" and tdp_mmu:
        return one_walk * 2
    return one_walk


@pytest.mark.parametrize(
    ("kernel", "tdp_mmu", "expected"),
    [
        # start, end, change_pte, clear_flush_young, with one walk of 1.25 µs
        ("v5.12", True, [2.5, 0.0, 2.5, 2.5]),
        ("v5.12", False, [1.25, 0.0, 1.25, 1.25]),
        ("v5.13", True, [1.25, 0.0, 1.25, 1.25]),
        ("v5.13", False, [1.25, 0.0, 1.25, 1.25]),
        ("v5.14", True, [1.25, 0.0, 1.25, 1.25]),
        ("5.14", False, [1.25, 0.0, 1.25, 1.25]),
        ("v5.15", True, [1.25, 1.25, 1.25, 1.25]),
        ("v6.18", True, [1.25, 1.25, 1.25, 1.25]),
        ("v5.15", False, [1.25, 1.25, 1.25, 1.25]),
    ],
)
def test_walk_costs_by_hand(kernel, tdp_mmu, expected):
    """v5.12 with the TDP MMU walks twice; invalidate_range_end never walks before v5.15 (so
    not on v5.14 either); from v5.15 every callback walks once."""
    names = [START, END, "change_pte", "clear_flush_young"]
    code = [CALLBACKS.index(c) for c in names]
    walk = classify.walk_costs(code, kernel, memslot_walk_us=1.25, tdp_mmu=tdp_mmu)
    assert walk.dtype == float and walk.tolist() == expected


def test_walk_costs_of_no_callback_and_an_unknown_kernel():
    assert classify.walk_costs([], "v5.15", memslot_walk_us=1.0, tdp_mmu=True).shape == (0,)
    with pytest.raises(ValueError, match=r"outside .* v5\.12 to v6\.18"):
        classify.walk_costs([0], "v4.19", memslot_walk_us=1.0, tdp_mmu=True)
    with pytest.raises(ValueError, match=r"unknown kernel"):
        classify.walk_costs([0], "latest", memslot_walk_us=1.0, tdp_mmu=True)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(CALLBACKS), max_size=20),
    st.sampled_from(RELEASES),
    st.floats(0.0, 100.0, allow_nan=False),
    st.booleans(),
)
def test_walk_costs_agree_with_the_oracle(names, kernel, one_walk, tdp_mmu):
    """Callback by callback, the array rule is the oracle's sentence, to the bit."""
    code = np.array([CALLBACKS.index(c) for c in names], dtype=np.int64)
    walk = classify.walk_costs(code, kernel, memslot_walk_us=one_walk, tdp_mmu=tdp_mmu)
    assert walk.tolist() == [oracle_walk(c, kernel, one_walk, tdp_mmu) for c in names]


@pytest.mark.parametrize("kernel", KERNELS)
def test_the_engine_walks_as_the_rule_says(kernel):
    """A callback that skips mmu_lock spends exactly its walk outside it (engine.callback_costs)."""
    scenario = kv.Scenario(n_vcpus=4, duration_us=20_000.0, spurious_share=1.0)
    stream = kv.notifiers.generate_stream(scenario, 0)
    costs = kv.engine.callback_costs(scenario, kernel, stream)
    walk = classify.walk_costs(
        costs["code"], kernel, memslot_walk_us=scenario.memslot_walk_us, tdp_mmu=True
    )
    skipped = ~costs["locked"].to_numpy()
    assert costs["walk_us"].to_numpy()[skipped].tolist() == walk[skipped].tolist()
    assert (costs["walk_us"].to_numpy()[~skipped] == 0).all()
