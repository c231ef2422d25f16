"""Every notebooks/*.ipynb is committed without outputs and runs top to bottom without error.

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
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

KERNEL = "python3"
CELL_TIMEOUT_S = 120
NOTEBOOK_BUDGET_S = 60
ANSI = re.compile(r"\x1b\[[0-9;]*m")


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


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_executes_without_error(path, kernel_name, monkeypatch):
    # Let the kernel choose its own (inline) matplotlib backend, not the Agg set for the tests.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    run_notebook(nb, kernel_name, NOTEBOOK_DIR)
    elapsed = time.perf_counter() - t0
    print(f"{path.name}: executed in {elapsed:.1f} s")
    problems = failures(nb)
    assert not problems, f"{path.name}:\n" + "\n\n".join(problems)
    assert elapsed < NOTEBOOK_BUDGET_S, (
        f"{path.name} took {elapsed:.1f} s to execute (budget {NOTEBOOK_BUDGET_S} s)"
    )
