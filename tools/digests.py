"""Digests of every figure, animation, dashboard image and CLI output, for a redesign.

A step that moves code and changes no behaviour must leave every one of these bytes equal.
Run it before and after; ``diff`` the two lists::

    python tools/digests.py > before.txt      # on the commit before the step
    python tools/digests.py > after.txt       # on the step
    diff before.txt after.txt                 # empty: byte-identical

What it renders, seeds 0 and 1: the gallery (``kvmviz figures``, with animations), the toggle
dashboard's image at every kernel × setup × MMU position (notebook and projector size), the
tables of ``kvmviz simulate`` and ``kvmviz replay`` on the bundled trace, every quiz kind's
question and checked answer, and a small run's Perfetto exports. With ``--notebooks``, instead:
every figure the chapters draw (each PNG and SVG output of each code cell, the chapters run
top to bottom in the ``python3`` kernel, in ``notebooks/``).
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tempfile
from contextlib import redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT / "data/traces/notifier-phases-linux6.18.txt"
LAYOUT = ROOT / "data/traces/notifier-phases-linux6.18.layout.json"
SEEDS = (0, 1)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def cli(*args: str) -> bytes:
    """What ``kvmviz ARGS`` prints on standard output (status checked)."""
    done = subprocess.run(
        [sys.executable, "-m", "kvmviz", *args], capture_output=True, check=True, cwd=ROOT
    )
    return done.stdout


def gallery(seed: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "figs"
        cli("figures", "--out", str(out), "--seed", str(seed))
        for path in sorted(out.rglob("*")):
            if path.is_file():
                print(f"figures seed={seed} {path.relative_to(out)} {digest(path.read_bytes())}")


def dashboard(seed: int) -> None:
    import kvmviz as kv

    for projector in (False, True):
        board = kv.widgets.toggle_dashboard(seed=seed, projector=projector)
        for setup in kv.presets.SETUPS:
            board.setup.value = setup
            for mmu_label, mmu in board.mmu.options:
                board.mmu.value = mmu
                for kernel in kv.KERNELS:
                    board.kernel.value = kernel
                    board.update()
                    name = f"dashboard {seed=} {projector=} {setup} {mmu_label} {kernel}"
                    image, words = digest(board.image.value), digest(board.headline.value.encode())
                    print(f"{name} {image} {words}")


def tables(seed: int) -> None:
    print(f"simulate seed={seed} {digest(cli('simulate', '-s', str(seed)))}")
    # Relative paths: the table's first line echoes them, and two checkouts must compare equal.
    trace, layout = (str(p.relative_to(ROOT)) for p in (TRACE, LAYOUT))
    replay = cli("replay", trace, "--layout", layout, "-s", str(seed))
    print(f"replay seed={seed} {digest(replay)}")


def quizzes(seed: int) -> None:
    from kvmviz.exercises import KINDS

    for kind in KINDS:
        print(f"quiz seed={seed} {kind} {digest(cli('quiz', kind, '-s', str(seed), '-c'))}")


def exports(seed: int) -> None:
    import kvmviz as kv
    from kvmviz import export

    run = kv.simulate(kv.Scenario(n_vcpus=32, duration_us=2_000), "v5.12", seed=seed)
    for suffix in (".json", ".pftrace"):
        print(f"export seed={seed} {suffix} {digest(export.encode(run, suffix))}")


def notebooks() -> None:
    """Every image output of every chapter, by notebook, cell and output index."""
    import nbformat
    from nbclient import NotebookClient

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        where = {"metadata": {"path": str(path.parent)}}
        NotebookClient(nb, timeout=900, resources=where).execute()
        for i, cell in enumerate(nb.cells):
            for k, output in enumerate(cell.get("outputs", [])):
                for mime in ("image/png", "image/svg+xml"):
                    if mime in output.get("data", {}):
                        data = output["data"][mime]
                        data = data.encode() if isinstance(data, str) else data
                        print(f"notebook {path.name} cell {i} output {k} {mime} {digest(data)}")
        sys.stdout.flush()


def main() -> None:
    if sys.argv[1:] == ["--notebooks"]:
        notebooks()
        return
    for seed in SEEDS:
        for part in (tables, quizzes, exports, dashboard, gallery):
            buffer = io.StringIO()
            with redirect_stdout(buffer):
                part(seed)
            sys.stdout.write(buffer.getvalue())
            sys.stdout.flush()


if __name__ == "__main__":
    main()
