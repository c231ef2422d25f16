"""Prose tied to the numbers: the value spans and claims of the course's Markdown.

Usage:
    python tools/claims.py --lint [FILE ...]    sentences that state a number or an ordering
                                                with no value span, claim or fact (exit 1)
    python tools/claims.py --count [FILE ...]   how many sentences each kind covers
    python tools/claims.py --write [FILE ...]   run the notebooks and documents and write the
                                                computed text into every value span

FILE is a notebook (notebooks/*.ipynb) or a Markdown document (README.md, docs/workshop.md);
default: every one of them. Three invisible marks tie a sentence to the model (HTML comments,
which JupyterLab and GitHub do not show; docs/claims.md says how to write them):

``<!--= EXPR -->TEXT<!--/-->``
    A *value span*: TEXT is what EXPR gives, a string, usually one of the formatters of
    :mod:`kvmviz._shared._prose` (``pct``, ``us``, ``count``...). ``--write`` fills it in; the
    tests fail when it differs, naming the sentence.
``<!--? EXPR -->``
    A *claim* about the sentence it ends: EXPR must be true (an ordering, a "vanishes", what a
    figure shows). The tests fail when it is not; only a person can rewrite the sentence.
``<!--fact SOURCE -->``
    The sentence ends with a number that is not the model's: a kernel constant, a commit, a
    published measurement. SOURCE says where it comes from; nothing is evaluated.

In a notebook the expressions are evaluated in the kernel, right after the code cells above the
Markdown cell ran (tests/test_notebooks.py inserts a probe cell there), so they read the
variables the chapter computed. In a document they are evaluated in the namespace built by its
``<!--claims-setup ... -->`` blocks, in order. Either way the names of
:mod:`kvmviz._shared._prose` and ``kv`` (kvmviz) are there too.

Plain Python plus nbformat / nbclient for --write; tests/test_claims.py and
tests/test_notebooks.py import this file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = (ROOT / "README.md", ROOT / "docs" / "workshop.md")

# -- the marks ----------------------------------------------------------------------------------
_VALUE = re.compile(r"<!--=(?P<expr>.*?)-->(?P<text>.*?)<!--/-->", re.S)
_CLAIM = re.compile(r"<!--\?(?P<expr>.*?)-->", re.S)
_FACT = re.compile(r"<!--fact\b(?P<source>.*?)-->", re.S)
_SETUP = re.compile(r"<!--claims-setup\n(?P<code>.*?)-->", re.S)
_ANY_MARK = re.compile(r"<!--.*?-->", re.S)


@dataclass
class Mark:
    """One value span, claim or fact in a Markdown text."""

    kind: str  # "value", "claim" or "fact"
    expr: str  # the expression (the source, for a fact)
    start: int  # where the mark starts in the text
    end: int  # where it ends (after the closing <!--/--> of a value span)
    text: str = ""  # a value span's current text
    text_start: int = 0
    text_end: int = 0
    sentence: str = ""  # the sentence it belongs to, as a reader sees it


@dataclass
class Unit:
    """A sentence, list item, table row or heading, as a reader sees it, and its marks."""

    source: str
    start: int
    end: int
    marks: list[Mark] = field(default_factory=list)

    @property
    def visible(self) -> str:
        """The text without marks (value spans keep their text), whitespace squeezed."""
        text = _VALUE.sub(lambda m: m.group("text"), self.source)
        text = _ANY_MARK.sub("", text)
        return " ".join(text.split())

    @property
    def covered(self) -> bool:
        return bool(self.marks)


def marks(text: str) -> list[Mark]:
    """Every value span, claim and fact of ``text``, in order, each with its sentence."""
    found = []
    for unit in units(text):
        for mark in unit.marks:
            mark.sentence = unit.visible
            found.append(mark)
    return sorted(found, key=lambda mark: mark.start)


def setup_code(text: str) -> list[str]:
    """The ``<!--claims-setup ... -->`` blocks of a document, in order."""
    return [m.group("code") for m in _SETUP.finditer(text)]


# -- sentences ----------------------------------------------------------------------------------
_FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[ \t]*$", re.S | re.M)
_ABBREVIATIONS = re.compile(r"\b(e\.g|i\.e|vs|cf|etc|Fig|approx|incl|resp|al)\.", re.I)
# A sentence ends at . ! ? (after any closing quote or bracket) followed by space and a capital,
# a digit, a quote, a bracket, a backtick or a mark.
_BOUNDARY = re.compile(r"(?<=[.!?])[*_)\]\"”’]*\s+(?=[A-Z0-9\"“*_(\[`<])")


def _blank(match: re.Match) -> str:
    return re.sub(r"[^\n]", " ", match.group(0))


def units(text: str) -> list[Unit]:
    """Split Markdown into what a reader takes as one statement each: headings, table rows,
    list items and the sentences of paragraphs (fenced code and setup blocks skipped). Each
    mark goes to the unit it stands in; a claim or fact standing first in a unit (after the
    full stop it checks) goes to the unit before."""
    masked = _FENCE.sub(_blank, text)
    masked = _SETUP.sub(_blank, masked)
    # Marks, code spans, list numbers and abbreviations never split a sentence: hide them from
    # the boundary finder (same length, so positions still match the text).
    hidden = _ANY_MARK.sub(_blank, masked)
    hidden = re.sub(r"`[^`\n]*`", lambda m: "X" * len(m.group(0)), hidden)
    hidden = re.sub(
        r"(?m)^(\s*(?:#+\s+)?)(\d+)([.)])",
        lambda m: m.group(1) + "x" * len(m.group(2) + m.group(3)),
        hidden,
    )
    hidden = _ABBREVIATIONS.sub(lambda m: m.group(0).replace(".", " "), hidden)
    out: list[Unit] = []
    for block in re.finditer(r"(?:[^\n]*\S[^\n]*(?:\n|$))+", hidden):
        lines = list(re.finditer(r"[^\n]+", block.group(0)))
        items: list[tuple[int, int]] = []  # (start, end) in text
        for line in lines:
            a, b = block.start() + line.start(), block.start() + line.end()
            content = masked[a:b]
            starts_item = re.match(r"\s*(#{1,6}\s|\||[-*+]\s|\d+[.)]\s|>)", content)
            if starts_item or not items:
                items.append((a, b))
            else:
                items[-1] = (items[-1][0], b)
        for a, b in items:
            segment = hidden[a:b]
            if re.match(r"\s*\|?[\s:|-]*\|[\s:|-]*$", segment):
                continue  # a table's separator row
            cut = a
            # A table row is one unit, whatever its cells say.
            boundaries = [] if segment.lstrip().startswith("|") else _BOUNDARY.finditer(segment)
            for boundary in boundaries:
                out.append(Unit(text[cut : a + boundary.start()], cut, a + boundary.start()))
                cut = a + boundary.end()
            out.append(Unit(text[cut:b], cut, b))
    found = (
        [(m.start(), m.end(), "value") for m in _VALUE.finditer(text)]
        + [(m.start(), m.end(), "claim") for m in _CLAIM.finditer(text)]
        + [(m.start(), m.end(), "fact") for m in _FACT.finditer(text)]
    )
    for start, end, kind in sorted(found):
        # A fact on a line of its own right before a table covers every row of it (a table
        # of measurements cites its source once).
        line_end = text.find("\n", end)
        line_end = len(text) if line_end < 0 else line_end
        alone = (
            text[text.rfind("\n", 0, start) + 1 : start].strip() == ""
            and not text[end:line_end].strip()
        )
        if kind == "fact" and alone and text[line_end + 1 : line_end + 2] == "|":
            source = _FACT.match(text[start:end]).group("source").strip()
            cut = end
            for u in (u for u in out if u.start > end):
                if not u.visible.startswith("|") or "\n\n" in text[cut : u.start]:
                    break  # the table ended
                u.marks.append(Mark("fact", source, start, end))
                cut = u.end
            continue
        # The unit the mark stands in; a mark in the space between two sentences (after the
        # full stop it checks) or first in its unit belongs to the unit before.
        before = [i for i, u in enumerate(out) if u.start <= start]
        if not before:
            continue
        owner = before[-1]
        unit = out[owner]
        leading = start < unit.end and text[unit.start : start].strip() == ""
        if kind != "value" and leading and owner > 0:
            owner -= 1
        body = text[start:end]
        if kind == "value":
            m = _VALUE.match(body)
            mark = Mark(
                "value",
                m.group("expr").strip(),
                start,
                end,
                m.group("text"),
                start + m.start("text"),
                start + m.end("text"),
            )
        elif kind == "claim":
            mark = Mark("claim", _CLAIM.match(body).group("expr").strip(), start, end)
        else:
            mark = Mark("fact", _FACT.match(body).group("source").strip(), start, end)
        out[owner].marks.append(mark)
    return [u for u in out if u.visible or u.marks]


# -- which sentences need a mark ----------------------------------------------------------------
# Numbers that are names, not quantities: kernel releases, commits, addresses, section, figure,
# chapter, cell and exercise numbers, years, list numbering, architecture names.
_NOT_QUANTITIES = [
    r"`[^`]*`",  # code
    r"\]\([^)]*\)",  # link targets
    r"https?://\S+",
    r"\bv\d+\.\d+(?:\.\d+)?(?:-rc\d+)?(?:\.y)?\b",  # v5.12, v6.8-rc1, v5.15.y
    r"\b(?:Linux|kernels?|host|release|QEMU|Python|JupyterLab|Voila|numpy|numba|Chromium)"
    r"\s+\d+(?:\.\d+)*(?:\.y)?\b",
    r"\b\d+\.\d+(?:\.\d+)?(?=[-–]era\b)",
    r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b",  # commit hashes
    r"\b0x[0-9a-fA-F]+\b",
    r"§\s?\d+(?:\.\d+)*",
    r"\bFigures?\s+\d+\.\d+[a-z]?(?:(?:,\s*|\s+(?:and|or|to)\s+)\d+\.\d+[a-z]?)*",
    r"\b(?:[Cc]hapters?|[Cc]ells?|[Ee]xercises?|[Ss]teps?|[Ss]ections?|[Tt]able|[Pp]atch(?:es)?"
    r"|[Ss]eeds?)\s+\d+(?:\s*(?:[-–,]|and|or|to)\s*\d+)*",
    r"\b(?:19|20)\d\d\b",  # years
    r"\bx86(?:[-_]64)?\b|\barm64\b|\bAArch64\b|\bs390\b|\bi386\b",
    r"^\s*(?:#+\s+)?\d+[.)]\s",  # list and section numbering
    r"\b(?:[Ss]lots?|[Rr]egistrations?|as_id|address spaces?|[Pp]hases?|[Ll]anes?|[Rr]ows?"
    r"|[Ee]vents?|[Cc]olumns?|[Ll]ines?|vCPU|CPU|[Nn]odes?)\s+#?\d+(?:\s*(?:[-–,]|and|or|to)\s*\d+)*",
    r"^\s*#+\s+\d+\s*·",  # chapter titles: "# 04 · ..."
    r"\b\d\d ·",  # chapter names: "04 · The optimization"
    r"\b\d+-[A-Za-z]+\.ipynb\b",
    r"\bSHA-?\d+\b|\bUTF-8\b|\bMD5\b|\bIPv[46]\b|\bm2-ultramem-416\b",
    r"\b[A-Z][A-Z_]*\d+[A-Z_\d]*\b",  # identifiers such as KVM_REQ_..., CPU0
    r"\bp\d\d\b",  # p99, p50: the names of percentiles
]
_QUANTITY_WORDS = re.compile(
    r"\b(vanish(?:es|ed)?|disappear(?:s|ed)?|twice|halves|halved|doubles|triples|worse|better"
    r"|fewer|more than|less than|longer than|shorter than|faster|slower|zero|none of)\b",
    re.I,
)


def needs_mark(visible: str) -> bool:
    """Whether a unit states a number, an ordering or a ratio a reader could check against the
    model: a digit left after the names are removed, or a word of comparison."""
    text = visible
    for pattern in _NOT_QUANTITIES:
        text = re.sub(pattern, " ", text, flags=re.M)
    return bool(re.search(r"\d", text) or _QUANTITY_WORDS.search(text))


def uncovered(text: str) -> list[str]:
    """The units of ``text`` that need a mark and have none, as a reader sees them."""
    return [u.visible for u in units(text) if not u.covered and needs_mark(u.visible)]


# -- evaluating ---------------------------------------------------------------------------------
PROBE_MARKER = "# kvmviz claims probe"


def probe_source(expressions: list[str]) -> str:
    """Code for a notebook cell that evaluates ``expressions`` in the kernel's namespace and
    prints one JSON line: per expression ``{"value": str}`` or ``{"error": str}``."""
    return (
        f"{PROBE_MARKER}\n"
        "def _kvmviz_claims(_expressions):\n"
        "    import json as _json\n"
        "    import kvmviz as _kv\n"
        "    from kvmviz._shared import _prose\n"
        "    _space = {**globals(), **{n: getattr(_prose, n) for n in _prose.__all__}}\n"
        "    _space.setdefault('kv', _kv)\n"
        "    _out = []\n"
        "    for _e in _expressions:\n"
        "        try:\n"
        "            _v = eval(_e, _space)\n"
        "            _out.append({'value': _v if isinstance(_v, str) else bool(_v)})\n"
        "        except Exception as _err:\n"
        "            _out.append({'error': f'{type(_err).__name__}: {_err}'})\n"
        "    print(_json.dumps(_out))\n"
        f"_kvmviz_claims({json.dumps(expressions)})\n"
        "del _kvmviz_claims\n"
    )


_MEMO: dict = {}


def memo(function, *args, **kwargs):
    """``function(*args, **kwargs)``, computed once per process: documents that quote the same
    experiment (the README and the workshop guide quote the headline) share it."""
    key = (function.__module__, function.__qualname__, repr(args), repr(sorted(kwargs.items())))
    if key not in _MEMO:
        _MEMO[key] = function(*args, **kwargs)
    return _MEMO[key]


def document_namespace(text: str) -> dict:
    """The namespace a document's marks are evaluated in: kvmviz as ``kv``, the formatters,
    ``memo`` (an experiment computed once for every document), then whatever its
    ``<!--claims-setup -->`` blocks define."""
    import kvmviz as kv
    from kvmviz._shared import _prose

    space = {"kv": kv, "memo": memo, **{n: getattr(_prose, n) for n in _prose.__all__}}
    for code in setup_code(text):
        exec(compile(code, "<claims-setup>", "exec"), space)
    return space


def evaluate(expressions: list[str], space: dict) -> list[dict]:
    """Evaluate in ``space`` as the probe does: ``{"value": ...}`` or ``{"error": ...}``."""
    out = []
    for expr in expressions:
        try:
            value = eval(expr, space)
            out.append({"value": value if isinstance(value, str) else bool(value)})
        except Exception as err:  # a broken claim is reported, not raised
            out.append({"error": f"{type(err).__name__}: {err}"})
    return out


def problems(where: str, text: str, results: list[dict]) -> list[str]:
    """What is false in ``text`` given the results of its value spans and claims, in order:
    one line per problem, naming ``where`` and the sentence."""
    checked = [m for m in marks(text) if m.kind in ("value", "claim")]
    if len(checked) != len(results):
        raise ValueError(f"{where}: {len(checked)} marks but {len(results)} results")
    out = []
    for mark, result in zip(checked, results, strict=True):
        said = f"{where}: «{mark.sentence}»"
        if "error" in result:
            out.append(f"{said}: {mark.expr} failed: {result['error']}")
        elif mark.kind == "value" and result["value"] != mark.text:
            out.append(
                f"{said}: says {mark.text!r} but {mark.expr} is now {result['value']!r} "
                "(python tools/claims.py --write updates value spans)"
            )
        elif mark.kind == "value" and not isinstance(result["value"], str):
            out.append(f"{said}: {mark.expr} gives no text (use pct, us, count, ...)")
        elif mark.kind == "claim" and result["value"] is not True:
            out.append(f"{said}: no longer true: {mark.expr}")
    return out


def fill(text: str, results: list[dict]) -> str:
    """``text`` with each value span's text replaced by its computed value (claims and errors
    left as they are)."""
    checked = [m for m in marks(text) if m.kind in ("value", "claim")]
    pieces, cut = [], 0
    for mark, result in zip(checked, results, strict=True):
        if mark.kind != "value" or not isinstance(result.get("value"), str):
            continue
        pieces += [text[cut : mark.text_start], result["value"]]
        cut = mark.text_end
    return "".join([*pieces, text[cut:]])


# -- notebooks ----------------------------------------------------------------------------------
def notebook_paths() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))


GENERATED = "kvmviz-generated"  # the navigation cells of tools/nav.py: links, not prose


def markdown_cells(nb: dict) -> list[tuple[int, str]]:
    """(index, source) of each Markdown cell a person wrote (not tools/nav.py's)."""
    return [
        (i, "".join(c["source"]) if isinstance(c["source"], list) else c["source"])
        for i, c in enumerate(nb["cells"])
        if c["cell_type"] == "markdown" and GENERATED not in c.get("metadata", {}).get("tags", [])
    ]


def with_probes(nb):
    """A copy of notebook ``nb`` (nbformat) with a probe cell after every Markdown cell that
    has value spans or claims, and the map {probe index: original Markdown cell index}."""
    import copy

    import nbformat

    out = copy.deepcopy(nb)
    cells, where = [], {}
    for i, cell in enumerate(nb.cells):
        cells.append(out.cells[i])
        if cell.cell_type != "markdown":
            continue
        checked = [m.expr for m in marks(cell.source) if m.kind in ("value", "claim")]
        if checked:
            where[len(cells)] = i
            cells.append(nbformat.v4.new_code_cell(probe_source(checked)))
    out.cells = cells
    return out, where


def probe_results(executed, where: dict) -> dict[int, list[dict]]:
    """{Markdown cell index: results} read from the probe cells of an executed notebook."""
    out = {}
    for probe, original in where.items():
        cell = executed.cells[probe]
        stdout = "".join(
            o.get("text", "")
            for o in cell.get("outputs", [])
            if o.output_type == "stream" and o.get("name") == "stdout"
        )
        lines = [line for line in stdout.splitlines() if line.strip()]
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if errors or not lines:
            why = errors[0].ename if errors else "no output"
            n = len([m for m in marks(executed.cells[probe - 1].source) if m.kind != "fact"])
            out[original] = [{"error": f"probe failed ({why})"}] * n
            continue
        out[original] = json.loads(lines[-1])
    return out


def _execute(nb, cwd: Path):
    from nbclient import NotebookClient

    NotebookClient(
        nb, timeout=300, allow_errors=True, resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return nb


# -- the command --------------------------------------------------------------------------------
def _texts(paths: list[Path]) -> list[tuple[str, str]]:
    """(label, Markdown text) of each Markdown cell or document."""
    out = []
    for path in paths:
        if path.suffix == ".ipynb":
            nb = json.loads(path.read_text(encoding="utf-8"))
            out += [(f"{path.name} cell {i}", text) for i, text in markdown_cells(nb)]
        else:
            out.append((path.name, path.read_text(encoding="utf-8")))
    return out


def _write(paths: list[Path]) -> int:
    import nbformat

    sys.path.insert(0, str(ROOT / "tools"))
    from strip_notebooks import dumps, write_atomic

    false = []
    for path in paths:
        if path.suffix == ".ipynb":
            nb = nbformat.read(path, as_version=4)
            probed, where = with_probes(nb)
            results = probe_results(_execute(probed, path.parent), where)
            raw = json.loads(path.read_text(encoding="utf-8"))
            changed = False
            for i, found in results.items():
                source = nb.cells[i].source
                false += problems(f"{path.name} cell {i}", fill(source, found), found)
                new = fill(source, found)
                if new != source:
                    raw["cells"][i]["source"] = new.splitlines(keepends=True)
                    changed = True
            if changed:
                write_atomic(path, dumps(raw))
                print(f"wrote {path.relative_to(ROOT)}")
        else:
            text = path.read_text(encoding="utf-8")
            checked = [m.expr for m in marks(text) if m.kind in ("value", "claim")]
            found = evaluate(checked, document_namespace(text))
            new = fill(text, found)
            false += problems(path.name, new, found)
            if new != text:
                write_atomic(path, new)
                print(f"wrote {path.relative_to(ROOT)}")
    for line in false:
        print(line, file=sys.stderr)
    return 1 if false else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--lint", action="store_true", help="list sentences without a mark")
    action.add_argument("--count", action="store_true", help="count the sentences covered")
    action.add_argument("--write", action="store_true", help="fill in the value spans")
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.files] or [*notebook_paths(), *DOCUMENTS]
    if args.write:
        return _write(paths)
    texts = _texts(paths)
    if args.lint:
        bad = [(label, s) for label, text in texts for s in uncovered(text)]
        for label, sentence in bad:
            print(f"{label}: «{sentence}»")
        print(f"{len(bad)} sentences state a number or an ordering without a mark", file=sys.stderr)
        return 1 if bad else 0
    totals = {"value": 0, "claim": 0, "fact": 0}
    for _, text in texts:
        for unit in units(text):
            kinds = {m.kind for m in unit.marks}
            for kind in ("value", "claim", "fact"):
                if kind in kinds:
                    totals[kind] += 1
                    break
    checked = totals["value"] + totals["claim"]
    print(
        f"{checked} sentences checked against the model ({totals['value']} with value spans, "
        f"{totals['claim']} more with claims), {totals['fact']} stating sourced facts"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
