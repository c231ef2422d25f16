"""The CLI under generated argument vectors: whatever the user types, `kvmviz` answers (exit 0)
or refuses in one line (exit 2); it never shows a traceback, never leaves a partial set of
files behind and never overwrites an existing file without --force.

Each subcommand gets argument vectors drawn from valid values, values it must refuse (nan,
inf, negative, non-integer seeds, unknown choices) and paths of every kind: a fresh folder, an
existing one holding a previous set, an existing regular file, a path under a regular file and
a /proc path. (The tests run as root, who can write into a chmod-read-only folder, so a path
under a regular file and /proc stand for the folders nobody can write.) The figures' builders
are replaced by tiny ones so that a real render costs milliseconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from kvmviz import cli, exercises, gallery

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT / "data" / "traces"
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

GOOD_SEEDS = ["0", "7", "123456789012345678901234"]
BAD_SEEDS = ["-1", "1.7", "True", "", "0x10"]
SEEDS = st.sampled_from(GOOD_SEEDS + BAD_SEEDS)


@st.composite
def _vector(draw, command: str, options) -> list[str]:
    """``[command, ...]`` with each of ``options`` (``(option, valid, invalid, required)``)
    omitted or valid, except at most one drawn among its invalid values: valid runs are as
    likely as refusals, and each refusal has one cause, whose message the test can check."""
    broken = draw(st.sampled_from([None] * len(options) + list(range(len(options)))))
    argv = [command]
    for i, (option, valid, invalid, required) in enumerate(options):
        if i == broken:
            value = draw(st.sampled_from(invalid))
        elif required or draw(st.booleans()):
            value = draw(st.sampled_from(valid))
        else:
            continue
        if value is True:
            argv.append(option)
        elif value is not False:
            argv += [option, value] if option else [value]
    return argv


def _maybe(option: str, values) -> st.SearchStrategy[list[str]]:
    """``[]`` (the default) or ``[option, value]``."""
    return st.one_of(st.just([]), values.map(lambda v: [option, v]))


def _flag(option: str) -> st.SearchStrategy[list[str]]:
    return st.sampled_from([[], [option]])


def _argv(*parts) -> st.SearchStrategy[list[str]]:
    return st.tuples(*parts).map(lambda lists: [a for part in lists for a in part])


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in-process; checks the contract every command keeps."""
    status = cli.main(argv)
    out, err = capsys.readouterr()
    event(f"exit {status}")
    assert status in (0, 2), (argv, status, err)
    assert "Traceback" not in err, (argv, err)
    if status == 2:
        assert err.count("\n") == 1 and err.endswith("\n"), (argv, err)
        assert err.startswith("kvmviz"), (argv, err)
    return status, out, err


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>")
        for p in sorted(folder.rglob("*"))
    }


# --------------------------------------------------------------------------------------------
# simulate: sizes and numbers (valid ones kept small: a run costs milliseconds).
# --------------------------------------------------------------------------------------------
SIMULATE = _vector(
    "simulate",
    [
        ("--vcpus", ["1", "4", "16"], ["0", "-3", "x", "1e3", "100000000"], False),
        ("--duration-ms", ["0.5", "2"], ["nan", "inf", "-1", "0", "1e6"], True),
        ("--rate", ["0", "2000", "20000"], ["nan", "-1", "1e300", "1e999"], False),
        ("--spurious", ["0", "0.5", "1"], ["1.5", "-0.1", "nan"], False),
        ("--policy", ["qrwlock", "reader-pref", "spinlock"], ["mutex", ""], False),
        ("-s", GOOD_SEEDS, BAD_SEEDS, False),
        ("--max-records", ["100000", "4000000"], ["1", "0", "x", "2.5"], False),
        ("--progress", [False], ["maybe"], False),
    ],
)


@SETTINGS
@given(argv=SIMULATE)
def test_simulate_answers_or_refuses_in_one_line(capsys, argv):
    """A run prints the echo line, the column header and one row per kernel; a refusal
    prints nothing on stdout (it comes before any work)."""
    status, out, err = _run(capsys, argv)
    if status == 0:
        lines = out.splitlines()
        assert lines[0].startswith("# kvmviz simulate --setup static --vcpus ")
        assert [line.split()[0] for line in lines[-3:]] == ["v5.12", "v5.13", "v5.15"]
        assert err == ""
    else:
        assert out == ""


# --------------------------------------------------------------------------------------------
# figures: paths of every kind, with tiny builders.
# --------------------------------------------------------------------------------------------
def _tiny(render) -> Figure:
    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1], [1, 0])
    return fig


def _broken(render) -> Figure:
    raise OSError(28, "No space left on device")


FIGURE_OUT = st.sampled_from(["new", "new/deeper", "old", "file", "file/under", "/proc/figs"])


@SETTINGS
@given(
    out=FIGURE_OUT,
    rest=_vector(
        "",
        [
            ("--format", ["svg", "png", "svg,png", "svg,,pdf"], ["bmp", "", "svg,gif"], False),
            ("--context", ["paper", "talk"], ["poster"], False),
            ("-s", GOOD_SEEDS, BAD_SEEDS, False),
            ("--force", [False, True], ["yes"], False),
            ("--no-animations", [False, True], ["1"], False),
        ],
    ).map(lambda argv: argv[1:]),
    disk_full=st.booleans(),
)
def test_figures_is_all_or_nothing(capsys, monkeypatch, out, rest, disk_full):
    """Exit 0 writes the whole set; exit 2 leaves every folder as it was; without --force no
    existing byte changes; no temporary folder ever stays behind."""
    builders = {"one": _tiny, "two": _broken if disk_full else _tiny, "three": _tiny}
    monkeypatch.setattr(gallery, "FIGURES", builders)
    monkeypatch.setattr(gallery, "_STANDARD", {})  # no animations: render_all writes figures only
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "file").write_text("a regular file")
        (tmp / "old").mkdir()
        (tmp / "old" / "one.svg").write_text("previous set")
        (tmp / "old" / "notes.txt").write_text("not ours")
        before = _tree(tmp)
        target = out if out.startswith("/") else str(tmp / out)
        status, stdout, _err = _run(capsys, ["figures", "--out", target, *rest])
        after = _tree(tmp)
        assert not [name for name in after if ".partial-" in name]
        if status == 2:
            assert after == before
        else:
            written = [Path(line) for line in stdout.splitlines()[1:]]
            assert written and all(p.is_file() and p.stat().st_size > 0 for p in written)
            assert {p.stem for p in written} == set(builders)
            if "--force" not in rest:
                assert all(after.get(name) == data for name, data in before.items())
            assert after["old/notes.txt"] == b"not ours"
        if disk_full:
            assert status == 2  # a failure halfway is never a success with a half set


# --------------------------------------------------------------------------------------------
# replay: real, missing, unreadable and nonsense inputs.
# --------------------------------------------------------------------------------------------
@SETTINGS
@given(
    trace=st.sampled_from(
        ["real"] * 4 + ["missing", "folder", "garbage", "empty", "/proc/self/status"]
    ),
    layout=st.sampled_from(
        ["real"] * 4 + ["missing", "trace", "garbage.json", "empty.json", "folder"]
    ),
    rest=_vector(
        "",
        [
            ("--vcpus", ["1", "8"], ["0", "x", "-2"], False),
            ("--policy", ["qrwlock", "spinlock"], ["mutex"], False),
            ("-s", GOOD_SEEDS, BAD_SEEDS, False),
            ("--lenient", [False, True], ["no"], False),
        ],
    ).map(lambda argv: argv[1:]),
)
def test_replay_answers_or_names_the_file(capsys, trace, layout, rest):
    """A refused replay names the file (or option) it is about; an answered one prints the
    three kernels' perf-lock tables."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "garbage").write_text("hello\nthis is not a trace\n")
        (tmp / "garbage.json").write_text("{not json")
        (tmp / "empty").write_text("")
        (tmp / "empty.json").write_text("")
        paths = {
            "real": str(TRACES / "notifier-phases-linux6.18.txt"),
            "missing": str(tmp / "missing.txt"),
            "folder": str(tmp),
            "trace": str(TRACES / "notifier-phases-linux6.18.txt"),
        }
        layouts = dict(paths, real=str(TRACES / "notifier-phases-linux6.18.layout.json"))
        trace_path = paths.get(trace, trace if trace.startswith("/") else str(tmp / trace))
        layout_path = layouts.get(layout, str(tmp / layout))
        argv = ["replay", trace_path, "--layout", layout_path, *rest]
        status, out, err = _run(capsys, argv)
        if status == 0:
            assert out.count("# perf lock contention, as it would read on v5.1") == 3
        elif out:  # past argparse: the error names a file or an option
            assert any(name in err for name in (trace_path, layout_path, "--", "notifier")), err


# --------------------------------------------------------------------------------------------
# quiz
# --------------------------------------------------------------------------------------------
@SETTINGS
@given(
    argv=_vector(
        "quiz",
        [
            ("", list(exercises.KINDS), ["nope", "-"], False),
            ("-s", GOOD_SEEDS, BAD_SEEDS, False),
            ("-c", [False, True], ["yes"], False),
        ],
    )
)
def test_quiz_answers_or_refuses_in_one_line(capsys, argv):
    """A quiz hides its answer unless -c is given."""
    status, out, _err = _run(capsys, argv)
    if status == 0:
        assert ("Answer: ?" in out) is ("-c" not in argv)


# --------------------------------------------------------------------------------------------
# The real process: exit statuses as a shell sees them.
# --------------------------------------------------------------------------------------------
def _kvmviz(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kvmviz", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("args", "status", "stream", "expected"),
    [
        (["--version"], 0, "stdout", "kvmviz "),
        (["simulate", "--rate", "nan"], 2, "stderr", "kvmviz simulate: error: argument --rate"),
        (["simulate", "--duration-ms", "1e6"], 2, "stderr", "kvmviz simulate: each kernel's"),
        (["figures", "--out", "/proc/kvmviz"], 2, "stderr", "kvmviz figures: cannot write"),
    ],
    ids=["version", "nan", "oversized", "/proc"],
)
def test_the_process_exit_status(args, status, stream, expected):
    """`python -m kvmviz` as a process: 0 for --version, 2 and one line on stderr, no
    traceback, for a refused option, an oversized run and a figures folder it cannot write."""
    done = _kvmviz(*args)
    assert done.returncode == status
    assert getattr(done, stream).startswith(expected)
    assert "Traceback" not in done.stderr
    if status == 2:
        assert done.stderr.count("\n") == 1


def test_ctrl_c_exits_130_in_one_line():
    """SIGINT during a long simulation (reader-pref, 2 s of a 416-vCPU VM): status 130 and the
    one line "kvmviz: interrupted", no traceback."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    args = ["simulate", "--policy", "reader-pref", "--duration-ms", "2000"]
    with subprocess.Popen(
        [sys.executable, "-m", "kvmviz", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    ) as process:
        assert process.stdout.readline().startswith("# kvmviz simulate")  # now simulating
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert err == "kvmviz: interrupted\n"
