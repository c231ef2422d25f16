"""The command line: every run echoes its parameters, then prints what it says it prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvmviz.cli import main

DATA = Path(__file__).resolve().parents[1] / "data"


def test_simulate_prints_a_row_per_kernel(capsys):
    """`kvmviz simulate` echoes its flags and prints v5.12 / v5.13 / v5.15."""
    assert main(["simulate", "--vcpus", "32", "--duration-ms", "5", "-s", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# kvmviz simulate --vcpus 32 --duration-ms 5")
    assert all(f"\nv5.1{k} " in out for k in "235")


def test_simulate_rejects_a_bad_parameter(capsys):
    """A bad parameter is an exit code 2 and a message naming it, not a traceback."""
    assert main(["simulate", "--vcpus", "0"]) == 2
    assert "n_vcpus" in capsys.readouterr().err


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
    trace = DATA / "traces" / "notifier-phases-linux6.18.txt"
    layout = DATA / "traces" / "notifier-phases-linux6.18.layout.json"
    assert main(["replay", str(trace), "--layout", str(layout), "--vcpus", "8"]) == 0
    out = capsys.readouterr().out
    assert "1255 records from 1541 lines" in out
    assert out.count("contended   total wait     max wait     avg wait") == 3
    assert "rwlock:W   kvm_mmu_notifier_invalidate_range_start" in out


@pytest.mark.parametrize("missing", ["trace", "layout"])
def test_replay_names_a_missing_file(tmp_path, capsys, missing):
    """A missing input is exit code 2 and a message with its name."""
    trace = DATA / "traces" / "notifier-phases-linux6.18.txt"
    layout = DATA / "traces" / "notifier-phases-linux6.18.layout.json"
    args = {"trace": str(trace), "layout": str(layout)}
    args[missing] = str(tmp_path / "absent.txt")
    assert main(["replay", args["trace"], "--layout", args["layout"]]) == 2
    assert "absent.txt" in capsys.readouterr().err
