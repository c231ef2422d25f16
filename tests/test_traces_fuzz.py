"""Fuzzing the line parsers of kvmviz.traces with hypothesis.

Files of 100 consecutive real lines of data/ (plus the formats the samples lack), 0 to 100 % of
them damaged: truncations, bad or oversized hex, dropped and repeated fields, one character
changed, binary garbage (bytes that are not UTF-8), random unicode. Each
test runs at least 100 examples, so well over 10,000 generated lines in all. The properties:

* strict mode parses or raises :class:`TraceParseError`, never another exception;
* lenient mode never raises, and accounts for every line (records + comments + blank + headers
  + stack frames + lost + skipped == lines of the file);
* every ``kvm_age_hva`` record carries the callback its task stands for
  (:func:`kvmviz.traces.age_hva_callback`: ``clear_young`` for ``kdamond.N``,
  ``clear_flush_young`` for ``kswapdN``, assumed ``clear_flush_young`` for any other comm);
* lenient mode is strict mode on the file without the lines it skipped, sorted by time when
  records went back in time on their CPU (the pool wraps from the real trace's 1344 s to the
  extra lines' 10 s, and damaged digits move timestamps): strict mode then raises
  :class:`TraceOrderError` on that clean file, naming a line that lenient mode counted.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from kvmviz import traces as kt

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT / "data" / "traces" / "notifier-phases-linux6.18.txt"
QEMU = ROOT / "data" / "qemu" / "q35-512m-paused.txt"

LINES_PER_FILE = 100
EXAMPLES = 150  # x 100 lines: 15,000 lines per test
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TRACE_LINES = TRACE.read_text(encoding="utf-8").split("\n")[:-1]
EXTRA_LINES = [  # formats the real file lacks
    "version = 6",
    "cpus=2",
    "CPU 1 is empty",
    "CPU:0 [LOST 3 EVENTS]",
    "",
    "     CPU 0/KVM-19526 [000] d..1 10.000001: contention_begin: 0xffff (flags=SPIN|READ)",
    "  <...>-4090 [001] 10.000002: kvm_page_fault: address 7fe00000 error_code 6",
    "  CPU 3/KVM-9 [003] 10.000003: kvm_page_fault: vcpu 3 rip 0xffffffff81a0b2c4 "
    "address 0x00000001234a5000 error_code 0x182",
    "  ksmd-37 [000] 10.000004: kvm_set_spte_hva: mmu notifier set pte hva: 0x007f0000001000",
    "  bash-1 [000] 10.000005: print: tracing_mark_write: PHASE fuzz",
    "  ksmd-37 [000] 10.000006: kernel_stack:         <stack trace >",
    # kvm_age_hva from reclaim and from a task the table does not know (the real file has
    # kdamond's only): their callbacks are decided by task, so damaged comms exercise the table.
    "  kswapd0-85 [001] 10.000007: kvm_age_hva: mmu notifier age hva: 0x007f0000002000 -- "
    "0x007f0000003000",
    "  python3-1234 [001] 10.000008: kvm_age_hva: mmu notifier age hva: 0x007f0000004000 -- "
    "0x007f0000005000",
]
QEMU_LINES = [
    *QEMU.read_text(encoding="utf-8").split("\n")[:-1],
    "kvm_set_user_memory AddrSpace#1 Slot#3 flags=0x0 gpa=0x100000 size=0x1000 "
    "ua=0x7f0000000000 ret=0",
    "kvm_set_user_memory AddrSpace#0 Slot#7 flags=0x4 gpa=0x200000000 size=0x200000 "
    "ua=0x7f2000000000 guest_memfd=12 guest_memfd_offset=0x0 ret=0",
    "12@1700000000.000001:kvm_set_user_memory Slot#65537 flags=0x0 gpa=0x0 size=0x1000 "
    "ua=0x7f3000000000 ret=-22",
]
HEX = "0123456789abcdef"


CHARS = st.characters(codec="utf-8", exclude_characters="\n")
UNICODE = st.text(CHARS, max_size=60)
GARBAGE = st.binary(max_size=60).map(lambda b: b.replace(b"\n", b""))
KINDS = ("truncated", "bad hex", "wrong fields", "spliced", "unicode", "garbage")


def damage(draw, line: str) -> bytes:
    """A damaged copy of ``line``, or garbage in its place, as bytes."""
    kind = KINDS[draw(st.integers(0, len(KINDS) - 1))]
    if kind == "truncated":
        line = line[: draw(st.integers(0, max(len(line) - 1, 0)))]
    elif kind == "bad hex":
        spots = [i for i, c in enumerate(line) if c in HEX] or [len(line)]
        i = spots[draw(st.integers(0, len(spots) - 1))]
        if draw(st.booleans()):  # a non-hex digit where a hex digit was
            line = line[:i] + "gxz-+ G"[draw(st.integers(0, 6))] + line[i + 1 :]
        else:  # a number beyond 64 bits
            line = line[:i] + "f" * draw(st.integers(8, 24)) + line[i:]
    elif kind == "wrong fields":
        fields = line.split(" ")
        i = draw(st.integers(0, len(fields) - 1))
        if draw(st.booleans()):
            del fields[i]
        else:
            fields.insert(i, fields[i])
        line = " ".join(fields)
    elif kind == "spliced":  # one random character changed or inserted
        i = draw(st.integers(0, len(line)))
        line = line[:i] + draw(CHARS) + line[i + draw(st.integers(0, 1)) :]
    elif kind == "unicode":
        line = draw(UNICODE)
    else:
        return draw(GARBAGE)
    return line.encode("utf-8")


def files(pool: list[str]):
    """Strategy: 100 consecutive lines of ``pool`` (wrapping around), 0-100 % of them damaged."""
    starts = [i for i, line in enumerate(pool) if not line.lstrip().startswith("=>")]

    @st.composite
    def build(draw):
        start = starts[draw(st.integers(0, len(starts) - 1))]
        rate = (0, 2, 10, 30, 60, 100)[draw(st.integers(0, 5))]  # percent of damaged lines
        lines = []
        for k in range(LINES_PER_FILE):
            line = pool[(start + k) % len(pool)]
            if rate and draw(st.integers(0, 99)) < rate:
                lines.append(damage(draw, line))
            else:
                lines.append(line.encode("utf-8"))
        return lines

    return build()


TRACE_FILE = files(TRACE_LINES + EXTRA_LINES)
QEMU_FILE = files(QEMU_LINES)


def corrupt_archive(path) -> str:
    """The refusal of a file whose first bytes are a compressor's magic (a damaged first line
    may begin with gzip's ``\\x1f\\x8b``) but whose rest is no such archive: a ValueError
    naming the file and the format, as a real damaged ``.gz`` gets (hypothesis found it)."""
    return (
        rf"{re.escape(str(path))}: corrupt (?P<fmt>gzip|xz|bzip2) data( after \d+ lines)? \(.*\); "
        r"expected a complete (?P=fmt)-compressed file: it is damaged or was cut short"
    )


def write(tmp_path: Path, lines: list[bytes], name: str = "fuzz.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def lenient(parse, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kt.TraceParseWarning)
        return parse(*args, **kwargs)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(lines=TRACE_FILE)
@example(lines=[b"\x1f\x8b"] + [b""] * 99)  # found by hypothesis: a "gzip" first line
def test_load_ftrace_strict_lenient_and_accounting(workdir, lines):
    """On damaged traces strict parsing gives a frame or a TraceParseError naming the line, and
    lenient parsing accounts for every line and equals strict parsing of the kept lines."""
    path = write(workdir, lines)
    # Strict: a frame or TraceParseError, nothing else.
    try:
        strict = kt.load_ftrace(path)
    except kt.TraceParseError as err:
        strict = None
        assert err.path == str(path) and 1 <= err.line <= len(lines)
        assert len(err.text) <= 121 and err.expected
    except ValueError as err:  # read as an archive: refused whole, strict or lenient
        assert re.fullmatch(corrupt_archive(path), str(err)), str(err)
        with pytest.raises(ValueError, match="corrupt"):
            lenient(kt.load_ftrace, path, lenient=True)
        event("a damaged archive")
        return
    # Lenient: never raises (but for a file of blank lines, not a trace, and one whose every
    # other line is malformed: an empty result is no trace either), accounts for every line.
    if not any(line.strip() for line in lines):
        with pytest.raises(kt.TraceParseError, match="got an empty file"):
            lenient(kt.load_ftrace, path, lenient=True)
        return
    try:
        df = lenient(kt.load_ftrace, path, lenient=True)
    except kt.TraceParseError as err:
        assert strict is None  # a malformed line, which strict mode refused first
        assert re.fullmatch(
            rf"{re.escape(str(path))}, line \d+: expected at least one trace record .*; got no "
            r"record: all \d+ lines that are not blank, comments or headers are malformed .*",
            str(err),
        ), str(err)
        event("lenient: no record at all")
        return
    counts = df.attrs["line_counts"]
    parts = ("records", "comments", "blank", "headers", "stack_frames", "lost", "skipped")
    assert sum(counts[k] for k in parts) == counts["total"] == len(lines)
    assert counts["records"] == len(df)
    assert counts["skipped"] == df.attrs["skipped_count"] == len(df.attrs["skipped"])
    # Every kvm_age_hva record has its task's callback (age_hva_callback), whatever the damage.
    aging = df[df["event"] == "kvm_age_hva"]
    decided = list(zip(aging["callback"], aging["callback_source"], strict=True))
    if df.attrs["layout"] == "default":
        assert decided == [kt.age_hva_callback(comm) for comm in aging["comm"]]
    else:  # a damaged line read in the -l layout: its comm may be cut to 8 characters
        for got, comm in zip(decided, aging["comm"], strict=True):
            assert got in {kt.age_hva_callback(comm), kt.age_hva_callback(comm, truncated=True)}
    assert sum(df.attrs["age_hva"].values()) == len(aging)
    event(f"strict: {'parsed' if strict is not None else 'raised'}")
    event(f"skipped: {min(counts['skipped'] // 25 * 25, 75)}+")
    event(f"reordered: {'yes' if df.attrs['reordered'] else 'no'}")
    if strict is not None:
        assert counts["skipped"] == 0 and df.attrs["reordered"] == 0
        pd.testing.assert_frame_equal(df, strict)
        return
    assert df["t_s"].is_monotonic_increasing or not df.attrs["reordered"]
    # Lenient == strict on the file without the skipped lines (sorted, if records went back).
    skipped = {line for line, _ in df.attrs["skipped"]}
    kept = [i for i in range(1, len(lines) + 1) if i not in skipped]
    clean_path = write(workdir, [lines[i - 1] for i in kept], "clean.txt")
    if df.attrs["reordered"]:
        with pytest.raises(kt.TraceOrderError) as err:
            kt.load_ftrace(clean_path)
        assert kept[err.value.line - 1] in df["line"].tolist()
        assert err.value.t_s < err.value.previous_t_s
        clean = lenient(kt.load_ftrace, clean_path, lenient=True)
        assert clean.attrs["reordered"] == df.attrs["reordered"]
    else:
        clean = kt.load_ftrace(clean_path)
    assert [kept[i - 1] for i in clean["line"]] == df["line"].tolist()
    pd.testing.assert_frame_equal(clean.drop(columns="line"), df.drop(columns="line"))


@FUZZ
@given(lines=QEMU_FILE)
@example(lines=[b"\x1f\x8b"] + [b""] * 99)  # found by hypothesis: a "gzip" first line
def test_qemu_parsers_strict_and_lenient(workdir, lines):
    """On damaged QEMU logs strict parsing raises only TraceParseError naming the line; lenient
    parsing keeps lines in order, and at=0 and at=n give no slot and the whole log's layout."""
    path = write(workdir, lines, "qemu.log")
    empty = (  # the refusals of an empty result, naming the file
        rf"{re.escape(str(path))}: (none of its \d+ lines is a kvm_set_user_memory line|the file "
        r"is empty.*|all \d+ kvm_set_user_memory lines are malformed .*|no memslot: its \d+ "
        r"kvm_set_user_memory lines leave no memslot .*); expected a QEMU log with .*"
        rf"|{corrupt_archive(path)}"
    )
    results = {}
    for parse in (kt.memslot_events, kt.load_qemu_memslots):
        try:
            parse(path)
        except kt.TraceParseError as err:
            assert err.path == str(path) and 1 <= err.line <= len(lines)
        except ValueError as err:
            assert re.fullmatch(empty, str(err)), str(err)
        try:
            results[parse] = lenient(parse, path, lenient=True)
        except ValueError as err:  # never a TraceParseError: lenient skips malformed lines
            assert not isinstance(err, kt.TraceParseError)
            assert re.fullmatch(empty, str(err)), str(err)
            results[parse] = None
    events = results[kt.memslot_events]
    if events is None:  # no well-formed kvm_set_user_memory line: no layout either
        assert results[kt.load_qemu_memslots] is None
        event("qemu: no line")
        return
    assert len(events) and events["line"].is_monotonic_increasing
    assert len(events) + events.attrs["skipped_count"] <= len(lines)
    n = len(events)
    layouts = {}
    for at in {0, n // 2, n}:
        layouts[at] = lenient(kt.load_qemu_memslots, path, at, lenient=True)
    # Nothing replayed is no memslot; every line replayed is the layout of the whole log, which
    # load_qemu_memslots refuses only when it is empty.
    assert len(layouts[0]) == 0
    final = results[kt.load_qemu_memslots]
    assert (final is None) == (len(layouts[n]) == 0)
    if final is not None:
        assert layouts[n] == final
