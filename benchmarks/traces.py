"""Trace parser benchmark: lines per second and peak memory of ``kvmviz.traces.load_ftrace``.

Builds big synthetic tracefs files in a temporary directory by repeating the real capture
``data/traces/notifier-phases-linux6.18.txt`` (its header once, then its records and stack
frames over and over, timestamps shifted so time keeps increasing, notifier ranges moved by a
few pages and pids varied on each pass), parses each in a fresh interpreter and prints the
parse rate and the peak resident set size (``resource.getrusage``) against the file size.

The parser streams: it never holds the file, only the frame it builds (columns preallocated
from a line count and filled a chunk of records at a time). So the memory it adds is the frame
plus a constant: a fraction of the file size with ``keep_text=False`` (parsed fields only), about
the file size with the raw payloads kept.

    python benchmarks/traces.py            # 200 MB: files of 50, 100 and 200 MB
    python benchmarks/traces.py 1000       # up to 1 GB
    python benchmarks/traces.py --quick    # one 5 MB file, a few seconds (tests/test_traces.py)

It is a report, not a test: the exit status is 0 whenever it ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "traces" / "notifier-phases-linux6.18.txt"
_TS = re.compile(r"^(?P<head>.*?\]\s+(?:\S{4,5}\s+)?)(?P<ts>\d+\.\d{6})(?P<tail>: .*)$")
_HVA = re.compile(r"0x([0-9a-f]{14})\b")
_PID = re.compile(r"-(\d+)(\s+\[)")


def _rss_mib() -> float:
    """Peak RSS of this process so far, MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def generate(path: Path, size_bytes: int) -> int:
    """Write a synthetic trace of about ``size_bytes`` to ``path``; returns its line count."""
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    header = [line for line in lines if line.startswith("#")]
    body = [line for line in lines if not line.startswith("#")]
    parsed = []  # (head, seconds, tail) for records; (line, None, None) for stack frames
    for line in body:
        m = _TS.match(line)
        parsed.append((m["head"], float(m["ts"]), m["tail"]) if m else (line, None, None))
    t0 = min(p[1] for p in parsed if p[1] is not None)
    span = max(p[1] for p in parsed if p[1] is not None) - t0 + 0.001
    written = 0
    n_lines = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        block = "\n".join(header) + "\n"
        f.write(block)
        written += len(block)
        n_lines += len(header)
        rep = 0
        while written < size_bytes:
            shift = (rep % 64) * 0x1000  # move notifier ranges by 0..63 pages
            pid_shift = rep % 7
            out = []
            for head, ts, tail in parsed:
                if ts is None:
                    out.append(head)
                    continue
                head = _PID.sub(lambda m, d=pid_shift: f"-{int(m[1]) + d}{m[2]}", head, count=1)
                if shift and ("hva:" in tail or "range:" in tail):
                    tail = _HVA.sub(lambda m, d=shift: f"0x{int(m[1], 16) + d:014x}", tail)
                out.append(f"{head}{t0 + rep * span + (ts - t0):.6f}{tail}")
            block = "\n".join(out) + "\n"
            f.write(block)
            written += len(block.encode())
            n_lines += len(out)
            rep += 1
    return n_lines


def parse_child(path: str, keep_text: bool) -> None:
    """In a fresh interpreter: parse ``path``, print one JSON line of measurements."""
    sys.path.insert(0, str(ROOT))
    import kvmviz.traces as kt

    base = _rss_mib()
    t = time.perf_counter()
    frame = kt.load_ftrace(path, keep_text=keep_text)
    wall = time.perf_counter() - t
    result = {
        "lines": frame.attrs["line_counts"]["total"],
        "records": len(frame),
        "wall_s": wall,
        "base_rss_mib": base,
        "peak_rss_mib": _rss_mib(),
        "frame_mib": frame.memory_usage(deep=True).sum() / (1 << 20),
    }
    print(json.dumps(result))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size_mb", nargs="?", type=float, default=200.0, help="largest file, MB")
    parser.add_argument("--quick", action="store_true", help="one 5 MB file (smoke run)")
    parser.add_argument("--parse", help=argparse.SUPPRESS)
    parser.add_argument("--no-text", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.parse:
        parse_child(args.parse, keep_text=not args.no_text)
        return 0
    sizes = [5.0] if args.quick else [args.size_mb / 4, args.size_mb / 2, args.size_mb]
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"sample: {SAMPLE.relative_to(ROOT)}")
    header = (
        f"{'file MB':>8} {'lines':>11} {'text':>5} {'parse s':>8} {'lines/s':>10} "
        f"{'MB/s':>6} {'base RSS':>9} {'peak RSS':>9} {'added':>8} {'frame':>8} "
        f"{'added/file':>11} {'added/frame':>12}"
    )
    with tempfile.TemporaryDirectory(prefix="kvmviz-trace-bench-") as tmp:
        rows = []
        for size_mb in sizes:
            path = Path(tmp) / f"trace-{size_mb:g}MB.txt"
            t = time.perf_counter()
            n = generate(path, int(size_mb * 1e6))
            file_mb = path.stat().st_size / 1e6
            print(
                f"generated {path.name}: {file_mb:.1f} MB, {n:,} lines in "
                f"{time.perf_counter() - t:.1f} s"
            )
            for keep_text in (False, True):
                cmd = [sys.executable, __file__, "--parse", str(path)]
                if not keep_text:
                    cmd.append("--no-text")
                proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append((file_mb, keep_text, r))
            path.unlink()
        print()
        print(header)
        for file_mb, keep_text, r in rows:
            delta = r["peak_rss_mib"] - r["base_rss_mib"]
            print(
                f"{file_mb:8.1f} {r['lines']:11,} {'yes' if keep_text else 'no':>5} "
                f"{r['wall_s']:8.2f} {r['lines'] / r['wall_s']:10,.0f} "
                f"{file_mb / r['wall_s']:6.1f} {r['base_rss_mib']:7.0f} M "
                f"{r['peak_rss_mib']:7.0f} M "
                f"{delta:6.0f} M {r['frame_mib']:6.0f} M {delta * 1.048576 / file_mb:11.2f} "
                f"{delta / r['frame_mib']:12.2f}"
            )
    print()
    print("added: peak RSS minus the RSS after imports, MiB; frame: the DataFrame returned (deep).")
    print("Bounded memory: the parse adds the frame plus a fixed ~20-30 MiB (one chunk of records")
    print("as Python objects), whatever the file size; the file itself is never held.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
