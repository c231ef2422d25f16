"""Every examples/*.py runs, as a reader would run it, and writes what kvmviz.gallery draws.

The examples run as subprocesses, as many at once as there are cores (they spend their time
simulating the 416-vCPU VM), each into its own temporary directory. Each is a thin script over
one gallery builder, so its files are byte for byte those of `kvmviz figures` at seed 0.
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
# Example -> the gallery names it writes (FIGURES, or TABLES for the text tables).
WRITES = {
    "before_after": ["before-after"],
    "brownout": ["brownout"],
    "commit_8931a454ae": ["commit-8931a454ae"],
    "contention_table": ["contention-v5.12", "contention-v5.15"],
    "follow_up_071064f14d87": ["follow-up-071064f14d87"],
    "headline_ranges": ["headline-ranges"],
    "kernel_comparison": ["kernel-comparison"],
    "lock_timeline_416_vcpus": ["lock-timeline-416-vcpus"],
    "lock_timeline_8_vcpus": ["lock-timeline-8-vcpus"],
    "memslot_map_large_vm": ["memslots-large-vm"],
    "memslot_map_q35": ["memslots-q35"],
    "stall_by_kernel": ["stall-by-kernel"],
    "stall_by_kernel_volatile": ["stall-by-kernel-volatile"],
    "stall_cdf": ["stall-cdf"],
    "stall_split": ["stall-split"],
}


def _run(example: Path, out: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(example), str(out), *options],
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


@pytest.fixture(scope="module")
def gallery_files(tmp_path_factory):
    """{file name: bytes} of every gallery figure (SVG and PNG) as `kvmviz figures` writes them
    at seed 0, and of every gallery table."""
    out = tmp_path_factory.mktemp("gallery")
    written = gallery.render_all(out, animations=False)
    files = {p.name: p.read_bytes() for p in written}
    files.update({f"{n}.txt": gallery.table(n, seed=0).encode() for n in gallery.TABLES})
    return files


def test_one_example_per_gallery_figure_and_table():
    """The examples are exactly one script per figure of the gallery, plus the text tables'."""
    assert {p.stem for p in EXAMPLES} == set(WRITES)
    figures = [n for names in WRITES.values() for n in names if n in gallery.FIGURES]
    assert sorted(figures) == sorted(gallery.FIGURES)
    tables = [n for names in WRITES.values() for n in names if n in gallery.TABLES]
    assert tables == list(gallery.TABLES)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_writes_valid_files(example, results):
    """An example exits 0, prints every path it wrote, and writes only valid SVG, PNG or
    perf-lock text files, named for its gallery figure or tables."""
    process, out = results[example.stem]
    assert process.returncode == 0, process.stderr
    written = sorted(out.iterdir())
    printed = {Path(line) for line in process.stdout.splitlines() if line.startswith(str(out))}
    assert printed == set(written)  # it says what it wrote, and wrote nothing else
    suffixes = (".txt",) if example.stem == "contention_table" else (".svg", ".png")
    assert sorted(p.name for p in written) == sorted(
        f"{name}{suffix}" for name in WRITES[example.stem] for suffix in suffixes
    )
    for path in written:
        data = path.read_bytes()
        if path.suffix == ".svg":
            assert ET.fromstring(data).tag == "{http://www.w3.org/2000/svg}svg"
        elif path.suffix == ".png":
            assert data.startswith(PNG_SIGNATURE)
        else:
            assert data.split()[:2] == [b"contended", b"total"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_writes_the_gallery_bytes(example, results, gallery_files):
    """One source per figure: each file an example writes is byte for byte the file of the
    same name that `kvmviz figures` (kvmviz.gallery.render_all) writes at seed 0."""
    _process, out = results[example.stem]
    written = sorted(out.iterdir())
    assert written
    for path in written:
        assert path.read_bytes() == gallery_files[path.name], path.name


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_is_a_thin_script_over_the_gallery(example):
    """Rougier's rule, one short script per figure: at most 25 lines, which ask the gallery
    for the figure (or table) and save it; they neither simulate nor draw themselves."""
    source = example.read_text(encoding="utf-8")
    assert len(source.splitlines()) <= 25
    calls = [f'kv.gallery.render("{name}", seed=0)' for name in WRITES[example.stem]]
    assert any(call in source for call in calls) or "kv.gallery.table(name, seed=0)" in source
    for drawing in ("simulate(", "plt.", "kv.timelines.", "sensitivity(", "compare_kernels("):
        assert drawing not in source
    assert source.count("kv.plot.") == source.count("kv.plot.save(")


@pytest.mark.parametrize("stem", ["memslot_map_q35", "contention_table"])
def test_an_example_never_overwrites_unless_forced(stem, results):
    """Run again into the same directory, an example refuses in one line on stderr (as
    `kvmviz figures` does: no traceback, exit status 1, saying how to go ahead), writes
    nothing and leaves the files alone; with --force it writes them again, the same bytes."""
    _, out = results[stem]
    before = {p: p.read_bytes() for p in out.iterdir()}
    for path in before:
        path.write_bytes(b"mine")
    again = _run(ROOT / "examples" / f"{stem}.py", out)
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and "Traceback" not in again.stderr
    assert again.stderr.startswith(f"{stem}.py: refusing to overwrite ")
    assert again.stderr.rstrip().endswith("(add --force)")
    assert all(str(path) in again.stderr for path in before)
    assert again.stdout == ""
    assert {p: p.read_bytes() for p in out.iterdir()} == dict.fromkeys(before, b"mine")
    forced = _run(ROOT / "examples" / f"{stem}.py", out, "--force")
    assert forced.returncode == 0, forced.stderr
    assert {p: p.read_bytes() for p in out.iterdir()} == before


def test_an_example_says_how_to_use_it():
    """``--help`` gives the example's summary, OUT_DIR and --force."""
    helped = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "commit_8931a454ae.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert helped.returncode == 0
    assert "8931a454ae" in helped.stdout and "--force" in helped.stdout
