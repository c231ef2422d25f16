"""Strip outputs, execution counts and volatile metadata from Jupyter notebooks.

Usage: python tools/strip_notebooks.py [--check] [PATH ...]

PATH is a notebook or a folder searched for *.ipynb (default: notebooks/). Plain json, no
dependencies. Notebooks are rewritten atomically (temp file + os.replace) only when they change.
With --check nothing is written, and the exit code is 1 if any notebook has outputs or
execution counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

# Notebook-level metadata kept; language_info is cut down to its name.
KEEP_NOTEBOOK_METADATA = ("kernelspec", "language_info")
# Cell-level metadata kept: what an author sets on purpose, not what a run records.
KEEP_CELL_METADATA = ("tags", "jupyter", "slideshow", "editable", "deletable", "name")


def has_outputs(nb: dict) -> bool:
    return any(
        cell.get("outputs") or cell.get("execution_count") is not None
        for cell in nb.get("cells", [])
        if cell.get("cell_type") == "code"
    )


def strip(nb: dict) -> dict:
    """Return a stripped copy of the notebook dict `nb`."""
    nb = json.loads(json.dumps(nb))  # deep copy
    old = nb.get("metadata", {})
    meta = {k: old[k] for k in KEEP_NOTEBOOK_METADATA if k in old}
    if isinstance(meta.get("language_info"), dict):
        meta["language_info"] = {k: v for k, v in meta["language_info"].items() if k == "name"}
    nb["metadata"] = meta
    for cell in nb.get("cells", []):
        cell["metadata"] = {
            k: v for k, v in cell.get("metadata", {}).items() if k in KEEP_CELL_METADATA
        }
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return nb


def dumps(nb: dict) -> str:
    # The layout nbformat writes, so that saving from Jupyter gives no spurious diff.
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def notebooks(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
        elif p.suffix == ".ipynb" and p.is_file():
            found.append(p)
        elif not p.exists() and p == Path("notebooks"):
            continue  # no notebooks yet
        else:
            raise SystemExit(f"strip_notebooks: not a notebook or folder: {p}")
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if any has outputs")
    ap.add_argument("paths", nargs="*", default=["notebooks"])
    args = ap.parse_args(argv)

    dirty = 0
    for path in notebooks(args.paths):
        try:
            nb = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            print(f"{path}: cannot read as json: {e}", file=sys.stderr)
            return 2
        if args.check:
            if has_outputs(nb):
                print(f"{path}: has outputs or execution counts (run `make strip`)")
                dirty += 1
            continue
        text = dumps(strip(nb))
        if text != path.read_text(encoding="utf-8"):
            write_atomic(path, text)
            print(f"stripped {path}")
    return 1 if dirty else 0


if __name__ == "__main__":
    sys.exit(main())
