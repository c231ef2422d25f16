"""docs/workshop.md states answers and wrong answers: check every one against the model.

The facilitator reads these out to a room, so a drifted answer would teach the wrong thing.
Each row of the guide's exercise table names a `kvmviz quiz KIND -s SEED` command, the answer
as the Check box takes it, and the wrong answer most rooms give. The answer must be the one the
generator computes, and the wrong one must be wrong; for grant-order the wrong answer is said
to be the reader-preferring one, so it must be exactly that.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kvmviz import cli, exercises
from kvmviz.exercises.base import _parse

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "workshop.md"
ROW = re.compile(r"^\| `kvmviz quiz ([a-z-]+) -s (\d+)` \| `([^`]+)` \| `([^`]+)` \| (.+) \|$")


def _rows():
    rows = [m.groups() for m in map(ROW.match, GUIDE.read_text().splitlines()) if m]
    assert len(rows) >= 5, "the guide's exercise table is missing or malformed"
    return rows


@pytest.mark.parametrize(("kind", "seed", "answer", "wrong", "meaning"), _rows())
def test_guide_answers_are_the_models(kind, seed, answer, wrong, meaning):
    question = exercises.KINDS[kind](seed=int(seed))
    ok, why = question.check(_parse(answer, question.answer))
    assert ok, f"{kind} -s {seed}: the guide says {answer}, the model says {why}"
    assert not question.check(_parse(wrong, question.answer))[0], f"{wrong} is right after all"
    if kind == "grant-order":
        assert "reader-pref" in meaning or "same mistake" in meaning or "the same" in meaning
        unfair = exercises.grant_order(int(seed), policy="reader-pref").answer
        assert _parse(wrong, unfair) == unfair


def test_guide_names_chapters_that_exist():
    text = GUIDE.read_text()
    named = set(re.findall(r"\| (\d\d) · ", text))
    notebooks = {p.name[:2] for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb")}
    assert named, "no chapter rows in the timing table"
    assert named <= notebooks, f"the guide times chapters that do not exist: {named - notebooks}"
    for chapter in sorted(notebooks - {"00"}):
        assert f"{chapter} · " in text or f"{chapter} (" in text, f"chapter {chapter} unmentioned"


def test_quiz_commands_in_the_guide_run(capsys):
    for kind, seed, *_ in _rows():
        assert cli.main(["quiz", kind, "-s", seed]) in (0, None)
        out = capsys.readouterr().out
        assert "Answer: ?" in out, f"`kvmviz quiz {kind} -s {seed}` gave the answer away"
