"""tools/nav.py: generated navigation between notebooks, on synthetic copies and the real ones."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "nav.py"

_spec = importlib.util.spec_from_file_location("kvmviz_nav", TOOL)
nav = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = nav  # dataclasses look their module up
_spec.loader.exec_module(nav)

LINK = re.compile(r"\[([^\]]*)\]\(([^)]*)\)")


def _notebook(title: str | None, *, learn: list[str] = (), minor: int = 5, extra=()) -> dict:
    nb = nbformat.v4.new_notebook()
    nb.nbformat_minor = minor
    intro = ([f"# {title}", ""] if title is not None else ["Some intro without a heading."]) + (
        ["**What you will learn**", "", *learn] if learn else []
    )
    nb.cells = [
        nbformat.v4.new_markdown_cell("\n".join(intro)),
        nbformat.v4.new_code_cell("import kvmviz as kv"),
        *extra,
        nbformat.v4.new_markdown_cell("## Exercises\n\nThe end."),
    ]
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    nb = json.loads(json.dumps(nb))
    if minor < 5:
        for cell in nb["cells"]:
            cell.pop("id", None)
    return nb


def _write(folder: Path, name: str, nb: dict) -> Path:
    path = folder / name
    path.write_text(nav.dumps(nb), encoding="utf-8")
    return path


@pytest.fixture
def book(tmp_path) -> Path:
    """An index and chapters 01, 02 and 04 (03 not written yet), plus a scratch notebook."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _write(folder, "00-index.ipynb", _notebook("kvmviz · the course"))
    _write(
        folder,
        "01-memslots.ipynb",
        _notebook(
            "01 · Memslots: how KVM sees guest memory",
            learn=[
                "- what a memslot is, and how KVM",
                "  finds the one holding an address;",
                "- b",
            ],
        ),
    )
    output = nbformat.v4.new_code_cell("print(1)", execution_count=3)
    output.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    _write(
        folder,
        "02-mmu-notifiers.ipynb",
        _notebook("02 · MMU notifiers", extra=[json.loads(json.dumps(output))]),
    )
    _write(folder, "04-the-optimization.ipynb", _notebook("04 · The optimization: the toggle"))
    _write(folder, "scratch.ipynb", _notebook("not a chapter"))
    return folder


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _generated(path: Path) -> list[dict]:
    return [c for c in _cells(path) if nav.is_generated(c)]


def _links(cell: dict) -> list[tuple[str, str]]:
    return LINK.findall(nav.source(cell))


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=60
    )


def test_prev_index_next(book):
    assert nav.main([str(book)]) == 0
    ch1, ch2, ch4 = (book / n for n in ("01-memslots", "02-mmu-notifiers", "04-the-optimization"))
    ch1, ch2, ch4 = (p.with_suffix(".ipynb") for p in (ch1, ch2, ch4))
    # The first chapter's previous notebook is the index: it is linked once, as "index".
    assert [x for c in _generated(ch1) for x in _links(c)] == 2 * [
        ("index", "00-index.ipynb"),
        ("02 · MMU notifiers →", "02-mmu-notifiers.ipynb"),
    ]
    # A missing chapter (03) is skipped: 02 links straight to 04, with the short title.
    assert [x for c in _generated(ch2) for x in _links(c)] == 2 * [
        ("← 01 · Memslots", "01-memslots.ipynb"),
        ("index", "00-index.ipynb"),
        ("04 · The optimization →", "04-the-optimization.ipynb"),
    ]
    assert [x for c in _generated(ch4) for x in _links(c)] == 2 * [
        ("← 02 · MMU notifiers", "02-mmu-notifiers.ipynb"),
        ("index", "00-index.ipynb"),
    ]
    # Top: right after the title cell; bottom: the last cell. The scratch notebook is left alone.
    cells = _cells(ch2)
    assert nav.is_generated(cells[1]) and nav.is_generated(cells[-1])
    assert cells[1]["id"] == "kvmviz-nav-top" and cells[-1]["id"] == "kvmviz-nav-bottom"
    assert not _generated(book / "scratch.ipynb")
    for path in book.glob("*.ipynb"):
        nbformat.validate(nbformat.read(path, as_version=4))


def test_index_lists_every_chapter(book):
    nav.main([str(book)])
    table, bottom = _generated(book / "00-index.ipynb")
    assert _cells(book / "00-index.ipynb")[1] == table and table["id"] == "kvmviz-nav-chapters"
    assert _links(table) == [
        ("01 · Memslots: how KVM sees guest memory", "01-memslots.ipynb"),
        ("02 · MMU notifiers", "02-mmu-notifiers.ipynb"),
        ("04 · The optimization: the toggle", "04-the-optimization.ipynb"),
    ]
    # The first point of "What you will learn", its continuation line joined, no trailing `;`.
    assert "| what a memslot is, and how KVM finds the one holding an address |" in nav.source(
        table
    )
    assert _links(bottom) == [("01 · Memslots →", "01-memslots.ipynb")]


def test_idempotent_and_nothing_else_changes(book):
    before = {p: json.loads(p.read_text(encoding="utf-8")) for p in book.glob("*.ipynb")}
    assert nav.main([str(book)]) == 0
    first = {p: p.read_bytes() for p in book.glob("*.ipynb")}
    stats = {p: p.stat() for p in book.glob("*.ipynb")}
    assert nav.main([str(book)]) == 0
    assert {p: p.read_bytes() for p in book.glob("*.ipynb")} == first
    for p, st in stats.items():  # up to date: not even rewritten
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    for p, old in before.items():
        new = json.loads(p.read_text(encoding="utf-8"))
        assert [c for c in new["cells"] if not nav.is_generated(c)] == old["cells"]
        assert {k: v for k, v in new.items() if k != "cells"} == {
            k: v for k, v in old.items() if k != "cells"
        }
        assert len(new["cells"]) - len(old["cells"]) in (0, 2)
    # Outputs stay exactly as they were (the tool never strips nor adds any).
    code = [c for c in _cells(book / "02-mmu-notifiers.ipynb") if c["cell_type"] == "code"]
    assert code[1]["outputs"][0]["text"] == "1\n" and code[1]["execution_count"] == 3
    assert not list(book.glob(".*.tmp")), "a temporary file was left behind"


def test_check_detects_stale_navigation(book):
    result = _run("--check", str(book))
    assert result.returncode == 1 and result.stdout.count("missing or stale") == 4
    assert list(book.glob("*.ipynb")) and all(not _generated(p) for p in book.glob("*.ipynb"))
    assert _run(str(book)).returncode == 0
    assert _run("--check", str(book)).returncode == 0

    # A new chapter appears: it, its neighbours and the index are stale.
    _write(book, "03-the-fair-rwlock.ipynb", _notebook("03 · The fair rwlock"))
    result = _run("--check", str(book))
    assert result.returncode == 1
    stale = sorted(Path(line.split(":")[0]).name for line in result.stdout.splitlines())
    assert stale == [
        "00-index.ipynb",
        "02-mmu-notifiers.ipynb",
        "03-the-fair-rwlock.ipynb",
        "04-the-optimization.ipynb",
    ]
    nav.main([str(book)])
    assert nav.main(["--check", str(book)]) == 0

    # A retitled chapter: the neighbours' links and the index table are stale.
    path = book / "04-the-optimization.ipynb"
    nb = json.loads(path.read_text(encoding="utf-8"))
    nb["cells"][0]["source"] = ["# 04 · The optimization, retitled\n"]
    path.write_text(nav.dumps(nb), encoding="utf-8")
    assert nav.main(["--check", str(book)]) == 1
    nav.main([str(book)])

    # A hand-edited, deleted or moved generated cell is stale too, and put back.
    for damage in ("edit", "delete", "move"):
        nb = json.loads(path.read_text(encoding="utf-8"))
        top = next(i for i, c in enumerate(nb["cells"]) if nav.is_generated(c))
        if damage == "edit":
            nb["cells"][top]["source"] = ["[somewhere](else.ipynb)"]
        elif damage == "delete":
            del nb["cells"][top]
        else:
            nb["cells"].insert(3, nb["cells"].pop(top))
        path.write_text(nav.dumps(nb), encoding="utf-8")
        assert nav.main(["--check", str(book)]) == 1, damage
        nav.main([str(book)])
        assert len(_generated(path)) == 2 and nav.is_generated(_cells(path)[1]), damage
        assert nav.main(["--check", str(book)]) == 0, damage


def test_markers_survive_make_strip(book):
    """`make strip` keeps the tag that marks generated cells, so nav does not duplicate them."""
    nav.main([str(book)])
    strip = ROOT / "tools" / "strip_notebooks.py"
    subprocess.run([sys.executable, str(strip), str(book)], check=True, capture_output=True)
    assert nav.main(["--check", str(book)]) == 0
    assert len(_generated(book / "02-mmu-notifiers.ipynb")) == 2


def test_titles_fences_and_old_notebooks(tmp_path):
    """A `# comment` in a code fence is no title; a notebook without a title falls back to its
    file name; brackets in a title are escaped; nbformat 4.4 notebooks get cells without ids."""
    fenced = nbformat.v4.new_markdown_cell("```console\n# not a title\n```\n\n# 01 · Real [x]")
    folder = tmp_path
    _write(folder, "00-index.ipynb", _notebook("index", minor=4))
    nb = _notebook(None)
    nb["cells"].insert(0, json.loads(json.dumps(fenced)))
    _write(folder, "01-fenced.ipynb", nb)
    _write(folder, "02-untitled.ipynb", _notebook(None))
    assert nav.main([str(folder)]) == 0
    book = nav.chapters(folder)
    assert [c.title for c in book] == ["index", r"01 · Real [x]", "02 · untitled"]
    top = _cells(folder / "01-fenced.ipynb")[1]
    assert nav.is_generated(top) and nav.source(top).endswith(
        "[index](00-index.ipynb) | [02 · untitled →](02-untitled.ipynb)"
    )
    assert r"[01 · Real \[x\]](01-fenced.ipynb)" in nav.source(_cells(folder / "00-index.ipynb")[1])
    assert all("id" not in c for c in _cells(folder / "00-index.ipynb"))
    # Without a title the top navigation goes first.
    assert nav.is_generated(_cells(folder / "02-untitled.ipynb")[0])
    for path in folder.glob("*.ipynb"):
        nbformat.validate(nbformat.read(path, as_version=4))


def test_unreadable_notebook_is_an_error(tmp_path):
    (tmp_path / "01-broken.ipynb").write_text("{ not json", encoding="utf-8")
    result = _run("--check", str(tmp_path))
    assert result.returncode != 0 and "cannot read as json" in result.stderr


def test_real_notebooks_are_up_to_date():
    """The committed notebooks carry current navigation: after adding or retitling a chapter,
    run `make nav`."""
    result = _run("--check", str(ROOT / "notebooks"))
    assert result.returncode == 0, result.stdout + result.stderr + "\nrun `make nav`"


def test_every_chapter_links_the_glossary():
    """Every chapter's navigation lines end with a link to docs/glossary.md, which exists and
    defines each term the issue lists (SPTE, TDP MMU, ... fast page fault)."""
    glossary = ROOT / "docs" / "glossary.md"
    text = glossary.read_text(encoding="utf-8")
    for term in (
        "SPTE",
        "TDP MMU",
        "shadow MMU",
        "rmap",
        "SRCU",
        "GUP",
        "`on_lock`",
        "lock elision",
        "unpaired callback",
        "spurious",
        "hit",
        "brownout",
        "`mmu_notifier_count` / `mmu_notifier_seq`",
        "fast page fault",
        "stall",
        "`mn_active_invalidate_count`",
        "lockdep",
    ):
        assert f"**{term}**" in text or f"**{term} " in text, term
    for path in sorted((ROOT / "notebooks").glob("0[1-9]-*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        navigation = ["".join(c["source"]) for c in cells if "kvmviz-generated" in str(c)]
        assert navigation and all(
            "[glossary](../docs/glossary.md)" in line for line in navigation
        ), path.name
