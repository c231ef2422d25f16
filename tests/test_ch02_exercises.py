"""Chapter 02's exercise generator, ``callback_order``: which callbacks, in which order.

The oracle is an independent table of what the kernel's mm code fires for each operation named
in the question (docs/kernel.md §1.2, §1.6), checked against the generator over many seeds.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kvmviz as kv
from kvmviz import cli
from kvmviz.exercises import CallbackOrderExercise, _parse, callback_order
from kvmviz.notifiers import EVENT_KINDS

START, END = "invalidate_range_start", "invalidate_range_end"
# Phrase in the question -> what the kernel fires (set_pte_at_notify callers give change_pte).
ORACLE = {
    "`munmap`s": (START, END),
    "MADV_DONTNEED": (START, END),
    "NUMA balancing migrates": (START, END),
    "`replace_page()`": (START, "change_pte", END),
    "copy-on-write": (START, "change_pte", END),
    "Page reclaim": ("clear_flush_young",),
    "page_idle/bitmap": ("clear_young",),
    "khugepaged": ("test_young",),
}


def _expected(question: str) -> tuple[str, ...]:
    found = [seq for phrase, seq in ORACLE.items() if phrase in question]
    assert len(found) == 1, f"no single oracle phrase in: {question}"
    return found[0]


@given(st.integers(min_value=0, max_value=10**6))
def test_answer_matches_the_oracle(seed):
    """The answer is the kernel's sequence for the operation asked about, and a model kind."""
    q = callback_order(seed)
    assert q.answer == _expected(q.question)
    assert q.answer in EVENT_KINDS.values()
    assert q.check(list(q.answer))[0]


def test_every_operation_is_asked_for_some_seed():
    asked = {
        phrase
        for seed in range(300)
        for phrase in ORACLE
        if phrase in callback_order(seed).question
    }
    assert asked == set(ORACLE)


def test_same_seed_same_question():
    a, b = callback_order(seed=11), callback_order(seed=11)
    assert (a.question, a.answer, a.explanation) == (b.question, b.answer, b.explanation)
    assert isinstance(a, CallbackOrderExercise)
    assert len({callback_order(seed=s).question for s in range(20)}) > 10


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
def test_check_accepts_the_usual_spellings(typed):
    q = next(q for q in map(callback_order, range(100)) if "change_pte" in q.answer)
    ok, why = q.check(typed)
    assert ok, why
    assert why.startswith("Right!")


@pytest.mark.parametrize("typed", ["end, change_pte, start", "start, end", "", None, "change_pte"])
def test_check_rejects_wrong_orders_and_missing_callbacks(typed):
    q = next(q for q in map(callback_order, range(100)) if "change_pte" in q.answer)
    ok, why = q.check(typed)
    assert not ok
    assert "invalidate_range_start -> change_pte -> invalidate_range_end" in why


def test_widget_text_reaches_check_unparsed():
    """The widget passes the typed text through ``_parse``; a tuple answer keeps it a string."""
    q = callback_order(seed=0)
    typed = ", ".join(q.answer)
    assert _parse(typed, q.answer) == typed
    assert q.check(_parse(typed, q.answer))[0]
    q.widget()


@pytest.mark.parametrize("seed", range(40))
def test_explanation_lists_the_locking_callbacks_of_each_kernel(seed):
    """v5.12 locks every callback; the others follow kernels.rule on the range's hit."""
    q = callback_order(seed)
    hit = "hits a memslot" in q.explanation
    assert hit != ("misses every memslot" in q.explanation)
    for kernel in kv.KERNELS:
        locking = [cb for cb in q.answer if kv.takes_lock(kernel, cb, hit)]
        assert f"{kernel}: {', '.join(locking) or 'none'}" in q.explanation
    assert f"v5.12: {', '.join(q.answer)}" in q.explanation


def test_model_causes_agree_where_the_model_has_them():
    """The stream generator's own causes give the same kinds: VMM munmaps and page migration are
    pairs (remove_migration_pte() uses a plain set_pte_at()), a KSM merge two triples
    (write_protect_page() then replace_page())."""
    scenario = kv.Scenario(duration_us=200_000.0)
    only = {
        "vmm_self": scenario.replace(spurious_share=1.0, spurious_pair_share=1.0),
        "migration": scenario.replace(spurious_share=0.0, relevant_mix=(1.0, 0.0, 0.0)),
        "ksm": scenario.replace(spurious_share=0.0, relevant_mix=(0.0, 1.0, 0.0)),
    }
    kinds = {c: set(kv.notifiers.generate_stream(s, seed=1)["kind"]) for c, s in only.items()}
    assert kinds == {"vmm_self": {"pair"}, "migration": {"pair"}, "ksm": {"ksm_merge"}}
    # and the exercise generator says the same of every migration it asks about
    migration = [q for q in map(callback_order, range(60)) if "migrat" in q.question.lower()]
    assert migration and all(tuple(q.answer) == EVENT_KINDS["pair"] for q in migration)


def test_quiz_command(capsys):
    assert cli.main(["quiz", "callback-order", "-s", "6"]) == 0
    hidden = capsys.readouterr().out
    assert "Answer: ?" in hidden
    assert cli.main(["quiz", "callback-order", "-s", "6", "-c"]) == 0
    shown = capsys.readouterr().out
    assert "Answer: invalidate_range_start" in shown
    assert hidden.splitlines()[1] == shown.splitlines()[1]
