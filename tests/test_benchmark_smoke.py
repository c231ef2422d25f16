"""benchmarks/engine.py: a --quick run reports a number for each engine, and the SimPy qrwlock it
uses as the reference grants exactly as :func:`kvmviz.rwlock.replay` does. No timing assertions.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kvmviz.rwlock import replay

simpy = pytest.importorskip("simpy")

ROOT = Path(__file__).resolve().parent.parent
BENCHMARK = ROOT / "benchmarks" / "engine.py"


def run_benchmark(name: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python benchmarks/NAME.py ARGS...`` from the project root, its output captured."""
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


# "  kvmviz     200.0 ms        60,207     0.119       505,860   (best of 1: 0.119)"
ENGINE_ROW = re.compile(
    r"^\s*(?P<engine>kvmviz|SimPy)\s+[\d.]+ ms\s+(?P<acq>[\d,]+)\s+(?P<wall>[\d.]+)"
    r"\s+(?P<rate>[\d,]+)\s",
    re.MULTILINE,
)
RATIO = re.compile(r"^ratio kvmviz/SimPy: (?P<ratio>[\d.]+)x", re.MULTILINE)


def _number(text: str) -> float:
    return float(text.replace(",", ""))


@pytest.fixture(scope="module")
def quick_engine_run() -> str:
    """The output of ``benchmarks/engine.py --quick``, run once for the tests below."""
    proc = run_benchmark("engine", "--quick")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_quick_run_reports_both_engines_and_the_ratio(quick_engine_run):
    out = quick_engine_run
    rows = {}
    for m in ENGINE_ROW.finditer(out):
        rows.setdefault(m["engine"], m)  # the first table: the shared configuration
    assert set(rows) == {"kvmviz", "SimPy"}, out
    for engine, m in rows.items():
        for field in ("acq", "wall", "rate"):
            assert _number(m[field]) > 0, f"{engine} {field}: {m[0]!r}"
    ratio = RATIO.search(out)
    assert ratio is not None, out
    assert _number(ratio["ratio"]) > 0


# "  compiled event loop    v6.7     20 ms      22,418    0.098      229,329     0.618x   (best..."
FREEZE_ROW = re.compile(
    r"^  (?P<engine>reference: closed loop, no yield|compiled event loop|Python event engine)"
    r"\s+(?P<kernel>v6\.[78])\s+[\d.]+ ms\s+(?P<attempts>[\d,]+)\s+(?P<wall>[\d.]+)"
    r"\s+(?P<rate>[\d,]+)\s+(?P<ratio>[\d.]+)x\s",
    re.MULTILINE,
)


def test_quick_run_reports_the_freeze_per_engine_and_kernel(quick_engine_run):
    """(d): the reference run first (ratio 1), then each kernel on the compiled event loop and
    the Python event engine, with their attempts, wall time, rate and ratio to the reference;
    both engines simulate the same stretch at --quick, so their attempts agree; both goals
    listed."""
    rows = [m.groupdict() for m in FREEZE_ROW.finditer(quick_engine_run)]
    assert [(r["engine"].split()[0], r["kernel"]) for r in rows] == [
        ("reference:", "v6.7"),
        ("compiled", "v6.7"),
        ("Python", "v6.7"),
        ("compiled", "v6.8"),
        ("Python", "v6.8"),
    ], quick_engine_run
    assert float(rows[0]["ratio"]) == 1.0
    for r in rows:
        assert all(_number(r[f]) > 0 for f in ("attempts", "wall", "rate", "ratio")), r
    assert rows[1]["attempts"] == rows[2]["attempts"] and rows[3]["attempts"] == rows[4]["attempts"]
    goals = re.findall(r"^  freeze \d+ vCPUs x 2 s <= 10 s, (v6\.[78]) ", quick_engine_run, re.M)
    assert goals == ["v6.7", "v6.8"], quick_engine_run


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("kvmviz_benchmark_engine", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _simpy_replay(qrwlock_class, arrival, is_writer, hold) -> np.ndarray:
    env = simpy.Environment()
    lock = qrwlock_class(env)
    grant = np.full(len(arrival), np.nan)

    def request(i):
        yield env.timeout(arrival[i])
        wait = lock.request(bool(is_writer[i]))
        if wait is not None:
            yield wait
        grant[i] = env.now
        yield env.timeout(hold[i])
        lock.release(bool(is_writer[i]))

    for i in range(len(arrival)):
        env.process(request(i))
    env.run()
    return grant


@pytest.mark.parametrize("seed", range(20))
def test_simpy_qrwlock_matches_kvmviz_replay(seed):
    bench = _load_benchmark()
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    arrival = np.sort(rng.uniform(0, 50 * n**0.5, n))  # continuous times: no ties
    is_writer = rng.random(n) < rng.uniform(0, 0.6)
    hold = rng.exponential(np.where(is_writer, 5.0, 20.0))
    expected = replay(arrival, is_writer, hold, policy="qrwlock")
    got = _simpy_replay(bench.QRWLock, arrival, is_writer, hold)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


def test_notebook_benchmark_reports_the_reference_and_each_chapter_asked_for():
    proc = run_benchmark("notebooks", "00")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    reference = re.search(r"^reference .*?([\d.]+) s$", proc.stdout, re.MULTILINE)
    chapter = re.search(r"^00-index\.ipynb\s+([\d.]+) s\s+([\d.]+)x reference", proc.stdout, re.M)
    assert reference and chapter, proc.stdout
    assert float(reference[1]) > 0 and float(chapter[1]) > 0
    assert "01-memslots" not in proc.stdout  # only the chapter asked for
    bad = run_benchmark("notebooks", "99", timeout=60)
    assert bad.returncode != 0 and "no notebook numbered 99" in bad.stderr


def test_plot_benchmark_reports_the_reference_and_the_hot_path_both_ways():
    """benchmarks/plot.py --quick prints the reference, the in-place update and the seaborn
    redraw as ratios to it, and, for each static figure, SVG bytes that are the same twice."""
    proc = run_benchmark("plot", "--quick")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    ref = re.search(
        r"^  empty dashboard figure, drawn once\s+([\d.]+) ms .*\s1\.00x ref$", out, re.M
    )
    fast = re.search(r"^  kvmviz: plot\.update in place \+ blit\s+([\d.]+) ms .*x ref$", out, re.M)
    slow = re.search(
        r"^  seaborn: new ecdfplot lines \+ blit\s+([\d.]+) ms .*x ref\s+([\d.]+)x kvmviz$",
        out,
        re.M,
    )
    assert ref and fast and slow, out
    assert float(ref[1]) > 0 and float(fast[1]) > 0 and float(slow[2]) > 0
    svgs = re.findall(r"([\d.]+) KiB SVG .* same bytes: (yes|NO)$", out, re.M)
    assert len(svgs) == 4, out
    assert all(float(size) > 0 and same == "yes" for size, same in svgs), out


def test_export_benchmark_quick_run_reports_every_run_and_the_goal():
    """benchmarks/export.py --quick: a row per kernel and the replayed trace with a size and a
    ratio for each format, and the goal judged for both suffixes. No timing assertions."""
    proc = run_benchmark("export", "--quick")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = re.findall(
        r"^(v5\.1[235]|replayed trace).*?([\d.]+) s +([\d.]+) MB +([\d.]+)x +([\d.]+) s +"
        r"([\d.]+) MB +([\d.]+)x +peak beyond the Run +([\d.]+) MiB$",
        proc.stdout,
        re.MULTILINE,
    )
    assert [r[0] for r in rows] == ["v5.12", "v5.13", "v5.15", "replayed trace"], proc.stdout
    assert all(float(r[2]) > 0 and float(r[5]) > 0 and float(r[7]) > 0 for r in rows)
    assert "peak RSS" in proc.stdout, proc.stdout  # the issue-20 goal reports memory
    goals = re.findall(r"to_perfetto (\.json|\.pftrace)\s+[\d.]+ s  (PASS|FAIL)", proc.stdout)
    assert [g[0] for g in goals] == [".json", ".pftrace"], proc.stdout


def test_timeline_benchmark_quick_run_reports_every_means_and_the_goal():
    """benchmarks/timeline.py --quick: for each size, the session's redraws the kvmviz way and
    the alternatives as ratios to it, and the goal judged per size. No timing assertions."""
    proc = run_benchmark("timeline", "--quick")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for means in ("(b)  kvmviz", "(b0) lock_timeline", "(a1) ipympl", "(a2) ipympl"):
        rows = re.findall(
            rf"^  {re.escape(means)}.*median\s+([\d.]+)\s+max\s+([\d.]+) ms.*\s([\d.]+)x \(b\)$",
            out,
            re.M,
        )
        assert len(rows) >= 2, (means, out)  # one per size
        assert all(float(median) > 0 and float(ratio) > 0 for median, _max, ratio in rows)
    assert len(re.findall(r"^  \(c\)  anywidget: .* KiB binary", out, re.M)) >= 2, out
    goals = re.findall(r"^\s+(\d+) vCPUs: slowest step\s+[\d.]+ ms\s+(ok|ABOVE GOAL)$", out, re.M)
    assert [int(n) for n, _ in goals] == [8, 64], out
