"""Every exercise generator, read back from its own question text: a right answer is never
marked wrong.

For each kind of ``kvmviz quiz`` the tests below parse the *question a learner sees* (not the
generator's internals), compute the answer with an independent brute-force oracle that uses only
what the text states plus the kernel rule it tests, and check that the exercise accepts that
answer in every spelling the question promises and rejects a wrong one. The oracles of the lock
(a code-level transcription of ``kernel/locking/qrwlock.c``) and of ``mmu_notifier_retry_hva``
come from the chapter 03 and 05 tests, which check them against the kernel text.
"""

from __future__ import annotations

import re
from fractions import Fraction

import numpy as np
import pytest
from test_ch02_exercises import _expected as callback_oracle
from test_ch03_exercises import _oracle as lock_oracle
from test_ch05_exercises import oracle as retry_oracle

from kvmviz import cli, exercises
from kvmviz.exercises import _markdown_to_html, _parse
from kvmviz.presets import q35_512m_layout

SEEDS = range(200)
PAGE = 4096
HEX = r"0x[0-9a-f]+"
LAYOUT = q35_512m_layout()


def _accepts(q, spellings) -> None:
    for typed in spellings:
        ok, why = q.check(typed)
        assert ok, f"{q.kind} -s {q.seed}: {typed!r} is right but was marked wrong: {why}"
        assert why.startswith("Right!")


def _rejects(q, wrong) -> None:
    ok, why = q.check(wrong)
    assert not ok, f"{q.kind} -s {q.seed}: {wrong!r} is wrong but was accepted"
    assert why.startswith(("Not quite", "Not understood"))


# -- what the questions state, parsed back ---------------------------------------------------
def _slots(question: str) -> list[dict]:
    """The memslot list of a question: ``- slot N (as_id A): [gfn [g0, g1) at] hva [h0, h1)``."""
    pattern = re.compile(
        rf"^- slot (\d+) \(as_id (\d)\): (?:gfn \[({HEX}), ({HEX})\) at )?"
        rf"hva \[({HEX}), ({HEX})\)$",
        re.MULTILINE,
    )
    slots = []
    for slot, as_id, g0, g1, h0, h1 in pattern.findall(question):
        slots.append(
            {
                "slot": int(slot),
                "as_id": int(as_id),
                "gfn": (int(g0, 16), int(g1, 16)) if g0 else None,
                "hva": (int(h0, 16), int(h1, 16)),
            }
        )
    assert slots, question
    return slots


def _kernel(question: str) -> str:
    return re.search(r"\*\*(v5\.1[235])\*\*", question)[1]


def _requests(question: str):
    """The ``- request i: writer|reader ... arrives at t=A µs, holds H µs`` lines, in order."""
    rows = re.findall(r"^- request (\d+): (writer|reader).* at t=(\d+) µs, holds (\d+) µs$",
                      question, re.MULTILINE)  # fmt: skip
    assert [int(i) for i, *_ in rows] == list(range(len(rows)))
    return (
        [int(a) for *_, a, _ in rows],
        [w == "writer" for _, w, _, _ in rows],
        [int(h) for *_, h in rows],
    )


def _overlaps(a: tuple, b: tuple) -> bool:
    return max(a[0], b[0]) < min(a[1], b[1])


# docs/kernel.md §1.2/§2: which callbacks take mmu_lock, by kernel, on a miss (every kernel on
# a hit):
# all on v5.12; on v5.13 (8931a454aea0) only the start/end pair; none on v5.15 (071064f14d87).
LOCKS_ON_MISS = {
    "v5.12": {
        "invalidate_range_start",
        "invalidate_range_end",
        "change_pte",
        "clear_flush_young",
        "clear_young",
        "test_young",
    },
    "v5.13": {"invalidate_range_start", "invalidate_range_end"},
    "v5.15": set(),
}
# How many times each kernel walks the memslots under the lock (3039bcc74498 merged v5.12's two).
WALKS = {"v5.12": 2, "v5.13": 1, "v5.15": 1}


def test_every_quiz_kind_is_covered_here():
    """Each `kvmviz quiz` kind has an oracle in this file."""
    assert set(cli._QUIZ) == set(ORACLES)


# -- takes-lock -------------------------------------------------------------------------------
def takes_lock_oracle(question: str) -> bool:
    kernel = _kernel(question)
    callback, start, end = re.search(
        rf"calls `(\w+)` on hva range \[({HEX}), ({HEX})\)", question
    ).groups()
    hit = any(_overlaps((int(start, 16), int(end, 16)), s["hva"]) for s in _slots(question))
    return hit or callback in LOCKS_ON_MISS[kernel]


def test_takes_lock_answers_are_what_the_text_implies():
    """The slots, kernel, callback and range the text lists decide the answer (a
    half-open overlap test, then the kernel's rule); True/False and yes/no in any case work."""
    answers = []
    for seed in SEEDS:
        q = exercises.takes_lock_question(seed)
        assert "(answer True or False; yes or no also work)" in q.question
        expected = takes_lock_oracle(q.question)
        assert q.answer is expected, seed
        word = "yes" if expected else "no"
        _accepts(q, [expected, np.bool_(expected), str(expected), word, f" {word.upper()} "])
        _rejects(q, not expected)
        _rejects(q, "no" if expected else "yes")
        answers.append(expected)
    assert 0.2 < np.mean(answers) < 0.8  # both answers occur


# -- zapped-gfns ------------------------------------------------------------------------------
def zapped_oracle(question: str) -> list[tuple[int, int]]:
    """Page by page: each page the range touches, in each slot mapping it, gives one gfn."""
    start, end = (
        int(x, 16)
        for x in re.search(
            rf"`invalidate_range_start` on hva \[({HEX}), ({HEX})\)", question
        ).groups()
    )
    pairs = []
    for s in _slots(question):
        (h0, h1), (g0, _) = s["hva"], s["gfn"]
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
    listed = {(s["slot"], s["as_id"]) for s in _slots(q.question)}
    assert listed == {(s.slot, s.as_id) for s in LAYOUT}
    assert "in **every** memslot the range touches" in q.question
    assert "`gfn_end` exclusive" in q.question
    assert "in either address space" in q.question
    # The BIOS alias: isa-bios (slot 3) and pc.bios (slot 1) map the same host pages.
    assert zapped_oracle(q.question) == [(0xEC, 0xEF), (0xFFFEC, 0xFFFEF)]
    _accepts(q, ["236 239 1048556 1048559", "0xfffec 0xfffef 0xec 0xef"])
    _rejects(q, "236 239")  # only the slot the question starts from


def test_zapped_gfns_answers_are_what_the_text_implies():
    """Every touched slot's pair, in decimal, hex, with brackets, in any order of the
    pairs; an end rounded down, a forgotten alias or half a pair is wrong."""
    several = 0
    for seed in SEEDS:
        q = exercises.zapped_gfns(seed)
        pairs = zapped_oracle(q.question)
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
def test_grant_order_answers_are_what_the_text_implies(policy):
    """The request list and the stated tie rules fix every grant time (the code-level
    qrwlock oracle); spaces, commas, brackets, leading zeros and hex all work."""
    tied = 0
    for seed in SEEDS:
        q = exercises.grant_order(seed, policy=policy)
        assert TIES in q.question
        assert f"Under **{policy}** (" in q.question
        arrival, is_writer, hold = _requests(q.question)
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
def test_reader_wait_answers_are_what_the_text_implies(policy):
    """The asked reader's wait is its oracle grant minus its arrival; a trailing µs
    (micro sign, Greek mu or "us") and a decimal point are fine."""
    waits = set()
    for seed in SEEDS:
        q = exercises.reader_wait(seed, policy=policy)
        assert TIES in q.question
        arrival, is_writer, hold = _requests(q.question)
        asked = int(re.search(r"how long does request (\d+) \(a reader\) wait", q.question)[1])
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
def test_callback_order_answers_are_what_the_text_implies():
    """The operation named in the text fixes the callbacks; the short names, arrows,
    spaces and any case work; a reversed order or an extra callback is wrong."""
    for seed in SEEDS:
        q = exercises.callback_order(seed)
        assert "separated by commas, spaces or arrows" in q.question
        expected = callback_oracle(q.question)
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
def walk_threshold_oracle(question: str) -> int:
    """The smallest n with lock + walks x n x walk > threshold, in exact arithmetic."""
    walk_ns = Fraction(re.search(r"Visiting one memslot costs ([\d.]+) ns", question)[1])
    lock_ns = Fraction(re.search(r"`mmu_lock` costs ([\d.]+) ns", question)[1])
    threshold_ns = 1000 * int(re.search(r"\*\*more than (\d+) µs\*\*", question)[1])
    walks = WALKS[_kernel(question)]
    lo, hi = 1, 32764
    while lo < hi:  # the hold grows with n: bisect on the predicate
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if lock_ns + walks * mid * walk_ns > threshold_ns else (mid + 1, hi)
    return lo


def test_walk_threshold_answers_are_what_the_text_implies():
    """The costs in the text and the kernel's number of walks give the smallest n
    (exact arithmetic); n - 1 and n + 1 are wrong."""
    asked = set()
    for seed in range(40):  # each question simulates a few layouts: fewer seeds, all 10 cases
        q = exercises.memslot_walk_threshold(seed)
        assert "count each walk" in q.question
        n = walk_threshold_oracle(q.question)
        assert q.answer == n, seed
        asked.add((_kernel(q.question), re.search(r"more than (\d+) µs", q.question)[1]))
        _accepts(q, [n, str(n), f"{n} memslots", f"{n}.0", f"{n:#x}"])
        _rejects(q, n - 1)
        _rejects(q, n + 1)
    assert len(asked) >= 8


# -- flush-hold --------------------------------------------------------------------------------
def flush_hold_oracle(question: str, walks: int) -> float:
    """The hold from the costs the question lists: lock, walk, zap of 4 KiB, one TLB flush."""

    def number(pattern: str) -> float:
        return float(re.search(pattern, question)[1])

    n_vcpus = number(r"\*\*(\d+) vCPUs\*\*")
    hold_ns = number(r"lock \+ unlock ([\d.]+) ns") + walks * number(
        r"([\d.]+) ns per memslot walked"
    ) * number(r"\((\d+) memslots\)")
    zap_us = number(r"zapping ([\d.]+) µs") + number(r"\+ ([\d.]+) µs per MiB") * PAGE / 2**20
    per_vcpu = number(r"([\d.]+) µs x N for N <= 64")
    exponent = number(r"\(N/64\)\^([\d.]+)`")
    reach = n_vcpus if n_vcpus <= 64 else 64 * (n_vcpus / 64) ** exponent
    flush_us = number(r"TLB flush ([\d.]+) µs") + per_vcpu * reach
    return hold_ns / 1000 + zap_us + flush_us


def test_flush_hold_answers_are_what_the_text_implies():
    """The listed costs give the hold, rounded; the answer does not depend on the
    number of walks, which the text leaves out; one µs off is wrong."""
    for seed in SEEDS:
        q = exercises.hit_flush_hold(seed)
        # The text does not say how many walks a kernel makes: the answer must not depend on it.
        once, twice = (round(flush_hold_oracle(q.question, w)) for w in (1, 2))
        assert q.answer == once == twice, seed
        _accepts(q, [once, f"{once}", f"{once} µs", f"{once}.0"])
        _rejects(q, once + 1)
        _rejects(q, once - 1)


# -- must-retry --------------------------------------------------------------------------------
def must_retry_oracle(question: str) -> bool:
    kernel = _kernel(question)
    hva = int(re.search(rf"A vCPU faults on hva ({HEX})", question)[1], 16)
    seq = int(re.search(r"samples `mmu_notifier_seq` = (\d+)", question)[1])
    callbacks = [
        (cb, int(start, 16), int(end, 16))
        for cb, start, end in re.findall(
            rf"^\d+\. `(\w+)` (?:on hva|at hva {HEX} \(its page:) \[({HEX}), ({HEX})\)",
            question,
            re.MULTILINE,
        )
    ]
    steps = re.findall(r"^\d+\. `", question, re.MULTILINE)
    assert len(callbacks) == len(steps), question
    # The layout as the text lists it (the oracle's hit test reads only hva_start / hva_end).
    layout = [
        type("Slot", (), {"hva_start": s["hva"][0], "hva_end": s["hva"][1]})
        for s in _slots(question)
    ]
    return retry_oracle(kernel, layout, hva, seq, callbacks)


def test_must_retry_answers_are_what_the_text_implies():
    """The slots, fault, seq and callbacks the text lists decide mmu_notifier_retry_hva
    (the kernel-text oracle of chapter 05); both answers occur."""
    answers = []
    for seed in SEEDS:
        q = exercises.must_retry(seed)
        expected = must_retry_oracle(q.question)
        assert q.answer is expected, seed
        _accepts(q, [expected, str(expected).lower(), "yes" if expected else "no"])
        _rejects(q, not expected)
        answers.append(expected)
    assert 0.3 < np.mean(answers) < 0.8


ORACLES = {
    "takes-lock": takes_lock_oracle,
    "zapped-gfns": zapped_oracle,
    "grant-order": lock_oracle,
    "must-retry": must_retry_oracle,
    "callback-order": callback_oracle,
    "reader-wait": lock_oracle,
    "walk-threshold": walk_threshold_oracle,
    "flush-hold": flush_hold_oracle,
}


# -- seeds ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(cli._QUIZ))
@pytest.mark.parametrize(
    ("seed", "error"), [(1.7, TypeError), ("5", TypeError), (True, TypeError), (-1, ValueError)]
)
def test_generators_refuse_seeds_that_are_not_non_negative_integers(kind, seed, error):
    """1.7, "5", True and -1 are refused by name, never coerced into a seed."""
    with pytest.raises(error, match=r"^seed = .*: expected a non-negative integer$"):
        cli._QUIZ[kind](seed=seed)


@pytest.mark.parametrize("kind", sorted(set(cli._QUIZ) - {"walk-threshold"}))
def test_a_numpy_seed_is_the_same_seed(kind):
    """np.int64(5) is seed 5: the same question, stored as a Python int."""
    a, b = cli._QUIZ[kind](seed=np.int64(5)), cli._QUIZ[kind](seed=5)
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
    assert _markdown_to_html(text) == (
        "<p>Under <strong>qrwlock</strong>, who gets <code>mmu_lock</code>?</p>"
        "<ul><li>request 0: <em>reader</em></li><li>request 1: writer</li></ul>"
        "<ol><li>first</li><li>second</li></ol><p>then [0x1000, 0x2000) -&gt; done</p>"
    )


def test_markdown_to_html_escapes_and_leaves_code_unformatted():
    """HTML characters are escaped, code spans stay literal, a list may start at 3."""
    assert _markdown_to_html("`a**b**<c>` & **`x`**") == (
        "<p><code>a**b**&lt;c&gt;</code> &amp; <strong><code>x</code></strong></p>"
    )
    assert (
        _markdown_to_html("3. third\n4. fourth")
        == '<ol start="3"><li>third</li><li>fourth</li></ol>'
    )
    assert _markdown_to_html("2 x n x 1.8 ns") == "<p>2 x n x 1.8 ns</p>"


@pytest.mark.parametrize("kind", sorted(set(cli._QUIZ) - {"walk-threshold"}))
def test_every_question_renders_without_markdown_left_over(kind):
    """No ``**`` or backtick survives the conversion of any kind's question."""
    for seed in range(20):
        shown = _markdown_to_html(cli._QUIZ[kind](seed=seed).question)
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
