"""The command line: every run echoes its parameters, then prints what it says it prints; every
mistake of the user is one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import errno
import time
from pathlib import Path

import pytest
from _traces import CHANGE_PTE_NOTE, V5_TRACE
from matplotlib.figure import Figure

import kvmviz
from kvmviz import cli, exercises, gallery
from kvmviz.cli import main

DATA = Path(__file__).resolve().parents[1] / "data"
TRACE = DATA / "traces" / "notifier-phases-linux6.18.txt"
LAYOUT = DATA / "traces" / "notifier-phases-linux6.18.layout.json"
SMALL = ["simulate", "--vcpus", "8", "--duration-ms", "2"]  # a run of ~600 records


def _one_line_error(capsys) -> str:
    """The stderr of a refused command: exactly one line, no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    return err


def test_simulate_prints_a_row_per_kernel(capsys):
    """`kvmviz simulate` echoes its flags, the setup's rate and spurious share included, and
    prints v5.12 / v5.13 / v5.15; the static setup by default, the volatile one on request."""
    assert main(["simulate", "--vcpus", "32", "--duration-ms", "5", "-s", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "# kvmviz simulate --setup static --vcpus 32 --duration-ms 5 --rate 2000 --spurious 1 "
    )
    assert main(["simulate", "--setup", "volatile", "--vcpus", "32", "--duration-ms", "5"]) == 0
    assert "--rate 5000 --spurious 0.4 " in capsys.readouterr().out.splitlines()[0]
    assert all(f"\nv5.1{k} " in out for k in "235")
    header = out.splitlines()[1].split()
    assert header == list(kvmviz.metrics.KERNEL_TABLE_COLUMNS)  # readers' stall, writers' wait


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["simulate", "--vcpus", "0"], "argument --vcpus: '0': expected an integer >= 1"),
        (["simulate", "--vcpus", "1e3"], "argument --vcpus: '1e3': expected an integer >= 1"),
        (["simulate", "--duration-ms", "0"], "argument --duration-ms: '0': expected a finite"),
        (["simulate", "--duration-ms", "inf"], "argument --duration-ms: 'inf': expected a"),
        (["simulate", "--rate", "nan"], "argument --rate: 'nan': expected a finite number >= 0"),
        (["simulate", "--rate", "-5"], "argument --rate: '-5': expected a finite number >= 0"),
        (["simulate", "--spurious", "1.5"], "--spurious: '1.5': expected a finite number between"),
        (["simulate", "-s", "-1"], "argument -s/--seed: '-1': expected a non-negative integer"),
        (["simulate", "-s", "1.7"], "argument -s/--seed: '1.7': expected a non-negative integer"),
        (["simulate", "--max-records", "0"], "argument --max-records: '0': expected an integer"),
        (["simulate", "--policy", "mutex"], "argument --policy: invalid choice: 'mutex'"),
        (["figures", "--out", "x", "-s", "True"], "argument -s/--seed: 'True': expected a non"),
        (["figures"], "the following arguments are required: --out"),
        (["quiz", "grant-order", "-s", "five"], "argument -s/--seed: 'five': expected a non"),
        (["quiz", "no-such-kind"], "argument kind: invalid choice: 'no-such-kind'"),
        (["replay", "t.txt"], "the following arguments are required: --layout"),
        ([], "the following arguments are required: COMMAND"),
        (["sing"], "argument COMMAND: invalid choice: 'sing'"),
    ],
)
def test_a_bad_option_is_one_line_naming_it(capsys, argv, fragment):
    """argparse's refusals keep exit status 2 but fit on one line (no usage block), name the
    option and the value, and say what was expected; nothing goes to stdout."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert fragment in err and err.rstrip().endswith("--help)")


@pytest.mark.parametrize(
    ("argv", "records"),
    [
        (["simulate", "--duration-ms", "1e6"], "1,799,298,601 fault attempts"),
        (["simulate", "--vcpus", "10000000"], "576,144,426 fault attempts"),
        (["simulate", "--rate", "1e300"], "1e+30 notifier callbacks"),
        (["simulate", "--duration-ms", "5000"], "fault attempts"),
    ],
    ids=["1e6 ms", "1e7 vCPUs", "1e300 Hz", "5000 ms"],
)
def test_an_oversized_run_is_refused_at_once_with_the_estimate(capsys, monkeypatch, argv, records):
    """The runs that used to end in numpy MemoryErrors (6.7 GiB, 21.5 GiB) are refused within
    a second, before the echo line, with the estimate and how to go ahead: a --max-records
    value only when the three runs' tables fit the machine's memory (here 16 GiB), else why
    raising it would not help (the suggested 180,272,039 was killed by the OOM killer)."""
    monkeypatch.setattr(cli, "_memory_available", lambda: 16 * 2**30)
    start = time.monotonic()
    assert main(argv) == 2
    assert time.monotonic() - start < 1.0
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("kvmviz simulate: each kernel's run would simulate ~")
    assert records in err and "more than --max-records 4,000,000" in err
    assert "shorten --duration-ms, lower --vcpus or --rate" in err
    if "5000" in argv:  # ~2.2 GiB per run: 3 of them fit in 16 GiB
        suggested = int(err.rpartition("or add --max-records ")[2].split()[0])
        assert suggested > 4_000_000
        assert "would not help" not in err
    else:
        assert "or add --max-records" not in err
        assert "(raising --max-records would not help: the 3 runs' tables would take ~" in err
        assert "more than the 16 GiB this machine has available)" in err


def test_a_run_inside_max_records_but_beyond_the_machine_is_refused(capsys, monkeypatch):
    """--max-records raised to let a run through is still checked against the memory the
    machine has: 3 runs of ~2.2 GiB do not fit in 4 GiB, said before any work."""
    monkeypatch.setattr(cli, "_memory_available", lambda: 4 * 2**30)
    assert main(["simulate", "--duration-ms", "5000", "--max-records", "10000000"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("kvmviz simulate: the 3 kernels' runs would need ~")
    assert "more than the 4 GiB this machine has available" in err


def test_more_faulting_vcpus_than_the_generator_numbers_are_refused(capsys):
    """Beyond 2**24 faulting vCPUs two vCPUs would draw the same workload: refused by name,
    whatever --max-records says."""
    assert main(["simulate", "--vcpus", "100000000", "--max-records", str(10**12)]) == 2
    err = _one_line_error(capsys)
    assert "--vcpus 100,000,000: the model numbers at most 16,777,215 faulting vCPUs" in err


def test_max_records_is_the_limit_itself(capsys):
    """--max-records at the estimate runs; one less refuses and names the value to pass."""
    records = kvmviz.estimate(kvmviz.presets.static_setup(n_vcpus=8, duration_us=2000.0)).records
    assert main([*SMALL, "--max-records", str(records - 1)]) == 2
    assert f"or add --max-records {records} to go ahead" in _one_line_error(capsys)
    assert main([*SMALL, "--max-records", str(records)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith(f"-s 0 --max-records {records}")  # echoed: reproducible


def test_progress_is_one_line_per_kernel_on_stderr(capsys):
    """--progress reports each kernel as it starts and the end; without it (stderr not a
    terminal) stderr stays empty."""
    assert main([*SMALL, "--progress"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("\rkvmviz simulate: 0 / 3 kernels, running v5.12")
    assert err.endswith("\rkvmviz simulate: 3 / 3 kernels\n")
    assert main(SMALL) == 0
    assert capsys.readouterr().err == ""


def test_ctrl_c_is_exit_130_in_one_line(capsys, monkeypatch):
    """A KeyboardInterrupt anywhere in a command is caught by main(): status 130, one line."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(kvmviz.experiments, "kernel_runs", interrupted)
    assert main(SMALL) == 130
    assert _one_line_error(capsys) == "kvmviz: interrupted\n"


def test_version_prints_the_package_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"kvmviz {kvmviz.__version__}\n"


def _subparsers(parser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_help_explains_every_option_with_its_default(capsys):
    """Every subcommand has a one-line summary in `kvmviz --help`; every option has a help
    text, and `--help` shows the default of each option that has one, with its unit."""
    parser = cli._parser()
    subs = _subparsers(parser)
    assert sorted(subs) == ["figures", "quiz", "replay", "simulate"]
    (choices,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    summaries = {a.dest: a.help for a in choices._choices_actions}
    assert all(summaries[name] and "\n" not in summaries[name] for name in subs)
    for name, sub in subs.items():
        text = sub.format_help()
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
            if action.default not in (None, False, argparse.SUPPRESS) and not action.required:
                assert f"(default: {action.default})" in " ".join(text.split())
    simulate = " ".join(subs["simulate"].format_help().split())
    assert "simulated time, milliseconds (default: 20.0)" in simulate
    assert "MMU notification events per second (default: the setup's, 2000 static" in simulate
    assert "(default: static)" in simulate
    assert "(default: 4000000)" in simulate
    assert "temporary folder beside DIR" in " ".join(subs["figures"].format_help().split())
    assert main(["simulate", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: kvmviz simulate")


def test_quiz_hides_the_answer_unless_asked(capsys):
    """Without -c the answer is a question mark; with -c it is revealed."""
    main(["quiz", "grant-order", "-s", "4"])
    hidden = capsys.readouterr().out
    main(["quiz", "grant-order", "-s", "4", "-c"])
    shown = capsys.readouterr().out
    assert "Answer: ?" in hidden and "Answer: [" in shown
    assert hidden.splitlines()[1:-1] == shown.splitlines()[1:-1]  # the same question


def test_replay_compares_kernels_on_the_real_trace(capsys):
    """`kvmviz replay` prints the per-kernel table and a perf-lock-shaped table per kernel."""
    assert main(["replay", str(TRACE), "--layout", str(LAYOUT), "--vcpus", "8"]) == 0
    out = capsys.readouterr().out
    assert "1255 records from 1541 lines" in out
    assert out.count("contended   total wait     max wait     avg wait") == 3
    assert "rwlock:W   kvm_mmu_notifier_invalidate_range_start" in out


def test_replay_on_the_releases_named(tmp_path, capsys):
    """`kvmviz replay --kernels 6.8,6.18`: one row and one perf-lock table per release, under
    its canonical name, in the order given, the option echoed; the Perfetto files carry the
    canonical release in their names and their slices."""
    from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

    argv = ["replay", str(TRACE), "--layout", str(LAYOUT), "--vcpus", "4"]
    assert main([*argv, "--kernels", "6.18,6.8", "--trace", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(
        f"# kvmviz replay {TRACE} --layout {LAYOUT} --vcpus 4 --kernels v6.18,v6.8 --policy "
    )
    rows = [line.split()[0] for line in out.splitlines() if line.startswith("v")]
    assert rows == ["v6.18", "v6.8"]
    assert out.count("# perf lock contention, as it would read on v6.") == 2
    assert "as it would read on v6.18\n" in out and "as it would read on v6.8\n" in out
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"{TRACE.stem}-v6.18.pftrace", f"{TRACE.stem}-v6.8.pftrace"]
    trace = pb.Trace.FromString((tmp_path / names[0]).read_bytes())
    kernels = {
        a.string_value
        for p in trace.packet
        if p.HasField("track_event")
        for a in p.track_event.debug_annotations
        if a.name == "kernel"
    }
    assert kernels == {"v6.18"}


def test_replay_of_a_v5_trace_on_v6_18_notes_that_change_pte_is_gone(tmp_path, capsys):
    """A trace with kvm_set_spte_hva records (a v6.9 or older host) replayed on 6.18 runs,
    and says in a note that 6.18 has no change_pte callback, naming the commit."""
    path = tmp_path / "v5.txt"
    path.write_text("\n".join(V5_TRACE) + "\n", encoding="utf-8")
    argv = ["replay", str(path), "--layout", str(LAYOUT), "--vcpus", "2", "--kernels", "5.15,6.18"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert f"# {CHANGE_PTE_NOTE}\n" in captured.out and "f3b65bbaed7c" in CHANGE_PTE_NOTE
    assert "Traceback" not in captured.err


@pytest.mark.parametrize("command", ["simulate", "replay"])
@pytest.mark.parametrize(
    ("kernels", "fragment"),
    [
        (
            "6.19",
            "'6.19': 6.19 is not a release kvmviz models; expected releases from v5.12 to v6.18",
        ),
        ("5.11,7.0", "'5.11,7.0': 5.11, 7.0 are not releases kvmviz models; expected releases"),
        (
            "v6.8,6.8.0-49-generic",
            "'v6.8,6.8.0-49-generic': each release once; expected releases from v5.12 to v6.18",
        ),
        ("latest", "'latest': latest is not a release kvmviz models"),
    ],
)
def test_kernels_outside_the_range_are_refused_naming_it(capsys, command, kernels, fragment):
    """--kernels refuses an unknown or out-of-range release in one line naming the range,
    before any work (exit status 2)."""
    argv = [command] + (["x.txt", "--layout", "y.json"] if command == "replay" else [])
    assert main([*argv, "--kernels", kernels]) == 2
    err = _one_line_error(capsys)
    assert f"argument --kernels: {fragment}" in err, err


def test_simulate_on_the_releases_named(capsys):
    """`kvmviz simulate --kernels 6.8,6.18`: those two rows, canonical names, echoed; the
    same numbers as the library's runs of those releases."""
    assert main([*SMALL, "--kernels", "6.8,v6.18"]) == 0
    out = capsys.readouterr().out
    assert " --kernels v6.8,v6.18 --policy qrwlock " in out.splitlines()[0]
    rows = [line.split()[0] for line in out.splitlines() if line.startswith("v")]
    assert rows == ["v6.8", "v6.18"]
    runs = kvmviz.experiments.kernel_runs(
        kvmviz.presets.static_setup(n_vcpus=8, duration_us=2000), kernels=["v6.8", "v6.18"]
    )
    table = kvmviz.metrics.kernel_table(runs)[list(kvmviz.metrics.KERNEL_TABLE_COLUMNS)]
    assert table.round(3).to_string() in out


@pytest.mark.parametrize("missing", ["trace", "layout"])
def test_replay_names_a_missing_file(tmp_path, capsys, missing):
    """A missing input is exit code 2 and one line with its name."""
    args = {"trace": str(TRACE), "layout": str(LAYOUT)}
    args[missing] = str(tmp_path / "absent.txt")
    assert main(["replay", args["trace"], "--layout", args["layout"]]) == 2
    assert f"{tmp_path / 'absent.txt'}: No such file or directory" in _one_line_error(capsys)


def test_replay_names_a_layout_that_holds_no_memslot(capsys):
    """A file read as an empty layout (here: the trace itself) is refused naming --layout and
    the file, not reported as "Scenario.layout = MemslotLayout(0 slots)"."""
    assert main(["replay", str(TRACE), "--layout", str(TRACE)]) == 2
    err = _one_line_error(capsys)
    assert err.startswith("kvmviz replay: ") and str(TRACE) in err
    assert "no memslot" in err and "Scenario.layout" not in err


def test_replay_names_a_trace_that_is_a_folder(capsys, tmp_path):
    assert main(["replay", str(tmp_path), "--layout", str(LAYOUT)]) == 2
    assert f"kvmviz replay: {tmp_path}: Is a directory" in _one_line_error(capsys)


# --------------------------------------------------------------------------------------------
# `kvmviz figures`: all or nothing.
# --------------------------------------------------------------------------------------------
def _tiny(render) -> Figure:
    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1], [0, 1])
    return fig


def _failing(error: BaseException):
    def builder(render):
        raise error

    return builder


@pytest.fixture
def tiny_figures(monkeypatch):
    """Three cheap builders in place of the real ones; the test swaps one for a failure."""
    builders = {"one": _tiny, "two": _tiny, "three": _tiny}
    monkeypatch.setattr(gallery, "FIGURES", builders)
    monkeypatch.setattr(gallery, "_STANDARD", {})  # no animations: render_all writes figures only
    return builders


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file and folder under ``folder`` (hidden ones included), with file contents."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>")
        for p in sorted(folder.rglob("*"))
    }


def test_figures_writes_the_whole_set_and_says_how(tiny_figures, tmp_path, capsys):
    """A first run creates the folder (and its parents) from the staged set in one rename; the
    echo line says it is staged and moved in once complete."""
    out = tmp_path / "a" / "b" / "figs"
    assert main(["figures", "--out", str(out), "--format", "svg"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "(staged in a temporary folder beside it, moved in once complete)" in lines[0]
    assert lines[1:] == [str(out / f"{n}.svg") for n in ("one", "two", "three")]
    assert sorted(_tree(tmp_path.joinpath("a", "b"))) == [
        "figs",
        "figs/one.svg",
        "figs/three.svg",
        "figs/two.svg",
    ]


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), 2, "No space left on device"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
    ids=["disk full", "Ctrl-C"],
)
@pytest.mark.parametrize("force", [False, True], ids=["new folder", "--force over a set"])
def test_figures_failing_halfway_leaves_the_target_as_it_was(
    tiny_figures, tmp_path, capsys, error, status, message, force
):
    """A builder failing after the first figure: the target is unchanged (the old set stays
    under --force, no folder appears otherwise), no temporary folder or created parent is
    left behind, and the next run is not refused because of it."""
    out = tmp_path / "parent" / "figs"
    if force:
        assert main(["figures", "--out", str(out), "--format", "svg", "-s", "1"]) == 0
    before = _tree(tmp_path)
    tiny_figures["two"] = _failing(error)
    argv = ["figures", "--out", str(out), "--format", "svg,png"] + (["--force"] if force else [])
    capsys.readouterr()
    assert main(argv) == status
    err = _one_line_error(capsys)
    assert message in err
    assert (f"{out} is as it was" if force else "nothing was written") in err
    assert _tree(tmp_path) == before  # no .figs.partial-*, no half set, no empty parent
    tiny_figures["two"] = _tiny
    assert main(argv) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f"{n}.{f}" for n in ("one", "two", "three") for f in ("svg", "png"))


def test_render_all_cleans_up_after_a_bug_too(tiny_figures, tmp_path):
    """An unexpected exception (a bug, which the CLI lets through with its traceback) leaves
    nothing behind either."""
    tiny_figures["three"] = _failing(RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        gallery.render_all(tmp_path / "new" / "figs", formats=("svg",))
    assert list(tmp_path.iterdir()) == []


def test_figures_refuses_an_existing_set_before_any_work(tiny_figures, tmp_path, capsys):
    """Without --force an existing file is refused before any builder runs; with --force the
    new set replaces the old file by file, other files in the folder are kept."""
    out = tmp_path / "figs"
    out.mkdir()
    (out / "two.svg").write_text("old")
    (out / "notes.txt").write_text("mine")
    tiny_figures["one"] = _failing(AssertionError("a builder ran"))
    assert main(["figures", "--out", str(out), "--format", "svg"]) == 2
    err = _one_line_error(capsys)
    assert "refusing to overwrite 1 existing file(s)" in err and "two.svg" in err
    assert "(add --force to replace them); nothing was written" in err
    assert _tree(out) == {"notes.txt": b"mine", "two.svg": b"old"}
    tiny_figures["one"] = _tiny
    assert main(["figures", "--out", str(out), "--format", "svg", "--force"]) == 0
    assert sorted(_tree(out)) == ["notes.txt", "one.svg", "three.svg", "two.svg"]
    assert (out / "two.svg").read_bytes().startswith(b"<?xml")


@pytest.mark.parametrize(
    ("where", "fragment"),
    [
        ("file", "exists and is not a folder; expected a folder"),
        ("file/sub/figs", "/file is not a folder; expected a folder to write into"),
        ("/proc/kvmviz-figs", "/proc: No such file or directory (creating a temporary folder"),
    ],
    ids=["--out is a file", "under a regular file", "/proc (read-only even to root)"],
)
def test_figures_names_a_folder_it_cannot_write(tiny_figures, tmp_path, capsys, where, fragment):
    """We run as root, which writes into any chmod-read-only folder: a path under a regular
    file and /proc stand for the folders nobody can write."""
    (tmp_path / "file").write_text("keep")
    out = where if where.startswith("/") else str(tmp_path / where)
    assert main(["figures", "--out", out, "--format", "svg"]) == 2
    assert fragment in _one_line_error(capsys)
    assert _tree(tmp_path) == {"file": b"keep"}


def _captured(monkeypatch) -> dict:
    """render_all replaced by a stand-in that records what it was asked for."""
    calls: dict = {}

    def render_all(out, **options):
        calls.update(options, out=out)
        return []

    monkeypatch.setattr(gallery, "render_all", render_all)
    return calls


def test_figures_options_are_echoed_and_passed_on(monkeypatch, capsys):
    """Every option of `kvmviz figures` is echoed on its first line, so that the files can be
    made again, and reaches render_all: the VM (--setup, --vcpus, --rate, --spurious, built
    as `kvmviz simulate` builds it), the kernels in their order, the width, style, background
    and title."""
    calls = _captured(monkeypatch)
    argv = ["figures", "--out", "figs", "--format", "svg", "--setup", "volatile", "--vcpus",
            "96", "--spurious", "0.5", "--kernels", "v5.13,v5.12", "--width", "7.5", "--style",
            "dark", "--transparent", "--no-title", "--context", "talk", "-s", "2"]  # fmt: skip
    assert main(argv) == 0
    echo = capsys.readouterr().out.splitlines()[0]
    assert echo.startswith(
        "# kvmviz figures --out figs --format svg --context talk -s 2 --setup volatile --vcpus "
        "96 --rate 5000 --spurious 0.5 --kernels v5.13,v5.12 --width 7.5 --style dark "
        "--transparent --no-title"
    )
    assert calls["scenario"] == kvmviz.presets.volatile_setup(n_vcpus=96, spurious_share=0.5)
    assert calls["kernels"] == ("v5.13", "v5.12")
    assert (calls["width"], calls["style"]) == (7.5, "dark")
    assert (calls["context"], calls["seed"]) == ("talk", 2)
    assert calls["transparent"] is True and calls["title"] is False


def test_figures_defaults_leave_each_figure_its_own(monkeypatch, capsys):
    """Without the VM options no scenario is imposed (each figure keeps its own VM), nor
    kernels or width; a named width passes as its name; --vcpus alone is the static setup's VM."""
    calls = _captured(monkeypatch)
    assert main(["figures", "--out", "figs"]) == 0
    assert (calls["scenario"], calls["kernels"], calls["width"]) == (None, None, None)
    assert (calls["style"], calls["transparent"], calls["title"]) == ("light", False, True)
    assert capsys.readouterr().out.splitlines()[0] == (
        "# kvmviz figures --out figs --format svg,png --context paper -s 0 --style light  "
        "(staged in a temporary folder beside it, moved in once complete)"
    )
    assert main(["figures", "--out", "figs", "--vcpus", "96", "--width", "column"]) == 0
    assert calls["scenario"] == kvmviz.presets.static_setup(n_vcpus=96)
    assert calls["width"] == "column"
    assert "--setup static --vcpus 96 --rate 2000 --spurious 1 --width column" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (
            ["--kernels", "v5.12,v6.19"],
            "argument --kernels: 'v5.12,v6.19': v6.19 is not a release kvmviz models; expected "
            "releases from v5.12 to v6.18, comma-separated (say 6.8,6.18)",
        ),
        (["--kernels", "v5.13,5.13"], "argument --kernels: 'v5.13,5.13': each release once;"),
        (["--kernels", ","], "argument --kernels: ',': expected releases from v5.12 to v6.18"),
        (["--width", "narrow"], "argument --width: 'narrow': expected column or wide, or inches"),
        (["--width", "2.5"], "argument --width: '2.5': expected column or wide, or inches from 3"),
        (["--width", "nan"], "argument --width: 'nan'"),
        (["--vcpus", "0"], "argument --vcpus: '0': expected an integer >= 1"),
        (["--rate", "-1"], "argument --rate: '-1': expected a finite number >= 0"),
        (["--spurious", "1.01"], "argument --spurious: '1.01': expected a finite number between"),
        (["--setup", "busy"], "argument --setup: invalid choice: 'busy'"),
        (["--style", "sepia"], "argument --style: invalid choice: 'sepia'"),
        (["--context", "huge"], "argument --context: invalid choice: 'huge'"),
        (["--vcpus", "100000"], "each run of this VM would simulate ~"),
    ],
)
def test_figures_refuses_bad_values_in_one_line(monkeypatch, capsys, tmp_path, options, fragment):
    """A bad value of a figures option is one line on stderr, exit status 2, before any
    figure is drawn or any file written."""
    calls = _captured(monkeypatch)
    assert main(["figures", "--out", str(tmp_path / "figs"), *options]) == 2
    assert fragment in _one_line_error(capsys)
    assert calls == {} and not (tmp_path / "figs").exists()


def test_figures_without_titles_write_each_caption_beside_it(tiny_figures, tmp_path, capsys):
    """--no-title writes NAME.txt beside each figure (its caption, the alt text); an existing
    one is refused like any file."""

    def titled(render) -> Figure:
        fig = _tiny(render)
        fig.suptitle("a caption")
        return fig

    tiny_figures["one"] = titled
    out = tmp_path / "figs"
    assert main(["figures", "--out", str(out), "--format", "svg", "--no-title"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{n}.{s}" for n in ("one", "two", "three") for s in ("svg", "txt")
    )
    assert (out / "one.txt").read_text() == "a caption\n"
    (out / "one.svg").unlink()
    capsys.readouterr()
    assert main(["figures", "--out", str(out), "--format", "svg", "--no-title"]) == 2
    assert "one.txt" in _one_line_error(capsys)


def test_no_tdp_mmu_makes_every_fault_write_lock(capsys):
    """--no-tdp-mmu is Scenario(tdp_mmu=False): echoed, and the same table as the API gives."""
    import kvmviz as kv

    argv = ["simulate", "--vcpus", "16", "--duration-ms", "2", "--no-tdp-mmu", "-s", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "--no-tdp-mmu -s 1" in out.splitlines()[0]
    scenario = kv.Scenario(n_vcpus=16, duration_us=2000.0, tdp_mmu=False)
    table = kv.compare_kernels(scenario, seed=1)[list(kv.metrics.KERNEL_TABLE_COLUMNS)]
    assert table.round(3).to_string() in out


# -- kvmviz.cli: the quiz command ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "seed"),
    [("callback-order", 6), ("reader-wait", 3), ("must-retry", 3), ("walk-threshold", 6),
     ("flush-hold", 2), ("hit-or-miss", 4), ("munmap-on-guest", 105), ("ksm-hits", 4),
     ("v513-locks", 0), ("queued-behind", 3), ("trace-count", 7), ("first-vcpus-above", 23),
     ("zap-yields", 5), ("precheck-lock", 4), ("futile-reads", 2)],
)  # fmt: skip
def test_quiz_command_hides_then_reveals_the_answer(kind, seed, capsys):
    """`kvmviz quiz KIND -s SEED` prints the question with `Answer: ?`; with -c, the same
    question and the exercise's own reveal()."""
    assert cli.main(["quiz", kind, "-s", str(seed)]) == 0
    hidden = capsys.readouterr().out
    assert hidden.startswith(f"# kvmviz quiz {kind} -s {seed}\n")
    assert "Answer: ?" in hidden
    assert cli.main(["quiz", kind, "-s", str(seed), "-c"]) == 0
    shown = capsys.readouterr().out
    assert hidden.splitlines()[1] == shown.splitlines()[1]
    assert exercises.quiz(kind, seed).reveal() in shown


def test_quiz_command_takes_the_policy_of_the_lock_kinds(capsys):
    """--policy reaches grant-order (chapter 03's reader-pref question); a kind without a
    policy refuses it in one line, exit status 2."""
    assert cli.main(["quiz", "grant-order", "-s", "2", "--policy", "reader-pref", "-c"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# kvmviz quiz grant-order -s 2 --policy reader-pref -c\n")
    assert exercises.grant_order(2, policy="reader-pref").reveal() in out
    assert cli.main(["quiz", "takes-lock", "--policy", "spinlock"]) == 2
    err = capsys.readouterr().err
    assert err == "kvmviz quiz: takes-lock takes no option policy (options: none)\n"


# -- --trace: a run for Perfetto, one file per kernel ------------------------------------------
def test_simulate_trace_writes_one_file_per_kernel_and_format(tmp_path, capsys):
    """`kvmviz simulate --trace DIR` writes each kernel's run in each format asked for, echoes
    the flags, and the files hold the runs the table was computed from (their holds add up to
    the lock table's)."""
    import json

    from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

    from kvmviz import experiments

    out = tmp_path / "traces"
    argv = [*SMALL, "--trace", str(out), "--trace-format", "json,pftrace"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"--trace {out} --trace-format json,pftrace" in printed.splitlines()[0]
    names = sorted(p.name for p in out.iterdir())
    names_2021 = (
        f"simulate-{k}.{f}" for k in kvmviz.kernels.KERNELS_2021 for f in ("json", "pftrace")
    )
    assert names == sorted(names_2021)  # the default kernels: the 2021 story's three
    runs = experiments.kernel_runs(kvmviz.Scenario(n_vcpus=8, duration_us=2000))
    for kernel, run in runs.items():
        assert f"# trace: {out / f'simulate-{kernel}.json'}" in printed
        events = json.loads((out / f"simulate-{kernel}.json").read_text())["traceEvents"]
        holds = [e for e in events if e["ph"] == "X" and e["name"].startswith("holding")]
        assert len(holds) == len(run.lock)
        assert sum(e["dur"] for e in holds) == pytest.approx(run.lock["hold_us"].sum(), abs=0.01)
        trace = pb.Trace.FromString((out / f"simulate-{kernel}.pftrace").read_bytes())
        begins = [
            p.track_event
            for p in trace.packet
            if p.HasField("track_event") and p.track_event.name.startswith("holding")
        ]
        assert len(begins) == len(run.lock)


def test_simulate_trace_refuses_existing_files_before_any_work(tmp_path, capsys, monkeypatch):
    """Existing trace files are refused in one line, before simulating, and left as they were;
    `--force` replaces them."""
    from kvmviz import experiments

    (tmp_path / "simulate-v5.13.pftrace").write_bytes(b"mine")
    simulated = []
    real = experiments.kernel_runs
    monkeypatch.setattr(
        experiments, "kernel_runs", lambda *a, **k: simulated.append(1) or real(*a, **k)
    )
    assert main([*SMALL, "--trace", str(tmp_path)]) == 2
    err = _one_line_error(capsys)
    assert "refusing to overwrite" in err and "simulate-v5.13.pftrace" in err and "--force" in err
    assert simulated == [] and (tmp_path / "simulate-v5.13.pftrace").read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["simulate-v5.13.pftrace"]
    assert main([*SMALL, "--trace", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "simulate-v5.13.pftrace").read_bytes()[:4] != b"mine"


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--trace-format", "xml"], "--trace-format 'xml': unknown format(s) xml; expected some"),
        (["--trace-format", ","], "--trace-format ',': no format; expected some of"),
    ],
)
def test_simulate_trace_names_a_bad_format(tmp_path, capsys, extra, fragment):
    """An unknown trace format is one line naming it and the choices; nothing is written."""
    assert main([*SMALL, "--trace", str(tmp_path / "t"), *extra]) == 2
    assert fragment in _one_line_error(capsys)
    assert not (tmp_path / "t").exists()


def test_simulate_trace_into_a_file_is_refused(tmp_path, capsys):
    """`--trace` must be a folder."""
    target = tmp_path / "file"
    target.write_text("x")
    assert main([*SMALL, "--trace", str(target)]) == 2
    assert "exists and is not a folder" in _one_line_error(capsys)


def test_replay_trace_writes_the_real_stream_beside_the_modelled_vcpus(tmp_path, capsys):
    """`kvmviz replay TRACE --layout LAYOUT --trace DIR`: one .pftrace per kernel, named after
    the trace, whose notifier instants are the replayed trace's callbacks."""
    from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

    argv = ["replay", str(TRACE), "--layout", str(LAYOUT), "--vcpus", "8", "--trace", str(tmp_path)]
    assert main(argv) == 0
    capsys.readouterr()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"{TRACE.stem}-{k}.pftrace" for k in kvmviz.kernels.KERNELS_2021]
    trace = pb.Trace.FromString((tmp_path / names[0]).read_bytes())
    arrivals = [
        p for p in trace.packet if p.HasField("track_event") and p.track_event.type == 3
    ]  # TYPE_INSTANT
    title = next(
        p.track_descriptor.process.process_name
        for p in trace.packet
        if p.HasField("track_descriptor")
    )
    assert "replayed trace" in title and "8 vCPUs" in title
    assert len(arrivals) > 1000  # the trace's 1255 records make more callbacks than that


def test_trace_window_writes_only_what_overlaps_it(tmp_path, capsys):
    """`--trace-window 0.5:0.9` (ms) keeps the acquisitions overlapping the window, whole, and
    is echoed; a window that is not START:END is one line naming the option."""
    import json

    argv = [*SMALL, "--trace", str(tmp_path), "--trace-format", "json"]
    assert main([*argv, "--trace-window", "0.5:0.9"]) == 0
    assert "--trace-window 0.5:0.9" in capsys.readouterr().out.splitlines()[0]
    run = kvmviz.simulate(kvmviz.Scenario(n_vcpus=8, duration_us=2000), "v5.12")
    lock = run.lock
    want = ((lock["t_request_us"] < 900) & (lock["t_release_us"] >= 500)).sum()
    events = json.loads((tmp_path / "simulate-v5.12.json").read_text())["traceEvents"]
    holds = [e for e in events if e["ph"] == "X" and e["name"].startswith("holding")]
    assert len(holds) == want < len(lock)
    for bad in ("5", "2:1", "a:b", "-1:2"):
        assert main([*argv, "--force", f"--trace-window={bad}"]) == 2
        err = _one_line_error(capsys)
        assert f"--trace-window: {bad!r}: expected START:END" in err, err
