"""kvmviz.exercises: every generator's answer computed again by an oracle of its own.

For each kind of ``kvmviz quiz`` (:data:`kvmviz.exercises.KINDS`) the tests below take the
parameters the exercise asked about (its ``scene``: the memslots, the range, the kernel, the
lock requests, the callbacks, the trace lines, the run), compute the answer with an
independent brute-force oracle (tests/_exercise_oracles.py: the kernel's rules transcribed,
sharing no code with the package), and check that the exercise accepts that answer in every
spelling the question promises and rejects a wrong one. The *question a learner sees* states
every one of those parameters as the scene has them (test_every_question_states_its_scene,
below), so the text alone decides the answer; munmap-on-guest is also answered from its
printed numbers alone. The hold of a callback is checked against the cost rules (a lock round
trip, ``walks x n`` memslot visits, the zap of a page, one VM-wide TLB flush), trying every n.

At the bottom, kvmviz.rwlock.replay checked against the code-level lock oracle the lock
exercises are built on.
"""

from __future__ import annotations

import argparse
import functools
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _exercise_oracles import (
    CALLBACKS_OF,
    END,
    FAULT_HVA,
    LAYOUT,
    LOCKS_ON_MISS,
    PAGE,
    PHRASES,
    RAM,
    START,
    WALKS,
    WITH_CHANGE_PTE,
    callback_streams,
    lock_oracle,
    overlaps,
    page_hits,
    precheck_oracle,
    requests,
    retry_oracle,
    zap_yields_oracle,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import kvmviz as kv
from kvmviz import cli, exercises
from kvmviz.engine import scripted_run
from kvmviz.exercises import CallbackOrderExercise, costs, lock_order, trace_counts
from kvmviz.exercises.base import _parse
from kvmviz.exercises.render import markdown_to_html
from kvmviz.memslots import PAGE_SIZE
from kvmviz.notifiers import EVENT_KINDS
from kvmviz.presets import VMM_HEAP, many_memslots_layout

ROOT = Path(__file__).resolve().parent.parent
SEEDS = range(200)
HEX = r"0x[0-9a-f]+"
DEFAULT = kv.Scenario()


def _accepts(q, spellings) -> None:
    for typed in spellings:
        ok, why = q.check(typed)
        assert ok, f"{q.kind} -s {q.seed}: {typed!r} is right but was marked wrong: {why}"
        assert why.startswith("Right!")


def _rejects(q, wrong) -> None:
    ok, why = q.check(wrong)
    assert not ok, f"{q.kind} -s {q.seed}: {wrong!r} is wrong but was accepted"
    assert why.startswith(("Not quite", "Not understood"))


def _slot_lines(layout, gfns: bool = False) -> list[str]:
    """How a question lists each memslot, one line each (written here, not by the package)."""
    return [
        f"- slot {s.slot} (as_id {s.as_id}): "
        + (f"gfn [{s.base_gfn:#x}, {s.base_gfn + s.npages:#x}) at " if gfns else "")
        + f"hva [{s.hva_start:#x}, {s.hva_end:#x})"
        for s in layout
    ]


def _requests(scene) -> tuple[list, list, list]:
    """The lock requests of a grant-order or reader-wait scene, as lists."""
    return (
        [int(a) for a in scene.arrival],
        [bool(w) for w in scene.is_writer],
        [int(h) for h in scene.hold],
    )


# -- KINDS and quiz: one spelling per kind ----------------------------------------------------
def test_every_quiz_kind_is_covered_here():
    """Each `kvmviz quiz` kind has an oracle in this file."""
    assert set(exercises.KINDS) == set(ORACLES)


def test_the_cli_asks_the_kinds_of_the_exercises_module():
    """`kvmviz quiz` offers exactly exercises.KINDS: one table, one spelling, hyphenated."""
    quiz = next(a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    kind = next(a for a in quiz.choices["quiz"]._actions if a.dest == "kind")
    assert list(kind.choices) == sorted(exercises.KINDS)
    assert list(exercises.KINDS) == [
        "takes-lock",
        "zapped-gfns",
        "hit-or-miss",
        "callback-order",
        "trace-count",
        "grant-order",
        "reader-wait",
        "must-retry",
        "munmap-on-guest",
        "walk-threshold",
        "flush-hold",
        "first-vcpus-above",
        "ksm-hits",
        "v513-locks",
        "queued-behind",
        "zap-yields",
        "precheck-lock",
        "futile-reads",
    ]
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", kind) for kind in exercises.KINDS)


FAST_KINDS = sorted(set(exercises.KINDS) - {"walk-threshold", "first-vcpus-above"})


@pytest.mark.parametrize("kind", FAST_KINDS)
def test_an_exercise_is_spelled_as_its_kind(kind):
    """An exercise's kind is its key in KINDS, and quiz(kind, seed) gives that exercise."""
    for seed in (0, 1, 7):
        q = exercises.quiz(kind, seed)
        assert q.kind == kind
        assert q.seed == seed
        direct = exercises.KINDS[kind](seed=seed)
        assert (q.question, q.answer) == (direct.question, direct.answer)
        assert q.command == f"kvmviz quiz {kind} -s {seed}"


def test_the_policy_is_an_option_of_the_lock_kinds():
    """grant-order and reader-wait keep the policy in `options` (qrwlock, the default, is left
    out): the kind stays one spelling, and `command` says how to ask the same question again."""
    q = exercises.grant_order(seed=2, policy="reader-pref")
    assert (q.kind, q.options) == ("grant-order", {"policy": "reader-pref"})
    assert q.command == "kvmviz quiz grant-order -s 2 --policy reader-pref"
    assert str(q).startswith("[grant-order, seed 2, policy reader-pref] Under **reader-pref**")
    again = exercises.quiz(q.kind, q.seed, **q.options)
    assert (again.question, again.answer) == (q.question, q.answer)
    assert exercises.reader_wait(seed=5, policy="spinlock").options == {"policy": "spinlock"}
    assert exercises.grant_order(seed=2).options == {}


def test_quiz_refuses_an_unknown_kind_or_option_by_name():
    """An unknown kind names the kinds; an option a kind does not take names its options."""
    with pytest.raises(ValueError, match=r"^kind = 'takes_lock': expected one of takes-lock, "):
        exercises.quiz("takes_lock", 0)
    with pytest.raises(ValueError, match=r"^takes-lock takes no option policy \(options: none\)$"):
        exercises.quiz("takes-lock", 0, policy="spinlock")
    with pytest.raises(ValueError, match=r"^grant-order takes no option n \(options: policy\)$"):
        exercises.quiz("grant-order", 0, n=4)


@pytest.mark.parametrize("kind", FAST_KINDS)
def test_an_exercise_keeps_the_scene_it_asked_about(kind):
    """Every generator is a Generator whose hooks run in turn: the exercise keeps its scene,
    and the hooks on that scene give the same question, answer and explanation again."""
    from kvmviz.exercises.base import Generator, Scene

    for seed in (0, 3):
        q = exercises.quiz(kind, seed)
        assert isinstance(q.scene, Scene) and vars(q.scene)
        generator = next(
            g for g in vars(_module_of(kind)).values()
            if isinstance(g, Generator) and g.kind == kind
        )  # fmt: skip
        answer = generator.answer(q.scene)
        assert (generator.question(q.scene), answer) == (q.question, q.answer)
        assert generator.explain(q.scene, answer) == q.explanation
    assert vars(exercises.Exercise("takes-lock", 0, "?", True, "why").scene) == {}


def _module_of(kind: str):
    import importlib

    return importlib.import_module(exercises.KINDS[kind].__module__)


def test_a_generator_says_which_hook_it_lacks():
    """A kind that overrides no hook fails by the hook's name, not with a bare error."""
    from kvmviz.exercises.base import Generator

    class Nothing(Generator):
        kind, salt = "nothing", "nothing"

    with pytest.raises(NotImplementedError, match="Nothing draws no scene"):
        Nothing()(seed=0)


# -- takes-lock -------------------------------------------------------------------------------
def takes_lock_oracle(scene) -> bool:
    """A half-open overlap test with every memslot, then the kernel's rule on a miss."""
    slots = [(s.hva_start, s.hva_end) for s in scene.layout]
    hit = any(overlaps((scene.start, scene.end), slot) for slot in slots)
    return hit or scene.callback in LOCKS_ON_MISS[scene.kernel]


def test_takes_lock_answers_are_what_the_scene_implies():
    """The slots, kernel, callback and range asked about decide the answer (a half-open
    overlap test, then the kernel's rule); True/False and yes/no in any case work."""
    answers = []
    for seed in SEEDS:
        q = exercises.takes_lock_question(seed)
        assert "(answer True or False; yes or no also work)" in q.question
        expected = takes_lock_oracle(q.scene)
        assert q.answer is expected, seed
        word = "yes" if expected else "no"
        _accepts(q, [expected, np.bool_(expected), str(expected), word, f" {word.upper()} "])
        _rejects(q, not expected)
        _rejects(q, "no" if expected else "yes")
        answers.append(expected)
    assert 0.2 < np.mean(answers) < 0.8  # both answers occur


# -- zapped-gfns ------------------------------------------------------------------------------
def zapped_oracle(scene) -> list[tuple[int, int]]:
    """Page by page: each page the range touches, in each slot mapping it, gives one gfn."""
    start, end = scene.start, scene.end
    pairs = []
    for s in scene.layout:
        h0, h1, g0 = s.hva_start, s.hva_end, s.base_gfn
        gfns = [
            g0 + (page - h0) // PAGE
            for page in range(start // PAGE * PAGE, end, PAGE)
            if h0 <= page < h1
        ]
        if gfns:
            assert gfns == list(range(gfns[0], gfns[-1] + 1))  # one contiguous run per slot
            pairs.append((gfns[0], gfns[-1] + 1))
    return pairs


def test_zapped_gfns_question_lists_every_slot_and_asks_for_all_of_them():
    """The question names the slot the range begins in, but lists every memslot of the layout
    with its address space and asks for a pair per slot touched: the alias counts."""
    q = exercises.zapped_gfns(3)
    _stated_slots(q, gfns=True)  # every slot of the layout, with its address space
    assert "in **every** memslot the range touches" in q.question
    assert "`gfn_end` exclusive" in q.question
    assert "in either address space" in q.question
    # The BIOS alias: isa-bios (slot 3) and pc.bios (slot 1) map the same host pages.
    assert zapped_oracle(q.scene) == [(0xEC, 0xEF), (0xFFFEC, 0xFFFEF)]
    _accepts(q, ["236 239 1048556 1048559", "0xfffec 0xfffef 0xec 0xef"])
    _rejects(q, "236 239")  # only the slot the question starts from


def test_zapped_gfns_answers_are_what_the_scene_implies():
    """Every touched slot's pair, in decimal, hex, with brackets, in any order of the
    pairs; an end rounded down, a forgotten alias or half a pair is wrong."""
    several = 0
    for seed in SEEDS:
        q = exercises.zapped_gfns(seed)
        pairs = zapped_oracle(q.scene)
        assert sorted(zip(q.answer[::2], q.answer[1::2], strict=True)) == sorted(pairs), seed
        flat = [x for p in pairs for x in p]
        spellings = [
            flat,
            " ".join(map(str, flat)),
            ", ".join(f"{x:#x}" for x in flat),
            "; ".join(f"[{a:#x}, {b:#x})" for a, b in pairs),
            " ".join(f"{x} {y}" for x, y in reversed(pairs)),  # the pairs in any order
        ]
        _accepts(q, spellings)
        _rejects(q, [x - 1 if i % 2 else x for i, x in enumerate(flat)])  # end rounded down
        _rejects(q, " ".join(map(str, flat[:-1])))  # an odd count is not an answer
        if len(pairs) > 1:
            several += 1
            _rejects(q, list(pairs[0]))  # the alias forgotten
            # a pair is kept whole: the starts and ends swapped between slots is wrong
            _rejects(q, [pairs[0][0], pairs[1][1], pairs[1][0], pairs[0][1]])
    assert several > 5  # the alias is asked about


def test_zapped_gfns_says_why_an_odd_count_is_not_understood():
    """Half a pair is not marked wrong silently: the verdict says how to type it."""
    q = exercises.zapped_gfns(1)
    ok, why = q.check("79 83 84")
    assert not ok
    assert why == (
        "Not understood: type one gfn_start gfn_end pair per memslot (an even count of "
        "numbers); got 3."
    )
    assert q.reveal().startswith("Answer: 79 83. ")


# -- grant-order and reader-wait: the tie rules are stated --------------------------------------
TIES = (
    "**Ties**: at one instant every release happens before any arrival; requests arriving at "
    "the same instant arrive in request order (lowest number first)"
)


@pytest.mark.parametrize("policy", ["qrwlock", "reader-pref", "spinlock"])
def test_grant_order_answers_are_what_the_scene_implies(policy):
    """The requests and the stated tie rules fix every grant time (the code-level qrwlock
    oracle); spaces, commas, brackets, leading zeros and hex all work."""
    tied = 0
    for seed in SEEDS:
        q = exercises.grant_order(seed, policy=policy)
        assert TIES in q.question
        assert f"Under **{policy}** (" in q.question
        arrival, is_writer, hold = _requests(q.scene)
        grants = lock_oracle(arrival, is_writer, hold, policy)
        assert q.answer == grants, seed
        tied += len(set(arrival)) < len(arrival)
        _accepts(
            q,
            [
                grants,
                " ".join(map(str, grants)),
                ", ".join(map(str, grants)),
                str(grants),
                " ".join(f"{g:02d}" for g in grants),  # leading zeros
                " ".join(f"{g:#x}" for g in grants),
            ],
        )
        _rejects(q, [*grants[:-1], grants[-1] + 1])
        _rejects(q, grants[:-1])
    assert tied > 50  # the tie rules matter for many seeds


@pytest.mark.parametrize("policy", ["qrwlock", "reader-pref", "spinlock"])
def test_reader_wait_answers_are_what_the_scene_implies(policy):
    """The asked reader's wait is its oracle grant minus its arrival; a trailing µs
    (micro sign, Greek mu or "us") and a decimal point are fine."""
    waits = set()
    for seed in SEEDS:
        q = exercises.reader_wait(seed, policy=policy)
        assert TIES in q.question
        arrival, is_writer, hold = _requests(q.scene)
        asked = q.scene.asked
        wait = lock_oracle(arrival, is_writer, hold, policy)[asked] - arrival[asked]
        assert q.answer == wait, seed
        waits.add(wait)
        _accepts(q, [wait, float(wait), f"{wait}", f"{wait} µs", f"{wait}us", f"{wait}.0"])
        _accepts(q, [f"{wait} μs"])  # the Greek mu, as some keyboards type it
        _rejects(q, wait + 1)
        _rejects(q, "ten")
    assert len(waits) > 3


def test_grant_order_on_workshop_seed_0_says_the_reader_pref_answer_is_wrong():
    """docs/workshop.md's first row: qrwlock's answer and the reader-preferring one differ."""
    fair, unfair = exercises.grant_order(0), exercises.grant_order(0, policy="reader-pref")
    assert fair.answer == [3, 8, 9, 9, 9, 12]
    assert unfair.answer == [3, 9, 3, 4, 7, 10]
    _rejects(fair, "3 9 3 4 7 10")


# -- callback-order -----------------------------------------------------------------------------
def test_callback_order_answers_are_what_the_scene_implies():
    """The operation asked about fixes the callbacks; the short names, arrows, spaces and any
    case work; a reversed order or an extra callback is wrong."""
    for seed in SEEDS:
        q = exercises.callback_order(seed)
        assert "separated by commas, spaces or arrows" in q.question
        expected = CALLBACKS_OF[q.scene.operation]
        assert tuple(q.answer) == expected, seed
        short = [{"invalidate_range_start": "start", "invalidate_range_end": "end"}.get(c, c)
                 for c in expected]  # fmt: skip
        _accepts(
            q,
            [
                ", ".join(short),
                " -> ".join(expected),
                " ".join(short),
                " → ".join(c.upper() for c in short),
                list(expected),
            ],
        )
        _rejects(q, ", ".join(reversed(expected)) if len(expected) > 1 else "change_pte")
        _rejects(q, ", ".join([*expected, expected[-1]]))  # a callback too many


# -- walk-threshold ----------------------------------------------------------------------------
def walk_threshold_oracle(scene) -> int:
    """The smallest n with lock + walks x n x walk > threshold, in exact arithmetic (the
    costs as decimals, as the question prints them)."""
    walk_ns = Fraction(f"{scene.base.memslot_walk_ns:g}")
    lock_ns = Fraction(f"{scene.base.lock_op_us * 1000:g}")
    threshold_ns = 1000 * int(scene.threshold_us)
    walks = WALKS[scene.kernel]
    lo, hi = 1, 32764
    while lo < hi:  # the hold grows with n: bisect on the predicate
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if lock_ns + walks * mid * walk_ns > threshold_ns else (mid + 1, hi)
    return lo


def test_walk_threshold_answers_are_what_the_scene_implies():
    """The costs and the kernel's number of walks give the smallest n (exact arithmetic);
    n - 1 and n + 1 are wrong."""
    asked = set()
    for seed in range(40):  # each question simulates a few layouts: fewer seeds, all 10 cases
        q = exercises.memslot_walk_threshold(seed)
        assert "count each walk" in q.question
        n = walk_threshold_oracle(q.scene)
        assert q.answer == n, seed
        asked.add((q.scene.kernel, q.scene.threshold_us))
        _accepts(q, [n, str(n), f"{n} memslots", f"{n}.0", f"{n:#x}"])
        _rejects(q, n - 1)
        _rejects(q, n + 1)
    assert len(asked) >= 8


# -- flush-hold --------------------------------------------------------------------------------
def flush_hold_oracle(scene, walks: int) -> float:
    """The hold from the costs the question lists: lock, walk, zap of 4 KiB, one TLB flush."""
    s, n_vcpus = scene.scenario, scene.n_vcpus
    hold_ns = s.lock_op_us * 1000 + walks * s.memslot_walk_ns * len(s.layout)
    zap_us = s.zap_base_us + s.zap_us_per_mib * PAGE / 2**20
    reach = n_vcpus if n_vcpus <= 64 else 64 * (n_vcpus / 64) ** s.tlb_flush_exponent
    flush_us = s.tlb_flush_base_us + s.tlb_flush_per_vcpu_us * reach
    return hold_ns / 1000 + zap_us + flush_us


def test_flush_hold_answers_are_what_the_scene_implies():
    """The listed costs give the hold, rounded; the answer does not depend on the
    number of walks, which the text leaves out; one µs off is wrong."""
    for seed in SEEDS:
        q = exercises.hit_flush_hold(seed)
        # The text does not say how many walks a kernel makes: the answer must not depend on it.
        once, twice = (round(flush_hold_oracle(q.scene, w)) for w in (1, 2))
        assert q.answer == once == twice, seed
        _accepts(q, [once, f"{once}", f"{once} µs", f"{once}.0"])
        _rejects(q, once + 1)
        _rejects(q, once - 1)


# -- must-retry --------------------------------------------------------------------------------
def must_retry_oracle(scene) -> bool:
    """The kernel-text oracle on the fault, the sampled seq and the callbacks asked about."""
    case = scene.case
    return retry_oracle(case.kernel, scene.layout, case.hva, case.seq, case.calls)


def test_must_retry_answers_are_what_the_scene_implies():
    """The slots, fault, seq and callbacks asked about decide mmu_notifier_retry_hva (the
    kernel-text oracle of chapter 05); both answers occur."""
    answers = []
    for seed in SEEDS:
        q = exercises.must_retry(seed)
        expected = must_retry_oracle(q.scene)
        assert q.answer is expected, seed
        _accepts(q, [expected, str(expected).lower(), "yes" if expected else "no"])
        _rejects(q, not expected)
        answers.append(expected)
    assert 0.3 < np.mean(answers) < 0.8


# -- hit-or-miss --------------------------------------------------------------------------------
def hit_or_miss_oracle(scene) -> bool:
    """Byte by byte: the half-open range overlaps some slot's half-open hvas."""
    slots = [(s.hva_start, s.hva_end) for s in scene.layout]
    return any(overlaps((scene.start, scene.end), slot) for slot in slots)


def test_hit_or_miss_answers_are_what_the_scene_implies():
    """The slots and the range asked about decide the answer (a half-open overlap test);
    ranges near the edges make both answers occur, and True/False and yes/no work."""
    answers = []
    for seed in SEEDS:
        q = exercises.hit_or_miss(seed)
        expected = hit_or_miss_oracle(q.scene)
        assert q.answer is expected, seed
        _accepts(q, [expected, str(expected), "yes" if expected else "no"])
        _rejects(q, not expected)
        answers.append(expected)
    assert 0.2 < np.mean(answers) < 0.8


def test_hit_or_miss_on_chapter_01_seeds():
    """Chapter 01's questions: seed 109 is a range ending at slot 0's first byte (a miss:
    half-open), 186 one page of slot 0 (gfn 0xbf)."""
    q4, q10 = exercises.hit_or_miss(109), exercises.hit_or_miss(186)
    slot0 = next(s for s in LAYOUT if s.slot == 0)
    assert "[0x7f6ffbdff800, 0x7f6ffbe00000)" in q4.question
    assert slot0.hva_start == 0x7F6FFBE00000
    assert q4.answer is False
    assert q10.answer is True
    assert q10.explanation == "It reaches slot 0 gfns [0xbf, 0xc0)."


# -- trace-count --------------------------------------------------------------------------------
TRACE = ROOT / "data" / "traces" / "notifier-phases-linux6.18.txt"
TRACE_LAYOUT = ROOT / "data" / "traces" / "notifier-phases-linux6.18.layout.json"


@pytest.fixture(scope="module")
def trace():
    """Chapter 02's trace, parsed (not classified), and its memslots."""
    return kv.load_ftrace(TRACE), kv.traces.load_layout(TRACE_LAYOUT)


def trace_count_oracle(scene, events, layout) -> tuple[int, int]:
    """(hits, notifications) between the two lines asked about, by a byte-overlap test on the
    raw records."""
    lo, hi = scene.lo, scene.hi
    rows = events[events["callback"].notna() & events["line"].between(lo, hi)]
    slots = [(s.hva_start, s.hva_end) for s in layout]
    hits = sum(
        any(overlaps((int(a), int(b)), slot) for slot in slots)
        for a, b in zip(rows["hva_start"], rows["hva_end"], strict=True)
    )
    return hits, len(rows)


def test_trace_count_answers_are_what_the_trace_says(trace):
    """The lines asked about hold 30 notifications; the answer counts those whose range
    overlaps a memslot; one off is wrong."""
    events, layout = trace
    classified = kv.classify.records(events, layout)
    for seed in range(30):
        q = exercises.trace_count(seed, classified=classified)
        hits, notifications = trace_count_oracle(q.scene, events, layout)
        assert notifications == 30
        assert f"the host sent {notifications} notifications" in q.question
        assert q.answer == hits, seed
        _accepts(q, [hits, str(hits)])
        _rejects(q, hits + 1)


def test_trace_count_defaults_to_chapter_02s_trace(trace):
    """Without a trace, the generator classifies the repository's and names its files:
    seed 7 asks about lines 1188 to 1225, 21 hits of 30."""
    q = exercises.trace_count(7)
    assert q.question.startswith(
        "In the trace `data/traces/notifier-phases-linux6.18.txt` (memslots: "
        "`data/traces/notifier-phases-linux6.18.layout.json`; "
    )
    assert "between lines 1188 and 1225 (both included)" in q.question
    assert q.answer == 21
    events, layout = trace
    assert trace_count_oracle(q.scene, events, layout) == (21, 30)


# -- munmap-on-guest ---------------------------------------------------------------------------
NUMBER = r"(\d+(?:\.\d+)?)"


def _munmap_asked(scene):
    """(workload seed, kernel, munmap time, hva range) of the munmap asked about."""
    return scene.seed, scene.kernel, scene.t_munmap, (scene.start, scene.end)


def munmap_text_oracle(question: str) -> int:
    """The answer reasoned from the text alone: only the numbers the question prints.

    The two halves of mmu_notifier_retry_hva() (docs/kernel.md §3.2) on the stated timeline:
    the count is 1 from the start's grant until the end's release, over the stated range; seq
    goes 0 -> 1 at the end's release; a change at the same instant as a sample or a check
    comes first. Each listed attempt retries if it checks while the count is 1 on an hva in
    the range, or if the seq it sampled is not the seq when it checks."""
    lo, hi = (int(x, 16) for x in re.search(
        rf"the invalidated range is \[({HEX}), ({HEX})\)", question).groups())  # fmt: skip
    count_up = float(re.search(
        rf"`invalidate_range_start` arrives at {NUMBER} µs, takes `mmu_lock` at {NUMBER} µs",
        question)[2])  # fmt: skip
    seq_up = float(re.search(
        rf"until {NUMBER} µs\. As it releases the lock, `mmu_notifier_seq` goes 0 -> 1",
        question)[1])  # fmt: skip
    assert "`mmu_notifier_seq` and `mmu_notifier_count` are both 0" in question
    assert "changes at the same instant as a sample or a check changes first" in question
    attempts = re.findall(
        rf"^- vCPU (\d+) \(hva ({HEX})\): samples `mmu_notifier_seq` at {NUMBER} µs, "
        rf"checks at {NUMBER} µs$",
        question,
        re.MULTILINE,
    )
    assert len(attempts) == len(re.findall(r"^- vCPU ", question, re.MULTILINE))
    retries = 0
    for _vcpu, hva, sample, check in attempts:
        sample, check = Fraction(sample), Fraction(check)
        count = 1 if Fraction(str(count_up)) <= check < Fraction(str(seq_up)) else 0
        sampled = 1 if sample >= Fraction(str(seq_up)) else 0
        now = 1 if check >= Fraction(str(seq_up)) else 0
        retries += (count == 1 and lo <= int(hva, 16) < hi) or sampled != now
    return retries


def munmap_oracle(scene, kernel: str | None = None) -> int:
    """The attempts that must retry in the first 40 µs, by the kernel text, on the engine's
    timeline: the run of the stated munmap gives when each attempt samples seq and checks and
    when each callback is granted and released; the counters are replayed from the callbacks
    with the oracle's own rules (kvm_inc_notifier_count at the start's grant, seq++ then count--
    at the end's release; a miss on v5.15 does nothing) and its page-by-page hit test."""
    seed, asked, t_us, (lo, hi) = _munmap_asked(scene)
    kernel = asked if kernel is None else kernel
    run = kv.simulate(TINY, kernel, seed=seed, stream=_stream((t_us, "pair", lo, hi)))
    changes = []  # (t, +1 count with its range | seq bump)
    for cb in run.notifiers.itertuples():
        start, end = int(cb.hva_start), int(cb.hva_end)
        on_lock = kernel in ("v5.12", "v5.13") or page_hits(LAYOUT, start, end)
        if cb.callback == START and on_lock:
            changes.append((cb.t_grant_us, "count+", start, end))
        elif cb.callback == END and on_lock:
            changes.append((cb.t_release_us, "seq+count-", start, end))

    def state(t):
        count, seq, rng = 0, 0, None
        for when, what, start, end in sorted(changes):
            if when > t:
                break
            if what == "count+":
                rng = (start, end) if count == 0 else (min(rng[0], start), max(rng[1], end))
                count += 1
            else:
                seq, count = seq + 1, count - 1
        return count, seq, rng

    must = 0
    for f in run.faults[run.faults.t_grant_us < 40].itertuples():
        _, sampled, _ = state(f.t_snapshot_us)
        count, now, rng = state(f.t_grant_us)
        must += (count != 0 and rng[0] <= int(f.hva) < rng[1]) or now != sampled
    return must


@pytest.mark.parametrize("seed", range(31))
def test_munmap_on_guest_answers_follow_from_the_text_alone(seed):
    """Seeds 0-30: reasoning from the printed numbers alone (the callbacks' lock times, every
    attempt's sample and check, the tie rule) gives the model's answer; seed 11, which the
    text of the first fault alone got wrong, included."""
    q = exercises.munmap_on_guest(seed)
    assert munmap_text_oracle(q.question) == q.answer, q.question


def test_munmap_on_guest_answers_are_what_the_kernel_text_says():
    """For each seed the munmap asked about, replayed on its kernel's timeline with the oracle's
    counters, sends back the answer's number of attempts; the range is on the page of a listed
    vCPU and hits guest RAM; one more is wrong."""
    answers = set()
    for seed in range(30):
        q = exercises.munmap_on_guest(seed)
        expected = munmap_oracle(q.scene)
        assert q.answer == expected, seed
        _, _, _, (lo, hi) = _munmap_asked(q.scene)
        assert page_hits(LAYOUT, lo, hi)
        _accepts(q, [expected, str(expected)])
        _rejects(q, expected + 1)
        answers.add(expected)
    assert {0, 1, 2, 3} <= answers


def test_munmap_on_guest_says_when_the_end_arrives_and_what_it_holds():
    """The end arrives invalidate_window_us after the start *released* the lock (not after it
    arrived), and each callback's hold is printed: the three instants the brief was missing."""
    for seed in range(10):
        q = exercises.munmap_on_guest(seed)
        start = re.search(
            rf"`invalidate_range_start` arrives at {NUMBER} µs, takes `mmu_lock` at {NUMBER} "
            rf"µs and holds it {NUMBER} µs \(the zap and the TLB flush\), until {NUMBER} µs",
            q.question,
        )
        end = re.search(
            rf"`invalidate_range_end` arrives 4 µs after the start released the lock, at "
            rf"{NUMBER} µs, takes `mmu_lock` at {NUMBER} µs and holds it {NUMBER} µs",
            q.question,
        )
        assert start and end, q.question
        assert float(end[1]) == pytest.approx(float(start[4]) + 4, abs=0.15)
        assert float(start[4]) == pytest.approx(float(start[2]) + float(start[3]), abs=0.15)


def test_munmap_on_guest_seed_11_lists_the_faults_after_the_first():
    """Seed 11, wrong from the text before: vCPU 0's first fault checks before the munmap and
    installs, and its *second* fault, which the old text never showed, samples seq at 16.4 µs
    while the pair is in flight and retries at 18.2 µs; the text now lists it."""
    q = exercises.munmap_on_guest(11)
    assert (
        "- vCPU 0 (hva 0x7f7009d03000): samples `mmu_notifier_seq` at 16.4 µs, checks at 18.2 µs"
        in q.question
    )
    assert q.answer == munmap_text_oracle(q.question) == 4


def test_a_munmap_on_guest_memory_retries_the_same_on_every_kernel():
    """A hit is elided by no kernel: the munmap asked about sends back as many attempts on v5.12,
    v5.13 and v5.15, whichever the question names."""
    for seed in range(8):
        q = exercises.munmap_on_guest(seed)
        # The 2021 kernels: from v6.8 the lockless pre-check sends faults back before the lock.
        assert {munmap_oracle(q.scene, k) for k in kv.kernels.KERNELS_2021} == {q.answer}, seed


def test_munmap_on_guest_seed_105_is_chapter_05s_exercise():
    """Seed 105 (chapter 05's exercise 5): 16 pages from vCPU 0's page on v5.15 at 13 µs; four
    attempts go back, vCPU 0 once through the range half and once through seq, vCPUs 1 and 2
    through seq; the tiny VM is chapter 05's."""
    q = exercises.munmap_on_guest(105)
    assert exercises.RETRY_SCENE == TINY
    assert _munmap_asked(q.scene) == (105, "v5.15", 13.0, (0x7F6FFED8D000, 0x7F6FFED9D000))
    assert "workload seed 105" in q.question and "On **v5.15**, at 13 µs the host" in q.question
    assert "starting at vCPU 0's page" in q.question
    assert q.answer == 4
    assert q.explanation.startswith("4 attempts retry. The range hits slot 4")
    assert (
        "Sent back: vCPU 0 at 17.7 µs (the range half: count is 1 and its hva is in the range); "
        "vCPU 0 at 23.0 µs (seq alone: it sampled 0, it is 1 now); vCPU 1 at 29.2 µs (seq "
        "alone: it sampled 0, it is 1 now); vCPU 2 at 29.3 µs (seq alone: it sampled 0, it is "
        "1 now)."
    ) in q.explanation
    assert q.command == "kvmviz quiz munmap-on-guest -s 105"


# -- ksm-hits and v513-locks: chapter 07, on a classified trace -------------------------------


def ksm_hits_oracle(scene, events, layout) -> int:
    """The `ksm` phase's raw notifier records of the callback (and task) asked about, whose
    range overlaps some memslot byte for byte (or overlaps none)."""
    callback, task = scene.callback, scene.task
    verb = "hit" if scene.count_hits else "miss"
    rows = events[events["callback"].notna() & (events["phase"] == "ksm")]
    rows = rows[rows["callback"] == callback]
    if task:
        rows = rows[rows["comm"].astype(str) == task]
    slots = [(s.hva_start, s.hva_end) for s in layout]
    hits = [
        any(overlaps((int(a), int(b)), slot) for slot in slots)
        for a, b in zip(rows["hva_start"], rows["hva_end"], strict=True)
    ]
    return sum(hits) if verb == "hit" else len(hits) - sum(hits)


def test_ksm_hits_answers_are_what_the_trace_says(trace):
    """Every case the seed walks (one callback, all its records or one task's, hits or
    misses) counts the ksm phase's records as a byte-overlap test does; one off is wrong; the
    six cases of chapter 07's trace come back every six seeds."""
    events, layout = trace
    classified = kv.classify.records(events, layout)
    asked = []
    for seed in range(30):
        q = exercises.ksm_hits(seed, classified=classified)
        expected = ksm_hits_oracle(q.scene, events, layout)
        assert q.answer == expected, seed
        _accepts(q, [expected, str(expected)])
        _rejects(q, expected + 1)
        asked.append(q.question)
    assert len(set(asked[:6])) == 6
    assert asked[6:] == asked[:24]


def test_ksm_hits_never_asks_what_the_phase_tables_print(trace):
    """The phase tables of chapters 02 and 07 print the ksm phase's hits and misses: no
    question asks every record of the phase, or has one of those counts as its answer, or 0."""
    q = exercises.ksm_hits(0)
    rows = trace_counts._shipped_records()
    rows = rows[rows["callback"].notna() & (rows["phase"] == "ksm")]
    printed = {int(rows["hit"].sum()), int((~rows["hit"].astype(bool)).sum())}
    assert printed == {192, 36}
    answers = {exercises.ksm_hits(seed).answer for seed in range(6)}
    assert answers == {3, 12, 21, 65, 127}
    assert not answers & printed and 0 not in answers
    assert "notifier records" not in q.question


def test_ksm_hits_of_chapter_07s_trace(trace):
    """Seed 1 asks the clear_young misses of the phase (21, kdamond's aging of the VMM's own
    memory), which no table of chapter 07 prints; the default trace is the repository's."""
    q = exercises.ksm_hits(1)
    assert q.question.startswith(
        "In the `ksm` phase of the trace `data/traces/notifier-phases-linux6.18.txt`"
    )
    assert "how many `clear_young` records miss every memslot?" in q.question
    assert q.answer == 21
    assert q.explanation.startswith("21 of the phase's 21 `clear_young` records miss every")


def test_ksm_hits_needs_a_ksm_phase_and_a_classified_trace(trace):
    """A trace without PHASE ksm is refused naming its phases; an unclassified one by name."""
    events, layout = trace
    classified = kv.classify.records(events, layout)
    with pytest.raises(ValueError, match=r"no notifier record in a phase named ksm.*: idle, "):
        exercises.ksm_hits(0, classified=classified[classified["phase"] != "ksm"])
    with pytest.raises(ValueError, match=r"no hit column"):
        exercises.ksm_hits(0, classified=events)


def v513_locks_oracle(scene, events, layout) -> int:
    """From the raw records: each non-empty kvm_unmap_hva_range is a start and an end, which
    both lock on v5.13 hit or miss (8931a454aea0 left on_lock alone); an aging record locks
    only if its range overlaps a memslot byte for byte. Of the phase asked about, if any."""
    phase, named = scene.phase, scene.callback
    _total, asked_n = len(scene.plan), len(scene.rows)
    rows = events[events["callback"].notna() & (events["hva_start"] != events["hva_end"])]
    if phase:
        rows = rows[rows["phase"] == phase]
    assert "change_pte" not in set(rows["callback"])  # v6.18: no kvm_set_spte_hva
    slots = [(s.hva_start, s.hva_end) for s in layout]
    runs = []  # (callback, locked)
    for cb, a, b in zip(rows["callback"], rows["hva_start"], rows["hva_end"], strict=True):
        if cb == START:
            runs += [(START, True), (END, True)]
        else:
            hit = any(overlaps((int(a), int(b if cb != "test_young" else a + PAGE)), slot)
                      for slot in slots)  # fmt: skip
            runs.append((cb, hit))
    assert int(_total) == len(runs)
    asked = [locked for cb, locked in runs if named is None or cb == named]
    assert len(asked) == int(asked_n)
    return sum(asked)


def test_v513_locks_answers_are_what_the_trace_says(trace):
    """Every phase and callback the seed names (or every callback of a phase) locks on v5.13
    as the raw records say; one off is wrong; never the whole trace's every callback, the
    count the replay's per-kernel table prints (lock_taken), and never a selection that locks
    all or none (its size, printed in the question, would give the answer)."""
    events, layout = trace
    classified = kv.classify.records(events, layout)
    asked = set()
    for seed in range(30):
        q = exercises.v513_locks(seed, classified=classified, layout=layout)
        expected = v513_locks_oracle(q.scene, events, layout)
        assert q.answer == expected, seed
        _accepts(q, [expected, str(expected)])
        _rejects(q, expected + 1)
        phase, size, named = q.scene.phase, len(q.scene.rows), q.scene.callback
        assert (phase, named) != (None, None)
        assert 0 < expected < int(size)
        asked.add((phase, named))
    assert asked == {
        ("aging", None), ("ksm", None), ("idle", None), (None, "clear_young"),
        ("aging", "clear_young"),
    }  # fmt: skip


def test_v513_locks_of_chapter_07s_trace():
    """Seed 1 asks the ksm phase's 423 callbacks: its 195 starts and their 195 ends lock on
    v5.13, its 21 clear_young and 12 test_young misses do not (390). Nothing asks the 1631 of
    the whole trace (814 starts, their 814 ends, 3 of 167 clear_young, none of 108
    test_young), which chapter 07's replay table prints."""
    q = exercises.v513_locks(1)
    assert "the `ksm` phase's notifications of the trace `data/traces/" in q.question
    assert "run 423 callbacks" in q.question
    assert "How many of these 423 callbacks" in q.question
    assert q.answer == 390 == 2 * 195
    assert all(exercises.v513_locks(seed).answer != 1631 for seed in range(30))
    whole = trace_counts._v513_plans(
        trace_counts._shipped_records(), trace_counts._shipped_layout()
    )[None]
    assert int(whole["locked"].sum()) == 1631 == 814 + 814 + 3


def test_v513_locks_takes_the_trace_and_its_layout_together(trace):
    """A classified trace without its memslots (or memslots alone) is refused."""
    events, layout = trace
    with pytest.raises(ValueError, match=r"^pass classified= and layout= together"):
        exercises.v513_locks(0, classified=kv.classify.records(events, layout))
    with pytest.raises(ValueError, match=r"^pass classified= and layout= together"):
        exercises.v513_locks(0, layout=layout)


# -- first-vcpus-above --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sweep_table():
    """Chapter 06's Figure 6.1 sweep, at the shares the question draws from (216 runs)."""
    return kv.experiments.grid(
        kv.Scenario(duration_us=10_000),
        n_vcpus=list(exercises.SWEEP_VCPUS),
        spurious_share=list(exercises.SWEEP_SHARES),
        seeds=list(exercises.SWEEP_SEEDS),
    )


def _first_vcpus_asked(scene) -> tuple[str, float, float]:
    return scene.kernel, scene.share, scene.threshold


def first_vcpus_oracle(scene, table) -> int:
    """Row by row: the smallest vCPU count whose per-fault p99 stall (stall_p99_us, the
    measure the question names), averaged over the seeds, exceeds X."""
    kernel, share, threshold = _first_vcpus_asked(scene)
    for n in sorted(exercises.SWEEP_VCPUS):
        p99 = [
            r.stall_p99_us
            for r in table.itertuples()
            if r.kernel == kernel and np.isclose(r.spurious_share, share) and r.n_vcpus == n
        ]
        assert len(p99) == len(exercises.SWEEP_SEEDS)
        if np.mean(p99) > threshold:
            return n
    raise AssertionError(f"no vCPU count exceeds {threshold} µs: {scene}")


def test_first_vcpus_above_answers_are_what_the_sweep_says(sweep_table):
    """The kernel, share and threshold asked about pick a column of the sweep; the answer is
    its first vCPU count above the threshold, never the smallest size; the next size up is
    wrong; every value of the column is 20 % and 1 µs away from the threshold."""
    means = sweep_table.groupby(["kernel", "spurious_share", "n_vcpus"])["stall_p99_us"].mean()
    for seed in range(60):
        q = exercises.first_vcpus_above(seed, table=sweep_table)
        n = first_vcpus_oracle(q.scene, sweep_table)
        assert q.answer == n, seed
        assert n != exercises.SWEEP_VCPUS[0]
        assert "The p99 stall per fault is `stall_p99_us`" in q.question
        kernel, share, threshold = _first_vcpus_asked(q.scene)
        column = means.loc[kernel, share].to_numpy()
        assert np.all(np.abs(column - threshold) >= max(0.2 * threshold, 1.0)), seed
        _accepts(q, [n, str(n)])
        larger = [m for m in exercises.SWEEP_VCPUS if m > n]
        if larger:
            _rejects(q, larger[0])


def test_first_vcpus_above_sweeps_chapter_06s_table_by_itself(sweep_table):
    """Without a table it sweeps chapter 06's grid itself and asks the same; seeds 23 and 97,
    identical before, differ; the 42 cases come back every 42 seeds."""
    own, given_table = exercises.first_vcpus_above(2), exercises.first_vcpus_above(2, sweep_table)
    assert (own.question, own.answer) == (given_table.question, given_table.answer)
    texts = [exercises.first_vcpus_above(s, sweep_table).question for s in range(100)]
    assert texts[23] != texts[97]
    assert len(set(texts[:42])) == 42
    assert texts[42:] == texts[:58]


def test_first_vcpus_above_refuses_a_table_without_the_stall_column(sweep_table):
    """A sweep from before the rename (p99_us) is refused by the column's name."""
    old = sweep_table.drop(columns=["stall_p99_us"])
    with pytest.raises(ValueError, match=r"^table: no stall_p99_us column"):
        exercises.first_vcpus_above(0, table=old)


# -- retry_check, mmu_notifier_retry_hva, retry_table ------------------------------------------
@given(
    kernel=st.sampled_from(kv.kernels.RELEASES),
    callbacks=callback_streams(),
    seq=st.integers(0, 1000),
    hva=st.sampled_from([FAULT_HVA, FAULT_HVA + PAGE, RAM.hva_start]),
)
def test_retry_check_matches_the_kernel_oracle(kernel, callbacks, seq, hva):
    """retry_check's verdict is the kernel-text oracle's on any release, with one line per
    callback plus the check itself; from v6.10 a change_pte is refused (f3b65bbaed7c), and the
    same stream without it is a release's plain pairs."""
    if kernel not in WITH_CHANGE_PTE and any(cb == "change_pte" for cb, _, _ in callbacks):
        with pytest.raises(ValueError, match="f3b65bbaed7c"):
            exercises.retry_check(kernel, LAYOUT, hva, seq, callbacks)
        callbacks = [call for call in callbacks if call[0] != "change_pte"]
    answer, lines = exercises.retry_check(kernel, LAYOUT, hva, seq, callbacks)
    assert answer == retry_oracle(kernel, LAYOUT, hva, seq, callbacks)
    assert len(lines) == len(callbacks) + 1


def test_retry_check_takes_the_callbacks_by_their_former_keyword_too():
    """``calls`` was ``callbacks`` (a name kvmviz.classify.callbacks already has): the old
    keyword still works; both or neither is refused."""
    heap = VMM_HEAP[0]
    pair = [(START, heap, heap + PAGE), (END, heap, heap + PAGE)]
    for kernel in kv.kernels.KERNELS_2021:
        positional = exercises.retry_check(kernel, LAYOUT, FAULT_HVA, 7, pair)
        assert exercises.retry_check(kernel, LAYOUT, FAULT_HVA, 7, calls=pair) == positional
        assert exercises.retry_check(kernel, LAYOUT, FAULT_HVA, 7, callbacks=pair) == positional
    with pytest.raises(TypeError, match="calls"):
        exercises.retry_check("v5.12", LAYOUT, FAULT_HVA, 7, pair, callbacks=pair)
    with pytest.raises(TypeError, match="calls"):
        exercises.retry_check("v5.12", LAYOUT, FAULT_HVA, 7)


def test_a_spurious_pair_retries_before_v515_only():
    """The headline of chapter 05, on one completed munmap of the VMM's heap."""
    heap = VMM_HEAP[0]
    pair = [(START, heap, heap + PAGE), (END, heap, heap + PAGE)]
    got = {
        k: exercises.retry_check(k, LAYOUT, FAULT_HVA, 3, pair)[0] for k in kv.kernels.KERNELS_2021
    }
    assert got == {"v5.12": True, "v5.13": True, "v5.15": False}
    lines = exercises.retry_check("v5.12", LAYOUT, FAULT_HVA, 3, pair)[1]
    assert lines[-1] == (
        "mmu_notifier_retry_hva: count is 0, so the range is not looked at; seq is 4, not the 3 "
        "the fault sampled: retry."
    )


@pytest.mark.parametrize(
    ("count", "start", "end", "hva", "seq_now", "seq", "retry"),
    [
        (1, 0x1000, 0x2000, 0x1000, 7, 7, True),  # first byte of the range: inside
        (1, 0x1000, 0x2000, 0x1FFF, 7, 7, True),
        (1, 0x1000, 0x2000, 0x2000, 7, 7, False),  # half-open: the end is outside
        (0, 0x1000, 0x2000, 0x1800, 7, 7, False),  # count 0: the range is stale
        (0, 0, 0, 0x1800, 8, 7, True),  # seq moved
        (2, 0x1000, 0x2000, 0x5000, 9, 7, True),
    ],
)
def test_mmu_notifier_retry_hva_is_the_kernels_two_conditions(
    count, start, end, hva, seq_now, seq, retry
):
    """Retry if count != 0 and start <= hva < end, or if seq moved (docs/kernel.md §3.2)."""
    assert bool(exercises.mmu_notifier_retry_hva(count, start, end, hva, seq_now, seq)) is retry


@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),
            st.integers(0, 8),
            st.integers(0, 8),
            st.integers(0, 8),
            st.integers(0, 2),
            st.integers(0, 2),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_mmu_notifier_retry_hva_on_arrays_is_element_by_element(rows):
    """On arrays, each element's verdict is the scalar one."""
    columns = [np.array(c) for c in zip(*rows, strict=True)]
    verdicts = exercises.mmu_notifier_retry_hva(*columns)
    expected = [(c != 0 and lo <= h < hi) or now != s for c, lo, hi, h, now, s in rows]
    assert verdicts.tolist() == expected


TINY = kv.Scenario(
    n_vcpus=3,
    faulting_share=1.0,
    duration_us=40.0,
    layout=LAYOUT,
    guest_run_us=8.0,
    resolve_pfn_us=10.0,
    read_hold_per_vcpu_us=0.0,
    invalidate_window_us=4.0,
)


def _stream(*rows):
    frame = pd.DataFrame(list(rows), columns=["t_us", "kind", "hva_start", "hva_end"])
    return kv.notifiers.stream_from_callbacks(frame)


def test_retry_table_on_chapter_05s_spurious_munmap():
    """Chapter 05, section 2: every vCPU sampled seq 0; on v5.12 the spurious end bumps it to
    1 and all three first attempts retry through seq alone; on v5.15 nothing moves."""
    quiet = kv.simulate(TINY, "v5.15", seed=2, stream=_stream())
    sampled_by = quiet.faults.groupby("vcpu")["t_snapshot_us"].first().max()
    heap = VMM_HEAP[0] + 0x100000
    munmap = _stream((sampled_by + 1.0, "pair", heap, heap + 16 * PAGE))
    v512 = exercises.retry_table(kv.simulate(TINY, "v5.12", seed=2, stream=munmap), until_us=40)
    first = v512[v512["retries so far"] == 0]
    assert first["vcpu"].tolist() == [0, 1, 2]
    assert first["seq sampled"].tolist() == [0, 0, 0]
    assert first["seq now"].tolist() == [1, 1, 1]
    assert first["count"].tolist() == [0, 0, 0]
    assert first["must retry"].tolist() == [True, True, True]
    assert not first["hva in range"].any()
    assert (v512["must retry"] == v512["retried"]).all()
    v515 = exercises.retry_table(kv.simulate(TINY, "v5.15", seed=2, stream=munmap), until_us=40)
    assert not v515["must retry"].any() and not v515["retried"].any()
    assert v515["seq now"].tolist() == [0] * len(v515)


def test_retry_table_reads_the_snapshot_time_of_the_run():
    """'samples seq at' is the run's t_snapshot_us; 'checks at' its t_grant_us."""
    run = kv.simulate(TINY, "v5.15", seed=2, stream=_stream())
    table = exercises.retry_table(run)
    np.testing.assert_array_equal(table["samples seq at (µs)"], run.faults["t_snapshot_us"])
    np.testing.assert_array_equal(table["checks at (µs)"], run.faults["t_grant_us"])
    assert len(exercises.retry_table(run, until_us=0.0)) == 0


@pytest.mark.parametrize("kernel", kv.KERNELS)
@pytest.mark.parametrize("method", ["compiled", "events"])
def test_retry_table_explains_every_retry_of_the_engine(kernel, method):
    """mmu_notifier_retry_hva on the notifier counters gives the engine's verdict on every
    attempt of a busy run, retries included (both engines; from v6.8 most faults that must
    retry do so before the lock, d02c357e5bfa: fewer locked retries, and the locked check
    still decides each of them)."""
    precheck = kv.kernels.features(kernel).precheck
    scenario = kv.Scenario(
        n_vcpus=24,
        duration_us=3_000,
        notifier_rate_hz=20_000,
        spurious_share=0.5,
        invalidate_window_us=20.0,
    )
    run = kv.simulate(scenario, kernel, seed=5, method=method)
    table = exercises.retry_table(run)
    assert table["retried"].sum() > (10 if precheck else 100)
    assert bool(run.faults["spins"].sum() > 1000) == precheck
    np.testing.assert_array_equal(table["must retry"], table["retried"])


# -- lock_states --------------------------------------------------------------------------------
SCENE = ([0, 1, 3, 4, 8, 12], [False, False, True, False, False, False], [6, 10, 2, 3, 6, 3])


def test_lock_states_of_chapter_03s_scene_under_qrwlock():
    """One row per arrival or release: the writer waits from t=3 (_QW_WAITING) with vCPU 2
    queued behind it, holds alone from t=11 (_QW_LOCKED), and lets three readers in at 13."""
    states = exercises.lock_states(scripted_run(*SCENE, "qrwlock"))
    assert states.index.tolist() == [0, 1, 3, 4, 6, 8, 11, 12, 13, 16, 19]
    assert states.loc[3.0, "what happens"] == "notifier arrives"
    assert states.loc[4.0, "waiting (FIFO)"] == "notifier, vCPU 2"
    assert states.loc[11.0, "inside"] == "notifier"
    assert states.loc[16.0, "what happens"] == "vCPU 2, vCPU 4 leaves"
    assert states.loc[19.0, "inside"] == "-"
    assert states.loc[19.0, "the lock"] == "mmu_lock is free"
    assert states["cnts writer bits"].tolist() == (
        ["0", "0"] + ["_QW_WAITING"] * 4 + ["_QW_LOCKED"] * 2 + ["0"] * 3
    )


def test_lock_states_under_reader_pref_let_late_readers_in():
    """Under reader-pref the late readers enter at once (nobody waits behind the writer) and
    there are no qrwlock writer bits to show."""
    states = exercises.lock_states(scripted_run(*SCENE, "reader-pref"))
    assert "cnts writer bits" not in states.columns
    assert states.loc[4.0, "inside"] == "vCPU 0, vCPU 1, vCPU 2"
    assert states.loc[4.0, "waiting (FIFO)"] == "notifier"


# -- callback-order, beyond the text ------------------------------------------------------------
@given(st.integers(min_value=0, max_value=10**6))
def test_callback_order_answer_is_a_model_event_kind_for_any_seed(seed):
    """For any seed the answer is the kernel's sequence for the operation asked about, and
    one of the model's event kinds."""
    q = exercises.callback_order(seed)
    assert q.answer == CALLBACKS_OF[q.scene.operation]
    assert q.answer in EVENT_KINDS.values()
    assert q.check(list(q.answer))[0]


def test_callback_order_asks_every_operation_and_is_seeded():
    """300 seeds ask about all eight operations; one seed gives one question."""
    asked = {exercises.callback_order(seed).scene.operation for seed in range(300)}
    assert asked == set(CALLBACKS_OF)
    a, b = exercises.callback_order(seed=11), exercises.callback_order(seed=11)
    assert (a.question, a.answer, a.explanation) == (b.question, b.answer, b.explanation)
    assert isinstance(a, CallbackOrderExercise)
    assert len({exercises.callback_order(seed=s).question for s in range(20)}) > 10


def _change_pte_question():
    return next(q for q in map(exercises.callback_order, range(100)) if "change_pte" in q.answer)


@pytest.mark.parametrize(
    "typed",
    [
        "start, change_pte, end",
        "invalidate_range_start -> change_pte -> invalidate_range_end",
        "START → Change_PTE → END",
        ".invalidate_range_start; .change_pte; .invalidate_range_end",
        ("invalidate_range_start", "change_pte", "invalidate_range_end"),
    ],
)
def test_callback_order_accepts_the_usual_spellings(typed):
    """Short names, arrows, semicolons, a leading dot, any case, or a tuple are all right."""
    ok, why = _change_pte_question().check(typed)
    assert ok, why
    assert why.startswith("Right!")


@pytest.mark.parametrize("typed", ["end, change_pte, start", "start, end", "", None, "change_pte"])
def test_callback_order_rejects_wrong_orders_and_missing_callbacks(typed):
    """A wrong order, a missing callback or no answer is wrong, and the verdict names the
    right sequence."""
    ok, why = _change_pte_question().check(typed)
    assert not ok
    assert "invalidate_range_start -> change_pte -> invalidate_range_end" in why


def test_callback_order_widget_text_reaches_check_unparsed():
    """The widget passes the typed text through ``_parse``; a tuple answer keeps it a string."""
    q = exercises.callback_order(seed=0)
    typed = ", ".join(q.answer)
    assert _parse(typed, q.answer) == typed
    assert q.check(_parse(typed, q.answer))[0]
    q.widget()


@pytest.mark.parametrize("seed", range(40))
def test_callback_order_explanation_lists_the_locking_callbacks_of_each_kernel(seed):
    """v5.12 locks every callback; the others follow kernels.rule on the range's hit."""
    q = exercises.callback_order(seed)
    hit = "hits a memslot" in q.explanation
    assert hit != ("misses every memslot" in q.explanation)
    for kernel in kv.kernels.KERNELS_2021:
        locking = [cb for cb in q.answer if kv.takes_lock(kernel, cb, hit)]
        assert f"{kernel}: {', '.join(locking) or 'none'}" in q.explanation
    assert f"v5.12: {', '.join(q.answer)}" in q.explanation


# -- reader-wait, beyond the text ---------------------------------------------------------------
@given(st.integers(0, 10_000), st.sampled_from(kv.POLICIES))
def test_reader_wait_is_chapter_03s_scene_for_any_seed(seed, policy):
    """One writer arrives while every earlier reader is inside; the question asks about a
    reader arriving after it; the answer is the oracle's grant minus its arrival."""
    q = exercises.reader_wait(seed=seed, policy=policy)
    arrival, is_writer, hold = _requests(q.scene)
    asked = q.scene.asked
    assert not is_writer[asked]
    assert sum(is_writer) == 1
    writer = is_writer.index(True)
    assert asked > writer
    assert all(arrival[i] + hold[i] > arrival[writer] for i in range(writer))
    grant = lock_oracle(arrival, is_writer, hold, policy)
    assert q.answer == grant[asked] - arrival[asked]
    assert q.check(q.answer)[0]


@given(st.integers(0, 10_000))
def test_reader_wait_under_reader_pref(seed):
    """A reader-preferring lock makes a reader wait only if it arrives while the writer is
    inside, and then just until the writer leaves: never for a writer that merely waits."""
    q = exercises.reader_wait(seed=seed, policy="reader-pref")
    arrival, is_writer, hold = _requests(q.scene)
    asked = q.scene.asked
    w = is_writer.index(True)
    grant_w = kv.replay(arrival, is_writer, hold, "reader-pref")[w]
    inside = grant_w <= arrival[asked] < grant_w + hold[w]
    assert q.answer == (grant_w + hold[w] - arrival[asked] if inside else 0)


def test_reader_wait_is_seeded_and_reads_typed_numbers():
    """One seed gives one question; the widget's text reads as a number, "ten" does not."""
    a, b = exercises.reader_wait(seed=7), exercises.reader_wait(seed=7)
    assert (a.question, a.answer) == (b.question, b.answer)
    assert exercises.reader_wait(seed=8).question != a.question
    q = exercises.reader_wait(seed=3)
    assert q.check(_parse(f" {q.answer} ", q.answer))[0]
    assert not q.check(_parse(str(q.answer + 1), q.answer))[0]
    with pytest.raises(ValueError, match="number"):
        _parse("ten", q.answer)


# -- must-retry, beyond the text ----------------------------------------------------------------
@pytest.mark.parametrize("seed", range(150))
def test_must_retry_answer_is_the_oracles_on_the_drawn_case(seed):
    """The drawn case, replayed by the kernel-text oracle, gives the answer; the opposite and
    yes/no spellings are judged accordingly."""
    q = exercises.must_retry(seed)
    case = exercises.must_retry(seed, LAYOUT).scene.case
    assert q.answer == retry_oracle(case.kernel, LAYOUT, case.hva, case.seq, case.calls)
    assert case.callbacks == case.calls  # the former name still reads
    assert q.check(q.answer)[0]
    assert not q.check(not q.answer)[0]
    assert q.check("yes" if q.answer else "no")[0]


def test_must_retry_same_seed_same_question_and_both_answers_occur():
    """40 seeds give 40 questions over all three kernels; both answers occur often."""
    assert exercises.must_retry(7).question == exercises.must_retry(7).question
    questions = {exercises.must_retry(s).question for s in range(40)}
    assert len(questions) == 40
    answers = [exercises.must_retry(s).answer for s in range(300)]
    assert 0.3 < np.mean(answers) < 0.8
    kernels = {exercises.must_retry(s, LAYOUT).scene.case.kernel for s in range(40)}
    assert kernels == set(kv.kernels.KERNELS_2021)


# -- walk-threshold and flush-hold, against the model's cost rules ------------------------------
def _asked(scene) -> tuple[str, str, float]:
    """(kernel, callback, threshold µs) a memslot_walk_threshold question asks about."""
    return scene.kernel, scene.callback, scene.threshold_us


def _walk_oracle(kernel: str, callback: str, threshold_us: float) -> int:
    """Smallest n in [1, 32764] whose hold exceeds the threshold, trying every n."""
    assert (kernel, callback) in {
        ("v5.12", "invalidate_range_start"),
        ("v5.12", "clear_flush_young"),
        ("v5.13", "invalidate_range_start"),
    }
    walks = 2 if kernel == "v5.12" else 1
    n = np.arange(1, 32765)
    hold_us = DEFAULT.lock_op_us + walks * n * DEFAULT.memslot_walk_ns * 1e-3
    above = np.flatnonzero(hold_us > threshold_us)
    assert len(above), "every question must have an answer within KVM_USER_MEM_SLOTS"
    return int(n[above[0]])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_walk_threshold_matches_brute_force(seed):
    """The engine's answer is the smallest n the model's costs give, tried one by one; n - 1
    and n + 1 are wrong."""
    q = exercises.memslot_walk_threshold(seed)
    assert q.answer == _walk_oracle(*_asked(q.scene))
    assert 1 <= q.answer <= 32764
    assert q.check(q.answer)[0]
    assert q.check(_parse(str(q.answer), q.answer))[0]  # as typed in the widget
    assert not q.check(q.answer - 1)[0]
    assert not q.check(q.answer + 1)[0]


def test_walk_threshold_covers_every_case_and_is_the_same_for_a_room():
    """40 seeds ask about the three callbacks that walk under the lock; one seed, one text."""
    seen = set()
    for seed in range(40):
        kernel, callback, _ = _asked(exercises.memslot_walk_threshold(seed).scene)
        seen.add((kernel, callback))
    assert seen == {
        ("v5.12", "invalidate_range_start"),
        ("v5.12", "clear_flush_young"),
        ("v5.13", "invalidate_range_start"),
    }
    a, b = exercises.memslot_walk_threshold(7), exercises.memslot_walk_threshold(7)
    assert (a.question, a.answer, a.explanation) == (b.question, b.answer, b.explanation)


def test_walk_threshold_slices_are_the_preset():
    """The generator slices one 32,764-slot layout: its first n slots are the n-slot preset."""
    slots = costs._many_memslots()
    for n in (1, 509, 4000):
        assert slots[:n] == many_memslots_layout(n).slots


def test_a_miss_on_v515_holds_nothing_however_many_memslots():
    """071064f14d87: the same spurious start on v5.15 walks outside the lock."""
    scenario = kv.Scenario(n_vcpus=1, duration_us=1.0, layout=many_memslots_layout(32764))
    hva = VMM_HEAP[0]
    hold_us = costs._one_event_hold_us(scenario, "v5.15", "pair", hva, "invalidate_range_start")
    assert hold_us == 0


def _flush_asked(scene) -> tuple[int, str]:
    return scene.n_vcpus, scene.kernel


def _flush_oracle(n_vcpus: int, kernel: str) -> float:
    """Lock + walks x memslots + the zap of one page + one VM-wide TLB flush, in µs."""
    s = DEFAULT
    walks = 2 if kernel == "v5.12" else 1  # v5.12 walked for the rmaps and per TDP root
    zap_us = s.zap_base_us + s.zap_us_per_mib * PAGE_SIZE / 2**20
    # Linear to 64 vCPUs, then (N / 64) ** tlb_flush_exponent (the Scenario's flush growth).
    reach = n_vcpus if n_vcpus <= 64 else 64 * (n_vcpus / 64) ** s.tlb_flush_exponent
    flush_us = s.tlb_flush_base_us + s.tlb_flush_per_vcpu_us * reach
    return s.lock_op_us + walks * len(s.layout) * s.memslot_walk_ns * 1e-3 + zap_us + flush_us


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_flush_hold_matches_the_cost_rules(seed):
    """The answer is the rounded hold of the cost rules, never within 0.25 µs of a half;
    16 to 416 vCPUs; one µs more is wrong."""
    q = exercises.hit_flush_hold(seed)
    n_vcpus, kernel = _flush_asked(q.scene)
    exact = _flush_oracle(n_vcpus, kernel)
    assert q.answer == round(exact)
    assert abs(exact - round(exact)) < 0.25, "the rounding must never be a coin toss"
    assert 16 <= n_vcpus <= 416
    assert q.check(q.answer)[0] and q.check(float(q.answer))[0]
    assert not q.check(q.answer + 1)[0]


def test_no_kernel_elides_a_hit():
    """Same VM, same page, every kernel: the hold of a hitting start rounds to the same µs."""
    for seed in range(30):
        q = exercises.hit_flush_hold(seed)
        n_vcpus, _ = _flush_asked(q.scene)
        holds = {round(_flush_oracle(n_vcpus, k)) for k in kv.KERNELS}
        assert holds == {q.answer}


def _queued_asked(scene) -> tuple[str, int, float]:
    """(callback, notifier event, arrival µs) of the callback asked about."""
    row = scene.run.notifiers.iloc[scene.pick]
    return str(row["callback"]), int(row["event"]), float(row["t_arrive_us"])


def queued_behind_oracle(scene, run) -> int:
    """Brute force over the lock table of ``run`` (simulated by the test), the qrwlock's rule
    transcribed: a fault attempt that waited is behind the newest callback that asked for
    mmu_lock at or before its request and released after it (queued_read_lock_slowpath);
    count those behind the callback asked about (its name, event and arrival). Shares no code
    with the engine's blocked_by (nor with the Perfetto flows)."""
    callback, event, t_us = _queued_asked(scene)
    assert scene.run.kernel == run.kernel
    lock = run.lock

    def ns(us) -> int:
        return round(float(us) * 1000)

    writers = [
        (ns(r.t_request_us), ns(r.t_release_us), int(r.who), r.callback)
        for r in lock.itertuples()
        if r.holder == "notifier"
    ]
    # An event may run one callback twice (a KSM merge: two starts): the time says which.
    named = [
        w for w in writers if (w[2], w[3]) == (event, callback) and abs(w[0] / 1e3 - t_us) < 0.1
    ]
    assert len(named) == 1
    count = 0
    for r in lock.itertuples():
        if r.holder != "vcpu" or ns(r.t_grant_us) <= ns(r.t_request_us):
            continue
        asked = ns(r.t_request_us)
        ahead = [w for w in writers if w[0] <= asked < w[1]]
        count += bool(ahead) and max(ahead, key=lambda w: w[0]) == named[0]
    return count


def perfetto_arrows(scene, run) -> int:
    """What the reader counts in Perfetto: the flows leaving the named callback's
    ``waiting for mmu_lock (write)`` slice in the run's ``.pftrace``, read with perfetto's own
    protos."""
    from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

    callback, event, t_us = _queued_asked(scene)
    trace = pb.Trace.FromString(kv.export.perfetto_trace(run))
    begins = [p for p in trace.packet if p.track_event.type == pb.TrackEvent.TYPE_SLICE_BEGIN]
    for i, p in enumerate(begins):
        args = {
            a.name: a.int_value if a.HasField("int_value") else a.string_value
            for a in p.track_event.debug_annotations
        }
        if (
            p.track_event.name == callback
            and args.get("event") == event
            and abs(p.timestamp / 1e3 - t_us) < 0.1
        ):
            wait = next(
                b for b in begins[i + 1 :]
                if b.track_event.track_uuid == p.track_event.track_uuid
            )  # fmt: skip
            assert wait.track_event.name == "waiting for mmu_lock (write)"
            return len(wait.track_event.flow_ids)
    raise AssertionError(f"no {callback} of event {event} in the trace")


@pytest.mark.parametrize("seed", range(8))
def test_queued_behind_counts_who_queued_behind_the_callback(seed):
    """The answer is the brute-force count over the lock table, and the number of arrows the
    .pftrace draws from that callback; one more is wrong; the same seed asks the same."""
    q = exercises.queued_behind(seed)
    run = kv.simulate(exercises.QUEUE_SCENE, "v5.12", seed=seed)
    assert q.answer == queued_behind_oracle(q.scene, run)
    assert q.answer == perfetto_arrows(q.scene, run)
    assert q.check(str(q.answer))[0] and not q.check(q.answer + 1)[0]
    assert exercises.queued_behind(seed).question == q.question


def test_queued_behind_reads_blocked_by():
    """The count is the fault attempts whose blocked_by names the callback: the one home of
    who queued behind whom; the explanation says how to ask the run."""
    q = exercises.queued_behind(3)
    run = kv.simulate(exercises.QUEUE_SCENE, "v5.12", seed=3)
    row = q.scene.pick
    assert f"row {row} of `run.notifiers`" in q.explanation
    assert q.answer == int((run.faults["blocked_by"] == row).sum())
    assert f"`(run.faults.blocked_by == {row}).sum()`" in q.explanation


def test_queued_behind_on_the_command_line_names_its_run_and_how_to_look(capsys):
    """Outside the notebook the question names the VM and its scenario, the kernel, the lock,
    the seed and the window, and the commands that write the run for Perfetto or list the
    requests for mmu_lock around the callback; the listing command runs and shows the answer's
    attempts."""
    assert cli.main(["quiz", "queued-behind", "-s", "3"]) == 0
    out = capsys.readouterr().out
    scene = exercises.QUEUE_SCENE
    for stated in (
        "`kvmviz.exercises.QUEUE_SCENE` (8 vCPUs, 100% of them faulting, 10 µs in the guest "
        "between faults on average, 5,000 notification events per second (95% of them "
        "spurious), 3 ms;",
        "`kv.Scenario(n_vcpus=8, duration_us=3000.0, faulting_share=1.0, guest_run_us=10.0, "
        "notifier_rate_hz=5000.0)`",
        "simulated on **v5.12**, lock qrwlock, seed 3",
        "in the whole run (0 to 3 ms)",
        "kv.to_perfetto(kv.simulate(kv.exercises.QUEUE_SCENE, 'v5.12', seed=3), "
        "'queued-behind-3.pftrace')",
        "count the arrows leaving its `waiting for mmu_lock (write)` slice",
    ):
        assert stated in out, stated
    assert kv.Scenario(n_vcpus=8, duration_us=3000.0, faulting_share=1.0, guest_run_us=10.0,
                       notifier_rate_hz=5000.0) == scene  # fmt: skip
    listing = re.search(r'`python -c "import kvmviz as kv; (lock = .*?)"`', out)[1]
    scope: dict = {"kv": kv}
    exec(listing.split("; print(")[0], scope)
    rows = eval(listing.split("; print(")[1].removesuffix(".to_string())"), scope)
    q = exercises.queued_behind(3)
    waited = rows[(rows.holder == "vcpu") & (rows.t_grant_us > rows.t_request_us)]
    assert len(waited) >= q.answer == 5


def test_queued_behind_picks_in_the_window_and_refuses_an_empty_one(busy8):
    """With ``window=``, the callback asked about arrives in it, and the question names the
    window and the run (``about=`` or the run's own kernel, lock, seed and scenario); seeds
    walk the window's waiting callbacks; a window no waiting callback arrives in is a
    ValueError saying so."""
    start, end = 1_000.0, 2_000.0
    picked = set()
    for seed in range(5):
        q = exercises.queued_behind(seed, run=busy8, window=(start, end))
        callback, event, t_us = _queued_asked(q.scene)
        assert start <= t_us < end
        assert f"it asked for `mmu_lock` at t = {t_us / 1000:.4f} ms" in q.question
        assert q.answer == queued_behind_oracle(q.scene, busy8)
        assert "in the window 1.0000 to 2.0000 ms of the run" in q.question
        assert "the run passed as `run=`: **v5.12**, lock qrwlock, seed 0, on 8 vCPUs" in q.question
        picked.add((event, callback))
    n = busy8.notifiers
    waiting = n[n.locked & (n.wait_us > 0) & (n.t_arrive_us >= start) & (n.t_arrive_us < end)]
    followed = [
        exercises.queued_behind(seed, run=busy8, window=(start, end)).answer for seed in range(5)
    ]
    assert min(followed) >= 1  # a callback nobody queued behind is not asked about
    assert len(picked) <= len(waiting) == 4  # each waiting callback someone followed, once
    named = exercises.queued_behind(0, run=busy8, window=(start, end), about="chapter 07's replay")
    assert named.question.startswith(
        "The run: chapter 07's replay (**v5.12**, lock qrwlock, seed 0)"
    )
    with pytest.raises(ValueError, match=r"no callback arriving in \[0, 1\) µs waited"):
        exercises.queued_behind(0, run=busy8, window=(0.0, 1.0))


# -- the 2024 freeze: zap-yields, precheck-lock, futile-reads ------------------------------------
def test_zap_yields_answers_are_the_kernel_texts():
    """Every host the kind asks about (seeds 0..161 walk all 162 once): the answer is
    rwlock_needbreak() transcribed (a09a689a5341, e1eed5847b09, c793a62823d1); the question
    names the release, the build and the boot; yes and no are read either way."""
    seen = set()
    for seed in range(162):
        q = exercises.zap_yields_question(seed)
        s = q.scene
        seen.add((s.kernel, s.preempt, s.dynamic))
        assert q.answer is zap_yields_oracle(s.kernel, s.preempt, s.dynamic), (seed, s)
        _accepts(q, ["yes" if q.answer else "no", str(q.answer)])
        _rejects(q, not q.answer)
    assert len(seen) == 162 == len(kv.kernels.RELEASES) * 3 * 2


def test_zap_yields_on_the_reports_host_and_after_the_fixes():
    """The hosts of chapter 08's table, by seed: v6.7 PREEMPT_DYNAMIC voluntary yields, v6.11
    voluntary does not, v5.12 never did; each explanation cites the rule that decides."""
    by_host = {
        (q.scene.kernel, q.scene.preempt, q.scene.dynamic): q
        for q in (exercises.zap_yields_question(seed) for seed in range(162))
    }
    assert by_host[("v6.7", "voluntary", True)].answer is True
    assert "PREEMPT_DYNAMIC build always sets" in by_host[("v6.7", "voluntary", True)].explanation
    assert by_host[("v6.11", "voluntary", True)].answer is False
    assert "c793a62823d1 (v6.11)" in by_host[("v6.11", "voluntary", True)].explanation
    assert by_host[("v5.12", "full", True)].answer is False
    assert "e1eed5847b09 (v5.13)" in by_host[("v5.12", "full", True)].explanation
    assert by_host[("v6.7", "voluntary", False)].answer is False


def test_precheck_lock_answers_are_the_kernel_texts():
    """Seeds 0..199: the answer is kvm_faultin_pfn()'s pre-check transcribed (always the lock
    before d02c357e5bfa, v6.8); every case of the counters is asked, on kernels with and
    without the pre-check, and both answers occur on each."""
    cases = set()
    for seed in SEEDS:
        q = exercises.precheck_lock(seed)
        s = q.scene
        expected = precheck_oracle(s.kernel, s.count, s.lo, s.hi, s.gfn, s.seq_now, s.seq)
        assert q.answer is expected, (seed, s)
        _accepts(q, ["yes" if expected else "no"])
        _rejects(q, "no" if expected else "yes")
        inside = s.lo <= s.gfn < s.hi
        precheck = kv.kernels.features(s.kernel).precheck
        cases.add((precheck, inside, s.count != 0, s.seq_now != s.seq))
    assert len(cases) >= 8
    answers = {
        (kv.kernels.features(q.scene.kernel).precheck, q.answer)
        for q in map(exercises.precheck_lock, SEEDS)
    }
    assert answers == {(True, True), (True, False), (False, True)}


@given(
    kernel=st.sampled_from(kv.kernels.RELEASES),
    count=st.integers(0, 3),
    lo=st.integers(0, 1 << 20),
    width=st.integers(1, 1 << 16),
    offset=st.integers(-(1 << 16), 1 << 17),
    seq=st.integers(0, 1 << 30),
    moved=st.integers(0, 2),
)
def test_precheck_lock_rule_is_the_kernel_text_on_any_counters(
    kernel, count, lo, width, offset, seq, moved
):
    """On any release and any counters, not only those the generator draws, the kind's answer
    is the transcription of kvm_faultin_pfn()'s pre-check."""
    from kvmviz.exercises.base import Scene
    from kvmviz.exercises.freeze import PrecheckLock

    scene = Scene(
        kernel=kernel, gfn=max(lo + offset, 0), seq=seq, count=count, lo=lo, hi=lo + width,
        seq_now=seq + moved,
    )  # fmt: skip
    expected = precheck_oracle(kernel, count, lo, lo + width, scene.gfn, seq + moved, seq)
    assert PrecheckLock().answer(scene) is expected


def test_precheck_lock_names_the_counters_of_the_release():
    """v6.x names: mmu_invalidate_seq and mmu_invalidate_in_progress (20ec3ebd707c)."""
    for seed in range(20):
        q = exercises.precheck_lock(seed)
        assert "`mmu_invalidate_seq` = " in q.question
        assert "`mmu_invalidate_in_progress` = " in q.question
        assert "mmu_notifier_seq" not in q.question


def futile_reads_oracle(run) -> int:
    """Brute force over ``run``'s tables: a read acquisition ends in a retry if, when it is
    granted, an invalidation that took mmu_lock is in flight over its hva (from its start's
    first grant to its end's release: count raised) or an end released after its sample of
    seq (seq moved): mmu_invalidate_retry_hva() transcribed, sharing no code with the
    engine's retry flag."""
    n = run.notifiers
    locked = n[n["locked"]]
    starts = locked[locked["callback"] == START]
    ends = locked[locked["callback"] == END].set_index("event")
    windows = [
        (r.t_grant_us, ends.loc[r.event, "t_release_us"], r.hva_start, r.hva_end)
        for r in starts.itertuples()
    ]
    seq_bumps = sorted(ends["t_release_us"])
    count = 0
    for a in run.faults.itertuples():
        in_flight = any(g <= a.t_grant_us < r and lo <= a.hva < hi for g, r, lo, hi in windows)
        moved = any(a.t_snapshot_us < t <= a.t_grant_us for t in seq_bumps)
        count += in_flight or moved
    return count


@pytest.mark.parametrize("seed", range(0, 30, 3))
def test_futile_reads_counts_the_retries_of_both_runs(seed):
    """The answer is the brute-force count on the two runs the question names (simulated here
    from its own expression); v6.7 has futile reads and v6.8 at most a few; any order of the
    two numbers other than v6.7's first is wrong."""
    q = exercises.futile_reads(seed)
    expression = re.search(r"The runs: `(kv\.simulate\(.*?\))` and the same", q.question)[1]
    runs = {k: eval(expression.replace("'v6.7'", f"'{k}'"), {"kv": kv}) for k in ("v6.7", "v6.8")}
    expected = [futile_reads_oracle(runs["v6.7"]), futile_reads_oracle(runs["v6.8"])]
    assert q.answer == expected, seed
    assert expected[0] > 0 and expected[1] <= max(3, expected[0] // 20)
    _accepts(q, [expected, f"{expected[0]} {expected[1]}", f"[{expected[0]}, {expected[1]}]"])
    _rejects(q, expected[::-1])
    _rejects(q, [expected[0] + 1, expected[1]])


def test_futile_reads_scene_is_the_small_freeze():
    """FREEZE_SCENE: the NUMA-balancing preset with 4 vCPUs on 64 MiB, a 16 MiB scan at 0.5 ms,
    3 ms, PREEMPT_DYNAMIC voluntary; the question says all of it."""
    scene = exercises.FREEZE_SCENE
    assert scene == kv.presets.numa_balancing_setup(
        n_vcpus=4, layout=scene.layout, guest_run_us=20.0, duration_us=3000.0,
        numa_scan_size_mib=16.0,
    )  # fmt: skip
    assert scene.layout.total_pages * 4096 == 64 << 20
    assert (scene.preempt, scene.preempt_dynamic, scene.numa_scan_delay_ms) == (
        "voluntary",
        True,
        0.5,
    )


ORACLES = {
    "takes-lock": takes_lock_oracle,
    "zapped-gfns": zapped_oracle,
    "hit-or-miss": hit_or_miss_oracle,
    "callback-order": lambda scene: CALLBACKS_OF[scene.operation],
    "trace-count": trace_count_oracle,
    "grant-order": lock_oracle,
    "reader-wait": lock_oracle,
    "must-retry": must_retry_oracle,
    "walk-threshold": walk_threshold_oracle,
    "flush-hold": flush_hold_oracle,
    "first-vcpus-above": first_vcpus_oracle,
    "munmap-on-guest": munmap_oracle,
    "ksm-hits": ksm_hits_oracle,
    "v513-locks": v513_locks_oracle,
    "queued-behind": queued_behind_oracle,
    "zap-yields": zap_yields_oracle,
    "precheck-lock": precheck_oracle,
    "futile-reads": futile_reads_oracle,
}


# -- every kind: distinct questions, none degenerate, every input stated ----------------------
TRACE_NAMED = "the trace `data/traces/notifier-phases-linux6.18.txt` (memslots: " \
    "`data/traces/notifier-phases-linux6.18.layout.json`"  # fmt: skip
# Kinds whose questions are few enough to list: seed s asks what s % n asks (the docstrings say
# so). Every other kind asks 100 different questions over seeds 0..99.
SPACE = {"ksm-hits": 6, "v513-locks": 5, "first-vcpus-above": 42}


@functools.cache
def _exercises_of(kind: str) -> tuple:
    """The exercises of seeds 0..99 of one kind (made once for the tests below)."""
    return tuple(exercises.quiz(kind, seed) for seed in range(100))


@pytest.mark.parametrize("kind", list(exercises.KINDS))
def test_different_seeds_ask_different_questions(kind):
    """No two seeds of 0..99 ask the same text; a kind with fewer questions (SPACE) asks each
    of them once in seeds 0..n-1, then again in the same order."""
    texts = [q.question for q in _exercises_of(kind)]
    n = SPACE.get(kind, 100)
    assert len(set(texts[:n])) == n, [s for s, t in enumerate(texts) if texts.count(t) > 1]
    assert texts[n:] == texts[: 100 - n]


def _waits_on_every_lock(q) -> bool:
    arrival, is_writer, hold = _requests(q.scene)
    return all(
        any(g > a for g, a in zip(lock_oracle(arrival, is_writer, hold, p), arrival, strict=True))
        for p in kv.POLICIES
    )


def _reader_meets_the_writer(q) -> bool:
    arrival, is_writer, hold = _requests(q.scene)
    asked = q.scene.asked
    w = is_writer.index(True)
    return all(
        arrival[asked] < lock_oracle(arrival, is_writer, hold, p)[w] + hold[w] for p in kv.POLICIES
    )


def _nobody_queued_behind_a_waiting_callback(seed: int) -> bool:
    """A queued-behind answer of 0 only where the run had no waiting callback with a fault
    behind it (seed 25 of 0..99): a callback somebody queued behind is asked about first."""
    run = kv.simulate(exercises.QUEUE_SCENE, "v5.12", seed=seed)
    waiting = np.flatnonzero(run.notifiers["locked"] & (run.notifiers["wait_us"] > 0))
    return not np.isin(waiting, run.faults["blocked_by"]).any()


def _munmap_matters(q) -> bool:
    """The pair ends inside the 40 µs, and some attempt checks once the start holds the lock."""
    notifiers = q.scene.run.notifiers.set_index("callback")
    grant = float(notifiers.loc[START, "t_grant_us"])
    seq_up = float(notifiers.loc[END, "t_release_us"])
    checks = q.scene.table["checks at (µs)"]
    return seq_up < 40 and any(c >= grant for c in checks)


# What would make a question of each kind ask nothing (its premise void, or its answer given).
NOT_DEGENERATE = {
    "takes-lock": lambda q: q.scene.start != q.scene.end,
    "zapped-gfns": lambda q: len(q.answer) >= 2,
    "hit-or-miss": lambda q: "fires on hva [" in q.question,
    "callback-order": lambda q: len(q.answer) >= 1,
    "trace-count": lambda q: 0 < q.answer < 30,
    "grant-order": _waits_on_every_lock,
    "reader-wait": _reader_meets_the_writer,
    "must-retry": lambda q: len(q.scene.case.calls) >= 1,
    "munmap-on-guest": _munmap_matters,
    "walk-threshold": lambda q: q.answer > 1,
    "flush-hold": lambda q: q.answer > 0,
    "first-vcpus-above": lambda q: q.answer != exercises.SWEEP_VCPUS[0],
    "ksm-hits": lambda q: q.answer > 0,
    "v513-locks": lambda q: 0 < q.answer < len(q.scene.rows),
    "queued-behind": lambda q: (
        round(float(q.scene.run.notifiers.iloc[q.scene.pick]["wait_us"]), 2) > 0
        and (q.answer >= 1 or _nobody_queued_behind_a_waiting_callback(q.seed))
    ),
    "zap-yields": lambda q: isinstance(q.answer, bool),
    # the fault's gfn at most 16 MiB from the range: the range is what the question is about
    "precheck-lock": lambda q: q.scene.lo - 4096 <= q.scene.gfn < q.scene.hi + 4096,
    "futile-reads": lambda q: q.answer[0] > q.answer[1],
}


@pytest.mark.parametrize("kind", list(exercises.KINDS))
def test_no_degenerate_question_is_asked(kind):
    """Seeds 0..99 of each kind: no reader arriving after the writer left (reader-wait 23 was
    one), no scene where nobody waits, no count of nothing, no munmap whose effect falls past
    the run, no first vCPU count that is the sweep's smallest, no callback that did not wait."""
    bad = [q.seed for q in _exercises_of(kind) if not NOT_DEGENERATE[kind](q)]
    assert bad == []


def _stated_slots(q, gfns: bool = False) -> None:
    """The question lists every memslot of its layout (chapter 01's QEMU), one line each."""
    assert q.scene.layout == LAYOUT
    listed = [line for line in q.question.splitlines() if line.startswith("- slot ")]
    assert listed == _slot_lines(LAYOUT, gfns)


def _stated(q, *texts: str) -> None:
    for text in texts:
        assert text in q.question, f"{q.kind} -s {q.seed} does not state {text!r}"


def _stated_requests(q) -> None:
    """Every request, as the scene has it, with the tie rules and the policy's rules."""
    arrival, is_writer, hold = _requests(q.scene)
    assert len(arrival) >= 2 and any(is_writer)
    policy = q.scene.policy
    _stated(
        q,
        TIES,
        f"Under **{policy}** ({lock_order._POLICY_RULES[policy]})",
        *(
            f"- request {i}: {'writer (notifier)' if w else 'reader (vCPU fault)'} arrives at "
            f"t={a} µs, holds {h} µs\n"
            for i, (a, w, h) in enumerate(zip(arrival, is_writer, hold, strict=True))
        ),
    )
    listed = [line for line in q.question.splitlines() if line.startswith("- request ")]
    assert len(listed) == len(arrival)


def _stated_retry(q) -> None:
    """The slots, the kernel, the fault, the seq it sampled and every callback, in order."""
    case = q.scene.case
    _stated_slots(q)
    steps = [
        f"{i}. `{cb}` at hva {start:#x} (its page: [{start:#x}, {end:#x}))"
        if cb in ("change_pte", "test_young")
        else f"{i}. `{cb}` on hva [{start:#x}, {end:#x})"
        for i, (cb, start, end) in enumerate(case.calls, start=1)
    ]
    _stated(
        q,
        f"On **{case.kernel}**",
        f"A vCPU faults on hva {case.hva:#x}.",
        f"samples `mmu_notifier_seq` = {case.seq} (",
        *(f"\n{step}\n" for step in steps),
    )
    numbered = [line for line in q.question.splitlines() if re.match(r"\d+\. `", line)]
    assert numbered == steps


def _stated_munmap(q) -> None:
    """The munmap (seed, kernel, time, range), the instants the text-alone oracle reads, and
    every attempt of the 40 µs, retries too."""
    seed, kernel, t_us, (lo, hi) = _munmap_asked(q.scene)
    _stated(
        q,
        f"workload seed {seed})",
        f"On **{kernel}**, at {t_us:g} µs the host unmaps",
        f"hva [{lo:#x}, {hi:#x}) (in memslot",
    )
    munmap_text_oracle(q.question)  # finds the callbacks' instants, the range, the attempts
    run = kv.simulate(TINY, kernel, seed=seed, stream=_stream((t_us, "pair", lo, hi)))
    listed = re.findall(r"^- vCPU \d+ \(hva", q.question, re.MULTILINE)
    assert len(listed) == int((run.faults.t_grant_us < 40).sum())  # every attempt, retries too


def _stated_walk(q) -> None:
    """The kernel, the callback, the threshold and the two costs, the model's defaults."""
    s = q.scene
    assert (s.base.memslot_walk_ns, s.base.lock_op_us) == (
        DEFAULT.memslot_walk_ns,
        DEFAULT.lock_op_us,
    )
    _stated(
        q,
        f"On **{s.kernel}**, the VMM triggers `{s.callback}` on a page of its own heap "
        f"(hva {s.hva:#x})",
        f"**more than {s.threshold_us} µs**",
        f"Visiting one memslot costs {DEFAULT.memslot_walk_ns:g} ns",
        f"`mmu_lock` costs {DEFAULT.lock_op_us * 1000:g} ns",
    )


def _stated_flush(q) -> None:
    """The VM's size, the kernel, the page and every cost, the model's defaults."""
    s, d = q.scene, DEFAULT
    assert s.scenario == d.replace(n_vcpus=s.n_vcpus, duration_us=1.0)
    _stated(
        q,
        f"A VM with **{s.n_vcpus} vCPUs** runs **{s.kernel}**",
        f"(hva {s.hva:#x}, in memslot {s.ram.slot})",
        f"lock + unlock {d.lock_op_us * 1000:g} ns",
        f"{d.memslot_walk_ns:g} ns per memslot walked ({len(d.layout)} memslots)",
        f"zapping {d.zap_base_us:g} µs + {d.zap_us_per_mib:g} µs per MiB",
        f"TLB flush {d.tlb_flush_base_us:g} µs + {d.tlb_flush_per_vcpu_us:g} µs x N for N <= 64",
        f"(N/64)^{d.tlb_flush_exponent:g}` µs",
    )


def _stated_sweep_command(q) -> None:
    """The command that prints the column outside the notebook sweeps the asked column."""
    kernel, share, _ = _first_vcpus_asked(q.scene)
    command = re.search(r'`python -c "(.*?)"`', q.question)[1]
    assert f"kernels=['{kernel}']" in command and f"spurious_share=[{share:g}]" in command
    assert "seeds=[0, 1, 2, 3], n_vcpus=[16, 32, 64, 128, 256, 416]" in command
    assert "duration_us=10000)" in command and ".stall_p99_us.mean()" in command


def _stated_sweep(q) -> None:
    kernel, share, threshold = _first_vcpus_asked(q.scene)
    _stated(
        q,
        "the default VM for 10 ms at 16, 32, 64, 128, 256, 416 vCPUs, seeds 0 to 3",
        f"on **{kernel}** with {share:.0%} of the notifications spurious",
        f"exceeds {threshold:g} µs?",
        "`stall_p99_us`",
    )
    _stated_sweep_command(q)


def _stated_ksm(q) -> None:
    s = q.scene
    records = f"`{s.callback}` records" + ("" if s.task is None else f" of the task `{s.task}`")
    verb = "hit a memslot" if s.count_hits else "miss every memslot"
    _stated(q, TRACE_NAMED, "In the `ksm` phase", f"how many {records} {verb}?")


def _stated_v513(q) -> None:
    s = q.scene
    where = "notifications" if s.phase is None else f"the `{s.phase}` phase's notifications"
    what = "callbacks" if s.callback is None else f"`{s.callback}` callbacks"
    _stated(
        q,
        TRACE_NAMED,
        "**v5.13**",
        f"{where} of the trace",
        f" run {len(s.plan)} callbacks ",
        f"How many of these {len(s.rows)} {what} would have taken",
    )


def _stated_queue(q) -> None:
    run, row = q.scene.run, q.scene.run.notifiers.iloc[q.scene.pick]
    assert (run.kernel, run.seed) == ("v5.12", q.seed)
    _stated(
        q,
        f"simulated on **{run.kernel}**, lock {run.policy}, seed {q.seed}",
        f"take the `{row['callback']}` of notifier event {int(row['event'])} (",
        f"it asked for `mmu_lock` at t = {row['t_arrive_us'] / 1000:.4f} ms, waited "
        f"{row['wait_us']:.2f} µs for it and held it for {row['hold_us']:.3f} µs, until "
        f"t = {row['t_release_us'] / 1000:.4f} ms",
    )
    scene = re.search(r"`kv\.Scenario\((.*?)\)`", q.question)[1]
    assert eval(f"kv.Scenario({scene})", {"kv": kv}) == exercises.QUEUE_SCENE
    assert "in the whole run (0 to 3 ms)" in q.question and "lock qrwlock" in q.question
    assert float(row["t_release_us"]) > float(row["t_arrive_us"])


def _stated_operation(q) -> None:
    """The one operation asked about is named, by its words and no other operation's."""
    named = [operation for operation, phrase in PHRASES.items() if phrase in q.question]
    assert named == [q.scene.operation], q.question


def _stated_zap(q) -> None:
    s = q.scene
    build = "built with `CONFIG_PREEMPT_DYNAMIC`" if s.dynamic else "built without"
    boot = f"booted with `preempt={s.preempt}`" if s.dynamic else f"(`{s.preempt}`)"
    _stated(q, f"A host runs Linux **{s.kernel}**, {build}", boot, "Does the zap **yield**")


def _stated_precheck(q) -> None:
    s = q.scene
    _stated(
        q,
        f"A host runs **{s.kernel}** (TDP MMU). A vCPU takes an EPT violation on gfn {s.gfn:#x}",
        f"`mmu_invalidate_seq` = {s.seq}, then resolves",
        f"`mmu_invalidate_in_progress` = {s.count}",
        f"covers gfns [{s.lo:#x}, {s.hi:#x}); `mmu_invalidate_seq` = {s.seq_now}.",
        "(`mmu_invalidate_range_start` / `_end`"
        + ("" if kv.kernels.features(s.kernel).precheck else ", kept as the hvas of these pages"),
    )


def _stated_futile(q) -> None:
    s = q.scene
    expression = re.search(r"The runs: `(kv\.simulate\(.*?\))` and the same", q.question)[1]
    run = eval(expression, {"kv": kv})
    assert run.scenario == s.scenario and (run.kernel, run.seed) == ("v6.7", q.seed)
    _stated(
        q,
        f"with {s.scenario.n_vcpus} vCPUs",
        f"every {s.scenario.guest_run_us:g} µs",
        f"marks {s.scenario.numa_scan_size_mib:g} MiB of it",
        "`preempt=voluntary`",
        "on **v6.7**, and how many on **v6.8**",
    )


# For each kind, every parameter of its scene (what its oracle above reads), stated in the
# question as the scene has it (and, where the model holds the true value, equal to it): the
# memslots, the costs, the requests, the callbacks, the trace lines, the simulated run.
STATED = {
    "takes-lock": lambda q: (
        _stated_slots(q),
        _stated(q, f"On **{q.scene.kernel}**, the MMU notifier calls `{q.scene.callback}` on "
                   f"hva range [{q.scene.start:#x}, {q.scene.end:#x}).")),
    "zapped-gfns": lambda q: (
        _stated_slots(q, gfns=True),
        _stated(q, f"`invalidate_range_start` on hva [{q.scene.start:#x}, {q.scene.end:#x}), "
                   f"which begins inside slot {q.scene.slot}.")),
    "hit-or-miss": lambda q: (
        _stated_slots(q), _stated(q, f"fires on hva [{q.scene.start:#x}, {q.scene.end:#x}).")),
    "callback-order": _stated_operation,
    "trace-count": lambda q: _stated(
        q, TRACE_NAMED, f"between lines {q.scene.lo} and {q.scene.hi} (both included)"),
    "grant-order": _stated_requests,
    "reader-wait": lambda q: (
        _stated_requests(q),
        _stated(q, f"how long does request {q.scene.asked} (a reader) wait")),
    "must-retry": _stated_retry,
    "munmap-on-guest": _stated_munmap,
    "walk-threshold": _stated_walk,
    "flush-hold": _stated_flush,
    "first-vcpus-above": _stated_sweep,
    "ksm-hits": _stated_ksm,
    "v513-locks": _stated_v513,
    "queued-behind": _stated_queue,
    "zap-yields": _stated_zap,
    "precheck-lock": _stated_precheck,
    "futile-reads": _stated_futile,
}  # fmt: skip


@pytest.mark.parametrize("kind", list(exercises.KINDS))
def test_every_question_states_its_scene(kind):
    """Seeds 0..99 (0..29 for the kinds that simulate per seed): each question states every
    parameter of its scene, which its oracle in this file reads (the memslots, the costs, the
    lock requests and tie rules, the callbacks, the sweep and its measure, the trace by its
    files and lines, the simulated scene with its seed), with the model's true values where the
    model holds them: the text alone decides the answer."""
    asked = _exercises_of(kind)[: 30 if kind in ("munmap-on-guest", "futile-reads") else 100]
    assert set(STATED) == set(exercises.KINDS)
    for q in asked:
        STATED[kind](q)


@pytest.mark.parametrize("kind", FAST_KINDS)
def test_an_exercise_prints_no_answer_before_it_is_exercises_of(kind):
    """repr() and str() of an exercise show the question, never the answer's explanation (the
    Reveal button and -c do)."""
    for q in _exercises_of(kind)[:10]:
        assert q.explanation not in repr(q) and q.explanation not in str(q)
        assert "answer=" not in repr(q) and "explanation=" not in repr(q)


# -- seeds ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(exercises.KINDS))
@pytest.mark.parametrize(
    ("seed", "error"), [(1.7, TypeError), ("5", TypeError), (True, TypeError), (-1, ValueError)]
)
def test_generators_refuse_seeds_that_are_not_non_negative_integers(kind, seed, error):
    """1.7, "5", True and -1 are refused by name, never coerced into a seed."""
    with pytest.raises(error, match=r"^seed = .*: expected a non-negative integer$"):
        exercises.quiz(kind, seed=seed)


@pytest.mark.parametrize("kind", FAST_KINDS)
def test_a_numpy_seed_is_the_same_seed(kind):
    """np.int64(5) is seed 5: the same question, stored as a Python int."""
    a, b = exercises.quiz(kind, seed=np.int64(5)), exercises.quiz(kind, seed=5)
    assert (a.seed, a.question, a.answer) == (5, b.question, b.answer)
    assert type(a.seed) is int


def test_unknown_policy_is_refused_by_name():
    """A lock policy the question cannot describe is refused, naming the choices."""
    with pytest.raises(ValueError, match=r"^policy = 'fifo': expected one of qrwlock, "):
        exercises.grant_order(0, policy="fifo")
    with pytest.raises(ValueError, match=r"^policy = 'fifo'"):
        exercises.reader_wait(0, policy="fifo")


# -- typed answers -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("typed", "like", "value"),
    [
        ("Yes", True, True),
        ("false.", True, False),
        (" 7 µs ", 0, 7),
        ("0x1f", 0, 31),
        ("2.5", 0, 2.5),
        ("08 09, 10", [], [8, 9, 10]),
        ("[0x4f, 0x53)", [], [79, 83]),
        ("start, end", ("a",), "start, end"),
    ],
)
def test_parse_reads_what_the_questions_promise(typed, like, value):
    """Every spelling a question promises reads as the answer's value."""
    assert _parse(typed, like) == value


@pytest.mark.parametrize(
    ("typed", "like", "message"),
    [
        ("maybe", True, "type True or False (yes or no also work)"),
        ("ten", 0, "type a number, e.g. 7"),
        ("1 two", [], "type numbers separated by spaces, e.g. 0 5 12"),
    ],
)
def test_parse_says_how_to_type_what_it_cannot_read(typed, like, message):
    """Unreadable text gets one sentence saying how to type the answer."""
    with pytest.raises(ValueError) as info:
        _parse(typed, like)
    assert str(info.value) == message


# -- the question as HTML ------------------------------------------------------------------------
def test_markdown_to_html_formats_bold_code_lists_and_paragraphs():
    """Bold, code, em, bullet and numbered lists and paragraphs become HTML elements."""
    text = (
        "Under **qrwlock**, who gets `mmu_lock`?\n\n- request 0: *reader*\n- request 1: writer"
        "\n\n1. first\n2. second\nthen [0x1000, 0x2000) -> done"
    )
    assert markdown_to_html(text) == (
        "<p>Under <strong>qrwlock</strong>, who gets <code>mmu_lock</code>?</p>"
        "<ul><li>request 0: <em>reader</em></li><li>request 1: writer</li></ul>"
        "<ol><li>first</li><li>second</li></ol><p>then [0x1000, 0x2000) -&gt; done</p>"
    )


def test_markdown_to_html_escapes_and_leaves_code_unformatted():
    """HTML characters are escaped, code spans stay literal, a list may start at 3."""
    assert markdown_to_html("`a**b**<c>` & **`x`**") == (
        "<p><code>a**b**&lt;c&gt;</code> &amp; <strong><code>x</code></strong></p>"
    )
    assert (
        markdown_to_html("3. third\n4. fourth")
        == '<ol start="3"><li>third</li><li>fourth</li></ol>'
    )
    assert markdown_to_html("2 x n x 1.8 ns") == "<p>2 x n x 1.8 ns</p>"


@pytest.mark.parametrize("kind", FAST_KINDS)
def test_every_question_renders_without_markdown_left_over(kind):
    """No ``**`` or backtick survives the conversion of any kind's question."""
    for seed in range(20):
        shown = markdown_to_html(exercises.quiz(kind, seed).question)
        assert "**" not in shown and "`" not in shown, (kind, seed)
        assert "<strong>" in shown or "<code>" in shown


def test_widget_shows_html_and_checks_a_typed_answer():
    """The question is HTML (strong, a list, code); Check reads the text box; Reveal shows the
    answer and its explanation escaped (``->`` stays an arrow)."""
    pytest.importorskip("ipywidgets")
    q = exercises.grant_order(0)
    box = q.widget()
    question, (text, check, reveal), out = (
        box.children[0],
        box.children[1].children,
        box.children[2],
    )
    assert "kvmviz-question" in question._dom_classes
    assert "<strong>qrwlock</strong>" in question.value
    assert (
        "<ul><li>request 0: reader (vCPU fault) arrives at t=3 µs, holds 5 µs</li>"
        in question.value
    )
    assert "<code>mmu_lock</code>" in question.value
    text.value = "3, 8, 9, 9, 9, 12"
    check.click()
    assert out.value.startswith("<p><strong>✔</strong> Right!")
    text.value = "3 9 3 4 7 10"
    check.click()
    assert out.value.startswith(
        "<p><strong>✘</strong> Not quite: the answer is [3, 8, 9, 9, 9, 12]."
    )
    text.value = "three"
    check.click()
    assert out.value == "<i>type numbers separated by spaces, e.g. 0 5 12</i>"
    reveal.click()
    assert out.value.startswith("<p>Answer: [3, 8, 9, 9, 9, 12].")
    retry = exercises.must_retry(0).widget()
    retry.children[1].children[2].click()
    assert "count -&gt; 1" in retry.children[2].value


# ==============================================================================================
# kvmviz.rwlock.replay, checked against this file's code-level lock oracle (the one the
# grant-order and reader-wait exercises are built on).
# ==============================================================================================


# -- kvmviz.rwlock: replay against the code-level oracle ---------------------------------------
@given(requests, st.sampled_from(kv.POLICIES))
def test_replay_matches_the_code_level_oracle(scene, policy):
    """rwlock.replay grants every request when the kernel's code paths would (integer times,
    holds of at least 1 µs, ties resolved in request order)."""
    arrival, is_writer, hold = scene
    expected = lock_oracle(arrival, is_writer, hold, policy)
    assert kv.replay(arrival, is_writer, hold, policy).tolist() == expected


def test_oracle_on_the_chapter_scene():
    """The chapter's scene by hand: the writer waits for vCPU 1, the late readers for both."""
    arrival, is_writer, hold = [0, 1, 3, 4, 8, 12], [0, 0, 1, 0, 0, 0], [6, 10, 2, 3, 6, 3]
    assert lock_oracle(arrival, is_writer, hold, "qrwlock") == [0, 1, 11, 13, 13, 13]
    assert lock_oracle(arrival, is_writer, hold, "reader-pref") == [0, 1, 15, 4, 8, 12]
    assert lock_oracle(arrival, is_writer, hold, "spinlock") == [0, 6, 16, 18, 21, 27]
