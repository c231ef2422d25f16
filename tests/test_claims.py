"""Prose tied to the numbers (tools/claims.py, docs/claims.md): the marks are found, attached to
the right sentence, evaluated and checked; no sentence of the course, the README or the
workshop guide states a number or an ordering without one; the documents' marks hold.

The chapters' marks are evaluated where the chapters run, in tests/test_notebooks.py
(test_prose_is_true_to_the_numbers).
"""

from __future__ import annotations

import json

import pytest
from _tools import load_tool

claims = load_tool("claims")

TEXT = (
    "The stall falls from <!--= pct(a) -->11.4 %<!--/--> to <!--= pct(b) -->0 %<!--/-->. "
    "So v5.15 is better.<!--? b < a --> It has 32,764 slots, e.g. for SynIC.<!--fact "
    "4fc096a99e01--> Nothing else.\n"
)


def test_marks_are_found_in_order_with_their_sentence():
    """Two value spans, a claim placed after its full stop and a fact: each knows its
    sentence as a reader sees it (marks hidden, values shown)."""
    found = claims.marks(TEXT)
    assert [(m.kind, m.expr) for m in found] == [
        ("value", "pct(a)"),
        ("value", "pct(b)"),
        ("claim", "b < a"),
        ("fact", "4fc096a99e01"),
    ]
    assert found[0].text == "11.4 %" and found[0].sentence == "The stall falls from 11.4 % to 0 %."
    assert found[2].sentence == "So v5.15 is better."
    assert found[3].sentence == "It has 32,764 slots, e.g. for SynIC."


def test_problems_name_the_sentence_that_became_false():
    """A value span whose number moved and a claim that no longer holds are each reported with
    the sentence; a span that still matches and a true claim are not."""
    results = [{"value": "12.0 %"}, {"value": "0 %"}, {"value": False}]
    lines = claims.problems("ch.ipynb cell 3", TEXT, results)
    assert len(lines) == 2
    assert "«The stall falls from 11.4 % to 0 %.»" in lines[0] and "'12.0 %'" in lines[0]
    assert "«So v5.15 is better.»" in lines[1] and "no longer true: b < a" in lines[1]
    assert (
        claims.problems("x", TEXT, [{"value": "11.4 %"}, {"value": "0 %"}, {"value": True}]) == []
    )
    broken = claims.problems(
        "x", TEXT, [{"error": "NameError: a"}, {"value": "0 %"}, {"value": True}]
    )
    assert broken == ["x: «The stall falls from 11.4 % to 0 %.»: pct(a) failed: NameError: a"]


def test_fill_writes_only_the_value_spans():
    """fill() replaces each value span's text by its computed text and nothing else."""
    out = claims.fill(TEXT, [{"value": "12.0 %"}, {"value": "0 %"}, {"value": True}])
    assert out == TEXT.replace("11.4 %", "12.0 %")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("On v5.12 a writer waits 245 µs.", True),
        ("The stalls vanish on v5.15.", True),
        ("v5.15 locks fewer times than v5.13.", True),
        ("See Figure 4.2 and §1.5 of chapter 04, cell 15.", False),
        ("Commit 8931a454ae (v5.13) and 071064f14d87 changed it in 2021.", False),
        ("The hva `0x7f0000000000` of slot 4 in as_id 1.", False),
        ("Linux 6.18 recorded it; QEMU 7.2 too.", False),
        ("A page is 4 KiB.", True),
    ],
)
def test_which_sentences_need_a_mark(text, expected):
    """A quantity or a comparison needs a mark; kernel releases, commits, addresses, section,
    figure, chapter, cell, slot numbers and years do not."""
    assert claims.needs_mark(text) is expected


def test_units_split_sentences_items_and_table_rows():
    """Abbreviations, code spans and list numbers do not end a sentence; each list item and
    table row is a unit; a table's separator row is none; fenced code is skipped."""
    text = (
        "First one, e.g. `a. B` here. Second one.\n\n"
        "1. An item. Two sentences.\n2. Another.\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "```\nNot. Prose.\n```\n"
    )
    assert [u.visible for u in claims.units(text)] == [
        "First one, e.g. `a. B` here.",
        "Second one.",
        "1. An item.",
        "Two sentences.",
        "2. Another.",
        "| a | b |",
        "| 1 | 2 |",
    ]


def test_a_document_evaluates_in_its_setup_namespace():
    """A document's <!--claims-setup--> blocks run first; its marks see their names and the
    formatters."""
    text = "<!--claims-setup\nx = 0.25\n-->\nIt is <!--= pct(x) -->25.0 %<!--/-->.\n"
    space = claims.document_namespace(text)
    checked = [m.expr for m in claims.marks(text) if m.kind != "fact"]
    assert claims.evaluate(checked, space) == [{"value": "25.0 %"}]


def _all_texts():
    out = []
    for path in claims.notebook_paths():
        nb = json.loads(path.read_text(encoding="utf-8"))
        out += [(f"{path.name} cell {i}", text) for i, text in claims.markdown_cells(nb)]
    out += [(path.name, path.read_text(encoding="utf-8")) for path in claims.DOCUMENTS]
    return out


def test_every_sentence_with_a_number_is_tied_or_sourced():
    """No sentence of a chapter, the README or the workshop guide states a number, an
    ordering or a ratio without a value span, a claim or a fact (docs/claims.md)."""
    bad = [f"{label}: «{s}»" for label, text in _all_texts() for s in claims.uncovered(text)]
    assert not bad, f"{len(bad)} sentences without a mark:\n" + "\n".join(bad)


@pytest.mark.slow
@pytest.mark.parametrize("path", claims.DOCUMENTS, ids=[p.name for p in claims.DOCUMENTS])
def test_documents_are_true_to_the_numbers(path):
    """The README's and the workshop guide's value spans say what the model computes and
    their claims hold."""
    text = path.read_text(encoding="utf-8")
    checked = [m.expr for m in claims.marks(text) if m.kind in ("value", "claim")]
    assert checked, f"{path.name} has no value span or claim"
    results = claims.evaluate(checked, claims.document_namespace(text))
    false = claims.problems(path.name, text, results)
    assert not false, "\n".join(false)


def test_a_fact_before_a_table_covers_its_rows():
    """A table of measurements cites its source once, on the line before it."""
    fact = "<!--fact benchmarks/engine.py, 2026-12-07-->\n"
    text = f"Speed:\n\n{fact}| a | 2 s |\n|---|---|\n| b | 3 s |\n"
    assert claims.uncovered(text) == []
    assert claims.uncovered(text.replace(fact, ""))
