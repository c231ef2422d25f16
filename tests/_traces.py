"""The bundled real trace and its layout, and the helpers that edit it as a user's would be.

Shared by the tests of the parsers (test_traces), of classification (test_classify) and of
trace replay (test_experiments): a bad trace is the real one with a few lines changed,
written to a temporary folder, then read or replayed through ``kvmviz replay``.
"""

from __future__ import annotations

import re
from pathlib import Path

from kvmviz.cli import main

DATA = Path(__file__).resolve().parent.parent / "data"
TRACE = DATA / "traces" / "notifier-phases-linux6.18.txt"
LAYOUT = DATA / "traces" / "notifier-phases-linux6.18.layout.json"
VMM_PID = 15444  # the micro-VMM's main thread (file header)
PHASES = [
    "idle",
    "spurious_munmap",
    "spurious_madv",
    "relevant_madv",
    "mprotect",
    "ksm",
    "aging",
    "end",
]
LINES = TRACE.read_text(encoding="utf-8").split("\n")[:-1]
"""The bundled trace, one string per line, without the final newline."""

# A KSM merge as a v5.15 host traces it, on guest RAM of LAYOUT (memslot 1): unmap (start),
# set pte (change_pte), twice; and what a replay on v6.18, which has no change_pte, says of it.
_SLOT1 = 0x7FAFEAA00000  # guest RAM of the bundled layout (memslot 1)
V5_TRACE = [
    f" ksmd-37 [000] 1.000000: kvm_unmap_hva_range: mmu notifier unmap range: "
    f"{_SLOT1:#016x} -- {_SLOT1 + 0x1000:#016x}",
    f" ksmd-37 [000] 1.000002: kvm_set_spte_hva: mmu notifier set pte hva: {_SLOT1:#016x}",
    f" ksmd-37 [000] 1.000100: kvm_unmap_hva_range: mmu notifier unmap range: "
    f"{_SLOT1 + 0x10000:#016x} -- {_SLOT1 + 0x11000:#016x}",
    f" ksmd-37 [000] 1.000102: kvm_set_spte_hva: mmu notifier set pte hva: "
    f"{_SLOT1 + 0x10000:#016x}",
]
CHANGE_PTE_NOTE = (
    "the trace has 2 change_pte records (kvm_set_spte_hva, a v6.9 or older host); v6.18 has no "
    "change_pte callback (f3b65bbaed7c deleted it in v6.10), so there each of their events is "
    "the plain invalidate_range_start/end pair around it"
)


TIMESTAMP = re.compile(r"(?<=\s)(\d+)\.(\d{6})(?=: )")


def write_trace(tmp_path: Path, lines: list[str], name: str = "trace.txt") -> Path:
    """``lines`` written as a trace file in ``tmp_path``."""
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def replay_cli(capsys, trace, layout=LAYOUT, *extra) -> tuple[int, str, str]:
    """``kvmviz replay TRACE --layout LAYOUT --vcpus 2 ...``: (exit status, stdout, stderr)."""
    code = main(["replay", str(trace), "--layout", str(layout), "--vcpus", "2", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(error: Exception) -> str:
    """How the CLI prints an error: on one line, runs of blanks collapsed."""
    return "kvmviz replay: " + " ".join(str(error).split())


def refused(capsys, trace, layout=LAYOUT, *extra) -> str:
    """The CLI's one line on stderr, exit status 2 and no table."""
    code, out, err = replay_cli(capsys, trace, layout, *extra)
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert "mean_us" not in out
    return err.strip()


def shifted(lines: list[str], offset_ns: int, digits: int = 6) -> list[str]:
    """``lines`` with every record's timestamp moved by ``offset_ns`` (an integer number of ns,
    a multiple of 1000 for 6 fraction digits), printed with ``digits`` fraction digits (6 as
    the kernel prints them, 9 as ``trace-cmd report -t``), computed exactly in integers: as
    ``trace-cmd record --date`` (epoch seconds) or another boot would have printed them."""
    scale = 10 ** (9 - digits)
    if offset_ns % scale:
        raise ValueError(f"offset_ns = {offset_ns}: not a multiple of {scale} ns")

    def move(m: re.Match) -> str:
        ns = int(m[1]) * 10**9 + int(m[2]) * 1000 + offset_ns
        sec, frac = divmod(ns, 10**9)
        return f"{sec}.{frac // scale:0{digits}d}"

    return [TIMESTAMP.sub(move, line, count=1) for line in lines]
