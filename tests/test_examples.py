"""Every examples/*.py runs, as a reader would run it, and writes valid files.

The examples run as subprocesses, as many at once as there are cores (they spend their time
simulating the 416-vCPU VM), each into its own temporary directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kvmviz import gallery

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIMEOUT_S = 120


def _run(example: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(example), str(out)],
        cwd=out,
        env={**os.environ, "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """{example name: (completed process, its output directory)}, every example run once."""
    outs = {example: tmp_path_factory.mktemp(example.stem) for example in EXAMPLES}
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        done = dict(zip(outs, pool.map(_run, outs, outs.values()), strict=True))
    return {example.stem: (done[example], outs[example]) for example in EXAMPLES}


def test_there_are_examples():
    assert len(EXAMPLES) >= len(gallery.FIGURES)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_writes_valid_files(example, results):
    process, out = results[example.stem]
    assert process.returncode == 0, process.stderr
    written = sorted(out.iterdir())
    assert written, f"{example.name} wrote nothing"
    printed = {Path(line) for line in process.stdout.splitlines() if line.startswith(str(out))}
    assert printed == set(written)  # it says what it wrote, and wrote nothing else
    for path in written:
        data = path.read_bytes()
        assert len(data) > 0
        if path.suffix == ".svg":
            assert ET.fromstring(data).tag == "{http://www.w3.org/2000/svg}svg"
        elif path.suffix == ".png":
            assert data.startswith(PNG_SIGNATURE)
        else:
            assert path.suffix == ".txt" and b"contended" in data


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_is_short(example):
    """Rougier's rule: one short script per figure."""
    assert len(example.read_text(encoding="utf-8").splitlines()) <= 30


def test_every_figure_has_an_example(results):
    """Each figure of `kvmviz figures` is also written by the example of the same name."""
    written = {p.stem for _, out in results.values() for p in out.iterdir()}
    assert set(gallery.FIGURES) <= written


def test_an_example_never_overwrites(results):
    """Run again into the same directory, an example fails and leaves the files alone."""
    _, out = results["memslot_map_q35"]
    before = {p: p.read_bytes() for p in out.iterdir()}
    again = _run(ROOT / "examples" / "memslot_map_q35.py", out)
    assert again.returncode != 0 and "FileExistsError" in again.stderr
    assert {p: p.read_bytes() for p in out.iterdir()} == before
