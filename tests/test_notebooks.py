"""Every notebooks/*.ipynb is committed without outputs, runs top to bottom without error, shows
no exercise's answer before the learner asks for it, and numbers and captions its figures.

The kernel is pinned to the interpreter running pytest (a `python3` kernelspec written to a
temporary JUPYTER_PATH entry), so a `python3` kernelspec elsewhere on the machine, e.g. in
~/.local/share/jupyter, can never run the notebooks in another environment.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import nbformat
import pytest
from _tools import load_tool
from nbclient import NotebookClient

import kvmviz as kv

ROOT = Path(__file__).resolve().parent.parent
claims = load_tool("claims")  # tools/claims.py: the value spans and claims of the prose
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

KERNEL = "python3"
CELL_TIMEOUT_S = 120
NOTEBOOK_BUDGET_S = 60
ANSI = re.compile(r"\x1b\[[0-9;]*m")
CHAPTER = {p: int(p.name[:2]) for p in NOTEBOOKS}

# Appended to each executed chapter, then removed: every Exercise the chapter built, with the
# texts that must stay hidden until Check or Reveal (the answer's explanation, reveal()).
PROBE = """
import json as _json
from kvmviz.exercises import Exercise as _Exercise
_seen = {}
for _name, _value in list(globals().items()):
    for _q in (_value if isinstance(_value, (list, tuple)) else [_value]):
        if isinstance(_q, tuple):
            _q = _q[0]
        if isinstance(_q, _Exercise) and id(_q) not in _seen and not _name.startswith("_"):
            _seen[id(_q)] = {"name": _name, "kind": _q.kind, "reveal": _q.reveal(),
                             "explanation": _q.explanation}
print(_json.dumps(list(_seen.values())))
"""


@pytest.fixture(scope="session")
def kernel_name(tmp_path_factory) -> str:
    """A `python3` kernelspec that runs this very interpreter, found first by jupyter_client."""
    spec_dir = tmp_path_factory.mktemp("jupyter") / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python 3 ({sys.prefix})",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        old = os.environ.get("JUPYTER_PATH")
        mp.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, [str(spec_dir.parent.parent), old])))
        yield KERNEL


def run_notebook(nb: nbformat.NotebookNode, kernel: str, cwd: Path) -> nbformat.NotebookNode:
    client = NotebookClient(
        nb,
        kernel_name=kernel,
        timeout=CELL_TIMEOUT_S,
        allow_errors=True,  # run to the end, then report every failing cell
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()
    return nb


def failures(nb: nbformat.NotebookNode) -> list[str]:
    out = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
        for o in cell.get("outputs", []):
            if o.output_type == "error":
                tb = ANSI.sub("", "\n".join(o.get("traceback", [])[-3:]))
                out.append(f"cell {i} ({first_line!r}): {o.ename}: {o.evalue}\n{tb}")
            elif o.output_type == "stream" and o.name == "stderr" and "Traceback" in o.text:
                out.append(f"cell {i} ({first_line!r}): traceback on stderr:\n{o.text[-2000:]}")
    return out


def test_kernel_runs_this_interpreter(kernel_name, tmp_path):
    """A throw-away notebook reports the kernel's sys.prefix and cwd: ours, and the given one."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import os, sys\nprint(sys.prefix)\nprint(os.getcwd())"),
        nbformat.v4.new_code_cell("import kvmviz"),
    ]
    run_notebook(nb, kernel_name, tmp_path)
    assert not failures(nb), failures(nb)
    prefix, cwd = nb.cells[0].outputs[0].text.splitlines()
    assert Path(prefix).resolve() == Path(sys.prefix).resolve()
    assert Path(cwd).resolve() == tmp_path.resolve()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} have outputs or execution counts; run `make strip`"
    )


_EXECUTED: dict[Path, tuple[nbformat.NotebookNode, list[dict], float]] = {}
_CLAIMS: dict[Path, dict[int, list[dict]]] = {}


def executed(path: Path, kernel: str):
    """The chapter run once per session: (notebook with outputs, its exercises, seconds).

    Run with a claims probe after every Markdown cell that has value spans or claims
    (tools/claims.py), evaluated right there in the kernel; the probes are removed again and
    their results kept for test_prose_is_true_to_the_numbers."""
    if path not in _EXECUTED:
        nb, where = claims.with_probes(nbformat.read(path, as_version=4))
        nb.cells.append(nbformat.v4.new_code_cell(PROBE))
        # Let the kernel choose its own (inline) matplotlib backend, not the Agg of the tests.
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("MPLBACKEND", raising=False)
            t0 = time.perf_counter()
            run_notebook(nb, kernel, NOTEBOOK_DIR)
            elapsed = time.perf_counter() - t0
        probe = nb.cells.pop()
        # The kernel may send one print as several stream messages (the JSON, then its
        # newline): read the whole of stdout, as the claims probes do.
        stdout = "".join(
            o.get("text", "")
            for o in probe.get("outputs", [])
            if o.output_type == "stream" and o.get("name") == "stdout"
        )
        errors = [o.ename for o in probe.get("outputs", []) if o.output_type == "error"]
        assert not errors, f"{path.name}: the exercises probe failed: {errors}"
        exercises = json.loads(stdout) if stdout.strip() else []
        _CLAIMS[path] = claims.probe_results(nb, where)
        for index in sorted(where, reverse=True):
            del nb.cells[index]
        _EXECUTED[path] = nb, exercises, elapsed
    return _EXECUTED[path]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_prose_is_true_to_the_numbers(path, kernel_name):
    """Every value span says what its expression computes in the executed chapter, and every
    claim holds there (tools/claims.py, docs/claims.md): a model change that makes a sentence
    false fails here, naming the chapter, the cell and the sentence."""
    nb, _, _ = executed(path, kernel_name)
    false = []
    for index, results in _CLAIMS[path].items():
        false += claims.problems(f"{path.name} cell {index}", nb.cells[index].source, results)
    assert not false, "\n".join(false)


def output_texts(cell) -> list[str]:
    """Everything a learner sees of a code cell's outputs: streams, text, HTML, markdown."""
    texts = []
    for o in cell.get("outputs", []):
        if o.output_type == "stream":
            texts.append(o.text)
        for mime in ("text/plain", "text/html", "text/markdown"):
            if mime in o.get("data", {}):
                texts.append(o.data[mime])
    return texts


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_executes_without_error(path, kernel_name):
    nb, _, elapsed = executed(path, kernel_name)
    print(f"{path.name}: executed in {elapsed:.1f} s")
    problems = failures(nb)
    assert not problems, f"{path.name}:\n" + "\n\n".join(problems)
    assert elapsed < NOTEBOOK_BUDGET_S, (
        f"{path.name} took {elapsed:.1f} s to execute (budget {NOTEBOOK_BUDGET_S} s)"
    )


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_no_answer_shows_before_the_learner_asks(path, kernel_name):
    """Run All shows every exercise's question, but none of its answers.

    Each Exercise a chapter builds keeps its answer behind Check and Reveal; no cell may print
    its explanation or its reveal() text (chapter 04's last cell once printed exercise 1's),
    nor a verdict such as "the answer is 3" while no answer has been typed.
    """
    nb, exercises, _ = executed(path, kernel_name)
    has_exercises = any("## Exercise" in c.source for c in nb.cells if c.cell_type == "markdown")
    assert bool(exercises) == has_exercises, f"{path.name}: {len(exercises)} Exercise objects"
    for i, cell in enumerate(nb.cells):
        for text in output_texts(cell):
            assert "the answer is" not in text, f"{path.name} cell {i} prints a verdict: {text!r}"
            for q in exercises:
                for secret in (q["explanation"], q["reveal"]):
                    assert secret not in text, (
                        f"{path.name} cell {i} shows the answer to {q['name']} ({q['kind']})"
                    )


def test_thought_experiments_hide_their_answers():
    """A written-out answer in the prose sits in a closed <details> block, opened on request."""
    for path in NOTEBOOKS:
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type != "markdown":
                continue
            visible = re.sub(r"<details>.*?</details>", "", cell.source, flags=re.DOTALL)
            assert not re.search(r"\(\s*answer\b", visible, re.IGNORECASE), (
                f"{path.name} cell {i}: an answer in plain sight; put it in <details>"
            )
            for block in re.findall(r"<details>.*?</details>", cell.source, flags=re.DOTALL):
                assert block.startswith("<details><summary>Reveal the answer</summary>\n\n")


# --- figures ------------------------------------------------------------------------------

TITLE = re.compile(r"Figure (\d+)\.(\d+)(?:([a-z])|\{'([a-z]+)'\[i\]\})? ·")
REFERENCE = re.compile(r"\bFigures? \d+(?:\.\d+)?[a-z]?(?:(?:, | and | or )\d+(?:\.\d+)?[a-z]?)*")
CAPTION = re.compile(
    r"\*\*Figure (\d+)\.(\d+)\*\* · .+\*Kernel: (.+) · lock: (.+) · (.+)\.\*$", re.S
)


def free_parameters() -> set[str]:
    """The Scenario fields its docstring marks *Free* (no public source measures them)."""
    doc = kv.Scenario.__doc__
    blocks = re.split(r"\n    (?=\w[\w, ]* : )", doc)
    free = set()
    for block in blocks:
        names = re.match(r"([\w, ]+) : ", block)
        if names and "*Free" in block:
            free |= {n.strip() for n in names.group(1).split(",")}
    return free


def figures(path: Path):
    """(cell index, number, sub-figure letters) of every figure titled in a code cell."""
    out = []
    for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type == "code":
            for m in TITLE.finditer(cell.source):
                chapter, number = int(m.group(1)), int(m.group(2))
                letters = m.group(3) or m.group(4) or ""
                if out and out[-1][:2] == (i, (chapter, number)):
                    out[-1] = (i, (chapter, number), out[-1][2] + letters)
                else:
                    out.append((i, (chapter, number), letters))
    return out


def test_free_parameters_are_read_from_the_scenario_docstring():
    """The captions' notion of *free* is Scenario's: the knobs no public source measures,
    among them the two extrapolations that size every stall (the contention's in-lock share
    and the flush growth past 64 vCPUs)."""
    assert free_parameters() == {
        "faulting_share",
        "guest_run_us",
        "notifier_rate_hz",
        "spurious_pair_share",
        "contention_in_lock_share",
        "tlb_flush_exponent",
        "mapped_share",
        "young_share",
        "aging_reclaim_share",
        "spte_kib",
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_figures_are_numbered_in_order_and_captioned(path):
    """Figure 4.2 is chapter 04's second figure, referred to by that number, and captioned.

    Titles number the figures 1, 2, 3, ... in the order they are drawn (sub-figures a, b, c);
    the prose refers to each before or at its caption, and every reference names a figure that
    exists; the markdown cell right after a figure is its caption: what it shows, then which
    kernel and lock policy, then whether the magnitudes depend on free parameters (named as
    Scenario's docstring marks them *Free*).
    """
    cells = nbformat.read(path, as_version=4).cells
    drawn = figures(path)
    chapter = CHAPTER[path]
    assert [number for _, number, _ in drawn] == [(chapter, n) for n in range(1, len(drawn) + 1)]
    for _, _, letters in drawn:
        assert letters in ("", "ab", "abc"), letters
    known = {number for p in NOTEBOOKS for _, number, _ in figures(p)}
    free = free_parameters()
    referenced = set()
    for i, cell in enumerate(cells):
        if "kvmviz-generated" in cell.metadata.get("tags", []):
            continue
        for ref in REFERENCE.findall(cell.source):
            for number in re.findall(r"\d+(?:\.\d+)?", ref.split(" ", 1)[1]):
                assert "." in number, f"{path.name} cell {i}: {ref!r} has no chapter number"
                number = tuple(int(x) for x in number.split("."))
                assert number in known, f"{path.name} cell {i}: {ref!r} names no figure"
                if cell.cell_type == "markdown":
                    referenced.add((number, i))
    for i, number, _ in drawn:
        caption = cells[i + 1]
        m = CAPTION.match(caption.source) if caption.cell_type == "markdown" else None
        assert m, f"{path.name}: Figure {number} has no caption after it"
        assert (int(m.group(1)), int(m.group(2))) == number
        kernel, lock, free_part = m.group(3), m.group(4), m.group(5)
        assert re.search(r"\bany\b|v[56]\.\d+|Linux 6\.18", kernel), kernel
        assert re.search(r"none drawn|qrwlock|reader-pref|spinlock", lock), lock
        assert "free parameter" in free_part, free_part
        if "no free parameter" not in free_part:
            named = set(re.findall(r"`(\w+)`", free_part))
            assert named and named <= free, f"Figure {number}: {named - free} are not free"
        first = min((j for n, j in referenced if n == number), default=None)
        assert first is not None and first <= i + 1, f"{path.name}: Figure {number} unreferenced"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_numbered_figure_is_drawn_once(path, kernel_name):
    """Each titled figure's cell leaves exactly one picture in its outputs."""
    nb, _, _ = executed(path, kernel_name)
    for i, number, _ in figures(path):
        images = [o for o in nb.cells[i].outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1, f"{path.name}: Figure {number} drew {len(images)} images"


# -- the notebooks call the package: generators and styles live in kvmviz -----------------------
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _code_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebooks_define_no_seeded_generator_and_copy_no_styles(path):
    """No chapter defines a seeded generator (kvmviz.exercises holds them, reachable from
    `kvmviz quiz`) or writes a kernel's colour by hand (kvmviz.theme holds them)."""
    colours = {style["color"] for style in kv.theme.KERNEL_STYLES.values()}
    for source in _code_cells(path):
        assert not re.search(r"^def \w+\(seed\b", source, re.MULTILINE), source
        assert "default_rng" not in source, source
        for colour in colours:
            assert colour not in source.lower(), f"{path.name} copies {colour}: use kv.theme"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebooks_write_no_file_into_the_repository(path):
    """No chapter, nor a code block of its prose, saves a file under a relative path."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        source = "".join(cell["source"])
        assert not re.search(r"\.(to_csv|to_parquet|savefig|to_html)\(\s*[\"']", source), source
