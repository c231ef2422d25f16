"""Notebook benchmark: how long each chapter takes to run top to bottom, against the 30 s goal.

Each notebooks/NN-*.ipynb is executed the way tests/test_notebooks.py executes it (nbclient, a
fresh kernel of this interpreter), timed from kernel start to the last cell. The reference,
run in the same process first, is a notebook of one cell, ``import kvmviz as kv`` plus one small
``simulate``: the fixed cost every chapter pays (kernel start, imports, the JIT cache), so the
ratio says how much each chapter adds on top of it on this machine.

    python benchmarks/notebooks.py               # every chapter
    python benchmarks/notebooks.py 03 05         # some of them
    python benchmarks/notebooks.py --check       # exit 1 if a chapter misses the 30 s goal

It is a report, not a test: the exit status is 0 whenever it ran, unless ``--check`` is given
and a chapter misses the goal. tests/test_notebooks.py only guards against a hang (60 s).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
GOAL_S = 30.0
REFERENCE = """\
import kvmviz as kv

kv.simulate(kv.Scenario(n_vcpus=16, duration_us=2_000), "v5.12", seed=0).summary()
"""


def _kernelspec(root: Path) -> str:
    """A `python3` kernelspec for this interpreter, first on JUPYTER_PATH (as the tests do)."""
    import json

    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"})
    )
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        [str(root), *filter(None, [os.environ.get("JUPYTER_PATH")])]
    )
    return "python3"


def run(nb, cwd: Path, kernel: str) -> float:
    """Seconds to execute ``nb`` in a fresh kernel, from kernel start to the last cell."""
    client = NotebookClient(
        nb, timeout=300, kernel_name=kernel, resources={"metadata": {"path": str(cwd)}}
    )
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chapters", nargs="*", help="chapter numbers, e.g. 03 05 (default: all)")
    ap.add_argument("--check", action="store_true", help=f"exit 1 if one takes > {GOAL_S:g} s")
    args = ap.parse_args(argv)

    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
    if args.chapters:
        paths = [p for p in paths if p.name[:2] in args.chapters]
        if not paths:
            raise SystemExit(f"no notebook numbered {', '.join(args.chapters)} in {NOTEBOOKS}")

    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        kernel = _kernelspec(Path(tmp))
        reference = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(REFERENCE)])
        ref_s = run(reference, NOTEBOOKS, kernel)
        print(f"{'reference (kernel + import + one simulate)':44} {ref_s:6.1f} s")
        late = []
        for path in paths:
            seconds = run(nbformat.read(path, as_version=4), NOTEBOOKS, kernel)
            mark = "" if seconds <= GOAL_S else f"  > goal {GOAL_S:g} s"
            print(f"{path.name:44} {seconds:6.1f} s  {seconds / ref_s:5.1f}x reference{mark}")
            if seconds > GOAL_S:
                late.append(path.name)
    if late:
        print(f"over the {GOAL_S:g} s goal: {', '.join(late)}")
    return 1 if (late and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
